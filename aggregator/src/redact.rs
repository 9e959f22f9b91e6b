//! Secret redaction for everything labscope shows from the cluster: logs,
//! event messages, env values, annotations, ConfigMap data. It runs before
//! any filtering or matching (a `grep` applied to unredacted text would let
//! a caller learn a secret one character at a time through the match count),
//! and it fails closed: if a pattern could not be built, nothing is shown.
//!
//! Shapes: PEM private keys (also cut off at either end), JWTs, GitHub,
//! GitLab, Slack, AWS, Google and OpenAI-style keys, Bearer/Basic
//! credentials, `name=value` / `name: value` where the name looks like a
//! credential (`PGPASSWORD=`, `api_key:`, `Authorization:`), and passwords
//! in URLs.

use std::sync::LazyLock;

use regex::{Captures, Regex};

/// What replaces a secret.
pub const MARK: &str = "[REDACTED]";

/// Text with its secrets replaced, and how many were.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redacted {
    /// The text, safe to show.
    pub text: String,
    /// Secrets replaced.
    pub count: usize,
}

/// The compiled patterns, in the order they apply.
struct Redactor {
    /// Whole PEM private keys, or their start when the end was cut off.
    pem: Regex,
    /// A base64 line of PEM width on its own: the body of a key whose
    /// BEGIN line was cut off by a tail window.
    pem_body: Regex,
    /// Tokens recognisable by their shape alone.
    tokens: Regex,
    /// `Bearer …` / `Basic …`.
    scheme: Regex,
    /// `name=value` where the name looks like a credential.
    named: Regex,
    /// `scheme://user:password@host`.
    url: Regex,
}

fn build() -> Result<Redactor, regex::Error> {
    Ok(Redactor {
        pem: Regex::new(
            r"(?s)(-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----).*?(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\z)",
        )?,
        pem_body: Regex::new(r"(?m)^[ \t]*[A-Za-z0-9+/]{60,76}={0,2}[ \t]*\r?$")?,
        tokens: Regex::new(concat!(
            r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*",
            r"|\bgh[pousr]_[A-Za-z0-9]{30,}",
            r"|\bgithub_pat_[A-Za-z0-9_]{22,}",
            r"|\bglpat-[A-Za-z0-9_-]{20,}",
            r"|\bxox[abposr]-[A-Za-z0-9-]{10,}",
            r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
            r"|\bAIza[0-9A-Za-z_-]{35}",
            r"|\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}",
            r"|\b(?:sk|rk)_live_[A-Za-z0-9]{16,}",
        ))?,
        scheme: Regex::new(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]{8,}")?,
        named: Regex::new(
            r#"(?i)\b([\w.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|client[_-]?secret|authorization|x-api-key|credentials?)[\w.-]*)(["']?\s*[:=]\s*["']?)((?:(?:bearer|basic)\s+)?[^\s"',;&]+)"#,
        )?,
        url: Regex::new(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]+:)[^@\s/]+@")?,
    })
}

static REDACTOR: LazyLock<Result<Redactor, String>> =
    LazyLock::new(|| build().map_err(|e| e.to_string()));

/// Replaces every secret-looking value in `text`.
pub fn redact(text: &str) -> Redacted {
    let r = match REDACTOR.as_ref() {
        Ok(r) => r,
        // Fail closed: without working patterns nothing is safe to show.
        Err(e) => {
            return Redacted {
                text: format!("{MARK} (redaction is unavailable, so this text is withheld: {e})"),
                count: usize::from(!text.is_empty()),
            };
        }
    };
    let mut count = 0;
    let t = r.pem.replace_all(text, |c: &Captures<'_>| {
        count += 1;
        format!("{}{MARK}", &c[1])
    });
    let t = r.pem_body.replace_all(&t, |_: &Captures<'_>| {
        count += 1;
        MARK.to_string()
    });
    let t = r.tokens.replace_all(&t, |_: &Captures<'_>| {
        count += 1;
        MARK.to_string()
    });
    let t = r.scheme.replace_all(&t, |c: &Captures<'_>| {
        count += 1;
        format!("{}{}{MARK}", &c[1], &c[2])
    });
    let t = r.named.replace_all(&t, |c: &Captures<'_>| {
        // Already hidden by an earlier pattern.
        if c[3].contains(MARK)
            || c[3].eq_ignore_ascii_case("bearer")
            || c[3].eq_ignore_ascii_case("basic")
        {
            return c[0].to_string();
        }
        count += 1;
        format!("{}{}{MARK}", &c[1], &c[2])
    });
    let t = r.url.replace_all(&t, |c: &Captures<'_>| {
        count += 1;
        format!("{}{MARK}@", &c[1])
    });
    Redacted {
        text: t.into_owned(),
        count,
    }
}

