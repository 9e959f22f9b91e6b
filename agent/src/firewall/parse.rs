//! Parser for `iptables-save -c` text: tables, chains with policy and
//! counters, rules with text, target, comment and counters.

use labscope_proto::v1::{Chain, FirewallRule};

/// One table of a save dump.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SavedTable {
    /// Table name ("filter", "nat", …).
    pub name: String,
    /// Chains in save order, rules inside.
    pub chains: Vec<Chain>,
}

/// A whole save dump (or the part of it a [`Select`] kept).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SaveDump {
    /// Tables in save order (only the selected one, with a selection).
    pub tables: Vec<SavedTable>,
    /// Rules across every table, kept or not.
    pub rules_total: usize,
    /// Whether anything beyond empty built-in chains with ACCEPT policy
    /// exists, in any table.
    pub any_rules: bool,
}

/// Why a save dump did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What was wrong.
    pub reason: String,
}

const BUILTIN: [&str; 5] = ["INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING"];

impl SaveDump {
    /// The table named `name`.
    pub fn table(&self, name: &str) -> Option<&SavedTable> {
        self.tables.iter().find(|t| t.name == name)
    }

    /// Total rules across tables.
    pub fn rule_count(&self) -> usize {
        self.rules_total
    }

    /// Whether anything beyond empty built-in chains with ACCEPT policy exists.
    pub fn has_rules(&self) -> bool {
        self.any_rules
    }
}

/// Which part of a dump to build: one table (or all), one chain of it (or
/// all), and a window of its rules over the chains in order. Everything else
/// is read for its structure and counted, not built: a page of a kube-proxy
/// nat table builds its page, not 5,700 rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Select<'a> {
    /// Table to keep; `None` for every table.
    pub table: Option<&'a str>,
    /// Chain whose rules count for the window; `None` for every chain.
    pub chain: Option<&'a str>,
    /// Rules to skip, over the selected chains in order.
    pub offset: usize,
    /// Most rules to build.
    pub limit: usize,
}

impl Select<'_> {
    /// Everything.
    pub const ALL: Select<'static> = Select {
        table: None,
        chain: None,
        offset: 0,
        limit: usize::MAX,
    };
    /// The structure only: every line checked and counted, no rule built.
    pub const STRUCTURE: Select<'static> = Select {
        table: None,
        chain: None,
        offset: 0,
        limit: 0,
    };
}

/// Parses the full text of `iptables-save -c` (counters optional).
pub fn parse(text: &str) -> Result<SaveDump, ParseError> {
    parse_selected(text, &Select::ALL)
}

/// Where a piece of the text is: a byte range (a save text is capped far
/// below 4 GiB).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn of(text: &str, part: &str) -> Span {
        // `part` is a slice of `text`: its offset is the distance between
        // their starts.
        let start = part.as_ptr() as usize - text.as_ptr() as usize;
        Span {
            start: start as u32,
            end: (start + part.len()) as u32,
        }
    }

    fn get(self, text: &str) -> &str {
        &text[self.start as usize..self.end as usize]
    }
}

/// One rule line: where it is and its line number (for errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RuleAt {
    line: Span,
    line_no: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ChainAt {
    name: Span,
    /// Empty for a user chain ("-").
    policy: Span,
    builtin: bool,
    packets: u64,
    bytes: u64,
    rules: Vec<RuleAt>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct TableAt {
    name: Span,
    chains: Vec<ChainAt>,
}

/// Where every table, chain and rule line of one save text is, built in one
/// pass that checks the structure (tables closed, rules in declared chains,
/// counters well formed). A cached read keeps it beside the text, so a page
/// goes straight to its rules instead of reading the text again: paging a
/// kube-proxy nat table of 5,700 rules costs the page, not the table. About
/// 12 bytes per rule and 60 per chain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Index {
    tables: Vec<TableAt>,
    rules_total: usize,
    any_rules: bool,
}

