//! nf_tables over netlink: the socket half. One read dumps the tables,
//! chains, rules and sets of a family (or of every family) into owned
//! message buffers, between two reads of the ruleset generation so that it
//! is one consistent ruleset; the decoders in [`model`] then borrow from it.

pub mod listing;
pub mod model;
pub mod render;
pub mod types;

use std::ops::ControlFlow;

use netlink_sys::protocols::NETLINK_NETFILTER;

use crate::netlink::{self, NLMSG_HDRLEN};
use model::{Chain, Element, Rule, Set, Table, msg};

/// Errors of an nf_tables read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kernel refused for lack of CAP_NET_ADMIN.
    #[error("the kernel refused to dump nf_tables: the agent lacks CAP_NET_ADMIN ({0})")]
    PermissionDenied(#[source] netlink::Error),
    /// The netlink read failed otherwise.
    #[error("reading nf_tables over netlink failed: {0}")]
    Netlink(#[source] netlink::Error),
    /// The ruleset kept changing while it was read.
    #[error("the nf_tables ruleset changed during each of {0} reads; try again")]
    Unstable(u32),
}

/// Result alias of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn classify(e: netlink::Error) -> Error {
    if e.is_permission_denied() {
        Error::PermissionDenied(e)
    } else {
        Error::Netlink(e)
    }
}

/// Whether a kernel error means "nf_tables is not there" (not loaded, not
/// built): an empty ruleset, not a failure.
fn absent(e: &netlink::Error) -> bool {
    match e {
        netlink::Error::Kernel(k) => {
            matches!(
                k.raw_os_error(),
                Some(2) | Some(22) | Some(93) | Some(95) | Some(97)
            )
        }
        _ => false,
    }
}

/// Bytes of one chunk of [`Messages`]: big enough that a kube-proxy table
/// takes a few, small enough that growing never copies much.
const CHUNK: usize = 512 * 1024;

/// Bytes of rule messages a streaming read hands over at once: a few
/// receive buffers, so that the renderer wakes rarely and the batches in
/// flight stay small.
const BATCH: usize = 128 * 1024;

/// Batches a streaming read lets wait for the renderer before the dump
/// pauses (the kernel keeps its place meanwhile).
const BATCHES_IN_FLIGHT: usize = 4;

/// The messages of one dump, in chunks that are filled and never moved
/// (growing one buffer would copy megabytes and fault in fresh pages each
/// time it doubles).
#[derive(Debug, Default, Clone)]
pub struct Messages {
    chunks: Vec<Vec<u8>>,
    /// (chunk, start, end) of each message's payload (after the netlink
    /// header).
    spans: Vec<(u32, u32, u32)>,
}

impl Messages {
    /// Each message's payload, in order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.spans
            .iter()
            .map(|&(c, a, b)| &self.chunks[c as usize][a as usize..b as usize])
    }

    /// Payload of message `i`.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let &(c, a, b) = self.spans.get(i)?;
        self.chunks.get(c as usize)?.get(a as usize..b as usize)
    }

    /// How many messages.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.chunks.iter().map(Vec::capacity).sum::<usize>() + self.spans.capacity() * 12
    }

    /// Bytes of payload held.
    pub fn payload_bytes(&self) -> usize {
        self.chunks.iter().map(Vec::len).sum()
    }

    fn push(&mut self, payload: &[u8]) {
        self.push_in(payload, CHUNK);
    }

    fn push_in(&mut self, payload: &[u8], chunk: usize) {
        let fits = self
            .chunks
            .last()
            .is_some_and(|c| c.capacity() - c.len() >= payload.len());
        if !fits {
            self.chunks
                .push(Vec::with_capacity(chunk.max(payload.len())));
        }
        let c = self.chunks.len() - 1;
        let chunk = &mut self.chunks[c];
        let start = chunk.len() as u32;
        chunk.extend_from_slice(payload);
        self.spans.push((c as u32, start, chunk.len() as u32));
    }

    /// Builds a set of messages from payloads (tests, replays).
    pub fn from_payloads<'a>(payloads: impl IntoIterator<Item = &'a [u8]>) -> Messages {
        let mut m = Messages::default();
        for p in payloads {
            m.push(p);
        }
        m
    }

    /// Empties it for reuse, keeping its first chunk's room.
    fn clear(&mut self) {
        self.chunks.truncate(1);
        if let Some(c) = self.chunks.first_mut() {
            c.clear();
        }
        self.spans.clear();
    }

    /// Gives back the spare room of the last chunk.
    pub fn shrink(&mut self) {
        if let Some(c) = self.chunks.last_mut() {
            c.shrink_to_fit();
        }
        self.spans.shrink_to_fit();
    }
}

