//! `get_dns_status` against two fake Pi-hole v6 instances (HOMELAB.md
//! §3.d) and the fake Kubernetes API's homelab (§3.e: the completed Job
//! pods in `pihole` must not count), through a real rmcp client: one login
//! per instance under 20 concurrent calls, a rejected password and rate
//! limiting named as what they are (and no login during the cool-down),
//! blocking disabled with its timer, and "not configured" never healthy.

use std::sync::Arc;

use labscope_tests::fake_pihole::{FakePihole, PiholeOptions};
use labscope_tests::homelab::homelab;
use labscope_tests::mcp::{assert_text_shows, structured, text_of, validated};
use serde_json::Value;

struct Setup {
    primary: FakePihole,
    secondary: FakePihole,
    client: rmcp::service::RunningService<rmcp::RoleClient, ()>,
    _fake: labscope_tests::fake_kube::FakeKube,
    _dir: tempfile::TempDir,
}

/// Two fake Pi-holes (`primary`, `secondary` options), the homelab's API,
/// and labscope configured for them (passwords from files: `password` is
/// what labscope is given for the primary).
async fn setup(
    primary: PiholeOptions,
    secondary: PiholeOptions,
    password: &str,
) -> anyhow::Result<Setup> {
    let dir = tempfile::tempdir()?;
    let p = FakePihole::start(primary).await?;
    let s = FakePihole::start(secondary.clone()).await?;
    std::fs::write(dir.path().join("pw1"), format!("{password}\n"))?;
    std::fs::write(dir.path().join("pw2"), &secondary.password)?;
    let text = format!(
        "[pihole.primary]\nurl = \"{}\"\npassword_file = \"{}\"\n[pihole.secondary]\nurl = \"{}\"\npassword_file = \"{}\"\n",
        p.url,
        dir.path().join("pw1").display(),
        s.url,
        dir.path().join("pw2").display()
    );
    let path = dir.path().join("labscope.toml");
    std::fs::write(&path, text)?;
    let config = labscope::config::file::Config::load(&path)?;
    let fake = labscope_tests::fake_kube::FakeKube::start(homelab(&[])?).await?;
    let options = labscope::config::AgentOptions {
        kubeconfig: Some(fake.write_kubeconfig(dir.path())?),
        config: Arc::new(config),
        now: Some(labscope_tests::fake_kube::FIXTURE_NOW),
        ..Default::default()
    };
    let ctx = options.context().await?;
    let client = labscope_tests::mcp::in_process(ctx, ()).await?;
    Ok(Setup {
        primary: p,
        secondary: s,
        client,
        _fake: fake,
        _dir: dir,
    })
}

async fn dns_status(
    client: &rmcp::service::Peer<rmcp::RoleClient>,
) -> anyhow::Result<(Value, String)> {
    let r = client
        .call_tool(rmcp::model::CallToolRequestParams::new("get_dns_status"))
        .await?;
    let r = validated(client, "get_dns_status", r).await?;
    let (v, is_error) = structured(&r);
    anyhow::ensure!(!is_error, "get_dns_status failed: {v}");
    Ok((v, text_of(&r)))
}

fn pihole<'a>(v: &'a Value, instance: &str) -> &'a Value {
    v["piholes"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["instance"] == instance))
        .unwrap_or(&Value::Null)
}

