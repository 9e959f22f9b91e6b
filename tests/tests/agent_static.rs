//! The agent as it ships: the static musl builds of `scripts/cross` (musl's
//! allocator and libc, the image's features), where the rest of the suite
//! runs the workspace's glibc build. For this machine's architecture,
//! natively: a conntrack table of a few thousand entries read whole and page
//! by page (many chunks, parked dumps) matches `conntrack -L`, and a nat
//! table of hundreds of rules matches `iptables-save -c`, and so do both
//! read through the static aggregator (mimalloc on 64-bit) over a kept-alive
//! MCP connection. For the Pis (aarch64) on an x86_64 machine, under
//! qemu-user: node info, links and addresses match the kernel's.
//!
//! `scripts/test` builds them; where a build is missing the test says so and
//! skips. Needs root (network namespaces).

use std::collections::BTreeSet;
use std::path::PathBuf;

use labscope_proto::v1 as pb;
use labscope_tests::mcp::{Aggregator, KeepAlive};
use labscope_tests::reads::{list_all, saved_rules};
use labscope_tests::{AgentProcess, Netns, connect, require_root, require_tool};

const AGENT: &str = "127.0.0.1:9447";
const UDP_ENTRIES: u16 = 3000;
const NAT_RULES: usize = 700;

/// target/<triple>/release/labscope-agent beside this test's target/debug.
fn static_agent(triple: &str, test: &str) -> anyhow::Result<Option<PathBuf>> {
    static_binary(triple, "labscope-agent", test)
}

/// target/<triple>/release/<name> beside this test's target/debug.
fn static_binary(triple: &str, name: &str, test: &str) -> anyhow::Result<Option<PathBuf>> {
    let exe = std::env::current_exe()?;
    // target/debug/deps/<test> -> target/
    let target = exe
        .ancestors()
        .nth(3)
        .ok_or_else(|| anyhow::anyhow!("odd test path {}", exe.display()))?;
    let bin = target.join(triple).join("release").join(name);
    if bin.is_file() {
        return Ok(Some(bin));
    }
    eprintln!(
        "SKIP {test}: {} is not built (`scripts/cross --target {triple} --bin {name}`, run by scripts/test)",
        bin.display()
    );
    Ok(None)
}

/// (protocol, source, destination, source port, destination port) of the
/// original direction.
type Key = (String, String, String, u32, u32);

fn tool_keys(text: &str) -> BTreeSet<Key> {
    text.lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let first = |k: &str| words.iter().find_map(|w| w.strip_prefix(k));
            let port = |k: &str| first(k).and_then(|p| p.parse().ok()).unwrap_or(0);
            Some((
                words.first()?.to_string(),
                first("src=")?.to_string(),
                first("dst=")?.to_string(),
                port("sport="),
                port("dport="),
            ))
        })
        .collect()
}

fn agent_key(e: &pb::ConntrackEntry) -> Key {
    let o = e.original.clone().unwrap_or_default();
    (
        o.protocol_name.clone(),
        labscope::tools::node::ip_text(&o.source),
        labscope::tools::node::ip_text(&o.destination),
        o.source_port,
        o.destination_port,
    )
}

