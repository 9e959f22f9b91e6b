//! nftables-native tables (and iptables-nft's, marked) through
//! `GetNftRuleset`, against `nft -a list table` run in the same namespace:
//! tables loaded with `nft -f` in families inet, ip, ip6 and netdev, with
//! base chains at standard and offset priorities, named and anonymous sets
//! and maps, intervals, concatenations, ct state, meta mark, log prefixes,
//! jumps, gotos, masquerade, dnat and snat, numgen and fib — shaped like
//! kube-proxy's nftables mode and Tailscale's tables. Every rule's text must
//! equal nft's line for the same handle (without the counter statement),
//! counters must lie between two `nft list` runs, and every set must show
//! nft's type and element count. Addresses, ports, marks and names are
//! random per run (`LABSCOPE_SEED`).

use std::collections::BTreeMap;

use labscope_proto::v1 as pb;
use labscope_tests::{AgentProcess, Netns, connect, require_root, require_tool};

use super::firewall_corpus::Rng;

const AGENT: &str = "127.0.0.1:9447";

fn ruleset(rng: &mut Rng) -> String {
    let net = rng.byte();
    let ip = |rng: &mut Rng| format!("10.{net}.{}.{}", rng.byte(), rng.byte());
    let (a, b, c) = (ip(rng), ip(rng), ip(rng));
    let p = rng.port();
    let mark = rng.mark();
    let h = rng.hash().to_lowercase();
    let svc = format!("service-{h}-default/web/tcp/http");
    let ep = format!(
        "endpoint-{}-default/web/tcp/http__{a}/80",
        rng.hash().to_lowercase()
    );
    let v6 = format!("fd{:02x}:{:x}::", rng.byte(), rng.below(0xffff));
    format!(
        r#"table inet filter {{
	set allowed4 {{
		type ipv4_addr
		flags interval
		elements = {{ 10.{net}.0.0/16, 192.168.{net}.1, 172.16.{net}.1-172.16.{net}.9 }}
	}}
	set ports {{
		type inet_service
		elements = {{ 22, {p}, 443 }}
	}}
	set svc {{
		type ipv4_addr . inet_proto . inet_service
		elements = {{ {a} . udp . 53, {b} . tcp . {p} }}
	}}
	map vm {{
		type inet_service : verdict
		elements = {{ 80 : accept, {p} : jump web }}
	}}
	chain web {{
		counter accept
	}}
	chain input {{
		type filter hook input priority 0; policy accept;
		tcp dport 9447 accept
		tcp sport 9447 accept
		ct state established,related accept
		ct state invalid drop
		iifname "lo" counter
		iif "lo" counter
		ip saddr @allowed4 tcp dport @ports counter accept
		ip saddr 10.{net}.0.0/16 tcp dport {{ 8000-8080, {p} }} accept
		ip6 saddr {v6}/48 udp dport 53 accept
		meta l4proto icmp icmp type echo-request limit rate 5/second counter
		icmpv6 type {{ nd-neighbor-solicit, echo-request }} accept
		meta mark {mark:#x} accept
		meta mark and 0xff00 == 0x100 drop
		tcp dport vmap @vm
		tcp flags & (syn|ack) == syn log prefix "syn in {p}: " level info counter
		ip daddr . meta l4proto . th dport @svc accept
		ip protocol tcp ip ttl < 10 drop
		tcp dport != 22 tcp sport 1024-65535 counter comment "my rule {p}"
		jump web
	}}
	chain forward {{
		type filter hook forward priority filter + 10; policy accept;
		oifname "eth*" counter goto web
	}}
}}
table ip nat {{
	chain pre {{
		type nat hook prerouting priority dstnat; policy accept;
		tcp dport {p} dnat to {c}:80
		iifname "eth0" udp dport 53 dnat to {b}
		tcp dport 9000 redirect to :9001
	}}
	chain post {{
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr 10.{net}.0.0/16 ip daddr != 10.{net}.0.0/16 masquerade fully-random
		oifname "eth1" snat to {a}
		meta mark & {mark:#x} == {mark:#x} masquerade
	}}
}}
table ip kube-proxy {{
	comment "rules for kube-proxy"
	set cluster-ips {{
		type ipv4_addr
		comment "Active ClusterIPs"
		elements = {{ {a}, {b} }}
	}}
	map service-ips {{
		type ipv4_addr . inet_proto . inet_service : verdict
		elements = {{ {a} . tcp . 80 : goto {svc} }}
	}}
	map service-nodeports {{
		type inet_proto . inet_service : verdict
	}}
	chain nat-prerouting {{
		type nat hook prerouting priority dstnat; policy accept;
		jump services
	}}
	chain nat-output {{
		type nat hook output priority -100; policy accept;
		jump services
	}}
	chain nat-postrouting {{
		type nat hook postrouting priority srcnat; policy accept;
		jump masquerading
	}}
	chain filter-forward {{
		type filter hook forward priority -110; policy accept;
		ct state new jump service-endpoints-check
	}}
	chain masquerading {{
		meta mark & 0x00004000 == 0x00000000 return
		meta mark set meta mark ^ 0x00004000
		masquerade fully-random
	}}
	chain mark-for-masquerade {{
		meta mark set meta mark | 0x00004000
	}}
	chain services {{
		ip daddr . meta l4proto . th dport vmap @service-ips
		fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports
	}}
	chain service-endpoints-check {{
		ip daddr @cluster-ips counter
	}}
	chain {svc} {{
		ip daddr {a} tcp dport 80 ip saddr != 10.{net}.0.0/16 jump mark-for-masquerade
		numgen random mod 1 vmap {{ 0 : goto {ep} }}
	}}
	chain {ep} {{
		ip saddr {a} jump mark-for-masquerade
		meta l4proto tcp dnat to {a}:80
	}}
}}
table inet ts {{
	chain input {{
		type filter hook input priority filter; policy accept;
		iifname "tailscale0" accept
		ip saddr 100.115.92.0/23 iifname != "tailscale0" return
		ip saddr 100.64.0.0/10 iifname != "tailscale0" drop
		ip6 saddr fd7a:115c:a1e0::/48 iifname != "tailscale0" drop
		udp dport 41641 accept
	}}
	chain forward {{
		type filter hook forward priority filter; policy accept;
		iifname "tailscale0" meta mark set meta mark & 0xff00ffff | 0x00040000
		meta mark & 0x00ff0000 == 0x00040000 accept
		ip saddr 100.64.0.0/10 oifname "tailscale0" drop
	}}
}}
table ip6 f6 {{
	chain in6 {{
		type filter hook input priority 10; policy accept;
		ct state vmap {{ invalid : drop, established : accept, related : accept }}
		icmpv6 type {{ nd-router-advert, nd-neighbor-solicit }} accept
		ip6 hoplimit 255 accept
		ip6 nexthdr tcp tcp dport {{ 22, {p} }} ct state new log prefix "new v6: " level warn accept
		tcp flags & (fin|syn|rst|ack) == syn limit rate over 10/minute burst 20 packets drop
		ip6 saddr {v6}/64 reject with icmpv6 admin-prohibited
	}}
	chain out6 {{
		type filter hook output priority raw - 5; policy accept;
		meta skuid 0 ct mark set {mark:#x}
		udp sport 53 notrack
	}}
}}
table netdev edge {{
	chain ingress {{
		type filter hook ingress device "lo" priority -250; policy accept;
		ether type arp accept
		ip saddr {c} drop
	}}
}}
"#
    )
}

/// `counter packets N bytes M` taken out of a rule line, with the numbers.
fn strip_counter(line: &str) -> (String, Option<(u64, u64)>) {
    let Some(at) = line.find("counter packets ") else {
        return (line.to_string(), None);
    };
    let rest = &line[at + "counter packets ".len()..];
    let mut words = rest.splitn(4, ' ');
    let packets = words.next().and_then(|w| w.parse().ok());
    let _bytes_word = words.next();
    let bytes = words.next().and_then(|w| w.parse().ok());
    let tail = words.next().unwrap_or("");
    let head = line[..at].trim_end();
    let text = match (head.is_empty(), tail.is_empty()) {
        (true, _) => tail.to_string(),
        (false, true) => head.to_string(),
        (false, false) => format!("{head} {tail}"),
    };
    (text, packets.zip(bytes))
}

/// A rule line's text and counter (packets, bytes).
type Line = (String, Option<(u64, u64)>);

/// What `nft -a list ruleset` says: rule texts and counters by handle,
/// (family table, set) → (type, elements).
#[derive(Default)]
struct Listed {
    rules: BTreeMap<(String, u64), Line>,
    sets: BTreeMap<(String, String), (String, u32)>,
}

fn parse_listing(text: &str) -> Listed {
    let mut out = Listed::default();
    let mut table = String::new();
    let mut set: Option<String> = None;
    let mut elements = String::new();
    let mut in_elements = false;
    for raw in text.lines() {
        let line = raw.trim();
        if let Some(t) = line.strip_prefix("table ") {
            table = t.split(" {").next().unwrap_or("").trim().to_string();
            continue;
        }
        if let Some(s) = line
            .strip_prefix("set ")
            .or_else(|| line.strip_prefix("map "))
        {
            set = Some(s.split(' ').next().unwrap_or("").to_string());
            continue;
        }
        if let Some(name) = &set {
            if let Some(ty) = line.strip_prefix("type ") {
                out.sets
                    .insert((table.clone(), name.clone()), (ty.to_string(), 0));
            } else if let Some(e) = line.strip_prefix("elements = ") {
                elements = e.to_string();
                in_elements = !e.ends_with('}');
            } else if in_elements {
                elements.push(' ');
                elements.push_str(line);
                in_elements = !line.ends_with('}');
            }
            if line == "}" {
                let n = if elements.is_empty() {
                    0
                } else {
                    elements.matches(',').count() as u32 + 1
                };
                if let Some(v) = out.sets.get_mut(&(table.clone(), name.clone())) {
                    v.1 = n;
                }
                elements.clear();
                set = None;
            }
            continue;
        }
        if let Some((rule, handle)) = line.rsplit_once(" # handle ")
            && !rule.starts_with("chain ")
            && !rule.starts_with("type ")
            && let Ok(h) = handle.parse::<u64>()
        {
            let (text, counter) = strip_counter(rule);
            out.rules.insert((table.clone(), h), (text, counter));
        }
    }
    out
}

#[test]
fn nft_ruleset_equals_nft_list() -> anyhow::Result<()> {
    if !require_root("nft_ruleset_equals_nft_list") {
        return Ok(());
    }
    require_tool("nft")?;
    require_tool("iptables-nft")?;
    let mut rng = Rng::seeded();
    let ns = Netns::new("nftn")?;
    let file = tempfile::NamedTempFile::new()?;
    std::fs::write(file.path(), ruleset(&mut rng))?;
    ns.run(&["nft", "-f", &file.path().display().to_string()])?;
    // iptables-nft's own table beside them, and one nft rule inside it
    // iptables cannot read.
    ns.run(&[
        "iptables-nft",
        "-A",
        "INPUT",
        "-p",
        "udp",
        "--dport",
        "9",
        "-m",
        "comment",
        "--comment",
        "legacy app",
        "-j",
        "ACCEPT",
    ])?;
    ns.run(&[
        "nft", "add", "rule", "ip", "filter", "INPUT", "meta", "skuid", "0", "counter", "accept",
    ])?;
    let _agent = AgentProcess::start(&ns, AGENT, "nft", &[])?;
    ns.run(&["ping", "-c", "5", "-i", "0.01", "127.0.0.1"]).ok();
    let before = parse_listing(&ns.run(&["nft", "-a", "list", "ruleset"])?);
    let answer = ns.block_on(|| async {
        let mut client = connect(AGENT).await?;
        let all = client
            .get_nft_ruleset(pb::GetNftRulesetRequest::default())
            .await?
            .into_inner();
        // Paged: three rules at a time, one generation.
        let mut pages = Vec::new();
        let mut offset = 0;
        loop {
            let page = client
                .get_nft_ruleset(pb::GetNftRulesetRequest {
                    offset,
                    limit: 3,
                    generation: all.generation,
                    ..Default::default()
                })
                .await?
                .into_inner();
            let n: u32 = page
                .tables
                .iter()
                .flat_map(|t| &t.chains)
                .map(|c| c.rules.len() as u32)
                .sum();
            anyhow::ensure!(!page.generation_changed, "the ruleset did not change");
            pages.push(page);
            offset += n;
            if n == 0 || offset >= all.total_rules {
                break;
            }
        }
        let one = client
            .get_nft_ruleset(pb::GetNftRulesetRequest {
                family: "ip6".into(),
                table: "f6".into(),
                ..Default::default()
            })
            .await?
            .into_inner();
        let bad = client
            .get_nft_ruleset(pb::GetNftRulesetRequest {
                family: "ipx".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        // An iptables read beside: the nft rule in iptables' table is shown
        // marked, not dropped.
        let fw = client
            .get_firewall(pb::GetFirewallRequest {
                table: "filter".into(),
                ..Default::default()
            })
            .await?
            .into_inner();
        anyhow::Ok((all, pages, one, bad, fw))
    })?;
    let after = parse_listing(&ns.run(&["nft", "-a", "list", "ruleset"])?);
    let (all, pages, one, bad, fw) = answer;
    assert!(all.nf_tables_available);
    assert!(all.method.starts_with("netlink"), "{}", all.method);
    let mut seen = 0;
    for t in &all.tables {
        let label = format!("{} {}", t.family, t.name);
        for c in &t.chains {
            for r in &c.rules {
                let key = (label.clone(), r.handle);
                let (want, hi) = after.rules.get(&key).unwrap_or_else(|| {
                    panic!(
                        "{label} handle {} not in nft's listing: {:?}",
                        r.handle,
                        after
                            .rules
                            .keys()
                            .filter(|k| k.0 == label)
                            .collect::<Vec<_>>()
                    )
                });
                if t.iptables_compat {
                    // nft prints xtables parts through libxtables; ours are
                    // named only (get_iptables_rules decodes them).
                    continue;
                }
                assert_eq!(
                    &r.text, want,
                    "{label} chain {} handle {}",
                    c.name, r.handle
                );
                assert!(!r.partly_decoded, "{}", r.text);
                let lo = before.rules.get(&key).and_then(|x| x.1);
                assert_eq!(r.has_counter, hi.is_some(), "{}: counter", r.text);
                if let (Some(lo), Some(hi)) = (lo, hi) {
                    assert!(
                        lo.0 <= r.packets
                            && r.packets <= hi.0
                            && lo.1 <= r.bytes
                            && r.bytes <= hi.1,
                        "{}: {} packets {} bytes not between {lo:?} and {hi:?}",
                        r.text,
                        r.packets,
                        r.bytes
                    );
                }
                seen += 1;
            }
        }
        for s in &t.sets {
            let (ty, n) = after
                .sets
                .get(&(label.clone(), s.name.clone()))
                .unwrap_or_else(|| panic!("{label} set {} not in nft's listing", s.name));
            assert_eq!(&s.r#type, ty, "{label} set {}", s.name);
            assert_eq!(s.elements, *n, "{label} set {} elements", s.name);
        }
    }
    let native = after.rules.len()
        - all
            .tables
            .iter()
            .filter(|t| t.iptables_compat)
            .flat_map(|t| &t.chains)
            .map(|c| c.rules.len())
            .sum::<usize>();
    assert_eq!(seen, native, "every native rule compared");
    assert!(seen >= 55, "{seen} rules compared");
    // Tables and chains as nft lists them.
    let names: Vec<String> = all
        .tables
        .iter()
        .map(|t| format!("{} {}", t.family, t.name))
        .collect();
    for want in [
        "inet filter",
        "ip nat",
        "ip kube-proxy",
        "inet ts",
        "ip6 f6",
        "netdev edge",
        "ip filter",
    ] {
        assert!(names.contains(&want.to_string()), "{want} in {names:?}");
    }
    let ipt = all
        .tables
        .iter()
        .find(|t| t.family == "ip" && t.name == "filter")
        .unwrap();
    assert!(ipt.iptables_compat, "iptables-nft's table is marked");
    let kp = all.tables.iter().find(|t| t.name == "kube-proxy").unwrap();
    assert_eq!(kp.comment, "rules for kube-proxy");
    let fwd = kp
        .chains
        .iter()
        .find(|c| c.name == "filter-forward")
        .unwrap();
    assert!(fwd.base && fwd.hook == "forward" && fwd.priority == "-110" && fwd.r#type == "filter");
    let edge = all.tables.iter().find(|t| t.name == "edge").unwrap();
    assert_eq!(edge.chains[0].devices, ["lo"]);
    // Pages join up to the whole answer.
    let joined: Vec<(String, u64)> = pages
        .iter()
        .flat_map(|p| {
            p.tables.iter().flat_map(|t| {
                t.chains.iter().flat_map(move |c| {
                    c.rules
                        .iter()
                        .map(move |r| (format!("{}/{}", t.name, c.name), r.handle))
                })
            })
        })
        .collect();
    let whole: Vec<(String, u64)> = all
        .tables
        .iter()
        .flat_map(|t| {
            t.chains.iter().flat_map(move |c| {
                c.rules
                    .iter()
                    .map(move |r| (format!("{}/{}", t.name, c.name), r.handle))
            })
        })
        .collect();
    assert_eq!(joined, whole, "the pages join up");
    assert!(
        pages.iter().all(|p| p.tables.len() == all.tables.len()),
        "every page lists every table"
    );
    assert_eq!(one.tables.len(), 1);
    assert_eq!(one.tables[0].name, "f6");
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert!(bad.message().contains("family"), "{}", bad.message());
    // The nft rule in iptables' filter table: shown, marked, counted.
    let marked: Vec<&pb::FirewallRule> = fw
        .chains
        .iter()
        .flat_map(|c| &c.rules)
        .filter(|r| r.partly_decoded)
        .collect();
    assert_eq!(marked.len(), 1, "{:?}", fw.chains);
    assert!(
        marked[0].text.contains("[unsupported meta key 10]"),
        "{}",
        marked[0].text
    );
    assert_eq!(marked[0].target, "ACCEPT");
    assert_eq!(fw.partly_decoded_rules, 1);
    Ok(())
}
