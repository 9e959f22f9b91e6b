//! iptables-nft's tables read back from nf_tables expressions into the
//! text `iptables-nft-save -c` prints (the reading of iptables' own
//! `nft_rule_to_iptables_command_state`: a small register machine, then
//! each extension prints itself). Pure: it works on a [`Ruleset`] read
//! elsewhere.
//!
//! Where iptables-save 1.8.9 is silently wrong or gives up, this is not:
//! a set lookup, an expression iptables does not know, a base chain that is
//! not iptables' own is still shown, marked `[unsupported …]`, and counted.

use std::fmt::Write;

use labscope_proto::v1::FirewallRule;

use super::nft::Ruleset;
use super::nft::model::{Chain, Expr, ExprKind, Rule, family};
use super::xt::SetNames;

/// An iptables table: its name and built-in chains (name, hook, type,
/// priority), in iptables-nft-save's order.
type TableDef = (
    &'static str,
    &'static [(&'static str, u32, &'static str, i32)],
);

/// The tables iptables-nft-save prints, in its order.
pub const TABLES: [TableDef; 5] = [
    (
        "mangle",
        &[
            ("PREROUTING", 0, "filter", -150),
            ("INPUT", 1, "filter", -150),
            ("FORWARD", 2, "filter", -150),
            ("OUTPUT", 3, "route", -150),
            ("POSTROUTING", 4, "filter", -150),
        ],
    ),
    (
        "security",
        &[
            ("INPUT", 1, "filter", 150),
            ("FORWARD", 2, "filter", 150),
            ("OUTPUT", 3, "filter", 150),
        ],
    ),
    (
        "raw",
        &[
            ("PREROUTING", 0, "filter", -300),
            ("OUTPUT", 3, "filter", -300),
        ],
    ),
    (
        "filter",
        &[
            ("INPUT", 1, "filter", 0),
            ("FORWARD", 2, "filter", 0),
            ("OUTPUT", 3, "filter", 0),
        ],
    ),
    (
        "nat",
        &[
            ("PREROUTING", 0, "nat", -100),
            ("INPUT", 1, "nat", 100),
            ("OUTPUT", 3, "nat", -100),
            ("POSTROUTING", 4, "nat", 100),
        ],
    ),
];

/// The expressions iptables-nft reads (with `limit` and `log` in the forms
/// it writes); a table holding anything else is nft's, not iptables'.
pub fn iptables_expression(e: &Expr<'_>) -> bool {
    match e.kind() {
        ExprKind::Match
        | ExprKind::Target
        | ExprKind::Payload
        | ExprKind::Meta
        | ExprKind::Cmp
        | ExprKind::Bitwise
        | ExprKind::Counter
        | ExprKind::Immediate
        | ExprKind::Lookup
        | ExprKind::Range => true,
        ExprKind::Limit => e.u32(4).unwrap_or(0) == 0 && e.u32(5).unwrap_or(0) == 0,
        ExprKind::Log => e.has(1),
        _ => false,
    }
}

/// Whether a base chain is the built-in chain iptables would have made.
fn builtin_match(def: &TableDef, c: &Chain<'_>) -> Option<usize> {
    let hook = c.hook.as_ref()?;
    def.1.iter().position(|(name, num, ty, prio)| {
        *num == hook.number
            && *prio == hook.priority
            && *name == c.name
            && Some(*ty) == c.chain_type
    })
}

/// The iptables-save text of one family's iptables-nft tables.
#[derive(Debug, Default, Clone)]
pub struct SaveText {
    /// `*table` … `COMMIT` blocks, counters on every rule.
    pub text: String,
    /// Rules shown with an `[unsupported …]` part.
    pub partial_rules: usize,
    /// What a person should know (nft-only chains or expressions in an
    /// iptables table, with where to look instead).
    pub notes: Vec<String>,
    /// The rules of the table [`Rendered::building`] named, each chain's
    /// in the text's order of chain declarations (a chain without rules
    /// has none); `None` when no table was named or a line did not parse.
    pub built: Option<Vec<Vec<FirewallRule>>>,
}

/// Rule lines rendered as the rules arrive: the kernel dumps each chain's
/// rules together, in chain creation order, and iptables-save prints chains
/// in its own order, so the lines go into one buffer run after run and
/// [`assemble`] puts the runs in order at the end. Lets the render run
/// while the dump goes on; a chain costs no allocation of its own.
pub struct Rendered {
    fam: u8,
    line: LineWriter,
    /// Every rendered line, run after run.
    lines: String,
    /// The chain names of the runs, back to back.
    names: String,
    runs: Vec<Run>,
    /// The table (index in [`TABLES`]) whose rules are also built as
    /// answers' rules, line by line as they are rendered.
    build: Option<u8>,
    /// Those rules, one list per run (by index in `runs`; runs of other
    /// tables have an empty one). Emptied if a line did not parse.
    built: Vec<Vec<FirewallRule>>,
    build_failed: bool,
}

