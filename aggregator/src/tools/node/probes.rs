//! Probes run by one node's agent: `test_pod_connectivity` (ping and a TCP
//! connect), `curl_ingress` (one HTTP(S) request with timing and the
//! certificate), `test_dns_query` (one query to an explicit server).

use std::sync::Arc;
use std::time::Duration;

use labscope_proto::v1 as pb;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{enum_name, ip_text, ms, node_agent, on_node, pick_node};
use crate::choice;
use crate::tools::args::{DefaultTrue, Int, Range, Text, blank_as_none};
use crate::tools::{
    Call, ErrorCode, Hints, Meta, Render, ToolContext, ToolDef, ToolError, Toolset,
};

// ------------------------------------------------------------ connectivity

/// Arguments (the predecessor's names).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConnectivityArgs {
    /// Node to probe from.
    pub source_node: Text,
    /// IP or hostname.
    pub target: Text,
    /// TCP port.
    pub port: Range<1, 65535>,
    /// Echo requests.
    #[serde(default)]
    pub count: Int<1, 10, 3>,
}

/// Round-trip times in milliseconds.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Rtt {
    /// Fastest.
    pub min: f64,
    /// Mean.
    pub avg: f64,
    /// Slowest.
    pub max: f64,
}

/// Ping statistics.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Ping {
    /// Address pinged.
    pub address: String,
    /// What the target resolved to.
    pub resolved: Vec<String>,
    /// Echo requests sent.
    pub transmitted: u32,
    /// Replies.
    pub received: u32,
    /// Loss.
    pub loss_percent: f64,
    /// Round trips.
    pub rtt_ms: Rtt,
    /// dgram (ping socket) or raw.
    pub method: String,
    /// Per-request errors (unreachable, …).
    pub errors: Vec<String>,
}

/// Ping results, or why the agent may not ping.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum PingAnswer {
    /// It pinged.
    Done(Ping),
    /// The agent lacks the privilege; the TCP result still stands.
    Refused {
        /// Why.
        error: String,
    },
}

/// A TCP connect.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tcp {
    /// Port.
    pub port: u32,
    /// Address tried.
    pub address: String,
    /// open, refused (reachable, nothing listening), timeout (filtered or
    /// down) or unreachable.
    pub outcome: String,
    /// Time to connect (or to fail).
    pub connect_ms: f64,
    /// The error, when not open.
    pub message: String,
}

/// A TCP connect's answer as the tools show it (check_network_mesh too).
pub(super) fn tcp(t: &pb::TcpConnectResult) -> Tcp {
    Tcp {
        port: t.port,
        address: ip_text(&t.address),
        outcome: enum_name(
            pb::TcpConnectOutcome::try_from(t.outcome)
                .unwrap_or_default()
                .as_str_name(),
            "TCP_CONNECT_OUTCOME_",
        ),
        connect_ms: ms(t.connect_us),
        message: t.message.clone(),
    }
}

fn ping(p: &pb::PingResult) -> Ping {
    Ping {
        address: ip_text(&p.address),
        resolved: p
            .resolved
            .iter()
            .map(|a| ip_text(&Some(a.clone())))
            .collect(),
        transmitted: p.transmitted,
        received: p.received,
        loss_percent: p.loss_percent,
        rtt_ms: Rtt {
            min: ms(p.rtt_min_us),
            avg: ms(p.rtt_avg_us),
            max: ms(p.rtt_max_us),
        },
        method: enum_name(
            pb::PingMethod::try_from(p.method)
                .unwrap_or_default()
                .as_str_name(),
            "PING_METHOD_",
        ),
        errors: p.errors.clone(),
    }
}

/// Ping and TCP from a node.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Connectivity {
    /// Node probed from.
    pub source_node: String,
    /// Target as given.
    pub target: String,
    /// ICMP.
    pub ping: PingAnswer,
    /// TCP.
    pub tcp: Tcp,
}

