//! `diagnose_dns` through the in-process local agent's DNS probe (no root
//! needed) against stand-in resolvers on loopback addresses: every path
//! asked, a DNSSEC failure (SERVFAIL unless CD is set) named as such, a
//! resolver that does not answer named with its next step.

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
    let dir = tempfile::tempdir()?;
    let text = format!(
        "[dns]\nservers = [\"{}:5353\", \"{}:5353\"]\nunbound_port = 5335\n",
        servers[0], servers[1]
    );
    let config = labscope::config::file::Config::parse(&dir.path().join("c.toml"), &text)?;
    let ctx = labscope::config::AgentOptions {
        config: Arc::new(config),
        deadline: std::time::Duration::from_secs(5),
        ..Default::default()
    }
    .context()
    .await?;
    // Let the stand-ins bind.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let out = labscope::tools::call(
        ctx.clone(),
        &labscope::tools::served(&ctx),
        "diagnose_dns",
        json!({"domain": domain})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        labscope::tools::Call::default(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok((out.structured, out.text))
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
