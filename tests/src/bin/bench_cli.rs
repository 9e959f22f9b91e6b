//! Like-for-like benchmark: whole processes, as a user runs them. In a
//! namespace with a kube-proxy-sized nat table and a conntrack table of each
//! requested size, the `labscope` CLI (talking to a real agent process, as it
//! talks to the DaemonSet) and the standard tool do the same job, alternately
//! (ABBA), in the same run. Also the agent's CPU per call, and its memory
//! before, during and five seconds after a burst of `GetFirewall` calls.
//! Prints Markdown (BENCHMARKS.md quotes it). Needs root.
//!
//! `cargo run --release -p labscope-tests --bin bench-cli -- [--entries 10000,50000,100000] [--rules N] [--runs N]`

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use labscope_proto::v1 as pb;
use labscope_tests::bench::{cpu_time, kube_proxy_rules, ms, percentile, proc_status_kib};
use labscope_tests::mcp::{Aggregator, KeepAlive, replay};
use labscope_tests::netns::SILENT_ADDR;
use labscope_tests::{AgentProcess, Netns, connect, workspace_binary};
use serde_json::json;
use tokio_stream::StreamExt;

const AGENT: &str = "127.0.0.1:9447";

struct Opts {
    entries: Vec<u32>,
    rules: u32,
    runs: usize,
    agent_bin: Option<std::path::PathBuf>,
    aggregator_bin: Option<std::path::PathBuf>,
}

/// Whether a 64-bit little-endian ELF file names a program interpreter
/// (a `PT_INTERP` program header): dynamically linked.
fn elf_has_interpreter(elf: &[u8]) -> Option<bool> {
    let u16_at = |at: usize| Some(u16::from_le_bytes(elf.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(elf.get(at..at + 4)?.try_into().ok()?));
    let u64_at = |at: usize| Some(u64::from_le_bytes(elf.get(at..at + 8)?.try_into().ok()?));
    if elf.get(..5)? != b"\x7fELF\x02" {
        return None;
    }
    let (phoff, phentsize, phnum) = (
        u64_at(0x20)? as usize,
        u16_at(0x36)? as usize,
        u16_at(0x38)?,
    );
    Some((0..phnum as usize).any(|i| u32_at(phoff + i * phentsize) == Some(3)))
}

/// "PATH (N MiB, static)": which build a benchmark ran.
fn describe_binary(path: &std::path::Path) -> String {
    let linking = match std::fs::read(path)
        .ok()
        .as_deref()
        .and_then(elf_has_interpreter)
    {
        Some(true) => "dynamically linked",
        Some(false) => "static",
        None => "not a 64-bit ELF",
    };
    let mib = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) as f64 / (1 << 20) as f64;
    format!("{} ({mib:.1} MiB, {linking})", path.display())
}

