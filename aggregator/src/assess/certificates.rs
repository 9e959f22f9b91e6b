//! cert-manager Certificates judged: ready, expiring (within the asked
//! days or the certificate's own renewal window), renewal overdue, and for
//! one that is not ready the failing CertificateRequest → Order → Challenge
//! chain with its hint. `tools/certificates.rs` reads the four kinds.

use std::collections::BTreeMap;

use kube::api::DynamicObject;
use schemars::JsonSchema;
use serde::Serialize;

use super::FailedPart;
use crate::cluster::kinds::{fields, meta};
use crate::cluster::time::{parse_rfc3339, rfc3339};

/// The verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
pub enum CertVerdict {
    /// All ready, none expiring.
    #[serde(rename = "healthy")]
    Healthy,
    /// Expiring or renewal overdue.
    #[serde(rename = "degraded")]
    Degraded,
    /// A certificate is not ready.
    #[serde(rename = "critical")]
    Critical,
    /// A kind could not be read.
    #[serde(rename = "incomplete")]
    Incomplete,
    /// No certificates.
    #[serde(rename = "no certificates")]
    NoCertificates,
    /// cert-manager is not installed.
    #[serde(rename = "not installed")]
    NotInstalled,
}

/// The issuer.
#[derive(Debug, Serialize, JsonSchema)]
pub struct IssuerRef {
    /// Issuer or ClusterIssuer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A condition's state.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ConditionState {
    /// True, False, Unknown.
    pub status: String,
    /// Reason.
    pub reason: String,
    /// Message.
    pub message: String,
}

/// One step of the issuance chain.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChainStep {
    /// CertificateRequest, Order or Challenge.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Ready (CertificateRequest).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
    /// State (Order, Challenge).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Challenge type (DNS-01, HTTP-01).
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub challenge_type: Option<String>,
    /// Challenge name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_name: Option<String>,
    /// Challenge presented.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presented: Option<bool>,
}

/// One Certificate.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Cert {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Ready.
    pub ready: bool,
    /// Ready's reason.
    pub reason: String,
    /// Ready's message.
    pub message: String,
    /// Expiry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
    /// When cert-manager renews it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renewal_time: Option<String>,
    /// Days until expiry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub days_left: Option<i64>,
    /// Expires within expiringWithinDays, or within its own renewal window
    /// when that is shorter (cert-manager renews it then).
    pub expiring: bool,
    /// Days past its renewal time (renewal failing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renewal_overdue_days: Option<i64>,
    /// Issuer.
    pub issuer: IssuerRef,
    /// Names.
    pub dns_names: Vec<String>,
    /// Failed issuance attempts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_issuance_attempts: Option<i64>,
    /// Last failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failure_time: Option<String>,
    /// The Issuing condition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuing: Option<ConditionState>,
    /// For a certificate not ready: its requests, orders and challenges.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<ChainStep>,
    /// What to do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// Counts.
#[derive(Debug, Default, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertSummary {
    /// Certificates.
    pub total: usize,
    /// Ready.
    pub ready: usize,
    /// Not ready.
    pub not_ready: usize,
    /// Expiring.
    pub expiring: usize,
    /// Renewal overdue.
    pub renewal_overdue: usize,
}

/// cert-manager certificates.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Certificates {
    /// cert-manager serves Certificate.
    pub installed: bool,
    /// Verdict.
    pub verdict: CertVerdict,
    /// Version Certificates were read at.
    pub api_version: String,
    /// Version each kind was read at.
    pub api_versions: BTreeMap<String, String>,
    /// The clock used (Unix seconds).
    pub now: i64,
    /// Expiring threshold.
    pub expiring_within_days: i64,
    /// Counts.
    pub summary: CertSummary,
    /// Problems first, then by days left.
    pub certificates: Vec<Cert>,
    /// Kinds that could not be read.
    pub failed_parts: Vec<FailedPart>,
}

