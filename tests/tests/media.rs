//! `get_media_status` against fake Jellyfin and Immich APIs (HOMELAB.md §4)
//! and the fake homelab (§3.j): the baseline is healthy with the figures
//! the APIs give; a refused key, a removed endpoint (a wrong base path), a
//! server scaled to zero, a namespace that is gone and the Immich server
//! parked while its database is Ready are never healthy.

use std::sync::Arc;

use labscope_tests::fake_media::{self, FakeMedia, MediaOptions};
use labscope_tests::homelab::homelab;
use labscope_tests::mcp::{assert_text_shows, structured, text_of, validated};
use serde_json::Value;

/// Runs `get_media_status` once with Jellyfin and Immich configured
/// (`jellyfin_key`/`immich_key` are what labscope is given, `immich_path` a
/// base path appended to Immich's URL).
async fn media_status(
    opts: MediaOptions,
    scenarios: &[&str],
    jellyfin_key: &str,
    immich_key: &str,
    immich_path: &str,
) -> anyhow::Result<(Value, String, FakeMedia, FakeMedia)> {
    media_status_with(opts, scenarios, jellyfin_key, immich_key, immich_path, "").await
}

/// [`media_status`] with more of the config file (`extra`, TOML).
async fn media_status_with(
    opts: MediaOptions,
    scenarios: &[&str],
    jellyfin_key: &str,
    immich_key: &str,
    immich_path: &str,
    extra: &str,
) -> anyhow::Result<(Value, String, FakeMedia, FakeMedia)> {
    let j = fake_media::jellyfin(opts.clone()).await?;
    let i = fake_media::immich(opts.clone()).await?;
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("jk"), jellyfin_key)?;
    std::fs::write(dir.path().join("ik"), immich_key)?;
    let text = format!(
        "[jellyfin]\nurl = \"{}\"\napi_key_file = \"{}\"\n[immich]\nurl = \"{}{immich_path}\"\napi_key_file = \"{}\"\n{extra}",
        j.url,
        dir.path().join("jk").display(),
        i.url,
        dir.path().join("ik").display()
    );
    let config = labscope::config::file::Config::parse(&dir.path().join("c.toml"), &text)?;
    let fake = labscope_tests::fake_kube::FakeKube::start(homelab(scenarios)?).await?;
    let options = labscope::config::AgentOptions {
        kubeconfig: Some(fake.write_kubeconfig(dir.path())?),
        config: Arc::new(config),
        now: Some(labscope_tests::fake_kube::FIXTURE_NOW),
        ..Default::default()
    };
    let ctx = options.context().await?;
    let client = labscope_tests::mcp::in_process(ctx, ()).await?;
    let r = client
        .call_tool(rmcp::model::CallToolRequestParams::new("get_media_status"))
        .await?;
    let r = validated(&client, "get_media_status", r).await?;
    let (v, is_error) = structured(&r);
    anyhow::ensure!(!is_error, "get_media_status failed: {v}");
    let text = text_of(&r);
    client.cancel().await?;
    Ok((v, text, j, i))
}

fn workload<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["workloads"]
        .as_array()
        .and_then(|a| a.iter().find(|w| w["name"] == name))
        .unwrap_or(&Value::Null)
}

#[tokio::test]
async fn the_baseline_is_healthy_with_the_apis_figures() -> anyhow::Result<()> {
    let o = MediaOptions::default();
    let (v, text, _j, _i) =
        media_status(o.clone(), &[], &o.jellyfin_key, &o.immich_key, "").await?;
    assert_eq!(v["verdict"], "healthy", "{v}");
    assert_eq!(v["jellyfin"]["version"], "10.11.11");
    assert_eq!(v["jellyfin"]["pendingRestart"], false);
    assert_eq!(v["jellyfin"]["libraries"]["movies"], 612);
    assert_eq!(v["jellyfin"]["sessions"], 2);
    assert_eq!(
        v["jellyfin"]["playing"][0],
        "matt: Lost S04E05 The Constant"
    );
    assert_eq!(v["immich"]["version"], "v2.7.5");
    assert_eq!(v["immich"]["storage"]["usagePercent"], 28.45);
    assert_eq!(v["immich"]["assets"]["photos"], 48211);
    for name in [
        "jellyfin",
        "immich-server",
        "immich-postgresql",
        "immich-valkey",
    ] {
        assert_eq!(workload(&v, name)["status"], "ok", "{name}: {v}");
    }
    assert!(
        text.contains("10.11.11") && text.contains("48211"),
        "{text}"
    );
    assert_text_shows(
        "get_media_status",
        &v,
        &text,
        &[
            "/verdict",
            "/jellyfin/version",
            "/jellyfin/libraries/movies",
            "/jellyfin/playing/*",
            "/immich/version",
            "/immich/storage/used",
            "/immich/assets/photos",
            "/workloads/*/name",
            "/workloads/*/status",
        ],
    )?;
    Ok(())
}

