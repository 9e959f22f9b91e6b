//! iptables rules with counters for both backends (nf_tables and legacy),
//! read from the kernel without running any program.
//!
//! Method: iptables-nft's tables are dumped over nf_tables netlink
//! ([`nft`]) and turned back into iptables-save's text by
//! [`iptables_nft`] (a register machine over the expressions iptables-nft
//! writes, then each xtables extension prints its info struct, [`xt`]);
//! iptables-legacy's tables are read with getsockopt ([`legacy`]) and
//! printed by the same extension decoders. The text is what operators
//! already read and what the rest of this module indexes and pages. The
//! legacy read is skipped when the kernel holds no legacy tables
//! (/proc/net/ip_tables_names), which is exact and costs nothing.

pub mod cache;
pub mod iptables_nft;
pub mod legacy;
pub mod nft;
pub mod parse;
pub mod read;
pub mod signal;
pub mod xt;

use labscope_proto::v1::{Chain, Firewall, FirewallBackend};

pub use parse::{SaveDump, SavedTable};

/// Errors of a firewall read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The nf_tables read failed.
    #[error(transparent)]
    Nft(nft::Error),
    /// The legacy read failed.
    #[error(transparent)]
    Legacy(legacy::Error),
    /// The decoder produced text its own index rejects (a bug: reported,
    /// never served half-read).
    #[error("decoding the {backend} rules produced text that does not index: {reason}")]
    Decoder {
        /// Backend.
        backend: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// The requested chain is not in the table.
    #[error("chain {chain:?} does not exist in table {table:?}; chains there: {available}")]
    NoSuchChain {
        /// Requested chain.
        chain: String,
        /// Table.
        table: String,
        /// Chains that exist.
        available: String,
    },
}

impl Error {
    /// Whether the kernel refused for lack of privilege.
    pub fn is_permission_denied(&self) -> bool {
        matches!(
            self,
            Error::Nft(nft::Error::PermissionDenied(_))
                | Error::Legacy(legacy::Error::PermissionDenied { .. })
        )
    }
}

/// Result alias of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Reads one family's rules from every backend that holds tables and builds
/// the answer for `table` (and `chain`, when not empty), every rule.
pub fn read(ipv6: bool, table: &str, chain: &str) -> Result<Firewall> {
    let (texts, built) = read::read_backends_building(ipv6, chain.is_empty().then_some(table))?;
    build_answer(ipv6, table, chain, &texts, Page::ALL, built)
}

/// Which rules of the selected chains to return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Rules to skip, over the chains in order.
    pub offset: usize,
    /// Most rules to return.
    pub limit: usize,
}

impl Page {
    /// Every rule.
    pub const ALL: Page = Page {
        offset: 0,
        limit: usize::MAX,
    };
}

/// The answer for `table`: with the whole table, from the rules built
/// beside the read when there are some ([`read::Built`]: the same rules a
/// page of the text builds, without reading the text again after the
/// dump), else from the texts ([`build_from_texts`]).
pub fn build_answer(
    ipv6: bool,
    table: &str,
    chain: &str,
    texts: &[read::BackendText],
    page: Page,
    built: Option<read::Built>,
) -> Result<Firewall> {
    let whole = built.filter(|_| chain.is_empty() && page == Page::ALL);
    match whole
        .map(|b| build_whole_table(ipv6, table, texts, b))
        .transpose()?
    {
        Some(Some(fw)) => Ok(fw),
        _ => build_from_texts(ipv6, table, chain, texts, page),
    }
}

/// The answer with every rule of `table`, the nf_tables backend's from the
/// rules built beside its read; `None` when those do not fit its text (then
/// [`build_from_texts`] answers; the tests hold the two equal).
pub fn build_whole_table(
    ipv6: bool,
    table: &str,
    texts: &[read::BackendText],
    built: read::Built,
) -> Result<Option<Firewall>> {
    let select = parse::Select {
        table: Some(table),
        chain: None,
        offset: 0,
        limit: usize::MAX,
    };
    let mut built = Some(built);
    let mut dumps = Vec::with_capacity(texts.len());
    for text in texts {
        let dump = match built.take() {
            Some(b) if text.backend == FirewallBackend::Nft => match text.parse_built(table, b)? {
                Some(dump) => dump,
                None => return Ok(None),
            },
            other => {
                built = other;
                text.parse(&select)?
            }
        };
        dumps.push(dump);
    }
    build(ipv6, table, "", dumps).map(Some)
}

