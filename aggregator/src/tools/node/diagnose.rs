//! `diagnose_dns`: every resolver path asked explicitly, all at once,
//! through an agent's DNS probe — each Pi-hole (`[dns] servers`) and the
//! Unbound behind it (same host, `[dns] unbound_port`, 5335 by default) —
//! with a SERVFAIL retried with the CD flag to tell DNSSEC failures apart,
//! Unbound's log lines about the name from the last ten minutes (when a
//! Kubernetes API is configured), and a list of findings, each with its
//! next step.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams};
use labscope_proto::v1 as pb;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::probes::RecordType;
use super::{ms, on_node, pick_node};
use crate::cluster::Request;
use crate::tools::args::{Text, blank_as_none};
use crate::tools::{
    Call, ErrorCode, Hints, Meta, Render, ToolContext, ToolDef, ToolError, Toolset,
};

/// Arguments (the predecessor's `domain`, `type`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Name to diagnose.
    pub domain: Text,
    /// Record type.
    #[serde(rename = "type", default, deserialize_with = "blank_as_none")]
    #[schemars(extend("default" = "A"))]
    pub record_type: Option<RecordType>,
    /// Node to ask from (default: the first whose agent answers).
    #[serde(rename = "fromNode", default, deserialize_with = "blank_as_none")]
    pub from_node: Option<Text>,
}

/// One resolver path's answer.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct PathAnswer {
    /// "pihole primary", "unbound secondary", …
    pub path: String,
    /// Address asked.
    pub server: String,
    /// NOERROR, NXDOMAIN, SERVFAIL, … (empty without an answer).
    pub rcode: String,
    /// Why there was no answer.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
    /// Answer data.
    pub answers: Vec<String>,
    /// Lowest TTL of the answers.
    #[serde(rename = "minTtl", skip_serializing_if = "Option::is_none")]
    pub min_ttl: Option<u32>,
    /// Authentic data (DNSSEC validated).
    pub ad: bool,
    /// Round trip.
    #[serde(rename = "latencyMs")]
    pub latency_ms: f64,
    /// The rcode of the retry with CD set, after a SERVFAIL.
    #[serde(
        rename = "checkingDisabledRcode",
        skip_serializing_if = "Option::is_none"
    )]
    pub cd_rcode: Option<String>,
}

impl PathAnswer {
    fn answered(&self) -> bool {
        !self.rcode.is_empty()
    }
}

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Names fail to resolve.
    Error,
    /// Resolution works but something will break or is degraded.
    Warning,
    /// For the record.
    Info,
}

/// A finding and what to do next.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Finding {
    /// How serious.
    pub severity: Severity,
    /// What was found.
    pub message: String,
    /// The next step.
    pub next: String,
}

/// A line of an Unbound pod's log.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct LogLine {
    /// Pod that logged it.
    pub pod: String,
    /// The line (secrets redacted).
    pub line: String,
}

/// Unbound's log lines about the name.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct UnboundLog {
    /// Whether the Unbound pods' logs were read.
    pub read: bool,
    /// Pods read, or why none was.
    pub note: String,
    /// Lines of the last ten minutes that name the domain, oldest first
    /// per pod (at most the last ten per pod).
    pub lines: Vec<LogLine>,
}

impl UnboundLog {
    fn not_read(note: impl Into<String>) -> Self {
        Self {
            read: false,
            note: note.into(),
            lines: Vec::new(),
        }
    }

    /// Lines that report a DNSSEC validation failure.
    fn validation_failures(&self) -> impl Iterator<Item = &LogLine> {
        self.lines
            .iter()
            .filter(|l| l.line.contains("validation failure"))
    }
}

/// The diagnosis.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Diagnosis {
    /// Name.
    pub domain: String,
    /// Type.
    #[serde(rename = "type")]
    pub record_type: String,
    /// Node the queries were sent from.
    #[serde(rename = "fromNode")]
    pub from_node: String,
    /// Every path's answer.
    pub paths: Vec<PathAnswer>,
    /// Unbound's log lines about the name.
    #[serde(rename = "unboundLog")]
    pub unbound_log: UnboundLog,
    /// Findings, errors first.
    pub findings: Vec<Finding>,
}

