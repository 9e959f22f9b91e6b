//! Aggregator benchmark: MCP round trips through `labscope serve --http` and
//! a real agent process on loopback; cluster-wide fan-out (`list_nodes`)
//! against 100 agent processes and against 100 and 500 in-process agents
//! (each a real tonic server on its own loopback port inside this benchmark
//! process); and the size of tools/list.
//! Prints Markdown for BENCHMARKS.md. Needs no root.
//!
//! `cargo run --release -p labscope-tests --bin bench-mcp -- [--calls N] [--fanout 100,500] [--fanout-processes 100]`

use std::time::{Duration, Instant};

use anyhow::Context;
use labscope_tests::bench::{ms, percentile, proc_status_kib};
use labscope_tests::mcp::{Aggregator, KeepAlive};
use labscope_tests::workspace_binary;
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use serde_json::json;

fn pct(v: &mut [Duration], p: f64) -> Duration {
    percentile(v, p)
}

/// `labscope_mcp_sessions` from /metrics, when exported.
fn agg_sessions(mcp_url: &str) -> Option<String> {
    let addr = mcp_url.strip_prefix("http://")?.strip_suffix("/mcp")?;
    let (_, _, body) = labscope_tests::mcp::http_raw(
        addr,
        &format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
    .ok()?;
    body.lines()
        .find(|l| l.starts_with("labscope_mcp_sessions "))
        .and_then(|l| l.split_whitespace().nth(1))
        .map(str::to_string)
}

fn vm_kib(pid: u32, key: &str) -> u64 {
    proc_status_kib(pid, key)
}

/// Kills a child process when dropped.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One fan-out row: an aggregator over `specs`, 15 timed `list_nodes` after
/// a warm-up that must reach every agent.
async fn fanout_row(
    bin: &std::path::Path,
    n: usize,
    label: &str,
    specs: &[String],
) -> anyhow::Result<()> {
    let mut argv: Vec<String> = Vec::new();
    for s in specs {
        argv.push("--agent".into());
        argv.push(s.clone());
    }
    argv.extend([
        "--fanout-concurrency".into(),
        "64".into(),
        "--agent-deadline-ms".into(),
        "10000".into(),
    ]);
    let argv_ref: Vec<&str> = argv.iter().map(String::as_str).collect();
    let agg = Aggregator::start_bin(bin, None, &argv_ref, &[])?;
    let pid = agg.pid();
    let idle = vm_kib(pid, "VmRSS");
    let client = ().serve(StreamableHttpClientTransport::from_uri(agg.url.clone())).await?;
    let p = CallToolRequestParams::new("list_nodes");
    let warm = client.call_tool(p.clone()).await?;
    let ok = warm
        .structured_content
        .as_ref()
        .and_then(|v| v["summary"]["agentsOk"].as_u64())
        .unwrap_or(0);
    anyhow::ensure!(ok as usize == n, "only {ok} of {n} agents answered");
    let mut times = Vec::new();
    for _ in 0..15 {
        let t = Instant::now();
        client.call_tool(p.clone()).await?;
        times.push(t.elapsed());
    }
    let peak = vm_kib(pid, "VmHWM");
    client.cancel().await?;
    drop(agg);
    println!(
        "| {n} | {label} | {} | {} | {:.1} MiB | {:.1} MiB |",
        ms(pct(&mut times, 0.5)),
        ms(pct(&mut times, 0.9)),
        peak as f64 / 1024.0,
        idle as f64 / 1024.0
    );
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut calls = 300usize;
    let mut fanouts = vec![100usize, 500];
    let mut processes = vec![100usize];
    let mut aggregator_bin = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--calls" => calls = args.next().context("--calls N")?.parse()?,
            "--fanout" => {
                fanouts = args
                    .next()
                    .context("--fanout 100,500")?
                    .split(',')
                    .map(|x| x.parse())
                    .collect::<Result<_, _>>()?
            }
            "--fanout-processes" => {
                processes = args
                    .next()
                    .context("--fanout-processes 100")?
                    .split(',')
                    .filter(|x| !x.is_empty())
                    .map(|x| x.parse())
                    .collect::<Result<_, _>>()?
            }
            "--aggregator-bin" => {
                aggregator_bin = Some(std::path::PathBuf::from(
                    args.next().context("--aggregator-bin PATH")?,
                ))
            }
            "-h" | "--help" => {
                println!(
                    "bench-mcp [--calls N (300)] [--fanout 100,500 (in-process agents)] [--fanout-processes 100 (agent processes; \"\" for none)] [--aggregator-bin PATH (labscope serve; default: target/…/labscope)]"
                );
                return Ok(());
            }
            other => anyhow::bail!("unknown argument {other:?}"),
        }
    }
    let aggregator_bin = match aggregator_bin {
        Some(path) => path,
        None => workspace_binary("labscope")?,
    };
    let tokio_handle = tokio::runtime::Handle::current();

    // 1. Round trip: MCP client → labscope (HTTP) → labscope-agent process (gRPC), loopback.
    let agent_bin = workspace_binary("labscope-agent")?;
    let agent_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let mut agent = std::process::Command::new(&agent_bin)
        .args([
            "--listen",
            &format!("127.0.0.1:{agent_port}"),
            "--node-name",
            "bench",
        ])
        .stderr(std::process::Stdio::null())
        .spawn()?;
    std::thread::sleep(Duration::from_millis(300));
    let agg = Aggregator::start_bin(
        &aggregator_bin,
        None,
        &["--agent", &format!("bench=http://127.0.0.1:{agent_port}")],
        &[],
    )?;
    let client = ().serve(StreamableHttpClientTransport::from_uri(agg.url.clone())).await?;
    let tools = client.list_all_tools().await?;
    let params = CallToolRequestParams::new("get_node_networking").with_arguments(
        json!({"node": "bench"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    );
    for _ in 0..20 {
        client.call_tool(params.clone()).await?;
    }
    let mut rtt = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        let r = client.call_tool(params.clone()).await?;
        rtt.push(t.elapsed());
        anyhow::ensure!(
            r.is_error != Some(true),
            "get_node_networking failed: {:?}",
            r.structured_content
        );
    }
    client.cancel().await?;
    // The same call over one kept-alive HTTP/1.1 connection, as the official
    // SDKs' pooled clients make it.
    let mut keep = KeepAlive::connect(&agg.addr).await?;
    let args = json!({"node": "bench"});
    for _ in 0..20 {
        keep.call("get_node_networking", args.clone()).await?;
    }
    let mut kept = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        let r = keep.call("get_node_networking", args.clone()).await?;
        kept.push(t.elapsed());
        anyhow::ensure!(r["isError"] != true, "get_node_networking failed: {r}");
    }
    drop(keep);
    drop(agg);
    let _ = agent.kill();
    let _ = agent.wait();

    println!("## Aggregator benchmark\n");
    println!(
        "### MCP round trip (Streamable HTTP on loopback → labscope → labscope-agent process, gRPC on loopback)\n"
    );
    println!("| call | calls | median | p99 |");
    println!("|---|---|---|---|");
    println!(
        "| get_node_networking (all sections, main table), rmcp client | {calls} | {} | {} |",
        ms(pct(&mut rtt, 0.5)),
        ms(pct(&mut rtt, 0.99))
    );
    println!(
        "| the same, one kept-alive connection | {calls} | {} | {} |\n",
        ms(pct(&mut kept, 0.5)),
        ms(pct(&mut kept, 0.99))
    );

    // 2. Fan-out scale: the same list_nodes against agents as separate
    // processes (as on a cluster: each agent its own runtime and scheduler
    // slot) and as in-process tonic servers, in the same run.
    println!(
        "### Fan-out: list_nodes against N agents (agent processes, each `labscope-agent` on its own loopback port; in-process: one tonic server per loopback port inside the benchmark process)\n"
    );
    println!("| agents | as | median | p90 | aggregator peak RSS | aggregator RSS idle |");
    println!("|---|---|---|---|---|---|");
    for &n in &processes {
        let mut children = Vec::new();
        let mut specs = Vec::new();
        for i in 0..n {
            let port = std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port();
            let name = format!("node-{i:03}");
            children.push(KillOnDrop(
                std::process::Command::new(&agent_bin)
                    .args([
                        "--listen",
                        &format!("127.0.0.1:{port}"),
                        "--node-name",
                        &name,
                    ])
                    .stderr(std::process::Stdio::null())
                    .spawn()?,
            ));
            specs.push(format!("{name}=http://127.0.0.1:{port}"));
        }
        for spec in &specs {
            let addr = spec.rsplit("//").next().unwrap_or_default();
            let deadline = Instant::now() + Duration::from_secs(20);
            while std::net::TcpStream::connect(addr).is_err() {
                anyhow::ensure!(Instant::now() < deadline, "agent {spec} did not listen");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        fanout_row(&aggregator_bin, n, "processes", &specs).await?;
        drop(children);
    }
    for n in fanouts {
        let mut specs = Vec::new();
        let mut shutdowns = Vec::new();
        for i in 0..n {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let port = listener.local_addr()?.port();
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            shutdowns.push(tx);
            let name = format!("node-{i:03}");
            tokio_handle.spawn(labscope_agent::server::serve_listener(
                listener,
                labscope_agent::server::Options::new(name.clone()),
                async move {
                    let _ = rx.await;
                },
            ));
            specs.push(format!("{name}=http://127.0.0.1:{port}"));
        }
        fanout_row(&aggregator_bin, n, "in-process", &specs).await?;
        for s in shutdowns {
            let _ = s.send(());
        }
    }

    // 3. Abandoned sessions: clients that initialize and never delete their
    // session. With the cap the server keeps at most --max-sessions of them.
    println!(
        "\n### Abandoned MCP sessions (2,000 clients initialize and go away without DELETE)\n"
    );
    println!(
        "| --max-sessions | RSS idle | RSS after | sessions kept | list_nodes answers after |"
    );
    println!("|---|---|---|---|---|");
    for cap in ["200", "100000"] {
        let agg = Aggregator::start_bin(&aggregator_bin, None, &["--max-sessions", cap], &[])?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let idle = vm_kib(agg.pid(), "VmRSS");
        for _ in 0..2000 {
            let s = KeepAlive::connect(&agg.addr).await?;
            drop(s);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = vm_kib(agg.pid(), "VmRSS");
        let mut probe = KeepAlive::connect(&agg.addr).await?;
        let ok = probe.call("list_nodes", json!({})).await?["structuredContent"]["summary"]["agentsOk"]
            == 1;
        let kept = agg_sessions(&agg.url).unwrap_or_default();
        println!(
            "| {cap} | {:.1} MiB | {:.1} MiB | {kept} | {} |",
            idle as f64 / 1024.0,
            after as f64 / 1024.0,
            if ok { "yes" } else { "NO" }
        );
    }

    // 4. tools/list size: what a client loads into the model's context, in
    // bytes and in real tokens, for the default local-mode list (node tools)
    // and for every toolset.
    let all_agg = Aggregator::start_bin(
        &aggregator_bin,
        None,
        &[
            "--agent",
            &format!("bench=http://127.0.0.1:{agent_port}"),
            "--toolsets",
            "all",
        ],
        &[],
    )?;
    let all_client = ().serve(StreamableHttpClientTransport::from_uri(all_agg.url.clone())).await?;
    let all_tools = all_client.list_all_tools().await?;
    all_client.cancel().await?;
    drop(all_agg);
    let cl100k = tiktoken_rs::cl100k_base()?;
    let o200k = tiktoken_rs::o200k_base()?;
    let measure = |label: &str, json: String, count: usize| {
        let (c, o) = (
            cl100k.encode_with_special_tokens(&json).len(),
            o200k.encode_with_special_tokens(&json).len(),
        );
        println!(
            "| {label} | {count} | {} | {:.1} | {c} | {o} | {:.1} |",
            json.len(),
            json.len() as f64 / count as f64,
            c as f64 / count as f64
        );
    };
    let visible = |tools: &[rmcp::model::Tool]| {
        let v: Vec<serde_json::Value> = tools
            .iter()
            .map(|t| {
                json!({"name": t.name, "title": t.title, "description": t.description,
                    "inputSchema": t.input_schema, "annotations": t.annotations})
            })
            .collect();
        serde_json::to_string(&v).unwrap_or_default()
    };
    let outputs = |tools: &[rmcp::model::Tool]| {
        let v: Vec<_> = tools.iter().map(|t| &t.output_schema).collect();
        serde_json::to_string(&v).unwrap_or_default()
    };
    println!("\n### tools/list\n");
    println!("| part | tools | bytes | bytes/tool | tokens cl100k | tokens o200k | cl100k/tool |");
    println!("|---|---|---|---|---|---|---|");
    measure(
        "model-visible, local mode (node)",
        visible(&tools),
        tools.len(),
    );
    measure(
        "model-visible, all toolsets",
        visible(&all_tools),
        all_tools.len(),
    );
    measure(
        "output schemas, all toolsets",
        outputs(&all_tools),
        all_tools.len(),
    );
    measure(
        "whole tools/list, all toolsets",
        serde_json::to_string(&json!({"tools": all_tools}))?,
        all_tools.len(),
    );
    Ok(())
}
