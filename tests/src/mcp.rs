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
        Self::start_bin(&workspace_binary("labscope")?, netns, args, env)
    }

    /// [`Aggregator::start`] with another build of `labscope` (benchmarks:
    /// the static musl binary the image ships).
    pub fn start_bin(
        bin: &std::path::Path,
        netns: Option<&str>,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(bin);
                c
            }
            None => Command::new(bin),
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

/// Where labscope puts a failed call's `{code, message, hint}`.
pub const ERROR_META_KEY: &str = "io.labscope/error";

/// The structured content of a tool result — for a failed call the
/// `{code, message, hint}` of its `_meta` — and whether it is an error.
pub fn structured(result: &CallToolResult) -> (Value, bool) {
    if result.is_error == Some(true) {
        let v = result
            .meta
            .as_ref()
            .and_then(|m| m.0.get(ERROR_META_KEY))
            .cloned()
            .unwrap_or(Value::Null);
        return (v, true);
    }
    (
        result.structured_content.clone().unwrap_or(Value::Null),
        false,
    )
}

/// The text content of a result, joined.
pub fn text_of(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.as_str()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Compiled output schemas by tool name, filled from tools/list.
static VALIDATORS: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<jsonschema::Validator>>>,
> = std::sync::LazyLock::new(Default::default);

/// Checks `result` of `tool` the way the TypeScript SDK does: a success's
/// `structuredContent` validates against the tool's advertised output schema
/// (compiled by a JSON Schema 2020-12 validator); a failure carries no
/// `structuredContent` (which would have to validate too), a text content
/// and its code in `_meta`. Returns the result for chaining.
pub async fn validated(
    client: &rmcp::service::Peer<rmcp::RoleClient>,
    tool: &str,
    result: CallToolResult,
) -> anyhow::Result<CallToolResult> {
    let known = VALIDATORS
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .get(tool)
        .cloned();
    let validator = match known {
        Some(v) => v,
        None => {
            let tools = client.list_all_tools().await?;
            let mut map = VALIDATORS.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
            for t in tools {
                let schema = Value::Object(t.output_schema.as_deref().cloned().unwrap_or_default());
                let v = jsonschema::validator_for(&schema).map_err(|e| {
                    anyhow::anyhow!("{}: the output schema does not compile: {e}", t.name)
                })?;
                map.insert(t.name.to_string(), std::sync::Arc::new(v));
            }
            map.get(tool)
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("{tool} is not in tools/list"))?
        }
    };
    anyhow::ensure!(
        result
            .content
            .iter()
            .any(|c| c.as_text().is_some_and(|t| !t.text.is_empty())),
        "{tool}: no text content"
    );
    if result.is_error == Some(true) {
        anyhow::ensure!(
            result.structured_content.is_none(),
            "{tool}: an error result carries structuredContent, which clients validate against the output schema"
        );
        let (e, _) = structured(&result);
        anyhow::ensure!(
            e["code"].is_string() && e["message"].is_string() && e["hint"].is_string(),
            "{tool}: the error's _meta lacks code/message/hint: {e}"
        );
        return Ok(result);
    }
    let value = result
        .structured_content
        .clone()
        .ok_or_else(|| anyhow::anyhow!("{tool}: no structuredContent"))?;
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .take(5)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    anyhow::ensure!(
        errors.is_empty(),
        "{tool}: structuredContent does not match the output schema: {}",
        errors.join("; ")
    );
    Ok(result)
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
    let (out, fake) = call_with_fixture_text(fixture, tweak, calls).await?;
    Ok((out.into_iter().map(|(v, e, _)| (v, e)).collect(), fake))
}

/// [`call_with_fixture`] that also returns each result's text content.
pub async fn call_with_fixture_text(
    fixture: crate::fake_kube::Fixture,
    tweak: impl FnOnce(&mut labscope::config::AgentOptions),
    calls: &[(&str, Value)],
) -> anyhow::Result<(Vec<(Value, bool, String)>, crate::fake_kube::FakeKube)> {
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
    let client = crate::mcp::in_process(ctx, ()).await?;
    let mut out = Vec::new();
    for (tool, args) in calls {
        let mut p = rmcp::model::CallToolRequestParams::new(tool.to_string());
        if let Value::Object(m) = args {
            p = p.with_arguments(m.clone());
        }
        let r = validated(&client, tool, client.call_tool(p).await?).await?;
        let (value, is_error) = structured(&r);
        out.push((value, is_error, text_of(&r)));
    }
    client.cancel().await?;
    Ok((out, fake))
}

