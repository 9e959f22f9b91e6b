//! One read of a family's iptables rules from both backends, in the
//! kernel's own interfaces (no program is run): iptables-nft's tables over
//! nf_tables netlink, iptables-legacy's through getsockopt. Each backend
//! becomes iptables-save's text with the index of its structure, which is
//! what a cached read keeps and pages are built from.

use labscope_proto::v1::{FirewallBackend, FirewallRule};

use super::parse::{Index, ParseError, SaveDump, Select};
use super::xt::ipset::KernelSets;
use super::{Error, Result, iptables_nft, legacy, nft};

/// One backend's parsed dump.
#[derive(Debug, Clone)]
pub struct BackendDump {
    /// nft or legacy.
    pub backend: FirewallBackend,
    /// How it was read.
    pub method: String,
    /// Parsed content.
    pub dump: SaveDump,
    /// Rules of the whole read shown with an `[unsupported …]` part.
    pub partial_rules: usize,
    /// What a person should know about the read.
    pub notes: Vec<String>,
}

/// How the nf_tables backend is read.
pub const NFT_METHOD: &str = "netlink (nf_tables: NFT_MSG_GETTABLE/GETCHAIN/GETRULE)";
/// How the legacy backend is read.
pub const LEGACY_METHOD: &str = "getsockopt (x_tables: IPT_SO_GET_INFO/GET_ENTRIES)";

/// One backend's rules as iptables-save text, with the index of its
/// structure: about half the memory of its parsed form, which is what a
/// cached read holds. A page builds only its own rules from it.
#[derive(Debug, Clone)]
pub struct BackendText {
    /// nft or legacy.
    pub backend: FirewallBackend,
    /// The text, as `iptables-save -c` prints it (without its comments).
    pub text: String,
    /// Where its tables, chains and rules are.
    pub index: Index,
    /// Rules shown with an `[unsupported …]` part.
    pub partial_rules: usize,
    /// What a person should know about the read.
    pub notes: Vec<String>,
}

fn unparseable(backend: FirewallBackend, e: ParseError) -> Error {
    Error::Decoder {
        backend: super::backend_name(backend),
        reason: e.to_string(),
    }
}

impl BackendText {
    /// Indexes a backend's text (its structure is checked).
    pub fn new(
        backend: FirewallBackend,
        mut text: String,
        partial_rules: usize,
        notes: Vec<String>,
    ) -> Result<BackendText> {
        text.shrink_to_fit();
        let index = Index::build(&text).map_err(|e| unparseable(backend, e))?;
        Ok(BackendText {
            backend,
            text,
            index,
            partial_rules,
            notes,
        })
    }

    /// How this backend was read.
    pub fn method(&self) -> &'static str {
        match self.backend {
            FirewallBackend::Legacy => LEGACY_METHOD,
            _ => NFT_METHOD,
        }
    }

    /// Every chain of `table` with the rules [`Built`] beside the read,
    /// which must be this text's (same chains, same rule counts, same
    /// order); `None` when they are not, so that the text is read instead.
    pub fn parse_built(&self, table: &str, built: Built) -> Result<Option<BackendDump>> {
        let mut dump = self.parse(&Select {
            table: Some(table),
            chain: None,
            offset: 0,
            limit: 0,
        })?;
        let chains = match dump.dump.tables.first_mut() {
            Some(t) => &mut t.chains,
            None if built.chains.iter().all(Vec::is_empty) => return Ok(Some(dump)),
            None => return Ok(None),
        };
        if built.table != table || chains.len() != built.chains.len() {
            return Ok(None);
        }
        for (chain, rules) in chains.iter_mut().zip(built.chains) {
            if rules.len() != chain.rule_count as usize
                || rules.iter().any(|r| r.chain != chain.name)
            {
                return Ok(None);
            }
            chain.rules = rules;
            for (at, rule) in chain.rules.iter_mut().enumerate() {
                rule.position = at as u32 + 1;
            }
        }
        Ok(Some(dump))
    }

    /// Builds what `select` asks for of the text.
    pub fn parse(&self, select: &Select<'_>) -> Result<BackendDump> {
        Ok(BackendDump {
            backend: self.backend,
            method: self.method().to_string(),
            dump: self
                .index
                .select(&self.text, select)
                .map_err(|e| unparseable(self.backend, e))?,
            partial_rules: self.partial_rules,
            notes: self.notes.clone(),
        })
    }
}

/// Parses what `select` asks for of every backend's text.
pub fn parse_all(texts: &[BackendText], select: &Select<'_>) -> Result<Vec<BackendDump>> {
    texts.iter().map(|t| t.parse(select)).collect()
}

/// The rules of one table of the nf_tables backend, built while it was read
/// ([`read_backends_building`]): every chain's, in the order of the text's
/// chain declarations. What an answer with the whole table needs, without
/// reading the text again.
#[derive(Debug, Clone, Default)]
pub struct Built {
    /// The table.
    pub table: String,
    /// Each declared chain's rules.
    pub chains: Vec<Vec<FirewallRule>>,
}

/// Reads every backend that holds tables for the family; nf_tables first.
/// nf_tables is read when the kernel has it, legacy when it lists tables.
pub fn read_backends(ipv6: bool) -> Result<Vec<BackendText>> {
    Ok(read_backends_building(ipv6, None)?.0)
}

/// [`read_backends`], also building the rules of `table` of the nf_tables
/// backend as they are rendered, beside the kernel's dump.
pub fn read_backends_building(
    ipv6: bool,
    table: Option<&str>,
) -> Result<(Vec<BackendText>, Option<Built>)> {
    let sets = KernelSets::default();
    let mut out = Vec::new();
    let family = if ipv6 {
        nft::model::family::IPV6
    } else {
        nft::model::family::IPV4
    };
    // Rules are rendered as they arrive, while the dump goes on.
    let (rs, rendered) = nft::Ruleset::read_streaming(
        family,
        || match table {
            Some(t) => iptables_nft::Rendered::new(ipv6).building(t),
            None => iptables_nft::Rendered::new(ipv6),
        },
        |r, payload| r.add(payload, &sets),
    )
    .map_err(Error::Nft)?;
    let mut built = None;
    if rs.generation.is_some() {
        let mut t = iptables_nft::assemble(&rs, rendered);
        drop(rs);
        built = t.built.take().zip(table).map(|(chains, table)| Built {
            table: table.to_string(),
            chains,
        });
        out.push(BackendText::new(
            FirewallBackend::Nft,
            t.text,
            t.partial_rules,
            t.notes,
        )?);
    }
    let names = legacy::table_names(ipv6);
    if !names.is_empty() {
        let blobs = names
            .iter()
            .map(|n| legacy::read_table(ipv6, n))
            .collect::<Result<Vec<_>, _>>()
            .map_err(Error::Legacy)?;
        let t = legacy::save_text(&blobs, ipv6, &sets).map_err(Error::Legacy)?;
        drop(blobs);
        out.push(BackendText::new(
            FirewallBackend::Legacy,
            t.text,
            t.partial_rules,
            t.notes,
        )?);
    }
    Ok((out, built))
}
