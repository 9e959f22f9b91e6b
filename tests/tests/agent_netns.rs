//! The real agent binary in a network namespace, called with a real tonic
//! client, compared with `ip -j`, `iptables-save -c` and `conntrack -L` run in
//! the same namespace. Needs root; skips with a message otherwise.

use std::collections::BTreeSet;

use labscope_proto::v1 as pb;
use labscope_tests::reads::{list_all, saved_rules};
use labscope_tests::topology::{DNS_NAME, Lab, R_ADDR, S_ADDR};
use labscope_tests::{AgentProcess, connect, require_root, require_tool};
use serde_json::Value;
use tokio_stream::StreamExt;

#[path = "agent_netns/changes.rs"]
mod changes;
#[path = "agent_netns/firewall_corpus.rs"]
mod firewall_corpus;
#[path = "agent_netns/nft_native.rs"]
mod nft_native;
#[path = "agent_netns/routes_explained.rs"]
mod routes_explained;

const AGENT: &str = "127.0.0.1:9447";

fn lab_with_agent(test: &str) -> anyhow::Result<Option<(Lab, AgentProcess)>> {
    if !require_root(test) {
        return Ok(None);
    }
    for tool in [
        "iptables-nft-save",
        "iptables-legacy-save",
        "conntrack",
        "ping",
    ] {
        require_tool(tool)?;
    }
    let lab = Lab::build()?;
    let agent = AgentProcess::start(&lab.r, AGENT, "lab-r", &[])?;
    Ok(Some((lab, agent)))
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

fn s(v: &Value) -> String {
    match v {
        Value::String(x) => x.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn text(ip: &Option<pb::IpAddress>) -> String {
    ip.as_ref().map(|a| a.text.clone()).unwrap_or_default()
}

/// `ip -j` prints host routes without their prefix length.
fn with_prefix(dst: &str, v6: bool) -> String {
    if dst == "default" || dst.contains('/') || dst.is_empty() {
        dst.to_string()
    } else {
        format!("{dst}/{}", if v6 { 128 } else { 32 })
    }
}

#[test]
fn networking_matches_ip_json() -> anyhow::Result<()> {
    let Some((lab, _agent)) = lab_with_agent("networking_matches_ip_json")? else {
        return Ok(());
    };
    let answer = lab.r.block_on(|| async {
        let mut client = connect(AGENT).await?;
        let all = client
            .get_networking(pb::GetNetworkingRequest {
                sections: vec![],
                route_table: "all".into(),
            })
            .await?
            .into_inner();
        let main = client
            .get_networking(pb::GetNetworkingRequest::default())
            .await?
            .into_inner();
        let t100 = client
            .get_networking(pb::GetNetworkingRequest {
                sections: vec![pb::NetworkingSection::Routes as i32],
                route_table: "100".into(),
            })
            .await?
            .into_inner();
        Ok((all, main, t100))
    })?;
    let (all, main, t100) = answer;
    assert!(all.errors.is_empty(), "section errors: {:?}", all.errors);

    // Links: name, MTU, MAC, operstate, flags, kind, master.
    let ip_links = json(&lab.r.ip(&["-j", "-d", "link", "show"])?);
    let want: BTreeSet<(String, u64, String, String, Vec<String>, String)> = ip_links
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                s(&l["ifname"]),
                l["mtu"].as_u64().unwrap_or(0),
                s(&l["address"]),
                s(&l["operstate"]),
                l["flags"]
                    .as_array()
                    .map(|f| f.iter().map(s).collect())
                    .unwrap_or_default(),
                s(&l["linkinfo"]["info_kind"]),
            )
        })
        .collect();
    let got: BTreeSet<_> = all
        .links
        .iter()
        .map(|l| {
            let state = pb::OperState::try_from(l.oper_state).unwrap_or_default();
            let state = match state {
                pb::OperState::LowerLayerDown => "LOWERLAYERDOWN".to_string(),
                pb::OperState::NotPresent => "NOTPRESENT".to_string(),
                other => other
                    .as_str_name()
                    .trim_start_matches("OPER_STATE_")
                    .to_string(),
            };
            (
                l.name.clone(),
                u64::from(l.mtu),
                l.mac.clone(),
                state,
                l.flags.clone(),
                l.kind.clone(),
            )
        })
        .collect();
    assert_eq!(got, want, "links differ from ip -j -d link");
    let r0 = all.links.iter().find(|l| l.name == "r0").unwrap();
    assert_eq!(r0.kind, "veth");
    let ip_stats = json(&lab.r.ip(&["-j", "-s", "link", "show", "r0"])?);
    let rx_packets = ip_stats[0]["stats64"]["rx"]["packets"].as_u64().unwrap();
    assert!(
        r0.stats.as_ref().unwrap().rx_packets <= rx_packets,
        "counters are monotonic"
    );

    // Addresses.
    let ip_addrs = json(&lab.r.ip(&["-j", "addr", "show"])?);
    let mut want = BTreeSet::new();
    for l in ip_addrs.as_array().unwrap() {
        for a in l["addr_info"].as_array().unwrap() {
            want.insert((
                s(&l["ifname"]),
                s(&a["local"]),
                a["prefixlen"].as_u64().unwrap(),
                s(&a["scope"]),
            ));
        }
    }
    let got: BTreeSet<_> = all
        .addresses
        .iter()
        .map(|a| {
            (
                a.link.clone(),
                text(&a.address),
                u64::from(a.prefix_len),
                a.scope.clone(),
            )
        })
        .collect();
    assert_eq!(got, want, "addresses differ from ip -j addr");

    // Routes of every table, both families.
    let mut want = BTreeSet::new();
    for (fam, v6) in [("-4", false), ("-6", true)] {
        for r in json(
            &lab.r
                .ip(&[fam, "-d", "-j", "route", "show", "table", "all"])?,
        )
        .as_array()
        .unwrap()
        {
            let table = match s(&r["table"]).as_str() {
                "" => "main".to_string(),
                t => t.to_string(),
            };
            want.insert((
                with_prefix(&s(&r["dst"]), v6),
                table,
                s(&r["type"]),
                s(&r["gateway"]),
                s(&r["dev"]),
                s(&r["protocol"]),
                s(&r["scope"]),
                r["metric"].as_u64().unwrap_or(0),
            ));
        }
    }
    let got: BTreeSet<_> = all
        .routes
        .iter()
        .map(|r| {
            (
                r.destination.clone(),
                r.table_name.clone(),
                r.route_type.clone(),
                text(&r.gateway),
                r.oif.clone(),
                r.protocol.clone(),
                r.scope.clone(),
                u64::from(r.metric),
            )
        })
        .collect();
    assert_eq!(
        got, want,
        "routes differ from ip -d -j route show table all"
    );
    assert!(
        main.routes.iter().all(|r| r.table == 254),
        "default is the main table"
    );
    assert!(
        main.routes
            .iter()
            .any(|r| r.destination == "10.98.0.0/24" && r.metric == 50 && r.protocol == "static")
    );
    assert!(
        main.routes
            .iter()
            .any(|r| r.destination == "10.97.0.0/24" && r.route_type == "blackhole")
    );
    let custom: Vec<_> = t100
        .routes
        .iter()
        .map(|r| (r.destination.as_str(), text(&r.gateway)))
        .collect();
    assert!(
        custom.contains(&("10.99.0.0/24", S_ADDR.to_string())),
        "{custom:?}"
    );
    assert!(
        custom.contains(&("fd00:99::/64", "fd00:201:2::2".to_string())),
        "{custom:?}"
    );
    assert!(
        t100.links.is_empty() && t100.addresses.is_empty(),
        "only the routes section was asked for"
    );

    // Policy rules.
    let mut want = BTreeSet::new();
    for fam in ["-4", "-6"] {
        for r in json(&lab.r.ip(&[fam, "-j", "rule", "show"])?)
            .as_array()
            .unwrap()
        {
            let src = match (s(&r["src"]).as_str(), r["srclen"].as_u64()) {
                (src, Some(len)) => format!("{src}/{len}"),
                (src, None) => src.to_string(),
            };
            let fwmark = r["fwmark"]
                .as_str()
                .and_then(|m| u32::from_str_radix(m.trim_start_matches("0x"), 16).ok());
            want.insert((
                r["priority"].as_u64().unwrap(),
                s(&r["table"]),
                src,
                fwmark.unwrap_or(0),
            ));
        }
    }
    let got: BTreeSet<_> = all
        .rules
        .iter()
        .map(|r| {
            (
                u64::from(r.priority),
                r.table_name.clone(),
                r.source.clone(),
                r.fwmark,
            )
        })
        .collect();
    assert_eq!(got, want, "rules differ from ip -j rule");
    let fw = all.rules.iter().find(|r| r.priority == 1000).unwrap();
    assert_eq!(
        (fw.fwmark, fw.fwmask, fw.table, fw.action.as_str()),
        (0x10, 0xff, 100, "lookup")
    );

    // Neighbours: the permanent entry, and every address ip lists.
    let ip_neigh = json(&lab.r.ip(&["-j", "neigh", "show"])?);
    let got: BTreeSet<_> = all
        .neighbours
        .iter()
        .map(|n| (text(&n.address), n.link.clone()))
        .collect();
    for n in ip_neigh.as_array().unwrap() {
        assert!(
            got.contains(&(s(&n["dst"]), s(&n["dev"]))),
            "neighbour {n} missing"
        );
    }
    let perm = all
        .neighbours
        .iter()
        .find(|n| text(&n.address) == "10.201.2.99")
        .unwrap();
    assert_eq!(perm.lladdr, "02:00:00:00:02:99");
    assert_eq!(perm.states, ["PERMANENT"]);
    Ok(())
}

