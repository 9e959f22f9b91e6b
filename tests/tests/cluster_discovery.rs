//! Kubernetes access against the fake API server (homelab nodes): list_nodes
//! merges Kubernetes node facts with agent status; agents are discovered from
//! the DaemonSet's pods (their IPs are loopback addresses of this machine);
//! a node whose agent pod is Pending is "none", not an error or a green; RBAC
//! refusals reach the caller explained. No root needed.

use std::time::{Duration, Instant};

use labscope_tests::fake_kube::{FakeKube, Fixture, agent_pod, homelab_nodes};
use labscope_tests::mcp::{Aggregator, structured};
use labscope_tests::workspace_binary;
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use serde_json::{Value, json};

struct Child(std::process::Child);
impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn agent_on(ip: &str, port: u16, node: &str) -> anyhow::Result<Child> {
    let child = std::process::Command::new(workspace_binary("labscope-agent")?)
        .args(["--listen", &format!("{ip}:{port}"), "--node-name", node])
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect((ip, port)).is_err() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "agent on {ip}:{port} did not start"
        );
        std::thread::sleep(Duration::from_millis(30));
    }
    Ok(Child(child))
}

async fn call(url: &str, tool: &str, args: Value) -> anyhow::Result<(Value, bool)> {
    let client = ().serve(StreamableHttpClientTransport::from_uri(url.to_string())).await?;
    let mut p = CallToolRequestParams::new(tool.to_string());
    if let Value::Object(m) = args {
        p = p.with_arguments(m);
    }
    let r = client.call_tool(p).await?;
    let r = labscope_tests::mcp::validated(&client, tool, r).await?;
    client.cancel().await?;
    Ok(structured(&r))
}

fn node<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["nodes"]
        .as_array()
        .and_then(|a| a.iter().find(|n| n["node"] == name))
        .unwrap_or(&Value::Null)
}

