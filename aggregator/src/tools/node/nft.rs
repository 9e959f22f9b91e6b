//! `get_nft_ruleset`: a node's nf_tables tables as `nft list ruleset`
//! shows them — nftables' own, kube-proxy's nftables mode, Tailscale's and
//! firewalld's, iptables-nft's marked as such — with each rule's counter
//! apart and the rules paged.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use labscope_proto::v1 as pb;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{node_agent, on_node};
use crate::choice;
use crate::tools::args::{Int, Text, blank_as_none};
use crate::tools::{Call, Hints, Meta, Render, ToolContext, ToolDef, ToolError, Toolset};

choice! {
    /// An nf_tables family.
    pub enum Family {
        /// ip (IPv4).
        Ip = "ip",
        /// ip6.
        Ip6 = "ip6",
        /// inet (both).
        Inet = "inet",
        /// arp.
        Arp = "arp",
        /// bridge.
        Bridge = "bridge",
        /// netdev (ingress/egress of devices).
        Netdev = "netdev",
    }
}

/// Arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Node name.
    pub node: Text,
    /// Only this family (every family by default).
    #[serde(default, deserialize_with = "blank_as_none")]
    pub family: Option<Family>,
    /// Only this table.
    #[serde(default, deserialize_with = "blank_as_none")]
    pub table: Option<Text>,
    /// Rules per page.
    #[serde(default)]
    pub limit: Int<1, 2000, 300>,
    /// nextCursor of the previous page.
    #[serde(default, deserialize_with = "blank_as_none")]
    pub cursor: Option<Text>,
}

/// A named set or map.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SetRow {
    /// Name.
    pub name: String,
    /// A map (`type K : V`).
    pub map: bool,
    /// Type as nft writes it.
    #[serde(rename = "type")]
    pub set_type: String,
    /// Flags (interval, timeout, …).
    pub flags: Vec<String>,
    /// Elements.
    pub elements: u32,
}

/// A chain.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChainRow {
    /// Name.
    pub name: String,
    /// `type filter hook input priority filter; policy accept;` for a base
    /// chain, "" for a regular one.
    pub hook: String,
    /// Rules in it.
    pub rules: u32,
}

/// A table.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TableRow {
    /// Family.
    pub family: String,
    /// Name.
    pub name: String,
    /// Made by iptables-nft: get_iptables_rules shows it as iptables text.
    pub iptables_compat: bool,
    /// Its comment.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub comment: String,
    /// Named sets and maps.
    pub sets: Vec<SetRow>,
    /// Chains.
    pub chains: Vec<ChainRow>,
}

/// A rule.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuleRow {
    /// `family table`.
    pub table: String,
    /// Chain.
    pub chain: String,
    /// 1-based position in the chain.
    pub position: u32,
    /// Kernel handle (`nft -a`).
    pub handle: u64,
    /// As `nft list` prints it, without the counter and the handle.
    pub text: String,
    /// Counter packets (absent: the rule does not count).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packets: Option<u64>,
    /// Counter bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Some part shows as `[unsupported …]`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub partly_decoded: bool,
}

/// One page of the ruleset.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Ruleset {
    /// Node.
    pub node: String,
    /// nf_tables is there (false: nothing to list).
    pub nf_tables: bool,
    /// Generation it was read at.
    pub generation: u32,
    /// How it was read.
    pub method: String,
    /// Tables with their sets and chains (all of them, every page).
    pub tables: Vec<TableRow>,
    /// This page's rules, over tables and chains in order.
    pub rules: Vec<RuleRow>,
    /// Index of the first rule of the page.
    pub offset: usize,
    /// Rules in this page.
    pub returned: usize,
    /// Rules in the tables read.
    pub total: usize,
    /// Rules shown with an `[unsupported …]` part.
    pub partly_decoded_rules: u32,
    /// The ruleset changed since the previous page: rules may have shifted.
    pub ruleset_changed: bool,
    /// Pass as `cursor` for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Where the next page starts and the generation it was read at.
#[derive(Debug, PartialEq, Eq)]
struct Cursor {
    offset: usize,
    generation: u32,
}

impl Cursor {
    fn encode(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!("nft1:{}:{}", self.offset, self.generation))
    }

    fn decode(arg: &str, s: Option<&str>) -> Result<Cursor, ToolError> {
        let Some(text) = s else {
            return Ok(Cursor {
                offset: 0,
                generation: 0,
            });
        };
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text.as_bytes())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|t| {
                let (offset, generation) = t.strip_prefix("nft1:")?.split_once(':')?;
                Some(Cursor {
                    offset: offset.parse().ok()?,
                    generation: generation.parse().ok()?,
                })
            })
            .ok_or_else(|| ToolError::invalid(arg, "not a cursor this tool returned"))
    }
}

/// The tool.
pub fn tool() -> ToolDef {
    ToolDef::typed(
        Meta {
            name: "get_nft_ruleset",
            title: "nftables ruleset",
            description: "A node's nf_tables tables (kube-proxy nftables mode too) as `nft list ruleset` shows them, with counters.",
            toolset: Toolset::Node,
            hints: Hints::READ,
        },
        run,
    )
}