/// `test_pod_connectivity`.
pub fn connectivity_tool() -> ToolDef {
    ToolDef::typed(
        Meta {
            name: "test_pod_connectivity",
            title: "Ping and TCP probe",
            description: "Ping and TCP connect from sourceNode to target:port.",
            toolset: Toolset::Node,
            hints: Hints::PROBE,
        },
        run_connectivity,
    )
}

async fn run_connectivity(
    ctx: Arc<ToolContext>,
    a: ConnectivityArgs,
    call: Call,
) -> Result<Connectivity, ToolError> {
    let count = a.count.get() as u32;
    let port = a.port.get() as u32;
    let agent = node_agent(&ctx, "sourceNode", &a.source_node).await?;
    let deadline =
        Duration::from_millis(u64::from(count) * 1200 + 3000).max(ctx.settings.agent_deadline);
    let (t1, t2) = (a.target.as_str().to_string(), a.target.as_str().to_string());
    let probe = on_node(
        agent,
        deadline,
        &[("target", "target"), ("port", "port"), ("count", "count")],
        |a| async move {
            let mut c1 = a.client();
            let mut c2 = a.client();
            let ping = c1.ping(pb::PingRequest {
                target: t1,
                count,
                timeout_ms: 1000,
                interval_ms: 200,
            });
            let tcp = c2.tcp_connect(pb::TcpConnectRequest {
                target: t2,
                port,
                timeout_ms: 3000,
            });
            let (ping, tcp) = tokio::join!(ping, tcp);
            // A ping refused for privilege still leaves the TCP answer useful.
            let ping = match ping {
                Ok(p) => Ok(p.into_inner()),
                Err(s) if s.code() == tonic::Code::PermissionDenied => Err(s.message().to_string()),
                Err(s) => return Err(s),
            };
            Ok((ping, tcp?.into_inner()))
        },
    );
    let what = format!(
        "ping and TCP {} from {}",
        a.target.as_str(),
        a.source_node.as_str()
    );
    let (p, t) = call.ticking(&what, deadline, probe).await?;
    Ok(Connectivity {
        source_node: a.source_node.as_str().to_string(),
        target: a.target.as_str().to_string(),
        ping: match &p {
            Ok(p) => PingAnswer::Done(ping(p)),
            Err(e) => PingAnswer::Refused { error: e.clone() },
        },
        tcp: tcp(&t),
    })
}

impl Render for Connectivity {
    fn text(&self) -> String {
        let ping = match &self.ping {
            PingAnswer::Refused { error } => format!("ping: not allowed: {error}"),
            PingAnswer::Done(p) => {
                let mut s = format!(
                    "ping {}: {}/{} received, {}% loss, rtt min/avg/max {}/{}/{} ms ({})",
                    p.address,
                    p.received,
                    p.transmitted,
                    p.loss_percent,
                    p.rtt_ms.min,
                    p.rtt_ms.avg,
                    p.rtt_ms.max,
                    p.method
                );
                if !p.errors.is_empty() {
                    s.push_str(&format!(" — {}", p.errors.join("; ")));
                }
                s
            }
        };
        let t = &self.tcp;
        format!(
            "from {} to {}\n{ping}\ntcp {}:{} {} in {} ms{}\n",
            self.source_node,
            self.target,
            t.address,
            t.port,
            t.outcome,
            t.connect_ms,
            if t.message.is_empty() {
                String::new()
            } else {
                format!(" — {}", t.message)
            }
        )
    }
}

// ------------------------------------------------------------------- curl

choice! {
    /// An HTTP method that changes nothing.
    pub enum Method {
        /// GET.
        Get = "GET",
        /// HEAD.
        Head = "HEAD",
    }
}

/// Arguments (the predecessor's `url`, `timeout`, `fromNode`, and more).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CurlArgs {
    /// http:// or https:// URL.
    pub url: Text,
    /// Seconds.
    #[serde(default)]
    pub timeout: Int<1, 30, 10>,
    /// Node to probe from (default: the first whose agent answers).
    #[serde(default, deserialize_with = "blank_as_none")]
    pub from_node: Option<Text>,
    /// Verify the certificate.
    #[serde(default)]
    pub verify_tls: DefaultTrue,
    /// HTTP method.
    #[serde(default, deserialize_with = "blank_as_none")]
    #[schemars(extend("default" = "GET"))]
    pub method: Option<Method>,
}

