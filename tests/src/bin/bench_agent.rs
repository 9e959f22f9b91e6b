//! Agent benchmark: builds a namespace with a large conntrack table and a
//! kube-proxy-sized iptables ruleset, starts the release agent in it, and
//! times the agent against the standard tools doing the same job in the same
//! run. Prints a Markdown report (BENCHMARKS.md quotes it). Needs root.
//!
//! `cargo run --release -p labscope-tests --bin bench-agent -- [--entries N] [--rules N] [--runs N]`

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use labscope_proto::v1 as pb;
use labscope_tests::bench::{kube_proxy_rules, ms, percentile, proc_status_kib};
use labscope_tests::{AgentProcess, Netns, connect};
use tokio_stream::StreamExt;

struct Opts {
    entries: u32,
    rules: u32,
    runs: usize,
}

fn parse_opts() -> anyhow::Result<Opts> {
    let mut o = Opts {
        entries: 50_000,
        rules: 5_000,
        runs: 11,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val =
            || -> anyhow::Result<u64> { Ok(args.next().context("missing value")?.parse()?) };
        match a.as_str() {
            "--entries" => o.entries = val()? as u32,
            "--rules" => o.rules = val()? as u32,
            "--runs" => o.runs = val()? as usize,
            "-h" | "--help" => {
                println!(
                    "bench-agent [--entries N (50000)] [--rules N (5000)] [--runs N (11)]  (root)"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}"),
        }
    }
    Ok(o)
}

#[derive(Default)]
struct Samples(BTreeMap<&'static str, Vec<Duration>>);

impl Samples {
    fn add(&mut self, name: &'static str, d: Duration) {
        self.0.entry(name).or_default().push(d);
    }
    fn pct(&self, name: &str, p: f64) -> Duration {
        percentile(self.0.get(name).map(Vec::as_slice).unwrap_or_default(), p)
    }
    fn median(&self, name: &str) -> Duration {
        self.pct(name, 0.5)
    }
}

fn vm(pid: u32, key: &str) -> u64 {
    proc_status_kib(pid, key)
}

fn run_tool(argv: &[&str]) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let status = Command::new(argv[0])
        .args(&argv[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    let took = started.elapsed();
    anyhow::ensure!(status.success(), "{argv:?} failed: {status}");
    Ok(took)
}

fn main() -> anyhow::Result<()> {
    let opts = parse_opts()?;
    anyhow::ensure!(
        nix::unistd::geteuid().is_root(),
        "bench-agent needs root (network namespaces, conntrack)"
    );
    let ns = Netns::new("lsbench")?;
    ns.run(&[
        "sysctl",
        "-qw",
        "net.netfilter.nf_conntrack_udp_timeout=600",
    ])
    .ok();
    ns.run(&["sysctl", "-qw", "net.netfilter.nf_conntrack_max=262144"])
        .ok();
    // kube-proxy-sized nat table through iptables-restore (nf_tables backend).
    let rules_file =
        std::env::temp_dir().join(format!("labscope-bench-{}.rules", std::process::id()));
    std::fs::write(&rules_file, kube_proxy_rules(opts.rules))?;
    ns.run(&["iptables-restore", rules_file.to_str().unwrap_or_default()])?;
    let _ = std::fs::remove_file(&rules_file);
    let rule_count = ns
        .run(&["iptables-save"])?
        .lines()
        .filter(|l| l.starts_with("-A"))
        .count();

    let agent_bin = labscope_tests::workspace_binary("labscope-agent")?;
    eprintln!("agent: {}", agent_bin.display());
    let agent = AgentProcess::start(&ns, "127.0.0.1:9447", "bench", &[])?;
    let pid = agent.pid();

    // Fill conntrack: one UDP socket to `entries` distinct ports on loopback.
    let entries = opts.entries;
    ns.block_on(move || async move {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0")?;
        for i in 0..entries {
            let port = 10_000 + (i % 50_000) as u16;
            let dst = format!(
                "127.0.{}.{}:{port}",
                1 + i / 50_000 / 250,
                1 + (i / 50_000) % 250
            );
            let _ = sock.send_to(b"x", dst);
        }
        Ok(())
    })?;
    std::thread::sleep(Duration::from_millis(300));
    let count: u64 = ns
        .run(&["cat", "/proc/sys/net/netfilter/nf_conntrack_count"])?
        .trim()
        .parse()?;
    let rss_idle_kib = vm(pid, "VmRSS");

    let runs = opts.runs;
    let (
        samples,
        full_entries,
        filtered_returned,
        filtered_matched,
        fw_rules,
        hwm_dump,
        hwm_firewall,
    ) = ns.block_on(move || async move {
        let mut s = Samples::default();
        let mut client = connect("127.0.0.1:9447").await?;
        let (mut full_entries, mut filtered_returned, mut filtered_matched, mut fw_rules) =
            (0usize, 0u64, 0u64, 0u32);
        for _ in 0..runs {
            // The standard tool, same table, same namespace.
            s.add("conntrack -L", run_tool(&["conntrack", "-L"])?);
            let t = Instant::now();
            let mut stream = client
                .list_conntrack(pb::ListConntrackRequest::default())
                .await?
                .into_inner();
            let mut n = 0usize;
            while let Some(chunk) = stream.next().await {
                n += chunk?.entries.len();
            }
            s.add("ListConntrack full", t.elapsed());
            full_entries = n;

            let t = Instant::now();
            let req = pb::ListConntrackRequest {
                protocol: "udp".into(),
                port: 20000,
                limit: 50,
                ..Default::default()
            };
            let mut stream = client.list_conntrack(req).await?.into_inner();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                if let Some(sum) = chunk.summary {
                    filtered_returned = sum.returned;
                    filtered_matched = sum.matched;
                }
            }
            s.add("ListConntrack filtered, limit 50", t.elapsed());

            let t = Instant::now();
            let mut stream = client
                .list_conntrack(pb::ListConntrackRequest {
                    limit: 50,
                    ..Default::default()
                })
                .await?
                .into_inner();
            while let Some(chunk) = stream.next().await {
                chunk?;
            }
            s.add("ListConntrack first 50 (count all)", t.elapsed());

            let t = Instant::now();
            let req = pb::ListConntrackRequest {
                limit: 50,
                stop_at_limit: true,
                ..Default::default()
            };
            let mut stream = client.list_conntrack(req).await?.into_inner();
            while let Some(chunk) = stream.next().await {
                chunk?;
            }
            s.add("ListConntrack first 50 (stop_at_limit)", t.elapsed());
        }
        let hwm_dump = vm(pid, "VmHWM");
        // Reset the peak so the firewall read is measured on its own.
        std::fs::write(format!("/proc/{pid}/clear_refs"), "5")?;
        for _ in 0..runs {
            s.add("iptables-save -c", run_tool(&["iptables-save", "-c"])?);
            let out = Command::new("iptables-save").arg("-c").output()?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let t = Instant::now();
            let parsed = labscope_agent::firewall::parse::parse(&text)?;
            s.add("parse iptables-save text (in-process)", t.elapsed());
            std::hint::black_box(parsed);
            let t = Instant::now();
            let req = labscope_agent::netlink::dump_request((1 << 8) | 1, 1, &[0, 0, 0, 0]);
            let mut n = 0u64;
            labscope_agent::netlink::dump(12, &req, |_| {
                n += 1;
                std::ops::ControlFlow::Continue(())
            })?;
            s.add("raw ctnetlink dump, no decode (in-process)", t.elapsed());
            std::hint::black_box(n);
            let t = Instant::now();
            let fw = client
                .get_firewall(pb::GetFirewallRequest {
                    table: "nat".into(),
                    ..Default::default()
                })
                .await?
                .into_inner();
            s.add("GetFirewall nat", t.elapsed());
            fw_rules = fw.total_rules;
        }
        let hwm_firewall = vm(pid, "VmHWM");
        for _ in 0..200 {
            let t = Instant::now();
            client
                .get_networking(pb::GetNetworkingRequest::default())
                .await?;
            s.add("GetNetworking", t.elapsed());
        }
        for _ in 0..runs {
            let t = Instant::now();
            for args in [
                &["ip", "-j", "-s", "link", "show"][..],
                &["ip", "-j", "addr", "show"],
                &["ip", "-j", "route", "show"],
                &["ip", "-j", "rule", "show"],
                &["ip", "-j", "neigh", "show"],
            ] {
                run_tool(args)?;
            }
            s.add("ip -j link+addr+route+rule+neigh", t.elapsed());
        }
        Ok((
            s,
            full_entries,
            filtered_returned,
            filtered_matched,
            fw_rules,
            hwm_dump,
            hwm_firewall,
        ))
    })?;
    let rss_after_kib = vm(pid, "VmRSS");

    // Decoder: captured dump bytes, decoded by ours and by netlink-packet-netfilter.
    let captured: Vec<Vec<u8>> = ns.block_on(|| async {
        let mut out = Vec::new();
        let req = labscope_agent::netlink::dump_request((1 << 8) | 1, 1, &[0, 0, 0, 0]);
        labscope_agent::netlink::dump(12, &req, |m| {
            out.push(m.bytes.to_vec());
            std::ops::ControlFlow::Continue(())
        })?;
        Ok(out)
    })?;
    let mut ours = Vec::new();
    let mut crate_times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let mut ok = 0usize;
        for m in &captured {
            ok += usize::from(labscope_agent::conntrack::decode::decode(&m[16..]).is_ok());
        }
        ours.push(t.elapsed());
        assert_eq!(ok, captured.len());
        let t = Instant::now();
        let mut ok = 0usize;
        for m in &captured {
            type Msg =
                netlink_packet_core::NetlinkMessage<netlink_packet_netfilter::NetfilterMessage>;
            ok += usize::from(Msg::deserialize(m).is_ok());
        }
        crate_times.push(t.elapsed());
        std::hint::black_box(ok);
    }
    ours.sort();
    crate_times.sort();
    let size = std::fs::metadata(&agent_bin)?.len();
    drop(agent);

    let ratio = |a: &str, b: &str| {
        samples.median(a).as_secs_f64() / samples.median(b).as_secs_f64().max(1e-9)
    };
    println!(
        "## Agent benchmark ({} runs per row: median and p90)\n",
        runs
    );
    println!(
        "conntrack table: {count} entries (agent streamed {full_entries}); nat rules: {rule_count} (GetFirewall counted {fw_rules})\n"
    );
    println!("| operation | median | p90 |");
    println!("|---|---|---|");
    for name in [
        "conntrack -L",
        "ListConntrack full",
        "ListConntrack filtered, limit 50",
        "ListConntrack first 50 (count all)",
        "ListConntrack first 50 (stop_at_limit)",
        "raw ctnetlink dump, no decode (in-process)",
        "iptables-save -c",
        "parse iptables-save text (in-process)",
        "GetFirewall nat",
        "ip -j link+addr+route+rule+neigh",
        "GetNetworking",
    ] {
        println!(
            "| {name} | {} | {} |",
            ms(samples.median(name)),
            ms(samples.pct(name, 0.9))
        );
    }
    println!();
    println!(
        "- ListConntrack full / conntrack -L: {:.2}",
        ratio("ListConntrack full", "conntrack -L")
    );
    println!(
        "- ListConntrack filtered (limit 50) / conntrack -L: {:.2} (matched {filtered_matched}, returned {filtered_returned})",
        ratio("ListConntrack filtered, limit 50", "conntrack -L")
    );
    println!(
        "- GetFirewall nat / iptables-save -c: {:.2}",
        ratio("GetFirewall nat", "iptables-save -c")
    );
    println!(
        "- GetNetworking p99 over 200 calls: {}",
        ms(samples.pct("GetNetworking", 0.99))
    );
    println!(
        "- ctnetlink decode of {} captured messages: ours {} , netlink-packet-netfilter {} (ratio {:.2})",
        captured.len(),
        ms(ours[ours.len() / 2]),
        ms(crate_times[crate_times.len() / 2]),
        crate_times[crate_times.len() / 2].as_secs_f64()
            / ours[ours.len() / 2].as_secs_f64().max(1e-9)
    );
    let mib = |k: u64| k as f64 / 1024.0;
    println!(
        "- agent RSS: idle {:.1} MiB; peak (VmHWM) over the {runs} full 50k dumps and paged calls {:.1} MiB; \
         peak over the {runs} GetFirewall nat calls {:.1} MiB; at the end {:.1} MiB",
        mib(rss_idle_kib),
        mib(hwm_dump),
        mib(hwm_firewall),
        mib(rss_after_kib)
    );
    println!(
        "- agent binary: {:.1} MiB ({})",
        size as f64 / 1048576.0,
        agent_bin.display()
    );
    Ok(())
}