/// Checks that a tool's text carries its findings: every value the
/// `patterns` select in the structured result appears in `text`
/// (whitespace-insensitive). A pattern is a path of object keys and `*`
/// (every element of an array, every value of an object), where `*?key=value`
/// or `*?key!=value` keeps only the elements whose `key` is (not) `value`,
/// e.g. `/certificates/*?ready=false/name`. Strings and numbers are looked
/// for; a pattern that selects nothing is an error, so a renamed field cannot
/// make the check pass by selecting nothing.
pub fn assert_text_shows(
    tool: &str,
    value: &Value,
    text: &str,
    patterns: &[&str],
) -> anyhow::Result<()> {
    let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let text = squash(text);
    let mut missing = Vec::new();
    for pattern in patterns {
        let mut found = Vec::new();
        select(value, pattern, &mut String::new(), &mut found);
        anyhow::ensure!(
            !found.is_empty(),
            "{tool}: pattern {pattern} selects nothing in {:.600}",
            value.to_string()
        );
        for (path, v) in found {
            let want = match v {
                Value::String(s) if !s.is_empty() => squash(s),
                Value::Number(n) => n.to_string(),
                _ => continue,
            };
            if !text.contains(&want) {
                missing.push(format!("{path} = {want:?}"));
            }
        }
    }
    anyhow::ensure!(
        missing.is_empty(),
        "{tool}: the text leaves out findings of the structured result:\n  {}\ntext:\n{text}",
        missing.join("\n  ")
    );
    Ok(())
}

fn select<'a>(
    value: &'a Value,
    pattern: &str,
    at: &mut String,
    out: &mut Vec<(String, &'a Value)>,
) {
    let pattern = pattern.trim_start_matches('/');
    if pattern.is_empty() {
        out.push((at.clone(), value));
        return;
    }
    let (segment, rest) = pattern.split_once('/').unwrap_or((pattern, ""));
    let mut descend = |key: &str, v: &'a Value| {
        let len = at.len();
        at.push('/');
        at.push_str(key);
        select(v, rest, at, out);
        at.truncate(len);
    };
    if let Some(filter) = segment.strip_prefix('*') {
        let keep = |v: &Value| {
            let Some(cond) = filter.strip_prefix('?') else {
                return true;
            };
            let (key, want, equal) = match cond.split_once("!=") {
                Some((k, w)) => (k, w, false),
                None => match cond.split_once('=') {
                    Some((k, w)) => (k, w, true),
                    None => return false,
                },
            };
            let got = match &v[key] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (got == want) == equal
        };
        match value {
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate().filter(|(_, v)| keep(v)) {
                    descend(&i.to_string(), v);
                }
            }
            Value::Object(map) => {
                for (k, v) in map.iter().filter(|(_, v)| keep(v)) {
                    descend(k, v);
                }
            }
            _ => {}
        }
    } else if let Some(v) = value.get(segment) {
        descend(segment, v);
    }
}

/// An MCP client over Streamable HTTP that keeps one HTTP/1.1 connection
/// open for every request, as the official SDKs' pooled clients do (the rmcp
/// client's transport may open new connections, which hides per-connection
/// costs such as Nagle's algorithm holding a response's last write).
pub struct KeepAlive {
    sender: hyper::client::conn::http1::SendRequest<http_body_util::Full<hyper::body::Bytes>>,
    host: String,
    session: Option<String>,
    next_id: u64,
    recording: Option<Vec<Recorded>>,
}

/// One HTTP answer of an MCP server to a request, as received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Its `content-type` (`text/event-stream` or `application/json`).
    pub content_type: String,
    /// Its body.
    pub body: hyper::body::Bytes,
}

