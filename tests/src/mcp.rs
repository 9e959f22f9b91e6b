//! MCP helpers for tests: start `labscope serve --http` as a child process
//! and learn its port, talk raw HTTP to it, and unpack tool results.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rmcp::model::CallToolResult;
use serde_json::Value;

use crate::workspace_binary;

/// A running `labscope serve --http` child; killed on drop.
pub struct Aggregator {
    child: Child,
    /// `http://127.0.0.1:PORT/mcp`.
    pub url: String,
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

impl Aggregator {
    /// Starts `labscope serve --http 127.0.0.1:0 <args>` (optionally inside
    /// a namespace through `ip netns exec`) with `env`, and waits for its
    /// "listening on" line.
    pub fn start(netns: Option<&str>, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let bin = workspace_binary("labscope")?;
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&bin);
                c
            }
            None => Command::new(&bin),
        };
        cmd.args(["serve", "--http", "127.0.0.1:0"]).args(args);
        cmd.env_remove("LABSCOPE_API_KEY")
            .env_remove("LABSCOPE_API_KEY_FILE");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.env(
            "RUST_LOG",
            std::env::var("LABSCOPE_TEST_LOG").unwrap_or_else(|_| "labscope=info".into()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn()?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stderr"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("labscope: listening on ") {
                    let _ = tx.send(url.trim().to_string());
                }
                eprintln!("[labscope] {line}");
            }
        });
        let url = rx.recv_timeout(Duration::from_secs(20)).map_err(|_| {
            let status = child.try_wait().ok().flatten();
            anyhow::anyhow!("labscope did not start listening (exit: {status:?})")
        })?;
        let addr = url
            .trim_start_matches("http://")
            .trim_end_matches("/mcp")
            .to_string();
        Ok(Self { child, url, addr })
    }
}

impl Aggregator {
    /// Process id of the child (the aggregator itself unless started through `ip netns exec`,
    /// which execs it under the same pid).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Aggregator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw HTTP/1.1 exchange: returns (status, headers, body).
pub fn http_raw(addr: &str, request: &str) -> anyhow::Result<(u16, String, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(request.as_bytes())?;
    let mut buf = Vec::new();
    let started = Instant::now();
    let mut chunk = [0u8; 8192];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => break,
        }
        // SSE responses stay open: stop once the first event is complete.
        let text = String::from_utf8_lossy(&buf);
        if text.contains("\r\n\r\n")
            && (text.contains("\n\n") && text.contains("data:")
                || started.elapsed() > Duration::from_secs(5))
        {
            break;
        }
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_string())
                })
                .and_then(|v| v.parse::<usize>().ok());
            if len.is_some_and(|l| body.len() >= l) {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, head.to_string(), body.to_string()))
}

/// A JSON-RPC POST to `/mcp` with the given extra header lines.
pub fn mcp_post(
    addr: &str,
    host: &str,
    extra_headers: &str,
    body: &str,
) -> anyhow::Result<(u16, String, String)> {
    http_raw(
        addr,
        &format!(
            "POST /mcp HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n{extra_headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

/// A minimal initialize request.
pub const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"labscope-tests","version":"0"}}}"#;

/// The structured content of a tool result, and whether it is an error.
pub fn structured(result: &CallToolResult) -> (Value, bool) {
    (
        result.structured_content.clone().unwrap_or(Value::Null),
        result.is_error.unwrap_or(false),
    )
}

/// Serves `fixture` from a fake Kubernetes API, starts an in-process MCP
/// server configured for it (clock pinned to the fixture's now; `tweak` may
/// change the options, e.g. discovery), and calls each tool through a real
/// rmcp client over a duplex pipe. Returns the results and the fake (for its
/// request counter).
pub async fn call_with_fixture(
    fixture: crate::fake_kube::Fixture,
    tweak: impl FnOnce(&mut labscope::config::AgentOptions),
    calls: &[(&str, Value)],
) -> anyhow::Result<(Vec<(Value, bool)>, crate::fake_kube::FakeKube)> {
    use rmcp::ServiceExt;
    let fake = crate::fake_kube::FakeKube::start(fixture).await?;
    let dir = tempfile::tempdir()?;
    let mut options = labscope::config::AgentOptions {
        kubeconfig: Some(fake.write_kubeconfig(dir.path())?),
        deadline: Duration::from_secs(3),
        concurrency: 8,
        now: Some(crate::fake_kube::FIXTURE_NOW),
        ..Default::default()
    };
    tweak(&mut options);
    let ctx = options.context().await?;
    let (server_io, client_io) = tokio::io::duplex(1 << 20);
    tokio::spawn(async move {
        if let Ok(running) = labscope::mcp::McpServer::new(ctx).serve(server_io).await {
            let _ = running.waiting().await;
        }
    });
    let client = ().serve(client_io).await?;
    let mut out = Vec::new();
    for (tool, args) in calls {
        let mut p = rmcp::model::CallToolRequestParams::new(tool.to_string());
        if let Value::Object(m) = args {
            p = p.with_arguments(m.clone());
        }
        out.push(structured(&client.call_tool(p).await?));
    }
    client.cancel().await?;
    Ok((out, fake))
}