/// One chain's rules as they came in a row.
#[derive(Debug, Clone, Copy)]
struct Run {
    /// Index of the table in [`TABLES`].
    table: u8,
    /// The chain's name in `Rendered::names`.
    name: (u32, u32),
    /// The lines in `Rendered::lines`.
    lines: (usize, usize),
    /// Rules with nftables-only expressions.
    foreign: u32,
    /// Rules shown partly decoded.
    partial: u32,
}

impl Rendered {
    /// A renderer for IPv4 (`v6` false) or IPv6 rules.
    pub fn new(v6: bool) -> Self {
        Self {
            fam: if v6 { family::IPV6 } else { family::IPV4 },
            line: LineWriter::new(v6),
            lines: String::new(),
            names: String::new(),
            runs: Vec::new(),
            build: None,
            built: Vec::new(),
            build_failed: false,
        }
    }

    /// Also builds the rules of `table` as an answer's [`FirewallRule`]s,
    /// each from its line as soon as it is rendered (the same parse a page
    /// of the text makes), so that an answer with the whole table does not
    /// read the text again after the dump. Other tables are only rendered.
    pub fn building(mut self, table: &str) -> Self {
        self.build = TABLES
            .iter()
            .position(|(n, _)| *n == table)
            .map(|t| t as u8);
        self
    }

    fn name(&self, run: &Run) -> &str {
        &self.names[run.name.0 as usize..run.name.1 as usize]
    }

    /// Renders one NEWRULE payload (rules of other families and of tables
    /// that are not iptables' are skipped).
    pub fn add(&mut self, payload: &[u8], sets: &dyn SetNames) {
        let (f, table, chain) = Rule::place(payload);
        if f != self.fam {
            return;
        }
        let Some(t) = TABLES.iter().position(|(n, _)| *n == table) else {
            return;
        };
        let same = self
            .runs
            .last()
            .is_some_and(|r| r.table as usize == t && self.name(r) == chain);
        if !same {
            let a = self.names.len() as u32;
            self.names.push_str(chain);
            let at = self.lines.len();
            self.runs.push(Run {
                table: t as u8,
                name: (a, self.names.len() as u32),
                lines: (at, at),
                foreign: 0,
                partial: 0,
            });
            if self.build.is_some() && !self.build_failed {
                self.built.push(Vec::new());
            }
        }
        let rule = Rule::decode_reusing(payload, Vec::with_capacity(12));
        let foreign = rule.exprs.iter().any(|e| !iptables_expression(e));
        let start = self.lines.len();
        let whole = self.line.write(&mut self.lines, &rule, sets);
        if self.build == Some(t as u8) && !self.build_failed {
            match super::parse::parse_rule(self.lines[start..].trim_end()) {
                Ok(rule) => {
                    if let Some(run) = self.built.last_mut() {
                        run.push(rule);
                    }
                }
                Err(_) => {
                    self.build_failed = true;
                    self.built = Vec::new();
                }
            }
        }
        if let Some(run) = self.runs.last_mut() {
            run.lines.1 = self.lines.len();
            run.foreign += u32::from(foreign);
            run.partial += u32::from(!whole);
        }
    }
}

/// Builds the iptables-nft-save text of `rs` (one family, IPv4 or IPv6).
pub fn save_text(rs: &Ruleset, v6: bool, sets: &dyn SetNames) -> SaveText {
    let mut rendered = Rendered::new(v6);
    for payload in rs.rules.iter() {
        rendered.add(payload, sets);
    }
    assemble(rs, rendered)
}

