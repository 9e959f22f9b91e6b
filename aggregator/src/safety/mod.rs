//! Mutation safety: one gate for every tool that changes anything.
//!
//! With mutations off (the default, or `--read-only`, which always wins) the
//! mutating tools are not listed and a direct call is refused; when on, each
//! tool still asks its own allowlist from the config file's `[mutations]`
//! section. Every mutating call, allowed or refused, is one line of the
//! audit log ([`audit`]). A refusal names the rule that refused it and how
//! to allow the call.

pub mod audit;

use std::collections::BTreeMap;

use crate::config::file::Mutations;

/// The policy and the audit log, shared by every call.
#[derive(Debug, Default)]
pub struct Safety {
    /// What may be changed.
    pub policy: Policy,
    /// Where every attempt is recorded.
    pub audit: audit::AuditLog,
}

/// Why a mutating call was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The rule: `--read-only`, `mutations.enabled`, `mutations.restart`, …
    pub rule: String,
    /// What was refused and why.
    pub message: String,
    /// How to allow it.
    pub how: String,
}

/// What labscope may change: the `[mutations]` section and `--read-only`.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    mutations: Mutations,
    read_only: bool,
}

const ENABLE_HOW: &str = "set enabled = true and audit_log under [mutations] in the config file (labscope --config FILE), \
     and list what may be changed there; the README's \"Operations\" section shows an example";

impl Policy {
    /// The policy of `mutations`; `read_only` (`--read-only`) always wins.
    pub fn new(mutations: Mutations, read_only: bool) -> Self {
        Self {
            mutations,
            read_only,
        }
    }

    /// Whether mutating tools are served at all.
    pub fn mutations_on(&self) -> bool {
        self.mutations.enabled && !self.read_only
    }

    /// The `[mutations]` section.
    pub fn mutations(&self) -> &Mutations {
        &self.mutations
    }

    /// The global gate every mutating tool passes first.
    pub fn gate(&self, tool: &str) -> Result<(), Refusal> {
        if self.read_only {
            return Err(Refusal {
                rule: "--read-only".into(),
                message: format!("{tool} changes the cluster and labscope runs with --read-only"),
                how: "restart labscope without --read-only (and with [mutations] enabled = true in its config file)".into(),
            });
        }
        if !self.mutations.enabled {
            return Err(Refusal {
                rule: "mutations.enabled".into(),
                message: format!("{tool} changes the cluster and mutations are off (the default)"),
                how: ENABLE_HOW.into(),
            });
        }
        Ok(())
    }

    /// `restart_deployment` of `namespace/name`.
    pub fn restart(&self, namespace: &str, name: &str) -> Result<(), Refusal> {
        let key = format!("{namespace}/{name}");
        if self.mutations.restart.contains(&key) {
            return Ok(());
        }
        Err(Refusal {
            rule: "mutations.restart".into(),
            message: format!("Deployment {key} is not in the restart allowlist"),
            how: format!("add \"{key}\" to restart = [...] under [mutations] in the config file"),
        })
    }

    /// Reconcile, suspend, resume or recover a Flux object in `namespace`.
    pub fn flux(&self, namespace: &str) -> Result<(), Refusal> {
        if self.mutations.flux_namespaces.contains(namespace) {
            return Ok(());
        }
        Err(Refusal {
            rule: "mutations.flux_namespaces".into(),
            message: format!(
                "namespace {namespace} is not one whose Flux objects labscope may change (allowed: {})",
                list(self.mutations.flux_namespaces.iter())
            ),
            how: format!(
                "add \"{namespace}\" to flux_namespaces = [...] under [mutations] in the config file"
            ),
        })
    }

    /// `refresh_secret` in `namespace`.
    pub fn secret(&self, namespace: &str) -> Result<(), Refusal> {
        if self.mutations.secret_namespaces.contains(namespace) {
            return Ok(());
        }
        Err(Refusal {
            rule: "mutations.secret_namespaces".into(),
            message: format!(
                "namespace {namespace} is not one whose ExternalSecrets labscope may refresh (allowed: {})",
                list(self.mutations.secret_namespaces.iter())
            ),
            how: format!(
                "add \"{namespace}\" to secret_namespaces = [...] under [mutations] in the config file"
            ),
        })
    }

    /// Triggering a CronJob in `namespace` (`trigger_namespaces`, when
    /// set): the allowlist the gate asks before anything else.
    pub fn trigger(&self, namespace: &str) -> Result<(), Refusal> {
        if let Some(allowed) = &self.mutations.trigger_namespaces
            && !allowed.contains(namespace)
        {
            return Err(Refusal {
                rule: "mutations.trigger_namespaces".into(),
                message: format!(
                    "namespace {namespace} is not one whose CronJobs labscope may trigger (allowed: {})",
                    list(allowed.iter())
                ),
                how: format!(
                    "add \"{namespace}\" to trigger_namespaces = [...] under [mutations] in the config file \
                     (and bind the role labscope-cronjob-trigger there)"
                ),
            });
        }
        Ok(())
    }

