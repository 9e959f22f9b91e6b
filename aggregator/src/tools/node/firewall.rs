//! `get_iptables_rules`: one table's chains and rules with counters, the
//! backend in use and a warning when both backends hold rules.

use std::sync::Arc;
use std::time::Duration;

use labscope_proto::v1 as pb;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use base64::Engine;

use super::{decode_offset, enum_name, node_agent, on_node};
use crate::choice;
use crate::tools::args::{Int, Text, blank_as_none};
use crate::tools::{Call, Hints, Meta, Render, ToolContext, ToolDef, ToolError, Toolset};

choice! {
    /// An iptables table.
    pub enum Table {
        /// filter.
        Filter = "filter",
        /// nat.
        Nat = "nat",
        /// mangle.
        Mangle = "mangle",
        /// raw.
        Raw = "raw",
        /// security.
        Security = "security",
    }
}

/// Arguments (the predecessor's names).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Node name.
    pub node: Text,
    /// Table.
    #[serde(default, deserialize_with = "blank_as_none")]
    #[schemars(extend("default" = "filter"))]
    pub table: Option<Table>,
    /// Only this chain.
    #[serde(default, deserialize_with = "blank_as_none")]
    pub chain: Option<Text>,
    /// ip6tables instead of iptables.
    #[serde(default)]
    pub ipv6: bool,
    /// Rules per page.
    #[serde(default)]
    pub limit: Int<1, 2000, 200>,
    /// nextCursor of the previous page.
    #[serde(default, deserialize_with = "blank_as_none")]
    pub cursor: Option<Text>,
}

/// A chain.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ChainRow {
    /// Name.
    pub name: String,
    /// Policy of a built-in chain (empty for user chains).
    pub policy: String,
    /// Built-in.
    pub builtin: bool,
    /// Packets that met the policy.
    pub packets: u64,
    /// Bytes that met the policy.
    pub bytes: u64,
    /// Rules in it.
    pub rules: usize,
}

/// A rule.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RuleRow {
    /// Chain.
    pub chain: String,
    /// 1-based position in the chain.
    pub position: u32,
    /// Full rule as iptables-save prints it.
    pub text: String,
    /// Jump or goto target.
    pub target: String,
    /// `-g` rather than `-j`.
    pub goto: bool,
    /// Its comment.
    pub comment: String,
    /// Packets matched.
    pub packets: u64,
    /// Bytes matched.
    pub bytes: u64,
    /// Some part could not be decoded and shows as `[unsupported …]`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub partly_decoded: bool,
}

/// One page of a table.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rules {
    /// Node.
    pub node: String,
    /// ipv4 or ipv6.
    pub family: String,
    /// Table.
    pub table: String,
    /// Backend in use: nft or legacy.
    pub backend: String,
    /// Backends that hold rules.
    pub backends_with_rules: Vec<String>,
    /// Set when both backends hold rules (a known k3s failure).
    pub warning: String,
    /// How the rules were read (netlink or getsockopt: no program runs).
    pub method: String,
    /// Rules of the backend shown with an `[unsupported …]` part.
    pub partly_decoded_rules: u32,
    /// What to know about the read (chains or expressions iptables did not
    /// make: get_nft_ruleset shows them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Chains with their policies and rule counts. Left out of a later
    /// page of the same read (its cursor's): the first page listed them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chains: Option<Vec<ChainRow>>,
    /// Rules the other backend holds (text only, at most `limit`).
    pub other_backend_rules: Vec<String>,
    /// This page.
    pub rules: Vec<RuleRow>,
    /// Index of the first rule of the page.
    pub offset: usize,
    /// Rules in this page.
    pub returned: usize,
    /// Rules in the table.
    pub total: usize,
    /// Pass as `cursor` for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// Age of the read this page comes from (its counters), in ms: later
    /// pages come from the first page's read while the ruleset is unchanged.
    pub counters_age_ms: u64,
    /// The ruleset changed since the previous page, which this page was
    /// read anew for: rules may have shifted between pages.
    pub ruleset_changed: bool,
}

/// Where the next page starts, and the agent's read it comes from.
#[derive(Debug, PartialEq, Eq)]
struct Cursor {
    offset: usize,
    snapshot: String,
}