/// Phases of the request, in milliseconds.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Timing {
    /// Name resolution.
    pub dns: f64,
    /// TCP connect.
    pub connect: f64,
    /// TLS handshake.
    pub tls: f64,
    /// To the first response byte.
    pub first_byte: f64,
    /// In all.
    pub total: f64,
}

/// The TLS session.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Tls {
    /// TLS version.
    pub version: String,
    /// The certificate chain verified.
    pub verified: bool,
    /// Negotiated protocol.
    pub alpn: String,
}

/// The server's certificate.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Certificate {
    /// Subject.
    pub subject: String,
    /// Issuer.
    pub issuer: String,
    /// Valid from.
    pub not_before: String,
    /// Valid until.
    pub not_after: String,
    /// Days until notAfter.
    pub days_left: i64,
    /// Names it is valid for.
    pub dns_names: Vec<String>,
}

/// One HTTP(S) request.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Http {
    /// Node it was sent from.
    pub from_node: String,
    /// URL.
    pub url: String,
    /// ok, or what failed (dns, connect, tls, timeout, …).
    pub outcome: String,
    /// HTTP status (0 without a response).
    pub status: u32,
    /// The failure.
    pub error: String,
    /// Address connected to.
    pub remote_address: String,
    /// Body size.
    pub body_bytes: u64,
    /// Location of a redirect.
    pub redirect: String,
    /// Content-Type.
    pub content_type: String,
    /// HTTP version.
    pub http_version: String,
    /// Phases.
    pub timing_ms: Timing,
    /// TLS.
    pub tls: Tls,
    /// The certificate (https).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<Certificate>,
}

/// `curl_ingress`.
pub fn curl_tool() -> ToolDef {
    ToolDef::typed(
        Meta {
            name: "curl_ingress",
            title: "HTTP(S) probe",
            description: "HTTP(S) from a node: status, timings, TLS certificate (verified by default).",
            toolset: Toolset::Node,
            hints: Hints::PROBE,
        },
        run_curl,
    )
}

async fn run_curl(ctx: Arc<ToolContext>, a: CurlArgs, call: Call) -> Result<Http, ToolError> {
    if !(a.url.starts_with("http://") || a.url.starts_with("https://")) {
        return Err(ToolError::invalid(
            "url",
            "must start with http:// or https://",
        ));
    }
    let timeout = a.timeout.get() as u64;
    let agent = pick_node(&ctx, "fromNode", a.from_node.as_deref()).await?;
    let node = agent.name.clone();
    let req = pb::HttpProbeRequest {
        url: a.url.as_str().to_string(),
        method: a.method.unwrap_or(Method::Get).as_str().to_string(),
        timeout_ms: (timeout * 1000) as u32,
        insecure_skip_verify: !a.verify_tls.0,
        ca_pem: String::new(),
        connect_to: String::new(),
    };
    let deadline = Duration::from_secs(timeout + 2);
    let probe = on_node(
        agent,
        deadline,
        &[
            ("url", "url"),
            ("method", "method"),
            ("timeout_ms", "timeout"),
        ],
        |a| async move { a.client().http_probe(req).await.map(|r| r.into_inner()) },
    );
    let r = call
        .ticking(&format!("{} from {node}", a.url.as_str()), deadline, probe)
        .await?;
    let t = r.timing.unwrap_or_default();
    Ok(Http {
        from_node: node,
        url: r.url,
        outcome: enum_name(
            pb::HttpProbeOutcome::try_from(r.outcome)
                .unwrap_or_default()
                .as_str_name(),
            "HTTP_PROBE_OUTCOME_",
        ),
        status: r.status,
        error: r.error,
        remote_address: r.remote_address,
        body_bytes: r.body_bytes,
        redirect: r.redirect_location,
        content_type: r.content_type,
        http_version: r.http_version,
        timing_ms: Timing {
            dns: ms(t.dns_us),
            connect: ms(t.connect_us),
            tls: ms(t.tls_us),
            first_byte: ms(t.first_byte_us),
            total: ms(t.total_us),
        },
        tls: Tls {
            version: r.tls_version,
            verified: r.tls_verified,
            alpn: r.alpn,
        },
        certificate: r.certificate.map(|c| Certificate {
            subject: c.subject,
            issuer: c.issuer,
            not_before: c.not_before,
            not_after: c.not_after,
            days_left: c.days_left,
            dns_names: c.dns_names,
        }),
    })
}

