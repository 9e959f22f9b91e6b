//! `[workloads]`: which Deployments are the homelab's DNS and media
//! services, and which namespaces hold its backups — what get_dns_status,
//! diagnose_dns, get_media_status, get_backup_status and get_cluster_health
//! look for. Listed here, never assumed by name in the code; the defaults
//! are the reference homelab's (docs/configuration.md).
//!
//! ```toml
//! [workloads]
//! dns_namespace = "pihole"
//! pihole = ["pihole", "pihole-secondary"]       # Deployments in dns_namespace
//! unbound = ["unbound", "unbound-secondary"]    # their pods are labelled app=<name>
//! backup_namespaces = ["backup-jobs"]
//!
//! [[workloads.media]]                           # replaces the whole default list
//! namespace = "jellyfin"
//! deployment = "jellyfin"
//! app = "jellyfin"                              # jellyfin or immich
//! role = "server"                               # server, database or cache
//! ```

use std::collections::BTreeSet;

use serde::Deserialize;

use super::file::{Check, Error, dns_name};

/// A DNS Deployment and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsWorkload {
    /// The Deployment, in [`Workloads::dns_namespace`].
    pub deployment: String,
    /// `pihole` or `unbound`.
    pub role: &'static str,
}

/// A media Deployment and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaWorkload {
    /// Its namespace.
    pub namespace: String,
    /// The Deployment.
    pub deployment: String,
    /// `jellyfin` or `immich`.
    pub app: String,
    /// `server`, `database` or `cache`.
    pub role: String,
}

/// The homelab's workloads, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workloads {
    /// Where the Pi-hole and Unbound Deployments run.
    pub dns_namespace: String,
    /// The Pi-hole and Unbound Deployments.
    pub dns: Vec<DnsWorkload>,
    /// The Jellyfin and Immich Deployments.
    pub media: Vec<MediaWorkload>,
    /// Every CronJob in these namespaces is a backup.
    pub backup_namespaces: BTreeSet<String>,
}

impl Default for Workloads {
    /// The reference homelab's (docs/configuration.md).
    fn default() -> Self {
        let dns = |deployment: &str, role| DnsWorkload {
            deployment: deployment.into(),
            role,
        };
        let media = |namespace: &str, deployment: &str, app: &str, role: &str| MediaWorkload {
            namespace: namespace.into(),
            deployment: deployment.into(),
            app: app.into(),
            role: role.into(),
        };
        Self {
            dns_namespace: "pihole".into(),
            dns: vec![
                dns("pihole", "pihole"),
                dns("pihole-secondary", "pihole"),
                dns("unbound", "unbound"),
                dns("unbound-secondary", "unbound"),
            ],
            media: vec![
                media("jellyfin", "jellyfin", "jellyfin", "server"),
                media("immich", "immich-server", "immich", "server"),
                media("immich", "immich-postgresql", "immich", "database"),
                media("immich", "immich-valkey", "immich", "cache"),
            ],
            backup_namespaces: ["backup-jobs".to_string()].into(),
        }
    }
}

impl Workloads {
    /// The Deployments of one DNS role.
    pub fn dns_of(&self, role: &str) -> impl Iterator<Item = &str> {
        self.dns
            .iter()
            .filter(move |w| w.role == role)
            .map(|w| w.deployment.as_str())
    }

    /// The label selector of the Unbound pods (`app in (…)`).
    pub fn unbound_selector(&self) -> String {
        format!(
            "app in ({})",
            self.dns_of("unbound").collect::<Vec<_>>().join(",")
        )
    }

    /// The media namespaces, in the order first listed.
    pub fn media_namespaces(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for w in &self.media {
            if !out.contains(&w.namespace.as_str()) {
                out.push(&w.namespace);
            }
        }
        out
    }

    /// `[workloads]` for `labscope config check`.
    pub fn describe(&self) -> String {
        let media: Vec<String> = self
            .media
            .iter()
            .map(|w| format!("{}/{} ({} {})", w.namespace, w.deployment, w.app, w.role))
            .collect();
        format!(
            "[workloads] dns_namespace = {}; pihole = {}; unbound = {}\n  media = {}\n  backup_namespaces = {}\n",
            self.dns_namespace,
            self.dns_of("pihole").collect::<Vec<_>>().join(", "),
            self.dns_of("unbound").collect::<Vec<_>>().join(", "),
            media.join(", "),
            self.backup_namespaces
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
        )
    }
}