impl Render for Diagnosis {
    fn text(&self) -> String {
        let mut t = format!(
            "{} {} from {}\n",
            self.domain, self.record_type, self.from_node
        );
        for p in &self.paths {
            t.push_str(&format!(
                "{} ({}): {}{}{}\n",
                p.path,
                p.server,
                if p.answered() {
                    p.rcode.as_str()
                } else {
                    "no answer"
                },
                if p.error.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", p.error)
                },
                match &p.cd_rcode {
                    Some(r) => format!(", with CD: {r}"),
                    None if p.answers.is_empty() => String::new(),
                    None => format!(" {} in {} ms", p.answers.join(" "), p.latency_ms),
                }
            ));
        }
        if self.unbound_log.read {
            t.push_str(&format!(
                "Unbound log, last 10 min ({}): {} lines name {}\n",
                self.unbound_log.note,
                self.unbound_log.lines.len(),
                self.domain
            ));
            for l in &self.unbound_log.lines {
                t.push_str(&format!("  {}: {}\n", l.pod, l.line));
            }
        } else {
            t.push_str(&format!(
                "Unbound log not read: {}\n",
                self.unbound_log.note
            ));
        }
        for f in &self.findings {
            t.push_str(&format!(
                "{:?}: {} — next: {}\n",
                f.severity, f.message, f.next
            ));
        }
        t
    }
}

/// `diagnose_dns`.
pub fn tool() -> ToolDef {
    ToolDef::typed(
        Meta {
            name: "diagnose_dns",
            title: "Diagnose DNS",
            description: "Ask each Pi-hole and Unbound at once; SERVFAIL retried with CD (DNSSEC); findings with next steps.",
            toolset: Toolset::Node,
            hints: Hints::PROBE,
        },
        run,
    )
}

/// The paths to ask: (label, address) — each configured DNS server (a
/// Pi-hole) and the Unbound on its host.
pub fn paths(servers: &[String], unbound_port: u16) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, s) in servers.iter().enumerate() {
        let which = match i {
            0 => "primary".to_string(),
            1 => "secondary".to_string(),
            n => format!("#{}", n + 1),
        };
        let host = match s.parse::<std::net::SocketAddr>() {
            Ok(a) => a.ip(),
            Err(_) => match s.parse::<std::net::IpAddr>() {
                Ok(ip) => ip,
                Err(_) => continue,
            },
        };
        out.push((format!("pihole {which}"), s.clone()));
        out.push((
            format!("unbound {which}"),
            std::net::SocketAddr::new(host, unbound_port).to_string(),
        ));
    }
    out
}

