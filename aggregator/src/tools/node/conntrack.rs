//! `get_conntrack_entries`: connection-tracking entries of a node, filtered
//! in the agent while the kernel table streams, with the table's fill level.

use std::sync::Arc;
use std::time::Duration;

use labscope_proto::v1 as pb;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio_stream::StreamExt;

use super::{ip_string, node_agent, on_node};
use crate::tools::args::{Int, Range, Text, blank_as_none};
use crate::tools::{Call, Hints, Meta, Render, ToolContext, ToolDef, ToolError, Toolset};

/// Arguments (the predecessor's `node`, `filter`, `limit`, and more).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Node name.
    pub node: Text,
    /// IP or CIDR on either side, either direction.
    #[serde(default, deserialize_with = "blank_as_none")]
    pub filter: Option<Text>,
    /// Entries per page.
    #[serde(default)]
    pub limit: Int<1, 1000, 50>,
    /// tcp, udp, icmp, … or a number.
    #[serde(default, deserialize_with = "blank_as_none")]
    pub protocol: Option<Text>,
    /// Port on either side.
    #[serde(default, deserialize_with = "blank_as_none")]
    pub port: Option<Range<1, 65535>>,
    /// TCP state (ESTABLISHED, TIME_WAIT, …), ASSURED or UNREPLIED.
    #[serde(default, deserialize_with = "blank_as_none")]
    pub state: Option<Text>,
    /// Connection mark: VALUE or VALUE/MASK (0x hex ok).
    #[serde(default, deserialize_with = "blank_as_none")]
    pub mark: Option<Text>,
    /// nextCursor of the previous page.
    #[serde(default, deserialize_with = "blank_as_none")]
    pub cursor: Option<Text>,
    /// Exact match count (reads whole table).
    #[serde(default, rename = "countAll")]
    pub count_all: bool,
}

/// ICMP identity of a tuple.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Icmp {
    /// Type.
    #[serde(rename = "type")]
    pub icmp_type: u32,
    /// Code.
    pub code: u32,
    /// Identifier.
    pub id: u32,
}

/// One direction of a connection.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Tuple {
    /// Source address.
    pub src: String,
    /// Destination address.
    pub dst: String,
    /// Source port (TCP, UDP, SCTP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sport: Option<u32>,
    /// Destination port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dport: Option<u32>,
    /// ICMP type, code and id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmp: Option<Icmp>,
}

/// NAT seen on the connection.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Nat {
    /// Source NAT.
    pub src: bool,
    /// Destination NAT.
    pub dst: bool,
}

/// Packets and bytes of one direction.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Counter {
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

/// Both directions' counters (with nf_conntrack_acct on).
#[derive(Debug, Serialize, JsonSchema)]
pub struct Counters {
    /// Original direction.
    pub original: Counter,
    /// Reply direction.
    pub reply: Counter,
}

/// One entry.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// tcp, udp, icmp, …
    pub protocol: String,
    /// TCP state (empty for other protocols).
    pub state: &'static str,
    /// Original direction.
    pub original: Tuple,
    /// Reply direction.
    pub reply: Tuple,
    /// IPS_* flags, and UNREPLIED.
    pub status: Vec<&'static str>,
    /// NAT seen.
    pub nat: Nat,
    /// Connection mark.
    pub mark: u32,
    /// Zone.
    pub zone: u32,
    /// Seconds until it expires.
    pub timeout_seconds: u32,
    /// Kernel id.
    pub id: u32,
    /// Counters, when accounting is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counters: Option<Counters>,
}

/// One page of the table.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Entries {
    /// Node.
    pub node: String,
    /// This page.
    pub entries: Vec<Entry>,
    /// Entries that matched the filters (without filters: the kernel's count).
    pub matched: u64,
    /// `matched` counts only what was read (filters given, countAll off).
    pub matched_is_lower_bound: bool,
    /// Entries in this page.
    pub returned: u64,
    /// Entries in the kernel's table.
    pub table_count: u64,
    /// nf_conntrack_max.
    pub table_max: u64,
    /// table_count / table_max.
    pub usage_percent: f64,
    /// More matched than this page holds.
    pub truncated: bool,
    /// Pass as `cursor` for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// nf_conntrack_acct is on (counters present).
    pub accounting: bool,
}

/// The tool.
pub fn tool() -> ToolDef {
    ToolDef::typed(
        Meta {
            name: "get_conntrack_entries",
            title: "Conntrack entries",
            description: "A node's conntrack entries, filtered, and how full the table is.",
            toolset: Toolset::Node,
            hints: Hints::READ,
        },
        run,
    )
}

fn tuple(t: Option<pb::ConntrackTuple>) -> Tuple {
    let t = t.unwrap_or_default();
    let icmp = t.has_icmp;
    Tuple {
        src: ip_string(t.source),
        dst: ip_string(t.destination),
        sport: (!icmp).then_some(t.source_port),
        dport: (!icmp).then_some(t.destination_port),
        icmp: icmp.then_some(Icmp {
            icmp_type: t.icmp_type,
            code: t.icmp_code,
            id: t.icmp_id,
        }),
    }
}