impl Cursor {
    fn encode(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!("fw1:{}:{}", self.offset, self.snapshot))
    }

    /// A cursor of this tool, or an offset-only one of an older version.
    fn decode(arg: &str, s: Option<&str>) -> Result<Cursor, ToolError> {
        let Some(text) = s else {
            return Ok(Cursor {
                offset: 0,
                snapshot: String::new(),
            });
        };
        let fw1 = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text.as_bytes())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|t| {
                let (offset, snapshot) = t.strip_prefix("fw1:")?.split_once(':')?;
                let hex = snapshot.len() <= 16 && snapshot.chars().all(|c| c.is_ascii_hexdigit());
                Some(Cursor {
                    offset: offset.parse().ok()?,
                    snapshot: hex.then(|| snapshot.to_string())?,
                })
            });
        match fw1 {
            Some(c) => Ok(c),
            None => Ok(Cursor {
                offset: decode_offset(arg, s)?,
                snapshot: String::new(),
            }),
        }
    }
}

/// The tool.
pub fn tool() -> ToolDef {
    ToolDef::typed(
        Meta {
            name: "get_iptables_rules",
            title: "iptables rules",
            description: "A node's iptables table with counters and backend; warns if both hold rules.",
            toolset: Toolset::Node,
            hints: Hints::READ,
        },
        run,
    )
}

fn backend(b: i32) -> String {
    enum_name(
        pb::FirewallBackend::try_from(b)
            .unwrap_or_default()
            .as_str_name(),
        "FIREWALL_BACKEND_",
    )
}

async fn run(ctx: Arc<ToolContext>, a: Args, _call: Call) -> Result<Rules, ToolError> {
    let limit = a.limit.get() as usize;
    let cursor = Cursor::decode("cursor", a.cursor.as_deref())?;
    let offset = cursor.offset;
    let agent = node_agent(&ctx, "node", &a.node).await?;
    // The agent pages, from one read while the ruleset is unchanged: a page
    // costs its rules, not the table.
    let req = pb::GetFirewallRequest {
        ipv6: a.ipv6,
        table: a.table.unwrap_or(Table::Filter).as_str().to_string(),
        chain: a.chain.map(Text::into_string).unwrap_or_default(),
        offset: offset as u32,
        limit: limit as u32,
        snapshot: cursor.snapshot.clone(),
    };
    let fw = on_node(
        agent,
        ctx.settings.agent_deadline.max(Duration::from_secs(10)),
        &[("table", "table"), ("chain", "chain")],
        |a| async move { a.client().get_firewall(req).await.map(|r| r.into_inner()) },
    )
    .await?;
    // An agent from before agent-side paging sends every rule and no
    // counts: page here, as then, rather than lose the rest of the table.
    let whole_table = fw.chains.iter().all(|c| c.rule_count == 0);
    let count = |c: &pb::Chain| {
        if whole_table {
            c.rules.len()
        } else {
            c.rule_count as usize
        }
    };
    let total: usize = fw.chains.iter().map(count).sum();
    let rules: Vec<RuleRow> = fw
        .chains
        .iter()
        .flat_map(|c| &c.rules)
        .skip(if whole_table { offset } else { 0 })
        .take(limit)
        .map(|r| RuleRow {
            chain: r.chain.clone(),
            position: r.position,
            text: r.text.clone(),
            target: r.target.clone(),
            goto: r.is_goto,
            comment: r.comment.clone(),
            packets: r.packets,
            bytes: r.bytes,
            partly_decoded: r.partly_decoded,
        })
        .collect();
    let next = offset + rules.len();
    // A later page of the read the first page came from repeats its chains
    // (thousands on a kube-proxy node, a third of a page's JSON): left out.
    // A page read anew, or after an offset-only cursor, lists them.
    let same_read =
        !cursor.snapshot.is_empty() && fw.snapshot == cursor.snapshot && !fw.snapshot_replaced;
    Ok(Rules {
        node: a.node.as_str().to_string(),
        family: if a.ipv6 { "ipv6" } else { "ipv4" }.into(),
        table: fw.table,
        backend: backend(fw.backend),
        backends_with_rules: fw.backends_with_rules.iter().map(|b| backend(*b)).collect(),
        warning: fw.warning,
        method: fw.method,
        partly_decoded_rules: fw.partly_decoded_rules,
        notes: fw.notes,
        chains: (!same_read).then(|| {
            fw.chains
                .iter()
                .map(|c| ChainRow {
                    name: c.name.clone(),
                    policy: c.policy.clone(),
                    builtin: c.builtin,
                    packets: c.packets,
                    bytes: c.bytes,
                    rules: count(c),
                })
                .collect()
        }),
        other_backend_rules: fw
            .other_backend_chains
            .iter()
            .flat_map(|c| &c.rules)
            .map(|r| r.text.clone())
            .take(limit)
            .collect(),
        returned: rules.len(),
        rules,
        offset,
        total,
        next_cursor: (next < total).then(|| {
            Cursor {
                offset: next,
                snapshot: fw.snapshot.clone(),
            }
            .encode()
        }),
        counters_age_ms: fw.snapshot_age_ms,
        ruleset_changed: fw.snapshot_replaced,
    })
}

