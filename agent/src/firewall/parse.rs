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

/// A whole save dump.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SaveDump {
    /// Tables in save order.
    pub tables: Vec<SavedTable>,
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
        self.tables
            .iter()
            .flat_map(|t| &t.chains)
            .map(|c| c.rules.len())
            .sum()
    }

    /// Whether anything beyond empty built-in chains with ACCEPT policy exists.
    pub fn has_rules(&self) -> bool {
        self.tables
            .iter()
            .flat_map(|t| &t.chains)
            .any(|c| !c.rules.is_empty() || !c.builtin || c.policy != "ACCEPT")
    }
}

/// Parses the full text of `iptables-save -c` (counters optional).
pub fn parse(text: &str) -> Result<SaveDump, ParseError> {
    let mut dump = SaveDump::default();
    let mut current: Option<SavedTable> = None;
    // Chain name → index in the current table: kube-proxy tables have
    // thousands of chains, and a linear search per rule is quadratic.
    let mut chain_index: std::collections::HashMap<String, usize> =
        std::collections::HashMap::new();
    for (i, raw) in text.lines().enumerate() {
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
            current = Some(SavedTable {
                name: name.to_string(),
                chains: Vec::new(),
            });
            chain_index.clear();
            continue;
        }
        let table = current
            .as_mut()
            .ok_or_else(|| err("content outside a table"))?;
        if line == "COMMIT" {
            dump.tables.push(current.take().unwrap_or_default());
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
            chain_index.insert(name.to_string(), table.chains.len());
            table.chains.push(Chain {
                name: name.to_string(),
                policy: if policy == "-" {
                    String::new()
                } else {
                    policy.to_string()
                },
                builtin: policy != "-" || BUILTIN.contains(&name),
                packets,
                bytes,
                rules: Vec::new(),
                rule_count: 0,
            });
            continue;
        }
        let (counters, rule_text) = match line.strip_prefix('[') {
            Some(_) => {
                let end = line.find(']').ok_or_else(|| err("unterminated counters"))?;
                (
                    parse_counters(&line[..=end]).map_err(&err)?,
                    line[end + 1..].trim_start(),
                )
            }
            None => ((0, 0), line),
        };
        let tokens = tokenize(rule_text).map_err(&err)?;
        if tokens.first().map(|t| t.as_ref()) != Some("-A") || tokens.len() < 2 {
            return Err(err("rule line does not start with -A CHAIN"));
        }
        let chain_name = tokens[1].to_string();
        let mut rule = FirewallRule {
            chain: chain_name.clone(),
            text: rule_text.to_string(),
            packets: counters.0,
            bytes: counters.1,
            ..Default::default()
        };
        let mut comments = Vec::new();
        let mut it = tokens.iter().skip(2).peekable();
        while let Some(tok) = it.next() {
            match tok.as_ref() {
                "-j" | "--jump" => {
                    rule.target = it.next().map(|t| t.to_string()).unwrap_or_default()
                }
                "-g" | "--goto" => {
                    rule.target = it.next().map(|t| t.to_string()).unwrap_or_default();
                    rule.is_goto = true;
                }
                "--comment" => comments.extend(it.next().map(|t| t.to_string())),
                _ => {}
            }
        }
        rule.comment = comments.join("; ");
        let chain = match chain_index
            .get(&chain_name)
            .and_then(|i| table.chains.get_mut(*i))
        {
            Some(c) => c,
            None => return Err(err("rule for an undeclared chain")),
        };
        rule.position = chain.rules.len() as u32 + 1;
        chain.rule_count = rule.position;
        chain.rules.push(rule);
    }
    if current.is_some() {
        return Err(ParseError {
            line: text.lines().count(),
            reason: "missing COMMIT".into(),
        });
    }
    Ok(dump)
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
    use std::borrow::Cow;
    let mut out = Vec::with_capacity(24);
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        // Fast path: a token without quotes.
        while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b'"' {
            i += 1;
        }
        if i >= bytes.len() || bytes[i].is_ascii_whitespace() {
            out.push(Cow::Borrowed(&s[start..i]));
            continue;
        }
        // Slow path: the token has a quoted part.
        let mut cur = String::from(&s[start..i]);
        let mut quoted = false;
        let mut chars = s[i..].char_indices();
        let mut consumed = s.len() - i;
        while let Some((off, c)) = chars.next() {
            match c {
                '"' => quoted = !quoted,
                '\\' if quoted => match chars.next() {
                    Some((_, n)) => cur.push(n),
                    None => return Err("dangling backslash"),
                },
                c if c.is_whitespace() && !quoted => {
                    consumed = off;
                    break;
                }
                c => cur.push(c),
            }
        }
        if quoted {
            return Err("unterminated quote");
        }
        out.push(Cow::Owned(cur));
        i += consumed;
    }
    Ok(out)
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

    proptest::proptest! {
        #[test]
        fn never_panics(s in "(\\*filter|:INPUT ACCEPT \\[0:0\\]|\\[1:2\\] -A INPUT -j X|COMMIT|\"|\\\\| |\n|[a-z]){0,40}") {
            let _ = parse(&s);
        }
    }
}