/// Objects of `list` in `ns` whose owner is exactly `kind`/`parent` (by
/// uid when the parent's uid is known). Names are never used, so
/// `jellyfin` does not pick up `jellyfin-tls`'s requests.
fn children<'a>(
    list: &'a [DynamicObject],
    ns: &str,
    kind: &str,
    parent: &DynamicObject,
) -> Vec<&'a DynamicObject> {
    let name = parent.metadata.name.as_deref().unwrap_or_default();
    let uid = parent.metadata.uid.as_deref();
    list.iter()
        .filter(|o| o.metadata.namespace.as_deref() == Some(ns))
        .filter(|o| {
            let owned = o.metadata.owner_references.iter().flatten().any(|r| {
                r.kind == kind
                    && r.name == name
                    && uid.is_none_or(|u| r.uid.is_empty() || r.uid == u)
            });
            // CertificateRequests also name their Certificate in an annotation.
            let annotated = kind == "Certificate"
                && o.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("cert-manager.io/certificate-name"))
                    .is_some_and(|n| n == name);
            owned || annotated
        })
        .collect()
}

/// The cert-manager fields read, typed (cert-manager.io/v1 and
/// acme.cert-manager.io/v1): absent is `None`; a field of another type
/// makes the row say which ([`fields`]). The Ingress check reads them too.
pub(crate) mod wire {
    use serde::Deserialize;

    use crate::cluster::kinds::Conditions;