#[test]
fn the_static_agent_reads_conntrack_and_firewall_like_the_tools() -> anyhow::Result<()> {
    let test = "the_static_agent_reads_conntrack_and_firewall_like_the_tools";
    if !require_root(test) {
        return Ok(());
    }
    let triple = format!("{}-unknown-linux-musl", std::env::consts::ARCH);
    let Some(bin) = static_agent(&triple, test)? else {
        return Ok(());
    };
    for tool in ["iptables-save", "iptables-restore", "conntrack"] {
        require_tool(tool)?;
    }
    let ns = Netns::new("lsstatic")?;
    // Conntrack tracks the namespace's traffic once a rule needs it; UDP
    // entries without an answer live 30 s by default, long enough here
    // only with a longer timeout.
    ns.run(&[
        "sysctl",
        "-qw",
        "net.netfilter.nf_conntrack_udp_timeout=600",
    ])
    .ok();
    let mut restore = String::from("*nat\n:LS-STATIC - [0:0]\n-A OUTPUT -j LS-STATIC\n");
    for i in 0..NAT_RULES {
        restore.push_str(&format!(
            "-A LS-STATIC -d 10.{}.{}.{}/32 -p tcp -m tcp --dport {} -j DNAT --to-destination 127.0.0.1:{}\n",
            100 + i / 65536,
            (i / 256) % 256,
            i % 256,
            1000 + i,
            20000 + i
        ));
    }
    restore.push_str("COMMIT\n*filter\n-A OUTPUT -m conntrack --ctstate NEW -j ACCEPT\nCOMMIT\n");
    let file = std::env::temp_dir().join(format!("{}.rules", ns.name));
    std::fs::write(&file, restore)?;
    let loaded = ns.run(&[
        "sh",
        "-c",
        &format!("iptables-restore --noflush < {}", file.display()),
    ]);
    std::fs::remove_file(&file).ok();
    loaded?;
    ns.block_on(|| async {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0")?;
        for port in 0..UDP_ENTRIES {
            sock.send_to(b"x", ("127.0.0.2", 10_000 + port))?;
        }
        anyhow::Ok(())
    })?;

    let agent = AgentProcess::start_bin(
        &bin,
        &ns,
        AGENT,
        &["--node-name", "static", "--insecure-plaintext"],
        &[],
    )?;
    let ((whole, summary), paged, fw) = ns.block_on(|| async {
        let mut client = connect(AGENT).await?;
        let whole = list_all(&mut client, pb::ListConntrackRequest::default()).await?;
        // Pages of 700 (two chunks each): every page resumes a parked dump.
        let mut paged = Vec::new();
        let mut token = String::new();
        loop {
            let (entries, summary) = list_all(
                &mut client,
                pb::ListConntrackRequest {
                    limit: 700,
                    continuation_token: token.clone(),
                    ..Default::default()
                },
            )
            .await?;
            paged.extend(entries);
            token = summary.next_token;
            if token.is_empty() {
                break;
            }
        }
        let fw = client
            .get_firewall(pb::GetFirewallRequest {
                table: "nat".into(),
                ..Default::default()
            })
            .await?
            .into_inner();
        anyhow::Ok((whole, paged, fw))
    })?;

    let want = tool_keys(&ns.run(&["conntrack", "-L"])?);
    assert!(
        want.len() >= usize::from(UDP_ENTRIES),
        "{} entries in conntrack -L",
        want.len()
    );
    let got: BTreeSet<Key> = whole.iter().map(agent_key).collect();
    assert_eq!(got.len(), whole.len(), "no entry twice in one read");
    assert_eq!(got, want, "a whole read against conntrack -L");
    assert_eq!(summary.matched, whole.len() as u64);
    let pages: BTreeSet<Key> = paged.iter().map(agent_key).collect();
    assert_eq!(pages.len(), paged.len(), "no entry on two pages");
    assert_eq!(pages, want, "the pages against conntrack -L");

    let rules: Vec<String> = fw
        .chains
        .iter()
        .flat_map(|c| &c.rules)
        .map(|r| r.text.clone())
        .collect();
    let saved: Vec<String> = saved_rules(&ns.run(&["iptables-save", "-c"])?, "nat")
        .into_iter()
        .map(|r| r.0)
        .collect();
    assert_eq!(rules.len(), NAT_RULES + 1);
    assert_eq!(rules, saved, "the nat table against iptables-save -c");

    // The aggregator as it ships (static musl, mimalloc on 64-bit) over a
    // kept-alive MCP connection: the same table through the cursor, and the
    // nat table in pages.
    if let Some(labscope) = static_binary(&triple, "labscope", test)? {
        let server = Aggregator::start_bin(
            &labscope,
            Some(&ns.name),
            &["--agent", &format!("static=http://{AGENT}")],
            &[],
        )?;
        let addr = server.addr.clone();
        let (entries, mcp_rules) = ns.block_on(|| async move {
            let mut mcp = KeepAlive::connect(&addr).await?;
            let (entries, _) = mcp
                .all_pages(
                    "get_conntrack_entries",
                    serde_json::json!({"node": "static", "limit": 1000}),
                    "entries",
                )
                .await?;
            let (rules, _) = mcp
                .all_pages(
                    "get_iptables_rules",
                    serde_json::json!({"node": "static", "table": "nat", "limit": 300}),
                    "rules",
                )
                .await?;
            let rules: Vec<String> = rules
                .iter()
                .map(|r| r["text"].as_str().unwrap_or_default().to_string())
                .collect();
            mcp.end().await?;
            anyhow::Ok((entries, rules))
        })?;
        let port = |v: &serde_json::Value| v.as_u64().unwrap_or(0) as u32;
        let keys: BTreeSet<Key> = entries
            .iter()
            .map(|e| {
                let o = &e["original"];
                (
                    e["protocol"].as_str().unwrap_or_default().to_string(),
                    o["src"].as_str().unwrap_or_default().to_string(),
                    o["dst"].as_str().unwrap_or_default().to_string(),
                    port(&o["sport"]),
                    port(&o["dport"]),
                )
            })
            .collect();
        assert_eq!(keys.len(), entries.len(), "no entry on two MCP pages");
        // The UDP entries are the ones read above (they live 600 s); TCP
        // ones come and go with the MCP and gRPC connections themselves.
        let udp = |set: &BTreeSet<Key>| -> BTreeSet<Key> {
            set.iter().filter(|k| k.0 == "udp").cloned().collect()
        };
        assert!(udp(&keys).len() >= usize::from(UDP_ENTRIES));
        assert_eq!(
            udp(&keys),
            udp(&want),
            "MCP pages of the static aggregator against conntrack -L"
        );
        assert_eq!(
            mcp_rules, saved,
            "MCP nat pages of the static aggregator against iptables-save -c"
        );
        drop(server);
    }

    agent.terminate()?;
    Ok(())
}