impl Index {
    /// Reads the structure of `text`.
    pub fn build(text: &str) -> Result<Index, ParseError> {
        let mut index = Index::default();
        let mut current: Option<TableAt> = None;
        // Chain name → position in the current table: kube-proxy tables have
        // thousands of chains, and a linear search per rule is quadratic.
        // The save tools print a chain's rules together, so the chain of the
        // previous rule line is tried first.
        let mut chain_index: std::collections::HashMap<&str, usize> =
            std::collections::HashMap::new();
        let mut last: Option<(&str, usize)> = None;
        let mut line_count = 0;
        for (i, raw) in text.lines().enumerate() {
            line_count = i + 1;
            let line = raw.trim_end();
            let err = |reason: &str| ParseError {
                line: i + 1,
                reason: reason.to_string(),
            };
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(name) = line.strip_prefix('*') {
                if current.is_some() {
                    return Err(err("table started before COMMIT"));
                }
                current = Some(TableAt {
                    name: Span::of(text, name),
                    chains: Vec::new(),
                });
                chain_index.clear();
                last = None;
                continue;
            }
            let table = current
                .as_mut()
                .ok_or_else(|| err("content outside a table"))?;
            if line == "COMMIT" {
                index.tables.extend(current.take());
                continue;
            }
            if let Some(decl) = line.strip_prefix(':') {
                // :NAME POLICY [packets:bytes]
                let mut parts = decl.split_whitespace();
                let name = parts.next().ok_or_else(|| err("chain without a name"))?;
                let policy = parts.next().ok_or_else(|| err("chain without a policy"))?;
                let (packets, bytes) = parts
                    .next()
                    .map(parse_counters)
                    .transpose()
                    .map_err(&err)?
                    .unwrap_or((0, 0));
                let builtin = policy != "-" || BUILTIN.contains(&name);
                if !builtin || policy != "ACCEPT" {
                    index.any_rules = true;
                }
                chain_index.insert(name, table.chains.len());
                last = None;
                table.chains.push(ChainAt {
                    name: Span::of(text, name),
                    policy: if policy == "-" {
                        Span::default()
                    } else {
                        Span::of(text, policy)
                    },
                    builtin,
                    packets,
                    bytes,
                    rules: Vec::new(),
                });
                continue;
            }
            let rule_text = match line.strip_prefix('[') {
                Some(_) => {
                    let end = line.find(']').ok_or_else(|| err("unterminated counters"))?;
                    line[end + 1..].trim_start()
                }
                None => line,
            };
            let mut words = rule_text.split_ascii_whitespace();
            let chain_name = match (words.next(), words.next()) {
                (Some("-A"), Some(name)) => name,
                _ => return Err(err("rule line does not start with -A CHAIN")),
            };
            let chain = match last {
                Some((name, at)) if name == chain_name => at,
                _ => {
                    let Some(&at) = chain_index.get(chain_name) else {
                        return Err(err("rule for an undeclared chain"));
                    };
                    last = Some((chain_name, at));
                    at
                }
            };
            index.rules_total += 1;
            index.any_rules = true;
            table.chains[chain].rules.push(RuleAt {
                line: Span::of(text, line),
                line_no: (i + 1) as u32,
            });
        }
        if current.is_some() {
            return Err(ParseError {
                line: line_count,
                reason: "missing COMMIT".into(),
            });
        }
        for table in &mut index.tables {
            for chain in &mut table.chains {
                chain.rules.shrink_to_fit();
            }
        }
        Ok(index)
    }

    /// Builds what `select` asks for of `text` (the text this index was
    /// built from): the selected tables with every chain counted, and the
    /// rules of the window over the selected chains in declared order,
    /// parsed in full (so a broken rule outside the window does not fail the
    /// page).
    pub fn select(&self, text: &str, select: &Select<'_>) -> Result<SaveDump, ParseError> {
        let mut dump = SaveDump {
            tables: Vec::new(),
            rules_total: self.rules_total,
            any_rules: self.any_rules,
        };
        for table in &self.tables {
            let name = table.name.get(text);
            if select.table.is_some_and(|t| t != name) {
                continue;
            }
            let (mut skip, mut room) = (select.offset, select.limit);
            let mut kept = SavedTable {
                name: name.to_string(),
                chains: Vec::with_capacity(table.chains.len()),
            };
            for chain in &table.chains {
                let chain_name = chain.name.get(text);
                let mut out = Chain {
                    name: chain_name.to_string(),
                    policy: chain.policy.get(text).to_string(),
                    builtin: chain.builtin,
                    packets: chain.packets,
                    bytes: chain.bytes,
                    rules: Vec::new(),
                    rule_count: chain.rules.len() as u32,
                };
                if select.chain.is_none_or(|c| c == chain_name) {
                    let from = skip.min(chain.rules.len());
                    skip -= from;
                    let take = room.min(chain.rules.len() - from);
                    room -= take;
                    out.rules.reserve_exact(take);
                    for (at, r) in chain.rules.iter().enumerate().skip(from).take(take) {
                        let mut rule =
                            parse_rule(r.line.get(text)).map_err(|reason| ParseError {
                                line: r.line_no as usize,
                                reason: reason.to_string(),
                            })?;
                        rule.position = at as u32 + 1;
                        out.rules.push(rule);
                    }
                }
                kept.chains.push(out);
            }
            dump.tables.push(kept);
        }
        Ok(dump)
    }
}

