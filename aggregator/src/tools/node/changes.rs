//! `what_changed`: what changed on the nodes — links, addresses, routes,
//! rules, gateway neighbours, the nf_tables ruleset, conntrack pressure —
//! from each agent's history, merged by time; without a node, also what
//! Flux applied and the Warning events of the same window, so that "what
//! changed in the last hour" is one call.

use std::sync::Arc;
use std::time::Duration;

use labscope_proto::v1 as pb;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{node_agent, on_node};
use crate::agents::{NodeOutcome, fan_out_with_deadline};
use crate::choice;
use crate::cluster::time::{now, parse_rfc3339, rfc3339};
use crate::tools::args::{Int, Text, blank_as_none, list_of};
use crate::tools::{Call, Hints, Meta, Render, ToolContext, ToolDef, ToolError, Toolset};

choice! {
    /// A kind of change.
    pub enum Kind {
        /// Interfaces: added, removed, MTU, up/down, carrier, master.
        Link = "link",
        /// Addresses added or removed.
        Address = "address",
        /// Routes of every table.
        Route = "route",
        /// Policy rules.
        Rule = "rule",
        /// Gateway neighbours (ARP/NDP state).
        Neighbour = "neighbour",
        /// nf_tables tables, chains and rules.
        Firewall = "firewall",
        /// Conntrack use crossing 50/80/95 %.
        Conntrack = "conntrack",
        /// What Flux applied (cluster-wide calls).
        Flux = "flux",
        /// Warning events (cluster-wide calls).
        Event = "event",
    }
}

/// Arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Only this node (default: every node, plus Flux and Warning events).
    #[serde(default, deserialize_with = "blank_as_none")]
    pub node: Option<Text>,
    /// How far back: 30s, 10m, 2h, 1d, or an RFC 3339 time.
    #[serde(default, deserialize_with = "blank_as_none")]
    #[schemars(extend("default" = "1h"))]
    pub since: Option<Text>,
    /// Only these kinds (default: all).
    #[serde(default, deserialize_with = "list_of")]
    pub kinds: Vec<Kind>,
    /// Most changes, the newest.
    #[serde(default)]
    pub limit: Int<1, 2000, 200>,
}

/// One change.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ChangeRow {
    /// When (RFC 3339, UTC, milliseconds).
    pub at: String,
    /// Node ("" for cluster-wide entries).
    pub node: String,
    /// link, address, route, rule, neighbour, firewall, conntrack, flux,
    /// event, history.
    pub kind: String,
    /// added, removed or changed.
    pub action: String,
    /// What changed.
    pub object: String,
    /// Before (for changes and removals).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub before: String,
    /// After (for changes and additions).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub after: String,
    #[serde(skip)]
    at_ms: i64,
}

/// One node's history, as far as this answer goes.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeHistory {
    /// Node.
    pub node: String,
    /// ok, or why the node did not answer.
    pub status: String,
    /// Since when the agent watches (its start): nothing earlier is known.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub watching_since: String,
    /// Changes dropped to stay within the budget, up to this time.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub complete_after: String,
    /// Changes dropped.
    pub dropped: u64,
    /// History memory used and budget, bytes.
    pub used_bytes: u64,
    /// Budget.
    pub budget_bytes: u64,
    /// What its history does not see.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The answer.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Changes {
    /// Start of the window.
    pub since: String,
    /// Changes, oldest first.
    pub changes: Vec<ChangeRow>,
    /// Changes left out by `limit` (the oldest).
    pub omitted: usize,
    /// Each node asked.
    pub nodes: Vec<NodeHistory>,
    /// What the cluster part could not read.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The tool.
pub fn tool() -> ToolDef {
    ToolDef::typed(
        Meta {
            name: "what_changed",
            title: "What changed",
            description: "Network changes on the nodes (routes, rules, links, addresses, firewall, conntrack) and Flux/Warning events, by time.",
            toolset: Toolset::Node,
            hints: Hints::READ,
        },
        run,
    )
}