fn hook_line(c: &pb::NftChain) -> String {
    if !c.base {
        return String::new();
    }
    let dev = match c.devices.as_slice() {
        [] => String::new(),
        [d] => format!(" device \"{d}\""),
        many => format!(
            " devices = {{ {} }}",
            many.iter()
                .map(|d| format!("\"{d}\""))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    format!(
        "type {} hook {}{dev} priority {}; policy {};",
        c.r#type, c.hook, c.priority, c.policy
    )
}

async fn run(ctx: Arc<ToolContext>, a: Args, _call: Call) -> Result<Ruleset, ToolError> {
    let limit = a.limit.get() as usize;
    let cursor = Cursor::decode("cursor", a.cursor.as_deref())?;
    let agent = node_agent(&ctx, "node", &a.node).await?;
    let req = pb::GetNftRulesetRequest {
        family: a.family.map(|f| f.as_str().to_string()).unwrap_or_default(),
        table: a.table.map(Text::into_string).unwrap_or_default(),
        offset: cursor.offset as u32,
        limit: limit as u32,
        generation: cursor.generation,
    };
    let rs = on_node(
        agent,
        ctx.settings.agent_deadline.max(Duration::from_secs(10)),
        &[("family", "family"), ("table", "table")],
        |a| async move {
            a.client()
                .get_nft_ruleset(req)
                .await
                .map(|r| r.into_inner())
        },
    )
    .await?;
    let mut rules = Vec::new();
    let tables = rs
        .tables
        .into_iter()
        .map(|t| {
            let label = format!("{} {}", t.family, t.name);
            let chains = t
                .chains
                .into_iter()
                .map(|c| {
                    for r in &c.rules {
                        rules.push(RuleRow {
                            table: label.clone(),
                            chain: c.name.clone(),
                            position: r.position,
                            handle: r.handle,
                            text: r.text.clone(),
                            packets: r.has_counter.then_some(r.packets),
                            bytes: r.has_counter.then_some(r.bytes),
                            partly_decoded: r.partly_decoded,
                        });
                    }
                    ChainRow {
                        hook: hook_line(&c),
                        name: c.name,
                        rules: c.rule_count,
                    }
                })
                .collect();
            TableRow {
                family: t.family,
                name: t.name,
                iptables_compat: t.iptables_compat,
                comment: t.comment,
                sets: t
                    .sets
                    .into_iter()
                    .map(|s| SetRow {
                        name: s.name,
                        map: s.map,
                        set_type: s.r#type,
                        flags: s.flags,
                        elements: s.elements,
                    })
                    .collect(),
                chains,
            }
        })
        .collect();
    let total = rs.total_rules as usize;
    let next = cursor.offset + rules.len();
    Ok(Ruleset {
        node: a.node.as_str().to_string(),
        nf_tables: rs.nf_tables_available,
        generation: rs.generation,
        method: rs.method,
        tables,
        returned: rules.len(),
        rules,
        offset: cursor.offset,
        total,
        partly_decoded_rules: rs.partly_decoded_rules,
        ruleset_changed: rs.generation_changed,
        next_cursor: (next < total).then(|| {
            Cursor {
                offset: next,
                generation: rs.generation,
            }
            .encode()
        }),
    })
}

impl Render for Ruleset {
    fn text(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "node {} nf_tables generation {} ({}), rules {}-{} of {}",
            self.node,
            self.generation,
            self.method,
            self.offset + usize::from(self.returned > 0),
            self.offset + self.returned,
            self.total
        );
        if !self.nf_tables {
            out.push_str("this kernel has no nf_tables: nothing to list\n");
            return out;
        }
        if self.ruleset_changed {
            out.push_str(
                "NOTE: the ruleset changed since the previous page; rules may have shifted\n",
            );
        }
        if self.partly_decoded_rules > 0 {
            let _ = writeln!(
                out,
                "NOTE: {} rule(s) only partly decoded: their unknown part is shown as [unsupported …]",
                self.partly_decoded_rules
            );
        }
        for t in &self.tables {
            let label = format!("{} {}", t.family, t.name);
            if t.iptables_compat {
                let _ = writeln!(
                    out,
                    "# table {label} is iptables-nft's: get_iptables_rules shows it as iptables-save text"
                );
            }
            let _ = writeln!(out, "table {label} {{");
            if !t.comment.is_empty() {
                let _ = writeln!(out, "\tcomment \"{}\"", t.comment);
            }
            for s in &t.sets {
                let _ = writeln!(
                    out,
                    "\t{} {} {{ type {}{}; {} elements }}",
                    if s.map { "map" } else { "set" },
                    s.name,
                    s.set_type,
                    if s.flags.is_empty() {
                        String::new()
                    } else {
                        format!("; flags {}", s.flags.join(","))
                    },
                    s.elements
                );
            }
            for c in &t.chains {
                let _ = writeln!(out, "\tchain {} {{", c.name);
                if !c.hook.is_empty() {
                    let _ = writeln!(out, "\t\t{}", c.hook);
                }
                let mine: Vec<&RuleRow> = self
                    .rules
                    .iter()
                    .filter(|r| r.table == label && r.chain == c.name)
                    .collect();
                for r in &mine {
                    match (r.packets, r.bytes) {
                        (Some(p), Some(b)) => {
                            let _ = writeln!(out, "\t\t{}  # [{p}:{b}]", r.text);
                        }
                        _ => {
                            let _ = writeln!(out, "\t\t{}", r.text);
                        }
                    }
                }
                if (mine.len() as u32) < c.rules {
                    let _ = writeln!(
                        out,
                        "\t\t# {} of {} rules on this page",
                        mine.len(),
                        c.rules
                    );
                }
                out.push_str("\t}\n");
            }
            out.push_str("}\n");
        }
        if let Some(c) = &self.next_cursor {
            let _ = writeln!(out, "more: cursor={c}");
        }
        out
    }

    fn next_cursor(&self) -> Option<&str> {
        self.next_cursor.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_others() {
        let c = Cursor {
            offset: 300,
            generation: 77,
        };
        assert_eq!(Cursor::decode("cursor", Some(&c.encode())).unwrap(), c);
        assert!(Cursor::decode("cursor", Some("garbage")).is_err());
        let fw = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("fw1:1:ab");
        assert!(Cursor::decode("cursor", Some(&fw)).is_err());
    }
}