#[test]
fn firewall_matches_iptables_save() -> anyhow::Result<()> {
    let Some((lab, _agent)) = lab_with_agent("firewall_matches_iptables_save")? else {
        return Ok(());
    };
    lab.traffic()?;
    let fetch = |lab: &Lab| {
        lab.r.block_on(|| async {
            let mut client = connect(AGENT).await?;
            let mut out = Vec::new();
            for (table, ipv6) in [("nat", false), ("filter", false), ("filter", true)] {
                let req = pb::GetFirewallRequest {
                    ipv6,
                    table: table.into(),
                    ..Default::default()
                };
                out.push(client.get_firewall(req).await?.into_inner());
            }
            let one = client
                .get_firewall(pb::GetFirewallRequest {
                    ipv6: false,
                    table: "filter".into(),
                    chain: "LABSCOPE-FWD".into(),
                    ..Default::default()
                })
                .await?
                .into_inner();
            let missing = client
                .get_firewall(pb::GetFirewallRequest {
                    ipv6: false,
                    table: "filter".into(),
                    chain: "NOPE".into(),
                    ..Default::default()
                })
                .await
                .unwrap_err();
            Ok((out, one, missing))
        })
    };
    let (answers, one, missing) = fetch(&lab)?;
    let save4 = lab.r.run(&["iptables-save", "-c"])?;
    let save6 = lab.r.run(&["ip6tables-save", "-c"])?;
    for (fw, (save, table)) in
        answers
            .iter()
            .zip([(&save4, "nat"), (&save4, "filter"), (&save6, "filter")])
    {
        assert_eq!(fw.backend, pb::FirewallBackend::Nft as i32);
        assert!(
            fw.warning.is_empty(),
            "only nft holds rules: {}",
            fw.warning
        );
        let got: Vec<(String, u64, u64)> = fw
            .chains
            .iter()
            .flat_map(|c| &c.rules)
            .map(|r| (r.text.clone(), r.packets, r.bytes))
            .collect();
        let want = saved_rules(save, table);
        assert_eq!(got.len(), want.len(), "{table}: rule count");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.0, w.0, "{table}: rule text");
            // Counters are read a moment apart; they may only grow.
            assert!(g.1 <= w.1 && g.2 <= w.2, "{table}: counters {g:?} vs {w:?}");
        }
        assert_eq!(fw.total_rules as usize, want.len());
    }
    let nat = &answers[0];
    let dnat = nat
        .chains
        .iter()
        .flat_map(|c| &c.rules)
        .find(|r| r.target == "DNAT")
        .unwrap();
    assert_eq!(dnat.comment, "labscope test: dnat to s");
    assert_eq!(dnat.chain, "PREROUTING");
    assert!(dnat.packets >= 1, "the DNAT rule saw the TCP connection");
    let post = nat
        .chains
        .iter()
        .find(|c| c.name == "LABSCOPE-POST")
        .unwrap();
    assert!(!post.builtin && post.policy.is_empty());
    assert_eq!(post.rules[0].target, "MASQUERADE");
    assert_eq!(one.chains.len(), 1);
    assert_eq!(
        one.chains[0]
            .rules
            .iter()
            .map(|r| r.comment.as_str())
            .collect::<Vec<_>>(),
        ["allow web", ""]
    );
    assert_eq!(missing.code(), tonic::Code::NotFound);
    assert!(
        missing.message().contains("LABSCOPE-FWD"),
        "lists the chains that exist: {}",
        missing.message()
    );
    assert_eq!(
        answers[2]
            .chains
            .iter()
            .flat_map(|c| &c.rules)
            .next()
            .unwrap()
            .comment,
        "v6 drop"
    );

    // A legacy rule next to the nft ones: the k3s split-brain.
    lab.r.run(&[
        "iptables-legacy",
        "-A",
        "INPUT",
        "-p",
        "udp",
        "--dport",
        "9998",
        "-j",
        "DROP",
    ])?;
    let (answers, _, _) = fetch(&lab)?;
    let filter = &answers[1];
    assert_eq!(
        filter.backends_with_rules,
        vec![
            pb::FirewallBackend::Nft as i32,
            pb::FirewallBackend::Legacy as i32
        ]
    );
    assert!(
        filter.warning.contains("both iptables backends"),
        "{}",
        filter.warning
    );
    let legacy_rules: Vec<_> = filter
        .other_backend_chains
        .iter()
        .flat_map(|c| &c.rules)
        .map(|r| r.text.as_str())
        .collect();
    assert_eq!(
        legacy_rules,
        ["-A INPUT -p udp -m udp --dport 9998 -j DROP"]
    );
    Ok(())
}

