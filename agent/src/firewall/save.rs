//! Runs the iptables save tools (fixed argv, never user text) and parses them.

use std::path::{Path, PathBuf};

use labscope_proto::v1::FirewallBackend;

use super::parse::{Index, ParseError, SaveDump, Select};
use super::{Error, Result};
use crate::child;

/// Where the save tools may live; searched in order. Fixed, not $PATH, so
/// that the environment cannot redirect what the agent executes.
const SEARCH_DIRS: [&str; 4] = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

/// One backend's parsed dump.
#[derive(Debug, Clone)]
pub struct BackendDump {
    /// nft or legacy.
    pub backend: FirewallBackend,
    /// Command line that produced it.
    pub method: String,
    /// Parsed content.
    pub dump: SaveDump,
}

fn find(name: &str) -> Option<PathBuf> {
    SEARCH_DIRS
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// Whether the kernel holds any legacy x_tables table for the family
/// (what iptables-legacy-save itself reads to decide what to print).
fn legacy_tables_present(ipv6: bool) -> bool {
    let path = if ipv6 {
        "/proc/net/ip6_tables_names"
    } else {
        "/proc/net/ip_tables_names"
    };
    std::fs::read_to_string(path)
        .map(|s| !s.trim().is_empty())
        .unwrap_or(false)
}

/// How long a save tool may run, and how much it may print (a k3s node's
/// nat table of 5,700 rules is ≈ 1 MiB; the cap leaves room for ~90,000
/// rules and stays well inside the agent's memory limit).
const SAVE_LIMITS: child::Limits = child::Limits {
    timeout: std::time::Duration::from_secs(20),
    max_stdout: 16 << 20,
};

fn run(tool: &Path) -> Result<String> {
    let name = tool.display().to_string();
    let out = child::run(tool, &["-c"], SAVE_LIMITS).map_err(|e| match e {
        child::Error::Spawn(source) => Error::Spawn {
            tool: name.clone(),
            source,
        },
        child::Error::TimedOut(_) | child::Error::OutputTooLarge(_) => Error::Exceeded {
            tool: name.clone(),
            what: e.to_string(),
        },
        child::Error::Wait(_) => Error::ToolFailed {
            tool: name.clone(),
            status: "lost".into(),
            stderr: e.to_string(),
        },
    })?;
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if !out.status.success() {
        if stderr.contains("Permission denied") || stderr.contains("must be root") {
            return Err(Error::PermissionDenied { tool: name, stderr });
        }
        return Err(Error::ToolFailed {
            tool: name,
            status: out.status.to_string(),
            stderr,
        });
    }
    Ok(match String::from_utf8(out.stdout) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

fn unparseable(tool: &Path, e: ParseError) -> Error {
    Error::ToolFailed {
        tool: tool.display().to_string(),
        status: "unparseable output".into(),
        stderr: e.to_string(),
    }
}

/// One backend's save output, as text with the index of its structure:
/// about half the memory of its parsed form, which is what a cached read
/// holds. A page builds only its own rules from it.
#[derive(Debug, Clone)]
pub struct BackendText {
    /// nft or legacy.
    pub backend: FirewallBackend,
    /// The tool run.
    pub tool: PathBuf,
    /// What it printed.
    pub text: String,
    /// Where its tables, chains and rules are (its structure is checked).
    pub index: Index,
}

impl BackendText {
    /// Checks the structure of what `tool` printed and indexes it.
    pub fn new(backend: FirewallBackend, tool: PathBuf, text: String) -> Result<BackendText> {
        let index = Index::build(&text).map_err(|e| unparseable(&tool, e))?;
        Ok(BackendText {
            backend,
            tool,
            text,
            index,
        })
    }

    /// Builds what `select` asks for of the text.
    pub fn parse(&self, select: &Select<'_>) -> Result<BackendDump> {
        Ok(BackendDump {
            backend: self.backend,
            method: format!("{} -c", self.tool.display()),
            dump: self
                .index
                .select(&self.text, select)
                .map_err(|e| unparseable(&self.tool, e))?,
        })
    }
}

/// Parses what `select` asks for of every backend's text.
pub fn parse_all(texts: &[BackendText], select: &Select<'_>) -> Result<Vec<BackendDump>> {
    texts.iter().map(|t| t.parse(select)).collect()
}

/// Runs the save tool of every backend that is installed and, for legacy,
/// has tables (in parallel); nf_tables comes first.
pub fn save_backends(ipv6: bool) -> Result<Vec<BackendText>> {
    let prefix = if ipv6 { "ip6tables" } else { "iptables" };
    let nft = find(&format!("{prefix}-nft-save"));
    let legacy = find(&format!("{prefix}-legacy-save"));
    if nft.is_none() && legacy.is_none() {
        return Err(Error::ToolMissing {
            family: if ipv6 { "IPv6" } else { "IPv4" },
            looked_for: format!(
                "{prefix}-nft-save, {prefix}-legacy-save in {}",
                SEARCH_DIRS.join(", ")
            ),
        });
    }
    let save = |backend: FirewallBackend, tool: PathBuf| -> Result<BackendText> {
        let mut text = run(&tool)?;
        text.shrink_to_fit();
        BackendText::new(backend, tool, text)
    };
    let legacy_job = match legacy {
        Some(tool) if legacy_tables_present(ipv6) => Some(std::thread::spawn(move || {
            save(FirewallBackend::Legacy, tool)
        })),
        _ => None,
    };
    let mut out = Vec::new();
    if let Some(tool) = nft {
        out.push(save(FirewallBackend::Nft, tool)?);
    }
    if let Some(job) = legacy_job {
        out.push(job.join().map_err(|_| Error::ToolFailed {
            tool: "iptables-legacy-save".into(),
            status: "reader thread panicked".into(),
            stderr: String::new(),
        })??);
    }
    Ok(out)
}
