//! The homelab's DNS judged: each Pi-hole's answer (blocking, its timer,
//! errors) and the DNS workloads' pods; never healthy when a Pi-hole's
//! answer is missing, none is configured, or a role has no ready pod.
//! `tools/dns.rs` asks the Pi-holes and reads the pods.

use schemars::JsonSchema;
use serde::Serialize;

use super::FailedPart;

/// The verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DnsVerdict {
    /// Every Pi-hole answered, blocks, and every workload has ready pods.
    Healthy,
    /// Something is missing or off, but DNS answers.
    Degraded,
    /// No Pi-hole answers, or no Pi-hole workload has a ready pod.
    Critical,
    /// No Pi-hole is configured: nothing could be checked.
    #[serde(rename = "not configured")]
    NotConfigured,
}

/// A service failure, machine-readable.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ServiceError {
    /// wrong_password, rate_limited, seats_exceeded, http_error,
    /// unreachable, bad_response.
    pub code: String,
    /// What failed.
    pub message: String,
    /// What to do.
    pub hint: String,
}

/// Query statistics.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct PiholeStats {
    /// Queries (24 h).
    pub queries: u64,
    /// Blocked queries.
    pub blocked: u64,
    /// Blocked, percent.
    #[serde(rename = "percentBlocked")]
    pub percent_blocked: f64,
    /// Distinct domains.
    #[serde(rename = "uniqueDomains")]
    pub unique_domains: u64,
    /// Active clients.
    #[serde(rename = "clientsActive")]
    pub clients_active: u64,
    /// Domains on the gravity list.
    #[serde(rename = "gravityDomains")]
    pub gravity_domains: u64,
    /// Last gravity update.
    #[serde(rename = "gravityUpdated")]
    pub gravity_updated: Option<String>,
    /// Its age in days (0 when the Pi-hole's clock is ahead of labscope's).
    #[serde(rename = "gravityAgeDays")]
    pub gravity_age_days: Option<f64>,
    /// How far the Pi-hole's clock is ahead of labscope's, in seconds, when
    /// its last gravity update lies in labscope's future (by more than a
    /// minute): a skewed clock, not a negative age.
    #[serde(rename = "clockAheadSeconds", skip_serializing_if = "Option::is_none")]
    pub clock_ahead_seconds: Option<i64>,
}

/// One Pi-hole.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct PiholeStatus {
    /// primary or secondary.
    pub instance: String,
    /// Its URL.
    pub url: String,
    /// Every read answered.
    pub ok: bool,
    /// The failure, when one read failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ServiceError>,
    /// enabled, disabled, failed, unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocking: Option<String>,
    /// Seconds until blocking switches back, when a timer runs.
    #[serde(rename = "blockingTimer", skip_serializing_if = "Option::is_none")]
    pub blocking_timer: Option<f64>,
    /// Statistics (includeStats).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats: Option<PiholeStats>,
    /// FTL's diagnostic messages.
    pub messages: Vec<String>,
}

/// A DNS workload's pods.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct DnsWorkload {
    /// Deployment.
    pub name: String,
    /// pihole or unbound.
    pub role: String,
    /// Desired replicas.
    pub desired: i32,
    /// Pods (Job pods excluded).
    pub pods: u32,
    /// Ready pods.
    pub ready: u32,
    /// Container restarts.
    pub restarts: u32,
    /// ok, not ready, no pods, scaled to zero, missing.
    pub status: String,
}

/// The answer.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DnsStatus {
    /// The verdict.
    pub verdict: DnsVerdict,
    /// What keeps it from healthy, most serious first.
    pub issues: Vec<String>,
    /// The configured Pi-holes.
    pub piholes: Vec<PiholeStatus>,
    /// The DNS workloads (namespace pihole).
    pub workloads: Vec<DnsWorkload>,
    /// Parts that could not be read.
    #[serde(rename = "failedParts")]
    pub failed_parts: Vec<FailedPart>,
}

/// Seconds as people read them (`5 min`, `1 min 30 s`, `45 s`).
pub fn human_seconds(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    if s >= 60 && s.is_multiple_of(60) {
        format!("{} min", s / 60)
    } else if s >= 60 {
        format!("{} min {} s", s / 60, s % 60)
    } else {
        format!("{s} s")
    }
}

