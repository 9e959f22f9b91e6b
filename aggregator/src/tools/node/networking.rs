//! `get_node_networking`: a node's links, addresses, routes, policy rules and
//! neighbours, read from the kernel by its agent, paged in the aggregator.

use std::sync::Arc;

use labscope_proto::v1 as pb;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{decode_offset, encode_offset, enum_name, ip_text, node_agent, on_node};
use crate::choice;
use crate::tools::args::{Int, Text, blank_as_none, list_of};
use crate::tools::{Call, Hints, Meta, Render, ToolContext, ToolDef, ToolError, Toolset, label};

choice! {
    /// A part of a node's networking.
    pub enum Section {
        /// Interfaces.
        Links = "links",
        /// Addresses.
        Addresses = "addresses",
        /// Routes.
        Routes = "routes",
        /// Policy rules.
        Rules = "rules",
        /// Neighbours (ARP/NDP).
        Neighbours = "neighbours",
    }
}

/// Arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Node name (list_nodes).
    pub node: Text,
    /// Some of links, addresses, routes, rules, neighbours (all by default).
    #[serde(default, deserialize_with = "list_of")]
    pub sections: Vec<Section>,
    /// Route table: main, all, local, default or a number.
    #[serde(default, deserialize_with = "blank_as_none")]
    #[schemars(extend("default" = "main"))]
    pub table: Option<Text>,
    /// Most items per list.
    #[serde(default)]
    pub limit: Int<1, 5000, 500>,
    /// nextCursor of the previous page.
    #[serde(default, deserialize_with = "blank_as_none")]
    pub cursor: Option<Text>,
}

/// Traffic counters of one direction.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Traffic {
    /// Bytes.
    pub bytes: u64,
    /// Packets.
    pub packets: u64,
    /// Errors.
    pub errors: u64,
    /// Dropped.
    pub dropped: u64,
}

/// An interface.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Link {
    /// ifindex.
    pub index: u32,
    /// Name.
    pub name: String,
    /// Kind (veth, bridge, vxlan, …; empty for physical).
    pub kind: String,
    /// Operational state (UP, DOWN, UNKNOWN, …).
    pub state: String,
    /// Administratively up.
    pub admin_up: bool,
    /// Carrier.
    pub carrier: bool,
    /// MTU.
    pub mtu: u32,
    /// MAC.
    pub mac: String,
    /// Bridge or bond it belongs to.
    pub master: String,
    /// IFF_* flags.
    pub flags: Vec<String>,
    /// Received.
    pub rx: Traffic,
    /// Sent.
    pub tx: Traffic,
}

/// An address.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    /// Interface.
    pub link: String,
    /// Address.
    pub address: String,
    /// Prefix length.
    pub prefix_len: u32,
    /// Scope.
    pub scope: String,
    /// Label.
    pub label: String,
    /// Peer (point-to-point).
    pub peer: String,
    /// IFA_F_* flags.
    pub flags: Vec<String>,
}

/// One path of a multipath route.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Nexthop {
    /// Gateway.
    pub gateway: String,
    /// Interface.
    pub dev: String,
    /// Weight.
    pub weight: u32,
}

/// An address family.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// IPv4.
    Inet,
    /// IPv6.
    Inet6,
}

fn family(f: i32) -> Family {
    if f == pb::AddressFamily::Inet6 as i32 {
        Family::Inet6
    } else {
        Family::Inet
    }
}

/// A route.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    /// Destination prefix (or "default").
    pub destination: String,
    /// Table name.
    pub table: String,
    /// unicast, local, broadcast, blackhole, …
    #[serde(rename = "type")]
    pub route_type: String,
    /// Gateway.
    pub gateway: String,
    /// Interface.
    pub dev: String,
    /// Who installed it (kernel, boot, static, …).
    pub protocol: String,
    /// Scope.
    pub scope: String,
    /// Metric.
    pub metric: u32,
    /// Preferred source.
    pub prefsrc: String,
    /// Family.
    pub family: Family,
    /// Multipath next hops.
    pub nexthops: Vec<Nexthop>,
}

