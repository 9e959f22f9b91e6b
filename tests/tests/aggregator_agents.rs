//! The aggregator against misbehaving and TLS agents, on loopback (no root):
//! an "agent" that answers garbage costs only its own node's entry, within
//! the deadline; agents behind mTLS are reached with --agent-ca/--agent-cert/
//! --agent-key, and without a client certificate they are reported, not hidden.

use std::time::{Duration, Instant};

use labscope_tests::mcp::{Aggregator, structured};
use labscope_tests::pki::TestCa;
use labscope_tests::workspace_binary;
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use serde_json::Value;

struct Child(std::process::Child);
impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn start_agent(args: &[&str]) -> anyhow::Result<(Child, u16)> {
    let port = free_port()?;
    let child = std::process::Command::new(workspace_binary("labscope-agent")?)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(args)
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        anyhow::ensure!(Instant::now() < deadline, "agent did not start");
        std::thread::sleep(Duration::from_millis(30));
    }
    Ok((Child(child), port))
}

async fn list_nodes(url: &str) -> anyhow::Result<(Value, Duration)> {
    let client = ().serve(StreamableHttpClientTransport::from_uri(url.to_string())).await?;
    let started = Instant::now();
    let result = client
        .call_tool(CallToolRequestParams::new("list_nodes"))
        .await?;
    let took = started.elapsed();
    let result = labscope_tests::mcp::validated(&client, "list_nodes", result).await?;
    client.cancel().await?;
    Ok((structured(&result).0, took))
}

fn status(nodes: &Value, name: &str) -> (String, String) {
    let n = nodes["nodes"]
        .as_array()
        .and_then(|a| a.iter().find(|n| n["node"] == name))
        .cloned()
        .unwrap_or_default();
    (
        n["agent"]["status"].as_str().unwrap_or("").to_string(),
        n["agent"]["reason"].as_str().unwrap_or("").to_string(),
    )
}

#[tokio::test]
async fn an_agent_answering_garbage_costs_only_its_node() -> anyhow::Result<()> {
    let (_good, good_port) = start_agent(&["--node-name", "good"])?;
    // A listener that answers every connection with bytes that are not HTTP/2.
    let garbage = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let garbage_port = garbage.local_addr()?.port();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        loop {
            let Ok((mut s, _)) = garbage.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let _ = s
                    .write_all(b"HTTP/1.0 500 nonsense\r\n\r\n\x00\xff\x13garbage")
                    .await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            });
        }
    });
    let agg = Aggregator::start(
        None,
        &[
            "--agent",
            &format!("good=http://127.0.0.1:{good_port}"),
            "--agent",
            &format!("garbage=http://127.0.0.1:{garbage_port}"),
            "--agent-deadline-ms",
            "1500",
        ],
        &[],
    )?;
    let (nodes, took) = list_nodes(&agg.url).await?;
    assert_eq!(status(&nodes, "good").0, "ok", "{nodes}");
    let (bad, reason) = status(&nodes, "garbage");
    assert!(
        bad == "unavailable" || bad == "error",
        "garbage agent: {bad} {reason}"
    );
    assert!(!reason.is_empty());
    assert!(took < Duration::from_millis(2500), "took {took:?}");
    assert_eq!(nodes["summary"]["agentsOk"], 1);
    Ok(())
}

#[tokio::test]
async fn agents_behind_mtls() -> anyhow::Result<()> {
    let ca = TestCa::new("labscope agents CA")?;
    let server = ca.leaf(&["localhost", "127.0.0.1"], (2030, 1, 1))?;
    let client = ca.leaf(&["labscope-aggregator"], (2030, 1, 1))?;
    let dir = tempfile::tempdir()?;
    let path = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    for (name, text) in [
        ("tls.crt", &server.cert_pem),
        ("tls.key", &server.key_pem),
        ("ca.crt", &ca.pem()),
        ("client.crt", &client.cert_pem),
        ("client.key", &client.key_pem),
    ] {
        std::fs::write(path(name), text)?;
    }
    let (_agent, port) = start_agent(&[
        "--node-name",
        "tls-node",
        "--tls-cert",
        &path("tls.crt"),
        "--tls-key",
        &path("tls.key"),
        "--client-ca",
        &path("ca.crt"),
    ])?;
    let url = format!("tls-node=https://127.0.0.1:{port}");

    let with_cert = Aggregator::start(
        None,
        &[
            "--agent",
            &url,
            "--agent-ca",
            &path("ca.crt"),
            "--agent-cert",
            &path("client.crt"),
            "--agent-key",
            &path("client.key"),
        ],
        &[],
    )?;
    let (nodes, _) = list_nodes(&with_cert.url).await?;
    assert_eq!(status(&nodes, "tls-node").0, "ok", "{nodes}");

    let without_cert =
        Aggregator::start(None, &["--agent", &url, "--agent-ca", &path("ca.crt")], &[])?;
    let (nodes, _) = list_nodes(&without_cert.url).await?;
    let (st, reason) = status(&nodes, "tls-node");
    assert_ne!(
        st, "ok",
        "an agent requiring a client certificate must not read as ok without one"
    );
    assert!(!reason.is_empty(), "{nodes}");

    // The aggregator's own certificate is renewed on disk — here by a new CA
    // that the second agent trusts — and the running aggregator uses it from
    // its next connection, without a restart.
    let ca2 = TestCa::new("labscope clients CA, rotated")?;
    std::fs::write(path("ca2.crt"), ca2.pem())?;
    let (_agent2, port2) = start_agent(&[
        "--node-name",
        "tls-node-2",
        "--tls-cert",
        &path("tls.crt"),
        "--tls-key",
        &path("tls.key"),
        "--client-ca",
        &path("ca2.crt"),
    ])?;
    // Its own copies of the client files, so that replacing them touches
    // only this aggregator.
    std::fs::copy(path("client.crt"), path("renewing.crt"))?;
    std::fs::copy(path("client.key"), path("renewing.key"))?;
    let url2 = format!("tls-node-2=https://127.0.0.1:{port2}");
    let renewing = Aggregator::start(
        None,
        &[
            "--agent",
            &url2,
            "--agent-ca",
            &path("ca.crt"),
            "--agent-cert",
            &path("renewing.crt"),
            "--agent-key",
            &path("renewing.key"),
        ],
        &[],
    )?;
    let (nodes, _) = list_nodes(&renewing.url).await?;
    // (TLS 1.3: the agent refuses after the client's last handshake message,
    // so the aggregator may only see the connection close.)
    assert_ne!(
        status(&nodes, "tls-node-2").0,
        "ok",
        "a certificate the agent's CA did not sign is refused: {nodes}"
    );
    let renewed = ca2.leaf(&["labscope-aggregator"], (2031, 1, 1))?;
    for (name, pem) in [
        ("renewing.key", &renewed.key_pem),
        ("renewing.crt", &renewed.cert_pem),
    ] {
        std::fs::write(path(&format!("{name}.new")), pem)?;
        std::fs::rename(path(&format!("{name}.new")), path(name))?;
    }
    // The failed agent is retried after its backoff (0.5 s, then doubling).
    let mut last = Value::Null;
    for _ in 0..20 {
        let (nodes, _) = list_nodes(&renewing.url).await?;
        if status(&nodes, "tls-node-2").0 == "ok" {
            return Ok(());
        }
        last = nodes;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("the renewed client certificate was never used: {last}");
}