/// Seconds back of "30s", "10m", "2h", "1d".
fn relative(s: &str) -> Option<i64> {
    // By unit suffix, never by byte position: the argument may end in
    // any character.
    let (n, mult) = [("s", 1), ("m", 60), ("h", 3600), ("d", 86_400)]
        .into_iter()
        .find_map(|(unit, mult)| s.strip_suffix(unit).map(|n| (n, mult)))?;
    let n: i64 = n.parse().ok().filter(|n| *n > 0)?;
    n.checked_mul(mult).filter(|s| *s <= 30 * 86_400)
}

/// The window's start in Unix seconds for a clock whose now is `now_s`.
fn window_start(since: Option<&str>, now_s: i64) -> Result<i64, ToolError> {
    let s = since.unwrap_or("1h").trim();
    if let Some(back) = relative(s) {
        return Ok(now_s - back);
    }
    parse_rfc3339(s).ok_or_else(|| {
        ToolError::invalid(
            "since",
            format!(
                "{s:?} is neither a duration (30s, 10m, 2h, 1d; at most 30d) nor an RFC 3339 time"
            ),
        )
    })
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn ms_text(ms: i64) -> String {
    let base = rfc3339(ms.div_euclid(1000));
    match base.strip_suffix('Z') {
        Some(b) => format!("{b}.{:03}Z", ms.rem_euclid(1000)),
        None => base,
    }
}

fn rows_of(node: &str, h: &pb::ChangeHistory) -> Vec<ChangeRow> {
    h.changes
        .iter()
        .map(|c| ChangeRow {
            at: ms_text(c.at_unix_ms as i64),
            node: node.to_string(),
            kind: c.kind.clone(),
            action: c.action.clone(),
            object: c.object.clone(),
            before: c.before.clone(),
            after: c.after.clone(),
            at_ms: c.at_unix_ms as i64,
        })
        .collect()
}

fn node_status(node: &str, h: &pb::ChangeHistory) -> NodeHistory {
    NodeHistory {
        node: node.to_string(),
        status: if h.enabled {
            "ok".into()
        } else {
            "no history".into()
        },
        watching_since: if h.baseline_unix_ms > 0 {
            ms_text(h.baseline_unix_ms as i64)
        } else {
            String::new()
        },
        complete_after: if h.dropped > 0 {
            ms_text(h.dropped_until_unix_ms as i64)
        } else {
            String::new()
        },
        dropped: h.dropped,
        used_bytes: h.used_bytes,
        budget_bytes: h.budget_bytes,
        notes: h.notes.clone(),
    }
}

async fn run(ctx: Arc<ToolContext>, a: Args, call: Call) -> Result<Changes, ToolError> {
    let wall_start_s = window_start(a.since.as_deref(), wall_ms() / 1000)?;
    let want = |k: Kind| a.kinds.is_empty() || a.kinds.contains(&k);
    let node_kinds: Vec<String> = a
        .kinds
        .iter()
        .filter(|k| !matches!(k, Kind::Flux | Kind::Event))
        .map(|k| k.as_str().to_string())
        .collect();
    let only_cluster = !a.kinds.is_empty() && node_kinds.is_empty();
    let req = pb::ListChangesRequest {
        since_unix_ms: (wall_start_s.max(0) as u64) * 1000,
        kinds: node_kinds,
        limit: a.limit.get() as u32,
    };
    let mut rows = Vec::new();
    let mut nodes = Vec::new();
    let mut notes = Vec::new();
    // Changes each agent left out by the limit (its oldest).
    let mut agent_omitted = 0;
    let deadline = ctx.settings.agent_deadline.max(Duration::from_secs(5));
    if let Some(node) = &a.node {
        let agent = node_agent(&ctx, "node", node.as_str()).await?;
        let h = on_node(agent, deadline, &[("kinds", "kinds")], |ag| async move {
            ag.client().list_changes(req).await.map(|r| r.into_inner())
        })
        .await?;
        rows.extend(rows_of(node.as_str(), &h));
        agent_omitted += h.omitted as usize;
        nodes.push(node_status(node.as_str(), &h));
    } else {
        let agents = if only_cluster {
            Vec::new()
        } else {
            ctx.pool.all()
        };
        let what = format!("asking {} agent(s) for their history", agents.len());
        let fanout =
            fan_out_with_deadline(agents, deadline, ctx.settings.fanout_concurrency, |ag| {
                let req = req.clone();
                async move { ag.client().list_changes(req).await.map(|r| r.into_inner()) }
            });
        let cluster = cluster_changes(
            &ctx,
            a.since.as_deref(),
            want(Kind::Flux),
            want(Kind::Event),
        );
        let (results, cluster) = call
            .ticking(&what, deadline, async { tokio::join!(fanout, cluster) })
            .await;
        for r in results {
            match (&r.outcome, &r.value) {
                (NodeOutcome::Ok, Some(h)) => {
                    agent_omitted += h.omitted as usize;
                    rows.extend(rows_of(&r.node, h));
                    nodes.push(node_status(&r.node, h));
                }
                _ => nodes.push(NodeHistory {
                    node: r.node.clone(),
                    status: format!(
                        "{}: {}",
                        match r.outcome {
                            NodeOutcome::Ok => "ok",
                            NodeOutcome::Unavailable => "unavailable",
                            NodeOutcome::Timeout => "timeout",
                            NodeOutcome::Error => "error",
                        },
                        r.reason
                    ),
                    watching_since: String::new(),
                    complete_after: String::new(),
                    dropped: 0,
                    used_bytes: 0,
                    budget_bytes: 0,
                    notes: Vec::new(),
                }),
            }
        }
        let (cluster_rows, cluster_notes) = cluster;
        rows.extend(cluster_rows);
        notes.extend(cluster_notes);
    }
    if a.node.is_none() && !only_cluster && ctx.pool.all().is_empty() {
        notes.push(format!(
            "node changes are unknown: {}",
            super::with_agents(&ctx)
        ));
    }
    rows.sort_by_key(|r| r.at_ms);
    let limit = a.limit.get() as usize;
    let dropped_here = rows.len().saturating_sub(limit);
    rows.drain(..dropped_here);
    let omitted = dropped_here + agent_omitted;
    // The window in the clock the cluster part used (the wall clock
    // unless fixed, as in fixtures).
    let since = match ctx.settings.now {
        Some(fixed) => window_start(a.since.as_deref(), fixed)?,
        None => wall_start_s,
    };
    Ok(Changes {
        since: rfc3339(since),
        changes: rows,
        omitted,
        nodes,
        notes,
    })
}

/// Flux objects whose Ready changed in the window (with the revision they
/// stand at), what the Flux controllers reported applying, and Warning
/// events — in the cluster's clock.
async fn cluster_changes(
    ctx: &ToolContext,
    since: Option<&str>,
    flux: bool,
    events: bool,
) -> (Vec<ChangeRow>, Vec<String>) {
    let Some(c) = &ctx.cluster else {
        return (Vec::new(), Vec::new());
    };
    let now_s = now(ctx.settings.now);
    let Ok(start) = window_start(since, now_s) else {
        return (Vec::new(), Vec::new());
    };
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let row =
        |at_s: i64, kind: &str, action: &str, object: String, before: String, after: String| {
            ChangeRow {
                at: rfc3339(at_s),
                node: String::new(),
                kind: kind.into(),
                action: action.into(),
                object,
                before,
                after,
                at_ms: at_s * 1000,
            }
        };
    if flux {
        let read = crate::tools::flux::read(c, &[], None, now_s).await;
        for f in &read.failed {
            notes.push(format!("Flux {}: {}", f.part, f.message));
        }
        for r in &read.rows {
            let o = &r.object;
            if !matches!(o.kind.as_str(), "Kustomization" | "HelmRelease") {
                continue;
            }
            if let Some(t) = r.since_s.filter(|t| *t >= start) {
                rows.push(row(
                    t,
                    "flux",
                    "changed",
                    format!("{}/{}/{}", o.kind, o.namespace, o.name),
                    String::new(),
                    format!(
                        "Ready {} ({}){}",
                        if o.ready { "True" } else { "False" },
                        o.reason,
                        o.applied_revision
                            .as_ref()
                            .map(|rev| format!(", applied {rev}"))
                            .unwrap_or_default()
                    ),
                ));
            }
        }
    }
    let minutes = ((now_s - start) / 60).clamp(1, 43_200);
    let all = crate::tools::events::read(
        c,
        None,
        crate::tools::events::EventType::All,
        minutes,
        None,
        2000,
        now_s,
    )
    .await;
    match all {
        Ok(ev) => {
            for e in ev.events {
                let at = parse_rfc3339(&e.last_seen).unwrap_or(now_s);
                if at < start {
                    continue;
                }
                let applied = e.event_type == "Normal" && flux_applied(&e.object, &e.reason);
                if e.event_type == "Warning" && events {
                    rows.push(row(
                        at,
                        "event",
                        "added",
                        format!("{}/{} {}", e.namespace, e.object, e.reason),
                        String::new(),
                        format!("{} (×{})", e.message, e.count),
                    ));
                } else if applied && flux {
                    rows.push(row(
                        at,
                        "flux",
                        "changed",
                        format!("{}/{}", e.namespace, e.object),
                        String::new(),
                        format!("{}: {}", e.reason, e.message),
                    ));
                }
            }
        }
        Err(e) => notes.push(format!("events could not be read: {e}")),
    }
    (rows, notes)
}

/// A Normal event of a Flux controller that says it changed something.
fn flux_applied(object: &str, reason: &str) -> bool {
    let kind = object.split('/').next().unwrap_or_default();
    matches!(kind, "Kustomization" | "HelmRelease")
        && matches!(
            reason,
            "Progressing"
                | "InstallSucceeded"
                | "UpgradeSucceeded"
                | "RollbackSucceeded"
                | "UninstallSucceeded"
        )
}

impl Render for Changes {
    fn text(&self) -> String {
        use std::fmt::Write;
        let mut out = format!("changes since {}: {}", self.since, self.changes.len());
        if self.omitted > 0 {
            let _ = write!(out, " (the {} oldest left out by limit)", self.omitted);
        }
        out.push('\n');
        for n in &self.nodes {
            let _ = write!(out, "  node {}: {}", n.node, n.status);
            if !n.watching_since.is_empty() {
                let _ = write!(out, ", watching since {}", n.watching_since);
            }
            if n.dropped > 0 {
                let _ = write!(
                    out,
                    ", {} older change(s) dropped (complete after {})",
                    n.dropped, n.complete_after
                );
            }
            out.push('\n');
            for note in &n.notes {
                let _ = writeln!(out, "    NOTE: {note}");
            }
        }
        for note in &self.notes {
            let _ = writeln!(out, "  NOTE: {note}");
        }
        for c in &self.changes {
            let who = if c.node.is_empty() {
                "cluster"
            } else {
                c.node.as_str()
            };
            let _ = writeln!(out, "{} {who} {} {} {}", c.at, c.kind, c.action, c.object);
            for (sign, text) in [("was", &c.before), ("now", &c.after)] {
                for line in text.lines().filter(|l| !l.is_empty()) {
                    let _ = writeln!(out, "    {sign}: {line}");
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_durations_or_times() {
        assert_eq!(window_start(Some("10m"), 10_000).unwrap(), 9_400);
        assert_eq!(window_start(Some("2h"), 10_000).unwrap(), 2_800);
        assert_eq!(window_start(None, 10_000).unwrap(), 6_400);
        assert_eq!(
            window_start(Some("2026-12-07T10:00:00Z"), 0).unwrap(),
            parse_rfc3339("2026-12-07T10:00:00Z").unwrap()
        );
        assert!(window_start(Some("yesterday"), 0).is_err());
        assert!(window_start(Some("0m"), 0).is_err());
        assert!(window_start(Some("31d"), 0).is_err());
        for odd in ["5分", "10µ", "é", "", "m", "-5m"] {
            assert!(window_start(Some(odd), 0).is_err(), "{odd}");
        }
    }

    #[test]
    fn flux_events_that_apply_are_told_apart() {
        assert!(flux_applied("Kustomization/apps", "Progressing"));
        assert!(flux_applied("HelmRelease/immich", "UpgradeSucceeded"));
        assert!(!flux_applied(
            "HelmRelease/immich",
            "ReconciliationSucceeded"
        ));
        assert!(!flux_applied("Pod/x", "Progressing"));
    }
}