/// `[workloads]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    dns_namespace: Option<String>,
    pihole: Option<Vec<String>>,
    unbound: Option<Vec<String>>,
    media: Option<Vec<RawMedia>>,
    backup_namespaces: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMedia {
    namespace: String,
    deployment: String,
    app: String,
    role: String,
}

/// Validates `[workloads]`: every name a Kubernetes name, every app and
/// role one labscope knows; a key left out keeps its default.
pub(super) fn validate(c: &Check, raw: Raw) -> Result<Workloads, Error> {
    let mut out = Workloads::default();
    let name = |key: String, n: &str| -> Result<String, Error> {
        if dns_name(n) {
            Ok(n.to_string())
        } else {
            Err(c.invalid(&key, format!("{n:?} is not a Kubernetes name")))
        }
    };
    if let Some(ns) = raw.dns_namespace {
        out.dns_namespace = name("workloads.dns_namespace".into(), &ns)?;
    }
    for (role, list) in [("pihole", raw.pihole), ("unbound", raw.unbound)] {
        let Some(list) = list else { continue };
        if list.is_empty() {
            return Err(c.invalid(
                &format!("workloads.{role}"),
                "lists no Deployment: name at least one (leave the key out for the default)",
            ));
        }
        out.dns.retain(|w| w.role != role);
        for (i, d) in list.iter().enumerate() {
            out.dns.push(DnsWorkload {
                deployment: name(format!("workloads.{role}[{i}]"), d)?,
                role,
            });
        }
    }
    if let Some(media) = raw.media {
        out.media.clear();
        for (i, m) in media.into_iter().enumerate() {
            let key = |k: &str| format!("workloads.media[{i}].{k}");
            if !matches!(m.app.as_str(), "jellyfin" | "immich") {
                return Err(c.invalid(
                    &key("app"),
                    format!("{:?} is neither jellyfin nor immich", m.app),
                ));
            }
            if !matches!(m.role.as_str(), "server" | "database" | "cache") {
                return Err(c.invalid(
                    &key("role"),
                    format!("{:?} is not server, database or cache", m.role),
                ));
            }
            out.media.push(MediaWorkload {
                namespace: name(key("namespace"), &m.namespace)?,
                deployment: name(key("deployment"), &m.deployment)?,
                app: m.app,
                role: m.role,
            });
        }
    }
    if let Some(list) = raw.backup_namespaces {
        out.backup_namespaces.clear();
        for (i, n) in list.iter().enumerate() {
            out.backup_namespaces
                .insert(name(format!("workloads.backup_namespaces[{i}]"), n)?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::file::Config;

    fn parse(text: &str) -> Result<Workloads, Error> {
        Config::parse(std::path::Path::new("/etc/labscope.toml"), text).map(|c| c.workloads)
    }

    #[test]
    fn the_defaults_are_the_reference_homelab() {
        let w = parse("").unwrap();
        assert_eq!(w, Workloads::default());
        assert_eq!(w.unbound_selector(), "app in (unbound,unbound-secondary)");
        assert_eq!(w.media_namespaces(), ["jellyfin", "immich"]);
        assert!(w.backup_namespaces.contains("backup-jobs"));
    }

    #[test]
    fn a_key_given_replaces_its_default_only() {
        let w = parse(
            "[workloads]\ndns_namespace = \"dns\"\nunbound = [\"resolver\"]\n\
             [[workloads.media]]\nnamespace = \"media\"\ndeployment = \"jf\"\napp = \"jellyfin\"\nrole = \"server\"\n",
        )
        .unwrap();
        assert_eq!(w.dns_namespace, "dns");
        assert_eq!(
            w.dns_of("pihole").collect::<Vec<_>>(),
            ["pihole", "pihole-secondary"]
        );
        assert_eq!(w.unbound_selector(), "app in (resolver)");
        assert_eq!(w.media.len(), 1);
        assert_eq!(w.media_namespaces(), ["media"]);
        assert_eq!(w.backup_namespaces, Workloads::default().backup_namespaces);
    }

    #[test]
    fn errors_name_the_key() {
        for (text, key) in [
            (
                "[workloads]\npihole = [\"Pi Hole\"]\n",
                "workloads.pihole[0]",
            ),
            (
                "[[workloads.media]]\nnamespace = \"m\"\ndeployment = \"d\"\napp = \"plex\"\nrole = \"server\"\n",
                "workloads.media[0].app",
            ),
            (
                "[workloads]\nbackup_namespaces = [\"\"]\n",
                "workloads.backup_namespaces[0]",
            ),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
        assert!(parse("[workloads]\nmedia_ns = 1\n").is_err());
    }
}