/// Parses what `select` asks for (see [`Index::select`]); the structure of
/// every table is checked.
pub fn parse_selected(text: &str, select: &Select<'_>) -> Result<SaveDump, ParseError> {
    Index::build(text)?.select(text, select)
}

/// One rule line, counters and all (what a page builds of each of its
/// lines; the iptables-nft render builds the same from each line it writes).
pub(crate) fn parse_rule(line: &str) -> Result<FirewallRule, &'static str> {
    let (counters, rule_text) = match line.strip_prefix('[') {
        Some(_) => {
            let end = line.find(']').ok_or("unterminated counters")?;
            (parse_counters(&line[..=end])?, line[end + 1..].trim_start())
        }
        None => ((0, 0), line),
    };
    let mut tokens = Tokens::new(rule_text);
    let chain = match (tokens.next().transpose()?, tokens.next().transpose()?) {
        (Some(a), Some(chain)) if a == "-A" => chain.into_owned(),
        _ => return Err("rule line does not start with -A CHAIN"),
    };
    let mut rule = FirewallRule {
        chain,
        text: rule_text.to_string(),
        packets: counters.0,
        bytes: counters.1,
        partly_decoded: marks_unsupported(rule_text),
        ..Default::default()
    };
    while let Some(tok) = tokens.next().transpose()? {
        match tok.as_ref() {
            "-j" | "--jump" => {
                rule.target = tokens
                    .next()
                    .transpose()?
                    .map(|t| t.into_owned())
                    .unwrap_or_default()
            }
            "-g" | "--goto" => {
                rule.target = tokens
                    .next()
                    .transpose()?
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                rule.is_goto = true;
            }
            "--comment" => {
                if let Some(c) = tokens.next().transpose()? {
                    if rule.comment.is_empty() {
                        rule.comment = c.into_owned();
                    } else {
                        rule.comment.push_str("; ");
                        rule.comment.push_str(&c);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(rule)
}

/// Whether the decoder marked part of the rule `[unsupported …]` (outside
/// a quoted string, where a comment could say anything).
pub fn marks_unsupported(text: &str) -> bool {
    // Almost every rule has no marker: one substring search says so.
    if !text.contains(" [unsupported ") {
        return false;
    }
    let mut quoted = false;
    let mut escaped = false;
    let b = text.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        match c {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b'[' if !quoted && b[..i].ends_with(b" ") && b[i..].starts_with(b"[unsupported ") => {
                return true;
            }
            _ => {}
        }
    }
    false
}

fn parse_counters(s: &str) -> Result<(u64, u64), &'static str> {
    let inner = s
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .ok_or("counters not in [p:b] form")?;
    let (p, b) = inner.split_once(':').ok_or("counters not in [p:b] form")?;
    Ok((
        p.parse().map_err(|_| "bad packet counter")?,
        b.parse().map_err(|_| "bad byte counter")?,
    ))
}

/// Splits a rule the way iptables-save quotes it: double quotes around
/// arguments with spaces, backslash escaping `"` and `\` inside them.
/// Unquoted tokens borrow from the line; only quoted ones allocate.
pub fn tokenize(s: &str) -> Result<Vec<std::borrow::Cow<'_, str>>, &'static str> {
    Tokens::new(s).collect()
}

/// The tokens of a rule line, one at a time (no vector: a page of a
/// kube-proxy table splits thousands of lines).
pub struct Tokens<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Tokens<'a> {
    /// Tokens of `s`.
    pub fn new(s: &'a str) -> Self {
        Self { s, i: 0 }
    }
}

impl<'a> Iterator for Tokens<'a> {
    type Item = Result<std::borrow::Cow<'a, str>, &'static str>;

    fn next(&mut self) -> Option<Self::Item> {
        use std::borrow::Cow;
        let (s, bytes) = (self.s, self.s.as_bytes());
        while self.i < bytes.len() && bytes[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
        if self.i >= bytes.len() {
            return None;
        }
        let start = self.i;
        // Fast path: a token without quotes.
        while self.i < bytes.len() && !bytes[self.i].is_ascii_whitespace() && bytes[self.i] != b'"'
        {
            self.i += 1;
        }
        if self.i >= bytes.len() || bytes[self.i].is_ascii_whitespace() {
            return Some(Ok(Cow::Borrowed(&s[start..self.i])));
        }
        // Slow path: the token has a quoted part. Quotes, backslashes and
        // spaces are ASCII, so the bytes between them are copied as slices.
        let mut cur = String::with_capacity(64);
        cur.push_str(&s[start..self.i]);
        let mut quoted = false;
        let mut j = self.i;
        let mut seg = j;
        while j < bytes.len() {
            match bytes[j] {
                b'"' => {
                    cur.push_str(&s[seg..j]);
                    quoted = !quoted;
                    j += 1;
                    seg = j;
                }
                b'\\' if quoted => {
                    cur.push_str(&s[seg..j]);
                    let Some(next) = s[j + 1..].chars().next() else {
                        self.i = bytes.len();
                        return Some(Err("dangling backslash"));
                    };
                    cur.push(next);
                    j += 1 + next.len_utf8();
                    seg = j;
                }
                b if b.is_ascii_whitespace() && !quoted => break,
                _ => j += 1,
            }
        }
        cur.push_str(&s[seg..j]);
        self.i = j;
        if quoted {
            self.i = bytes.len();
            return Some(Err("unterminated quote"));
        }
        Some(Ok(Cow::Owned(cur)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"# Generated by iptables-nft-save v1.8.9 (nf_tables) on Thu Aug 20 06:07:00 2026
*nat
:PREROUTING ACCEPT [12:720]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [3:180]
:POSTROUTING ACCEPT [3:180]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-TCOU7JCQXEZGVUNU - [0:0]
[5:300] -A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
[2:120] -A KUBE-SERVICES -d 10.43.0.10/32 -p udp -m comment --comment "kube-system/kube-dns:dns cluster IP" -m udp --dport 53 -j KUBE-SVC-TCOU7JCQXEZGVUNU
[0:0] -A KUBE-SVC-TCOU7JCQXEZGVUNU -m comment --comment "say \"hi\"" -g KUBE-SERVICES
[7:420] -A POSTROUTING -s 10.42.0.0/16 ! -d 10.42.0.0/16 -j MASQUERADE --random-fully
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
COMMIT
"#;

    #[test]
    fn parses_tables_chains_rules_and_counters() {
        let d = parse(SAMPLE).unwrap();
        assert_eq!(d.tables.len(), 2);
        let nat = d.table("nat").unwrap();
        assert_eq!(nat.chains.len(), 6);
        let pre = &nat.chains[0];
        assert_eq!(
            (
                pre.name.as_str(),
                pre.policy.as_str(),
                pre.packets,
                pre.bytes
            ),
            ("PREROUTING", "ACCEPT", 12, 720)
        );
        assert!(pre.builtin);
        assert!(!nat.chains[4].builtin);
        let svc = &nat.chains[4].rules[0];
        assert_eq!(svc.target, "KUBE-SVC-TCOU7JCQXEZGVUNU");
        assert_eq!(svc.comment, "kube-system/kube-dns:dns cluster IP");
        assert_eq!((svc.packets, svc.bytes, svc.position), (2, 120, 1));
        assert!(svc.text.starts_with("-A KUBE-SERVICES -d 10.43.0.10/32"));
        let goto = &nat.chains[5].rules[0];
        assert!(goto.is_goto);
        assert_eq!(goto.comment, "say \"hi\"");
        let masq = &nat.chains[3].rules[0];
        assert_eq!(masq.target, "MASQUERADE");
        assert_eq!(d.rule_count(), 4);
        assert!(d.has_rules());
        let filter = d.table("filter").unwrap();
        assert_eq!(filter.chains[1].policy, "DROP");
    }

    #[test]
    fn a_window_holds_the_same_rules_as_the_full_parse() {
        let full = parse(SAMPLE).unwrap();
        let nat = full.table("nat").unwrap();
        let in_order: Vec<(String, FirewallRule)> = nat
            .chains
            .iter()
            .flat_map(|c| c.rules.iter().map(|r| (c.name.clone(), r.clone())))
            .collect();
        let shape = |t: &SavedTable| -> Vec<(String, String, u32)> {
            t.chains
                .iter()
                .map(|c| (c.name.clone(), c.policy.clone(), c.rule_count))
                .collect()
        };
        for chain in [
            None,
            Some("KUBE-SERVICES"),
            Some("POSTROUTING"),
            Some("INPUT"),
        ] {
            for offset in 0..6 {
                for limit in 0..6 {
                    let select = Select {
                        table: Some("nat"),
                        chain,
                        offset,
                        limit,
                    };
                    let d = parse_selected(SAMPLE, &select).unwrap();
                    assert_eq!(d.tables.len(), 1, "only the table asked for");
                    assert_eq!(shape(&d.tables[0]), shape(nat), "every chain, counted");
                    let got: Vec<FirewallRule> = d.tables[0]
                        .chains
                        .iter()
                        .flat_map(|c| c.rules.clone())
                        .collect();
                    let want: Vec<FirewallRule> = in_order
                        .iter()
                        .filter(|(c, _)| chain.is_none_or(|n| n == c))
                        .skip(offset)
                        .take(limit)
                        .map(|(_, r)| r.clone())
                        .collect();
                    assert_eq!(got, want, "{select:?}");
                    assert_eq!(d.rule_count(), full.rule_count());
                    assert_eq!(d.has_rules(), full.has_rules());
                }
            }
        }
        let structure = parse_selected(SAMPLE, &Select::STRUCTURE).unwrap();
        assert_eq!(structure.rule_count(), 4);
        assert!(
            structure
                .tables
                .iter()
                .all(|t| t.chains.iter().all(|c| c.rules.is_empty()))
        );
    }

    #[test]
    fn windows_follow_chain_order_not_line_order() {
        // Rules of two chains interleaved in the text: chain A comes first.
        let text = "*filter\n:A - [0:0]\n:B - [0:0]\n-A B -j b1\n-A A -j a1\n-A B -j b2\n-A A -j a2\nCOMMIT\n";
        let page = |offset, limit| -> Vec<(String, u32)> {
            let d = parse_selected(
                text,
                &Select {
                    table: Some("filter"),
                    chain: None,
                    offset,
                    limit,
                },
            )
            .unwrap();
            d.tables[0]
                .chains
                .iter()
                .flat_map(|c| c.rules.iter().map(|r| (r.target.clone(), r.position)))
                .collect()
        };
        let names = |v: &[(&str, u32)]| -> Vec<(String, u32)> {
            v.iter().map(|(n, p)| (n.to_string(), *p)).collect()
        };
        assert_eq!(
            page(0, 9),
            names(&[("a1", 1), ("a2", 2), ("b1", 1), ("b2", 2)])
        );
        assert_eq!(page(1, 2), names(&[("a2", 2), ("b1", 1)]));
        assert_eq!(page(3, 9), names(&[("b2", 2)]));
        assert_eq!(
            parse(text).unwrap().tables[0].chains[0].rules[1].target,
            "a2"
        );
    }

    #[test]
    fn a_broken_rule_fails_only_the_pages_that_hold_it() {
        let text = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\n-A INPUT -m comment --comment \"open\nCOMMIT\n";
        let select = |offset, limit| Select {
            table: Some("filter"),
            chain: None,
            offset,
            limit,
        };
        assert!(parse_selected(text, &select(0, 1)).is_ok());
        let err = parse_selected(text, &select(1, 1)).unwrap_err();
        assert_eq!((err.line, err.reason.as_str()), (4, "unterminated quote"));
        assert!(parse(text).is_err());
        // Structure is checked in every table, kept or not.
        let undeclared = "*nat\n-A NOPE -j X\nCOMMIT\n*filter\nCOMMIT\n";
        assert!(parse_selected(undeclared, &select(0, 10)).is_err());
        assert!(parse_selected(undeclared, &Select::STRUCTURE).is_err());
    }

    #[test]
    fn unsupported_parts_are_recognised_outside_quotes() {
        assert!(marks_unsupported(
            "-A X -m foo [unsupported revision 3] -j ACCEPT"
        ));
        assert!(marks_unsupported(
            "-A X [unsupported set lookup @s] -j DROP"
        ));
        assert!(!marks_unsupported(
            r#"-A X -m comment --comment "[unsupported x]" -j ACCEPT"#
        ));
        assert!(!marks_unsupported(
            r#"-A X -m comment --comment "a \" [unsupported x]" -j Y"#
        ));
        assert!(!marks_unsupported("-A X -j ACCEPT"));
    }

    #[test]
    fn tokenizer_borrows_plain_tokens_and_unquotes_quoted_ones() {
        let t = tokenize(r#"-A X -m comment --comment "a \"b\" c" pre"fix d"post  -j Y"#).unwrap();
        let t: Vec<&str> = t.iter().map(|c| c.as_ref()).collect();
        assert_eq!(
            t,
            [
                "-A",
                "X",
                "-m",
                "comment",
                "--comment",
                "a \"b\" c",
                "prefix dpost",
                "-j",
                "Y"
            ]
        );
        assert!(tokenize("\"open").is_err());
    }

    #[test]
    fn empty_default_tables_hold_no_rules() {
        let d = parse(
            "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n",
        )
        .unwrap();
        assert!(!d.has_rules());
        assert!(!parse("").unwrap().has_rules());
    }

    #[test]
    fn rejects_broken_input_with_line_numbers() {
        assert_eq!(
            parse("*filter\n:INPUT ACCEPT [0:0]\n").unwrap_err().reason,
            "missing COMMIT"
        );
        assert_eq!(parse("-A INPUT -j ACCEPT\n").unwrap_err().line, 1);
        assert!(parse("*filter\n-A NOPE -j ACCEPT\nCOMMIT\n").is_err());
        assert!(parse("*filter\n:INPUT ACCEPT [x:0]\nCOMMIT\n").is_err());
        assert!(
            parse(
                "*filter\n:INPUT ACCEPT [0:0]\n[1:1] -A INPUT -m comment --comment \"open\nCOMMIT\n"
            )
            .is_err()
        );
    }

    /// Tokens read one character at a time: whitespace outside quotes
    /// splits, `"` toggles quoting, `\\` inside quotes takes the next
    /// character as it is; an error ends the tokens.
    fn reference_tokens(s: &str) -> Vec<Result<String, &'static str>> {
        let mut out = Vec::new();
        let mut chars = s.chars().peekable();
        loop {
            while chars.peek().is_some_and(|c| c.is_ascii_whitespace()) {
                chars.next();
            }
            if chars.peek().is_none() {
                return out;
            }
            let (mut cur, mut quoted) = (String::new(), false);
            loop {
                match chars.next() {
                    None => break,
                    Some('"') => quoted = !quoted,
                    Some('\\') if quoted => match chars.next() {
                        Some(n) => cur.push(n),
                        None => {
                            out.push(Err("dangling backslash"));
                            return out;
                        }
                    },
                    Some(c) if c.is_ascii_whitespace() && !quoted => break,
                    Some(c) => cur.push(c),
                }
            }
            if quoted {
                out.push(Err("unterminated quote"));
                return out;
            }
            out.push(Ok(cur));
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "(\\*filter|:INPUT ACCEPT \\[0:0\\]|\\[1:2\\] -A INPUT -j X|COMMIT|\"|\\\\| |\n|[a-z]){0,40}") {
            let _ = parse(&s);
        }

        /// The tokenizer splits as the plain reading of iptables-save's
        /// quoting does, character by character.
        #[test]
        fn tokens_equal_a_character_by_character_reading(s in "(\"|\\\\| |\t|a|-j|é|ü x|\\[){0,30}") {
            let ours: Vec<Result<String, &str>> =
                Tokens::new(&s).map(|t| t.map(|t| t.into_owned())).collect();
            proptest::prop_assert_eq!(ours, reference_tokens(&s));
        }
    }
}