async fn run(ctx: Arc<ToolContext>, a: Args, _call: Call) -> Result<Entries, ToolError> {
    let req = pb::ListConntrackRequest {
        address: a.filter.map(Text::into_string).unwrap_or_default(),
        protocol: a.protocol.map(Text::into_string).unwrap_or_default(),
        port: a.port.map(|p| p.get() as u32).unwrap_or(0),
        state: a.state.map(Text::into_string).unwrap_or_default(),
        limit: a.limit.get() as u32,
        continuation_token: a.cursor.map(Text::into_string).unwrap_or_default(),
        ip_version: 0,
        // The page costs a page, and the next one continues the same dump.
        stop_at_limit: !a.count_all,
        mark: a.mark.map(Text::into_string).unwrap_or_default(),
    };
    let agent = node_agent(&ctx, "node", &a.node).await?;
    let (entries, summary) = on_node(
        agent,
        ctx.settings.agent_deadline.max(Duration::from_secs(10)),
        &[
            ("address", "filter"),
            ("protocol", "protocol"),
            ("port", "port"),
            ("state", "state"),
            ("mark", "mark"),
            ("continuation_token", "cursor"),
            ("limit", "limit"),
        ],
        |a| async move {
            let mut stream = a.client().list_conntrack(req).await?.into_inner();
            let mut entries = Vec::new();
            let mut summary = None;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                entries.extend(chunk.entries);
                if chunk.summary.is_some() {
                    summary = chunk.summary;
                }
            }
            let summary = summary.ok_or_else(|| {
                tonic::Status::internal("conntrack stream ended without a summary")
            })?;
            Ok((entries, summary))
        },
    )
    .await?;
    // Moved out of the answer, not copied: a full read renders 50,000.
    let entries = entries
        .into_iter()
        .map(|mut e| Entry {
            protocol: e
                .original
                .as_mut()
                .map(|o| std::mem::take(&mut o.protocol_name))
                .unwrap_or_default(),
            state: if e.tcp_state != 0 {
                let name = pb::ConntrackState::try_from(e.tcp_state)
                    .unwrap_or_default()
                    .as_str_name();
                name.strip_prefix("CONNTRACK_STATE_").unwrap_or(name)
            } else {
                ""
            },
            original: tuple(e.original.take()),
            reply: tuple(e.reply.take()),
            status: labscope_proto::text::conntrack_status(e.status_bits),
            nat: Nat {
                src: e.src_nat,
                dst: e.dst_nat,
            },
            mark: e.mark,
            zone: e.zone,
            timeout_seconds: e.timeout_seconds,
            id: e.id,
            counters: match (&e.original_counters, &e.reply_counters) {
                (Some(o), Some(r)) => Some(Counters {
                    original: Counter {
                        packets: o.packets,
                        bytes: o.bytes,
                    },
                    reply: Counter {
                        packets: r.packets,
                        bytes: r.bytes,
                    },
                }),
                _ => None,
            },
        })
        .collect();
    Ok(Entries {
        node: a.node.as_str().to_string(),
        entries,
        matched: summary.matched,
        matched_is_lower_bound: summary.matched_is_lower_bound,
        returned: summary.returned,
        table_count: summary.table_count,
        table_max: summary.table_max,
        usage_percent: (summary.usage_percent * 10.0).round() / 10.0,
        truncated: summary.truncated,
        next_cursor: (!summary.next_token.is_empty()).then_some(summary.next_token),
        accounting: summary.accounting_enabled,
    })
}

fn push_tuple(out: &mut String, t: &Tuple) {
    use std::fmt::Write;
    let _ = match &t.icmp {
        Some(i) => write!(
            out,
            "{} > {} type {} code {} id {}",
            t.src, t.dst, i.icmp_type, i.code, i.id
        ),
        None => write!(
            out,
            "{}:{} > {}:{}",
            t.src,
            t.sport.unwrap_or(0),
            t.dst,
            t.dport.unwrap_or(0)
        ),
    };
}

impl Entries {
    /// One line per entry, written straight into `out` (a page of 1,000
    /// is rendered for every page of a full read).
    fn push_entries(&self, out: &mut String) {
        use std::fmt::Write;
        for e in &self.entries {
            out.push_str(&e.protocol);
            out.push(' ');
            out.push_str(e.state);
            out.push(' ');
            push_tuple(out, &e.original);
            out.push_str(" | reply ");
            push_tuple(out, &e.reply);
            out.push(' ');
            let mut first = true;
            for flag in e
                .status
                .iter()
                .filter(|x| **x == "ASSURED" || **x == "UNREPLIED")
            {
                if !first {
                    out.push(',');
                }
                out.push_str(flag);
                first = false;
            }
            if e.nat.dst {
                out.push_str(" DNAT");
            }
            if e.nat.src {
                out.push_str(" SNAT");
            }
            if e.mark != 0 {
                let _ = write!(out, " mark {}", e.mark);
            }
            if let Some(c) = &e.counters {
                let _ = write!(
                    out,
                    " [{}p/{}B ↔ {}p/{}B]",
                    c.original.packets, c.original.bytes, c.reply.packets, c.reply.bytes
                );
            }
            let _ = writeln!(out, " {}s", e.timeout_seconds);
        }
    }
}

impl Render for Entries {
    fn text(&self) -> String {
        let mut out = format!(
            "node {}: {} of {}{} matching entries; table {}/{} ({}%)\n",
            self.node,
            self.returned,
            if self.matched_is_lower_bound {
                "at least "
            } else {
                ""
            },
            self.matched,
            self.table_count,
            self.table_max,
            self.usage_percent
        );
        out.reserve(self.entries.len() * 96);
        self.push_entries(&mut out);
        if let Some(c) = &self.next_cursor {
            out.push_str(&format!("more: cursor={c}\n"));
        }
        out
    }

    fn continued_text(&self) -> String {
        let mut out = String::with_capacity(self.entries.len() * 96);
        self.push_entries(&mut out);
        out
    }

    fn next_cursor(&self) -> Option<&str> {
        self.next_cursor.as_deref()
    }
}
