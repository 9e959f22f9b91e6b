//! The test topology made over rtnetlink (the `rtnetlink` crate) instead of
//! running `ip`: veth pairs moved into their namespaces, links up,
//! addresses, routes in any table (blackholes too), policy rules and
//! permanent neighbours. Each call runs on a thread inside the namespace
//! ([`Netns::block_on`]), so the netlink socket it opens is that
//! namespace's.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;

use anyhow::Context;
use futures::TryStreamExt;
use netlink_packet_route::address::{AddressAttribute, AddressFlags};
use netlink_packet_route::neighbour::NeighbourState;
use netlink_packet_route::route::{RouteProtocol, RouteType};
use netlink_packet_route::rule::{RuleAction, RuleAttribute};
use rtnetlink::{Handle, LinkUnspec, LinkVeth, RouteMessageBuilder};

use crate::netns::Netns;

/// A connection to this thread's namespace.
fn handle() -> anyhow::Result<Handle> {
    let (connection, handle, _) = rtnetlink::new_connection().context("rtnetlink socket")?;
    tokio::spawn(connection);
    Ok(handle)
}

async fn index(h: &Handle, name: &str) -> anyhow::Result<u32> {
    let link = h
        .link()
        .get()
        .match_name(name.to_string())
        .execute()
        .try_next()
        .await
        .with_context(|| format!("link {name}"))?
        .with_context(|| format!("no link {name}"))?;
    Ok(link.header.index)
}

async fn up(h: &Handle, name: &str) -> anyhow::Result<()> {
    let i = index(h, name).await?;
    h.link()
        .set(LinkUnspec::new_with_index(i).up().build())
        .execute()
        .await
        .with_context(|| format!("setting {name} up"))
}

/// Joins `a` and `b` with a veth pair named `a_if`/`b_if`, both up.
pub fn veth(a: &Netns, a_if: &str, b: &Netns, b_if: &str) -> anyhow::Result<()> {
    let (a_name, b_name) = (a_if.to_string(), b_if.to_string());
    let b_path = format!("/run/netns/{}", b.name);
    a.block_on(move || async move {
        let h = handle()?;
        h.link()
            .add(LinkVeth::new(&a_name, &b_name).build())
            .execute()
            .await
            .with_context(|| format!("veth {a_name}/{b_name}"))?;
        let peer = index(&h, &b_name).await?;
        let target = std::fs::File::open(&b_path).with_context(|| format!("opening {b_path}"))?;
        h.link()
            .set(
                LinkUnspec::new_with_index(peer)
                    .setns_by_fd(target.as_raw_fd())
                    .build(),
            )
            .execute()
            .await
            .with_context(|| format!("moving {b_name} to {b_path}"))?;
        up(&h, &a_name).await
    })?;
    let b_name = b_if.to_string();
    b.block_on(move || async move { up(&handle()?, &b_name).await })
}

