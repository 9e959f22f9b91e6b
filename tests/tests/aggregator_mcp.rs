//! The aggregator end to end: an rmcp client against the server in-process
//! (duplex pipe), over stdio with the real binary, and over Streamable HTTP
//! with the API key; bad input and bad protocol; and (as root) agents in
//! network namespaces, one killed and one frozen, with the answer arriving
//! within the per-node deadline.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use labscope::config::AgentOptions;
use labscope_tests::mcp::{
    Aggregator, INITIALIZE, assert_text_shows, mcp_post, structured, text_of,
};
use labscope_tests::topology::Lab;
use labscope_tests::{AgentProcess, require_root, workspace_binary};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use serde_json::{Value, json};

type Client = RunningService<RoleClient, ()>;

/// Calls `tool` and checks the result against its advertised output schema.
async fn call(client: &Client, tool: &str, args: Value) -> anyhow::Result<CallToolResult> {
    let mut params = CallToolRequestParams::new(tool.to_string());
    if let Value::Object(map) = args {
        params = params.with_arguments(map);
    }
    let r = client.call_tool(params).await?;
    labscope_tests::mcp::validated(client, tool, r).await
}

/// Calls `tool`, which must succeed, and checks that its text carries the
/// findings the `patterns` select (see `assert_text_shows`).
async fn shown(
    client: &Client,
    tool: &str,
    args: Value,
    patterns: &[&str],
) -> anyhow::Result<Value> {
    let r = call(client, tool, args.clone()).await?;
    let (v, err) = structured(&r);
    anyhow::ensure!(!err, "{tool} {args} failed: {v}");
    assert_text_shows(tool, &v, &text_of(&r), patterns)?;
    Ok(v)
}