#[test]
fn the_static_agent_for_the_pis_runs_under_qemu() -> anyhow::Result<()> {
    let test = "the_static_agent_for_the_pis_runs_under_qemu";
    if !require_root(test) {
        return Ok(());
    }
    if std::env::consts::ARCH == "aarch64" {
        eprintln!("SKIP {test}: this machine is aarch64; the native test runs that build");
        return Ok(());
    }
    let Some(bin) = static_agent("aarch64-unknown-linux-musl", test)? else {
        return Ok(());
    };
    let Some(qemu) = ["/usr/bin/qemu-aarch64-static", "/usr/bin/qemu-aarch64"]
        .iter()
        .find(|p| std::path::Path::new(p).is_file())
    else {
        eprintln!("SKIP {test}: no qemu-aarch64 (scripts/cross installs qemu-user-static)");
        return Ok(());
    };
    let ns = Netns::new("lspi")?;
    ns.add_silent_address()?;
    let agent = AgentProcess::start_bin(
        &bin,
        &ns,
        AGENT,
        &["--node-name", "pi", "--insecure-plaintext"],
        &[qemu],
    )?;
    let (info, net) = ns.block_on(|| async {
        let mut client = connect(AGENT).await?;
        let info = client
            .get_node_info(pb::GetNodeInfoRequest {})
            .await?
            .into_inner();
        let net = client
            .get_networking(pb::GetNetworkingRequest::default())
            .await?
            .into_inner();
        anyhow::Ok((info, net))
    })?;
    assert_eq!(info.node_name, "pi");
    assert_eq!(info.machine, "aarch64", "uname as qemu-user reports it");
    let links: BTreeSet<String> = net.links.iter().map(|l| l.name.clone()).collect();
    let want: BTreeSet<String> =
        serde_json::from_str::<serde_json::Value>(&ns.ip(&["-j", "link"])?)?
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|l| l["ifname"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
    assert_eq!(links, want, "links against ip -j link");
    assert!(
        net.addresses
            .iter()
            .any(|a| labscope::tools::node::ip_text(&a.address) == "10.98.0.1"),
        "{:?}",
        net.addresses
    );
    agent.terminate()?;
    Ok(())
}

/// Removes a container when dropped.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman(&["rm", "-f", "-t", "1", &self.0]);
    }
}