    /// A Certificate.
    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    pub struct Certificate {
        pub spec: CertSpec,
        pub status: CertStatus,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct CertSpec {
        pub issuer_ref: IssuerRef,
        pub dns_names: Vec<String>,
        /// A Go duration.
        pub renew_before: Option<String>,
        /// The Secret it writes (what an Ingress's TLS names).
        pub secret_name: Option<String>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    pub struct IssuerRef {
        pub kind: Option<String>,
        pub name: Option<String>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct CertStatus {
        #[serde(flatten)]
        pub conditions: Conditions,
        pub not_after: Option<String>,
        pub not_before: Option<String>,
        pub renewal_time: Option<String>,
        pub failed_issuance_attempts: Option<i64>,
        pub last_failure_time: Option<String>,
    }

    /// A CertificateRequest (its conditions).
    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    pub struct Request {
        pub status: Conditions,
    }

    /// An ACME Order.
    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    pub struct Order {
        pub status: State,
    }

    /// An Order's or a Challenge's state.
    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    pub struct State {
        pub state: Option<String>,
        pub reason: Option<String>,
        pub presented: Option<bool>,
    }

    /// An ACME Challenge.
    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    pub struct Challenge {
        pub spec: ChallengeSpec,
        pub status: State,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct ChallengeSpec {
        /// HTTP-01 or DNS-01.
        #[serde(rename = "type")]
        pub kind: Option<String>,
        pub dns_name: Option<String>,
    }
}

/// Judges each Certificate at `now_s` (pure).
pub fn assess(
    installed: bool,
    api_versions: BTreeMap<String, String>,
    [certs, requests, orders, challenges]: [&[DynamicObject]; 4],
    failed_parts: Vec<FailedPart>,
    within: i64,
    now_s: i64,
) -> Certificates {
    let days = |secs: i64| secs.div_euclid(86_400);
    let mut rows = Vec::new();
    for cert in certs {
        let (cns, name) = meta(cert);
        let (c, unreadable) = match fields::<wire::Certificate>(cert) {
            Ok(c) => (c, None),
            Err(e) => (wire::Certificate::default(), Some(e)),
        };
        let st = &c.status;
        let (ready_s, reason, message) = crate::cluster::kinds::judged(
            unreadable.as_ref().map_or(Ok(&st.conditions), Err),
            "Ready",
            ("Certificate", "a cert-manager"),
        );
        let ready = ready_s == "True";
        let time = |t: &Option<String>| t.as_deref().and_then(parse_rfc3339);
        let not_after = time(&st.not_after);
        let renewal = time(&st.renewal_time);
        let days_left = not_after.map(|t| days(t - now_s));
        // The certificate's own renewal window, as cert-manager computes it:
        // notAfter − renewalTime, else spec.renewBefore, else a third of its
        // lifetime (the 2/3 rule). A certificate is expiring inside the
        // smaller of that and the window asked for: a 90-day Let's Encrypt
        // certificate renewed 30 days before expiry is normal at 66 days
        // left, whatever window the caller chose.
        let not_before = time(&st.not_before);
        let renew_window = not_after
            .zip(renewal)
            .map(|(a, r)| a - r)
            .or_else(|| {
                c.spec
                    .renew_before
                    .as_deref()
                    .and_then(crate::cluster::time::parse_go_duration)
            })
            .or_else(|| not_after.zip(not_before).map(|(a, b)| (a - b) / 3))
            .filter(|w| *w > 0);
        let window = renew_window.map_or(within, |w| within.min(days(w)));
        let mut row = Cert {
            namespace: cns.clone(),
            name: name.clone(),
            ready,
            reason,
            message,
            not_after: not_after.map(rfc3339),
            renewal_time: renewal.map(rfc3339),
            days_left,
            expiring: days_left.is_some_and(|d| d <= window),
            renewal_overdue_days: renewal.filter(|r| *r < now_s).map(|r| days(now_s - r)),
            issuer: IssuerRef {
                kind: c.spec.issuer_ref.kind.clone(),
                name: c.spec.issuer_ref.name.clone(),
            },
            dns_names: c.spec.dns_names.clone(),
            failed_issuance_attempts: st.failed_issuance_attempts,
            last_failure_time: st.last_failure_time.clone(),
            issuing: st.conditions.get("Issuing").map(|i| ConditionState {
                status: i.status.clone(),
                reason: i.reason.clone(),
                message: i.message.clone(),
            }),
            chain: Vec::new(),
            hint: None,
        };
        if !ready {
            // Walk the chain, by owner references, to the thing that fails.
            for cr in children(requests, &cns, "Certificate", cert) {
                let (s, r, m) = fields::<wire::Request>(cr)
                    .map_err(|e| ("Unknown".into(), "Unreadable".into(), e))
                    .map(|r| {
                        r.status
                            .get("Ready")
                            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
                            .unwrap_or_default()
                    })
                    .unwrap_or_else(|e| e);
                row.chain.push(ChainStep {
                    kind: "CertificateRequest".into(),
                    name: cr.metadata.name.clone().unwrap_or_default(),
                    ready: Some(s == "True"),
                    state: None,
                    reason: Some(r),
                    message: Some(m),
                    challenge_type: None,
                    dns_name: None,
                    presented: None,
                });
                for order in children(orders, &cns, "CertificateRequest", cr) {
                    let o = fields::<wire::Order>(order).unwrap_or_else(|e| wire::Order {
                        status: wire::State {
                            reason: Some(e),
                            ..Default::default()
                        },
                    });
                    row.chain.push(ChainStep {
                        kind: "Order".into(),
                        name: order.metadata.name.clone().unwrap_or_default(),
                        ready: None,
                        state: o.status.state,
                        reason: o.status.reason,
                        message: None,
                        challenge_type: None,
                        dns_name: None,
                        presented: None,
                    });
                    for ch in children(challenges, &cns, "Order", order) {
                        let c = fields::<wire::Challenge>(ch).unwrap_or_else(|e| wire::Challenge {
                            status: wire::State {
                                reason: Some(e),
                                ..Default::default()
                            },
                            ..Default::default()
                        });
                        let reason = c.status.reason.clone().unwrap_or_default();
                        if reason.contains("Cloudflare") {
                            row.hint = Some(
                                "DNS-01 through Cloudflare is failing: check the cloudflare-api-token Secret \
                                 (namespace cert-manager) and the token's permissions"
                                    .into(),
                            );
                        } else if !reason.is_empty() && row.hint.is_none() {
                            row.hint = Some(format!("the ACME challenge fails: {reason}"));
                        }
                        row.chain.push(ChainStep {
                            kind: "Challenge".into(),
                            name: ch.metadata.name.clone().unwrap_or_default(),
                            ready: None,
                            state: c.status.state,
                            reason: Some(reason),
                            message: None,
                            challenge_type: c.spec.kind,
                            dns_name: c.spec.dns_name,
                            presented: c.status.presented,
                        });
                    }
                }
            }
        }
        rows.push(row);
    }
    // Problems first, then by days left.
    rows.sort_by_key(|r| (r.ready && !r.expiring, r.days_left.unwrap_or(i64::MAX)));
    let summary = CertSummary {
        total: rows.len(),
        ready: rows.iter().filter(|r| r.ready).count(),
        not_ready: rows.iter().filter(|r| !r.ready).count(),
        expiring: rows.iter().filter(|r| r.expiring).count(),
        renewal_overdue: rows
            .iter()
            .filter(|r| r.renewal_overdue_days.is_some())
            .count(),
    };
    let verdict = if !installed {
        CertVerdict::NotInstalled
    } else if summary.not_ready > 0 {
        CertVerdict::Critical
    } else if summary.expiring > 0 || summary.renewal_overdue > 0 {
        CertVerdict::Degraded
    } else if !failed_parts.is_empty() {
        CertVerdict::Incomplete
    } else if rows.is_empty() {
        CertVerdict::NoCertificates
    } else {
        CertVerdict::Healthy
    };
    Certificates {
        installed,
        verdict,
        api_version: api_versions.get("Certificate").cloned().unwrap_or_default(),
        api_versions,
        now: now_s,
        expiring_within_days: within,
        summary,
        certificates: rows,
        failed_parts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(name: &str, spec: serde_json::Value, status: serde_json::Value) -> DynamicObject {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
            "metadata": {"name": name, "namespace": "ns"},
            "spec": spec,
            "status": status,
        }))
        .unwrap()
    }

    /// A field of another type than cert-manager's API gives is named, and
    /// the certificate is not ready, instead of reading as absent.
    #[test]
    fn a_field_of_another_type_is_named() {
        let odd = cert(
            "odd",
            serde_json::json!({"dnsNames": "example.com"}),
            serde_json::json!({"conditions": [{"type": "Ready", "status": "True"}]}),
        );
        let out = assess(
            true,
            BTreeMap::new(),
            [&[odd], &[], &[], &[]],
            Vec::new(),
            30,
            0,
        );
        let c = &out.certificates[0];
        assert!(!c.ready);
        assert_eq!(c.reason, "Unreadable");
        assert!(c.message.contains("field `spec.dnsNames`"), "{}", c.message);
    }

    /// Each certificate is expiring only inside its own renewal window when
    /// that is shorter than the one asked for: from renewalTime, else
    /// spec.renewBefore, else the 2/3 rule.
    #[test]
    fn the_renewal_window_is_the_certificates_own() {
        let now = 1_800_000_000;
        let day = 86_400;
        let ready = serde_json::json!([{"type": "Ready", "status": "True"}]);
        let at = |t: i64| rfc3339(t);
        let certs = [
            // 66 days left, renewal at 30 days: normal.
            cert(
                "renewal-time",
                serde_json::json!({}),
                serde_json::json!({"conditions": ready,
                "notBefore": at(now - 24 * day), "notAfter": at(now + 66 * day), "renewalTime": at(now + 36 * day)}),
            ),
            // 66 days left, renewBefore 720h: normal.
            cert(
                "renew-before",
                serde_json::json!({"renewBefore": "720h"}),
                serde_json::json!({"conditions": ready,
                "notBefore": at(now - 24 * day), "notAfter": at(now + 66 * day)}),
            ),
            // 90-day lifetime, no renewal data: a third is 30 days; 66 left is normal.
            cert(
                "two-thirds",
                serde_json::json!({}),
                serde_json::json!({"conditions": ready,
                "notBefore": at(now - 24 * day), "notAfter": at(now + 66 * day)}),
            ),
            // 20 days left of a 90-day certificate: inside every window.
            cert(
                "due",
                serde_json::json!({}),
                serde_json::json!({"conditions": ready,
                "notBefore": at(now - 70 * day), "notAfter": at(now + 20 * day)}),
            ),
        ];
        let out = assess(
            true,
            BTreeMap::new(),
            [&certs, &[], &[], &[]],
            Vec::new(),
            90,
            now,
        );
        let expiring: Vec<&str> = out
            .certificates
            .iter()
            .filter(|c| c.expiring)
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(expiring, ["due"]);
        // A window narrower than the certificate's own still applies.
        let out = assess(
            true,
            BTreeMap::new(),
            [&certs, &[], &[], &[]],
            Vec::new(),
            10,
            now,
        );
        assert!(out.certificates.iter().all(|c| !c.expiring));
    }
}
