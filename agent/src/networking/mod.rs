//! Interfaces, addresses, routes, policy rules and neighbours, read through
//! rtnetlink dumps. Each submodule is a pure parser from one netlink message to
//! a wire type; this module does the socket work and assembles the answer.

pub mod addresses;
pub mod explain;
pub mod links;
pub mod neighbours;
pub mod routes;
pub mod rules;

use std::collections::HashMap;
use std::ops::ControlFlow;

use labscope_proto::v1::{Networking, NetworkingSection, SectionError};
use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::protocols::NETLINK_ROUTE;

use crate::netlink;

const RTM_GETLINK: u16 = 18;
const RTM_GETADDR: u16 = 22;
const RTM_GETROUTE: u16 = 26;
const RTM_GETNEIGH: u16 = 30;
const RTM_GETRULE: u16 = 34;

/// Errors of one networking section.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The dump itself failed.
    #[error(transparent)]
    Netlink(#[from] netlink::Error),
    /// A message did not parse as the expected rtnetlink message.
    #[error("could not decode an rtnetlink message: {0}")]
    Decode(String),
    /// A named interface does not exist.
    #[error("no interface named {name:?} on this node; interfaces: {available}")]
    NoSuchLink {
        /// Asked for.
        name: String,
        /// Interfaces there.
        available: String,
    },
}

/// Result alias of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which route tables to return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFilter {
    /// Every table.
    All,
    /// One table id.
    Id(u32),
}

impl TableFilter {
    /// Whether a route in `table` passes.
    pub fn accepts(&self, table: u32) -> bool {
        match self {
            TableFilter::All => true,
            TableFilter::Id(id) => *id == table,
        }
    }
}

/// Decodes one rtnetlink message.
pub fn decode(bytes: &[u8]) -> Result<RouteNetlinkMessage> {
    let message = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes)
        .map_err(|e| Error::Decode(e.to_string()))?;
    match message.payload {
        NetlinkPayload::InnerMessage(inner) => Ok(inner),
        other => Err(Error::Decode(format!("unexpected payload {other:?}"))),
    }
}

/// Dumps one rtnetlink object type and decodes each message with `parse`.
pub(crate) fn dump_parsed<T>(
    message_type: u16,
    header: &[u8],
    parse: impl FnMut(RouteNetlinkMessage) -> Option<T>,
) -> Result<Vec<T>> {
    dump_parsed_checked(message_type, header, parse).map(|(out, _)| out)
}

/// [`dump_parsed`], also saying whether the kernel marked the dump
/// interrupted (the table changed while it was read, so an object may be
/// missing or seen twice).
pub(crate) fn dump_parsed_checked<T>(
    message_type: u16,
    header: &[u8],
    mut parse: impl FnMut(RouteNetlinkMessage) -> Option<T>,
) -> Result<(Vec<T>, bool)> {
    let request = netlink::dump_request(message_type, 1, header);
    let mut out = Vec::new();
    let mut first_error = None;
    let stats = netlink::dump(NETLINK_ROUTE, &request, |raw| {
        match decode(raw.bytes) {
            Ok(message) => out.extend(parse(message)),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
        ControlFlow::Continue(())
    })?;
    match first_error {
        Some(e) if out.is_empty() => Err(e),
        _ => Ok((out, stats.interrupted)),
    }
}

/// Reads the requested sections. A section that fails is reported in
/// `errors` and the others are still returned.
pub fn collect(sections: &[NetworkingSection], tables: TableFilter) -> Networking {
    let want = |s: NetworkingSection| sections.is_empty() || sections.contains(&s);
    let mut answer = Networking::default();
    let fail = answer_error;
    let mut errors = Vec::new();

    // Links are always read (for index → name), even when not returned.
    let links = match dump_parsed(RTM_GETLINK, &[0u8; 16], links::parse) {
        Ok(links) => links,
        Err(e) => {
            errors.push(fail(NetworkingSection::Links, e));
            Vec::new()
        }
    };
    let names: HashMap<u32, String> = links.iter().map(|l| (l.index, l.name.clone())).collect();
    let name_of = |index: u32| names.get(&index).cloned().unwrap_or_default();

    if want(NetworkingSection::Addresses) {
        match dump_parsed(RTM_GETADDR, &[0u8; 8], addresses::parse) {
            Ok(mut list) => {
                for a in &mut list {
                    a.link = name_of(a.link_index);
                }
                answer.addresses = list;
            }
            Err(e) => errors.push(fail(NetworkingSection::Addresses, e)),
        }
    }
    if want(NetworkingSection::Routes) {
        match dump_parsed(RTM_GETROUTE, &[0u8; 12], routes::parse) {
            Ok(list) => {
                answer.routes = list
                    .into_iter()
                    .filter(|r| tables.accepts(r.table))
                    .map(|mut r| {
                        r.oif = name_of(r.oif_index);
                        for hop in &mut r.nexthops {
                            hop.oif = name_of(hop.oif_index);
                        }
                        r
                    })
                    .collect();
            }
            Err(e) => errors.push(fail(NetworkingSection::Routes, e)),
        }
    }
    if want(NetworkingSection::Rules) {
        match dump_parsed(RTM_GETRULE, &[0u8; 12], rules::parse) {
            Ok(list) => answer.rules = list,
            Err(e) => errors.push(fail(NetworkingSection::Rules, e)),
        }
    }
    if want(NetworkingSection::Neighbours) {
        match dump_parsed(RTM_GETNEIGH, &[0u8; 12], neighbours::parse) {
            Ok(mut list) => {
                for n in &mut list {
                    n.link = name_of(n.link_index);
                }
                answer.neighbours = list;
            }
            Err(e) => errors.push(fail(NetworkingSection::Neighbours, e)),
        }
    }
    if want(NetworkingSection::Links) {
        let mut links = links;
        for l in &mut links {
            if l.master_index != 0 {
                l.master = name_of(l.master_index);
            }
        }
        answer.links = links;
    }
    answer.errors = errors;
    answer
}

fn answer_error(section: NetworkingSection, e: Error) -> SectionError {
    let hint = match &e {
        Error::Netlink(n) if n.is_permission_denied() => " (the agent lacks CAP_NET_ADMIN)",
        _ => "",
    };
    SectionError {
        section: section as i32,
        message: format!("{e}{hint}"),
    }
}