fn dnat_packets(fw: &pb::Firewall) -> u64 {
    fw.chains
        .iter()
        .flat_map(|c| &c.rules)
        .find(|r| r.target == "DNAT")
        .map(|r| r.packets)
        .unwrap_or(0)
}

/// Pages come from the agent, from one read while the ruleset is unchanged:
/// they join up to `iptables-save`, keep the first read's counters, and a
/// rule added by nft or legacy iptables replaces the read.
#[test]
fn firewall_pages_share_one_read_until_the_ruleset_changes() -> anyhow::Result<()> {
    let Some((lab, _agent)) =
        lab_with_agent("firewall_pages_share_one_read_until_the_ruleset_changes")?
    else {
        return Ok(());
    };
    lab.traffic()?;
    let nat = |offset: u32, limit: u32, snapshot: &str| pb::GetFirewallRequest {
        table: "nat".into(),
        offset,
        limit,
        snapshot: snapshot.into(),
        ..Default::default()
    };
    let get = |lab: &Lab, req: pb::GetFirewallRequest| {
        lab.r.block_on(move || async move {
            let mut client = connect(AGENT).await?;
            Ok(client.get_firewall(req).await?.into_inner())
        })
    };
    let rules = |fw: &pb::Firewall| -> Vec<String> {
        fw.chains
            .iter()
            .flat_map(|c| &c.rules)
            .map(|r| r.text.clone())
            .collect()
    };
    let p1 = get(&lab, nat(0, 1, ""))?;
    let want: Vec<String> = saved_rules(&lab.r.run(&["iptables-save", "-c"])?, "nat")
        .into_iter()
        .map(|r| r.0)
        .collect();
    assert!(want.len() >= 3, "{want:?}");
    assert!(!p1.snapshot.is_empty() && !p1.snapshot_replaced);
    assert!(
        p1.change_signal.contains("nf_tables generation"),
        "{}",
        p1.change_signal
    );
    assert_eq!(rules(&p1).len(), 1, "one rule on a page of one");
    let counted: u32 = p1.chains.iter().map(|c| c.rule_count).sum();
    assert_eq!(
        counted as usize,
        want.len(),
        "chains keep their rule counts"
    );
    // More traffic through the DNAT rule; the next pages still show the first read.
    lab.traffic()?;
    let p2 = get(&lab, nat(1, 1000, &p1.snapshot))?;
    assert_eq!(
        p2.snapshot, p1.snapshot,
        "the same read serves the next page"
    );
    assert!(!p2.snapshot_replaced);
    let mut joined = rules(&p1);
    joined.extend(rules(&p2));
    assert_eq!(joined, want, "the pages join up to iptables-save");
    let whole = get(&lab, nat(0, 0, &p1.snapshot))?;
    assert_eq!(whole.snapshot, p1.snapshot);
    // A call without a snapshot, past the sharing second, reads again.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let fresh = get(&lab, nat(0, 0, ""))?;
    assert_ne!(fresh.snapshot, p1.snapshot);
    assert!(
        dnat_packets(&fresh) > dnat_packets(&whole),
        "new counters in a new read: {} vs {}",
        dnat_packets(&fresh),
        dnat_packets(&whole)
    );
    // Another client's new read does not take the first one's pages away.
    let still = get(&lab, nat(0, 0, &p1.snapshot))?;
    assert_eq!(still.snapshot, p1.snapshot, "the pager keeps its read");
    assert!(!still.snapshot_replaced);
    // A new nft rule replaces the read, even for a page that names the old one.
    lab.r.run(&[
        "iptables",
        "-t",
        "nat",
        "-A",
        "LABSCOPE-POST",
        "-d",
        "10.201.9.9/32",
        "-j",
        "RETURN",
    ])?;
    let after = get(&lab, nat(0, 0, &fresh.snapshot))?;
    assert!(after.snapshot_replaced && after.snapshot != fresh.snapshot);
    assert!(
        rules(&after).iter().any(|r| r.contains("10.201.9.9")),
        "{:?}",
        rules(&after)
    );
    // So does a legacy one (the legacy tables' size changes).
    lab.r.run(&[
        "iptables-legacy",
        "-t",
        "nat",
        "-A",
        "POSTROUTING",
        "-j",
        "RETURN",
    ])?;
    let legacy = get(&lab, nat(0, 0, &after.snapshot))?;
    assert!(legacy.snapshot_replaced && legacy.snapshot != after.snapshot);
    assert!(
        legacy.change_signal.contains("legacy nat"),
        "{}",
        legacy.change_signal
    );
    let unchanged = get(&lab, nat(0, 0, &legacy.snapshot))?;
    assert_eq!(
        unchanged.snapshot, legacy.snapshot,
        "legacy tables unchanged: shared"
    );
    // A name the agent never gave is refused, naming the field.
    let bad_req = nat(0, 0, "not-a-snapshot");
    let bad = lab
        .r
        .block_on(move || async move {
            let mut client = connect(AGENT).await?;
            Ok(client.get_firewall(bad_req).await)
        })?
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert!(bad.message().contains("snapshot"), "{}", bad.message());
    // For programs, the field is in the error details (google.rpc.BadRequest).
    let violation = tonic_types::StatusExt::get_details_bad_request(&bad)
        .and_then(|b| b.field_violations.into_iter().next())
        .expect("a BadRequest field violation");
    assert_eq!(violation.field, "snapshot");
    assert!(!violation.description.is_empty());
    Ok(())
}

/// (proto, orig src, orig dst, orig sport, orig dport, reply src, reply dst, reply sport, reply dport)
type Key = (String, String, String, u32, u32, String, String, u32, u32);

