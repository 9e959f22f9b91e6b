//! `get_dns_status` as a client feels it: a whole `labscope serve --http`
//! process configured for two fake Pi-hole v6 instances and the fake
//! homelab API, called through a kept-alive connection (`KeepAlive`). Reports
//! the first call (which logs in) and the median / p90 of warm calls (the
//! session reused), and the logins each Pi-hole saw under 20 concurrent
//! calls from 20 clients on a fresh aggregator, against the same 20 calls
//! made the way the predecessor made them (a login per call, `--naive`
//! rows: 20 POST /api/auth straight at the fake). Prints Markdown.
//!
//! `cargo run --release -p labscope-tests --bin bench-dns -- [--calls N]`

use std::time::Instant;

use labscope_tests::bench::{ms, percentile};
use labscope_tests::fake_kube::FakeKube;
use labscope_tests::fake_pihole::{FakePihole, PiholeOptions};
use labscope_tests::homelab::homelab;
use labscope_tests::mcp::{Aggregator, KeepAlive};
use serde_json::json;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut calls = 200usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--calls" => calls = args.next().and_then(|n| n.parse().ok()).unwrap_or(calls),
            other => anyhow::bail!("unknown argument {other} (--calls N)"),
        }
    }
    let dir = tempfile::tempdir()?;
    let fake = FakeKube::start(homelab(&[])?).await?;
    let kubeconfig = fake.write_kubeconfig(dir.path())?;
    let start = |dir: &std::path::Path,
                 p: &FakePihole,
                 s: &FakePihole|
     -> anyhow::Result<Aggregator> {
        let pw = dir.join("pw");
        std::fs::write(&pw, PiholeOptions::default().password)?;
        let config = dir.join("labscope.toml");
        std::fs::write(
            &config,
            format!(
                "[pihole.primary]\nurl = \"{}\"\npassword_file = \"{}\"\n[pihole.secondary]\nurl = \"{}\"\npassword_file = \"{}\"\n",
                p.url,
                pw.display(),
                s.url,
                pw.display()
            ),
        )?;
        Aggregator::start(
            None,
            &[
                "--kubeconfig",
                &kubeconfig.display().to_string(),
                "--config",
                &config.display().to_string(),
            ],
            &[],
        )
    };

    // Warm-session latency.
    let p = FakePihole::start(PiholeOptions::default()).await?;
    let s = FakePihole::start(PiholeOptions::default()).await?;
    let agg = start(dir.path(), &p, &s)?;
    let mut client = KeepAlive::connect(&agg.addr).await?;
    let t = Instant::now();
    let first = client.call("get_dns_status", json!({})).await?;
    let cold = t.elapsed();
    anyhow::ensure!(
        first["structuredContent"]["verdict"] == "healthy",
        "get_dns_status is not healthy: {first}"
    );
    let mut warm = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        client.call("get_dns_status", json!({})).await?;
        warm.push(t.elapsed());
    }
    let logins_warm = (p.logins(), s.logins());
    client.end().await?;
    drop(agg);

    // 20 concurrent calls on a fresh aggregator (fresh Pi-holes).
    let p2 = FakePihole::start(PiholeOptions::default()).await?;
    let s2 = FakePihole::start(PiholeOptions::default()).await?;
    let dir2 = tempfile::tempdir()?;
    let agg2 = start(dir2.path(), &p2, &s2)?;
    let mut clients = Vec::new();
    for _ in 0..20 {
        clients.push(KeepAlive::connect(&agg2.addr).await?);
    }
    let t = Instant::now();
    let results = futures::future::join_all(
        clients
            .iter_mut()
            .map(|c| c.call("get_dns_status", json!({}))),
    )
    .await;
    let burst = t.elapsed();
    let healthy = results
        .iter()
        .filter(|r| {
            r.as_ref()
                .is_ok_and(|v| v["structuredContent"]["verdict"] == "healthy")
        })
        .count();

    // The predecessor's way: a login per call, 20 at once, at a fresh Pi-hole
    // with the default limiter (more than 2 logins a second trips it).
    let naive = FakePihole::start(PiholeOptions::default()).await?;
    let http = reqwest_free_logins(&naive.url, 20).await?;

    println!("| measure | value |");
    println!("|---|---|");
    println!("| first call (logs in to both Pi-holes) | {} |", ms(cold));
    println!(
        "| warm calls, median / p90 ({calls} calls, one kept-alive connection) | {} / {} |",
        ms(percentile(&warm, 0.5)),
        ms(percentile(&warm, 0.9))
    );
    println!(
        "| logins after {} calls (primary, secondary) | {}, {} |",
        calls + 1,
        logins_warm.0,
        logins_warm.1
    );
    println!(
        "| 20 concurrent calls, 20 clients, fresh aggregator: logins (primary, secondary) | {}, {} |",
        p2.logins(),
        s2.logins()
    );
    println!(
        "| … of which healthy / wall time | {healthy} of 20 / {} |",
        ms(burst)
    );
    println!(
        "| predecessor's way: 20 parallel logins at a fresh Pi-hole → accepted / rate limited | {} / {} |",
        http.0, http.1
    );
    Ok(())
}

/// 20 parallel `POST /api/auth` (one per call, as the predecessor did):
/// (accepted, refused with 429).
async fn reqwest_free_logins(base: &str, n: usize) -> anyhow::Result<(usize, usize)> {
    let addr = base.trim_start_matches("http://").to_string();
    let body = json!({"password": PiholeOptions::default().password}).to_string();
    let tasks = (0..n).map(|_| {
        let addr = addr.clone();
        let body = body.clone();
        async move {
            let req = format!(
                "POST /api/auth HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            tokio::task::spawn_blocking(move || labscope_tests::mcp::http_raw(&addr, &req))
                .await
                .ok()
                .and_then(Result::ok)
                .map(|(status, _, _)| status)
        }
    });
    let statuses = futures::future::join_all(tasks).await;
    let ok = statuses.iter().filter(|s| **s == Some(200)).count();
    let limited = statuses.iter().filter(|s| **s == Some(429)).count();
    Ok((ok, limited))
}