#[tokio::test]
async fn twenty_concurrent_calls_log_in_once_per_instance() -> anyhow::Result<()> {
    let opts = PiholeOptions::default();
    let s = setup(opts.clone(), opts.clone(), &opts.password).await?;
    let peer = s.client.peer().clone();
    let calls = (0..20).map(|_| {
        let peer = peer.clone();
        async move { dns_status(&peer).await }
    });
    let results = futures::future::join_all(calls).await;
    for r in &results {
        let (v, _) = r.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
        assert_eq!(v["verdict"], "healthy", "{v}");
    }
    assert_eq!(s.primary.logins(), 1, "one login for the primary");
    assert_eq!(s.secondary.logins(), 1, "one login for the secondary");
    let (v, text) = &results[0].as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
    let p = pihole(v, "primary");
    assert_eq!(p["blocking"], "enabled");
    assert_eq!(p["stats"]["queries"], 395581);
    assert_eq!(p["stats"]["gravityUpdated"], "2026-08-16T03:41:00Z");
    assert!(
        p["stats"]["gravityAgeDays"]
            .as_f64()
            .is_some_and(|d| (4.0..5.0).contains(&d)),
        "{p}"
    );
    // §3.e: four DNS workloads, one pod each; the completed Job pods and the
    // exporters are not among them.
    let workloads = v["workloads"].as_array().cloned().unwrap_or_default();
    assert_eq!(workloads.len(), 4);
    for w in &workloads {
        assert_eq!(w["status"], "ok", "{w}");
        assert_eq!(w["pods"], 1, "{w}");
    }
    assert!(
        text.contains("DNS: healthy") && text.contains("395581"),
        "{text}"
    );
    assert_text_shows(
        "get_dns_status",
        v,
        text,
        &[
            "/verdict",
            "/piholes/*/instance",
            "/piholes/*/blocking",
            "/piholes/*/stats/queries",
            "/workloads/*/name",
            "/workloads/*/status",
        ],
    )?;
    // A later call reuses the session.
    dns_status(&peer).await?;
    assert_eq!(s.primary.logins(), 1);
    Ok(())
}

