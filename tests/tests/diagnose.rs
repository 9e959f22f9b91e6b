//! `diagnose_dns` through the in-process local agent's DNS probe (no root
//! needed) against stand-in resolvers on loopback addresses: every path
//! asked, a DNSSEC failure (SERVFAIL unless CD is set) named as such, a
//! resolver that does not answer named with its next step; with the fake
//! Kubernetes API, Unbound's log lines about the name (HOMELAB.md §3.k).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use serde_json::{Value, json};

const ANSWER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 80));

/// Resolver stand-ins on `host`: a "Pi-hole" on :5353 and an "Unbound"
/// on :5335 (unless `unbound` is false), both answering host.lab and
/// SERVFAILing servfail.* unless CD is set.
fn resolvers(host: Ipv4Addr, unbound: bool) {
    tokio::spawn(labscope_tests::servers::dns(
        SocketAddr::new(host.into(), 5353),
        "host.lab",
        ANSWER,
    ));
    if unbound {
        tokio::spawn(labscope_tests::servers::dns(
            SocketAddr::new(host.into(), 5335),
            "host.lab",
            ANSWER,
        ));
    }
}

async fn diagnose(servers: [Ipv4Addr; 2], domain: &str) -> anyhow::Result<(Value, String)> {
    diagnose_with(servers, domain, None).await
}

/// Like [`diagnose`], with the fake Kubernetes API serving the homelab in
/// `scenarios` when given.
async fn diagnose_with(
    servers: [Ipv4Addr; 2],
    domain: &str,
    scenarios: Option<&[&str]>,
) -> anyhow::Result<(Value, String)> {
    let dir = tempfile::tempdir()?;
    let fake = match scenarios {
        Some(s) => Some(
            labscope_tests::fake_kube::FakeKube::start(labscope_tests::homelab::homelab(s)?)
                .await?,
        ),
        None => None,
    };
    let kubeconfig = match &fake {
        Some(f) => Some(f.write_kubeconfig(dir.path())?),
        None => None,
    };
    // With a Kubernetes API labscope does not run its in-process agent: an
    // agent on a loopback port probes instead (lives as long as the test).
    let mut agents = Vec::new();
    if fake.is_some() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        tokio::spawn(labscope_agent::server::serve_listener(
            listener,
            labscope_agent::server::Options::new("probe"),
            std::future::pending::<()>(),
        ));
        agents.push(format!("probe=http://127.0.0.1:{port}").parse()?);
    }
    let text = format!(
        "[dns]\nservers = [\"{}:5353\", \"{}:5353\"]\nunbound_port = 5335\n",
        servers[0], servers[1]
    );
    let config = labscope::config::file::Config::parse(&dir.path().join("c.toml"), &text)?;
    let ctx = labscope::config::AgentOptions {
        config: Arc::new(config),
        deadline: std::time::Duration::from_secs(5),
        kubeconfig,
        agents,
        now: fake
            .as_ref()
            .map(|_| labscope_tests::fake_kube::FIXTURE_NOW),
        ..Default::default()
    }
    .context()
    .await?;
    // Let the stand-ins bind.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    // Through an MCP client, the answer checked against the advertised
    // output schema as the TypeScript SDK checks it.
    let client = labscope_tests::mcp::in_process(ctx, ()).await?;
    let mut params = rmcp::model::CallToolRequestParams::new("diagnose_dns");
    params.arguments = json!({"domain": domain}).as_object().cloned();
    let r = client.call_tool(params).await?;
    let r = labscope_tests::mcp::validated(&client, "diagnose_dns", r).await?;
    let (v, is_error) = labscope_tests::mcp::structured(&r);
    anyhow::ensure!(!is_error, "diagnose_dns failed: {v}");
    Ok((v, labscope_tests::mcp::text_of(&r)))
}