fn conntrack_tool_entries(text: &str) -> BTreeSet<Key> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(proto) = words.first() else { continue };
        let vals = |k: &str| -> Vec<String> {
            words
                .iter()
                .filter_map(|w| w.strip_prefix(k))
                .map(str::to_string)
                .collect()
        };
        let (src, dst) = (vals("src="), vals("dst="));
        if src.len() < 2 || dst.len() < 2 {
            continue;
        }
        let num = |v: Vec<String>, i: usize| v.get(i).and_then(|x| x.parse().ok()).unwrap_or(0);
        let (sport, dport) = (vals("sport="), vals("dport="));
        let (sp0, dp0, sp1, dp1) = if *proto == "icmp" {
            // conntrack prints type/code/id; the agent has them in icmp_*.
            let id = num(vals("id="), 0);
            (id, 0, id, 0)
        } else {
            (
                num(sport.clone(), 0),
                num(dport.clone(), 0),
                num(sport, 1),
                num(dport, 1),
            )
        };
        out.insert((
            proto.to_string(),
            src[0].clone(),
            dst[0].clone(),
            sp0,
            dp0,
            src[1].clone(),
            dst[1].clone(),
            sp1,
            dp1,
        ));
    }
    out
}

/// Conntrack addresses come as octets only (bulk answers); the aggregator's
/// formatter turns them into text.
fn octets(ip: &Option<pb::IpAddress>) -> String {
    labscope::tools::node::ip_text(ip)
}

const IPS_SEEN_REPLY: u32 = 1 << 1;
const IPS_ASSURED: u32 = 1 << 2;

fn agent_key(e: &pb::ConntrackEntry) -> Key {
    let o = e.original.clone().unwrap_or_default();
    let r = e.reply.clone().unwrap_or_default();
    let ports = |t: &pb::ConntrackTuple| {
        if t.has_icmp {
            (t.icmp_id, 0)
        } else {
            (t.source_port, t.destination_port)
        }
    };
    let (sp0, dp0) = ports(&o);
    let (sp1, dp1) = ports(&r);
    (
        o.protocol_name.clone(),
        octets(&o.source),
        octets(&o.destination),
        sp0,
        dp0,
        octets(&r.source),
        octets(&r.destination),
        sp1,
        dp1,
    )
}

#[test]
fn conntrack_matches_conntrack_tool() -> anyhow::Result<()> {
    let Some((lab, _agent)) = lab_with_agent("conntrack_matches_conntrack_tool")? else {
        return Ok(());
    };
    lab.traffic()?;
    let (all, by_addr, dnat, page1, page2, (udp, quick)) = lab.r.block_on(|| async {
        let mut client = connect(AGENT).await?;
        let lab_net = || pb::ListConntrackRequest {
            address: "10.201.0.0/16".into(),
            ..Default::default()
        };
        let all = list_all(&mut client, lab_net()).await?;
        let by_addr = list_all(
            &mut client,
            pb::ListConntrackRequest {
                address: "10.201.1.2".into(),
                ..Default::default()
            },
        )
        .await?;
        let dnat = list_all(
            &mut client,
            pb::ListConntrackRequest {
                protocol: "tcp".into(),
                port: 8080,
                ..Default::default()
            },
        )
        .await?;
        let page1 = list_all(
            &mut client,
            pb::ListConntrackRequest {
                limit: 2,
                ..lab_net()
            },
        )
        .await?;
        let page2 = list_all(
            &mut client,
            pb::ListConntrackRequest {
                limit: 2,
                continuation_token: page1.1.next_token.clone(),
                ..lab_net()
            },
        )
        .await?;
        let udp = list_all(
            &mut client,
            pb::ListConntrackRequest {
                protocol: "udp".into(),
                state: "UNREPLIED".into(),
                ..lab_net()
            },
        )
        .await?;
        let quick = list_all(
            &mut client,
            pb::ListConntrackRequest {
                limit: 1,
                stop_at_limit: true,
                ..lab_net()
            },
        )
        .await?;
        Ok((all, by_addr, dnat, page1, page2, (udp, quick)))
    })?;
    let tool = lab.r.run(&["conntrack", "-L"])?;
    let want: BTreeSet<Key> = conntrack_tool_entries(&tool)
        .into_iter()
        .filter(|k| k.1.starts_with("10.201."))
        .collect();
    let got: BTreeSet<Key> = all.0.iter().map(agent_key).collect();
    assert_eq!(got, want, "agent vs conntrack -L (lab addresses)");
    assert!(
        want.len() >= 4,
        "ICMP×2, TCP via DNAT, UDP expected: {want:?}"
    );

    let (entries, summary) = &all;
    assert_eq!(summary.matched, entries.len() as u64);
    assert!(summary.table_count >= summary.matched && summary.table_max > 0);
    assert!(!summary.truncated && summary.next_token.is_empty());

    // The address filter matches either direction and either tuple.
    assert!(
        by_addr
            .0
            .iter()
            .all(|e| agent_key(e).1 == "10.201.1.2" || agent_key(e).6 == "10.201.1.2")
    );
    assert_eq!(
        by_addr.0.len(),
        entries.len(),
        "every lab entry starts at c"
    );

    // The DNAT'ed connection: orig to r:8080, reply from s:80 to r (masquerade).
    let d = &dnat.0;
    assert_eq!(d.len(), 1, "{d:?}");
    let k = agent_key(&d[0]);
    assert_eq!(
        (k.2.as_str(), k.4, k.5.as_str(), k.7),
        (R_ADDR, 8080, S_ADDR, 80)
    );
    assert_eq!(k.6, "10.201.2.1", "masqueraded towards s");
    assert!(d[0].dst_nat && d[0].src_nat);
    assert!(d[0].status_bits & IPS_ASSURED != 0);

    // Paging: two pages of two, disjoint, with "N of M".
    assert_eq!(page1.0.len(), 2);
    assert!(page1.1.truncated);
    assert_eq!(page1.1.matched, entries.len() as u64);
    let p1: BTreeSet<Key> = page1.0.iter().map(agent_key).collect();
    let p2: BTreeSet<Key> = page2.0.iter().map(agent_key).collect();
    assert!(p1.is_disjoint(&p2));
    assert_eq!(page2.1.returned, (entries.len() as u64 - 2).min(2));

    // stop_at_limit: one entry, a next page, and a matched count that says it is partial.
    assert_eq!(quick.0.len(), 1);
    assert!(quick.1.truncated && quick.1.matched_is_lower_bound && !quick.1.next_token.is_empty());
    assert_eq!(
        quick.1.matched, 2,
        "the page plus the one match that proves more exist"
    );
    assert!(!all.1.matched_is_lower_bound);

    // The UDP probe to a closed port was never answered.
    assert_eq!(udp.0.len(), 1);
    assert!(udp.0[0].status_bits & IPS_SEEN_REPLY == 0);
    Ok(())
}