/// Parses what the answer needs of each backend's save text — the page of
/// `table` (and `chain`) for the backend in effect, the first page for the
/// other — and assembles it.
pub fn build_from_texts(
    ipv6: bool,
    table: &str,
    chain: &str,
    texts: &[read::BackendText],
    page: Page,
) -> Result<Firewall> {
    let select = parse::Select {
        table: Some(table),
        chain: (!chain.is_empty()).then_some(chain),
        offset: page.offset,
        limit: page.limit,
    };
    let mut dumps = read::parse_all(texts, &select)?;
    // Only the backend in effect is paged; the other shows its first rules.
    let primary = dumps.iter().position(|d| d.dump.has_rules()).unwrap_or(0);
    if page.offset > 0 {
        for (i, (dump, text)) in dumps.iter_mut().zip(texts).enumerate() {
            if i != primary && dump.dump.has_rules() {
                *dump = text.parse(&parse::Select {
                    offset: 0,
                    ..select
                })?;
            }
        }
    }
    build(ipv6, table, chain, dumps)
}

/// Pure assembly of the answer from parsed dumps (nft first, then legacy),
/// each parsed with the window it shows. The chains move into the answer.
pub fn build(
    ipv6: bool,
    table: &str,
    chain: &str,
    mut dumps: Vec<read::BackendDump>,
) -> Result<Firewall> {
    let with_rules: Vec<usize> = (0..dumps.len())
        .filter(|&i| dumps[i].dump.has_rules())
        .collect();
    let mut fw = Firewall {
        family: if ipv6 { 2 } else { 1 },
        table: table.to_string(),
        backends_with_rules: with_rules
            .iter()
            .map(|&i| dumps[i].backend as i32)
            .collect(),
        ..Default::default()
    };
    if with_rules.len() > 1 {
        fw.warning = format!(
            "both iptables backends hold {} rules (nf_tables: {}, legacy: {}): kube-proxy, flannel and the host \
             may be writing different backends, so some rules are not the ones in effect for some traffic; \
             align every component on one backend (k3s: --prefer-bundled-bin, or the host's iptables alternative)",
            if ipv6 { "IPv6" } else { "IPv4" },
            dumps[with_rules[0]].dump.rule_count(),
            dumps[with_rules[1]].dump.rule_count(),
        );
    }
    let Some(primary) = with_rules
        .first()
        .copied()
        .or((!dumps.is_empty()).then_some(0))
    else {
        fw.backend = FirewallBackend::Unspecified as i32;
        return Ok(fw);
    };
    fw.backend = dumps[primary].backend as i32;
    fw.method = std::mem::take(&mut dumps[primary].method);
    fw.partly_decoded_rules = dumps[primary].partial_rules as u32;
    fw.notes = dumps
        .iter_mut()
        .flat_map(|d| std::mem::take(&mut d.notes))
        .collect();
    let take = |dump: &mut SaveDump| -> Result<(Vec<Chain>, u32)> {
        let Some(t) = dump.tables.iter_mut().find(|t| t.name == table) else {
            return Ok((Vec::new(), 0));
        };
        let total = t.chains.iter().map(|c| c.rule_count).sum();
        if chain.is_empty() {
            return Ok((std::mem::take(&mut t.chains), total));
        }
        match t.chains.iter().position(|c| c.name == chain) {
            Some(at) => Ok((vec![t.chains.swap_remove(at)], total)),
            None => Err(Error::NoSuchChain {
                chain: chain.to_string(),
                table: table.to_string(),
                available: t
                    .chains
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    };
    let other = with_rules
        .iter()
        .copied()
        .find(|&i| dumps[i].backend != dumps[primary].backend);
    let (chains, total) = take(&mut dumps[primary].dump)?;
    fw.chains = chains;
    fw.total_rules = total;
    if let Some(other) = other {
        fw.other_backend_chains = take(&mut dumps[other].dump)
            .map(|(c, _)| c)
            .unwrap_or_default();
    }
    Ok(fw)
}

/// Wire enum for a backend.
pub fn backend_name(b: FirewallBackend) -> &'static str {
    match b {
        FirewallBackend::Nft => "nf_tables",
        FirewallBackend::Legacy => "legacy",
        FirewallBackend::Unspecified => "none",
    }
}