/// A policy rule.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// Priority.
    pub priority: u32,
    /// Family.
    pub family: Family,
    /// Source selector.
    pub from: String,
    /// Destination selector.
    pub to: String,
    /// Incoming interface.
    pub iif: String,
    /// Outgoing interface.
    pub oif: String,
    /// fwmark/mask, when matched.
    pub fwmark: String,
    /// lookup, blackhole, …
    pub action: String,
    /// Table looked up.
    pub table: String,
    /// `not`.
    pub not: bool,
}

/// A neighbour entry.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Neighbour {
    /// Address.
    pub address: String,
    /// Interface.
    pub dev: String,
    /// Link-layer address.
    pub lladdr: String,
    /// NUD states.
    pub states: Vec<String>,
    /// A router.
    pub router: bool,
}

/// Paging of one list.
#[derive(Debug, Default, Serialize, JsonSchema)]
pub struct PageCount {
    /// Items in this answer.
    pub returned: usize,
    /// Items in all.
    pub total: usize,
    /// Index of the first.
    pub offset: usize,
}

/// Paging of every list.
#[derive(Debug, Default, Serialize, JsonSchema)]
pub struct Counts {
    /// Links.
    pub links: PageCount,
    /// Addresses.
    pub addresses: PageCount,
    /// Routes.
    pub routes: PageCount,
    /// Rules.
    pub rules: PageCount,
    /// Neighbours.
    pub neighbours: PageCount,
}

/// A section the agent could not read, and why.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SectionError {
    /// Which.
    pub section: String,
    /// Why.
    pub message: String,
}

/// A node's networking.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Networking {
    /// Node.
    pub node: String,
    /// Route table asked for.
    pub table: String,
    /// Interfaces.
    pub links: Vec<Link>,
    /// Addresses.
    pub addresses: Vec<Address>,
    /// Routes.
    pub routes: Vec<Route>,
    /// Policy rules.
    pub rules: Vec<Rule>,
    /// Neighbours.
    pub neighbours: Vec<Neighbour>,
    /// Paging of each list.
    pub counts: Counts,
    /// Sections that could not be read.
    pub errors: Vec<SectionError>,
    /// Pass as `cursor` for the next page (the same offset applies to every list).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The tool.
pub fn tool() -> ToolDef {
    ToolDef::typed(
        Meta {
            name: "get_node_networking",
            title: "Node networking",
            description: "A node's links, addresses, routes, rules, neighbours.",
            toolset: Toolset::Node,
            hints: Hints::READ,
        },
        run,
    )
}

fn pb_section(s: Section) -> pb::NetworkingSection {
    match s {
        Section::Links => pb::NetworkingSection::Links,
        Section::Addresses => pb::NetworkingSection::Addresses,
        Section::Routes => pb::NetworkingSection::Routes,
        Section::Rules => pb::NetworkingSection::Rules,
        Section::Neighbours => pb::NetworkingSection::Neighbours,
    }
}

/// Keeps `limit` items from `offset`; records the paging.
fn page<T>(
    list: Vec<T>,
    offset: usize,
    limit: usize,
    count: &mut PageCount,
    more: &mut bool,
) -> Vec<T> {
    let total = list.len();
    let kept: Vec<T> = list.into_iter().skip(offset).take(limit).collect();
    *more |= total > offset + limit;
    *count = PageCount {
        returned: kept.len(),
        total,
        offset,
    };
    kept
}

/// A link as `ip -j link` shows it, with its counters.
fn links_row(l: &pb::Link) -> Link {
    let traffic = |bytes, packets, errors, dropped| Traffic {
        bytes,
        packets,
        errors,
        dropped,
    };
    let s = l.stats.unwrap_or_default();
    Link {
        index: l.index,
        name: l.name.clone(),
        kind: l.kind.clone(),
        // As `ip` prints it: UP, DOWN, UNKNOWN, …
        state: enum_name(
            pb::OperState::try_from(l.oper_state)
                .unwrap_or_default()
                .as_str_name(),
            "OPER_STATE_",
        )
        .to_ascii_uppercase(),
        admin_up: l.admin_up,
        carrier: l.lower_up,
        mtu: l.mtu,
        mac: l.mac.clone(),
        master: l.master.clone(),
        flags: l.flags.clone(),
        rx: traffic(s.rx_bytes, s.rx_packets, s.rx_errors, s.rx_dropped),
        tx: traffic(s.tx_bytes, s.tx_packets, s.tx_errors, s.tx_dropped),
    }
}