/// podman as it runs here (runc, cgroupfs, no default ulimits: the
/// containers.conf scripts/podman-env writes).
fn podman(args: &[&str]) -> anyhow::Result<String> {
    let conf = std::env::temp_dir().join("labscope-podman-test.conf");
    std::fs::write(&conf, "[containers]\ndefault_ulimits = []\n")?;
    let out = std::process::Command::new("podman")
        .args(["--runtime", "runc", "--cgroup-manager", "cgroupfs"])
        .args(args)
        .env("CONTAINERS_CONF", &conf)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "podman {args:?}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The images `scripts/images` builds, run as the DaemonSet and the
/// Deployment run them: the agent with every capability dropped but
/// NET_ADMIN and NET_RAW, a read-only root and the host's os-release
/// mounted at /host/etc/os-release, in a network namespace; the aggregator
/// beside it, read-only, without capabilities, as a non-root user, with
/// `--agent`. Health over gRPC, `list_nodes` over MCP naming the mounted
/// OS, and the agent's firewall reads equal to `iptables-save` and `nft
/// list` in that namespace. Nothing in the agent image could run a program:
/// it holds only the binary.
#[test]
fn images_run_with_least_privilege() -> anyhow::Result<()> {
    let test = "images_run_with_least_privilege";
    if !require_root(test) {
        return Ok(());
    }
    let required = std::env::var_os("LABSCOPE_REQUIRE_IMAGES").is_some();
    let present = podman(&["image", "exists", "localhost/labscope-agent:dev"]).is_ok()
        && podman(&["image", "exists", "localhost/labscope:dev"]).is_ok();
    if !present {
        anyhow::ensure!(!required, "the images are not built (scripts/images)");
        eprintln!(
            "SKIP {test}: localhost/labscope-agent:dev and localhost/labscope:dev are not built (scripts/images, run by scripts/test)"
        );
        return Ok(());
    }
    // Nothing but the binary in the agent image: no shell to exec into.
    let files = podman(&[
        "image",
        "inspect",
        "--format",
        "{{len .RootFS.Layers}}",
        "localhost/labscope-agent:dev",
    ])?;
    assert_eq!(files, "1", "one layer: the binary");
    let ns = Netns::new("img")?;
    ns.run(&[
        "iptables",
        "-A",
        "INPUT",
        "-p",
        "tcp",
        "--dport",
        "22",
        "-m",
        "comment",
        "--comment",
        "image test",
        "-j",
        "ACCEPT",
    ])?;
    ns.run(&[
        "iptables",
        "-t",
        "nat",
        "-A",
        "POSTROUTING",
        "-s",
        "10.42.0.0/16",
        "-j",
        "MASQUERADE",
        "--random-fully",
    ])?;
    ns.run(&["nft", "add", "table", "inet", "img"])?;
    ns.run(&[
        "nft",
        "add",
        "chain",
        "inet",
        "img",
        "in",
        "{ type filter hook input priority 10; policy accept; }",
    ])?;
    ns.run(&[
        "nft",
        "add",
        "rule",
        "inet",
        "img",
        "in",
        "tcp",
        "dport",
        "{ 80, 443 }",
        "counter",
        "accept",
    ])?;
    let dir = tempfile::tempdir()?;
    let os = format!("labscope image test OS {}", std::process::id());
    let os_file = dir.path().join("os-release");
    std::fs::write(&os_file, format!("NAME=\"x\"\nPRETTY_NAME=\"{os}\"\n"))?;
    let netns = format!("ns:/run/netns/{}", ns.name);
    let agent_name = format!("labscope-agent-test-{}", std::process::id());
    let mount = format!("{}:/host/etc/os-release:ro", os_file.display());
    podman(&[
        "run",
        "-d",
        "--name",
        &agent_name,
        "--network",
        &netns,
        "--cap-drop",
        "ALL",
        "--cap-add",
        "NET_ADMIN",
        "--cap-add",
        "NET_RAW",
        "--read-only",
        "--user",
        "0",
        "-v",
        &mount,
        "localhost/labscope-agent:dev",
        "--listen",
        AGENT,
        "--node-name",
        "img",
        "--insecure-plaintext",
    ])?;
    let _agent = Container(agent_name.clone());
    let agg_name = format!("labscope-test-{}", std::process::id());
    podman(&[
        "run",
        "-d",
        "--name",
        &agg_name,
        "--network",
        &netns,
        "--cap-drop",
        "ALL",
        "--read-only",
        "localhost/labscope:dev",
        "serve",
        "--http",
        "127.0.0.1:8080",
        "--agent",
        &format!("img=http://{AGENT}"),
    ])?;
    let _agg = Container(agg_name.clone());
    let user = podman(&["inspect", "--format", "{{.Config.User}}", &agg_name])?;
    assert_eq!(user, "65532:65532", "the aggregator runs as non-root");
    let (node, rules, nft) = ns.block_on(move || async move {
        // Health, as the kubelet's probe asks.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let channel = loop {
            match tonic::transport::Channel::from_static("http://127.0.0.1:9447")
                .connect()
                .await
            {
                Ok(c) => break c,
                Err(e) => {
                    anyhow::ensure!(
                        std::time::Instant::now() < deadline,
                        "the agent container does not listen: {e}"
                    );
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        };
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        let h = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: "labscope.node.v1.NodeAgent".into(),
            })
            .await?
            .into_inner();
        anyhow::ensure!(
            h.status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32,
            "{h:?}"
        );
        let mut mcp = loop {
            match KeepAlive::connect("127.0.0.1:8080").await {
                Ok(c) => break c,
                Err(e) => {
                    anyhow::ensure!(
                        std::time::Instant::now() < deadline,
                        "the aggregator container does not answer: {e}"
                    );
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        };
        let nodes = mcp.call("list_nodes", serde_json::json!({})).await?;
        let rules = mcp
            .pages(
                "get_iptables_rules",
                serde_json::json!({"node": "img", "table": "nat"}),
            )
            .await?;
        let filter = mcp
            .pages("get_iptables_rules", serde_json::json!({"node": "img"}))
            .await?;
        let nft = mcp
            .call(
                "get_nft_ruleset",
                serde_json::json!({"node": "img", "family": "inet"}),
            )
            .await?;
        mcp.end().await?;
        anyhow::Ok((nodes, [rules, filter], nft))
    })?;
    let row = node["structuredContent"]["nodes"]
        .as_array()
        .and_then(|a| a.iter().find(|n| n["node"] == "img"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        row["os"],
        os.as_str(),
        "list_nodes shows the mounted os-release: {node}"
    );
    let save = ns.run(&["iptables-save", "-c"])?;
    for (pages, table) in rules.iter().zip(["nat", "filter"]) {
        let got: Vec<String> = pages
            .iter()
            .flat_map(|p| p["rules"].as_array().cloned().unwrap_or_default())
            .map(|r| r["text"].as_str().unwrap_or_default().to_string())
            .collect();
        let want: Vec<String> = saved_rules(&save, table).into_iter().map(|r| r.0).collect();
        assert_eq!(
            got, want,
            "{table} through the images against iptables-save"
        );
        assert!(!want.is_empty());
        assert!(
            pages[0]["method"]
                .as_str()
                .unwrap_or_default()
                .starts_with("netlink"),
            "{}",
            pages[0]
        );
    }
    let nft_rules = nft["structuredContent"]["rules"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(nft_rules.len(), 1, "{nft}");
    assert_eq!(nft_rules[0]["text"], "tcp dport { 80, 443 } accept");
    Ok(())
}