impl Render for Http {
    fn text(&self) -> String {
        let t = &self.timing_ms;
        let mut out = format!(
            "{} from {}: {} status {} in {} ms (dns {} connect {} tls {} first byte {}) {} bytes from {}\n",
            self.url,
            self.from_node,
            self.outcome,
            self.status,
            t.total,
            t.dns,
            t.connect,
            t.tls,
            t.first_byte,
            self.body_bytes,
            self.remote_address
        );
        if !self.error.is_empty() {
            out.push_str(&format!("error: {}\n", self.error));
        }
        if !self.redirect.is_empty() {
            out.push_str(&format!("redirect: {}\n", self.redirect));
        }
        if let Some(c) = &self.certificate {
            out.push_str(&format!(
                "certificate: {} issued by {}, expires {} ({} days), names {}; {} {}\n",
                c.subject,
                c.issuer,
                c.not_after,
                c.days_left,
                c.dns_names.join(","),
                self.tls.version,
                if self.tls.verified {
                    "verified"
                } else {
                    "NOT verified"
                }
            ));
        }
        out
    }
}

// -------------------------------------------------------------------- DNS

choice! {
    /// A DNS record type.
    pub enum RecordType {
        /// IPv4 address.
        A = "A",
        /// IPv6 address.
        Aaaa = "AAAA",
        /// Mail exchanger.
        Mx = "MX",
        /// Text.
        Txt = "TXT",
        /// Alias.
        Cname = "CNAME",
        /// Name server.
        Ns = "NS",
        /// Start of authority.
        Soa = "SOA",
        /// Reverse pointer.
        Ptr = "PTR",
        /// Service.
        Srv = "SRV",
    }
}

/// Arguments (the predecessor's `domain`, `type`, and more).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DnsArgs {
    /// Name to look up.
    pub domain: Text,
    /// Record type.
    #[serde(rename = "type", default, deserialize_with = "blank_as_none")]
    #[schemars(extend("default" = "A"))]
    pub record_type: Option<RecordType>,
    /// IP, IP:port or [IPv6]:port (default: the configured server).
    #[serde(default, deserialize_with = "blank_as_none")]
    pub server: Option<Text>,
    /// Node to ask from (default: the first whose agent answers).
    #[serde(default, deserialize_with = "blank_as_none")]
    pub from_node: Option<Text>,
    /// Set the CD flag (DNSSEC checking disabled).
    #[serde(default)]
    pub checking_disabled: bool,
}

/// A resource record.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Record {
    /// Owner name.
    pub name: String,
    /// Type.
    #[serde(rename = "type")]
    pub record_type: String,
    /// TTL.
    pub ttl: u32,
    /// Data as dig prints it.
    pub data: String,
}

/// Header flags.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Flags {
    /// Authoritative answer.
    pub aa: bool,
    /// Truncated.
    pub tc: bool,
    /// Recursion desired.
    pub rd: bool,
    /// Recursion available.
    pub ra: bool,
    /// Authentic data (DNSSEC validated).
    pub ad: bool,
    /// Checking disabled.
    pub cd: bool,
}

/// One DNS answer.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Dns {
    /// Node it was asked from.
    pub from_node: String,
    /// Name asked.
    pub domain: String,
    /// Type asked.
    #[serde(rename = "type")]
    pub record_type: String,
    /// Server asked.
    pub server: String,
    /// NOERROR, NXDOMAIN, SERVFAIL, … (empty without an answer).
    pub rcode: String,
    /// Why there was no answer.
    pub error: String,
    /// Answer section.
    pub answers: Vec<Record>,
    /// Authority section.
    pub authority: Vec<Record>,
    /// Header flags.
    pub flags: Flags,
    /// Round trip.
    pub latency_ms: f64,
    /// udp or tcp.
    pub transport: String,
}