/// The text of prompt `name` filled in with `args`.
async fn prompt_text(client: &Client, name: &str, args: Value) -> anyhow::Result<String> {
    let mut params = rmcp::model::GetPromptRequestParams::new(name);
    if let Value::Object(map) = args {
        params = params.with_arguments(map);
    }
    let prompt = client.get_prompt(params).await?;
    Ok(prompt
        .messages
        .iter()
        .filter_map(|m| m.content.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n"))
}

/// What list_nodes's text must show, whatever the agents answer.
const LIST_NODES_SHOWS: &[&str] = &[
    "/summary/total",
    "/summary/agentsOk",
    "/nodes/*/node",
    "/nodes/*/agent/status",
    "/nodes/*/agent/reason",
    "/nodes/*/kernel",
    "/nodes/*/arch",
    "/nodes/*/conntrack/count",
    "/nodes/*/conntrack/max",
];

fn hostname() -> String {
    labscope::config::hostname()
}

fn local_options() -> AgentOptions {
    AgentOptions {
        deadline: Duration::from_secs(3),
        concurrency: 8,
        ..Default::default()
    }
}

#[tokio::test]
async fn in_process_lists_and_calls_every_node_tool() -> anyhow::Result<()> {
    let ctx = local_options().context().await?;
    let client = labscope_tests::mcp::in_process(ctx, ()).await?;
    let tools = client.list_all_tools().await?;
    let names: BTreeSet<String> = tools.iter().map(|t| t.name.to_string()).collect();
    for expected in [
        "list_nodes",
        "get_node_networking",
        "get_iptables_rules",
        "get_conntrack_entries",
        "test_pod_connectivity",
        "curl_ingress",
        "test_dns_query",
        "check_network_mesh",
    ] {
        assert!(
            names.contains(expected),
            "{expected} missing from {names:?}"
        );
    }
    for t in &tools {
        assert_eq!(
            t.input_schema.get("type"),
            Some(&json!("object")),
            "{}",
            t.name
        );
        let out = t
            .output_schema
            .as_ref()
            .unwrap_or_else(|| panic!("{} has no outputSchema", t.name));
        assert_eq!(out.get("type"), Some(&json!("object")));
        let ann = t
            .annotations
            .as_ref()
            .unwrap_or_else(|| panic!("{} has no annotations", t.name));
        assert_eq!(
            ann.read_only_hint,
            Some(true),
            "{}: node tools are read-only",
            t.name
        );
        // No destructive or idempotent hint on a read-only tool; the open
        // world stated (MCP's default, true, fits only the probes).
        assert_eq!(ann.destructive_hint, None);
        assert_eq!(ann.idempotent_hint, None);
        let probe = [
            "test_pod_connectivity",
            "curl_ingress",
            "test_dns_query",
            "diagnose_dns",
        ];
        assert_eq!(
            ann.open_world_hint,
            Some(probe.contains(&t.name.as_ref())),
            "{}",
            t.name
        );
        assert!(ann.title.is_none() && t.title.is_some(), "{}", t.name);
    }

    let me = hostname();
    let nodes = shown(&client, "list_nodes", json!({}), LIST_NODES_SHOWS).await?;
    assert_eq!(nodes["nodes"][0]["node"], json!(me));
    assert_eq!(nodes["nodes"][0]["agent"]["status"], "ok");
    assert!(
        nodes["nodes"][0]["memory"]["totalBytes"]
            .as_u64()
            .unwrap_or(0)
            > 0
    );

    // Every section's findings are in the text.
    shown(
        &client,
        "get_node_networking",
        json!({"node": me}),
        &[
            "/node",
            "/links/*/name",
            "/links/*/state",
            "/links/*/mtu",
            "/links/*/mac",
            "/routes/*/destination",
            "/routes/*/gateway",
            "/routes/*/dev",
            "/routes/*/table",
            "/routes/*/protocol",
            "/rules/*/priority",
            "/rules/*/family",
            "/rules/*/table",
            "/addresses/*/address",
            "/addresses/*/link",
            "/addresses/*/prefixLen",
        ],
    )
    .await?;
    // Networking matches `ip -j link` on this machine.
    let (net, err) = structured(
        &call(
            &client,
            "get_node_networking",
            json!({"node": me, "sections": ["links"]}),
        )
        .await?,
    );
    assert!(!err, "{net}");
    let ip_links: Value = serde_json::from_slice(
        &std::process::Command::new("ip")
            .args(["-j", "link"])
            .output()?
            .stdout,
    )?;
    let want: BTreeSet<String> = ip_links
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["ifname"].as_str().unwrap_or("").to_string())
        .collect();
    let got: BTreeSet<String> = net["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(got, want);
    assert_eq!(net["counts"]["links"]["total"], json!(want.len()));
    // Paging: one link per page, every link exactly once.
    let mut paged = BTreeSet::new();
    let mut cursor = String::new();
    for _ in 0..want.len() {
        let (page, err) = structured(
            &call(
                &client,
                "get_node_networking",
                json!({"node": me, "sections": ["links"], "limit": 1, "cursor": cursor}),
            )
            .await?,
        );
        assert!(!err, "{page}");
        assert_eq!(page["links"].as_array().map(Vec::len), Some(1));
        paged.insert(page["links"][0]["name"].as_str().unwrap_or("").to_string());
        cursor = page["nextCursor"].as_str().unwrap_or("").to_string();
    }
    assert!(cursor.is_empty(), "no cursor after the last page");
    assert_eq!(paged, want);

    // Probes from the local agent against a listener of this test.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let conn = shown(
        &client,
        "test_pod_connectivity",
        json!({"sourceNode": me, "target": "127.0.0.1", "port": port, "count": 1}),
        &[
            "/sourceNode",
            "/target",
            "/ping/address",
            "/ping/received",
            "/ping/transmitted",
            "/ping/method",
            "/tcp/address",
            "/tcp/port",
            "/tcp/outcome",
            "/tcp/connectMs",
        ],
    )
    .await?;
    assert_eq!(conn["tcp"]["outcome"], "open");
    drop(listener);
    let http = shown(
        &client,
        "curl_ingress",
        json!({"url": format!("http://127.0.0.1:{port}/"), "timeout": 2}),
        &[
            "/url",
            "/fromNode",
            "/outcome",
            "/error",
            "/remoteAddress",
            "/timingMs/total",
        ],
    )
    .await?;
    assert_eq!(
        http["outcome"], "connect_refused",
        "nothing listens any more: {http}"
    );
    assert_eq!(http["fromNode"], json!(me));
    let mesh = shown(
        &client,
        "check_network_mesh",
        json!({}),
        &["/nodes/*", "/note"],
    )
    .await?;
    assert_eq!(mesh["broken"], json!([]));
    assert!(
        mesh["note"]
            .as_str()
            .unwrap_or("")
            .contains("fewer than two")
    );

    // Failures: isError with {code, message, hint}, never an empty success.
    let cases = [
        (
            "get_node_networking",
            json!({"node": "no-such-node"}),
            "unknown_node",
        ),
        ("get_node_networking", json!({}), "invalid_argument"),
        (
            "get_conntrack_entries",
            json!({"node": me, "limit": 5000}),
            "invalid_argument",
        ),
        (
            "get_conntrack_entries",
            json!({"node": me, "limit": "ten"}),
            "invalid_argument",
        ),
        (
            "get_iptables_rules",
            json!({"node": me, "tabel": "nat"}),
            "invalid_argument",
        ),
        (
            "test_pod_connectivity",
            json!({"sourceNode": me, "target": "x; reboot", "port": 80}),
            "invalid_argument",
        ),
        (
            "test_dns_query",
            json!({"domain": "example.com"}),
            "not_configured",
        ),
        (
            "curl_ingress",
            json!({"url": "file:///etc/passwd"}),
            "invalid_argument",
        ),
    ];
    for (tool, args, code) in cases {
        let (v, err) = structured(&call(&client, tool, args.clone()).await?);
        assert!(err, "{tool} {args} should fail: {v}");
        assert_eq!(v["code"], code, "{tool} {args}: {v}");
        assert!(
            !v["message"].as_str().unwrap_or("").is_empty()
                && !v["hint"].as_str().unwrap_or("").is_empty()
        );
    }
    let unknown = call(&client, "no_such_tool", json!({})).await;
    assert!(unknown.is_err(), "an unknown tool is a protocol error");
    // The session still works after all that.
    assert!(!structured(&call(&client, "list_nodes", json!({})).await?).1);
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn stdio_transport_with_the_real_binary() -> anyhow::Result<()> {
    let bin = workspace_binary("labscope")?;
    let mut cmd = tokio::process::Command::new(bin);
    cmd.args(["serve", "--stdio"]).env("RUST_LOG", "off");
    let client = ().serve(TokioChildProcess::new(cmd)?).await?;
    let name = client
        .peer_info()
        .and_then(|i| i.server_info.as_ref().map(|s| s.name.clone()));
    assert_eq!(name.as_deref(), Some("labscope"));
    // Local mode (no cluster): only the node toolset is served, and the
    // instructions say what is not. Without [dns] servers, diagnose_dns could
    // only fail: not listed, and a call says what to configure.
    let tools = client.list_all_tools().await?;
    assert!(tools.iter().all(|t| t.name != "diagnose_dns"));
    let p = CallToolRequestParams::new("diagnose_dns").with_arguments(
        json!({"domain": "example.com"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    );
    let (v, err) = structured(&client.call_tool(p).await?);
    assert!(err && v["code"] == "not_configured", "{v}");
    assert!(
        v["hint"].as_str().is_some_and(|h| h.contains("[dns]")),
        "{v}"
    );
    assert_eq!(
        tools.len(),
        11,
        "{:?}",
        tools.iter().map(|t| t.name.to_string()).collect::<Vec<_>>()
    );
    let instructions = client
        .peer_info()
        .and_then(|i| i.instructions.clone())
        .unwrap_or_default();
    assert!(
        instructions.contains("node tools") && instructions.contains("Not enabled: cluster, flux"),
        "{instructions}"
    );
    // A tool of a set that is not served is a protocol error that says why.
    let mut p = CallToolRequestParams::new("get_flux_status");
    p = p.with_arguments(serde_json::Map::new());
    let e = client
        .call_tool(p)
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("toolset flux"), "{e}");
    let (nodes, err) = structured(&call(&client, "list_nodes", json!({})).await?);
    assert!(!err);
    assert_eq!(nodes["summary"]["agentsOk"], 1);
    // A cursor this server never gave is refused, not ignored.
    let bogus = rmcp::model::PaginatedRequestParams::default().with_cursor(Some("bogus".into()));
    let e = client
        .list_tools(Some(bogus))
        .await
        .err()
        .map(|e| e.to_string());
    assert!(
        e.as_deref().unwrap_or_default().contains("invalid cursor"),
        "{e:?}"
    );
    // Prompts: the node workflows, filled in with the user's values; the
    // Flux one is not offered without the flux toolset.
    let prompts: Vec<String> = client
        .list_all_prompts()
        .await?
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(prompts, ["dns_problem", "node_networking"]);
    let text = prompt_text(
        &client,
        "dns_problem",
        json!({"domain": "github.com", "server": "192.168.1.55"}),
    )
    .await?;
    assert!(
        text.contains("test_dns_query domain=github.com type=A server=192.168.1.55 fromNode")
            && !text.contains("get_pod_logs"),
        "{text}"
    );
    for (name, args, expected) in [
        ("dns_problem", json!({}), "\"domain\": required"),
        (
            "node_networking",
            json!({"node": "pi5", "port": "http"}),
            "not a port",
        ),
        ("stuck_flux_release", json!({}), "needs the flux toolset"),
    ] {
        let e = prompt_text(&client, name, args)
            .await
            .err()
            .map(|e| e.to_string());
        assert!(
            e.as_deref().unwrap_or_default().contains(expected),
            "{name}: {e:?}"
        );
    }
    client.cancel().await?;

    // --toolsets serves what it names, cluster or not.
    let mut cmd = tokio::process::Command::new(workspace_binary("labscope")?);
    cmd.args(["serve", "--stdio", "--toolsets", "node,flux"])
        .env("RUST_LOG", "off");
    let client = ().serve(TokioChildProcess::new(cmd)?).await?;
    let names: Vec<String> = client
        .list_all_tools()
        .await?
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    assert_eq!(names.len(), 13, "{names:?}");
    assert!(names.contains(&"get_image_automation_status".to_string()));
    let (v, err) = structured(&call(&client, "get_flux_status", json!({})).await?);
    assert!(err && v["code"] == "not_configured", "{v}");
    let text = prompt_text(
        &client,
        "stuck_flux_release",
        json!({"name": "pihole", "namespace": "pihole"}),
    )
    .await?;
    assert!(
        text.contains("get_flux_status onlyFailing=true namespace=pihole")
            && !text.contains("get_events"),
        "only served tools: {text}"
    );
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn http_auth_host_check_and_bad_requests() -> anyhow::Result<()> {
    let agg = Aggregator::start(None, &[], &[("LABSCOPE_API_KEY", "s3cret-key")])?;
    let addr = agg.addr.clone();
    let host = addr.clone();
    let (no_key, wrong, bearer, x_api, bad_host, malformed, oversized, stale, health, metrics, oauth) =
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let no_key = mcp_post(&addr, &host, "", INITIALIZE)?;
            let wrong = mcp_post(&addr, &host, "Authorization: Bearer nope\r\n", INITIALIZE)?;
            let bearer = mcp_post(&addr, &host, "Authorization: Bearer s3cret-key\r\n", INITIALIZE)?;
            let x_api = mcp_post(&addr, &host, "X-API-Key: s3cret-key\r\n", INITIALIZE)?.0;
            let bad_host = mcp_post(&addr, "evil.example:8080", "X-API-Key: s3cret-key\r\n", INITIALIZE)?.0;
            let malformed = mcp_post(&addr, &host, "X-API-Key: s3cret-key\r\n", "{not json")?.0;
            let big = format!(r#"{{"jsonrpc":"2.0","id":2,"method":"ping","params":{{"pad":"{}"}}}}"#, "x".repeat(2 * 1024 * 1024));
            let oversized = mcp_post(&addr, &host, "X-API-Key: s3cret-key\r\n", &big)?.0;
            let list = r#"{"jsonrpc":"2.0","id":3,"method":"tools/list","params":{}}"#;
            let stale = mcp_post(&addr, &host, "X-API-Key: s3cret-key\r\nMcp-Session-Id: 00000000-stale\r\nMCP-Protocol-Version: 2025-06-18\r\n", list)?.0;
            let get = |path: &str| labscope_tests::mcp::http_raw(&addr, &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"));
            let health = get("/healthz")?;
            let metrics = get("/metrics")?;
            // What OAuth-aware clients (MCP Inspector 2.x) ask after a 401.
            let oauth = [
                "/.well-known/oauth-protected-resource",
                "/.well-known/oauth-protected-resource/mcp",
                "/.well-known/oauth-authorization-server",
                "/.well-known/openid-configuration",
            ]
            .into_iter()
            .map(|p| Ok((p, get(p)?.0)))
            .collect::<anyhow::Result<Vec<_>>>()?;
            Ok((no_key, wrong, bearer, x_api, bad_host, malformed, oversized, stale, health, metrics, oauth))
        })
        .await??;
    // The refusal says which header was read and how to send the key.
    assert_eq!(no_key.0, 401);
    assert!(
        no_key.2.contains("missing API key") && no_key.2.contains("Authorization: Bearer <key>"),
        "{}",
        no_key.2
    );
    assert_eq!(wrong.0, 401);
    assert!(
        wrong.2.contains("wrong API key in Authorization: Bearer"),
        "{}",
        wrong.2
    );
    // An API key is the scheme: no OAuth metadata, and no 401 for it.
    for (path, status) in oauth {
        assert_eq!(status, 404, "{path}");
    }
    assert_eq!(bearer.0, 200, "{bearer:?}");
    assert!(bearer.2.contains("\"serverInfo\""), "{}", bearer.2);
    assert_eq!(x_api, 200);
    assert_eq!(
        bad_host, 403,
        "a Host header that is not allowed is refused"
    );
    assert!(
        (400..500).contains(&malformed),
        "malformed JSON-RPC: {malformed}"
    );
    assert_eq!(oversized, 413);
    assert!((400..500).contains(&stale), "stale session id: {stale}");
    assert_eq!(health.0, 200);
    assert!(health.2.contains("\"status\":\"ok\""));
    assert_eq!(metrics.0, 200);

    // A real client with the key, after all the bad requests.
    let config =
        StreamableHttpClientTransportConfig::with_uri(agg.url.clone()).auth_header("s3cret-key");
    let client = ().serve(StreamableHttpClientTransport::from_config(config)).await?;
    let (nodes, err) = structured(&call(&client, "list_nodes", json!({})).await?);
    assert!(!err && nodes["summary"]["agentsOk"] == 1);
    client.cancel().await?;
    let addr = agg.addr.clone();
    let metrics = tokio::task::spawn_blocking(move || {
        labscope_tests::mcp::http_raw(
            &addr,
            &format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
        )
    })
    .await??;
    assert!(
        metrics
            .2
            .contains("labscope_tool_calls_total{tool=\"list_nodes\",outcome=\"ok\"} 1"),
        "{}",
        metrics.2
    );

    // No key on a non-loopback address: refuse to start.
    let out = std::process::Command::new(workspace_binary("labscope")?)
        .args(["serve", "--http", "0.0.0.0:0"])
        .env_remove("LABSCOPE_API_KEY")
        .env_remove("LABSCOPE_API_KEY_FILE")
        .output()?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("without an API key"));
    Ok(())
}

#[test]
fn agents_in_namespaces_killed_and_frozen() -> anyhow::Result<()> {
    if !require_root("agents_in_namespaces_killed_and_frozen") {
        return Ok(());
    }
    let lab = Lab::build()?;
    let agent_c = AgentProcess::start(&lab.c, "10.201.1.2:9447", "lab-c", &[])?;
    let _agent_r = AgentProcess::start(&lab.r, "10.201.1.1:9447", "lab-r", &[])?;
    let agent_s = AgentProcess::start(&lab.s, "10.201.2.2:9447", "lab-s", &[])?;
    lab.traffic()?;
    let agg = Aggregator::start(
        Some(&lab.r.name),
        &[
            "--agent",
            "lab-c=http://10.201.1.2:9447",
            "--agent",
            "lab-r=http://10.201.1.1:9447",
            "--agent",
            "lab-s=http://10.201.2.2:9447",
            "--agent-deadline-ms",
            "1500",
            "--dns-server",
            "10.201.2.2",
        ],
        &[],
    )?;
    let url = agg.url.clone();
    let connect = move || {
        let url = url.clone();
        async move {
            let client = ().serve(StreamableHttpClientTransport::from_uri(url)).await?;
            anyhow::Ok(client)
        }
    };
    let c1 = connect.clone();
    let (nodes, net, ct, mesh, dns, paging) = lab.r.block_on(move || async move {
        let client = c1().await?;
        let nodes = shown(&client, "list_nodes", json!({}), LIST_NODES_SHOWS).await?;
        let net = structured(
            &call(
                &client,
                "get_node_networking",
                json!({"node": "lab-s", "sections": "addresses"}),
            )
            .await?,
        )
        .0;
        let ct = shown(
            &client,
            "get_conntrack_entries",
            json!({"node": "lab-r", "filter": "10.201.1.1", "port": 8080}),
            &[
                "/node",
                "/matched",
                "/entries/*/protocol",
                "/entries/*/state",
                "/entries/*/original/src",
                "/entries/*/original/dst",
                "/entries/*/original/dport",
                "/entries/*/reply/src",
                "/entries/*/reply/sport",
                "/entries/*/timeoutSeconds",
            ],
        )
        .await?;
        shown(
            &client,
            "get_iptables_rules",
            json!({"node": "lab-r", "table": "nat"}),
            &[
                "/node",
                "/table",
                "/backend",
                "/chains/*/name",
                "/chains/*/policy",
                "/rules/*/chain",
                "/rules/*/text",
                "/rules/*/target",
                "/rules/*/comment",
                "/rules/*/packets",
                "/rules/*/bytes",
            ],
        )
        .await?;
        let mesh = shown(&client, "check_network_mesh", json!({}), &["/nodes/*"]).await?;
        let dns = shown(
            &client,
            "test_dns_query",
            json!({"domain": "svc.lab.test", "fromNode": "lab-c"}),
            &[
                "/domain",
                "/type",
                "/server",
                "/fromNode",
                "/transport",
                "/rcode",
                "/answers/*/name",
                "/answers/*/type",
                "/answers/*/ttl",
                "/answers/*/data",
            ],
        )
        .await?;
        // A one-entry page says "at least"; its cursor continues the dump;
        // countAll reads everything and counts exactly.
        let lab_page = |extra: Value| {
            let mut args = json!({"node": "lab-r", "filter": "10.201.0.0/16", "limit": 1});
            for (k, v) in extra.as_object().cloned().unwrap_or_default() {
                args[k] = v;
            }
            args
        };
        let p1 = shown(
            &client,
            "get_conntrack_entries",
            lab_page(json!({})),
            &["/matched"],
        )
        .await?;
        let cursor = p1["nextCursor"].clone();
        let p2 = structured(
            &call(
                &client,
                "get_conntrack_entries",
                lab_page(json!({"cursor": cursor})),
            )
            .await?,
        )
        .0;
        let exact = structured(
            &call(
                &client,
                "get_conntrack_entries",
                lab_page(json!({"limit": 50, "countAll": true})),
            )
            .await?,
        )
        .0;
        // iptables pages: the agent pages one read; the cursor names it.
        let nat = |extra: Value| {
            let mut args = json!({"node": "lab-r", "table": "nat", "limit": 1});
            for (k, v) in extra.as_object().cloned().unwrap_or_default() {
                args[k] = v;
            }
            args
        };
        let f1 = structured(&call(&client, "get_iptables_rules", nat(json!({}))).await?).0;
        let r2 = call(
            &client,
            "get_iptables_rules",
            nat(json!({"cursor": f1["nextCursor"].clone(), "limit": 2000})),
        )
        .await?;
        let f2 = (structured(&r2).0, text_of(&r2));
        client.cancel().await?;
        Ok((nodes, net, ct, mesh, dns, (p1, p2, exact, f1, f2)))
    })?;
    let (p1, p2, exact, f1, (f2, f2_text)) = paging;
    let total = f1["total"].as_u64().unwrap_or(0);
    assert!(total >= 3, "{f1}");
    assert_eq!(
        (f1["returned"].as_u64(), f1["offset"].as_u64()),
        (Some(1), Some(0)),
        "{f1}"
    );
    assert_eq!(f2["total"], f1["total"], "{f2}");
    assert_eq!(f2["offset"], 1, "{f2}");
    assert_eq!(f2["returned"].as_u64(), Some(total - 1), "{f2}");
    assert!(f2.get("nextCursor").is_none(), "{f2}");
    assert_eq!(
        (
            f1["rulesetChanged"].as_bool(),
            f2["rulesetChanged"].as_bool()
        ),
        (Some(false), Some(false))
    );
    let chain_rules: u64 = f1["chains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["rules"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(chain_rules, total, "chains count all their rules");
    assert!(
        f2.get("chains").is_none() && f2_text.contains("chains: as on the first page"),
        "a later page of the same read leaves the chains out and says so: {f2} {f2_text}"
    );
    let saved = lab.r.run(&["iptables-save"])?;
    let want: Vec<String> = saved
        .lines()
        .skip_while(|l| *l != "*nat")
        .take_while(|l| *l != "COMMIT")
        .filter(|l| l.starts_with("-A "))
        .map(str::to_string)
        .collect();
    let mut got = vec![f1["rules"][0]["text"].as_str().unwrap_or("").to_string()];
    got.extend(
        f2["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["text"].as_str().unwrap_or("").to_string()),
    );
    assert_eq!(got, want, "the pages join up to iptables-save's nat table");
    assert_eq!(p1["returned"], 1, "{p1}");
    assert_eq!(p1["matchedIsLowerBound"], true, "{p1}");
    assert_eq!(p1["truncated"], true, "{p1}");
    assert_eq!(p2["returned"], 1, "{p2}");
    assert_ne!(
        p1["entries"][0]["id"], p2["entries"][0]["id"],
        "page 2 is the next entry"
    );
    assert_eq!(exact["matchedIsLowerBound"], false, "{exact}");
    let all = exact["entries"].as_array().map(Vec::len).unwrap_or(0) as u64;
    assert_eq!(exact["matched"].as_u64(), Some(all), "{exact}");
    assert!(
        all >= 4 && p1["matched"].as_u64().unwrap_or(0) <= all,
        "{p1} {exact}"
    );
    assert_eq!(nodes["summary"]["agentsOk"], 3, "{nodes}");
    let addrs: BTreeSet<String> = net["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["address"].as_str().unwrap_or("").to_string())
        .collect();
    let ip_addrs: Value = serde_json::from_str(&lab.s.ip(&["-j", "addr"])?)?;
    let want: BTreeSet<String> = ip_addrs
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
        .map(|a| a["local"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        addrs, want,
        "lab-s addresses through MCP vs ip -j addr in s"
    );
    assert_eq!(ct["matched"], 1, "{ct}");
    assert_eq!(ct["entries"][0]["reply"]["src"], "10.201.2.2");
    assert!(ct["entries"][0]["nat"]["dst"].as_bool().unwrap_or(false));
    assert_eq!(mesh["matrix"].as_array().map(Vec::len), Some(6), "{mesh}");
    assert_eq!(mesh["broken"], json!([]), "{mesh}");
    assert_eq!(dns["rcode"], "NOERROR", "{dns}");
    assert_eq!(dns["answers"][0]["data"], "10.201.2.2");

    // Cut c off from s: exactly the two pairs between them break.
    lab.c
        .run(&["iptables", "-A", "INPUT", "-s", "10.201.2.2", "-j", "DROP"])?;
    let c2 = connect.clone();
    let mesh = lab.r.block_on(move || async move {
        let client = c2().await?;
        let mesh = shown(
            &client,
            "check_network_mesh",
            json!({}),
            &["/broken/*/from", "/broken/*/to"],
        )
        .await?;
        client.cancel().await?;
        Ok(mesh)
    })?;
    let broken: BTreeSet<(String, String)> = mesh["broken"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["from"].as_str().unwrap_or("").to_string(),
                b["to"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let expected: BTreeSet<(String, String)> = [("lab-c", "lab-s"), ("lab-s", "lab-c")]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(broken, expected, "{mesh}");

    // Kill c's agent and freeze s's: the answer still comes, within the deadline.
    let s_pid = agent_s.pid();
    drop(agent_c);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(s_pid as i32),
        nix::sys::signal::Signal::SIGSTOP,
    )?;
    let c3 = connect.clone();
    let outcome = lab.r.block_on(move || async move {
        let client = c3().await?;
        let started = Instant::now();
        let nodes = shown(&client, "list_nodes", json!({}), LIST_NODES_SHOWS).await?;
        let took = started.elapsed();
        let mesh = shown(
            &client,
            "check_network_mesh",
            json!({}),
            &["/agents/*/node", "/agents/*/status", "/agents/*/reason"],
        )
        .await?;
        client.cancel().await?;
        Ok((nodes, took, mesh))
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(s_pid as i32),
        nix::sys::signal::Signal::SIGCONT,
    )?;
    let (nodes, took, mesh) = outcome?;
    let status = |name: &str| {
        nodes["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node"] == name)
            .map(|n| n["agent"]["status"].clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(status("lab-c"), "unavailable", "{nodes}");
    assert_eq!(status("lab-s"), "timeout", "{nodes}");
    assert_eq!(status("lab-r"), "ok", "{nodes}");
    assert!(
        took < Duration::from_millis(1500 + 1000),
        "list_nodes took {took:?} with a 1.5 s deadline"
    );
    let agents: Vec<&Value> = mesh["agents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["status"] != "ok")
        .collect();
    assert_eq!(agents.len(), 2, "{mesh}");
    Ok(())
}

/// Records the progress notifications a client receives.
#[derive(Clone, Default)]
struct ProgressRecorder(
    std::sync::Arc<std::sync::Mutex<Vec<rmcp::model::ProgressNotificationParam>>>,
);

impl rmcp::ClientHandler for ProgressRecorder {
    async fn on_progress(
        &self,
        params: rmcp::model::ProgressNotificationParam,
        _context: rmcp::service::NotificationContext<RoleClient>,
    ) {
        if let Ok(mut seen) = self.0.lock() {
            seen.push(params);
        }
    }
}

fn curl_params(port: u16, timeout: u64) -> CallToolRequestParams {
    CallToolRequestParams::new("curl_ingress").with_arguments(
        json!({"url": format!("http://127.0.0.1:{port}/"), "timeout": timeout})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    )
}

#[tokio::test]
async fn progress_notifications_while_a_probe_waits() -> anyhow::Result<()> {
    let ctx = local_options().context().await?;
    let recorder = ProgressRecorder::default();
    let client = labscope_tests::mcp::in_process(ctx, recorder.clone()).await?;
    // A server that accepts and never answers: curl_ingress waits for its
    // whole timeout (3 s), long enough for ticks.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            open.push(s);
        }
    });
    let token = rmcp::model::ProgressToken(rmcp::model::NumberOrString::Number(7));
    let mut params = curl_params(port, 3);
    params.meta = Some(rmcp::model::RequestMetaObject::with_progress_token(token));
    let result = client.call_tool(params).await?;
    let result = labscope_tests::mcp::validated(&client, "curl_ingress", result).await?;
    let (http, err) = structured(&result);
    assert!(!err && http["outcome"] == "timeout", "{http}");
    // The last notification may still be on its way when the result lands.
    let deadline = Instant::now() + Duration::from_secs(2);
    let seen = loop {
        let seen = recorder.0.lock().map(|s| s.clone()).unwrap_or_default();
        let done = seen
            .iter()
            .any(|p| p.message.as_deref().is_some_and(|m| m.ends_with("done")));
        if done || Instant::now() > deadline {
            break seen;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let progress: Vec<f64> = seen.iter().map(|p| p.progress).collect();
    assert!(
        seen.len() >= 4,
        "start, at least two ticks, done: {progress:?}"
    );
    // (rmcp's client sets its own token for each request; the server must
    // echo whichever it got, the same on every notification.)
    for p in &seen {
        assert!(
            p.progress_token == seen[0].progress_token && p.total.is_some(),
            "{:?} {:?} {:?}",
            p.progress_token,
            p.total,
            p.message
        );
    }
    assert!(
        progress.windows(2).all(|w| w[0] < w[1]),
        "progress increases: {progress:?}"
    );
    let first = seen[0].message.clone().unwrap_or_default();
    assert!(first.contains(&format!("127.0.0.1:{port}")), "{first}");
    held.abort();
    client.cancel().await?;
    Ok(())
}

/// Many calls over one kept-alive HTTP/1.1 connection, as the SDKs' pooled
/// clients make them: each answers on the same connection, in order. (The
/// latency this used to cost — Nagle holding the last write of each
/// response — is measured by bench-mcp, not asserted here.)
#[tokio::test]
async fn calls_over_one_kept_alive_connection() -> anyhow::Result<()> {
    let agg = Aggregator::start(None, &[], &[])?;
    let mut keep = labscope_tests::mcp::KeepAlive::connect(&agg.addr).await?;
    for _ in 0..5 {
        let r = keep.call("list_nodes", json!({})).await?;
        assert_eq!(r["structuredContent"]["summary"]["agentsOk"], 1, "{r}");
    }
    let r = keep
        .call("get_node_networking", json!({"node": "nope"}))
        .await?;
    assert_eq!(r["isError"], true, "{r}");
    // Ending the session is a 204, which the Python SDK accepts silently
    // (it warns "Session termination failed" on rmcp's 202).
    assert_eq!(keep.end().await?, 204);
    Ok(())
}

/// `--max-sessions`: clients that never end their sessions cannot grow the
/// server without bound; at the cap the least recently used session is
/// closed (its next call fails), and the others keep working.
#[tokio::test]
async fn sessions_are_capped_least_recently_used_first() -> anyhow::Result<()> {
    use labscope_tests::mcp::KeepAlive;
    let agg = Aggregator::start(None, &["--max-sessions", "3"], &[])?;
    let mut s1 = KeepAlive::connect(&agg.addr).await?;
    let mut s2 = KeepAlive::connect(&agg.addr).await?;
    let mut s3 = KeepAlive::connect(&agg.addr).await?;
    // s1 used last: s2 is now the least recently used.
    s1.call("list_nodes", json!({})).await?;
    let mut s4 = KeepAlive::connect(&agg.addr).await?;
    let gone = s2.call("list_nodes", json!({})).await;
    let e = gone.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("HTTP 404"), "s2 was closed for s4: {e:?}");
    for (name, s) in [("s1", &mut s1), ("s3", &mut s3), ("s4", &mut s4)] {
        let r = s.call("list_nodes", json!({})).await?;
        assert_eq!(
            r["structuredContent"]["summary"]["agentsOk"], 1,
            "{name}: {r}"
        );
    }
    // A fifth takes the place of the oldest again (s1 was used before s3
    // and s4 this time round).
    let mut s5 = KeepAlive::connect(&agg.addr).await?;
    assert!(
        s1.call("list_nodes", json!({})).await.is_err(),
        "s1 was closed for s5"
    );
    s5.call("list_nodes", json!({})).await?;
    s4.call("list_nodes", json!({})).await?;
    let (status, _, metrics) = labscope_tests::mcp::http_raw(
        &agg.addr,
        &format!(
            "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            agg.addr
        ),
    )?;
    assert_eq!(status, 200);
    assert!(metrics.contains("\nlabscope_mcp_sessions 3\n"), "{metrics}");
    // A burst of new sessions at once does not overshoot the cap. (With 8
    // for 3 places, some are closed again before their handshake ends: those
    // fail with 404, as a closed session does.)
    let burst: Vec<_> = (0..8)
        .map(|_| {
            let addr = agg.addr.clone();
            tokio::spawn(async move { KeepAlive::connect(&addr).await.map(|_| ()) })
        })
        .collect();
    let mut connected = 0;
    for b in burst {
        match b.await? {
            Ok(()) => connected += 1,
            Err(e) => assert!(e.to_string().contains("HTTP 404"), "{e}"),
        }
    }
    assert!(connected >= 1, "the newest sessions of a burst survive it");
    let (_, _, metrics) = labscope_tests::mcp::http_raw(
        &agg.addr,
        &format!(
            "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            agg.addr
        ),
    )?;
    assert!(metrics.contains("\nlabscope_mcp_sessions 3\n"), "{metrics}");
    Ok(())
}
