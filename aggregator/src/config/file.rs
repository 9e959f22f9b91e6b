//! The configuration file (`--config FILE`, or `LABSCOPE_CONFIG`): the
//! homelab's services (Pi-hole, Jellyfin, Immich), the DNS servers to ask,
//! and whether and where labscope may change anything (`[mutations]`).
//!
//! Secrets never appear in the file: each is named by `*_env` (an
//! environment variable) or `*_file` (a path) and read once at start-up. An
//! unknown key, a bad URL, a missing variable or an unreadable file stops
//! start-up with an error naming the key.
//!
//! A service whose `url` is empty is off, as if its section were absent (its
//! secret is not read), and `[dns] servers` may be one string of addresses
//! separated by commas or spaces: an install whose file is filled in from
//! settings (Flux's `postBuild.substituteFrom`, deploy/overlays/install)
//! leaves a service out by leaving its setting empty.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use super::mutations::{ConfirmFallback, DEFAULT_TRIGGER_LABEL, Mutations};

/// Why the configuration file cannot be used; the message names the key.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("config {path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or has an unknown key or a wrong type.
    #[error("config {path}: {message}")]
    Parse {
        /// File.
        path: PathBuf,
        /// What toml said (line, column, the key).
        message: String,
    },
    /// A value is unusable.
    #[error("config {path}: {key}: {message}")]
    Invalid {
        /// File.
        path: PathBuf,
        /// The key, e.g. `pihole.primary.url`.
        key: String,
        /// What is wrong and what would do.
        message: String,
    },
}

/// A secret read from the environment or a file. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value, for the one request that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// An HTTP service labscope talks to, and its credential.
#[derive(Debug, Clone)]
pub struct Service {
    /// Base URL (http or https, no credentials, query or fragment).
    pub url: url::Url,
    /// The password or API key.
    pub secret: Secret,
    /// Where the secret came from (`env PIHOLE_PASSWORD`, `file /run/…`),
    /// for messages; never the value.
    pub secret_origin: String,
}

/// Default [`Config::dns_unbound_port`].
pub const DEFAULT_UNBOUND_PORT: u16 = 5335;