/// Environment variable and ConfigMap key names whose values are secrets
/// whatever they look like.
pub fn secret_name(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    [
        "PASS",
        "SECRET",
        "TOKEN",
        "KEY",
        "CREDENTIAL",
        "AUTH",
        "PRIVATE",
    ]
    .iter()
    .any(|w| n.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_compile() {
        assert!(build().is_ok());
        assert!(REDACTOR.is_ok());
    }

    #[test]
    fn credential_names_with_prefixes_and_suffixes() {
        for line in [
            "PGPASSWORD=hunter2 pg_dump -h db",
            "DB_PASSWORD: hunter2",
            "export AWS_SECRET_ACCESS_KEY=hunter2",
            "WEBPASSWORD=hunter2",
            r#"{"client_secret": "hunter2"}"#,
        ] {
            let r = redact(line);
            assert!(
                !r.text.contains("hunter2") && r.count == 1,
                "{line} -> {}",
                r.text
            );
        }
    }

    #[test]
    fn common_shapes() {
        let r = redact(
            "login password=hunter2 ok\nAuthorization: Bearer abcdefghijklmnop\nurl postgres://app:s3cr3t@db:5432/x token: \"xyz\"",
        );
        for s in ["hunter2", "abcdefghijklmnop", "s3cr3t", "xyz"] {
            assert!(!r.text.contains(s), "{s} in {}", r.text);
        }
        assert_eq!(r.count, 4, "{}", r.text);
        assert_eq!(redact("nothing to see here").count, 0);
    }

    #[test]
    fn tokens_by_shape() {
        let secrets = [
            "ghp_0123456789abcdefghijABCDEFGHIJ012345",
            "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
            "AKIAIOSFODNN7EXAMPLE",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "xoxb-123456789012-abcdefghijkl",
            "glpat-abcdefghijklmnopqrst",
        ];
        for s in secrets {
            let line = format!("pushing with {s} now");
            let r = redact(&line);
            assert!(!r.text.contains(s), "{s}: {}", r.text);
            assert_eq!(r.count, 1, "{}", r.text);
        }
    }

    #[test]
    fn pem_keys_whole_or_cut() {
        let key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\nQyNTUxOQAAACDdx\n-----END OPENSSH PRIVATE KEY-----\nafter";
        let r = redact(key);
        assert!(
            !r.text.contains("b3BlbnNz") && !r.text.contains("QyNTUxOQ"),
            "{}",
            r.text
        );
        assert!(r.text.ends_with("after"), "{}", r.text);
        // Cut off before its END line (a byte limit): hidden to the end.
        let cut = "start\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw";
        assert!(!redact(cut).text.contains("MIIEow"));
        // Cut off before its BEGIN line (a tail window): PEM-width lines hidden.
        let tail = "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw\n-----END RSA PRIVATE KEY-----";
        assert!(!redact(tail).text.contains("MIIEow"));
    }

    #[test]
    fn already_redacted_values_count_once() {
        let r = redact("Authorization: Bearer abcdefghijklmnop");
        assert_eq!(r.count, 1, "{}", r.text);
        assert_eq!(r.text, "Authorization: Bearer [REDACTED]");
    }
}
