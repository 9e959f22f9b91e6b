//! Cluster-check benchmark: `get_cluster_health` through `labscope serve
//! --http` (a separate process, Streamable HTTP client) against the fake
//! Kubernetes API serving the homelab fixture, and the same fixture scaled
//! 25× (100 nodes, 2,000 pods). Reports median latency, the aggregator's peak
//! RSS, and how many API requests one call makes (counted by the fake).
//!
//! `cargo run --release -p labscope-tests --bin bench-cluster -- [--calls N]`
//!
//! What the fixture holds today: nodes, pods, 31 certificates, 56
//! ExternalSecrets and their store, the Tailscale objects. Flux objects are
//! not in the fixture yet, so the call does not read them.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use labscope_tests::bench::{ms, percentile, proc_status_kib};
use labscope_tests::fake_kube::{
    FakeKube, Fixture, completed_job_pod, homelab_certificates, homelab_eso, homelab_nodes,
    homelab_tailscale, pihole_pods, running_pod,
};
use labscope_tests::mcp::Aggregator;
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use serde_json::Value;

/// The fixture with `scale` copies of every node and ~80 pods per copy.
fn fixture(scale: usize) -> Fixture {
    let mut nodes = Vec::new();
    let mut pods = Vec::new();
    for copy in 0..scale {
        for mut n in homelab_nodes() {
            if copy > 0 {
                let name = format!("{}-{copy}", n["metadata"]["name"].as_str().unwrap_or(""));
                n["metadata"]["name"] = Value::String(name);
            }
            nodes.push(n);
        }
        let node = |i: usize| {
            let base = ["pi-k3s", "pi5-worker-1", "pi5-worker-2", "pi3-worker-2"][i % 4];
            if copy == 0 {
                base.to_string()
            } else {
                format!("{base}-{copy}")
            }
        };
        for mut p in pihole_pods() {
            let name = format!("{}-{copy}", p["metadata"]["name"].as_str().unwrap_or(""));
            p["metadata"]["name"] = Value::String(name);
            pods.push(p);
        }
        for i in 0..60 {
            pods.push(running_pod(
                &format!("app{}", i % 29),
                &format!("app-{copy}-{i}-5d8f7c9b6d-a1b2c"),
                &format!("app{i}"),
                &node(i),
            ));
        }
        for i in 0..7 {
            pods.push(completed_job_pod(
                "backup-jobs",
                &format!("backup-{copy}-{i}-29786340"),
                &node(i),
            ));
        }
    }
    let (ts_objects, ts_pods) = homelab_tailscale(false);
    pods.extend(ts_pods);
    let mut objects = ts_objects;
    objects.extend(homelab_certificates());
    objects.extend(homelab_eso("v1"));
    let groups = [
        ("cert-manager.io", "v1"),
        ("acme.cert-manager.io", "v1"),
        ("external-secrets.io", "v1"),
        ("tailscale.com", "v1alpha1"),
    ]
    .iter()
    .map(|(g, v)| (g.to_string(), vec![v.to_string()]))
    .collect();
    Fixture {
        nodes,
        pods,
        groups,
        objects,
        ..Default::default()
    }
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
        "| fixture | nodes | pods | median | p90 | API requests per call | aggregator peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|");
    for scale in [1usize, 25] {
        let f = fixture(scale);
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
        client.call_tool(p.clone()).await?;
        let before = fake.requests.load(Ordering::Relaxed);
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
            "| {} | {n_nodes} | {n_pods} | {} | {} | {per_call:.0} | {:.1} MiB |",
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