async fn run(ctx: Arc<ToolContext>, a: Args, _call: Call) -> Result<Diagnosis, ToolError> {
    let paths = paths(&ctx.config.dns_servers, ctx.config.dns_unbound_port);
    if paths.is_empty() {
        return Err(ToolError::new(
            ErrorCode::NotConfigured,
            "no DNS servers are configured to diagnose",
            "add [dns] servers = [\"192.168.1.55\", \"192.168.1.56\"] (the Pi-holes) to the config file; Unbound is asked on the same hosts at unbound_port (5335)",
        ));
    }
    if a.domain.is_empty() {
        return Err(ToolError::invalid("domain", "required"));
    }
    let agent = pick_node(&ctx, "fromNode", a.from_node.as_deref()).await?;
    let node = agent.name.clone();
    let record_type = a.record_type.unwrap_or(RecordType::A).as_str().to_string();
    let deadline = ctx.settings.agent_deadline.max(Duration::from_secs(5));
    let ask = |server: String, cd: bool| {
        let agent = agent.clone();
        let req = pb::DnsQueryRequest {
            name: a.domain.as_str().to_string(),
            record_type: record_type.clone(),
            server,
            checking_disabled: cd,
            timeout_ms: 2000,
            tcp: false,
        };
        async move {
            on_node(
                agent,
                deadline,
                &[
                    ("name", "domain"),
                    ("record_type", "type"),
                    ("server", "server"),
                ],
                |a| async move { a.client().dns_query(req).await.map(|r| r.into_inner()) },
            )
            .await
        }
    };
    let queries = futures::future::join_all(paths.iter().map(|(label, server)| {
        let ask = &ask;
        async move {
            let r = ask(server.clone(), false).await?;
            let mut p = PathAnswer {
                path: label.clone(),
                server: server.clone(),
                rcode: r.rcode.clone(),
                error: r.error.clone(),
                answers: r.answers.iter().map(|x| x.data.clone()).collect(),
                min_ttl: r.answers.iter().map(|x| x.ttl).min(),
                ad: r.flags.as_ref().is_some_and(|f| f.authentic_data),
                latency_ms: ms(r.latency_us),
                cd_rcode: None,
            };
            if p.rcode == "SERVFAIL" {
                let retry = ask(server.clone(), true).await?;
                p.cd_rcode = Some(if retry.rcode.is_empty() {
                    "no answer".into()
                } else {
                    retry.rcode
                });
            }
            Ok::<_, ToolError>(p)
        }
    }));
    // The logs are read while the resolvers are asked.
    let (answers, unbound_log) = tokio::join!(queries, unbound_log(&ctx, a.domain.as_str()));
    let answers = answers.into_iter().collect::<Result<Vec<_>, _>>()?;
    let findings = findings(a.domain.as_str(), &answers, &unbound_log);
    Ok(Diagnosis {
        domain: a.domain.as_str().to_string(),
        record_type,
        from_node: node,
        paths: answers,
        unbound_log,
        findings,
    })
}

/// Pods whose logs are Unbound's (HOMELAB.md: `app=unbound` and
/// `app=unbound-secondary` in the DNS namespace).
/// Lines kept per pod.
const LOG_LINES_PER_POD: usize = 10;
/// How far back the logs are read.
const LOG_WINDOW_SECONDS: i64 = 600;

/// Unbound's log lines of the last ten minutes that name `domain`, from
/// every Unbound pod at once. Never fails the diagnosis: what could not be
/// read is said in `note`.
async fn unbound_log(ctx: &ToolContext, domain: &str) -> UnboundLog {
    let Some(c) = ctx.cluster.as_ref() else {
        return UnboundLog::not_read(
            "no Kubernetes API is configured (start labscope with --kubeconfig, or in the cluster, to include them)",
        );
    };
    let workloads = &ctx.config.workloads;
    let (ns, selector) = (
        workloads.dns_namespace.as_str(),
        workloads.unbound_selector(),
    );
    let api: Api<Pod> = Api::namespaced(c.client.clone(), ns);
    let pods = match c
        .list(
            &api,
            &ListParams::default().labels(&selector),
            Request::new("list", "pods", Some(ns)),
        )
        .await
    {
        Ok(p) => p,
        Err(e) => {
            let e = crate::tools::kube::api_error(e);
            return UnboundLog::not_read(format!("listing the Unbound pods failed: {}", e.message));
        }
    };
    if pods.is_empty() {
        return UnboundLog::not_read(format!(
            "no pod matches {selector} in namespace {ns} ([workloads] unbound in the config lists the Deployments)"
        ));
    }
    let name = domain.trim_end_matches('.').to_ascii_lowercase();
    let reads = pods.iter().map(|p| {
        let name = p.metadata.name.clone().unwrap_or_default();
        // The container named unbound, else the first (a pod with several
        // must be told which).
        let container = p.spec.as_ref().and_then(|s| {
            s.containers
                .iter()
                .find(|c| c.name == "unbound")
                .or(s.containers.first())
                .map(|c| c.name.clone())
        });
        let params = LogParams {
            container,
            since_seconds: Some(LOG_WINDOW_SECONDS),
            tail_lines: Some(5000),
            limit_bytes: Some(1024 * 1024),
            ..Default::default()
        };
        let api = &api;
        async move {
            let log = c
                .logs(
                    api,
                    &name,
                    &params,
                    Request::new("get", "pods/log", Some(ns)),
                )
                .await;
            (name, log)
        }
    });
    let mut read = Vec::new();
    let mut failed = Vec::new();
    let mut lines = Vec::new();
    for (pod, log) in futures::future::join_all(reads).await {
        match log {
            Ok(text) => {
                let matching: Vec<&str> = text.lines().filter(|l| names(l, &name)).collect();
                let skip = matching.len().saturating_sub(LOG_LINES_PER_POD);
                lines.extend(matching[skip..].iter().map(|l| LogLine {
                    pod: pod.clone(),
                    line: crate::redact::redact(l).text,
                }));
                read.push(pod);
            }
            Err(e) => failed.push(format!(
                "{pod}: {}",
                crate::tools::kube::api_error(e).message
            )),
        }
    }
    let mut note = if read.is_empty() {
        String::new()
    } else {
        format!("pods {}", read.join(", "))
    };
    if !failed.is_empty() {
        if !note.is_empty() {
            note.push_str("; ");
        }
        note.push_str(&format!("not read: {}", failed.join("; ")));
    }
    UnboundLog {
        read: !read.is_empty(),
        note,
        lines,
    }
}

