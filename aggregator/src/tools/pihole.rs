//! Pi-hole tools beyond the status: `get_pihole_queries` (the query log,
//! filtered by Pi-hole), `get_pihole_whitelist` (the allow-list, exact and
//! regex) and `update_pihole_gravity` ✎ (rebuilds the blocklists, streaming
//! FTL's progress). Errors reach the caller — a list that could not be read
//! is never an empty list.

use std::fmt::Write as _;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::args::Int;
use super::{Call, ErrorCode, Hints, Meta, Render, ToolContext, ToolDef, ToolError, Toolset};
use crate::cluster::time::rfc3339;
use crate::services::pihole::{self, Pihole};

crate::choice! {
    /// Which Pi-hole.
    #[derive(Default)]
    pub enum Instance {
        /// `[pihole.primary]`.
        #[default]
        Primary = "primary",
        /// `[pihole.secondary]`.
        Secondary = "secondary",
    }
}

/// A Pi-hole failure as a tool error.
pub fn service_error(name: &str, e: &pihole::Error) -> ToolError {
    let code = match e {
        pihole::Error::WrongPassword => ErrorCode::Unauthenticated,
        pihole::Error::RateLimited { .. } | pihole::Error::SeatsExceeded { .. } => {
            ErrorCode::RateLimited
        }
        pihole::Error::Unreachable { .. } => ErrorCode::ServiceUnreachable,
        pihole::Error::Http { .. } | pihole::Error::BadResponse { .. } => ErrorCode::ServiceError,
    };
    ToolError::new(code, format!("Pi-hole {name}: {e}"), e.hint())
}

/// The configured client of `instance`, or `not_configured`.
pub fn client(ctx: &ToolContext, instance: Instance) -> Result<Arc<Pihole>, ToolError> {
    let (slot, key) = match instance {
        Instance::Primary => (&ctx.services.pihole_primary, "[pihole.primary]"),
        Instance::Secondary => (&ctx.services.pihole_secondary, "[pihole.secondary]"),
    };
    slot.clone().ok_or_else(|| {
        ToolError::new(
            ErrorCode::NotConfigured,
            format!("no {key} in the config file"),
            format!(
                "add {key} with url and password_env or password_file (README, \"Configuration\")"
            ),
        )
    })
}

/// A filter value: a domain (FTL accepts `*` wildcards), an IP or a name.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct Filter(String);

impl<'de> Deserialize<'de> for Filter {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let s = String::deserialize(d)?;
        let s = s.trim();
        let ok = !s.is_empty()
            && s.len() <= 253
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"*._-:".contains(&b));
        if ok {
            Ok(Filter(s.to_string()))
        } else {
            Err(D::Error::custom(format!(
                "{s:?} is not a domain, IP address or host name (letters, digits, '.', '-', '_', ':', '*')"
            )))
        }
    }
}

impl JsonSchema for Filter {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Filter".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string"})
    }
}

/// A query status as FTL names it.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct Status(String);

impl<'de> Deserialize<'de> for Status {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let s = String::deserialize(d)?.trim().to_ascii_uppercase();
        let ok = !s.is_empty()
            && s.len() <= 32
            && s.bytes().all(|b| b.is_ascii_uppercase() || b == b'_');
        if ok {
            Ok(Status(s))
        } else {
            Err(D::Error::custom(format!(
                "{s:?} is not a Pi-hole query status (GRAVITY, FORWARDED, CACHE, REGEX, DENYLIST, …)"
            )))
        }
    }
}

impl JsonSchema for Status {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "QueryStatus".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string"})
    }
}

/// Arguments of `get_pihole_queries`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueriesArgs {
    /// Most queries returned, newest first (1..500).
    #[serde(default)]
    pub count: Int<1, 500, 50>,
    /// Only this domain (`*` wildcards).
    #[serde(default)]
    pub domain: Option<Filter>,
    /// Only this client (IP or name).
    #[serde(default)]
    pub client: Option<Filter>,
    /// Only this status (GRAVITY, FORWARDED, CACHE, …).
    #[serde(default)]
    pub status: Option<Status>,
    /// primary (default) or secondary.
    #[serde(default)]
    pub instance: Instance,
}

/// One query.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Query {
    /// When (RFC 3339).
    pub time: String,
    /// A, AAAA, …
    #[serde(rename = "type")]
    pub type_: String,
    /// Domain.
    pub domain: String,
    /// GRAVITY, FORWARDED, CACHE, …
    pub status: String,
    /// Client IP.
    #[serde(rename = "clientIp")]
    pub client_ip: String,
    /// Client name, when known.
    #[serde(rename = "clientName", skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    /// Reply type.
    pub reply: String,
    /// Reply time, ms.
    #[serde(rename = "replyMs", skip_serializing_if = "Option::is_none")]
    pub reply_ms: Option<f64>,
    /// Upstream asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
}

/// The query log page.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Queries {
    /// Which Pi-hole.
    pub instance: Instance,
    /// Queries, newest first.
    pub queries: Vec<Query>,
    /// How many match the filters.
    pub matched: u64,
    /// How many the log holds.
    pub total: u64,
}