/// Pages read with `stop_at_limit` continue the kernel's walk: every entry
/// of `conntrack -L` exactly once, each page reading about one page of the
/// table, and a token whose parked dump is gone still finds its page.
#[test]
fn conntrack_pages_continue_the_kernel_walk() -> anyhow::Result<()> {
    if !require_root("conntrack_pages_continue_the_kernel_walk") {
        return Ok(());
    }
    require_tool("conntrack")?;
    require_tool("iptables")?;
    let ns = labscope_tests::Netns::new("lsctpage")?;
    // A conntrack match makes the kernel track this namespace's traffic.
    ns.run(&[
        "iptables",
        "-A",
        "INPUT",
        "-m",
        "conntrack",
        "--ctstate",
        "NEW",
        "-j",
        "ACCEPT",
    ])?;
    ns.run(&[
        "sysctl",
        "-qw",
        "net.netfilter.nf_conntrack_udp_timeout=600",
    ])?;
    let _agent = AgentProcess::start(&ns, AGENT, "ct-pages", &[])?;
    const FLOWS: u16 = 3000;
    const LIMIT: u32 = 400;
    ns.block_on(|| async {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0")?;
        for i in 0..FLOWS {
            let _ = sock.send_to(b"x", ("127.0.0.7", 20_000 + i));
        }
        Ok(())
    })?;
    let flow = |k: &Key| k.0 == "udp" && k.2 == "127.0.0.7";
    let (pages, again, unfiltered) = ns.block_on(|| async {
        let mut client = connect(AGENT).await?;
        let req = |token: String| pb::ListConntrackRequest {
            protocol: "udp".into(),
            limit: LIMIT,
            stop_at_limit: true,
            continuation_token: token,
            ..Default::default()
        };
        let mut pages = Vec::new();
        let mut token = String::new();
        loop {
            let page = list_all(&mut client, req(token.clone())).await?;
            token = page.1.next_token.clone();
            pages.push(page);
            if token.is_empty() || pages.len() > 20 {
                break;
            }
        }
        // The first page's token again: its parked dump was taken by page 2,
        // so this one skips to the page in a new dump.
        let first = pages[0].1.next_token.clone();
        let again = list_all(&mut client, req(first)).await?;
        let unfiltered = list_all(
            &mut client,
            pb::ListConntrackRequest {
                limit: 10,
                stop_at_limit: true,
                ..Default::default()
            },
        )
        .await?;
        Ok((pages, again, unfiltered))
    })?;
    let want: BTreeSet<Key> = conntrack_tool_entries(&ns.run(&["conntrack", "-L"])?)
        .into_iter()
        .filter(flow)
        .collect();
    assert_eq!(want.len(), FLOWS as usize, "conntrack -L sees every flow");
    let mut seen = Vec::new();
    for (entries, _) in &pages {
        seen.extend(entries.iter().map(agent_key).filter(flow));
    }
    let unique: BTreeSet<Key> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "no entry on two pages");
    assert_eq!(unique, want, "the pages together are conntrack -L");
    let n = pages.len();
    assert!(n >= (FLOWS as usize).div_ceil(LIMIT as usize), "{n} pages");
    for (i, (entries, summary)) in pages.iter().enumerate() {
        let last = i + 1 == n;
        assert_eq!(entries.len() as u64, summary.returned);
        assert_eq!(summary.truncated, !last, "page {i}");
        if !last {
            assert_eq!(summary.returned, u64::from(LIMIT), "page {i}");
            assert!(summary.matched_is_lower_bound, "a filter was given");
            assert!(summary.matched > (i as u64 + 1) * u64::from(LIMIT));
        }
        // A continued page reads its page (plus the one match that proves
        // more), not the entries before it.
        if i > 0 {
            assert!(
                summary.scanned <= u64::from(LIMIT) + 10,
                "page {i} read {} entries",
                summary.scanned
            );
        }
    }
    // The token whose dump was taken still names the second page.
    let again_keys: Vec<Key> = again.0.iter().map(agent_key).collect();
    let second: Vec<Key> = pages[1].0.iter().map(agent_key).collect();
    assert_eq!(again_keys, second, "skip-walk fallback finds the same page");
    assert!(
        again.1.scanned > u64::from(LIMIT) + 1,
        "the fallback re-reads"
    );
    // No filter: the kernel's own count is the exact total, nothing read past the page.
    let u = &unfiltered.1;
    assert_eq!(u.returned, 10);
    assert!(!u.matched_is_lower_bound && u.truncated);
    assert!(u.matched >= u64::from(FLOWS) && u.matched == u.table_count.max(11));
    assert!(u.scanned <= 11, "read {}", u.scanned);
    Ok(())
}