/// The configuration, validated, with its secrets read.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it was read from (`None`: no file, the defaults).
    pub path: Option<PathBuf>,
    /// `[pihole.primary]`.
    pub pihole_primary: Option<Service>,
    /// `[pihole.secondary]`.
    pub pihole_secondary: Option<Service>,
    /// `[jellyfin]`.
    pub jellyfin: Option<Service>,
    /// `[immich]`.
    pub immich: Option<Service>,
    /// `[dns] servers`: what DNS tools ask by default, in order (the
    /// Pi-holes).
    pub dns_servers: Vec<String>,
    /// `[dns] unbound_port`: where `diagnose_dns` asks the Unbound on each
    /// server's host (default 5335).
    pub dns_unbound_port: u16,
    /// `[mutations]`.
    pub mutations: Mutations,
    /// `[workloads]`.
    pub workloads: super::workloads::Workloads,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            path: None,
            pihole_primary: None,
            pihole_secondary: None,
            jellyfin: None,
            immich: None,
            dns_servers: Vec::new(),
            dns_unbound_port: DEFAULT_UNBOUND_PORT,
            mutations: Mutations::default(),
            workloads: super::workloads::Workloads::default(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    pihole: Option<RawPiholes>,
    jellyfin: Option<RawApiService>,
    immich: Option<RawApiService>,
    dns: Option<RawDns>,
    mutations: Option<super::mutations::Raw>,
    workloads: Option<super::workloads::Raw>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPiholes {
    primary: Option<RawPihole>,
    secondary: Option<RawPihole>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPihole {
    url: String,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApiService {
    url: String,
    api_key_env: Option<String>,
    api_key_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDns {
    servers: RawServers,
    unbound_port: Option<u16>,
}

/// `[dns] servers`: a list, or one string of addresses separated by commas
/// or white space (`""` for none).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawServers {
    List(Vec<String>),
    Text(String),
}

impl RawServers {
    fn into_vec(self) -> Vec<String> {
        match self {
            RawServers::List(v) => v,
            RawServers::Text(s) => s
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect(),
        }
    }
}

/// Where the secret of a key comes from: (`*_env`, `*_file`).
type SecretSource<'a> = (Option<&'a String>, Option<&'a PathBuf>);

pub(super) struct Check<'a> {
    path: &'a Path,
}

impl Check<'_> {
    pub(super) fn invalid(&self, key: &str, message: impl Into<String>) -> Error {
        Error::Invalid {
            path: self.path.to_path_buf(),
            key: key.to_string(),
            message: message.into(),
        }
    }

    fn url(&self, key: &str, text: &str) -> Result<url::Url, Error> {
        // The URL's text is never repeated: it may carry credentials.
        let url = url::Url::parse(text.trim())
            .map_err(|e| self.invalid(key, format!("not a URL ({e})")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(self.invalid(key, "only http:// and https:// are supported"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(self.invalid(key, "the URL has no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(self.invalid(
                key,
                "credentials do not belong in the URL (nor anywhere in this file): use the *_env or *_file key",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(self.invalid(
                key,
                "give the base URL without query or fragment (keys belong in *_env / *_file)",
            ));
        }
        Ok(url)
    }

    /// Reads a secret named by `{prefix}_env` or `{prefix}_file`.
    fn secret(
        &self,
        section: &str,
        prefix: &str,
        src: SecretSource,
    ) -> Result<(Secret, String), Error> {
        let env_key = format!("{section}.{prefix}_env");
        let file_key = format!("{section}.{prefix}_file");
        match src {
            (Some(_), Some(_)) => Err(self.invalid(
                section,
                format!("give {prefix}_env or {prefix}_file, not both"),
            )),
            (None, None) => Err(self.invalid(
                section,
                format!("{prefix}_env (an environment variable) or {prefix}_file (a path) is required; secrets are never written in this file"),
            )),
            (Some(var), None) => match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => Ok((Secret(v.trim().to_string()), format!("env {var}"))),
                Ok(_) => Err(self.invalid(&env_key, format!("environment variable {var} is empty"))),
                Err(std::env::VarError::NotPresent) => {
                    Err(self.invalid(&env_key, format!("environment variable {var} is not set")))
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    Err(self.invalid(&env_key, format!("environment variable {var} is not UTF-8")))
                }
            },
            (None, Some(file)) => match std::fs::read_to_string(file) {
                Ok(v) if !v.trim().is_empty() => {
                    Ok((Secret(v.trim().to_string()), format!("file {}", file.display())))
                }
                Ok(_) => Err(self.invalid(&file_key, format!("{} is empty", file.display()))),
                Err(e) => Err(self.invalid(&file_key, format!("cannot read {}: {e}", file.display()))),
            },
        }
    }

    fn service(
        &self,
        section: &str,
        url: &str,
        prefix: &str,
        src: SecretSource,
    ) -> Result<Service, Error> {
        let url = self.url(&format!("{section}.url"), url)?;
        let (secret, secret_origin) = self.secret(section, prefix, src)?;
        Ok(Service {
            url,
            secret,
            secret_origin,
        })
    }
}

/// A DNS-1123 label (namespaces, object names are subdomains but every
/// name labscope acts on here is a label or a dotted subdomain of them).
pub(super) fn dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

impl Config {
    /// The effective configuration for people (`labscope config check`):
    /// every section with the values in force, defaults included, and where
    /// each secret comes from — never a secret itself.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        let service = |out: &mut String, name: &str, s: &Option<Service>, what: &str| match s {
            Some(s) => out.push_str(&format!(
                "[{name}] url = {}; {what} from {}\n",
                s.url, s.secret_origin
            )),
            None => out.push_str(&format!("[{name}] not configured\n")),
        };
        service(&mut out, "pihole.primary", &self.pihole_primary, "password");
        service(
            &mut out,
            "pihole.secondary",
            &self.pihole_secondary,
            "password",
        );
        service(&mut out, "jellyfin", &self.jellyfin, "API key");
        service(&mut out, "immich", &self.immich, "API key");
        if self.dns_servers.is_empty() {
            out.push_str("[dns] no servers (diagnose_dns is not served)\n");
        } else {
            out.push_str(&format!(
                "[dns] servers = {}; unbound_port = {}\n",
                self.dns_servers.join(", "),
                self.dns_unbound_port
            ));
        }
        let m = &self.mutations;
        let list = |v: &BTreeSet<String>| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.iter().cloned().collect::<Vec<_>>().join(", ")
            }
        };
        out.push_str(&format!(
            "[mutations] enabled = {}{}\n",
            m.enabled,
            if m.enabled {
                ""
            } else {
                " (no operation is served or runs)"
            }
        ));
        if m.enabled {
            out.push_str(&format!(
                "  audit_log = {}\n  restart = {}\n  flux_namespaces = {}\n  secret_namespaces = {}\n  \
                 trigger_label = {}={}; trigger_namespaces = {}\n  pihole_gravity = {}; jellyfin_metadata = {}\n  \
                 confirm_fallback = {}\n",
                m.audit_log
                    .as_ref()
                    .map_or("none".to_string(), |p| p.display().to_string()),
                list(&m.restart),
                list(&m.flux_namespaces),
                list(&m.secret_namespaces),
                m.trigger_label.0,
                m.trigger_label.1,
                m.trigger_namespaces
                    .as_ref()
                    .map_or("any (the label decides)".to_string(), list),
                m.pihole_gravity,
                m.jellyfin_metadata,
                match m.confirm_fallback {
                    ConfirmFallback::Allow => "allow",
                    ConfirmFallback::Refuse => "refuse",
                },
            ));
        }
        out.push_str(&self.workloads.describe());
        out
    }

    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Validates `text` as if read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Self, Error> {
        // toml's own message quotes the offending line, which may hold a
        // secret someone wrote where it does not belong: say where, not what.
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|sp| {
                    let before = &text[..sp.start.min(text.len())];
                    let line = before.matches('\n').count() + 1;
                    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                    format!("line {line}, column {col}: ")
                })
                .unwrap_or_default();
            Error::Parse {
                path: path.to_path_buf(),
                message: format!("{at}{}", e.message()),
            }
        })?;
        let c = Check { path };
        let mut config = Config {
            path: Some(path.to_path_buf()),
            ..Config::default()
        };
        if let Some(p) = raw.pihole {
            for (which, slot, raw) in [
                ("primary", &mut config.pihole_primary, p.primary),
                ("secondary", &mut config.pihole_secondary, p.secondary),
            ] {
                if let Some(r) = raw.filter(|r| !r.url.trim().is_empty()) {
                    *slot = Some(c.service(
                        &format!("pihole.{which}"),
                        &r.url,
                        "password",
                        (r.password_env.as_ref(), r.password_file.as_ref()),
                    )?);
                }
            }
        }
        for (section, slot, raw) in [
            ("jellyfin", &mut config.jellyfin, raw.jellyfin),
            ("immich", &mut config.immich, raw.immich),
        ] {
            if let Some(r) = raw.filter(|r| !r.url.trim().is_empty()) {
                *slot = Some(c.service(
                    section,
                    &r.url,
                    "api_key",
                    (r.api_key_env.as_ref(), r.api_key_file.as_ref()),
                )?);
            }
        }
        if let Some(dns) = raw.dns {
            let servers = dns.servers.into_vec();
            for (i, s) in servers.iter().enumerate() {
                let ok = s.parse::<std::net::IpAddr>().is_ok()
                    || s.parse::<std::net::SocketAddr>().is_ok();
                if !ok {
                    return Err(c.invalid(
                        &format!("dns.servers[{i}]"),
                        format!("{s:?} is not an IP address or IP:PORT"),
                    ));
                }
            }
            config.dns_servers = servers;
            config.dns_unbound_port = dns.unbound_port.unwrap_or(DEFAULT_UNBOUND_PORT);
        }
        if let Some(m) = raw.mutations {
            config.mutations = super::mutations::validate(&c, m)?;
        }
        if let Some(w) = raw.workloads {
            config.workloads = super::workloads::validate(&c, w)?;
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::mutations::label_pair;

    fn parse(text: &str) -> Result<Config, Error> {
        Config::parse(Path::new("labscope.toml"), text)
    }

    #[test]
    fn confirm_fallback_is_allow_unless_refuse_is_said() {
        assert_eq!(
            parse("").unwrap().mutations.confirm_fallback,
            ConfirmFallback::Allow
        );
        let c = parse("[mutations]\nconfirm_fallback = \"refuse\"\n").unwrap();
        assert_eq!(c.mutations.confirm_fallback, ConfirmFallback::Refuse);
        let e = parse("[mutations]\nconfirm_fallback = \"maybe\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("mutations.confirm_fallback") && e.contains("maybe"),
            "{e}"
        );
    }

    #[test]
    fn an_empty_url_leaves_the_service_off_and_servers_may_be_one_string() {
        // What deploy/overlays/install renders when a setting is left empty:
        // the secret files named are not read (they need not exist).
        let c = parse(
            r#"
[pihole.primary]
url = ""
password_file = "/nonexistent/pihole-password"
[pihole.secondary]
url = "  "
password_file = "/nonexistent/pihole-password"
[jellyfin]
url = ""
api_key_file = "/nonexistent/jellyfin-api-key"
[immich]
url = ""
api_key_file = "/nonexistent/immich-api-key"
[dns]
servers = ""
"#,
        )
        .unwrap();
        assert!(c.pihole_primary.is_none() && c.pihole_secondary.is_none());
        assert!(c.jellyfin.is_none() && c.immich.is_none());
        assert!(c.dns_servers.is_empty());
        let c = parse("[dns]\nservers = \"192.168.1.55, 192.168.1.56 10.0.0.1:5353\"\n").unwrap();
        assert_eq!(
            c.dns_servers,
            ["192.168.1.55", "192.168.1.56", "10.0.0.1:5353"]
        );
        let e = parse("[dns]\nservers = \"192.168.1.55,pihole\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("dns.servers[1]") && e.contains("pihole"), "{e}");
        // A url that is set still needs its secret.
        let e = parse(
            "[jellyfin]\nurl = \"http://jellyfin:8096\"\napi_key_file = \"/nonexistent/k\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("jellyfin.api_key_file"), "{e}");
    }

    #[test]
    fn the_documented_example_parses() {
        // SAFETY of the test: a variable only this test sets.
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pihole");
        std::fs::write(&pw, "s3cret\n").unwrap();
        let text = format!(
            r#"
[pihole.primary]
url = "http://192.168.1.55"
password_file = "{}"
[dns]
servers = ["192.168.1.55", "192.168.1.56"]
[mutations]
enabled = true
audit_log = "/var/lib/labscope/audit.jsonl"
restart = ["jellyfin/jellyfin"]
flux_namespaces = ["flux-system", "immich"]
secret_namespaces = ["media"]
trigger_label = "labscope.io/trigger=true"
trigger_namespaces = ["backup-jobs"]
pihole_gravity = false
jellyfin_metadata = false
"#,
            pw.display()
        );
        let c = parse(&text).unwrap();
        let p = c.pihole_primary.unwrap();
        assert_eq!(p.url.as_str(), "http://192.168.1.55/");
        assert_eq!(p.secret.expose(), "s3cret");
        assert!(
            !format!("{p:?}").contains("s3cret"),
            "Debug redacts the secret"
        );
        assert!(c.pihole_secondary.is_none());
        assert_eq!(c.dns_servers, ["192.168.1.55", "192.168.1.56"]);
        let m = c.mutations;
        assert!(m.enabled);
        assert!(m.restart.contains("jellyfin/jellyfin"));
        assert_eq!(m.flux_namespaces.len(), 2);
        assert_eq!(
            m.trigger_label,
            ("labscope.io/trigger".into(), "true".into())
        );
        assert_eq!(
            m.trigger_namespaces,
            Some(["backup-jobs".to_string()].into())
        );
    }

    #[test]
    fn defaults_are_read_only() {
        let c = parse("").unwrap();
        assert!(!c.mutations.enabled);
        assert_eq!(c.mutations, Mutations::default());
        let c = parse("[mutations]\n").unwrap();
        assert!(!c.mutations.enabled);
    }

    #[test]
    fn errors_name_the_key() {
        let err = |t: &str| parse(t).unwrap_err().to_string();
        let e = err("[pihole.primary]\nurl = \"http://x\"\npasword_env = \"P\"\n");
        assert!(e.contains("pasword_env"), "{e}");
        let e = err("[mutations]\nenabeld = true\n");
        assert!(e.contains("enabeld"), "{e}");
        let e = err("[jellyfin]\nurl = \"jellyfin:8096\"\napi_key_env = \"HOME\"\n");
        assert!(e.contains("jellyfin.url"), "{e}");
        let e =
            err("[jellyfin]\nurl = \"http://admin:pw@jellyfin:8096\"\napi_key_env = \"HOME\"\n");
        assert!(
            e.contains("jellyfin.url") && e.contains("credentials"),
            "{e}"
        );
        let e = err(
            "[immich]\nurl = \"http://immich:2283\"\napi_key_env = \"LABSCOPE_TEST_SURELY_UNSET_VAR\"\n",
        );
        assert!(
            e.contains("immich.api_key_env") && e.contains("not set"),
            "{e}"
        );
        let e =
            err("[immich]\nurl = \"http://immich:2283\"\napi_key_file = \"/nonexistent/key\"\n");
        assert!(
            e.contains("immich.api_key_file") && e.contains("cannot read"),
            "{e}"
        );
        let e = err("[immich]\nurl = \"http://immich:2283\"\n");
        assert!(e.contains("immich") && e.contains("api_key_env"), "{e}");
        let e = err("[dns]\nservers = [\"pihole\"]\n");
        assert!(e.contains("dns.servers[0]"), "{e}");
        let e = err("[mutations]\nenabled = true\n");
        assert!(e.contains("mutations.audit_log"), "{e}");
        let e = err("[mutations]\nrestart = [\"jellyfin\"]\n");
        assert!(e.contains("mutations.restart[0]"), "{e}");
        let e = err("[mutations]\ntrigger_label = \"labscope.io/trigger\"\n");
        assert!(e.contains("mutations.trigger_label"), "{e}");
        let e = err("[mutations]\ntrigger_namespaces = [\"Backup Jobs\"]\n");
        assert!(e.contains("mutations.trigger_namespaces[0]"), "{e}");
        let e = err("[mutations]\nflux_namespaces = [\"Flux System\"]\n");
        assert!(e.contains("mutations.flux_namespaces[0]"), "{e}");
    }

    #[test]
    fn errors_never_repeat_secrets() {
        let err = |t: &str| parse(t).unwrap_err().to_string();
        let e = err("[pihole.primary]\nurl = \"http://x\"\npassword = \"hunter2\"\n");
        assert!(
            e.contains("password") && e.contains("line 3") && !e.contains("hunter2"),
            "{e}"
        );
        let e = err(
            "[jellyfin]\nurl = \"http://jellyfin:8096/?api_key=abc123\"\napi_key_env = \"HOME\"\n",
        );
        assert!(e.contains("jellyfin.url") && !e.contains("abc123"), "{e}");
        let e = err("[jellyfin]\nurl = \"http://admin:pw@host:80x\"\napi_key_env = \"HOME\"\n");
        assert!(e.contains("jellyfin.url") && !e.contains("pw@"), "{e}");
    }

    #[test]
    fn label_pairs() {
        assert_eq!(label_pair("a=b"), Some(("a".into(), "b".into())));
        assert_eq!(
            label_pair("labscope.io/trigger=true"),
            Some(("labscope.io/trigger".into(), "true".into()))
        );
        assert_eq!(label_pair("x="), Some(("x".into(), String::new())));
        assert_eq!(label_pair("novalue"), None);
        assert_eq!(label_pair("Bad Prefix/x=y"), None);
        assert_eq!(label_pair("-x=y"), None);
    }
}