impl Render for Queries {
    fn text(&self) -> String {
        let mut t = format!(
            "{} of {} matching queries ({} in the log) on Pi-hole {}\n",
            self.queries.len(),
            self.matched,
            self.total,
            self.instance
        );
        for q in &self.queries {
            t.push_str(&format!(
                "{} {} {} {} from {}{} → {}\n",
                q.time,
                q.type_,
                q.domain,
                q.status,
                q.client_ip,
                q.client_name
                    .as_deref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default(),
                q.reply
            ));
        }
        t
    }
}

/// `get_pihole_queries`.
pub fn queries_tool() -> ToolDef {
    ToolDef::typed(
        Meta {
            name: "get_pihole_queries",
            title: "Pi-hole queries",
            description: "Recent Pi-hole queries; filter by domain, client, status.",
            toolset: Toolset::Services,
            hints: Hints::SERVICE,
        },
        queries,
    )
}

async fn queries(ctx: Arc<ToolContext>, a: QueriesArgs, _call: Call) -> Result<Queries, ToolError> {
    let p = client(&ctx, a.instance)?;
    let query = {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("length", &a.count.get().to_string());
        if let Some(d) = &a.domain {
            q.append_pair("domain", &d.0);
        }
        if let Some(c) = &a.client {
            // FTL filters addresses and host names with separate keys.
            let key = if c.0.parse::<std::net::IpAddr>().is_ok() {
                "client_ip"
            } else {
                "client_name"
            };
            q.append_pair(key, &c.0);
        }
        if let Some(s) = &a.status {
            q.append_pair("status", &s.0);
        }
        q.finish()
    };
    let v: wire::Queries = p
        .get_typed(&format!("/api/queries?{query}"))
        .await
        .map_err(|e| service_error(p.name, &e))?;
    let found = v.queries.len() as u64;
    let queries = v
        .queries
        .into_iter()
        .take(a.count.get() as usize)
        .map(|q| {
            // v6: client and reply are objects (older typings had strings).
            let (client_ip, client_name) = match q.client {
                wire::Client::Object { ip, name } => (ip, name.filter(|n| !n.is_empty())),
                wire::Client::Text(ip) => (ip, None),
            };
            let (reply, reply_ms) = match q.reply {
                Some(wire::Reply::Object { kind, time }) => (kind.unwrap_or_default(), time),
                Some(wire::Reply::Text(t)) => (t, None),
                None => (String::new(), None),
            };
            Query {
                time: rfc3339(q.time as i64),
                type_: q.kind.unwrap_or_default(),
                domain: q.domain,
                status: q.status.unwrap_or_default(),
                client_ip,
                client_name,
                reply,
                reply_ms,
                upstream: q.upstream,
            }
        })
        .collect::<Vec<_>>();
    Ok(Queries {
        instance: a.instance,
        matched: v.records_filtered.unwrap_or(found),
        total: v.records_total.unwrap_or(found),
        queries,
    })
}

/// The Pi-hole v6 answers these tools read, as FTL documents them: a field
/// that is gone or changed type fails the call with its name
/// ([`crate::services::pihole::decode`]); fields not read are ignored.
mod wire {
    use serde::Deserialize;

    /// `GET /api/queries`.
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Queries {
        pub queries: Vec<Query>,
        #[serde(default)]
        pub records_total: Option<u64>,
        #[serde(default)]
        pub records_filtered: Option<u64>,
    }

    #[derive(Debug, Deserialize)]
    pub struct Query {
        /// Unix seconds, fractional.
        pub time: f64,
        #[serde(default, rename = "type")]
        pub kind: Option<String>,
        pub domain: String,
        #[serde(default)]
        pub status: Option<String>,
        pub client: Client,
        #[serde(default)]
        pub reply: Option<Reply>,
        #[serde(default)]
        pub upstream: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(untagged)]
    pub enum Client {
        Object {
            ip: String,
            #[serde(default)]
            name: Option<String>,
        },
        Text(String),
    }

    #[derive(Debug, Deserialize)]
    #[serde(untagged)]
    pub enum Reply {
        Object {
            #[serde(default, rename = "type")]
            kind: Option<String>,
            #[serde(default)]
            time: Option<f64>,
        },
        Text(String),
    }

    /// `GET /api/domains/allow`.
    #[derive(Debug, Deserialize)]
    pub struct Domains {
        pub domains: Vec<Domain>,
    }

    #[derive(Debug, Deserialize)]
    pub struct Domain {
        pub domain: String,
        /// exact or regex.
        pub kind: String,
        #[serde(default = "yes")]
        pub enabled: bool,
        #[serde(default)]
        pub comment: Option<String>,
        #[serde(default)]
        pub groups: Vec<i64>,
    }

    fn yes() -> bool {
        true
    }
}

/// Arguments of `get_pihole_whitelist`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WhitelistArgs {
    /// primary (default) or secondary.
    #[serde(default)]
    pub instance: Instance,
}

/// An allow-list entry.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AllowEntry {
    /// The domain or regex.
    pub domain: String,
    /// exact or regex.
    pub kind: String,
    /// Enabled.
    pub enabled: bool,
    /// Comment.
    pub comment: String,
    /// Group ids.
    pub groups: Vec<i64>,
}