/// Linux (major, minor) of the running kernel.
fn kernel_version() -> (u32, u32) {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// Filters the kernel can test itself (protocol within a family, status
/// bits, mark) are sent with the dump request: the answers equal
/// `conntrack -L` with the same filter, and on Linux 6.1+ the agent receives
/// only the matches (`scanned == matched`).
#[test]
fn conntrack_filters_run_in_the_kernel() -> anyhow::Result<()> {
    if !require_root("conntrack_filters_run_in_the_kernel") {
        return Ok(());
    }
    require_tool("conntrack")?;
    let ns = labscope_tests::Netns::new("lsctfilt")?;
    let insert = |args: &[&str]| -> anyhow::Result<()> {
        let mut argv = vec!["conntrack", "-I", "-t", "600"];
        argv.extend_from_slice(args);
        ns.run(&argv).map(drop)
    };
    // IPv4 TCP established (mark 0), IPv4 UDP unreplied with a kube-proxy-
    // style mark, IPv6 TCP half-open, IPv6 UDP with another mark.
    for i in 0..40u16 {
        let sport = (10_000 + i).to_string();
        let tcp4 = [
            "-p", "tcp", "-s", "10.9.0.1", "-d", "10.9.0.2", "--sport", &sport, "--dport", "443",
        ];
        insert(
            &[
                &tcp4[..],
                &["--state", "ESTABLISHED", "-u", "SEEN_REPLY,ASSURED"],
            ]
            .concat(),
        )?;
        if i % 2 == 0 {
            insert(&[
                "-p",
                "udp",
                "-s",
                "10.9.0.1",
                "-d",
                "10.9.0.53",
                "--sport",
                &sport,
                "--dport",
                "53",
                "-m",
                "0x4001",
            ])?;
        }
        if i % 4 == 0 {
            insert(&[
                "-p", "tcp", "-s", "fd00::1", "-d", "fd00::2", "--sport", &sport, "--dport", "80",
                "--state", "SYN_SENT", "-m", "7",
            ])?;
            insert(&[
                "-p", "udp", "-s", "fd00::1", "-d", "fd00::53", "--sport", &sport, "--dport", "53",
                "-m", "0x4002",
            ])?;
        }
    }
    let _agent = AgentProcess::start(&ns, AGENT, "ct-filter", &[])?;
    let all = ns.run(&["conntrack", "-L"])?;
    let lines_with = |flag: &str| -> String {
        all.lines()
            .filter(|l| l.contains(flag))
            .collect::<Vec<_>>()
            .join("\n")
    };
    struct Case {
        name: &'static str,
        req: pb::ListConntrackRequest,
        want: String,
        /// Whether the kernel can test the whole filter (else only part).
        whole: bool,
    }
    let req = |f: fn(&mut pb::ListConntrackRequest)| {
        let mut r = pb::ListConntrackRequest::default();
        f(&mut r);
        r
    };
    let cases = vec![
        Case {
            name: "protocol udp",
            req: req(|r| r.protocol = "udp".into()),
            want: ns.run(&["conntrack", "-L", "-p", "udp"])?,
            whole: true,
        },
        Case {
            name: "tcp over IPv6",
            req: req(|r| {
                r.protocol = "tcp".into();
                r.ip_version = 6;
            }),
            want: ns.run(&["conntrack", "-L", "-p", "tcp", "-f", "ipv6"])?,
            whole: true,
        },
        Case {
            name: "mark 0x4000/0xf000",
            req: req(|r| r.mark = "0x4000/0xf000".into()),
            want: ns.run(&["conntrack", "-L", "-m", "0x4000/0xf000"])?,
            whole: true,
        },
        Case {
            name: "udp with mark 0x4002",
            req: req(|r| {
                r.protocol = "udp".into();
                r.mark = "0x4002".into();
            }),
            want: ns.run(&["conntrack", "-L", "-p", "udp", "-m", "0x4002"])?,
            whole: true,
        },
        Case {
            name: "UNREPLIED",
            req: req(|r| r.state = "UNREPLIED".into()),
            want: lines_with("[UNREPLIED]"),
            whole: true,
        },
        Case {
            name: "ASSURED",
            req: req(|r| r.state = "ASSURED".into()),
            want: lines_with("[ASSURED]"),
            whole: true,
        },
        Case {
            name: "SYN_SENT (the kernel tests TCP, the agent the state)",
            req: req(|r| r.state = "SYN_SENT".into()),
            want: ns.run(&["conntrack", "-L", "-p", "tcp", "--state", "SYN_SENT"])?,
            whole: false,
        },
    ];
    let status_in_kernel = kernel_version() >= (6, 1);
    if !status_in_kernel {
        eprintln!(
            "conntrack_filters_run_in_the_kernel: Linux {:?} is older than 6.1: not checking that the kernel sent only matches",
            kernel_version()
        );
    }
    let tcp_total = ns.run(&["conntrack", "-L", "-p", "tcp"])?.lines().count() as u64;
    for case in cases {
        let r = case.req.clone();
        let (entries, summary) = ns.block_on(move || async move {
            let mut client = connect(AGENT).await?;
            list_all(&mut client, r).await
        })?;
        let got: BTreeSet<Key> = entries.iter().map(agent_key).collect();
        let want = conntrack_tool_entries(&case.want);
        assert!(
            !want.is_empty(),
            "{}: conntrack -L found nothing",
            case.name
        );
        assert_eq!(got, want, "{}: agent vs conntrack -L", case.name);
        assert_eq!(summary.matched, want.len() as u64, "{}", case.name);
        assert!(
            summary.kernel_filtered,
            "{}: filter sent to the kernel",
            case.name
        );
        if status_in_kernel {
            let expected = if case.whole {
                summary.matched
            } else {
                tcp_total
            };
            assert_eq!(
                summary.scanned, expected,
                "{}: the kernel sent only what it could test",
                case.name
            );
        }
    }
    // A paged, filtered listing across both families: every UDP entry once.
    let pages = ns.block_on(|| async {
        let mut client = connect(AGENT).await?;
        let mut token = String::new();
        let mut seen = Vec::new();
        for _ in 0..20 {
            let (entries, summary) = list_all(
                &mut client,
                pb::ListConntrackRequest {
                    protocol: "udp".into(),
                    limit: 7,
                    stop_at_limit: true,
                    continuation_token: token,
                    ..Default::default()
                },
            )
            .await?;
            seen.extend(entries.iter().map(agent_key));
            token = summary.next_token;
            if token.is_empty() {
                break;
            }
        }
        Ok(seen)
    })?;
    let want = conntrack_tool_entries(&ns.run(&["conntrack", "-L", "-p", "udp"])?);
    assert_eq!(pages.len(), want.len(), "no UDP entry twice");
    assert_eq!(pages.into_iter().collect::<BTreeSet<_>>(), want);
    // A bad mark is refused before any dump, naming the field.
    let bad = ns
        .block_on(|| async {
            let mut client = connect(AGENT).await?;
            Ok(client
                .list_conntrack(pb::ListConntrackRequest {
                    mark: "0x1/0x2".into(),
                    ..Default::default()
                })
                .await)
        })?
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert!(bad.message().contains("mark"), "{}", bad.message());
    Ok(())
}

#[test]
fn probes_reach_the_peer_namespace() -> anyhow::Result<()> {
    let Some((lab, _agent)) = lab_with_agent("probes_reach_the_peer_namespace")? else {
        return Ok(());
    };
    lab.r
        .run(&["sysctl", "-qw", "net.ipv4.ping_group_range=1 0"])?;
    let raw_ping = lab.r.block_on(|| async {
        let mut client = connect(AGENT).await?;
        Ok(client
            .ping(pb::PingRequest {
                target: S_ADDR.into(),
                count: 3,
                interval_ms: 10,
                ..Default::default()
            })
            .await?
            .into_inner())
    })?;
    assert_eq!((raw_ping.transmitted, raw_ping.received), (3, 3));
    assert_eq!(
        raw_ping.method,
        pb::PingMethod::Raw as i32,
        "ping sockets disabled → raw socket"
    );
    assert!(
        raw_ping.rtt_min_us > 0
            && raw_ping.rtt_min_us <= raw_ping.rtt_avg_us
            && raw_ping.rtt_avg_us <= raw_ping.rtt_max_us
    );

    lab.r
        .run(&["sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647"])?;
    let results = lab.r.block_on(|| async {
        let mut client = connect(AGENT).await?;
        let ping = client
            .ping(pb::PingRequest {
                target: S_ADDR.into(),
                count: 2,
                interval_ms: 10,
                ..Default::default()
            })
            .await?
            .into_inner();
        let ping6 = client
            .ping(pb::PingRequest {
                target: "fd00:201:2::2".into(),
                count: 1,
                ..Default::default()
            })
            .await?
            .into_inner();
        let lost = client
            .ping(pb::PingRequest {
                target: "10.201.2.77".into(),
                count: 1,
                timeout_ms: 300,
                ..Default::default()
            })
            .await?
            .into_inner();
        let tcp = |port: u32, timeout_ms: u32| pb::TcpConnectRequest {
            target: S_ADDR.into(),
            port,
            timeout_ms,
        };
        let open = client.tcp_connect(tcp(80, 2000)).await?.into_inner();
        let refused = client.tcp_connect(tcp(81, 2000)).await?.into_inner();
        let filtered = client.tcp_connect(tcp(82, 300)).await?.into_inner();
        let http = client
            .http_probe(pb::HttpProbeRequest {
                url: format!("http://{S_ADDR}/"),
                ..Default::default()
            })
            .await?
            .into_inner();
        let redirect = client
            .http_probe(pb::HttpProbeRequest {
                url: format!("http://{S_ADDR}:8081/x"),
                method: "HEAD".into(),
                ..Default::default()
            })
            .await?
            .into_inner();
        let https_refused = client
            .http_probe(pb::HttpProbeRequest {
                url: format!("https://{S_ADDR}:81/"),
                ..Default::default()
            })
            .await?
            .into_inner();
        let dns = |name: &str, cd: bool| pb::DnsQueryRequest {
            name: name.into(),
            record_type: "A".into(),
            server: S_ADDR.into(),
            checking_disabled: cd,
            ..Default::default()
        };
        let found = client.dns_query(dns(DNS_NAME, false)).await?.into_inner();
        let missing = client
            .dns_query(dns("nothing.lab.test", false))
            .await?
            .into_inner();
        let servfail = client
            .dns_query(dns("servfail.lab.test", false))
            .await?
            .into_inner();
        let cd = client
            .dns_query(dns("servfail.lab.test", true))
            .await?
            .into_inner();
        let silent = client
            .dns_query(pb::DnsQueryRequest {
                server: "10.201.2.77".into(),
                timeout_ms: 300,
                ..dns(DNS_NAME, false)
            })
            .await?
            .into_inner();
        let closed = client
            .dns_query(pb::DnsQueryRequest {
                server: "10.201.2.2:5454".into(),
                ..dns(DNS_NAME, false)
            })
            .await?
            .into_inner();
        Ok((
            ping,
            ping6,
            lost,
            open,
            refused,
            filtered,
            http,
            redirect,
            https_refused,
            found,
            missing,
            servfail,
            cd,
            (silent, closed),
        ))
    })?;
    let (
        ping,
        ping6,
        lost,
        open,
        refused,
        filtered,
        http,
        redirect,
        https_refused,
        found,
        missing,
        servfail,
        cd,
        (silent, closed),
    ) = results;
    assert_eq!(
        ping.method,
        pb::PingMethod::Dgram as i32,
        "ping sockets allowed → unprivileged socket"
    );
    assert_eq!(ping.received, 2);
    assert_eq!(ping6.received, 1);
    assert_eq!(
        (lost.transmitted, lost.received, lost.loss_percent),
        (1, 0, 100.0)
    );

    assert_eq!(
        open.outcome,
        pb::TcpConnectOutcome::Open as i32,
        "{}",
        open.message
    );
    assert!(open.connect_us > 0);
    assert_eq!(
        refused.outcome,
        pb::TcpConnectOutcome::Refused as i32,
        "{}",
        refused.message
    );
    assert_eq!(
        filtered.outcome,
        pb::TcpConnectOutcome::Timeout as i32,
        "{}",
        filtered.message
    );

    assert_eq!(
        http.outcome,
        pb::HttpProbeOutcome::Ok as i32,
        "{}",
        http.error
    );
    assert_eq!(http.status, 200);
    assert_eq!(http.body_bytes, "hello from s\n".len() as u64);
    let t = http.timing.unwrap();
    assert!(
        t.connect_us > 0 && t.first_byte_us >= t.connect_us && t.total_us >= t.first_byte_us,
        "{t:?}"
    );
    assert_eq!(http.remote_address, format!("{S_ADDR}:80"));
    assert_eq!(redirect.status, 302);
    assert_eq!(redirect.redirect_location, "/moved");
    assert_eq!(
        https_refused.outcome,
        pb::HttpProbeOutcome::ConnectRefused as i32
    );

    assert_eq!(found.rcode, "NOERROR", "{}", found.error);
    assert_eq!(found.answers.len(), 1);
    assert_eq!(
        (found.answers[0].data.as_str(), found.answers[0].ttl),
        (S_ADDR, 300)
    );
    assert!(found.flags.as_ref().unwrap().recursion_available);
    assert!(found.latency_us > 0);
    assert_eq!(missing.rcode, "NXDOMAIN");
    assert_eq!(servfail.rcode, "SERVFAIL");
    assert_eq!(cd.rcode, "NOERROR", "checking-disabled retry succeeds");
    assert!(cd.flags.unwrap().checking_disabled);
    assert!(
        silent.rcode.is_empty() && silent.error.contains("no answer"),
        "{silent:?}"
    );
    assert!(
        closed.rcode.is_empty() && closed.error.contains("refused"),
        "{closed:?}"
    );
    Ok(())
}

#[test]
fn bad_input_is_rejected_with_the_field_named() -> anyhow::Result<()> {
    let Some((lab, _agent)) = lab_with_agent("bad_input_is_rejected_with_the_field_named")? else {
        return Ok(());
    };
    let failures = lab.r.block_on(|| async {
        let mut c = connect(AGENT).await?;
        let mut out: Vec<(String, tonic::Status)> = Vec::new();
        let mut push = |what: &str, r: Result<(), tonic::Status>| {
            out.push((what.to_string(), r.expect_err(what)));
        };
        let ct = |r: pb::ListConntrackRequest| r;
        push(
            "address",
            c.list_conntrack(ct(pb::ListConntrackRequest {
                address: "10.0.0.0/40".into(),
                ..Default::default()
            }))
            .await
            .map(|_| ()),
        );
        push(
            "port",
            c.list_conntrack(ct(pb::ListConntrackRequest {
                port: 70000,
                ..Default::default()
            }))
            .await
            .map(|_| ()),
        );
        push(
            "limit",
            c.list_conntrack(ct(pb::ListConntrackRequest {
                limit: u32::MAX,
                ..Default::default()
            }))
            .await
            .map(|_| ()),
        );
        push(
            "table",
            c.get_firewall(pb::GetFirewallRequest {
                table: "bogus".into(),
                ..Default::default()
            })
            .await
            .map(|_| ()),
        );
        push(
            "chain",
            c.get_firewall(pb::GetFirewallRequest {
                chain: "A;reboot".into(),
                ..Default::default()
            })
            .await
            .map(|_| ()),
        );
        push(
            "route_table",
            c.get_networking(pb::GetNetworkingRequest {
                route_table: "0".into(),
                ..Default::default()
            })
            .await
            .map(|_| ()),
        );
        push(
            "sections",
            c.get_networking(pb::GetNetworkingRequest {
                sections: vec![42],
                ..Default::default()
            })
            .await
            .map(|_| ()),
        );
        push(
            "target",
            c.tcp_connect(pb::TcpConnectRequest {
                target: "host; rm -rf /".into(),
                port: 80,
                ..Default::default()
            })
            .await
            .map(|_| ()),
        );
        push(
            "port",
            c.tcp_connect(pb::TcpConnectRequest {
                target: "127.0.0.1".into(),
                port: 0,
                ..Default::default()
            })
            .await
            .map(|_| ()),
        );
        push(
            "count",
            c.ping(pb::PingRequest {
                target: "127.0.0.1".into(),
                count: 1000,
                ..Default::default()
            })
            .await
            .map(|_| ()),
        );
        push(
            "url",
            c.http_probe(pb::HttpProbeRequest {
                url: "file:///etc/shadow".into(),
                ..Default::default()
            })
            .await
            .map(|_| ()),
        );
        push(
            "method",
            c.http_probe(pb::HttpProbeRequest {
                url: "http://127.0.0.1/".into(),
                method: "DELETE".into(),
                ..Default::default()
            })
            .await
            .map(|_| ()),
        );
        push(
            "name",
            c.dns_query(pb::DnsQueryRequest {
                name: "$(reboot)".into(),
                server: "127.0.0.1".into(),
                ..Default::default()
            })
            .await
            .map(|_| ()),
        );
        push(
            "server",
            c.dns_query(pb::DnsQueryRequest {
                name: "a.example".into(),
                ..Default::default()
            })
            .await
            .map(|_| ()),
        );
        push(
            "record_type",
            c.dns_query(pb::DnsQueryRequest {
                name: "a.example".into(),
                record_type: "AXFR".into(),
                server: "127.0.0.1".into(),
                ..Default::default()
            })
            .await
            .map(|_| ()),
        );
        // And the agent is still serving afterwards.
        c.get_node_info(pb::GetNodeInfoRequest {}).await?;
        Ok(out)
    })?;
    for (field, status) in failures {
        assert_eq!(
            status.code(),
            tonic::Code::InvalidArgument,
            "{field}: {status:?}"
        );
        assert!(
            status.message().contains(&field),
            "{field} not named in {:?}",
            status.message()
        );
    }
    Ok(())
}

#[test]
fn missing_privilege_is_a_typed_error() -> anyhow::Result<()> {
    if !require_root("missing_privilege_is_a_typed_error") {
        return Ok(());
    }
    require_tool("setpriv")?;
    let lab = Lab::build()?;
    lab.r
        .run(&["sysctl", "-qw", "net.ipv4.ping_group_range=1 0"])?;
    let wrap = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
    ];
    let _agent = AgentProcess::start(&lab.r, AGENT, "unprivileged", &wrap)?;
    let (ct, ping, info) = lab.r.block_on(|| async {
        let mut c = connect(AGENT).await?;
        let ct = match c.list_conntrack(pb::ListConntrackRequest::default()).await {
            Err(status) => status,
            Ok(resp) => {
                let mut stream = resp.into_inner();
                let mut last = None;
                while let Some(item) = stream.next().await {
                    if let Err(s) = item {
                        last = Some(s);
                    }
                }
                last.ok_or_else(|| anyhow::anyhow!("conntrack without privilege did not fail"))?
            }
        };
        let ping = c
            .ping(pb::PingRequest {
                target: S_ADDR.into(),
                count: 1,
                ..Default::default()
            })
            .await
            .unwrap_err();
        let info = c
            .get_node_info(pb::GetNodeInfoRequest {})
            .await?
            .into_inner();
        Ok((ct, ping, info))
    })?;
    assert_eq!(ct.code(), tonic::Code::PermissionDenied, "{ct:?}");
    assert!(ct.message().contains("CAP_NET_ADMIN"));
    assert_eq!(ping.code(), tonic::Code::PermissionDenied, "{ping:?}");
    assert!(ping.message().contains("CAP_NET_RAW") && ping.message().contains("ping_group_range"));
    assert!(info.capabilities.is_empty(), "{:?}", info.capabilities);
    assert!(!info.ping_socket_allowed);
    Ok(())
}