#[tokio::test]
async fn a_rejected_password_is_never_healthy() -> anyhow::Result<()> {
    let opts = PiholeOptions::default();
    let s = setup(opts.clone(), opts.clone(), "an old password").await?;
    let (v, text) = dns_status(s.client.peer()).await?;
    assert_ne!(v["verdict"], "healthy", "{v}");
    let p = pihole(&v, "primary");
    assert_eq!(p["error"]["code"], "wrong_password", "{p}");
    assert!(
        p["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("401 on /api/auth"))
    );
    assert!(text.contains("rejected the password"), "{text}");
    assert_eq!(pihole(&v, "secondary")["ok"], true);
    // Within the cool-down a second call does not try the password again.
    let (v, _) = dns_status(s.client.peer()).await?;
    assert_eq!(pihole(&v, "primary")["error"]["code"], "wrong_password");
    assert_eq!(s.primary.logins(), 1);
    Ok(())
}

#[tokio::test]
async fn rate_limiting_is_named_and_waited_out() -> anyhow::Result<()> {
    for retry_after in [Some(30), None] {
        let tripped = PiholeOptions {
            tripped: true,
            retry_after,
            lockout: std::time::Duration::from_secs(60),
            ..PiholeOptions::default()
        };
        let s = setup(tripped.clone(), PiholeOptions::default(), &tripped.password).await?;
        let peer = s.client.peer().clone();
        let results = futures::future::join_all((0..5).map(|_| {
            let peer = peer.clone();
            async move { dns_status(&peer).await }
        }))
        .await;
        for r in results {
            let (v, _) = r?;
            assert_ne!(v["verdict"], "healthy");
            let e = &pihole(&v, "primary")["error"];
            assert_eq!(e["code"], "rate_limited", "{e}");
            let m = e["message"].as_str().unwrap_or_default();
            assert!(
                !m.contains("password"),
                "rate limiting is not a password problem: {m}"
            );
            match retry_after {
                Some(_) => assert!(m.contains("Retry-After") && m.contains(" s"), "{m}"),
                None => assert!(m.contains("no Retry-After"), "{m}"),
            }
        }
        assert_eq!(
            s.primary.logins(),
            1,
            "one login, then none during the cool-down ({retry_after:?})"
        );
    }
    Ok(())
}

#[tokio::test]
async fn blocking_disabled_shows_its_timer() -> anyhow::Result<()> {
    let off = PiholeOptions {
        blocking: ("disabled".into(), Some(300.0)),
        messages: vec![(
            "RATE_LIMIT".into(),
            "Rate-limiting 192.168.1.112 for at least 5 seconds".into(),
        )],
        old_messages: true,
        ..PiholeOptions::default()
    };
    let s = setup(off.clone(), PiholeOptions::default(), &off.password).await?;
    let (v, text) = dns_status(s.client.peer()).await?;
    assert_eq!(v["verdict"], "degraded", "{v}");
    let p = pihole(&v, "primary");
    assert_eq!(p["blocking"], "disabled");
    assert_eq!(p["blockingTimer"], 300.0);
    assert!(
        v["issues"]
            .to_string()
            .contains("blocking disabled, switches back in 5 min"),
        "{}",
        v["issues"]
    );
    assert_eq!(
        p["messages"][0],
        "RATE_LIMIT: Rate-limiting 192.168.1.112 for at least 5 seconds"
    );
    assert!(text.contains("switches back in 5 min"));
    Ok(())
}

#[tokio::test]
async fn a_renamed_field_is_an_error_naming_it_not_a_zero() -> anyhow::Result<()> {
    let renamed = PiholeOptions {
        renamed_total: true,
        ..PiholeOptions::default()
    };
    let s = setup(renamed.clone(), PiholeOptions::default(), &renamed.password).await?;
    let (v, text) = dns_status(s.client.peer()).await?;
    let p = pihole(&v, "primary");
    let e = &p["error"];
    assert_eq!(e["code"], "bad_response", "{v}");
    let m = e["message"].as_str().unwrap_or_default();
    assert!(
        m.contains("/api/stats/summary") && m.contains("queries.total"),
        "the error names the answer and the field: {m}"
    );
    assert!(p["stats"].is_null(), "no statistics made of zeros: {p}");
    assert_ne!(v["verdict"], "healthy", "{v}");
    assert!(text.contains("queries.total"), "{text}");
    // The other instance, on today's API, is read in full.
    let other = pihole(&v, "secondary");
    assert_eq!(other["stats"]["queries"], 395581, "{other}");
    Ok(())
}

#[tokio::test]
async fn without_a_pihole_configured_it_is_not_configured() -> anyhow::Result<()> {
    let fake = labscope_tests::fake_kube::FakeKube::start(homelab(&[])?).await?;
    let dir = tempfile::tempdir()?;
    let options = labscope::config::AgentOptions {
        kubeconfig: Some(fake.write_kubeconfig(dir.path())?),
        toolsets: Some(labscope::tools::Toolset::ALL.to_vec()),
        ..Default::default()
    };
    let ctx = options.context().await?;
    let out = labscope::tools::call(
        ctx.clone(),
        &labscope::tools::served(&ctx),
        "get_dns_status",
        serde_json::Map::new(),
        labscope::tools::Call::default(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    assert_eq!(out.structured["verdict"], "not configured");
    assert!(out.text.contains("[pihole.primary]"));
    // Unasked, the services toolset is not served without a Pi-hole.
    let default = labscope::config::AgentOptions {
        kubeconfig: Some(fake.write_kubeconfig(dir.path())?),
        ..Default::default()
    };
    let ctx = default.context().await?;
    assert!(!ctx.toolsets.contains(&labscope::tools::Toolset::Services));
    Ok(())
}

/// The client itself, 20 tasks at once on a multi-threaded runtime: one
/// login; logout ends the session on the Pi-hole.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_login_in_flight_and_logout() -> anyhow::Result<()> {
    use labscope::services::{http::Http, pihole::Pihole};
    let opts = PiholeOptions::default();
    let fake = FakePihole::start(opts.clone()).await?;
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("pw"), &opts.password)?;
    let config = labscope::config::file::Config::parse(
        &dir.path().join("c.toml"),
        &format!(
            "[pihole.primary]\nurl = \"{}\"\npassword_file = \"{}\"\n",
            fake.url,
            dir.path().join("pw").display()
        ),
    )?;
    let svc = config.pihole_primary.expect("configured");
    let client = Arc::new(Pihole::new(
        "primary",
        svc.url,
        svc.secret,
        Arc::new(Http::new(std::time::Duration::from_secs(5))),
    ));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.get("/api/dns/blocking").await })
        })
        .collect();
    for t in tasks {
        let v = t.await?.map_err(|e| anyhow::anyhow!("{e}"))?;
        assert_eq!(v["blocking"], "enabled");
    }
    assert_eq!(fake.logins(), 1);
    assert_eq!(client.logins(), 1);
    assert_eq!(fake.sessions(), 1);
    client.logout().await;
    assert_eq!(fake.sessions(), 0, "logout ends the session");
    Ok(())
}