/// `test_dns_query`.
pub fn dns_tool() -> ToolDef {
    ToolDef::typed(
        Meta {
            name: "test_dns_query",
            title: "DNS query",
            description: "DNS query to a server from a node: rcode, answers, flags, timing.",
            toolset: Toolset::Node,
            hints: Hints::PROBE,
        },
        run_dns,
    )
}

async fn run_dns(ctx: Arc<ToolContext>, a: DnsArgs, _call: Call) -> Result<Dns, ToolError> {
    let server = match a
        .server
        .map(Text::into_string)
        .or_else(|| ctx.settings.default_dns_server.clone())
    {
        Some(s) => s,
        None => {
            return Err(ToolError::new(
                ErrorCode::NotConfigured,
                "no DNS server given and no default configured",
                "pass server (e.g. \"10.43.0.10\" or \"192.168.1.55:53\"), or start labscope with --dns-server",
            ));
        }
    };
    let agent = pick_node(&ctx, "fromNode", a.from_node.as_deref()).await?;
    let node = agent.name.clone();
    let req = pb::DnsQueryRequest {
        name: a.domain.as_str().to_string(),
        record_type: a.record_type.unwrap_or(RecordType::A).as_str().to_string(),
        server,
        checking_disabled: a.checking_disabled,
        timeout_ms: 2000,
        tcp: false,
    };
    let r = on_node(
        agent,
        ctx.settings.agent_deadline.max(Duration::from_secs(5)),
        &[
            ("name", "domain"),
            ("record_type", "type"),
            ("server", "server"),
        ],
        |a| async move { a.client().dns_query(req).await.map(|r| r.into_inner()) },
    )
    .await?;
    let f = r.flags.unwrap_or_default();
    let record = |x: &pb::DnsRecord| Record {
        name: x.name.clone(),
        record_type: x.record_type.clone(),
        ttl: x.ttl,
        data: x.data.clone(),
    };
    Ok(Dns {
        from_node: node,
        domain: r.name.clone(),
        record_type: r.record_type.clone(),
        server: r.server.clone(),
        rcode: r.rcode.clone(),
        error: r.error.clone(),
        answers: r.answers.iter().map(record).collect(),
        authority: r.authority.iter().map(record).collect(),
        flags: Flags {
            aa: f.authoritative,
            tc: f.truncated,
            rd: f.recursion_desired,
            ra: f.recursion_available,
            ad: f.authentic_data,
            cd: f.checking_disabled,
        },
        latency_ms: ms(r.latency_us),
        transport: r.transport.clone(),
    })
}

impl Render for Dns {
    fn text(&self) -> String {
        let mut out = format!(
            "{} {} @{} from {} over {}: {} in {} ms{}\n",
            self.domain,
            self.record_type,
            self.server,
            self.from_node,
            self.transport,
            if self.rcode.is_empty() {
                "no answer"
            } else {
                &self.rcode
            },
            self.latency_ms,
            if self.error.is_empty() {
                String::new()
            } else {
                format!(" — {}", self.error)
            }
        );
        for (section, list) in [("", &self.answers), ("authority ", &self.authority)] {
            for a in list {
                out.push_str(&format!(
                    "  {section}{} {} {} {}\n",
                    a.name, a.ttl, a.record_type, a.data
                ));
            }
        }
        let f = &self.flags;
        let flags: Vec<&str> = [
            (f.aa, "aa"),
            (f.tc, "tc"),
            (f.rd, "rd"),
            (f.ra, "ra"),
            (f.ad, "ad"),
            (f.cd, "cd"),
        ]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| n)
        .collect();
        out.push_str(&format!("flags: {}\n", flags.join(" ")));
        out
    }
}