impl Render for Rules {
    fn text(&self) -> String {
        let mut out = format!(
            "node {} {} table {} — backend {} ({}), rules {}-{} of {}\n",
            self.node,
            self.family,
            self.table,
            self.backend,
            self.method,
            self.offset + usize::from(self.returned > 0),
            self.offset + self.returned,
            self.total
        );
        if !self.warning.is_empty() {
            out.push_str(&format!("WARNING: {}\n", self.warning));
        }
        if self.partly_decoded_rules > 0 {
            out.push_str(&format!(
                "NOTE: {} rule(s) only partly decoded: their unknown part is shown as [unsupported …]\n",
                self.partly_decoded_rules
            ));
        }
        for n in &self.notes {
            out.push_str(&format!("NOTE: {n}\n"));
        }
        if self.counters_age_ms >= 1000 {
            out.push_str(&format!(
                "counters as of the first page's read, {:.1} s ago\n",
                self.counters_age_ms as f64 / 1000.0
            ));
        }
        if self.ruleset_changed {
            out.push_str(
                "NOTE: the ruleset changed since the previous page; this page is from a new read, rules may have shifted\n",
            );
        }
        if self.chains.is_none() {
            out.push_str("chains: as on the first page (the same read)\n");
        }
        for c in self.chains.iter().flatten() {
            if c.builtin {
                out.push_str(&format!(
                    "chain {} policy {} [{} pkts, {} bytes], {} rules\n",
                    c.name, c.policy, c.packets, c.bytes, c.rules
                ));
            } else {
                out.push_str(&format!("chain {}: {} rules\n", c.name, c.rules));
            }
        }
        self.push_rules(&mut out);
        if !self.other_backend_rules.is_empty() {
            out.push_str(&format!(
                "the other backend holds {} rule(s), e.g. {}\n",
                self.other_backend_rules.len(),
                self.other_backend_rules[0]
            ));
        }
        if let Some(c) = &self.next_cursor {
            out.push_str(&format!("more: cursor={c}\n"));
        }
        out
    }

    fn continued_text(&self) -> String {
        let mut out = String::new();
        if self.ruleset_changed {
            out.push_str(
                "NOTE: the ruleset changed since the previous page; this page is from a new read, rules may have shifted\n",
            );
        }
        self.push_rules(&mut out);
        out
    }

    fn next_cursor(&self) -> Option<&str> {
        self.next_cursor.as_deref()
    }
}

impl Rules {
    /// `[packets:bytes] rule`, one per line, as `iptables-save -c` prints.
    fn push_rules(&self, out: &mut String) {
        use std::fmt::Write;
        out.reserve(self.rules.iter().map(|r| r.text.len() + 16).sum());
        for r in &self.rules {
            let _ = writeln!(out, "[{}:{}] {}", r.packets, r.bytes, r.text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_carry_the_read_and_old_ones_still_work() {
        let c = Cursor {
            offset: 400,
            snapshot: "9f2c".into(),
        };
        assert_eq!(Cursor::decode("cursor", Some(&c.encode())).unwrap(), c);
        let old = super::super::encode_offset(7);
        assert_eq!(
            Cursor::decode("cursor", Some(&old)).unwrap(),
            Cursor {
                offset: 7,
                snapshot: String::new()
            }
        );
        let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("fw1:1:not hex");
        assert!(Cursor::decode("cursor", Some(&forged)).is_err());
        assert!(Cursor::decode("cursor", Some("garbage")).is_err());
    }
}