/// The query log and the allow-list reach the caller — filters passed to
/// Pi-hole, and a 500 is an error, never an empty list; gravity is a
/// mutation (refused unless allowed) that streams FTL's progress.
#[tokio::test]
async fn queries_whitelist_and_gravity() -> anyhow::Result<()> {
    let opts = PiholeOptions {
        gravity_step: std::time::Duration::from_millis(20),
        ..PiholeOptions::default()
    };
    let broken = PiholeOptions {
        list_error: true,
        ..PiholeOptions::default()
    };
    let primary = FakePihole::start(opts.clone()).await?;
    let secondary = FakePihole::start(broken.clone()).await?;
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("pw"), &opts.password)?;
    let audit = dir.path().join("audit.jsonl");
    let text = |gravity: bool| {
        format!(
            "[pihole.primary]\nurl = \"{}\"\npassword_file = \"{pw}\"\n[pihole.secondary]\nurl = \"{}\"\npassword_file = \"{pw}\"\n\
             [mutations]\nenabled = true\naudit_log = \"{}\"\npihole_gravity = {gravity}\n",
            primary.url,
            secondary.url,
            audit.display(),
            pw = dir.path().join("pw").display(),
        )
    };
    // One context per configuration, as one aggregator process would be:
    // each logs in once (the fake trips after more than 2 logins a second).
    let context = |config: labscope::config::file::Config| async move {
        labscope::config::AgentOptions {
            config: Arc::new(config),
            ..Default::default()
        }
        .context()
        .await
    };
    let call = |ctx: Arc<labscope::tools::ToolContext>, tool: &'static str, args: Value| async move {
        let progress = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let sink = progress.clone();
        let call = labscope::tools::Call::with_progress(move |_, _, m| {
            if let Ok(mut p) = sink.lock() {
                p.push(m)
            }
        });
        let args = args.as_object().cloned().unwrap_or_default();
        let r = labscope::tools::call(ctx, &labscope::tools::registry(), tool, args, call).await;
        let seen = progress.lock().map(|p| p.clone()).unwrap_or_default();
        anyhow::Ok((r, seen))
    };
    let parse = |t: String| labscope::config::file::Config::parse(&dir.path().join("c.toml"), &t);
    let off = context(parse(text(false))?).await?;
    let on = context(parse(text(true))?).await?;

    let (r, _) = call(off.clone(), "get_pihole_queries", serde_json::json!({"count": 5, "domain": "*.example.com", "client": "192.168.1.112", "status": "gravity"})).await?;
    let out = r.map_err(|e| anyhow::anyhow!("{e}"))?;
    assert_eq!(out.structured["queries"][0]["clientIp"], "192.168.1.112");
    assert_eq!(out.structured["queries"][0]["clientName"], "laptop.lan");
    assert_eq!(out.structured["queries"][0]["reply"], "IP");
    let asked = primary.query_args();
    assert!(
        asked[0].contains("length=5")
            && asked[0].contains("domain=*.example.com")
            && asked[0].contains("client_ip=192.168.1.112")
            && asked[0].contains("status=GRAVITY"),
        "{asked:?}"
    );
    // A host name is filtered as a name, not as an address.
    let (r, _) = call(
        off.clone(),
        "get_pihole_queries",
        serde_json::json!({"client": "laptop.lan"}),
    )
    .await?;
    r.map_err(|e| anyhow::anyhow!("{e}"))?;
    let asked = primary.query_args();
    assert!(
        asked[1].contains("client_name=laptop.lan") && !asked[1].contains("client_ip"),
        "{asked:?}"
    );
    let (r, _) = call(
        off.clone(),
        "get_pihole_queries",
        serde_json::json!({"domain": "a b"}),
    )
    .await?;
    assert_eq!(
        r.map(|_| ()).unwrap_err().code,
        labscope::tools::ErrorCode::InvalidArgument
    );

    let (r, _) = call(off.clone(), "get_pihole_whitelist", serde_json::json!({})).await?;
    let out = r.map_err(|e| anyhow::anyhow!("{e}"))?;
    assert_eq!(out.structured["exact"].as_array().map(Vec::len), Some(3));
    for tool in ["get_pihole_whitelist", "get_pihole_queries"] {
        let (r, _) = call(
            off.clone(),
            tool,
            serde_json::json!({"instance": "secondary"}),
        )
        .await?;
        let e = r.map(|_| ()).unwrap_err();
        assert_eq!(
            e.code,
            labscope::tools::ErrorCode::ServiceError,
            "{tool}: {e:?}"
        );
        assert!(e.message.contains("500"), "{tool}: {}", e.message);
    }

    let (r, _) = call(off.clone(), "update_pihole_gravity", serde_json::json!({})).await?;
    let e = r.map(|_| ()).unwrap_err();
    assert_eq!(e.rule.as_deref(), Some("mutations.pihole_gravity"));
    assert_eq!(primary.gravity_runs(), 0);
    let (r, progress) = call(on.clone(), "update_pihole_gravity", serde_json::json!({})).await?;
    let out = r.map_err(|e| anyhow::anyhow!("{e}"))?;
    assert_eq!(out.structured["state"], "finished", "{}", out.structured);
    let lines: Vec<String> = out.structured["lines"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|l| l.as_str().map(str::to_string))
        .collect();
    assert_eq!(
        lines.first().map(String::as_str),
        Some("[i] Neutrino emissions detected...")
    );
    assert_eq!(
        lines.last().map(String::as_str),
        Some("[i] Pi-hole blocking is enabled")
    );
    assert!(
        lines
            .iter()
            .all(|l| !l.contains('\u{1b}') && !l.contains('\r')),
        "{lines:?}"
    );
    assert_eq!(
        lines[2], "[\u{2713}] Preparing new gravity database",
        "the last redraw of a line"
    );
    assert_eq!(
        out.structured["failures"],
        serde_json::json!([
            "[\u{2717}] Status: Not found",
            "[\u{2717}] List download failed: no cached list available"
        ]),
        "the failed list is called out"
    );
    assert!(out.text.contains("2 line(s) marked failed"), "{}", out.text);
    assert_eq!(
        progress.len(),
        lines.len(),
        "one progress report per line: {progress:?}"
    );
    assert_eq!(primary.gravity_runs(), 1);
    let outcomes: Vec<String> = std::fs::read_to_string(&audit)?
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l)
                .map(|v| v["outcome"].as_str().unwrap_or("").to_string())
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(outcomes, ["refused", "performed"]);
    Ok(())
}