#[test]
fn health_node_info_and_graceful_shutdown() -> anyhow::Result<()> {
    let Some((lab, agent)) = lab_with_agent("health_node_info_and_graceful_shutdown")? else {
        return Ok(());
    };
    let (health, info, services) = lab.r.block_on(|| async {
        let channel = tonic::transport::Channel::from_static("http://127.0.0.1:9447")
            .connect()
            .await?;
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: "labscope.node.v1.NodeAgent".into(),
            })
            .await?
            .into_inner()
            .status;
        let info = connect(AGENT)
            .await?
            .get_node_info(pb::GetNodeInfoRequest {})
            .await?
            .into_inner();
        // The same question through both reflection versions: v1 (current
        // grpcurl) and v1alpha (older grpcurl, grpcio-reflection helpers).
        macro_rules! list_services {
            ($v:ident) => {{
                use tonic_reflection::pb::$v::{
                    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
                    server_reflection_request::MessageRequest,
                    server_reflection_response::MessageResponse,
                };
                let channel = tonic::transport::Channel::from_static("http://127.0.0.1:9447")
                    .connect()
                    .await?;
                let requests = vec![
                    ServerReflectionRequest {
                        host: String::new(),
                        message_request: Some(MessageRequest::ListServices(String::new())),
                    },
                    ServerReflectionRequest {
                        host: String::new(),
                        message_request: Some(MessageRequest::FileContainingSymbol(
                            "grpc.health.v1.Health".into(),
                        )),
                    },
                ];
                let mut replies = ServerReflectionClient::new(channel)
                    .server_reflection_info(tokio_stream::iter(requests))
                    .await?
                    .into_inner();
                let mut services: Vec<String> = Vec::new();
                let mut health_files = 0;
                while let Some(reply) = replies.next().await {
                    match reply?.message_response {
                        Some(MessageResponse::ListServicesResponse(list)) => {
                            services = list.service.into_iter().map(|s| s.name).collect()
                        }
                        Some(MessageResponse::FileDescriptorResponse(files)) => {
                            health_files = files.file_descriptor_proto.len()
                        }
                        other => anyhow::bail!("unexpected reflection reply {other:?}"),
                    }
                }
                (services, health_files)
            }};
        }
        let services = [list_services!(v1), list_services!(v1alpha)];
        Ok((status, info, services))
    })?;
    assert_eq!(
        health,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    for (version, (services, health_files)) in ["v1", "v1alpha"].iter().zip(&services) {
        for service in ["labscope.node.v1.NodeAgent", "grpc.health.v1.Health"] {
            assert!(
                services.contains(&service.to_string()),
                "reflection {version} lists {services:?}, missing {service}"
            );
        }
        assert!(
            *health_files > 0,
            "reflection {version} describes grpc.health.v1.Health"
        );
    }
    assert_eq!(info.node_name, "lab-r");
    assert_eq!(info.agent_version, env!("CARGO_PKG_VERSION"));
    assert!(info.capabilities.contains(&"CAP_NET_ADMIN".to_string()));
    assert!(info.conntrack_max > 0 && info.memory_total_bytes > 0);
    let status = agent.terminate()?;
    assert!(status.success(), "SIGTERM exits cleanly: {status}");
    Ok(())
}