fn path<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["paths"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["path"] == name))
        .unwrap_or(&Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_path_answers() -> anyhow::Result<()> {
    let (a, b) = (Ipv4Addr::new(127, 0, 0, 31), Ipv4Addr::new(127, 0, 0, 32));
    resolvers(a, true);
    resolvers(b, true);
    let (v, text) = diagnose([a, b], "host.lab").await?;
    for p in [
        "pihole primary",
        "unbound primary",
        "pihole secondary",
        "unbound secondary",
    ] {
        assert_eq!(path(&v, p)["rcode"], "NOERROR", "{p}: {v}");
        assert_eq!(path(&v, p)["answers"][0], "192.168.1.80");
    }
    assert_eq!(path(&v, "unbound secondary")["server"], "127.0.0.32:5335");
    assert_eq!(v["findings"][0]["severity"], "info");
    assert!(
        v["findings"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("every path answers"))
    );
    assert!(
        text.contains("unbound secondary (127.0.0.32:5335): NOERROR"),
        "{text}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dnssec_failure_is_named() -> anyhow::Result<()> {
    let (a, b) = (Ipv4Addr::new(127, 0, 0, 33), Ipv4Addr::new(127, 0, 0, 34));
    resolvers(a, true);
    resolvers(b, true);
    let (v, text) = diagnose([a, b], "servfail.lab").await?;
    assert_eq!(path(&v, "unbound primary")["rcode"], "SERVFAIL");
    assert_eq!(
        path(&v, "unbound primary")["checkingDisabledRcode"],
        "NOERROR"
    );
    let f = &v["findings"][0];
    assert_eq!(f["severity"], "error", "{v}");
    assert!(
        f["message"]
            .as_str()
            .is_some_and(|m| m.contains("DNSSEC") && m.contains("unbound primary")),
        "{f}"
    );
    assert!(
        f["next"].as_str().is_some_and(|n| n.contains("clock")),
        "{f}"
    );
    assert!(
        text.contains("with CD: NOERROR") && text.contains("DNSSEC"),
        "{text}"
    );
    // Without a Kubernetes API the logs are not read, and the answer says so.
    assert_eq!(v["unboundLog"]["read"], false, "{v}");
    assert!(
        v["unboundLog"]["note"]
            .as_str()
            .is_some_and(|n| n.contains("no Kubernetes API")),
        "{v}"
    );
    assert!(text.contains("Unbound log not read"), "{text}");
    Ok(())
}

/// HOMELAB.md §3.k: both Unbounds SERVFAIL peaceloveandpizza.com unless CD
/// is set, and their logs (fake API) hold the validation failures, which
/// the DNSSEC finding quotes; the fix names the conf.d file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbound_log_lines_back_the_dnssec_finding() -> anyhow::Result<()> {
    let (a, b) = (Ipv4Addr::new(127, 0, 0, 37), Ipv4Addr::new(127, 0, 0, 38));
    resolvers(a, true);
    resolvers(b, true);
    let (v, text) =
        diagnose_with([a, b], "peaceloveandpizza.com", Some(&["dnssec-servfail"])).await?;
    let log = &v["unboundLog"];
    assert_eq!(log["read"], true, "{v}");
    let lines = log["lines"].as_array().cloned().unwrap_or_default();
    // Three of each pod's five lines name the domain (one is about www.).
    assert_eq!(lines.len(), 6, "{log}");
    let pods: std::collections::BTreeSet<&str> =
        lines.iter().filter_map(|l| l["pod"].as_str()).collect();
    assert_eq!(pods.len(), 2, "both Unbounds: {log}");
    assert!(
        pods.iter().any(|p| p.starts_with("unbound-secondary-"))
            && pods.iter().any(|p| !p.starts_with("unbound-secondary-")),
        "{pods:?}"
    );
    assert!(
        lines.iter().all(|l| l["line"]
            .as_str()
            .is_some_and(|t| t.contains("peaceloveandpizza.com") && !t.contains("TXT IN"))),
        "only the last ten minutes (a line of the day before is left out): {log}"
    );
    let f = &v["findings"][0];
    let message = f["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("DNSSEC validation fails")
            && message.contains("Unbound logged 6 validation failures")
            && message.contains("no keys have a DS with algorithm RSASHA256"),
        "{f}"
    );
    let next = f["next"].as_str().unwrap_or_default();
    assert!(
        next.contains("domain-insecure: \"peaceloveandpizza.com\"")
            && next.contains("dnssec-exceptions.conf")
            && next.contains("unbound-secondary"),
        "{f}"
    );
    assert!(
        text.contains("Unbound log, last 10 min")
            && text.contains("validation failure <peaceloveandpizza.com. A IN>"),
        "{text}"
    );

    // A name the logs do not mention: read, no lines, nothing quoted.
    let (v, _) = diagnose_with([a, b], "host.lab", Some(&["dnssec-servfail"])).await?;
    assert_eq!(v["unboundLog"]["read"], true, "{v}");
    assert_eq!(v["unboundLog"]["lines"], serde_json::json!([]), "{v}");
    assert!(
        !v["findings"].to_string().contains("validation failures"),
        "{v}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_resolver_and_a_masking_cache_are_named() -> anyhow::Result<()> {
    let (a, b) = (Ipv4Addr::new(127, 0, 0, 35), Ipv4Addr::new(127, 0, 0, 36));
    resolvers(a, true);
    resolvers(b, false);
    let (v, _) = diagnose([a, b], "host.lab").await?;
    assert_eq!(path(&v, "unbound secondary")["rcode"], "");
    let findings = v["findings"].to_string();
    assert!(
        findings.contains("unbound secondary (127.0.0.36:5335) does not answer"),
        "{findings}"
    );
    assert!(
        findings.contains(
            "Pi-hole secondary answers host.lab from its cache while the Unbound behind it fails"
        ),
        "{findings}"
    );
    Ok(())
}
