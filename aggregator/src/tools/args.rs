//! Argument parsing with validation on parse: every getter names the
//! argument in its error, rejects wrong types and out-of-range numbers (no
//! silent clamping), and the whole set rejects unknown arguments.

use serde_json::{Map, Value};

use super::ToolError;

/// Arguments of one call.
#[derive(Debug)]
pub struct Args {
    map: Map<String, Value>,
}

impl Args {
    /// Wraps the arguments and rejects any name not in `known`.
    pub fn new(map: Map<String, Value>, known: &[&str]) -> Result<Self, ToolError> {
        if let Some(bad) = map.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(ToolError::invalid(
                bad,
                format!("unknown argument; this tool takes: {}", known.join(", ")),
            ));
        }
        Ok(Self { map })
    }

    fn get(&self, name: &str) -> Option<&Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    /// A required string.
    pub fn string(&self, name: &str) -> Result<String, ToolError> {
        self.opt_string(name)?
            .ok_or_else(|| ToolError::invalid(name, "required"))
    }

    /// An optional string (empty counts as absent).
    pub fn opt_string(&self, name: &str) -> Result<Option<String>, ToolError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => {
                if s.len() > 4096 {
                    return Err(ToolError::invalid(name, "longer than 4096 characters"));
                }
                Ok(Some(s.trim().to_string()))
            }
            Some(other) => Err(ToolError::invalid(
                name,
                format!("expected a string, got {}", kind(other)),
            )),
        }
    }

    /// An optional choice among `choices`, matched without regard to case;
    /// returns the choice as spelled in `choices`.
    pub fn opt_one_of<'c>(
        &self,
        name: &str,
        choices: &[&'c str],
    ) -> Result<Option<&'c str>, ToolError> {
        let Some(v) = self.opt_string(name)? else {
            return Ok(None);
        };
        choices
            .iter()
            .find(|c| c.eq_ignore_ascii_case(&v))
            .map(|c| Some(*c))
            .ok_or_else(|| {
                ToolError::invalid(name, format!("{v:?} is not one of {}", choices.join(", ")))
            })
    }

    /// An optional regular expression (Rust `regex` syntax: linear time, no
    /// backreferences, so a pattern cannot stall the aggregator).
    pub fn opt_regex(&self, name: &str) -> Result<Option<regex::Regex>, ToolError> {
        self.opt_string(name)?
            .map(|g| {
                regex::RegexBuilder::new(&g)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| ToolError::invalid(name, format!("not a valid regex: {e}")))
            })
            .transpose()
    }

    /// An optional Kubernetes object name (DNS-1123 subdomain: lowercase
    /// letters, digits, '-' and '.', at most 253 characters). Checked before
    /// it reaches a URL.
    pub fn opt_name(&self, name: &str) -> Result<Option<String>, ToolError> {
        let Some(v) = self.opt_string(name)? else {
            return Ok(None);
        };
        let ok = v.len() <= 253
            && v.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && v.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric)
            && v.as_bytes().last().is_some_and(u8::is_ascii_alphanumeric);
        if !ok {
            return Err(ToolError::invalid(
                name,
                format!(
                    "{v:?} is not a Kubernetes name (lowercase letters, digits, '-' and '.', starting and ending with a letter or digit)"
                ),
            ));
        }
        Ok(Some(v))
    }

    /// A required Kubernetes object name.
    pub fn name(&self, name: &str) -> Result<String, ToolError> {
        self.opt_name(name)?
            .ok_or_else(|| ToolError::invalid(name, "required"))
    }

    /// An optional integer within `min..=max`, or `default`.
    pub fn int(&self, name: &str, default: i64, min: i64, max: i64) -> Result<i64, ToolError> {
        match self.get(name) {
            None => Ok(default),
            Some(Value::Number(n)) => {
                let v = n
                    .as_i64()
                    .filter(|_| n.is_i64() || n.is_u64())
                    .ok_or_else(|| {
                        ToolError::invalid(name, format!("expected a whole number, got {n}"))
                    })?;
                if v < min || v > max {
                    return Err(ToolError::invalid(
                        name,
                        format!("{v} is outside {min}..{max}"),
                    ));
                }
                Ok(v)
            }
            Some(other) => Err(ToolError::invalid(
                name,
                format!("expected a number, got {}", kind(other)),
            )),
        }
    }

    /// An optional boolean, or `default`.
    pub fn bool(&self, name: &str, default: bool) -> Result<bool, ToolError> {
        match self.get(name) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(ToolError::invalid(
                name,
                format!("expected true or false, got {}", kind(other)),
            )),
        }
    }

    /// An optional list of strings: a JSON array, or one comma-separated string.
    pub fn list(&self, name: &str) -> Result<Vec<String>, ToolError> {
        match self.get(name) {
            None => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(s
                .split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.trim().to_string()),
                    other => Err(ToolError::invalid(
                        name,
                        format!("expected strings, got {}", kind(other)),
                    )),
                })
                .collect(),
            Some(other) => Err(ToolError::invalid(
                name,
                format!("expected a list of strings, got {}", kind(other)),
            )),
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(v: Value, known: &[&str]) -> Result<Args, ToolError> {
        Args::new(v.as_object().cloned().unwrap_or_default(), known)
    }

    #[test]
    fn validation_names_the_argument() {
        let a = args(
            json!({"limit": 5000, "node": 3, "ipv6": "yes", "count": 2.5}),
            &["limit", "node", "ipv6", "count"],
        )
        .unwrap();
        assert!(
            a.int("limit", 50, 1, 1000)
                .unwrap_err()
                .message
                .contains("\"limit\"")
        );
        assert!(
            a.string("node")
                .unwrap_err()
                .message
                .contains("expected a string")
        );
        assert!(
            a.bool("ipv6", false)
                .unwrap_err()
                .message
                .contains("true or false")
        );
        assert!(
            a.int("count", 3, 1, 10)
                .unwrap_err()
                .message
                .contains("whole number")
        );
        assert_eq!(a.int("absent", 50, 1, 1000).unwrap(), 50);
        assert!(a.string("absent").unwrap_err().message.contains("required"));
        let e = args(json!({"nod": "x"}), &["node"]).unwrap_err();
        assert!(e.message.contains("\"nod\"") && e.message.contains("node"));
        let l = args(json!({"sections": "links, routes"}), &["sections"]).unwrap();
        assert_eq!(l.list("sections").unwrap(), ["links", "routes"]);
    }

    #[test]
    fn names_and_patterns_are_checked_before_use() {
        let a = args(
            json!({"namespace": "../kube-system", "ok": "jellyfin", "grep": "(unclosed", "good": "err|warn"}),
            &["namespace", "ok", "grep", "good"],
        )
        .unwrap();
        assert!(a.opt_name("namespace").is_err());
        assert_eq!(a.opt_name("ok").unwrap().as_deref(), Some("jellyfin"));
        let e = a.opt_regex("grep").unwrap_err();
        assert!(e.message.contains("not a valid regex"), "{}", e.message);
        assert!(
            a.opt_regex("good")
                .unwrap()
                .is_some_and(|r| r.is_match("an err"))
        );
        assert!(a.opt_regex("absent").unwrap().is_none());
        assert_eq!(
            a.opt_one_of("ok", &["Jellyfin", "immich"]).unwrap(),
            Some("Jellyfin")
        );
        let e = a.opt_one_of("good", &["a", "b"]).unwrap_err();
        assert!(e.message.contains("is not one of a, b"), "{}", e.message);
    }
}