#[tokio::test]
async fn a_refused_key_or_a_removed_endpoint_is_never_healthy() -> anyhow::Result<()> {
    let o = MediaOptions::default();
    let (v, text, _j, _i) = media_status(o.clone(), &[], "stale-key", &o.immich_key, "").await?;
    assert_ne!(v["verdict"], "healthy");
    assert_eq!(v["jellyfin"]["error"]["code"], "unauthorized", "{v}");
    assert!(
        text.contains("Jellyfin rejected the API key (401 on /System/Info)"),
        "{text}"
    );

    let (v, _, _j, _i) = media_status(o.clone(), &[], &o.jellyfin_key, "stale-key", "").await?;
    assert_eq!(v["immich"]["error"]["code"], "unauthorized");
    assert_eq!(
        v["immich"]["version"], "v2.7.5",
        "the version needs no key: the URL is right"
    );

    // Jellyfin 12 refuses the legacy header: labscope sends the modern one.
    let legacy_off = MediaOptions {
        legacy_auth_off: true,
        ..o.clone()
    };
    let (v, _, _j, _i) = media_status(legacy_off, &[], &o.jellyfin_key, &o.immich_key, "").await?;
    assert_eq!(v["jellyfin"]["ok"], true, "{v}");

    // A base path that is not Immich's API root: 404 named, with the hint.
    let (v, _, _j, _i) = media_status(
        o.clone(),
        &[],
        &o.jellyfin_key,
        &o.immich_key,
        "/api/server-info",
    )
    .await?;
    assert_eq!(v["immich"]["error"]["code"], "not_found", "{v}");
    assert_eq!(v["verdict"], "critical");

    // A non-admin key: storage and version stand, the counts say why not.
    let user = MediaOptions {
        immich_admin: false,
        ..o.clone()
    };
    let (v, _, _j, _i) = media_status(user, &[], &o.jellyfin_key, &o.immich_key, "").await?;
    assert_eq!(v["immich"]["ok"], true);
    assert!(
        v["immich"]["notes"][0]
            .as_str()
            .is_some_and(|n| n.contains("admin")),
        "{v}"
    );
    Ok(())
}

#[tokio::test]
async fn a_changed_api_is_an_error_naming_the_field_not_a_zero() -> anyhow::Result<()> {
    let o = MediaOptions {
        api_changed: true,
        ..MediaOptions::default()
    };
    let (v, text, _j, _i) =
        media_status(o.clone(), &[], &o.jellyfin_key, &o.immich_key, "").await?;
    assert_ne!(v["verdict"], "healthy", "{v}");
    let j = &v["jellyfin"]["error"];
    assert_eq!(j["code"], "bad_response", "{v}");
    assert!(
        j["message"]
            .as_str()
            .is_some_and(|m| m.contains("/Items/Counts") && m.contains("`MovieCount` is missing")),
        "{j}"
    );
    assert!(
        v["jellyfin"]["libraries"].is_null(),
        "no counts of zero: {v}"
    );
    assert_eq!(
        v["jellyfin"]["version"], "10.11.11",
        "what did decode still stands: {v}"
    );
    let i = &v["immich"]["error"];
    assert_eq!(i["code"], "bad_response", "{v}");
    assert!(
        i["message"].as_str().is_some_and(
            |m| m.contains("/api/server/storage") && m.contains("`diskUsagePercentage`")
        ),
        "{i}"
    );
    assert!(text.contains("MovieCount"), "{text}");
    Ok(())
}

#[tokio::test]
async fn scaled_to_zero_gone_and_parked_are_never_healthy() -> anyhow::Result<()> {
    let o = MediaOptions::default();
    let (v, _, _j, _i) = media_status(
        o.clone(),
        &["jellyfin-scaled-to-zero"],
        &o.jellyfin_key,
        &o.immich_key,
        "",
    )
    .await?;
    assert_eq!(workload(&v, "jellyfin")["status"], "scaled to zero", "{v}");
    assert_ne!(v["verdict"], "healthy");

    let (v, _, _j, _i) = media_status(
        o.clone(),
        &["jellyfin-namespace-gone"],
        &o.jellyfin_key,
        &o.immich_key,
        "",
    )
    .await?;
    assert_eq!(
        workload(&v, "jellyfin")["status"],
        "namespace missing",
        "{v}"
    );
    assert_ne!(v["verdict"], "healthy");

    let (v, text, _j, _i) = media_status(
        o.clone(),
        &["immich-server-parked"],
        &o.jellyfin_key,
        &o.immich_key,
        "",
    )
    .await?;
    assert_eq!(v["verdict"], "critical", "{v}");
    assert_eq!(workload(&v, "immich-postgresql")["status"], "ok");
    assert!(
        text.contains("Immich server is down") && text.contains("database is Ready"),
        "{text}"
    );
    Ok(())
}