/// Dumps `request_type` for `family` (0: every family), with `attrs` after
/// the nfgenmsg (a table name to narrow a dump, say), keeping the answers
/// of `answer_type`. `Ok(None)`: nf_tables is not there. The flag says
/// whether the kernel marked the dump interrupted by a change.
fn dump(
    family: u8,
    request_type: u16,
    answer_type: u16,
    attrs: &[u8],
) -> Result<Option<(Messages, bool)>> {
    let mut body = vec![family, 0, 0, 0];
    body.extend_from_slice(attrs);
    let request = netlink::dump_request(request_type, 1, &body);
    let mut out = Messages::default();
    let result = netlink::dump(NETLINK_NETFILTER, &request, |m| {
        if m.message_type == answer_type && m.bytes.len() >= NLMSG_HDRLEN {
            out.push(m.payload());
        }
        ControlFlow::Continue(())
    });
    match result {
        Ok(stats) => Ok(Some((out, stats.interrupted))),
        Err(e) if absent(&e) => Ok(None),
        Err(e) => Err(classify(e)),
    }
}

/// Dumps the NEWRULE messages of `family` in batches of about [`BATCH`]
/// bytes (each batch from `fresh`, which may give back one already used),
/// handing each to `send` (which may stop the dump). `Ok(None)`:
/// nf_tables is not there; `Ok(Some(interrupted))` otherwise.
fn dump_rules_in_batches(
    family: u8,
    mut fresh: impl FnMut() -> Messages,
    mut send: impl FnMut(Messages) -> ControlFlow<()>,
) -> Result<Option<bool>> {
    let request = netlink::dump_request(msg::GETRULE, 1, &[family, 0, 0, 0]);
    let mut batch = fresh();
    let mut stopped = false;
    let result = netlink::dump(NETLINK_NETFILTER, &request, |m| {
        if m.message_type == msg::NEWRULE && m.bytes.len() >= NLMSG_HDRLEN {
            // A batch is one chunk: handed over when the next message would
            // not fit in it.
            let full = batch
                .chunks
                .last()
                .is_some_and(|c| c.capacity() - c.len() < m.payload().len());
            if full && send(std::mem::replace(&mut batch, fresh())).is_break() {
                stopped = true;
                return ControlFlow::Break(());
            }
            batch.push_in(m.payload(), BATCH);
        }
        ControlFlow::Continue(())
    });
    if !stopped && !batch.is_empty() {
        let _ = send(batch);
    }
    match result {
        Ok(stats) => Ok(Some(stats.interrupted)),
        Err(e) if absent(&e) => Ok(None),
        Err(e) => Err(classify(e)),
    }
}

/// The ruleset generation now (`None`: nf_tables is not there).
pub fn generation() -> Result<Option<u32>> {
    crate::firewall::signal::nft_generation().map_err(classify)
}

/// One consistent read of nf_tables.
#[derive(Debug, Default, Clone)]
pub struct Ruleset {
    /// The generation it was read at (`None`: nf_tables is not there).
    pub generation: Option<u32>,
    /// NEWTABLE messages.
    pub tables: Messages,
    /// NEWCHAIN messages.
    pub chains: Messages,
    /// NEWRULE messages.
    pub rules: Messages,
    /// NEWSET messages (only when asked for).
    pub sets: Messages,
    /// NEWSETELEM messages of each set read, by (family, table, set).
    pub elements: Vec<((u8, String, String), Messages)>,
}

/// What to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope<'a> {
    /// NFPROTO family; 0 for every family.
    pub family: u8,
    /// Only this table (every table when None).
    pub table: Option<&'a str>,
    /// Read named and anonymous sets, and their elements when `elements`.
    pub sets: bool,
    /// Read set elements (of every set read).
    pub elements: bool,
}

/// Tries a read this many times while the generation moves under it.
const ATTEMPTS: u32 = 4;

