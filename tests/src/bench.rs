//! Helpers shared by the benchmark binaries: percentiles, formatting, and
//! reading a process's memory from /proc.

use std::time::Duration;

/// The `p` quantile (0.0..=1.0) of `v`, nearest rank; zero when empty.
pub fn percentile(v: &[Duration], p: f64) -> Duration {
    let mut v = v.to_vec();
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Milliseconds with two decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// A `/proc/PID/status` field in KiB (VmRSS, VmHWM, …); 0 when unreadable.
pub fn proc_status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// kube-proxy-shaped nat table: per service a KUBE-SERVICES match, a
/// KUBE-SVC chain with a statistic split over two endpoints, and two KUBE-SEP
/// chains (mark + DNAT). Five rules per service plus the SEP masquerade marks.
pub fn kube_proxy_rules(rules: u32) -> String {
    let services = rules / 7;
    let mut chains = String::from(
        "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
         :KUBE-SERVICES - [0:0]\n:KUBE-MARK-MASQ - [0:0]\n:KUBE-POSTROUTING - [0:0]\n",
    );
    let mut body = String::from(
        "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
         -A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
         -A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING\n\
         -A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000\n\
         -A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n\
         -A KUBE-POSTROUTING -j MASQUERADE --random-fully\n",
    );
    for i in 0..services {
        let (a, b) = (i / 250, i % 250);
        let svc = format!("KUBE-SVC-{i:016X}");
        let ns_name = format!("ns{}/svc{i}:http", i % 29);
        chains.push_str(&format!(":{svc} - [0:0]\n"));
        body.push_str(&format!(
            "-A KUBE-SERVICES -d 10.43.{a}.{b}/32 -p tcp -m comment --comment \"{ns_name} cluster IP\" -m tcp --dport 80 -j {svc}\n"
        ));
        body.push_str(&format!(
            "-A {svc} ! -s 10.42.0.0/16 -d 10.43.{a}.{b}/32 -p tcp -m comment --comment \"{ns_name} cluster IP\" -m tcp --dport 80 -j KUBE-MARK-MASQ\n"
        ));
        for (k, last) in [(0, false), (1, true)] {
            let sep = format!("KUBE-SEP-{i:014X}{k:02}");
            chains.push_str(&format!(":{sep} - [0:0]\n"));
            let stat = if last {
                String::new()
            } else {
                "-m statistic --mode random --probability 0.50000000000 ".into()
            };
            body.push_str(&format!(
                "-A {svc} -m comment --comment \"{ns_name} -> 10.42.{a}.{k}:8080\" {stat}-j {sep}\n"
            ));
            body.push_str(&format!("-A {sep} -s 10.42.{a}.{k}/32 -m comment --comment \"{ns_name}\" -j KUBE-MARK-MASQ\n"));
            body.push_str(&format!(
                "-A {sep} -p tcp -m comment --comment \"{ns_name}\" -m tcp -j DNAT --to-destination 10.42.{a}.{k}:8080\n"
            ));
        }
    }
    format!("{chains}{body}COMMIT\n")
}

/// CPU time (user + system) a process and its waited-for children (the save
/// tools an agent runs) have used so far; zero when unreadable.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime, stime, cutime, cstime are fields 14-17 of the line, 11-14 after ')'.
    let total = ticks(11) + ticks(12) + ticks(13) + ticks(14);
    // USER_HZ is 100 on every Linux ABI this runs on.
    Duration::from_millis(total * 10)
}