/// Adds `addr/prefix` to `dev` (IPv6 without duplicate address detection,
/// so that it is usable at once).
pub fn address(ns: &Netns, dev: &str, addr: IpAddr, prefix: u8) -> anyhow::Result<()> {
    let dev = dev.to_string();
    ns.block_on(move || async move {
        let h = handle()?;
        let i = index(&h, &dev).await?;
        let mut req = h.address().add(i, addr, prefix);
        if addr.is_ipv6() {
            req.message_mut()
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        req.execute()
            .await
            .with_context(|| format!("address {addr}/{prefix} on {dev}"))
    })
}

/// A route to add.
#[derive(Debug, Clone, Default)]
pub struct Route {
    /// Destination and prefix length; None for the default route.
    pub to: Option<(IpAddr, u8)>,
    /// Gateway.
    pub via: Option<IpAddr>,
    /// Output device.
    pub dev: Option<String>,
    /// Table (main when None).
    pub table: Option<u32>,
    /// Metric.
    pub metric: Option<u32>,
    /// `proto static`.
    pub static_proto: bool,
    /// A blackhole route.
    pub blackhole: bool,
}

/// Adds `r`.
pub fn route(ns: &Netns, r: Route) -> anyhow::Result<()> {
    ns.block_on(move || async move {
        let h = handle()?;
        let dev = match &r.dev {
            Some(d) => Some(index(&h, d).await?),
            None => None,
        };
        let v6 = matches!(r.to.map(|t| t.0).or(r.via), Some(IpAddr::V6(_)));
        let mut msg = if v6 {
            let mut b = RouteMessageBuilder::<Ipv6Addr>::new();
            let (dst, len) = match r.to {
                Some((IpAddr::V6(d), l)) => (d, l),
                _ => (Ipv6Addr::UNSPECIFIED, 0),
            };
            b = b.destination_prefix(dst, len);
            if let Some(IpAddr::V6(g)) = r.via {
                b = b.gateway(g);
            }
            b.build()
        } else {
            let mut b = RouteMessageBuilder::<Ipv4Addr>::new();
            let (dst, len) = match r.to {
                Some((IpAddr::V4(d), l)) => (d, l),
                _ => (Ipv4Addr::UNSPECIFIED, 0),
            };
            b = b.destination_prefix(dst, len);
            if let Some(IpAddr::V4(g)) = r.via {
                b = b.gateway(g);
            }
            b.build()
        };
        let add = |m: &mut netlink_packet_route::route::RouteMessage| {
            use netlink_packet_route::route::RouteAttribute;
            if let Some(i) = dev {
                m.attributes.push(RouteAttribute::Oif(i));
            }
            if let Some(t) = r.table {
                if t < 256 {
                    m.header.table = t as u8;
                } else {
                    m.header.table = 252;
                }
                m.attributes.push(RouteAttribute::Table(t));
            }
            if let Some(p) = r.metric {
                m.attributes.push(RouteAttribute::Priority(p));
            }
            // As `ip route add` makes them: proto boot unless asked.
            m.header.protocol = if r.static_proto {
                RouteProtocol::Static
            } else {
                RouteProtocol::Boot
            };
            if r.blackhole {
                m.header.kind = RouteType::BlackHole;
            }
        };
        add(&mut msg);
        h.route()
            .add(msg)
            .execute()
            .await
            .with_context(|| format!("route {r:?}"))
    })
}

/// A policy rule: `from PREFIX` or `fwmark MARK/MASK`, `lookup TABLE`,
/// `pref PRIORITY`.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Source prefix.
    pub from: Option<(IpAddr, u8)>,
    /// Mark and mask.
    pub fwmark: Option<(u32, u32)>,
    /// IPv6 rule (only needed without `from`).
    pub v6: bool,
    /// Table.
    pub table: u32,
    /// Priority.
    pub priority: u32,
}

/// Adds `r`.
pub fn rule(ns: &Netns, r: Rule) -> anyhow::Result<()> {
    ns.block_on(move || async move {
        let h = handle()?;
        let base = h
            .rule()
            .add()
            .table_id(r.table)
            .priority(r.priority)
            .action(RuleAction::ToTable);
        let base = match r.fwmark {
            Some((mark, _)) => base.fw_mark(mark),
            None => base,
        };
        let result = match (r.from, r.v6) {
            (Some((IpAddr::V6(a), l)), _) => {
                let mut req = base.v6().source_prefix(a, l);
                if let Some((_, mask)) = r.fwmark {
                    req.message_mut()
                        .attributes
                        .push(RuleAttribute::FwMask(mask));
                }
                req.execute().await
            }
            (Some((IpAddr::V4(a), l)), _) => {
                let mut req = base.v4().source_prefix(a, l);
                if let Some((_, mask)) = r.fwmark {
                    req.message_mut()
                        .attributes
                        .push(RuleAttribute::FwMask(mask));
                }
                req.execute().await
            }
            (None, true) => {
                let mut req = base.v6();
                if let Some((_, mask)) = r.fwmark {
                    req.message_mut()
                        .attributes
                        .push(RuleAttribute::FwMask(mask));
                }
                req.execute().await
            }
            (None, false) => {
                let mut req = base.v4();
                if let Some((_, mask)) = r.fwmark {
                    req.message_mut()
                        .attributes
                        .push(RuleAttribute::FwMask(mask));
                }
                req.execute().await
            }
        };
        result.with_context(|| format!("rule {r:?}"))
    })
}

/// A permanent neighbour entry.
pub fn neighbour(ns: &Netns, dev: &str, ip: IpAddr, mac: [u8; 6]) -> anyhow::Result<()> {
    let dev = dev.to_string();
    ns.block_on(move || async move {
        let h = handle()?;
        let i = index(&h, &dev).await?;
        h.neighbours()
            .add(i, ip)
            .link_layer_address(&mac)
            .state(NeighbourState::Permanent)
            .execute()
            .await
            .with_context(|| format!("neighbour {ip} on {dev}"))
    })
}