/// The other 429: no free API session. Named as such (not rate limiting,
/// not a password problem) and waited out.
#[tokio::test]
async fn seats_exceeded_is_told_apart() -> anyhow::Result<()> {
    let full = PiholeOptions {
        seats: 0,
        ..PiholeOptions::default()
    };
    let s = setup(full.clone(), PiholeOptions::default(), &full.password).await?;
    let (v, text) = dns_status(s.client.peer()).await?;
    assert_ne!(v["verdict"], "healthy");
    let e = &pihole(&v, "primary")["error"];
    assert_eq!(e["code"], "seats_exceeded", "{e}");
    assert!(
        e["hint"]
            .as_str()
            .is_some_and(|h| h.contains("max_sessions")),
        "{e}"
    );
    assert!(text.contains("api_seats_exceeded"), "{text}");
    dns_status(s.client.peer()).await?;
    assert_eq!(
        s.primary.logins(),
        1,
        "no second login during the cool-down"
    );
    Ok(())
}

/// A Pi-hole whose clock runs ahead: its last gravity update lies in
/// labscope's future. Shown as the skew it is, never as a negative age.
#[tokio::test]
async fn a_pihole_clock_ahead_is_skew_not_a_negative_age() -> anyhow::Result<()> {
    let ahead = PiholeOptions {
        // 2 h 30 min after the fixture's "now".
        gravity_updated: labscope_tests::fake_kube::FIXTURE_NOW + 9_000,
        ..PiholeOptions::default()
    };
    let s = setup(ahead.clone(), PiholeOptions::default(), &ahead.password).await?;
    let (v, text) = dns_status(s.client.peer()).await?;
    let p = pihole(&v, "primary");
    assert_eq!(p["stats"]["gravityAgeDays"], 0.0, "{p}");
    assert_eq!(p["stats"]["clockAheadSeconds"], 9_000, "{p}");
    assert!(pihole(&v, "secondary")["stats"]["clockAheadSeconds"].is_null());
    assert!(!text.contains("-0."), "{text}");
    assert!(text.contains("2h 30m ahead of labscope's"), "{text}");
    Ok(())
}
