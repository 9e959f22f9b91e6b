//! `ListChanges`: the agent's history against changes made after it
//! started (a route in a custom table, an address removed, a link down, an
//! MTU, a policy rule, an iptables rule, an nft table), with random names
//! and addresses per run; the state that was there before is never
//! reported. Then 3,000 route add/delete pairs: the history stays within
//! its budget, the agent's memory stays bounded, and the answer says what
//! was dropped.

use std::time::{Duration, Instant};

use labscope_proto::v1 as pb;
use labscope_tests::{AgentProcess, Netns, connect, require_root, require_tool};

use super::firewall_corpus::Rng;

const AGENT: &str = "127.0.0.1:9447";

fn history(ns: &Netns, req: pb::ListChangesRequest) -> anyhow::Result<pb::ChangeHistory> {
    ns.block_on(move || async move {
        let mut client = connect(AGENT).await?;
        Ok(client.list_changes(req).await?.into_inner())
    })
}

/// Waits until the agent's baseline is read.
fn wait_for_baseline(ns: &Netns) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let h = history(ns, pb::ListChangesRequest::default())?;
        if h.baseline_unix_ms > 0 {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "no baseline after 20 s: {:?}",
            h.notes
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn rss_kib(pid: u32) -> u64 {
    // The pid is `ip netns exec`'s, which execs the agent.
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn what_changed_reports_every_change_after_the_baseline() -> anyhow::Result<()> {
    if !require_root("what_changed_reports_every_change_after_the_baseline") {
        return Ok(());
    }
    require_tool("iptables-nft")?;
    require_tool("nft")?;
    let mut rng = Rng::seeded();
    let ns = Netns::new("chg")?;
    let a = rng.byte();
    let p = |s: &str| s.replace('A', &a.to_string());
    let (if0, if1) = (
        format!("v{}a", rng.below(1000)),
        format!("v{}b", rng.below(1000)),
    );
    let table = (1000 + rng.below(1000)).to_string();
    let prio = (2000 + rng.below(1000)).to_string();
    let mark = format!("{:#x}", rng.mark());
    let nft_table = format!("t{}", rng.hash().to_lowercase());
    // What is there before the agent starts: never reported.
    ns.ip(&["link", "add", &if0, "type", "veth", "peer", "name", &if1])?;
    ns.ip(&["link", "set", &if0, "up"])?;
    ns.ip(&["link", "set", &if1, "up"])?;
    ns.ip(&["addr", "add", &p("10.A.0.2/24"), "dev", &if0])?;
    ns.ip(&["addr", "add", &p("10.A.1.2/24"), "dev", &if1])?;
    // A second address, so that removing the first leaves the link's
    // routes in place (the last IPv4 address takes them all with it).
    ns.ip(&["addr", "add", &p("10.A.2.2/24"), "dev", &if1])?;
    ns.ip(&[
        "route",
        "add",
        &p("10.A.50.0/24"),
        "via",
        &p("10.A.0.1"),
        "table",
        "50",
    ])?;
    ns.ip(&["rule", "add", "pref", "1500", "lookup", "50"])?;
    // A route through the link that goes down: the kernel flushes it
    // without a notification.
    ns.ip(&["route", "add", &p("10.A.70.0/24"), "dev", &if1])?;
    ns.run(&[
        "iptables-nft",
        "-t",
        "nat",
        "-A",
        "POSTROUTING",
        "-s",
        &p("10.A.0.0/24"),
        "-j",
        "MASQUERADE",
    ])?;
    let agent = AgentProcess::start_args(
        &ns,
        AGENT,
        &["--node-name", "chg", "--history-bytes", "65536"],
        &[],
    )?;
    wait_for_baseline(&ns)?;
    let before = history(&ns, pb::ListChangesRequest::default())?;
    assert!(
        before.changes.is_empty(),
        "baseline reported as changes: {:?}",
        before.changes
    );

    // The changes, in this order.
    ns.ip(&[
        "route",
        "add",
        &p("10.A.60.0/24"),
        "via",
        &p("10.A.0.254"),
        "table",
        &table,
    ])?;
    ns.ip(&["addr", "del", &p("10.A.1.2/24"), "dev", &if1])?;
    ns.ip(&["link", "set", &if1, "down"])?;
    ns.ip(&["link", "set", &if0, "mtu", "1280"])?;
    ns.ip(&[
        "rule", "add", "pref", &prio, "fwmark", &mark, "lookup", &table,
    ])?;
    ns.run(&[
        "iptables-nft",
        "-t",
        "nat",
        "-A",
        "POSTROUTING",
        "-d",
        &p("10.A.60.0/24"),
        "-m",
        "comment",
        "--comment",
        "to the lab",
        "-j",
        "RETURN",
    ])?;
    ns.run(&["nft", "add", "table", "inet", &nft_table])?;
    ns.run(&[
        "nft",
        "add",
        "chain",
        "inet",
        &nft_table,
        "input",
        "{ type filter hook input priority 0; policy accept; }",
    ])?;

    // The changes in the order they were made. The kernel orders the
    // consequences of one command only partly: when `if1` goes down, the
    // peer's carrier loss is sent from a work queue (before or after
    // `if1`'s own message), and the route it flushes is found by a re-read
    // after whichever of the two comes first. So each step is a group, and
    // every change of a step is at or after every change of the step
    // before (changes the firewall watcher found in one read share its
    // time).
    let steps: Vec<Vec<(&str, &str, String)>> = vec![
        vec![("route", "added", p("10.A.60.0/24 table ") + &table)],
        vec![("address", "removed", p("10.A.1.2/24 dev ") + &if1)],
        vec![
            ("link", "changed", if1.clone()),
            ("route", "removed", p("10.A.70.0/24 table main")),
        ],
        vec![("link", "changed", if0.clone())], // the MTU (with the carrier, if not sent yet)
        vec![("rule", "added", format!("{prio}: from all fwmark {mark}"))],
        vec![
            ("firewall", "changed", "ip nat POSTROUTING".into()),
            ("firewall", "added", format!("table inet {nft_table}")),
        ],
    ];
    let is = |c: &pb::Change, (k, a, o): &(&str, &str, String)| {
        c.kind == *k
            && c.action == *a
            && c.object.starts_with(o.as_str())
            && (c.object != if0 || c.after.contains("mtu 1280"))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let h = loop {
        let h = history(&ns, pb::ListChangesRequest::default())?;
        let all_there = steps
            .iter()
            .flatten()
            .all(|e| h.changes.iter().any(|c| is(c, e)));
        if all_there || Instant::now() > deadline {
            break h;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut last_step_ended = 0;
    for step in &steps {
        let mut ended = 0;
        for e in step {
            let c = h
                .changes
                .iter()
                .find(|c| is(c, e))
                .unwrap_or_else(|| panic!("{e:?} not reported: {:#?}", h.changes));
            assert!(
                c.at_unix_ms >= last_step_ended,
                "{e:?} reported before the step ahead of it: {:#?}",
                h.changes
            );
            ended = ended.max(c.at_unix_ms);
        }
        last_step_ended = ended;
    }
    // The peer lost its carrier with `if1`: said on its own, or with the
    // MTU when the MTU's message came first.
    assert!(
        h.changes.iter().any(|c| c.kind == "link"
            && c.object == if0
            && c.before.contains(", carrier")
            && c.after.contains(", no carrier")),
        "{if0}'s carrier loss not reported: {:#?}",
        h.changes
    );
    let mtu = h
        .changes
        .iter()
        .find(|c| c.kind == "link" && c.object == if0 && c.after.contains("mtu 1280"))
        .expect("mtu change");
    assert!(
        mtu.before.contains("mtu 1500") && mtu.after.contains("mtu 1280"),
        "{mtu:?}"
    );
    let down = h
        .changes
        .iter()
        .find(|c| c.kind == "link" && c.object == if1)
        .expect("link down");
    assert!(
        down.before.contains(", up,") && down.after.contains(", down,"),
        "{down:?}"
    );
    let fw = h
        .changes
        .iter()
        .find(|c| c.object == "ip nat POSTROUTING")
        .expect("iptables change");
    assert!(
        fw.after.contains(&format!(
            "-A POSTROUTING -d {} -m comment --comment \"to the lab\" -j RETURN",
            p("10.A.60.0/24")
        )),
        "{fw:?}"
    );
    assert!(fw.before.is_empty(), "nothing was removed: {fw:?}");
    // Nothing that was there before.
    for c in &h.changes {
        assert!(
            !c.object.contains(&p("10.A.50.0/24"))
                && !c.object.starts_with("1500:")
                && !c.after.contains("MASQUERADE"),
            "pre-existing state reported: {c:?}"
        );
    }
    let times: Vec<u64> = h.changes.iter().map(|c| c.at_unix_ms).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    // Filters.
    let routes = history(
        &ns,
        pb::ListChangesRequest {
            kinds: vec!["route".into()],
            ..Default::default()
        },
    )?;
    assert!(!routes.changes.is_empty() && routes.changes.iter().all(|c| c.kind == "route"));
    // Since a time: only what came at or after it (the firewall watcher
    // may still add a change read later, such as a chain it read apart
    // from its table; it is then newer than everything above).
    let since = times.last().copied().unwrap_or(0) + 1;
    let later = history(
        &ns,
        pb::ListChangesRequest {
            since_unix_ms: since,
            ..Default::default()
        },
    )?;
    assert!(
        later
            .changes
            .iter()
            .all(|c| c.at_unix_ms >= since && !h.changes.contains(c)),
        "{:?}",
        later.changes
    );
    let middle = times[times.len() / 2];
    let from_middle = history(
        &ns,
        pb::ListChangesRequest {
            since_unix_ms: middle,
            ..Default::default()
        },
    )?;
    let expected_from_middle: Vec<&pb::Change> = h
        .changes
        .iter()
        .filter(|c| c.at_unix_ms >= middle)
        .collect();
    assert!(
        from_middle.changes.len() >= expected_from_middle.len()
            && from_middle.changes.iter().all(|c| c.at_unix_ms >= middle)
            && expected_from_middle
                .iter()
                .all(|c| from_middle.changes.contains(c)),
        "since {middle}: {:#?}",
        from_middle.changes
    );

    // 3,000 add/delete pairs: the budget holds and the answer says so.
    let batch = tempfile::NamedTempFile::new()?;
    let mut lines = String::new();
    for i in 0..3000 {
        // Outside 10.A.0.0/16, whatever A is: a route the test made
        // earlier in this table must not collide with one of these.
        let net = format!("172.{}.{}.0/24", 16 + i / 250, i % 250);
        lines.push_str(&format!(
            "route add {net} via {} table {table}\n",
            p("10.A.0.254")
        ));
        lines.push_str(&format!(
            "route del {net} via {} table {table}\n",
            p("10.A.0.254")
        ));
    }
    std::fs::write(batch.path(), lines)?;
    ns.ip(&["-batch", &batch.path().display().to_string()])?;
    let marker = p("10.A.99.0/24");
    ns.ip(&[
        "route",
        "add",
        &marker,
        "via",
        &p("10.A.0.254"),
        "table",
        &table,
    ])?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let h = loop {
        let h = history(&ns, pb::ListChangesRequest::default())?;
        if h.changes.iter().any(|c| c.object.starts_with(&marker)) || Instant::now() > deadline {
            break h;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        h.changes.iter().any(|c| c.object.starts_with(&marker)),
        "the last change is missing"
    );
    assert!(
        h.used_bytes <= h.budget_bytes && h.budget_bytes == 65536,
        "{} of {}",
        h.used_bytes,
        h.budget_bytes
    );
    assert!(
        h.dropped > 0 && h.dropped_until_unix_ms > 0,
        "nothing dropped: {} kept",
        h.changes.len()
    );
    assert!(h.dropped_until_unix_ms <= h.changes[0].at_unix_ms);
    let rss = rss_kib(agent.pid());
    eprintln!(
        "history after 3,000 pairs: {} kept, {} dropped, {} of {} bytes; agent RSS {rss} KiB",
        h.changes.len(),
        h.dropped,
        h.used_bytes,
        h.budget_bytes
    );
    assert!(rss > 0 && rss < 48 * 1024, "agent RSS {rss} KiB");
    // A kind that does not exist is refused by name.
    let bad = ns.block_on(|| async {
        let mut client = connect(AGENT).await?;
        let r = client
            .list_changes(pb::ListChangesRequest {
                kinds: vec!["routes".into()],
                ..Default::default()
            })
            .await;
        anyhow::Ok(r.err().map(|s| s.message().to_string()))
    })?;
    assert!(bad.is_some_and(|m| m.contains("kinds") && m.contains("route")));
    Ok(())
}