impl KeepAlive {
    /// Connects to `addr` (`127.0.0.1:PORT`) and initializes a session.
    pub async fn connect(addr: &str) -> anyhow::Result<Self> {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await?;
        tokio::spawn(conn);
        let mut client = Self {
            sender,
            host: addr.to_string(),
            session: None,
            next_id: 1,
            recording: None,
        };
        client
            .request(serde_json::from_str(INITIALIZE)?, true)
            .await?;
        client
            .request(
                serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
                false,
            )
            .await?;
        Ok(client)
    }

    /// Calls `tool` with `args` and follows `nextCursor` to the last page.
    /// Returns the items of every page (the array at `item_key` of each
    /// `structuredContent`, moved out, not copied) and the number of pages;
    /// a page that is an error or has no structured content fails the read.
    pub async fn all_pages(
        &mut self,
        tool: &str,
        args: Value,
        item_key: &str,
    ) -> anyhow::Result<(Vec<Value>, usize)> {
        let mut items = Vec::new();
        let pages = self
            .follow(tool, args, |page| {
                if let Value::Array(a) = page[item_key].take() {
                    items.extend(a);
                }
            })
            .await?;
        Ok((items, pages))
    }

    /// [`KeepAlive::all_pages`], keeping each page's whole
    /// `structuredContent`.
    pub async fn pages(&mut self, tool: &str, args: Value) -> anyhow::Result<Vec<Value>> {
        let mut pages = Vec::new();
        self.follow(tool, args, |page| pages.push(page.take()))
            .await?;
        Ok(pages)
    }

    /// Follows `nextCursor` from the first page to the last, handing each
    /// page's `structuredContent` to `take` (after its cursor is read);
    /// returns the number of pages.
    async fn follow(
        &mut self,
        tool: &str,
        args: Value,
        mut take: impl FnMut(&mut Value),
    ) -> anyhow::Result<usize> {
        let mut pages = 0usize;
        let mut cursor: Option<String> = None;
        loop {
            let mut a = args.clone();
            if let Some(c) = cursor.take() {
                a["cursor"] = c.into();
            }
            let mut r = self.call(tool, a).await?;
            anyhow::ensure!(
                r["isError"] != true && r["structuredContent"].is_object(),
                "{tool}: page {} failed: {r}",
                pages + 1
            );
            let page = &mut r["structuredContent"];
            pages += 1;
            let next = page["nextCursor"].as_str().map(str::to_string);
            take(page);
            match next {
                Some(c) => cursor = Some(c),
                None => return Ok(pages),
            }
            anyhow::ensure!(pages < 100_000, "{tool}: no end to the pages");
        }
    }

    /// Calls `tool` and returns the JSON-RPC `result`.
    pub async fn call(&mut self, tool: &str, args: Value) -> anyhow::Result<Value> {
        self.next_id += 1;
        let request = serde_json::json!({"jsonrpc": "2.0", "id": self.next_id, "method": "tools/call",
            "params": {"name": tool, "arguments": args}});
        let reply = self.request(request, true).await?;
        reply
            .get("result")
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("{tool}: no result in {reply}"))
    }

    /// Keeps the raw answers to the requests from now on, for [`replay`].
    pub fn start_recording(&mut self) {
        self.recording = Some(Vec::new());
    }

    /// The answers kept since [`KeepAlive::start_recording`]; stops keeping.
    pub fn take_recording(&mut self) -> Vec<Recorded> {
        self.recording.take().unwrap_or_default()
    }

    /// Ends the session with `DELETE /mcp`; returns the HTTP status.
    pub async fn end(mut self) -> anyhow::Result<u16> {
        self.sender.ready().await?;
        let mut req = hyper::Request::delete("/mcp").header("host", &self.host);
        if let Some(s) = &self.session {
            req = req.header("mcp-session-id", s);
        }
        let resp = self
            .sender
            .send_request(req.body(http_body_util::Full::new(hyper::body::Bytes::new()))?)
            .await?;
        Ok(resp.status().as_u16())
    }

    async fn request(&mut self, body: Value, expect_reply: bool) -> anyhow::Result<Value> {
        use http_body_util::BodyExt;
        self.sender.ready().await?;
        let mut req = hyper::Request::post("/mcp")
            .header("host", &self.host)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-06-18");
        if let Some(s) = &self.session {
            req = req.header("mcp-session-id", s);
        }
        let req = req.body(http_body_util::Full::new(hyper::body::Bytes::from(
            serde_json::to_vec(&body)?,
        )))?;
        let resp = self.sender.send_request(req).await?;
        if let Some(s) = resp.headers().get("mcp-session-id") {
            self.session = Some(s.to_str()?.to_string());
        }
        let status = resp.status();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let bytes = resp.into_body().collect().await?.to_bytes();
        if let Some(kept) = self.recording.as_mut() {
            kept.push(Recorded {
                content_type,
                body: bytes.clone(),
            });
        }
        let text = String::from_utf8_lossy(&bytes);
        anyhow::ensure!(status.is_success(), "HTTP {status}: {text}");
        if !expect_reply {
            return Ok(Value::Null);
        }
        // An SSE stream (`data:` lines, a priming event first) or plain JSON.
        let reply = text
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .find(|v| v.get("id").is_some())
            .or_else(|| serde_json::from_str(&text).ok());
        reply.ok_or_else(|| anyhow::anyhow!("no JSON-RPC reply in {text:.300}"))
    }
}