/// The allow-list.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Whitelist {
    /// Which Pi-hole.
    pub instance: Instance,
    /// Exact entries.
    pub exact: Vec<AllowEntry>,
    /// Regex entries.
    pub regex: Vec<AllowEntry>,
}

impl Render for Whitelist {
    fn text(&self) -> String {
        let mut t = format!(
            "Pi-hole {} allow-list: {} exact, {} regex\n",
            self.instance,
            self.exact.len(),
            self.regex.len()
        );
        for e in self.exact.iter().chain(&self.regex) {
            t.push_str(&format!(
                "{} {}{}{}\n",
                e.kind,
                e.domain,
                if e.enabled { "" } else { " (disabled)" },
                if e.comment.is_empty() {
                    String::new()
                } else {
                    format!(" — {}", e.comment)
                }
            ));
        }
        t
    }
}

/// `get_pihole_whitelist`.
pub fn whitelist_tool() -> ToolDef {
    ToolDef::typed(
        Meta {
            name: "get_pihole_whitelist",
            title: "Pi-hole allow-list",
            description: "Pi-hole's allow-list (exact and regex entries).",
            toolset: Toolset::Services,
            hints: Hints::SERVICE,
        },
        whitelist,
    )
}

async fn whitelist(
    ctx: Arc<ToolContext>,
    a: WhitelistArgs,
    _call: Call,
) -> Result<Whitelist, ToolError> {
    let p = client(&ctx, a.instance)?;
    let v: wire::Domains = p
        .get_typed("/api/domains/allow")
        .await
        .map_err(|e| service_error(p.name, &e))?;
    let (mut exact, mut regex) = (Vec::new(), Vec::new());
    for d in v.domains {
        let e = AllowEntry {
            domain: d.domain,
            kind: d.kind,
            enabled: d.enabled,
            comment: d.comment.unwrap_or_default(),
            groups: d.groups,
        };
        if e.kind == "regex" {
            regex.push(e);
        } else {
            exact.push(e);
        }
    }
    Ok(Whitelist {
        instance: a.instance,
        exact,
        regex,
    })
}

/// Arguments of `update_pihole_gravity`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GravityArgs {
    /// primary (default) or secondary.
    #[serde(default)]
    pub instance: Instance,
}

/// Where the gravity run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GravityState {
    /// Pi-hole accepted it and it finished.
    Finished,
    /// Still running when the tool had to answer (it goes on).
    Running,
}

/// What `update_pihole_gravity` saw.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Gravity {
    /// Which Pi-hole.
    pub instance: Instance,
    /// finished or running.
    pub state: GravityState,
    /// Lines FTL marked as failed (`[✗]`: a list that did not download or
    /// parse; the run goes on with what it has), from the whole run.
    pub failures: Vec<String>,
    /// FTL's progress lines, in order (the last 50).
    pub lines: Vec<String>,
}

/// FTL's mark on a line that reports a failure.
const FAILED_MARK: &str = "[\u{2717}]";

impl Render for Gravity {
    fn text(&self) -> String {
        let mut t = format!(
            "gravity update on Pi-hole {}: {}\n",
            self.instance,
            match self.state {
                GravityState::Finished => "finished",
                GravityState::Running =>
                    "still running (it goes on; get_dns_status shows the new gravity age)",
            }
        );
        if !self.failures.is_empty() {
            let _ = writeln!(
                t,
                "{} line(s) marked failed (a blocklist was not updated):",
                self.failures.len()
            );
            for l in &self.failures {
                let _ = writeln!(t, "  {l}");
            }
            t.push_str("output:\n");
        }
        for l in &self.lines {
            t.push_str(l);
            t.push('\n');
        }
        t
    }
}

/// `update_pihole_gravity` ✎.
pub fn gravity_tool() -> ToolDef {
    ToolDef::mutating(
        Meta {
            name: "update_pihole_gravity",
            title: "Update Pi-hole gravity",
            description: "Rebuild Pi-hole's blocklists (gravity).",
            toolset: Toolset::Services,
            hints: Hints::CHANGE.on_a_service(),
        },
        |p, _: &GravityArgs| p.pihole_gravity(),
        gravity,
    )
}

async fn gravity(ctx: Arc<ToolContext>, a: GravityArgs, call: Call) -> Result<Gravity, ToolError> {
    let p = client(&ctx, a.instance)?;
    let budget = super::ops::watch_budget(&ctx);
    let (lines, finished) = p
        .stream_lines("/api/action/gravity", budget, |n, line| {
            call.progress(n as f64, None, line.to_string());
        })
        .await
        .map_err(|e| service_error(p.name, &e))?;
    let keep = lines.len().saturating_sub(50);
    Ok(Gravity {
        instance: a.instance,
        state: if finished {
            GravityState::Finished
        } else {
            GravityState::Running
        },
        failures: lines
            .iter()
            .filter(|l| l.trim_start().starts_with(FAILED_MARK))
            .cloned()
            .collect(),
        lines: lines[keep..].to_vec(),
    })
}
