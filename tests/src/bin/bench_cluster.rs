//! Cluster-check benchmark: `get_cluster_health` through `labscope serve
//! --http` (a separate process, Streamable HTTP client) against the fake
//! Kubernetes API serving the homelab fixture, and the same fixture scaled
//! 25× (100 nodes, 2,000 pods). Reports median latency, the aggregator's peak
//! RSS, and how many API requests one call makes (counted by the fake): the
//! first call, which also reads API discovery (cached 30 s), and the others.
//!
//! `cargo run --release -p labscope-tests --bin bench-cluster -- [--calls N]`
//!
//! The fixture is the whole homelab of HOMELAB.md (`labscope_tests::homelab`):
//! 4 nodes, ~110 pods, 38 Kustomizations, 7 HelmReleases, 56 ExternalSecrets,
//! 31 certificates, image automation, Tailscale. ×25 copies every node and
//! pod (names suffixed) and keeps the cluster-level objects once.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use labscope_tests::bench::{ms, percentile, proc_status_kib};
use labscope_tests::fake_kube::{FakeKube, Fixture};
use labscope_tests::homelab::homelab;
use labscope_tests::mcp::Aggregator;
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use serde_json::Value;

/// The homelab with every node and pod copied `scale` times.
fn fixture(scale: usize) -> anyhow::Result<Fixture> {
    let base = homelab(&[])?;
    let mut f = base.clone();
    for copy in 1..scale {
        let rename = |v: &Value| format!("{}-{copy}", v.as_str().unwrap_or_default());
        for n in &base.nodes {
            let mut n = n.clone();
            n["metadata"]["name"] = Value::String(rename(&n["metadata"]["name"]));
            f.nodes.push(n);
        }
        for p in &base.pods {
            let mut p = p.clone();
            p["metadata"]["name"] = Value::String(rename(&p["metadata"]["name"]));
            p["spec"]["nodeName"] = Value::String(rename(&p["spec"]["nodeName"]));
            f.pods.push(p);
        }
    }
    Ok(f)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut calls = 15usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--calls" => calls = args.next().context("--calls N")?.parse()?,
            "-h" | "--help" => {
                println!("bench-cluster [--calls N (15)]");
                return Ok(());
            }
            other => anyhow::bail!("unknown argument {other:?}"),
        }
    }
    println!("## Cluster checks: get_cluster_health\n");
    println!(
        "| fixture | nodes | pods | median | p90 | API requests per call | first call (discovery cold) | aggregator peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for scale in [1usize, 25] {
        let f = fixture(scale)?;
        let (n_nodes, n_pods) = (f.nodes.len(), f.pods.len());
        let fake = FakeKube::start(f).await?;
        let dir = tempfile::tempdir()?;
        let kc = fake.write_kubeconfig(dir.path())?;
        let kc = kc.to_string_lossy().into_owned();
        let agg = Aggregator::start(
            None,
            &["--kubeconfig", &kc, "--now", "2026-08-20T06:07:00Z"],
            &[],
        )?;
        let client = ().serve(StreamableHttpClientTransport::from_uri(agg.url.clone())).await?;
        let p = CallToolRequestParams::new("get_cluster_health");
        let cold = fake.requests.load(Ordering::Relaxed);
        client.call_tool(p.clone()).await?;
        let before = fake.requests.load(Ordering::Relaxed);
        let first = before - cold;
        let mut times: Vec<Duration> = Vec::new();
        for _ in 0..calls {
            let t = Instant::now();
            let r = client.call_tool(p.clone()).await?;
            times.push(t.elapsed());
            anyhow::ensure!(
                r.is_error != Some(true),
                "get_cluster_health failed: {:?}",
                r.structured_content
            );
        }
        let per_call = (fake.requests.load(Ordering::Relaxed) - before) as f64 / calls as f64;
        let peak = proc_status_kib(agg.pid(), "VmHWM");
        client.cancel().await?;
        println!(
            "| {} | {n_nodes} | {n_pods} | {} | {} | {per_call:.0} | {first} | {:.1} MiB |",
            if scale == 1 {
                "homelab".to_string()
            } else {
                format!("homelab ×{scale}")
            },
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.9)),
            peak as f64 / 1024.0
        );
    }
    Ok(())
}
