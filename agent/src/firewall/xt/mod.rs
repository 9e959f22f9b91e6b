//! xtables extensions (the `-m NAME` matches and `-j NAME` targets of
//! iptables) decoded from their info structs into iptables-save's text.
//! Shared by both backends: iptables-nft keeps them in compat `match` and
//! `target` expressions, iptables-legacy in its x_tables blob.

pub mod fmt;
pub mod ipset;
pub mod matches;
pub mod targets;

use std::cell::Cell;

/// What decoding needs besides the bytes.
pub struct Ctx<'a> {
    /// An ip6tables rule (addresses print as IPv6, icmp6 instead of icmp).
    pub v6: bool,
    /// Turns ipset indexes into names.
    pub sets: &'a dyn SetNames,
    /// Set when some part was shown undecoded or approximated.
    pub partial: Cell<bool>,
}

impl<'a> Ctx<'a> {
    /// A context for one family.
    pub fn new(v6: bool, sets: &'a dyn SetNames) -> Self {
        Self {
            v6,
            sets,
            partial: Cell::new(false),
        }
    }
}

/// ipset's index → name (the `set` match keeps the index).
pub trait SetNames {
    /// The name of set `index`, if ipset can say.
    fn name(&self, index: u16) -> Option<String>;
}

/// No ipset at all (tests, and a kernel without ip_set).
#[derive(Debug, Default)]
pub struct NoSets;

impl SetNames for NoSets {
    fn name(&self, _: u16) -> Option<String> {
        None
    }
}

/// The marker for an extension (or revision) the decoder does not know:
/// the rule is still shown, with what is missing named.
pub fn unsupported(out: &mut String, flag: &str, name: &str, rev: u8) {
    use std::fmt::Write;
    let _ = write!(out, " {flag} {name} [unsupported revision {rev}]");
}

/// Appends one match; false when it was not (fully) decoded.
pub fn save_match(out: &mut String, ctx: &Ctx<'_>, name: &str, rev: u8, info: &[u8]) -> bool {
    let ok = matches::save(out, ctx, name, rev, info);
    if !ok {
        ctx.partial.set(true);
    }
    ok
}

/// Appends one target extension; false when it was not decoded.
pub fn save_target(out: &mut String, ctx: &Ctx<'_>, name: &str, rev: u8, info: &[u8]) -> bool {
    let ok = targets::save(out, ctx, name, rev, info);
    if !ok {
        ctx.partial.set(true);
    }
    ok
}
