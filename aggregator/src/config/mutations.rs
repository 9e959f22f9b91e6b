//! `[mutations]`: whether and where labscope may change anything — the
//! allowlists every operation's gate asks ([`crate::safety::Policy`]).

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::Deserialize;

use super::file::{Check, Error, dns_name};

/// The `[mutations]` section: everything labscope may change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mutations {
    /// Nothing changes anything unless true (`--read-only` always wins).
    pub enabled: bool,
    /// Where every mutating call, allowed or refused, is recorded.
    pub audit_log: Option<PathBuf>,
    /// Deployments (`namespace/name`) `restart_deployment` may restart.
    pub restart: BTreeSet<String>,
    /// Namespaces whose Flux objects may be reconciled, suspended, resumed
    /// or recovered.
    pub flux_namespaces: BTreeSet<String>,
    /// Namespaces whose ExternalSecrets `refresh_secret` may refresh.
    pub secret_namespaces: BTreeSet<String>,
    /// The label (`key=value`) a CronJob must carry to be triggered.
    pub trigger_label: (String, String),
    /// Namespaces whose CronJobs may be triggered; `None` (the key absent):
    /// the label alone decides. Listing them lets labscope refuse before
    /// the API server does (RBAC binds `jobs create` only there).
    pub trigger_namespaces: Option<BTreeSet<String>>,
    /// `update_pihole_gravity` allowed.
    pub pihole_gravity: bool,
    /// `fix_jellyfin_metadata` allowed.
    pub jellyfin_metadata: bool,
    /// What an operation does when nobody can be asked to confirm it (an
    /// MCP client that can take no question, a CLI without a terminal or
    /// `--yes`).
    pub confirm_fallback: ConfirmFallback,
}

/// `[mutations] confirm_fallback`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConfirmFallback {
    /// Go ahead: the allowlists and the audit log already bound it (the
    /// default).
    #[default]
    Allow,
    /// Refuse: only a person's yes runs an operation.
    Refuse,
}

/// Default [`Mutations::trigger_label`].
pub const DEFAULT_TRIGGER_LABEL: &str = "labscope.io/trigger=true";

impl Default for Mutations {
    fn default() -> Self {
        Self {
            enabled: false,
            audit_log: None,
            restart: BTreeSet::new(),
            flux_namespaces: ["flux-system".to_string()].into(),
            secret_namespaces: BTreeSet::new(),
            trigger_label: ("labscope.io/trigger".into(), "true".into()),
            trigger_namespaces: None,
            pihole_gravity: false,
            jellyfin_metadata: false,
            confirm_fallback: ConfirmFallback::Allow,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    #[serde(default)]
    enabled: bool,
    audit_log: Option<PathBuf>,
    #[serde(default)]
    restart: Vec<String>,
    flux_namespaces: Option<Vec<String>>,
    #[serde(default)]
    secret_namespaces: Vec<String>,
    trigger_label: Option<String>,
    trigger_namespaces: Option<Vec<String>>,
    #[serde(default)]
    pihole_gravity: bool,
    #[serde(default)]
    jellyfin_metadata: bool,
    confirm_fallback: Option<String>,
}

/// A label key (`prefix/name` or `name`) and value as Kubernetes allows.
pub(super) fn label_pair(s: &str) -> Option<(String, String)> {
    let (k, v) = s.split_once('=')?;
    let (k, v) = (k.trim(), v.trim());
    let name = k
        .rsplit_once('/')
        .map_or(k, |(prefix, name)| if dns_name(prefix) { name } else { "" });
    let token = |t: &str, empty_ok: bool| {
        (empty_ok && t.is_empty())
            || (!t.is_empty()
                && t.len() <= 63
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                && t.as_bytes()[0].is_ascii_alphanumeric()
                && t.as_bytes()[t.len() - 1].is_ascii_alphanumeric())
    };
    (token(name, false) && token(v, true)).then(|| (k.to_string(), v.to_string()))
}

/// Validates `[mutations]`; a key left out keeps its default.
pub(super) fn validate(c: &Check, m: Raw) -> Result<Mutations, Error> {
    let mut out = Mutations {
        enabled: m.enabled,
        audit_log: m.audit_log,
        pihole_gravity: m.pihole_gravity,
        jellyfin_metadata: m.jellyfin_metadata,
        ..Mutations::default()
    };
    out.confirm_fallback = match m.confirm_fallback.as_deref().map(str::trim) {
        None | Some("allow") => ConfirmFallback::Allow,
        Some("refuse") => ConfirmFallback::Refuse,
        Some(other) => {
            return Err(c.invalid(
                "mutations.confirm_fallback",
                format!("{other:?} is neither \"allow\" nor \"refuse\""),
            ));
        }
    };
    for (i, r) in m.restart.iter().enumerate() {
        match r.split_once('/') {
            Some((ns, name)) if dns_name(ns) && dns_name(name) => {
                out.restart.insert(r.clone());
            }
            _ => {
                return Err(c.invalid(
                    &format!("mutations.restart[{i}]"),
                    format!("{r:?} is not namespace/name (e.g. \"jellyfin/jellyfin\")"),
                ));
            }
        }
    }
    if let Some(ns) = m.flux_namespaces {
        out.flux_namespaces.clear();
        for (i, n) in ns.iter().enumerate() {
            if !dns_name(n) {
                return Err(c.invalid(
                    &format!("mutations.flux_namespaces[{i}]"),
                    format!("{n:?} is not a namespace name"),
                ));
            }
            out.flux_namespaces.insert(n.clone());
        }
    }
    for (i, n) in m.secret_namespaces.iter().enumerate() {
        if !dns_name(n) {
            return Err(c.invalid(
                &format!("mutations.secret_namespaces[{i}]"),
                format!("{n:?} is not a namespace name"),
            ));
        }
        out.secret_namespaces.insert(n.clone());
    }
    if let Some(label) = m.trigger_label {
        out.trigger_label = label_pair(&label).ok_or_else(|| {
            c.invalid(
                "mutations.trigger_label",
                format!("{label:?} is not key=value (e.g. {DEFAULT_TRIGGER_LABEL:?})"),
            )
        })?;
    }
    if let Some(ns) = m.trigger_namespaces {
        let mut set = BTreeSet::new();
        for (i, n) in ns.iter().enumerate() {
            if !dns_name(n) {
                return Err(c.invalid(
                    &format!("mutations.trigger_namespaces[{i}]"),
                    format!("{n:?} is not a namespace name"),
                ));
            }
            set.insert(n.clone());
        }
        out.trigger_namespaces = Some(set);
    }
    if out.enabled && out.audit_log.is_none() {
        return Err(c.invalid(
            "mutations.audit_log",
            "required when mutations are enabled: every change labscope makes is recorded there (e.g. \"/var/lib/labscope/audit.jsonl\")",
        ));
    }
    Ok(out)
}