/// The media workloads are the config's `[workloads]`, not names in the
/// code: a list without Immich's cache checks no cache, and a Deployment
/// listed that the cluster lacks is `missing`, never healthy.
#[tokio::test]
async fn the_workloads_checked_are_the_configured_ones() -> anyhow::Result<()> {
    let o = MediaOptions::default();
    let extra = "[[workloads.media]]\nnamespace = \"jellyfin\"\ndeployment = \"jellyfin\"\napp = \"jellyfin\"\nrole = \"server\"\n\
                 [[workloads.media]]\nnamespace = \"immich\"\ndeployment = \"immich-machine-learning\"\napp = \"immich\"\nrole = \"server\"\n";
    let (v, _, _j, _i) =
        media_status_with(o.clone(), &[], &o.jellyfin_key, &o.immich_key, "", extra).await?;
    let names: Vec<&str> = v["workloads"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|w| w["name"].as_str())
        .collect();
    assert_eq!(names, ["jellyfin", "immich-machine-learning"], "{v}");
    assert_eq!(workload(&v, "jellyfin")["status"], "ok", "{v}");
    assert_eq!(
        workload(&v, "immich-machine-learning")["status"],
        "missing",
        "{v}"
    );
    assert_ne!(v["verdict"], "healthy", "{v}");
    Ok(())
}

/// `fix_jellyfin_metadata`: an operation (refused unless
/// `jellyfin_metadata = true`), a unique title refreshed, an ambiguous one
/// answered with its candidates and nothing refreshed, an id that is not
/// 32 hex digits refused before any request.
#[tokio::test]
async fn fix_jellyfin_metadata_refreshes_one_item_or_lists_candidates() -> anyhow::Result<()> {
    let o = MediaOptions::default();
    let j = fake_media::jellyfin(o.clone()).await?;
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("jk"), &o.jellyfin_key)?;
    let audit = dir.path().join("audit.jsonl");
    let context = |allowed: bool| {
        let text = format!(
            "[jellyfin]\nurl = \"{}\"\napi_key_file = \"{}\"\n[mutations]\nenabled = true\naudit_log = \"{}\"\njellyfin_metadata = {allowed}\n",
            j.url,
            dir.path().join("jk").display(),
            audit.display()
        );
        let config = labscope::config::file::Config::parse(&dir.path().join("c.toml"), &text);
        async move {
            labscope::config::AgentOptions {
                config: Arc::new(config?),
                ..Default::default()
            }
            .context()
            .await
            .map_err(anyhow::Error::from)
        }
    };
    let call = |ctx: Arc<labscope::tools::ToolContext>, args: Value| async move {
        labscope::tools::call(
            ctx,
            &labscope::tools::registry(),
            "fix_jellyfin_metadata",
            args.as_object().cloned().unwrap_or_default(),
            labscope::tools::Call::default(),
        )
        .await
    };
    let off = context(false).await?;
    let e = call(off, serde_json::json!({"name": "Arrival"}))
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(e.rule.as_deref(), Some("mutations.jellyfin_metadata"));

    let on = context(true).await?;
    let out = call(on.clone(), serde_json::json!({"name": "arrival"}))
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert_eq!(out.structured["state"], "refreshed");
    assert_eq!(
        out.structured["item"]["id"],
        "9f8e7d6c5b4a39281706f5e4d3c2b1a0"
    );
    assert!(out.text.contains("Arrival"));

    let out = call(on.clone(), serde_json::json!({"name": "Dune"}))
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert_eq!(out.structured["state"], "ambiguous", "{}", out.structured);
    assert_eq!(
        out.structured["candidates"].as_array().map(Vec::len),
        Some(2),
        "the exact matches: the movie and the series"
    );
    assert!(out.text.contains("1a2b3c4d5e6f708192a3b4c5d6e7f801") && out.text.contains("Series"));

    let out = call(
        on.clone(),
        serde_json::json!({"itemId": "2B3C4D5E-6F70-8192-A3B4-C5D6E7F80112", "replaceAll": true}),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert_eq!(out.structured["item"]["name"], "Dune");
    assert_eq!(out.structured["item"]["type"], "Series");

    for bad in [
        "../../System/Restart",
        "1a2b3c4d",
        "zz2b3c4d5e6f708192a3b4c5d6e7f801",
    ] {
        let e = call(on.clone(), serde_json::json!({"itemId": bad}))
            .await
            .map(|_| ())
            .unwrap_err();
        assert_eq!(
            e.code,
            labscope::tools::ErrorCode::InvalidArgument,
            "{bad}: {e:?}"
        );
    }
    let e = call(
        on.clone(),
        serde_json::json!({"itemId": "00000000000000000000000000000000"}),
    )
    .await
    .map(|_| ())
    .unwrap_err();
    assert_eq!(e.code, labscope::tools::ErrorCode::NotFound);

    // One title that only resembles the name: replaceAll (which discards
    // metadata) wants its itemId first.
    let out = call(
        on.clone(),
        serde_json::json!({"name": "part two", "replaceAll": true}),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert_eq!(out.structured["state"], "ambiguous", "{}", out.structured);
    assert_eq!(
        out.structured["candidates"][0]["id"],
        "3c4d5e6f708192a3b4c5d6e7f8011223"
    );
    assert!(out.text.contains("nothing refreshed"), "{}", out.text);

    let refreshed = j.refreshed.lock().map(|l| l.clone()).unwrap_or_default();
    assert_eq!(refreshed.len(), 2, "{refreshed:?}");
    assert!(
        refreshed[0].starts_with("9f8e7d6c5b4a39281706f5e4d3c2b1a0?")
            && refreshed[0].contains("ReplaceAllMetadata=false")
    );
    assert!(
        refreshed[1].starts_with("2b3c4d5e6f708192a3b4c5d6e7f80112?")
            && refreshed[1].contains("ReplaceAllImages=true")
    );
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&audit)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(lines.len(), 9, "every call audited, allowed or refused");
    // The two ambiguous names changed nothing: audited as no_change, never
    // as performed.
    let outcomes: Vec<&str> = lines.iter().filter_map(|l| l["outcome"].as_str()).collect();
    assert_eq!(
        outcomes.iter().filter(|o| **o == "no_change").count(),
        2,
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes.iter().filter(|o| **o == "performed").count(),
        2,
        "the two refreshes: {outcomes:?}"
    );
    Ok(())
}