/// A Streamable HTTP endpoint on a loopback port (returned as
/// `127.0.0.1:PORT`) that does no work: it answers `initialize` with a
/// session, notifications with 202, and each `tools/call` with the next of
/// `answers` in turn (from the first again after the last), as a real server
/// sent them ([`KeepAlive::start_recording`]). What an MCP client costs by
/// itself, for the same answers. Runs until the runtime ends.
pub async fn replay(answers: Vec<Recorded>) -> anyhow::Result<String> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    anyhow::ensure!(!answers.is_empty(), "nothing to replay");
    let state = Arc::new((answers, AtomicUsize::new(0)));
    let answer = move |body: axum::body::Bytes| {
        let state = state.clone();
        async move {
            use axum::http::{StatusCode, header};
            use axum::response::IntoResponse;
            let request: Value = serde_json::from_slice(&body).unwrap_or_default();
            match request["method"].as_str() {
                Some("initialize") => {
                    let reply = serde_json::json!({"jsonrpc": "2.0", "id": request["id"], "result": {
                        "protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                        "serverInfo": {"name": "replay", "version": "0"}}});
                    (
                        [
                            (header::CONTENT_TYPE, "application/json".to_string()),
                            (
                                header::HeaderName::from_static("mcp-session-id"),
                                "replay".to_string(),
                            ),
                        ],
                        reply.to_string(),
                    )
                        .into_response()
                }
                Some("tools/call") => {
                    let (answers, next) = &*state;
                    let a = &answers[next.fetch_add(1, Ordering::Relaxed) % answers.len()];
                    (
                        [(header::CONTENT_TYPE, a.content_type.clone())],
                        a.body.clone(),
                    )
                        .into_response()
                }
                _ => StatusCode::ACCEPTED.into_response(),
            }
        }
    };
    let app = axum::Router::new().route("/mcp", axum::routing::post(answer));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    tokio::spawn(async move {
        let _ = axum::serve(labscope::server::http::nodelay(listener), app).await;
    });
    Ok(addr)
}

/// An MCP client (`handler`) connected in memory to a labscope MCP server
/// for `ctx`, the server running on a task of its own.
pub async fn in_process<C: rmcp::ClientHandler>(
    ctx: std::sync::Arc<labscope::tools::ToolContext>,
    handler: C,
) -> anyhow::Result<rmcp::service::RunningService<rmcp::RoleClient, C>> {
    use rmcp::ServiceExt;
    let (server_io, client_io) = tokio::io::duplex(1 << 20);
    tokio::spawn(async move {
        if let Ok(running) = labscope::server::mcp::McpServer::new(ctx)
            .serve(server_io)
            .await
        {
            let _ = running.waiting().await;
        }
    });
    Ok(handler.serve(client_io).await?)
}