/// An address as `ip -j addr` shows it.
fn addresses_row(x: &pb::Address) -> Address {
    Address {
        link: x.link.clone(),
        address: ip_text(&x.address),
        prefix_len: x.prefix_len,
        scope: x.scope.clone(),
        label: x.label.clone(),
        peer: ip_text(&x.peer),
        flags: x.flags.clone(),
    }
}

/// A route as `ip -j route` shows it.
fn routes_row(r: &pb::Route) -> Route {
    Route {
        destination: r.destination.clone(),
        table: r.table_name.clone(),
        route_type: r.route_type.clone(),
        gateway: ip_text(&r.gateway),
        dev: r.oif.clone(),
        protocol: r.protocol.clone(),
        scope: r.scope.clone(),
        metric: r.metric,
        prefsrc: ip_text(&r.prefsrc),
        family: family(r.family),
        nexthops: r
            .nexthops
            .iter()
            .map(|h| Nexthop {
                gateway: ip_text(&h.gateway),
                dev: h.oif.clone(),
                weight: h.weight,
            })
            .collect(),
    }
}

/// A policy rule as `ip -j rule` shows it.
fn rules_row(r: &pb::Rule) -> Rule {
    Rule {
        priority: r.priority,
        family: family(r.family),
        from: r.source.clone(),
        to: r.destination.clone(),
        iif: r.iif.clone(),
        oif: r.oif.clone(),
        fwmark: if r.has_fwmark {
            format!("{:#x}/{:#x}", r.fwmark, r.fwmask)
        } else {
            String::new()
        },
        action: r.action.clone(),
        table: r.table_name.clone(),
        not: r.invert,
    }
}

/// A neighbour entry as `ip -j neigh` shows it.
fn neighbours_row(x: &pb::Neighbour) -> Neighbour {
    Neighbour {
        address: ip_text(&x.address),
        dev: x.link.clone(),
        lladdr: x.lladdr.clone(),
        states: x.states.clone(),
        router: x.router,
    }
}

async fn run(ctx: Arc<ToolContext>, a: Args, _call: Call) -> Result<Networking, ToolError> {
    let offset = decode_offset("cursor", a.cursor.as_deref())?;
    let limit = a.limit.get() as usize;
    let table = a
        .table
        .map(Text::into_string)
        .unwrap_or_else(|| "main".into());
    let agent = node_agent(&ctx, "node", &a.node).await?;
    let req = pb::GetNetworkingRequest {
        sections: a.sections.iter().map(|s| pb_section(*s) as i32).collect(),
        route_table: table.clone(),
    };
    let n = on_node(
        agent,
        ctx.settings.agent_deadline,
        &[("route_table", "table"), ("sections", "sections")],
        |a| async move { a.client().get_networking(req).await.map(|r| r.into_inner()) },
    )
    .await?;
    let links = n.links.iter().map(links_row).collect();
    let addresses = n.addresses.iter().map(addresses_row).collect();
    let routes = n.routes.iter().map(routes_row).collect();
    let rules = n.rules.iter().map(rules_row).collect();
    let neighbours = n.neighbours.iter().map(neighbours_row).collect();
    let mut counts = Counts::default();
    let mut more = false;
    let out = Networking {
        node: a.node.as_str().to_string(),
        table,
        links: page(links, offset, limit, &mut counts.links, &mut more),
        addresses: page(addresses, offset, limit, &mut counts.addresses, &mut more),
        routes: page(routes, offset, limit, &mut counts.routes, &mut more),
        rules: page(rules, offset, limit, &mut counts.rules, &mut more),
        neighbours: page(neighbours, offset, limit, &mut counts.neighbours, &mut more),
        counts,
        errors: n
            .errors
            .iter()
            .map(|e| SectionError {
                section: enum_name(
                    pb::NetworkingSection::try_from(e.section)
                        .unwrap_or_default()
                        .as_str_name(),
                    "NETWORKING_SECTION_",
                ),
                message: e.message.clone(),
            })
            .collect(),
        next_cursor: None,
    };
    Ok(Networking {
        next_cursor: more.then(|| encode_offset(offset + limit)),
        ..out
    })
}