/// A Jellyfin (or a proxy before it) that ignores the `Ids` filter answers
/// with every item: only the item asked for is refreshed, and an id it does
/// not hold is "not found", never the first item of the library.
#[tokio::test]
async fn fix_jellyfin_metadata_refreshes_only_the_id_asked_for() -> anyhow::Result<()> {
    let o = MediaOptions {
        ignores_ids: true,
        ..MediaOptions::default()
    };
    let j = fake_media::jellyfin(o.clone()).await?;
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("jk"), &o.jellyfin_key)?;
    let text = format!(
        "[jellyfin]\nurl = \"{}\"\napi_key_file = \"{}\"\n[mutations]\nenabled = true\naudit_log = \"{}\"\njellyfin_metadata = true\n",
        j.url,
        dir.path().join("jk").display(),
        dir.path().join("audit.jsonl").display()
    );
    let ctx = labscope::config::AgentOptions {
        config: Arc::new(labscope::config::file::Config::parse(
            &dir.path().join("c.toml"),
            &text,
        )?),
        ..Default::default()
    }
    .context()
    .await?;
    let tools = labscope::tools::registry();
    let call = |args: Value| {
        labscope::tools::call(
            ctx.clone(),
            &tools,
            "fix_jellyfin_metadata",
            args.as_object().cloned().unwrap_or_default(),
            labscope::tools::Call::default(),
        )
    };
    let e = call(serde_json::json!({"itemId": "00000000000000000000000000000000"}))
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(e.code, labscope::tools::ErrorCode::NotFound, "{e:?}");
    let out = call(serde_json::json!({"itemId": "3C4D5E6F-7081-92A3-B4C5-D6E7F8011223"}))
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert_eq!(out.structured["item"]["name"], "Dune: Part Two");
    let refreshed = j.refreshed.lock().map(|l| l.clone()).unwrap_or_default();
    assert_eq!(refreshed.len(), 1, "{refreshed:?}");
    assert!(refreshed[0].starts_with("3c4d5e6f708192a3b4c5d6e7f8011223?"));
    Ok(())
}