/// The verdict over what was read.
pub fn assess(
    piholes: Vec<PiholeStatus>,
    workloads: Vec<DnsWorkload>,
    failed: Vec<FailedPart>,
) -> DnsStatus {
    let mut critical = Vec::new();
    let mut degraded = Vec::new();
    if piholes.is_empty() {
        return DnsStatus {
            verdict: DnsVerdict::NotConfigured,
            issues: vec![
                "no Pi-hole is configured: add [pihole.primary] (url, password_env or password_file) to the config file".into(),
            ],
            piholes,
            workloads,
            failed_parts: failed,
        };
    }
    for p in &piholes {
        if let Some(e) = &p.error {
            degraded.push(format!("Pi-hole {}: {}", p.instance, e.message));
        }
        match p.blocking.as_deref() {
            Some("enabled") | None => {}
            Some(other) => degraded.push(match p.blocking_timer {
                Some(t) => format!(
                    "Pi-hole {}: blocking {other}, switches back in {}",
                    p.instance,
                    human_seconds(t)
                ),
                None => format!("Pi-hole {}: blocking {other}", p.instance),
            }),
        }
    }
    if piholes.iter().all(|p| p.blocking.is_none()) {
        critical.push("no Pi-hole answered its API".to_string());
    }
    for w in &workloads {
        if w.status != "ok" {
            degraded.push(format!("{} ({}): {}", w.name, w.role, w.status));
        }
    }
    for role in ["pihole", "unbound"] {
        let of_role: Vec<&DnsWorkload> = workloads.iter().filter(|w| w.role == role).collect();
        if !of_role.is_empty() && of_role.iter().all(|w| w.ready == 0) {
            critical.push(format!("no {role} pod is ready"));
        }
    }
    for f in &failed {
        degraded.push(format!("{} not read: {}", f.part, f.message));
    }
    let verdict = if !critical.is_empty() {
        DnsVerdict::Critical
    } else if !degraded.is_empty() {
        DnsVerdict::Degraded
    } else {
        DnsVerdict::Healthy
    };
    critical.extend(degraded);
    DnsStatus {
        verdict,
        issues: critical,
        piholes,
        workloads,
        failed_parts: failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pihole(instance: &str, blocking: Option<&str>) -> PiholeStatus {
        PiholeStatus {
            instance: instance.into(),
            url: format!("http://{instance}"),
            ok: blocking.is_some(),
            error: None,
            blocking: blocking.map(str::to_string),
            blocking_timer: None,
            stats: None,
            messages: Vec::new(),
        }
    }

    fn workload(name: &str, role: &str, ready: u32) -> DnsWorkload {
        DnsWorkload {
            name: name.into(),
            role: role.into(),
            desired: 1,
            pods: 1,
            ready,
            restarts: 0,
            status: if ready > 0 { "ok" } else { "not ready" }.into(),
        }
    }

    type Reads = (Vec<PiholeStatus>, Vec<DnsWorkload>, Vec<FailedPart>);

    fn healthy() -> Reads {
        (
            vec![
                pihole("primary", Some("enabled")),
                pihole("secondary", Some("enabled")),
            ],
            vec![
                workload("pihole", "pihole", 1),
                workload("pihole-secondary", "pihole", 1),
                workload("unbound", "unbound", 1),
                workload("unbound-secondary", "unbound", 1),
            ],
            Vec::new(),
        )
    }

    type Case = (&'static str, fn(&mut Reads), DnsVerdict, &'static str);

    const CASES: &[Case] = &[
        ("all well", |_| {}, DnsVerdict::Healthy, ""),
        (
            "no Pi-hole configured",
            |r| r.0.clear(),
            DnsVerdict::NotConfigured,
            "no Pi-hole is configured",
        ),
        (
            "blocking paused, with its timer",
            |r| {
                r.0[1].blocking = Some("disabled".into());
                r.0[1].blocking_timer = Some(300.0);
            },
            DnsVerdict::Degraded,
            "Pi-hole secondary: blocking disabled, switches back in 5 min",
        ),
        (
            "no Pi-hole answered its API",
            |r| r.0 = vec![pihole("primary", None), pihole("secondary", None)],
            DnsVerdict::Critical,
            "no Pi-hole answered its API",
        ),
        (
            "one Pi-hole refusing its password",
            |r| {
                r.0[0].error = Some(ServiceError {
                    code: "wrong_password".into(),
                    message: "the password was refused".into(),
                    hint: String::new(),
                })
            },
            DnsVerdict::Degraded,
            "Pi-hole primary: the password was refused",
        ),
        (
            "no Unbound pod ready",
            |r| {
                r.1[2] = workload("unbound", "unbound", 0);
                r.1[3] = workload("unbound-secondary", "unbound", 0);
            },
            DnsVerdict::Critical,
            "no unbound pod is ready",
        ),
        (
            "one of two Unbounds down is degraded",
            |r| r.1[3] = workload("unbound-secondary", "unbound", 0),
            DnsVerdict::Degraded,
            "unbound-secondary (unbound): not ready",
        ),
    ];

    #[test]
    fn each_rule_gives_its_verdict() {
        for (name, change, verdict, says) in CASES {
            let mut r = healthy();
            change(&mut r);
            let d = assess(r.0, r.1, r.2);
            assert_eq!(d.verdict, *verdict, "{name}: {:?}", d.issues);
            if says.is_empty() {
                assert!(d.issues.is_empty(), "{name}: {:?}", d.issues);
            } else {
                assert!(d.issues[0].contains(says), "{name}: {:?}", d.issues);
            }
        }
    }
}