impl Ruleset {
    /// Reads tables, chains and rules (and sets, when asked) of `scope`
    /// between two equal generations; retries while the ruleset changes.
    pub fn read(scope: Scope<'_>) -> Result<Ruleset> {
        for _ in 0..ATTEMPTS {
            let before = generation()?;
            let Some(before) = before else {
                return Ok(Ruleset::default());
            };
            let (read, interrupted) = Self::read_once(scope)?;
            let after = generation()?;
            if !interrupted && after == Some(before) {
                return Ok(Ruleset {
                    generation: Some(before),
                    ..read
                });
            }
        }
        Err(Error::Unstable(ATTEMPTS))
    }

    /// Reads the tables and chains of `family` and hands every rule's
    /// NEWRULE payload to `consume` as the dump goes on, instead of keeping
    /// them: the rule dump runs in a second thread, so the caller's work on
    /// one batch (and the table and chain dumps, first) overlaps the
    /// kernel's on the next, and only a few batches are ever held. The read is one generation like [`Ruleset::read`]'s; on
    /// each retry `start` gives a fresh state. The ruleset returned has no
    /// rules (they went to the state).
    pub fn read_streaming<S>(
        family: u8,
        mut start: impl FnMut() -> S,
        mut consume: impl FnMut(&mut S, &[u8]),
    ) -> Result<(Ruleset, S)> {
        for _ in 0..ATTEMPTS {
            let Some(before) = generation()? else {
                return Ok((Ruleset::default(), start()));
            };
            let mut interrupted = false;
            let mut take = |r: Option<(Messages, bool)>| match r {
                Some((m, i)) => {
                    interrupted |= i;
                    m
                }
                None => Messages::default(),
            };
            let mut state = start();
            // The table and chain dumps run while the rule dump fills its
            // first batches (a kube-proxy table has thousands of chains).
            let (rules, heads) = Self::stream_rules(family, &mut state, &mut consume, || {
                Ok::<_, Error>((
                    dump(family, msg::GETTABLE, msg::NEWTABLE, &[])?,
                    dump(family, msg::GETCHAIN, msg::NEWCHAIN, &[])?,
                ))
            })?;
            let (tables, chains) = heads?;
            let (tables, chains) = (take(tables), take(chains));
            interrupted |= rules.unwrap_or(false);
            let after = generation()?;
            if !interrupted && after == Some(before) {
                let read = Ruleset {
                    generation: Some(before),
                    tables,
                    chains,
                    ..Ruleset::default()
                };
                return Ok((read, state));
            }
        }
        Err(Error::Unstable(ATTEMPTS))
    }