/// Whether `line` names `name` (lower case, no trailing dot) or a name
/// under it: `example.com` matches `www.example.com.` but not
/// `myexample.com`.
fn names(line: &str, name: &str) -> bool {
    let line = line.to_ascii_lowercase();
    line.match_indices(name).any(|(at, _)| {
        let before = line[..at].chars().next_back();
        let after = line[at + name.len()..].chars().next();
        let label = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-');
        !label(before) && !label(after)
    })
}

/// Unbound's own words on the validation failures in its log, for the
/// DNSSEC finding: how many, from which pods, and the first reason.
fn log_evidence(log: &UnboundLog) -> Option<String> {
    let failures: Vec<&LogLine> = log.validation_failures().collect();
    let first = failures.first()?;
    let pods: std::collections::BTreeSet<&str> = failures.iter().map(|l| l.pod.as_str()).collect();
    let reason = first
        .line
        .split_once("validation failure")
        .map_or(first.line.as_str(), |(_, rest)| {
            rest.trim_start_matches(':').trim()
        });
    Some(format!(
        "; Unbound logged {} validation failures in the last 10 minutes ({}), e.g. {reason}",
        failures.len(),
        pods.into_iter().collect::<Vec<_>>().join(", ")
    ))
}

/// The findings over every path's answer and Unbound's log.
pub fn findings(domain: &str, paths: &[PathAnswer], log: &UnboundLog) -> Vec<Finding> {
    let mut out = Vec::new();
    let dnssec: Vec<&PathAnswer> = paths
        .iter()
        .filter(|p| {
            p.rcode == "SERVFAIL" && matches!(p.cd_rcode.as_deref(), Some("NOERROR" | "NXDOMAIN"))
        })
        .collect();
    if !dnssec.is_empty() {
        out.push(Finding {
            severity: Severity::Error,
            message: format!(
                "DNSSEC validation fails for {domain}: SERVFAIL from {}, but an answer with checking disabled (CD){}",
                dnssec.iter().map(|p| p.path.as_str()).collect::<Vec<_>>().join(", "),
                log_evidence(log).unwrap_or_default()
            ),
            next: format!(
                "the zone's signatures are broken upstream, or the resolver's clock or trust anchor is wrong: check `date` on the node \
                 and the zone at dnsviz.net; for a broken zone add `domain-insecure: \"{domain}\"` to a file Unbound includes from conf.d \
                 (the madnuttah image drops it from the main unbound.conf; in the homelab, key dnssec-exceptions.conf of ConfigMap unbound-config), \
                 then restart every Unbound (unbound, unbound-secondary)"
            ),
        });
    }
    for p in paths.iter().filter(|p| {
        p.rcode == "SERVFAIL"
            && p.cd_rcode
                .as_deref()
                .is_some_and(|r| r == "SERVFAIL" || r == "no answer")
    }) {
        out.push(Finding {
            severity: Severity::Error,
            message: format!("{} ({}) cannot resolve {domain}: SERVFAIL, also with checking disabled", p.path, p.server),
            next: "not DNSSEC: the resolver cannot reach its upstream (Unbound's root servers or forwarders); check the node's network and Unbound's log".into(),
        });
    }
    for p in paths.iter().filter(|p| !p.answered()) {
        out.push(Finding {
            severity: Severity::Warning,
            message: format!("{} ({}) does not answer: {}", p.path, p.server, p.error),
            next: "check its pod (get_dns_status) and that it listens on that address and port"
                .into(),
        });
    }
    // A Pi-hole answering from cache while the Unbound behind it fails.
    for p in paths
        .iter()
        .filter(|p| p.path.starts_with("pihole ") && p.rcode == "NOERROR" && !p.answers.is_empty())
    {
        let which = p.path.trim_start_matches("pihole ");
        if let Some(u) = paths.iter().find(|u| u.path == format!("unbound {which}"))
            && (u.rcode == "SERVFAIL" || !u.answered())
        {
            out.push(Finding {
                severity: Severity::Warning,
                message: format!(
                    "Pi-hole {which} answers {domain} from its cache while the Unbound behind it fails: the answer stops when its TTL ({} s) runs out",
                    p.min_ttl.unwrap_or(0)
                ),
                next: format!("fix unbound {which} ({}) before the cache expires", u.server),
            });
        }
    }
    let answered: Vec<&PathAnswer> = paths.iter().filter(|p| p.answered()).collect();
    if !answered.is_empty() && answered.iter().all(|p| p.rcode == "NXDOMAIN") {
        out.push(Finding {
            severity: Severity::Info,
            message: format!("{domain} does not exist: NXDOMAIN from every resolver that answered"),
            next: "check the name; a local record belongs in Pi-hole's local DNS".into(),
        });
    }
    let piholes: Vec<&PathAnswer> = paths
        .iter()
        .filter(|p| p.path.starts_with("pihole ") && p.rcode == "NOERROR")
        .collect();
    if piholes.len() > 1 {
        let sorted = |p: &PathAnswer| {
            let mut a = p.answers.clone();
            a.sort();
            a
        };
        if piholes.windows(2).any(|w| sorted(w[0]) != sorted(w[1])) {
            out.push(Finding {
                severity: Severity::Info,
                message: format!("the Pi-holes answer {domain} differently (round-robin records, or out-of-sync lists)"),
                next: "compare their allow/deny lists (get_pihole_whitelist instance=secondary) if the difference matters".into(),
            });
        }
    }
    if out.iter().all(|f| f.severity == Severity::Info)
        && paths.iter().all(|p| p.rcode == "NOERROR")
    {
        out.push(Finding {
            severity: Severity::Info,
            message: format!("every path answers {domain}"),
            next: "DNS is not the problem for this name; test the service itself (curl_ingress, test_pod_connectivity)".into(),
        });
    }
    out.sort_by_key(|f| match f.severity {
        Severity::Error => 0,
        Severity::Warning => 1,
        Severity::Info => 2,
    });
    out
}

#[cfg(test)]
mod tests {
    use super::names;

    #[test]
    fn a_log_line_names_the_domain_or_a_name_under_it() {
        let line = "info: validation failure <www.Example.com. A IN>: no keys";
        assert!(names(line, "example.com"));
        assert!(names("resolving example.com", "example.com"));
        assert!(!names("resolving myexample.com.", "example.com"));
        assert!(!names("resolving example.community.", "example.com"));
        assert!(!names("resolving example-com.net", "example.com"));
    }
}
