//! The whole nat table through gRPC from one or more agents already running
//! in this network namespace, alternating with `iptables-save -c -t nat`:
//! how BENCHMARKS.md compares two agent builds in the same minutes (this
//! machine's speed moves more between runs than a change does). Each agent
//! is asked in turn (the order reversed every run), each ask spaced 1.1 s
//! after the one before (past the agent's one-second sharing of reads), a
//! fresh connection per ask. `LIMIT=N` asks in pages of N instead of one
//! answer. Prints medians and their ratio to iptables-save's.
//!
//! `ip netns exec NS target/release/examples/firewall_grpc_ab RUNS ADDR [ADDR…]`
//! (e.g. two agents started with `--listen 127.0.0.1:9447` and `:9448`).

use std::time::{Duration, Instant};

use labscope_proto::v1 as pb;
use pb::node_agent_client::NodeAgentClient;

/// Reads the whole nat table from `addr`; returns the rules read.
async fn whole_table(addr: &str, limit: u32) -> Result<usize, Box<dyn std::error::Error>> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let mut client = NodeAgentClient::new(channel).max_decoding_message_size(64 << 20);
    let (mut offset, mut snapshot, mut rules) = (0u32, String::new(), 0usize);
    loop {
        let request = pb::GetFirewallRequest {
            table: "nat".into(),
            offset,
            limit,
            snapshot: snapshot.clone(),
            ..Default::default()
        };
        let fw = client.get_firewall(request).await?.into_inner();
        let got = fw.chains.iter().map(|c| c.rules.len()).sum::<usize>();
        rules += got;
        offset += got as u32;
        snapshot = fw.snapshot;
        if offset >= fw.total_rules || got == 0 {
            return Ok(rules);
        }
    }
}

fn median(v: &mut [Duration]) -> f64 {
    v.sort();
    v.get(v.len() / 2).map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let runs: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(7);
    let addrs: Vec<String> = args.collect();
    if addrs.is_empty() {
        return Err("usage: firewall_grpc_ab RUNS ADDR [ADDR…]".into());
    }
    let limit = std::env::var("LIMIT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut grpc: Vec<Vec<Duration>> = vec![Vec::new(); addrs.len()];
    let mut save = Vec::new();
    for run in 0..runs {
        for turn in 0..addrs.len() {
            let k = if run % 2 == 0 {
                turn
            } else {
                addrs.len() - 1 - turn
            };
            tokio::time::sleep(Duration::from_millis(1100)).await;
            let t = Instant::now();
            let rules = whole_table(&addrs[k], limit).await?;
            grpc[k].push(t.elapsed());
            if rules == 0 {
                return Err(format!("{} answered no nat rule", addrs[k]).into());
            }
            let t = Instant::now();
            let status = std::process::Command::new("iptables-save")
                .args(["-c", "-t", "nat"])
                .stdout(std::process::Stdio::null())
                .status()?;
            if !status.success() {
                return Err(format!("iptables-save: {status}").into());
            }
            save.push(t.elapsed());
        }
    }
    let save = median(&mut save);
    print!("iptables-save -c -t nat {save:.2} ms");
    for (addr, times) in addrs.iter().zip(&mut grpc) {
        let m = median(times);
        print!(" | {addr} {m:.2} ms ({:.3}×)", m / save);
    }
    println!();
    Ok(())
}