fn parse_opts() -> anyhow::Result<Opts> {
    let mut o = Opts {
        entries: vec![10_000, 50_000, 100_000],
        rules: 5_000,
        runs: 7,
        agent_bin: None,
        aggregator_bin: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().context("missing value");
        match a.as_str() {
            "--entries" => {
                o.entries = val()?
                    .split(',')
                    .map(|n| n.trim().parse())
                    .collect::<Result<_, _>>()?
            }
            "--rules" => o.rules = val()?.parse()?,
            "--runs" => o.runs = val()?.parse()?,
            "--agent-bin" => o.agent_bin = Some(val()?.into()),
            "--aggregator-bin" => o.aggregator_bin = Some(val()?.into()),
            "--print-rules" => {
                // The nat table it loads, for iptables-restore by hand.
                print!("{}", kube_proxy_rules(o.rules));
                std::process::exit(0);
            }
            "-h" | "--help" => {
                println!(
                    "bench-cli [--entries N,N,… (10000,50000,100000)] [--rules N (5000)] [--runs N (7)] [--agent-bin PATH (default: target/…/labscope-agent)] [--aggregator-bin PATH (labscope for serve and the CLI; default: target/…/labscope)] [--print-rules]  (root)"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}"),
        }
    }
    Ok(o)
}

/// Wall time of each run, the agent's CPU time of each, and for the MCP
/// rows `labscope serve`'s.
#[derive(Default)]
struct Samples {
    wall: BTreeMap<String, Vec<Duration>>,
    cpu: BTreeMap<String, Vec<Duration>>,
    server_cpu: BTreeMap<String, Vec<Duration>>,
}

impl Samples {
    fn median(&self, name: &str) -> Duration {
        percentile(
            self.wall.get(name).map(Vec::as_slice).unwrap_or_default(),
            0.5,
        )
    }
    fn cpu(&self, name: &str) -> Duration {
        percentile(
            self.cpu.get(name).map(Vec::as_slice).unwrap_or_default(),
            0.5,
        )
    }
    /// `labscope serve`'s median CPU for an MCP row, "—" for the others.
    fn server_cpu(&self, name: &str) -> String {
        match self.server_cpu.get(name) {
            Some(v) => ms(percentile(v, 0.5)),
            None => "—".into(),
        }
    }
}

/// Runs an MCP job and records its wall time, the agent's CPU time and
/// `labscope serve`'s over it.
async fn timed_mcp<T>(
    s: &mut Samples,
    name: &str,
    (agent_pid, server_pid): (u32, u32),
    job: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    let (cpu0, server0) = (cpu_time(agent_pid), cpu_time(server_pid));
    let t = Instant::now();
    let out = job.await?;
    add(
        s,
        name,
        t.elapsed(),
        cpu_time(agent_pid).saturating_sub(cpu0),
    );
    s.server_cpu
        .entry(name.into())
        .or_default()
        .push(cpu_time(server_pid).saturating_sub(server0));
    Ok(out)
}

fn add(s: &mut Samples, name: &str, wall: Duration, cpu: Duration) {
    s.wall.entry(name.into()).or_default().push(wall);
    s.cpu.entry(name.into()).or_default().push(cpu);
}

/// Runs a job (one or more processes) and records its wall time and the
/// agent's CPU time over it.
fn timed(
    s: &mut Samples,
    name: &str,
    agent_pid: u32,
    job: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let cpu0 = cpu_time(agent_pid);
    let t = Instant::now();
    job()?;
    s.wall.entry(name.into()).or_default().push(t.elapsed());
    s.cpu
        .entry(name.into())
        .or_default()
        .push(cpu_time(agent_pid).saturating_sub(cpu0));
    Ok(())
}

/// A process with its output thrown away, as `>/dev/null` would.
fn quiet(argv: &[&str]) -> anyhow::Result<()> {
    let status = Command::new(argv[0])
        .args(&argv[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "{argv:?} failed: {status}");
    Ok(())
}

/// A process whose JSON output is wanted.
fn json_of(argv: &[String]) -> anyhow::Result<serde_json::Value> {
    let out = Command::new(&argv[0]).args(&argv[1..]).output()?;
    anyhow::ensure!(
        out.status.success(),
        "{argv:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Follows `nextCursor` from page to page, one `labscope call` process per
/// page; returns (pages, items).
fn cli_pages(base: &[String], item_key: &str) -> anyhow::Result<(usize, usize)> {
    let (mut pages, mut items) = (0usize, 0usize);
    let mut cursor: Option<String> = None;
    loop {
        let mut argv = base.to_vec();
        if let Some(c) = &cursor {
            argv.push(format!("cursor={c}"));
        }
        argv.extend(["--output".into(), "json".into()]);
        let v = json_of(&argv)?;
        pages += 1;
        items += v[item_key].as_array().map(Vec::len).unwrap_or(0);
        match v["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return Ok((pages, items)),
        }
        anyhow::ensure!(pages < 10_000, "no end to the pages");
    }
}

/// One `labscope call … --all` process (it follows the cursor itself),
/// its text read to the end as a pipe would; returns the lines printed.
fn cli_all(argv: &[String]) -> anyhow::Result<usize> {
    let out = Command::new(&argv[0])
        .args(&argv[1..])
        .stderr(Stdio::null())
        .output()?;
    anyhow::ensure!(out.status.success(), "{argv:?} failed: {}", out.status);
    Ok(out.stdout.iter().filter(|b| **b == b'\n').count())
}

/// The MCP row of the full conntrack read's answers replayed by an endpoint
/// that does no work ([`replay`]): the benchmark's client by itself.
const REPLAYED: &str = "MCP client alone: the same 1000-entry pages replayed (no server work)";

/// The MCP full conntrack read's arguments (pages of 1,000).
fn full_read_args() -> serde_json::Value {
    json!({"node": "bench", "limit": 1000})
}

/// Follows `nextCursor` over one kept-alive MCP session; returns (pages, items).
async fn mcp_pages(
    client: &mut KeepAlive,
    tool: &str,
    args: serde_json::Value,
    item_key: &str,
) -> anyhow::Result<(usize, usize)> {
    let (items, pages) = client.all_pages(tool, args, item_key).await?;
    Ok((pages, items.len()))
}

/// The nat table through gRPC in pages of `limit`, as the MCP tool asks for
/// it (the first page's read named in the next requests); returns the rules.
async fn grpc_rule_pages(limit: u32) -> anyhow::Result<usize> {
    let mut client = connect(AGENT).await?;
    let (mut offset, mut snapshot, mut rules) = (0u32, String::new(), 0usize);
    loop {
        let fw = client
            .get_firewall(pb::GetFirewallRequest {
                table: "nat".into(),
                offset,
                limit,
                snapshot: snapshot.clone(),
                ..Default::default()
            })
            .await?
            .into_inner();
        let total: u32 = fw.chains.iter().map(|c| c.rule_count).sum();
        let got = fw.chains.iter().map(|c| c.rules.len()).sum::<usize>();
        rules += got;
        offset += got as u32;
        snapshot = fw.snapshot;
        if offset >= total || got == 0 {
            return Ok(rules);
        }
    }
}

/// Pages of `limit` through gRPC with stop_at_limit: (pages, entries).
async fn grpc_pages(limit: u32) -> anyhow::Result<(usize, usize)> {
    let mut client = connect(AGENT).await?;
    let (mut pages, mut entries) = (0usize, 0usize);
    let mut token = String::new();
    loop {
        let mut stream = client
            .list_conntrack(pb::ListConntrackRequest {
                limit,
                stop_at_limit: true,
                continuation_token: token.clone(),
                ..Default::default()
            })
            .await?
            .into_inner();
        let mut next = String::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            entries += chunk.entries.len();
            if let Some(s) = chunk.summary {
                next = s.next_token;
            }
        }
        pages += 1;
        if next.is_empty() {
            return Ok((pages, entries));
        }
        token = next;
    }
}

/// TCP entries added to each conntrack table (the rest is UDP).
const TCP_ENTRIES: u32 = 20;

fn fill_conntrack(ns: &Netns, entries: u32) -> anyhow::Result<u64> {
    ns.run(&["conntrack", "-F"]).ok();
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
    // A few TCP entries among the UDP ones: a filter the kernel can test
    // (protocol=tcp) picks them out without sending the rest.
    for i in 0..TCP_ENTRIES {
        let sport = (30_000 + i).to_string();
        ns.run(&[
            "conntrack",
            "-I",
            "-t",
            "600",
            "-p",
            "tcp",
            "-s",
            "127.0.9.1",
            "-d",
            "127.0.9.2",
            "--sport",
            &sport,
            "--dport",
            "443",
            "--state",
            "ESTABLISHED",
            "-u",
            "SEEN_REPLY,ASSURED",
        ])?;
    }
    Ok(ns
        .run(&["cat", "/proc/sys/net/netfilter/nf_conntrack_count"])?
        .trim()
        .parse()?)
}

/// A memory cgroup holding the agent (cgroup v1 `memory` controller, or v2
/// where memory is enabled at the root); processes it forks join it.
struct MemCgroup {
    dir: std::path::PathBuf,
    v2: bool,
}

impl MemCgroup {
    fn enter(pid: u32) -> Option<Self> {
        let name = format!("labscope-bench-{}", std::process::id());
        let v1 = std::path::Path::new("/sys/fs/cgroup/memory");
        let (root, v2) = if v1.join("memory.max_usage_in_bytes").exists() {
            (v1.to_path_buf(), false)
        } else if std::fs::read_to_string("/sys/fs/cgroup/cgroup.subtree_control")
            .is_ok_and(|c| c.split_whitespace().any(|x| x == "memory"))
        {
            (std::path::PathBuf::from("/sys/fs/cgroup"), true)
        } else {
            return None;
        };
        let dir = root.join(name);
        std::fs::create_dir(&dir).ok()?;
        if std::fs::write(dir.join("cgroup.procs"), pid.to_string()).is_err() {
            let _ = std::fs::remove_dir(&dir);
            return None;
        }
        Some(MemCgroup { dir, v2 })
    }

    fn reset_peak(&self) {
        // v2's memory.peak is resettable from Linux 6.12; older kernels keep
        // the peak since the cgroup was made (the bursts then read cumulative).
        let _ = if self.v2 {
            std::fs::write(self.dir.join("memory.peak"), "reset")
        } else {
            std::fs::write(self.dir.join("memory.max_usage_in_bytes"), "0")
        };
    }

    fn peak_kib(&self) -> Option<u64> {
        let file = if self.v2 {
            "memory.peak"
        } else {
            "memory.max_usage_in_bytes"
        };
        let bytes: u64 = std::fs::read_to_string(self.dir.join(file))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        Some(bytes / 1024)
    }
}

impl Drop for MemCgroup {
    fn drop(&mut self) {
        if let (Some(parent), Ok(procs)) = (
            self.dir.parent(),
            std::fs::read_to_string(self.dir.join("cgroup.procs")),
        ) {
            for p in procs.lines() {
                let _ = std::fs::write(parent.join("cgroup.procs"), p);
            }
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn main() -> anyhow::Result<()> {
    let opts = parse_opts()?;
    anyhow::ensure!(
        nix::unistd::geteuid().is_root(),
        "bench-cli needs root (network namespaces, conntrack)"
    );
    let ns = Netns::new("lsbcli")?;
    for sysctl in [
        "net.netfilter.nf_conntrack_udp_timeout=600",
        "net.netfilter.nf_conntrack_max=262144",
    ] {
        ns.run(&["sysctl", "-qw", sysctl]).ok();
    }
    // Long probes: to an on-link address that never answers.
    ns.add_silent_address()?;
    let rules_file =
        std::env::temp_dir().join(format!("labscope-bench-cli-{}.rules", std::process::id()));
    std::fs::write(&rules_file, kube_proxy_rules(opts.rules))?;
    ns.run(&["iptables-restore", rules_file.to_str().unwrap_or_default()])?;
    let _ = std::fs::remove_file(&rules_file);
    let nat_rules = ns
        .run(&["iptables-save", "-t", "nat"])?
        .lines()
        .filter(|l| l.starts_with("-A"))
        .count();
    let wrap: Vec<String> = std::env::var("BENCH_AGENT_WRAP")
        .map(|w| w.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    let wrap: Vec<&str> = wrap.iter().map(String::as_str).collect();
    let agent_bin = match &opts.agent_bin {
        Some(path) => path.clone(),
        None => workspace_binary("labscope-agent")?,
    };
    let agent = AgentProcess::start_bin(
        &agent_bin,
        &ns,
        AGENT,
        &["--node-name", "bench", "--insecure-plaintext"],
        &wrap,
    )?;
    let pid = agent.pid();
    let agent_arg = format!("bench=http://{AGENT}");
    let aggregator_bin = match &opts.aggregator_bin {
        Some(path) => path.clone(),
        None => workspace_binary("labscope")?,
    };
    let server = Aggregator::start_bin(
        &aggregator_bin,
        Some(&ns.name),
        &["--agent", &agent_arg],
        &[],
    )?;
    let mcp_addr = server.addr.clone();
    // `ip netns exec` execs the aggregator under its own pid.
    let server_pid = server.pid();
    let labscope = aggregator_bin.display().to_string();
    let cli = |args: &[&str]| -> Vec<String> {
        let mut v = vec![
            labscope.clone(),
            "--agent".into(),
            format!("bench=http://{AGENT}"),
            "call".into(),
        ];
        v.extend(args.iter().map(|a| a.to_string()));
        v
    };
    let runs = opts.runs;
    println!("## Whole processes, same run, alternating (ABBA), {runs} runs per row: medians\n");
    println!("agent binary: {}\n", describe_binary(&agent_bin));
    println!(
        "aggregator binary (labscope serve and the CLI): {}\n",
        describe_binary(&aggregator_bin)
    );
    println!(
        "labscope CLI → real agent process over gRPC (as against the DaemonSet), output to /dev/null like the \
         standard tool's; agent CPU = user+system time of the agent over the row (10 ms ticks, median); \
         labscope serve CPU = the same of the aggregator process over an MCP row (the client is this benchmark, in-process).\n"
    );

    // --- agent memory around bursts of GetFirewall calls, on a fresh agent.
    println!(
        "### agent memory around 20 concurrent GetFirewall calls (nat and filter, IPv4 and IPv6), default caps\n"
    );
    // The agent in a memory cgroup of its own, as the DaemonSet's limit
    // counts it.
    let cgroup = MemCgroup::enter(pid);
    if cgroup.is_none() {
        println!("(no memory cgroup could be made here: the cgroup column is empty)\n");
    }
    println!(
        "| burst | RSS before | peak (VmHWM) | cgroup peak (agent) | 5 s after | of which anonymous | of which file (binary, libc) | refused (busy) | health answered during |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    std::thread::sleep(Duration::from_millis(500));
    for (label, limit, pings) in [
        ("pages of 200 (what the MCP tool asks)", 200u32, false),
        ("whole tables (no limit)", 0, false),
        (
            "whole tables + 20 pings of 2 s to a silent address",
            0,
            true,
        ),
    ] {
        std::fs::write(format!("/proc/{pid}/clear_refs"), "5")?;
        if let Some(cg) = &cgroup {
            cg.reset_peak();
        }
        let before = proc_status_kib(pid, "VmRSS");
        let before_anon = proc_status_kib(pid, "RssAnon");
        let (refused, healthy) = ns.block_on(move || async move {
            let mut calls = Vec::new();
            for i in 0..20 {
                calls.push(tokio::spawn(async move {
                    let mut client = connect(AGENT).await?;
                    let req = pb::GetFirewallRequest {
                        table: ["nat", "filter"][i % 2].into(),
                        ipv6: i % 4 == 3,
                        limit,
                        ..Default::default()
                    };
                    anyhow::Ok(client.get_firewall(req).await.err().map(|e| e.code()))
                }));
                if pings {
                    calls.push(tokio::spawn(async move {
                        let mut client = connect(AGENT).await?;
                        let req = pb::PingRequest {
                            target: SILENT_ADDR.into(),
                            count: 2,
                            interval_ms: 1000,
                            timeout_ms: 1000,
                        };
                        anyhow::Ok(client.ping(req).await.err().map(|e| e.code()))
                    }));
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            let channel = tonic::transport::Channel::from_static("http://127.0.0.1:9447")
                .connect()
                .await?;
            let healthy = tonic_health::pb::health_client::HealthClient::new(channel)
                .check(tonic_health::pb::HealthCheckRequest::default())
                .await
                .is_ok();
            let mut refused = 0;
            for c in calls {
                match c.await?? {
                    None => {}
                    Some(tonic::Code::ResourceExhausted) => refused += 1,
                    Some(other) => anyhow::bail!("a burst call failed: {other:?}"),
                }
            }
            Ok((refused, healthy))
        })?;
        let peak = proc_status_kib(pid, "VmHWM");
        let cgroup_peak = cgroup
            .as_ref()
            .and_then(MemCgroup::peak_kib)
            .map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
            .unwrap_or_default();
        std::thread::sleep(Duration::from_secs(5));
        let kib = |k: u64| format!("{:.1} MiB", k as f64 / 1024.0);
        println!(
            "| {label} | {} ({} anonymous) | {} | {cgroup_peak} | {} | {} | {} | {refused} | {} |",
            kib(before),
            kib(before_anon),
            kib(peak),
            kib(proc_status_kib(pid, "VmRSS")),
            kib(proc_status_kib(pid, "RssAnon")),
            kib(proc_status_kib(pid, "RssFile") + proc_status_kib(pid, "RssShmem")),
            if healthy { "yes" } else { "NO" },
        );
        // Past the sharing second, so the next burst reads again.
        std::thread::sleep(Duration::from_millis(1100));
    }
    println!(
        "\nThe read of each family stays cached (as iptables-save text, ~0.9 MiB for the nat table) up to 60 s \
         while the ruleset is unchanged.\n"
    );

    // --- conntrack, per table size.
    for &entries in &opts.entries {
        let count = fill_conntrack(&ns, entries)?;
        let page = cli(&["get_conntrack_entries", "node=bench"]);
        let filtered = cli(&[
            "get_conntrack_entries",
            "node=bench",
            "protocol=udp",
            "port=10007",
        ]);
        let tcp = cli(&["get_conntrack_entries", "node=bench", "protocol=tcp"]);
        let all_pages = cli(&["get_conntrack_entries", "node=bench", "limit=1000"]);
        let all_one = cli(&["get_conntrack_entries", "node=bench", "--all"]);
        let mcp_addr = mcp_addr.clone();
        let (samples, full) = ns.block_on(move || async move {
            let mut s = Samples::default();
            let mut full = (0usize, 0usize, 0usize, 0usize, 0usize);
            let mut mcp = KeepAlive::connect(&mcp_addr).await?;
            // (client, entries the replayed pages hold)
            let mut replayed: Option<(KeepAlive, usize)> = None;
            for run in 0..runs {
                let standard_first = run % 2 == 0;
                for turn in 0..2 {
                    if (turn == 0) == standard_first {
                        timed(&mut s, "conntrack -L", pid, || quiet(&["conntrack", "-L"]))?;
                        timed(&mut s, "conntrack -L -p udp --dport 10007", pid, || {
                            quiet(&["conntrack", "-L", "-p", "udp", "--dport", "10007"])
                        })?;
                        timed(&mut s, "conntrack -L -p tcp", pid, || {
                            quiet(&["conntrack", "-L", "-p", "tcp"])
                        })?;
                    } else {
                        let p: Vec<&str> = page.iter().map(String::as_str).collect();
                        timed(&mut s, "labscope default page (50)", pid, || quiet(&p))?;
                        let f: Vec<&str> = filtered.iter().map(String::as_str).collect();
                        timed(&mut s, "labscope filtered page", pid, || quiet(&f))?;
                        let t: Vec<&str> = tcp.iter().map(String::as_str).collect();
                        timed(&mut s, "labscope filtered page, protocol=tcp", pid, || {
                            quiet(&t)
                        })?;
                        timed(&mut s, "labscope full read, CLI per page", pid, || {
                            let (pages, items) = cli_pages(&all_pages, "entries")?;
                            full.0 = pages;
                            full.1 = items;
                            Ok(())
                        })?;
                        timed(
                            &mut s,
                            "labscope full read, CLI --all (one process)",
                            pid,
                            || {
                                // One summary line, then one line per entry.
                                full.4 = cli_all(&all_one)?.saturating_sub(1);
                                Ok(())
                            },
                        )?;
                        let cpu0 = cpu_time(pid);
                        let t = Instant::now();
                        let grpc = grpc_pages(1000).await?;
                        add(
                            &mut s,
                            "gRPC full read, pages of 1000",
                            t.elapsed(),
                            cpu_time(pid).saturating_sub(cpu0),
                        );
                        full.2 = grpc.0;
                        full.3 = grpc.1;
                        timed_mcp(
                            &mut s,
                            "MCP kept-alive default page (50)",
                            (pid, server_pid),
                            mcp.call("get_conntrack_entries", json!({"node": "bench"})),
                        )
                        .await?;
                        let (pages, items) = timed_mcp(
                            &mut s,
                            "MCP kept-alive full read, pages of 1000",
                            (pid, server_pid),
                            mcp_pages(
                                &mut mcp,
                                "get_conntrack_entries",
                                full_read_args(),
                                "entries",
                            ),
                        )
                        .await?;
                        anyhow::ensure!(
                            items + 100 >= full.3 && pages > 0,
                            "MCP full read: {items} entries"
                        );
                        // The same answers again from an endpoint that does
                        // no work: what the client costs by itself.
                        if replayed.is_none() {
                            mcp.start_recording();
                            let (recorded, _) = mcp
                                .all_pages("get_conntrack_entries", full_read_args(), "entries")
                                .await?;
                            let addr = replay(mcp.take_recording()).await?;
                            replayed = Some((KeepAlive::connect(&addr).await?, recorded.len()));
                        }
                        if let Some((client, recorded)) = replayed.as_mut() {
                            let (alone, _) = timed_mcp(
                                &mut s,
                                REPLAYED,
                                (pid, server_pid),
                                client.all_pages(
                                    "get_conntrack_entries",
                                    full_read_args(),
                                    "entries",
                                ),
                            )
                            .await?;
                            anyhow::ensure!(
                                alone.len() == *recorded,
                                "replayed read: {} entries of {recorded}",
                                alone.len()
                            );
                        }
                    }
                }
            }
            Ok((s, full))
        })?;
        let base = samples.median("conntrack -L").as_secs_f64().max(1e-9);
        println!("### conntrack, {count} entries\n");
        println!("| job | median | × conntrack -L | agent CPU | labscope serve CPU |");
        println!("|---|---|---|---|---|");
        for name in [
            "conntrack -L",
            "labscope default page (50)",
            "conntrack -L -p udp --dport 10007",
            "labscope filtered page",
            "conntrack -L -p tcp",
            "labscope filtered page, protocol=tcp",
            "labscope full read, CLI per page",
            "labscope full read, CLI --all (one process)",
            "MCP kept-alive default page (50)",
            "MCP kept-alive full read, pages of 1000",
            REPLAYED,
            "gRPC full read, pages of 1000",
        ] {
            println!(
                "| {name} | {} | {:.2} | {} | {} |",
                ms(samples.median(name)),
                samples.median(name).as_secs_f64() / base,
                ms(samples.cpu(name)),
                samples.server_cpu(name)
            );
        }
        println!(
            "\nfull reads: CLI {} pages / {} entries; CLI --all {} entries; gRPC {} pages / {} entries. Filtered page: \
             `protocol=udp port=10007` (a sparse filter the kernel cannot test: every UDP entry is read); \
             `protocol=tcp` picks the {TCP_ENTRIES} TCP entries, tested by the kernel while it walks the table.\n",
            full.0, full.1, full.4, full.2, full.3
        );
    }

    // --- iptables nat table.
    let first = cli(&["get_iptables_rules", "node=bench", "table=nat"]);
    let paged = cli(&[
        "get_iptables_rules",
        "node=bench",
        "table=nat",
        "limit=2000",
    ]);
    let whole = cli(&["get_iptables_rules", "node=bench", "table=nat", "--all"]);
    let (samples, pages) = ns.block_on(move || async move {
        let mut s = Samples::default();
        let mut pages = (0usize, 0usize);
        let mut mcp = KeepAlive::connect(&mcp_addr).await?;
        for run in 0..runs {
            let standard_first = run % 2 == 0;
            for turn in 0..2 {
                if (turn == 0) == standard_first {
                    timed(&mut s, "iptables-save -c", pid, || {
                        quiet(&["iptables-save", "-c"])
                    })?;
                    timed(&mut s, "iptables-save -c -t nat", pid, || {
                        quiet(&["iptables-save", "-c", "-t", "nat"])
                    })?;
                } else {
                    // Past the one-second sharing window: a new read.
                    tokio::time::sleep(Duration::from_millis(1100)).await;
                    let f: Vec<&str> = first.iter().map(String::as_str).collect();
                    timed(&mut s, "labscope first page (200)", pid, || quiet(&f))?;
                    tokio::time::sleep(Duration::from_millis(1100)).await;
                    timed(&mut s, "labscope whole table, pages of 2000", pid, || {
                        pages = cli_pages(&paged, "rules")?;
                        Ok(())
                    })?;
                    tokio::time::sleep(Duration::from_millis(1100)).await;
                    timed(
                        &mut s,
                        "labscope whole table, CLI --all (one process)",
                        pid,
                        || {
                            let lines = cli_all(&whole)?;
                            anyhow::ensure!(
                                lines >= pages.1,
                                "--all printed {lines} lines for {} rules",
                                pages.1
                            );
                            Ok(())
                        },
                    )?;
                    tokio::time::sleep(Duration::from_millis(1100)).await;
                    let (_, rules) = timed_mcp(
                        &mut s,
                        "MCP kept-alive whole table, pages of 2000",
                        (pid, server_pid),
                        mcp_pages(
                            &mut mcp,
                            "get_iptables_rules",
                            json!({"node": "bench", "table": "nat", "limit": 2000}),
                            "rules",
                        ),
                    )
                    .await?;
                    anyhow::ensure!(
                        rules == pages.1,
                        "MCP read {rules} rules, the CLI {}",
                        pages.1
                    );
                    tokio::time::sleep(Duration::from_millis(1100)).await;
                    let cpu0 = cpu_time(pid);
                    let t = Instant::now();
                    let rules = grpc_rule_pages(0).await?;
                    add(
                        &mut s,
                        "gRPC whole table, one answer",
                        t.elapsed(),
                        cpu_time(pid).saturating_sub(cpu0),
                    );
                    anyhow::ensure!(
                        rules == pages.1,
                        "gRPC read {rules} rules, the CLI {}",
                        pages.1
                    );
                    tokio::time::sleep(Duration::from_millis(1100)).await;
                    let cpu0 = cpu_time(pid);
                    let t = Instant::now();
                    let rules = grpc_rule_pages(2000).await?;
                    add(
                        &mut s,
                        "gRPC whole table, pages of 2000",
                        t.elapsed(),
                        cpu_time(pid).saturating_sub(cpu0),
                    );
                    anyhow::ensure!(
                        rules == pages.1,
                        "gRPC read {rules} rules, the CLI {}",
                        pages.1
                    );
                }
            }
        }
        Ok((s, pages))
    })?;
    let base = samples.median("iptables-save -c").as_secs_f64().max(1e-9);
    let base_nat = samples
        .median("iptables-save -c -t nat")
        .as_secs_f64()
        .max(1e-9);
    println!("### iptables, nat table of {nat_rules} rules\n");
    println!(
        "| job | median | × iptables-save -c | × iptables-save -c -t nat | agent CPU | labscope serve CPU |"
    );
    println!("|---|---|---|---|---|---|");
    for name in [
        "iptables-save -c",
        "iptables-save -c -t nat",
        "labscope first page (200)",
        "labscope whole table, pages of 2000",
        "labscope whole table, CLI --all (one process)",
        "MCP kept-alive whole table, pages of 2000",
        "gRPC whole table, one answer",
        "gRPC whole table, pages of 2000",
    ] {
        let m = samples.median(name).as_secs_f64();
        println!(
            "| {name} | {} | {:.2} | {:.2} | {} | {} |",
            ms(samples.median(name)),
            m / base,
            m / base_nat,
            ms(samples.cpu(name)),
            samples.server_cpu(name)
        );
    }
    println!(
        "\nwhole table: {} pages, {} rules, one `labscope call` process per page.\n",
        pages.0, pages.1
    );
    let kib = |k: u64| format!("{:.1} MiB", k as f64 / 1024.0);
    let spid = server.pid();
    let right_after = proc_status_kib(spid, "VmRSS");
    std::thread::sleep(Duration::from_secs(5));
    println!(
        "aggregator (`labscope serve`, one kept-alive MCP session through every MCP row above): peak {}, \
         RSS right after the last call {}, 5 s after {}\n",
        kib(proc_status_kib(spid, "VmHWM")),
        kib(right_after),
        kib(proc_status_kib(spid, "VmRSS")),
    );

    drop(server);
    drop(agent);
    Ok(())
}