// Multi-threaded: Aggregator::start blocks while the fake API answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_nodes_merges_kubernetes_and_discovered_agents() -> anyhow::Result<()> {
    let port = std::net::TcpListener::bind("127.0.0.2:0")?
        .local_addr()?
        .port();
    let _a1 = agent_on("127.0.0.2", port, "pi-k3s")?;
    let _a2 = agent_on("127.0.0.3", port, "pi5-worker-1")?;
    let _a3 = agent_on("127.0.0.4", port, "pi5-worker-2")?;
    let fixture = Fixture {
        nodes: homelab_nodes(),
        pods: vec![
            agent_pod("pi-k3s", "127.0.0.2", true),
            agent_pod("pi5-worker-1", "127.0.0.3", true),
            agent_pod("pi5-worker-2", "127.0.0.4", true),
            agent_pod("pi3-worker-2", "", false),
        ],
        ..Default::default()
    };
    let fake = FakeKube::start(fixture).await?;
    let dir = tempfile::tempdir()?;
    let kubeconfig = fake.write_kubeconfig(dir.path())?;
    let kc = kubeconfig.to_string_lossy().into_owned();
    let port_s = port.to_string();
    let agg = Aggregator::start(
        None,
        &[
            "--kubeconfig",
            &kc,
            "--agent-scheme",
            "http",
            "--agent-port",
            &port_s,
        ],
        &[],
    )?;

    let (v, err) = call(&agg.url, "list_nodes", json!({})).await?;
    assert!(!err, "{v}");
    assert_eq!(v["summary"]["total"], 4, "{v}");
    assert_eq!(v["summary"]["agentsOk"], 3);
    assert_eq!(v["summary"]["withoutAgent"], 1);
    assert_eq!(v["summary"]["kubernetes"]["status"], "ok");
    let cp = node(&v, "pi-k3s");
    assert_eq!(cp["kubernetes"]["kind"], "control-plane");
    assert_eq!(
        cp["kubernetes"]["roles"],
        json!(["control-plane", "master"])
    );
    assert_eq!(cp["kubernetes"]["ready"], true);
    assert_eq!(cp["kubernetes"]["kubeletVersion"], "v1.34.3+k3s1");
    assert_eq!(cp["agent"]["status"], "ok");
    let pi3 = node(&v, "pi3-worker-2");
    assert_eq!(
        pi3["kubernetes"]["roles"],
        json!([]),
        "role=batch is not a role"
    );
    assert_eq!(pi3["kubernetes"]["kind"], "worker");
    assert_eq!(pi3["kubernetes"]["arch"], "arm64");
    assert_eq!(
        pi3["kubernetes"]["taints"],
        json!(["role=batch:NoSchedule"])
    );
    assert_eq!(pi3["agent"]["status"], "none");
    assert!(
        pi3["agent"]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("Pending"),
        "{pi3}"
    );

    // A node tool on the node without an agent: its own answer.
    let (e, err) = call(
        &agg.url,
        "get_node_networking",
        json!({"node": "pi3-worker-2"}),
    )
    .await?;
    assert!(err);
    assert_eq!(e["code"], "no_agent", "{e}");
    let (net, err) = call(
        &agg.url,
        "get_node_networking",
        json!({"node": "pi5-worker-1", "sections": ["links"]}),
    )
    .await?;
    assert!(!err, "{net}");
    assert!(net["counts"]["links"]["total"].as_u64().unwrap_or(0) >= 1);

    // The watch keeps the agent set current: pi3's agent becomes Ready, and
    // pi5-worker-2's agent pod is deleted.
    let _a4 = agent_on("127.0.0.5", port, "pi3-worker-2")?;
    fake.upsert_pod(agent_pod("pi3-worker-2", "127.0.0.5", true));
    fake.delete_pod("labscope", "labscope-agent-pi5-worker-2");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (v, _) = call(&agg.url, "list_nodes", json!({})).await?;
        let (pi3, w2) = (
            node(&v, "pi3-worker-2")["agent"]["status"].clone(),
            node(&v, "pi5-worker-2")["agent"]["status"].clone(),
        );
        if pi3 == "ok" && w2 == "none" {
            assert_eq!(
                node(&v, "pi5-worker-2")["agent"]["reason"],
                "no labscope-agent pod on this node"
            );
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "watch did not update the agents: pi3 {pi3}, pi5-worker-2 {w2}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (v, _) = call(&agg.url, "list_nodes", json!({})).await?;
    assert!(v["summary"]["discoveryError"].is_null(), "{v}");

    // pi5-worker-2 is a node of the cluster whose agent pod is gone: no_agent
    // (not unknown_node), the hint naming the nodes that have agents; a name
    // the cluster does not have is unknown_node listing its nodes.
    let (e, err) = call(
        &agg.url,
        "get_node_networking",
        json!({"node": "pi5-worker-2"}),
    )
    .await?;
    assert!(err && e["code"] == "no_agent", "{e}");
    let hint = e["hint"].as_str().unwrap_or("");
    assert!(
        hint.contains("nodes with an agent: ")
            && hint.contains("pi3-worker-2")
            && !hint.contains("pi5-worker-2"),
        "{hint}"
    );
    let (e, err) = call(&agg.url, "get_conntrack_entries", json!({"node": "pi9"})).await?;
    assert!(err && e["code"] == "unknown_node", "{e}");
    let hint = e["hint"].as_str().unwrap_or("");
    assert!(
        hint.contains("nodes: ")
            && hint.contains("pi5-worker-2")
            && hint.contains("nodes with an agent: "),
        "{hint}"
    );

    // RBAC: nodes forbidden → an explained error, agents still answered; never a green.
    fake.fixture
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .forbidden
        .insert("nodes".into());
    let (v, err) = call(&agg.url, "list_nodes", json!({})).await?;
    assert!(!err);
    assert_eq!(v["summary"]["kubernetes"]["status"], "error", "{v}");
    let msg = v["summary"]["kubernetes"]["message"].as_str().unwrap_or("");
    assert!(
        msg.contains("refused to list nodes") && msg.contains("forbidden"),
        "{msg}"
    );
    assert!(
        v["summary"]["kubernetes"]["hint"]
            .as_str()
            .unwrap_or("")
            .contains("list")
    );
    assert_eq!(
        v["summary"]["agentsOk"], 3,
        "pi-k3s, pi5-worker-1 and pi3-worker-2"
    );
    drop(agg);

    // Discovery refused: reported in the summary with the missing permission.
    fake.fixture
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .forbidden = ["pods".to_string()].into();
    let agg = Aggregator::start(
        None,
        &[
            "--kubeconfig",
            &kc,
            "--agent-scheme",
            "http",
            "--agent-port",
            &port_s,
        ],
        &[],
    )?;
    let (v, err) = call(&agg.url, "list_nodes", json!({})).await?;
    assert!(!err);
    let d = v["summary"]["discoveryError"]["message"]
        .as_str()
        .unwrap_or("");
    assert!(d.contains("list pods in namespace labscope"), "{v}");
    assert_eq!(v["summary"]["agentsOk"], 0);
    assert_eq!(
        v["summary"]["withoutAgent"], 4,
        "nodes are still listed from Kubernetes"
    );
    Ok(())
}

/// The homelab's four nodes and not one agent pod: every node tool says
/// no_agent — never "known nodes: ;", "no node to probe from ()" or a mesh
/// of "0 nodes" reported as success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_without_agents_says_so_from_every_node_tool() -> anyhow::Result<()> {
    let calls = [
        ("get_node_networking", json!({"node": "pi-k3s"})),
        ("get_iptables_rules", json!({"node": "pi5-worker-1"})),
        ("check_network_mesh", json!({})),
        (
            "test_dns_query",
            json!({"domain": "example.com", "server": "127.0.0.1"}),
        ),
        ("curl_ingress", json!({"url": "http://127.0.0.1/"})),
    ];
    let (r, _fake) = labscope_tests::mcp::call_with_fixture(
        labscope_tests::homelab::homelab(&[])?,
        |_| {},
        &calls,
    )
    .await?;
    for ((tool, _), (v, err)) in calls.iter().zip(&r) {
        assert!(*err && v["code"] == "no_agent", "{tool}: {v}");
        let text = format!("{} {}", v["message"], v["hint"]);
        assert!(
            text.contains("no node has a usable labscope-agent"),
            "{tool}: {text}"
        );
        assert!(
            !text.contains("()") && !text.contains(": ;"),
            "{tool}: {text}"
        );
    }
    Ok(())
}