fn of(c: &PageCount) -> String {
    format!("{} of {}", c.returned, c.total)
}

impl Render for Networking {
    fn text(&self) -> String {
        let mut out = format!("node {} (routes: table {})\n", self.node, self.table);
        if !self.links.is_empty() {
            out.push_str(&format!("links ({}):\n", of(&self.counts.links)));
            for l in &self.links {
                out.push_str(&format!(
                    "  {} {} {} mtu {} {}{} rx {}B/{}err/{}drop tx {}B/{}err/{}drop\n",
                    l.name,
                    if l.kind.is_empty() { "-" } else { &l.kind },
                    l.state,
                    l.mtu,
                    l.mac,
                    if l.master.is_empty() {
                        String::new()
                    } else {
                        format!(" master {}", l.master)
                    },
                    l.rx.bytes,
                    l.rx.errors,
                    l.rx.dropped,
                    l.tx.bytes,
                    l.tx.errors,
                    l.tx.dropped,
                ));
            }
        }
        if !self.addresses.is_empty() {
            out.push_str(&format!("addresses ({}):\n", of(&self.counts.addresses)));
            for a in &self.addresses {
                out.push_str(&format!(
                    "  {} {}/{} scope {}\n",
                    a.link, a.address, a.prefix_len, a.scope
                ));
            }
        }
        if !self.routes.is_empty() {
            out.push_str(&format!("routes ({}):\n", of(&self.counts.routes)));
            for r in &self.routes {
                let mut line = format!("  {} {}", r.route_type, r.destination);
                for (val, name) in [
                    (&r.gateway, "via"),
                    (&r.dev, "dev"),
                    (&r.table, "table"),
                    (&r.protocol, "proto"),
                    (&r.scope, "scope"),
                    (&r.prefsrc, "src"),
                ] {
                    if !val.is_empty() {
                        line.push_str(&format!(" {name} {val}"));
                    }
                }
                if r.metric > 0 {
                    line.push_str(&format!(" metric {}", r.metric));
                }
                for h in &r.nexthops {
                    line.push_str(&format!(
                        " nexthop via {} dev {} weight {}",
                        h.gateway, h.dev, h.weight
                    ));
                }
                out.push_str(&line);
                out.push('\n');
            }
        }
        if !self.rules.is_empty() {
            out.push_str(&format!("rules ({}):\n", of(&self.counts.rules)));
            for r in &self.rules {
                let mut line = format!(
                    "  {}: {}{} from {}",
                    r.priority,
                    label(&r.family),
                    if r.not { " not" } else { "" },
                    r.from
                );
                for (val, name) in [
                    (&r.to, "to"),
                    (&r.iif, "iif"),
                    (&r.oif, "oif"),
                    (&r.fwmark, "fwmark"),
                ] {
                    if !val.is_empty() {
                        line.push_str(&format!(" {name} {val}"));
                    }
                }
                line.push_str(&format!(" {} {}", r.action, r.table));
                out.push_str(&line);
                out.push('\n');
            }
        }
        if !self.neighbours.is_empty() {
            out.push_str(&format!("neighbours ({}):\n", of(&self.counts.neighbours)));
            for n in &self.neighbours {
                out.push_str(&format!(
                    "  {} dev {} lladdr {} {}{}\n",
                    n.address,
                    n.dev,
                    n.lladdr,
                    n.states.join(","),
                    if n.router { " router" } else { "" }
                ));
            }
        }
        for e in &self.errors {
            out.push_str(&format!("error in {}: {}\n", e.section, e.message));
        }
        if let Some(c) = &self.next_cursor {
            out.push_str(&format!("more: cursor={c}\n"));
        }
        out
    }

    fn next_cursor(&self) -> Option<&str> {
        self.next_cursor.as_deref()
    }
}
