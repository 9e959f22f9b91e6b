//! Facts about the node and the agent process, from uname and /proc.

use labscope_proto::v1::NodeInfo;

use crate::conntrack::dump::table_facts;

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn meminfo_kib(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Capabilities the agent cares about, from the effective set.
pub fn capabilities() -> Vec<String> {
    const CAPS: [(u32, &str); 4] = [
        (12, "CAP_NET_ADMIN"),
        (13, "CAP_NET_RAW"),
        (21, "CAP_SYS_ADMIN"),
        (19, "CAP_SYS_PTRACE"),
    ];
    let status = read("/proc/self/status");
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    CAPS.iter()
        .filter(|(bit, _)| eff & (1u64 << bit) != 0)
        .map(|(_, n)| n.to_string())
        .collect()
}

/// Whether net.ipv4.ping_group_range admits the agent's effective group.
pub fn ping_socket_allowed() -> bool {
    let range = read("/proc/sys/net/ipv4/ping_group_range");
    let mut it = range
        .split_whitespace()
        .filter_map(|v| v.parse::<u64>().ok());
    let (Some(lo), Some(hi)) = (it.next(), it.next()) else {
        return false;
    };
    let gid = u64::from(nix::unistd::getegid().as_raw());
    lo <= gid && gid <= hi
}

/// Where the node's OS is described, in order: the host's file as the
/// DaemonSet mounts it (the container's own would name the image, or
/// nothing in a scratch image), then this system's.
pub const OS_RELEASE: [&str; 3] = [
    "/host/etc/os-release",
    "/etc/os-release",
    "/usr/lib/os-release",
];

/// `PRETTY_NAME` of an os-release file (shell-style quoting undone), or
/// `NAME VERSION` when it has none.
pub fn pretty_name(text: &str) -> Option<String> {
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
            .map(unquote)
            .filter(|v| !v.is_empty())
    };
    value("PRETTY_NAME").or_else(|| {
        let name = value("NAME")?;
        Some(match value("VERSION") {
            Some(v) => format!("{name} {v}"),
            None => name,
        })
    })
}

/// Undoes os-release's quoting: "…" or '…', with \\, \", \$ and \` escapes.
fn unquote(v: &str) -> String {
    let v = v.trim();
    let quoted = v.len() >= 2
        && ((v.starts_with('"') && v.ends_with('"')) || (v.starts_with('\'') && v.ends_with('\'')));
    if !quoted {
        return v.to_string();
    }
    let inner = &v[1..v.len() - 1];
    if v.starts_with('\'') {
        return inner.to_string();
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                if !matches!(n, '\\' | '"' | '$' | '`') {
                    out.push('\\');
                }
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Gathers [`NodeInfo`].
pub fn collect(node_name: &str) -> NodeInfo {
    let uts = nix::sys::utsname::uname().ok();
    let field = |f: fn(&nix::sys::utsname::UtsName) -> &std::ffi::OsStr| {
        uts.as_ref()
            .map(|u| f(u).to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let uptime = read("/proc/uptime")
        .split_whitespace()
        .next()
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    let load: Vec<f64> = read("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .filter_map(|v| v.parse().ok())
        .collect();
    let mem = read("/proc/meminfo");
    let pretty = OS_RELEASE
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .and_then(|text| pretty_name(&text))
        .unwrap_or_default();
    let ct = table_facts();
    NodeInfo {
        node_name: node_name.to_string(),
        hostname: field(|u| u.nodename()),
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        kernel_release: field(|u| u.release()),
        kernel_version: field(|u| u.version()),
        machine: field(|u| u.machine()),
        os_pretty_name: pretty,
        uptime_seconds: uptime as u64,
        load1: load.first().copied().unwrap_or(0.0),
        load5: load.get(1).copied().unwrap_or(0.0),
        load15: load.get(2).copied().unwrap_or(0.0),
        memory_total_bytes: meminfo_kib(&mem, "MemTotal") * 1024,
        memory_available_bytes: meminfo_kib(&mem, "MemAvailable") * 1024,
        conntrack_count: ct.count,
        conntrack_max: ct.max,
        capabilities: capabilities(),
        ping_socket_allowed: ping_socket_allowed(),
        agent_rss_bytes: meminfo_kib(&read("/proc/self/status"), "VmRSS") * 1024,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_names() {
        let debian = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\n";
        assert_eq!(
            pretty_name(debian).as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        let escaped = "NAME='Raspberry Pi OS'\nPRETTY_NAME=\"Pi \\\"lite\\\" \\$x\"\n";
        assert_eq!(pretty_name(escaped).as_deref(), Some("Pi \"lite\" $x"));
        let no_pretty = "NAME=Alpine\nVERSION=3.20\n";
        assert_eq!(pretty_name(no_pretty).as_deref(), Some("Alpine 3.20"));
        assert_eq!(pretty_name("ID=x\n"), None);
    }

    #[test]
    fn meminfo_parsing() {
        let text = "MemTotal:        8245000 kB\nMemFree:  100 kB\nMemAvailable:    4000000 kB\n";
        assert_eq!(meminfo_kib(text, "MemTotal"), 8_245_000);
        assert_eq!(meminfo_kib(text, "MemAvailable"), 4_000_000);
        assert_eq!(meminfo_kib(text, "Missing"), 0);
    }

    #[test]
    fn collects_real_values_from_this_machine() {
        let info = collect("n1");
        assert_eq!(info.node_name, "n1");
        assert!(!info.kernel_release.is_empty());
        assert!(info.memory_total_bytes > 0);
        assert!(info.agent_rss_bytes > 0);
    }
}