    /// The CronJob `namespace/name` itself opted in to being triggered:
    /// labelled `trigger_label` (the check that needs the object, made by
    /// the tool once it has read it).
    pub fn trigger_opted_in(
        &self,
        namespace: &str,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), Refusal> {
        let (k, v) = &self.mutations.trigger_label;
        if labels.get(k) == Some(v) {
            return Ok(());
        }
        Err(Refusal {
            rule: "mutations.trigger_label".into(),
            message: format!(
                "CronJob {namespace}/{name} is not labelled {k}={v}, so it is not opted in to being triggered"
            ),
            how: format!(
                "label the CronJob {k}={v} in its manifest in Git (or `kubectl label cronjob -n {namespace} {name} {k}={v}`), \
                 or change trigger_label under [mutations]"
            ),
        })
    }

    /// `update_pihole_gravity`.
    pub fn pihole_gravity(&self) -> Result<(), Refusal> {
        self.switch(
            self.mutations.pihole_gravity,
            "pihole_gravity",
            "updating Pi-hole's gravity",
        )
    }

    /// `fix_jellyfin_metadata`.
    pub fn jellyfin_metadata(&self) -> Result<(), Refusal> {
        self.switch(
            self.mutations.jellyfin_metadata,
            "jellyfin_metadata",
            "refreshing Jellyfin metadata",
        )
    }

    fn switch(&self, on: bool, key: &str, what: &str) -> Result<(), Refusal> {
        if on {
            return Ok(());
        }
        Err(Refusal {
            rule: format!("mutations.{key}"),
            message: format!("{what} is not allowed"),
            how: format!("set {key} = true under [mutations] in the config file"),
        })
    }
}

fn list<'a>(items: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = items.map(String::as_str).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::{ErrorCode, ToolError};

    fn on() -> Mutations {
        Mutations {
            enabled: true,
            audit_log: Some("/tmp/x".into()),
            restart: ["jellyfin/jellyfin".to_string()].into(),
            ..Mutations::default()
        }
    }

    #[test]
    fn read_only_wins_and_off_is_the_default() {
        assert!(!Policy::default().mutations_on());
        assert_eq!(
            Policy::default().gate("t").unwrap_err().rule,
            "mutations.enabled"
        );
        let p = Policy::new(on(), true);
        assert!(!p.mutations_on());
        assert_eq!(p.gate("t").unwrap_err().rule, "--read-only");
        let p = Policy::new(on(), false);
        assert!(p.mutations_on());
        assert!(p.gate("t").is_ok());
    }

    #[test]
    fn allowlists_name_their_rule_and_the_fix() {
        let p = Policy::new(on(), false);
        assert!(p.restart("jellyfin", "jellyfin").is_ok());
        let r = p.restart("immich", "immich-server").unwrap_err();
        assert_eq!(r.rule, "mutations.restart");
        assert!(r.how.contains("\"immich/immich-server\""));
        assert!(p.flux("flux-system").is_ok());
        assert_eq!(
            p.flux("immich").unwrap_err().rule,
            "mutations.flux_namespaces"
        );
        assert_eq!(
            p.secret("media").unwrap_err().rule,
            "mutations.secret_namespaces"
        );
        let mut labels = BTreeMap::new();
        assert_eq!(
            p.trigger_opted_in("backup-jobs", "pvc-backup", &labels)
                .unwrap_err()
                .rule,
            "mutations.trigger_label"
        );
        labels.insert("labscope.io/trigger".to_string(), "true".to_string());
        assert!(
            p.trigger_opted_in("backup-jobs", "pvc-backup", &labels)
                .is_ok()
        );
        // Without trigger_namespaces every namespace passes the allowlist
        // (the label decides); listed, only those.
        assert!(p.trigger("flux-system").is_ok());
        let mut m = on();
        m.trigger_namespaces = Some(["backup-jobs".to_string()].into());
        let listed = Policy::new(m, false);
        assert!(listed.trigger("backup-jobs").is_ok());
        let r = listed.trigger("flux-system").unwrap_err();
        assert_eq!(r.rule, "mutations.trigger_namespaces");
        assert!(r.how.contains("\"flux-system\""), "{}", r.how);
        assert_eq!(
            p.pihole_gravity().unwrap_err().rule,
            "mutations.pihole_gravity"
        );
        let e: ToolError = p.jellyfin_metadata().unwrap_err().into();
        assert_eq!(e.code, ErrorCode::Refused);
        assert_eq!(e.rule.as_deref(), Some("mutations.jellyfin_metadata"));
    }
}