/// The runs by (table, chain name), each chain's runs in dump order.
struct RunsByChain<'r> {
    sorted: Vec<usize>,
    /// Each chain's key and where its runs are in `sorted`.
    groups: Vec<((u8, &'r str), std::ops::Range<usize>)>,
}

impl<'r> RunsByChain<'r> {
    fn new(rendered: &'r Rendered) -> Self {
        let key = |i: usize| {
            let r = &rendered.runs[i];
            (r.table, rendered.name(r))
        };
        let mut sorted: Vec<usize> = (0..rendered.runs.len()).collect();
        sorted.sort_by(|&a, &b| key(a).cmp(&key(b)));
        let mut groups: Vec<((u8, &str), std::ops::Range<usize>)> = Vec::new();
        for (at, &i) in sorted.iter().enumerate() {
            match groups.last_mut() {
                Some((k, range)) if *k == key(i) => range.end = at + 1,
                _ => groups.push((key(i), at..at + 1)),
            }
        }
        Self { sorted, groups }
    }

    /// The runs (indices in `Rendered::runs`) of `chain` in table `t`.
    fn of(&self, t: usize, chain: &str) -> &[usize] {
        let k = (t as u8, chain);
        let at = self.groups.partition_point(|(g, _)| *g < k);
        match self.groups.get(at) {
            Some((g, range)) if *g == k => &self.sorted[range.clone()],
            _ => &[],
        }
    }
}

/// Puts rendered rule lines in iptables-save's order: tables mangle,
/// security, raw, filter, nat; in each, the built-in chains in hook order
/// (the missing ones as `ACCEPT [0:0]`), then the user chains by name.
pub fn assemble(rs: &Ruleset, mut rendered: Rendered) -> SaveText {
    let fam = rendered.fam;
    let mut out = SaveText::default();
    let mut built = std::mem::take(&mut rendered.built);
    let build = rendered.build.filter(|_| !rendered.build_failed);
    if build.is_some() {
        out.built = Some(Vec::new());
    }
    let runs = RunsByChain::new(&rendered);
    let chains_all: Vec<Chain<'_>> = rs.chains().filter(|c| c.family == fam).collect();
    let headers: usize = chains_all.iter().map(|c| c.name.len() + 48).sum();
    out.text
        .reserve_exact(rendered.lines.len() + headers + 16 * TABLES.len());
    let present: Vec<&str> = rs
        .tables()
        .filter(|t| t.family == fam)
        .map(|t| t.name)
        .collect();
    for (t, def) in TABLES.iter().enumerate() {
        let table = def.0;
        if !present.contains(&table) {
            continue;
        }
        let chains: Vec<&Chain<'_>> = chains_all.iter().filter(|c| c.table == table).collect();
        let mut base: Vec<Option<&Chain<'_>>> = vec![None; def.1.len()];
        let mut users: Vec<&Chain<'_>> = Vec::new();
        for c in chains {
            if !c.is_base() {
                users.push(c);
                continue;
            }
            match builtin_match(def, c) {
                Some(at) if base[at].is_none() => base[at] = Some(c),
                _ => out.notes.push(format!(
                    "{} table {table} has base chain {} that iptables did not make (not shown here; get_nft_ruleset shows it)",
                    family::name(fam),
                    c.name
                )),
            }
        }
        users.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        let _ = writeln!(out.text, "*{table}");
        for (at, (name, ..)) in def.1.iter().enumerate() {
            let (policy, (p, b)) = match base[at] {
                Some(c) => (
                    match c.policy {
                        Some(0) => "DROP",
                        Some(1) | None => "ACCEPT",
                        Some(_) => "-",
                    },
                    c.counters.unwrap_or((0, 0)),
                ),
                None => ("ACCEPT", (0, 0)),
            };
            let _ = writeln!(out.text, ":{name} {policy} [{p}:{b}]");
        }
        for c in &users {
            let _ = writeln!(out.text, ":{} - [0:0]", c.name);
        }
        // The rules, chain by chain in the order declared above (a built-in
        // chain the table lacks has none); for the table being built, each
        // chain's built rules too.
        let building = build == Some(t as u8);
        let mut chains_built = Vec::new();
        let mut foreign = 0usize;
        let declared = def
            .1
            .iter()
            .enumerate()
            .map(|(at, (n, ..))| (base[at].is_some(), *n))
            .chain(users.iter().map(|c| (true, c.name)));
        for (present, chain) in declared {
            let mut rules = Vec::new();
            let of_chain = if present { runs.of(t, chain) } else { &[] };
            for &i in of_chain {
                let run = &rendered.runs[i];
                out.text.push_str(&rendered.lines[run.lines.0..run.lines.1]);
                foreign += run.foreign as usize;
                out.partial_rules += run.partial as usize;
                if let Some(more) = built.get_mut(i).filter(|_| building) {
                    if rules.is_empty() {
                        std::mem::swap(&mut rules, more);
                    } else {
                        rules.append(more);
                    }
                }
            }
            if building {
                chains_built.push(rules);
            }
        }
        if building {
            out.built = Some(chains_built);
        }
        if foreign > 0 {
            out.notes.push(format!(
                "{} table {table}: {foreign} rules use nftables expressions iptables cannot show (iptables-save calls the table incompatible); get_nft_ruleset shows them as nft does",
                family::name(fam)
            ));
        }
        out.text.push_str("COMMIT\n");
    }
    out
}

mod rule;

pub use rule::{LineWriter, index_name, rule_line};