    /// The rule dump of [`Ruleset::read_streaming`]: in a scoped thread
    /// feeding a bounded channel, or here when no thread can be made.
    /// `beside` runs on this thread once the dump has started (before any
    /// batch is consumed); its result comes back with the dump's.
    fn stream_rules<S, B>(
        family: u8,
        state: &mut S,
        consume: &mut impl FnMut(&mut S, &[u8]),
        beside: impl FnOnce() -> B,
    ) -> Result<(Option<bool>, B)> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Messages>(BATCHES_IN_FLIGHT);
        // Batches the renderer is done with go back to the dump, so that a
        // read maps a handful of buffers, not one per batch.
        let (back_tx, back_rx) = std::sync::mpsc::sync_channel::<Messages>(BATCHES_IN_FLIGHT + 2);
        std::thread::scope(|s| {
            let producer = std::thread::Builder::new()
                .name("nft-dump".into())
                .spawn_scoped(s, move || {
                    let fresh = || {
                        back_rx
                            .try_recv()
                            .map(|mut m| {
                                m.clear();
                                m
                            })
                            .unwrap_or_default()
                    };
                    dump_rules_in_batches(family, fresh, |batch| match tx.send(batch) {
                        Ok(()) => ControlFlow::Continue(()),
                        Err(_) => ControlFlow::Break(()),
                    })
                });
            let Ok(producer) = producer else {
                let beside = beside();
                let mut spare = Messages::default();
                let fresh = || {
                    let mut m = std::mem::take(&mut spare);
                    m.clear();
                    m
                };
                let r = dump_rules_in_batches(family, fresh, |batch| {
                    for payload in batch.iter() {
                        consume(state, payload);
                    }
                    ControlFlow::Continue(())
                })?;
                return Ok((r, beside));
            };
            let beside = beside();
            for batch in rx {
                for payload in batch.iter() {
                    consume(state, payload);
                }
                let _ = back_tx.try_send(batch);
            }
            match producer.join() {
                Ok(r) => Ok((r?, beside)),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    fn read_once(scope: Scope<'_>) -> Result<(Ruleset, bool)> {
        let table_attr = |kind: u16| -> Vec<u8> {
            scope
                .table
                .map(|t| attr_string(kind, t))
                .unwrap_or_default()
        };
        let mut interrupted = false;
        let mut take = |r: Option<(Messages, bool)>| -> Messages {
            match r {
                Some((m, i)) => {
                    interrupted |= i;
                    m
                }
                None => Messages::default(),
            }
        };
        // Table, chain and set dumps are narrowed here: the kernel narrows
        // a set dump by table only within one family. Rule dumps compare
        // the table's name (NFTA_RULE_TABLE).
        let tables = take(dump(scope.family, msg::GETTABLE, msg::NEWTABLE, &[])?);
        let chains = take(dump(scope.family, msg::GETCHAIN, msg::NEWCHAIN, &[])?);
        let rules = take(dump(
            scope.family,
            msg::GETRULE,
            msg::NEWRULE,
            &table_attr(1),
        )?);
        let mut sets = if scope.sets {
            take(dump(scope.family, msg::GETSET, msg::NEWSET, &[])?)
        } else {
            Messages::default()
        };
        if let Some(t) = scope.table {
            sets = Messages::from_payloads(sets.iter().filter(|p| Set::decode(p).table == t));
        }
        let mut elements = Vec::new();
        if scope.sets && scope.elements {
            for payload in sets.iter() {
                let s = Set::decode(payload);
                if scope.table.is_some_and(|t| t != s.table) {
                    continue;
                }
                let mut attrs = attr_string(1, s.table);
                attrs.extend(attr_string(2, s.name));
                let m = take(dump(s.family, msg::GETSETELEM, msg::NEWSETELEM, &attrs)?);
                elements.push(((s.family, s.table.to_string(), s.name.to_string()), m));
            }
        }
        let mut out = Ruleset {
            generation: None,
            tables,
            chains,
            rules,
            sets,
            elements,
        };
        if let Some(t) = scope.table {
            out.tables =
                Messages::from_payloads(out.tables.iter().filter(|p| Table::decode(p).name == t));
            out.chains =
                Messages::from_payloads(out.chains.iter().filter(|p| Chain::decode(p).table == t));
        }
        Ok((out, interrupted))
    }

    /// The tables, decoded.
    pub fn tables(&self) -> impl Iterator<Item = Table<'_>> {
        self.tables.iter().map(Table::decode)
    }

    /// The chains, decoded.
    pub fn chains(&self) -> impl Iterator<Item = Chain<'_>> {
        self.chains.iter().map(Chain::decode)
    }

    /// The rules, decoded, in kernel order (by table, chain, position).
    pub fn rules(&self) -> impl Iterator<Item = Rule<'_>> {
        self.rules.iter().map(Rule::decode)
    }

    /// The sets, decoded.
    pub fn sets(&self) -> impl Iterator<Item = Set<'_>> {
        self.sets.iter().map(Set::decode)
    }

    /// The elements of a set, decoded.
    pub fn elements(&self, family: u8, table: &str, set: &str) -> Vec<Element<'_>> {
        self.elements
            .iter()
            .find(|((f, t, s), _)| *f == family && t == table && s == set)
            .map(|(_, m)| m.iter().flat_map(|p| model::decode_elements(p).1).collect())
            .unwrap_or_default()
    }

    /// Bytes held by the raw messages.
    pub fn bytes(&self) -> usize {
        self.tables.bytes()
            + self.chains.bytes()
            + self.rules.bytes()
            + self.sets.bytes()
            + self.elements.iter().map(|(_, m)| m.bytes()).sum::<usize>()
    }
}

/// A string attribute with its NUL, padded.
fn attr_string(kind: u16, v: &str) -> Vec<u8> {
    let len = 4 + v.len() + 1;
    let mut out = Vec::with_capacity((len + 3) & !3);
    out.extend_from_slice(&(len as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(v.as_bytes());
    out.push(0);
    while out.len() % 4 != 0 {
        out.push(0);
    }
    out
}
