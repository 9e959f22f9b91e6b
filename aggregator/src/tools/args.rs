//! Argument parsing with validation on parse. Typed tools declare their
//! arguments as a struct built from the types here — each deserialises only
//! valid values (a Kubernetes name, a number within its range, a regex that
//! compiles, one of a set of choices) and describes itself in the input
//! schema — so an error always names the argument (`parse_args` adds the
//! path).

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{Deserializer, Error as _};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The reason a Kubernetes name is refused, or `None` when it is one
/// (DNS-1123 subdomain: lowercase letters, digits, '-' and '.', at most 253
/// characters, starting and ending with a letter or digit).
pub fn name_problem(v: &str) -> Option<String> {
    let ok = !v.is_empty()
        && v.len() <= 253
        && v.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && v.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric)
        && v.as_bytes().last().is_some_and(u8::is_ascii_alphanumeric);
    (!ok).then(|| {
        format!(
            "{v:?} is not a Kubernetes name (lowercase letters, digits, '-' and '.', starting and ending with a letter or digit)"
        )
    })
}

/// A Kubernetes object or namespace name, checked before it reaches a URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Name(String);

impl Name {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Checks `v`.
    pub fn new(v: &str) -> Result<Self, String> {
        match name_problem(v) {
            Some(p) => Err(p),
            None => Ok(Self(v.to_string())),
        }
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Name::new(s.trim()).map_err(D::Error::custom)
    }
}

impl JsonSchema for Name {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "Name".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string"})
    }
}

/// Free text: trimmed, at most 4096 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Text(String);

impl Text {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::ops::Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.len() > 4096 {
            return Err(D::Error::custom("longer than 4096 characters"));
        }
        Ok(Self(s.trim().to_string()))
    }
}

impl JsonSchema for Text {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "Text".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string"})
    }
}

/// For optional arguments: an absent, null or blank value is `None`
/// (clients often send `""` for "not given"); anything else must parse.
pub fn blank_as_none<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(v) => T::deserialize(v).map(Some).map_err(D::Error::custom),
    }
}

/// For list arguments: a JSON array of `T`, or one comma-separated string
/// (what people type), or nothing.
pub fn list_of<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    match Value::deserialize(d)? {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| T::deserialize(Value::String(p.to_string())).map_err(D::Error::custom))
            .collect(),
        Value::Array(items) => items
            .into_iter()
            .map(|v| T::deserialize(v).map_err(D::Error::custom))
            .collect(),
        other => Err(D::Error::custom(format!(
            "expected a list, got {}",
            kind(&other)
        ))),
    }
}

/// A whole number within `MIN..=MAX`, `DEF` when not given. Out of range is
/// an error, never silently clamped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Int<const MIN: i64, const MAX: i64, const DEF: i64>(pub i64);

impl<const MIN: i64, const MAX: i64, const DEF: i64> Default for Int<MIN, MAX, DEF> {
    fn default() -> Self {
        Self(DEF)
    }
}

impl<const MIN: i64, const MAX: i64, const DEF: i64> Int<MIN, MAX, DEF> {
    /// The value.
    pub fn get(self) -> i64 {
        self.0
    }
}

/// Reads a whole number from JSON (an integer, or a float with no fraction).
fn whole<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    match Value::deserialize(d)? {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9e15)
                    .map(|f| f as i64)
            })
            .ok_or_else(|| D::Error::custom(format!("expected a whole number, got {n}"))),
        other => Err(D::Error::custom(format!(
            "expected a whole number, got {}",
            kind(&other)
        ))),
    }
}

impl<'de, const MIN: i64, const MAX: i64, const DEF: i64> Deserialize<'de> for Int<MIN, MAX, DEF> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = whole(d)?;
        if !(MIN..=MAX).contains(&v) {
            return Err(D::Error::custom(format!("{v} is outside {MIN}..{MAX}")));
        }
        Ok(Self(v))
    }
}

impl<const MIN: i64, const MAX: i64, const DEF: i64> JsonSchema for Int<MIN, MAX, DEF> {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        format!("Int{MIN}_{MAX}_{DEF}").into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "integer", "minimum": MIN, "maximum": MAX, "default": DEF})
    }
}

/// A required whole number within `MIN..=MAX` (no default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Range<const MIN: i64, const MAX: i64>(pub i64);

impl<const MIN: i64, const MAX: i64> Range<MIN, MAX> {
    /// The value.
    pub fn get(self) -> i64 {
        self.0
    }
}

impl<'de, const MIN: i64, const MAX: i64> Deserialize<'de> for Range<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = whole(d)?;
        if !(MIN..=MAX).contains(&v) {
            return Err(D::Error::custom(format!("{v} is outside {MIN}..{MAX}")));
        }
        Ok(Self(v))
    }
}

impl<const MIN: i64, const MAX: i64> JsonSchema for Range<MIN, MAX> {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        format!("Range{MIN}_{MAX}").into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "integer", "minimum": MIN, "maximum": MAX})
    }
}

/// A boolean that defaults to true when not given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DefaultTrue(pub bool);

impl Default for DefaultTrue {
    fn default() -> Self {
        Self(true)
    }
}

impl JsonSchema for DefaultTrue {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "DefaultTrue".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "boolean", "default": true})
    }
}

/// A regular expression (Rust `regex` syntax: linear time, no
/// backreferences, size-limited, so a pattern cannot stall the aggregator).
#[derive(Debug, Clone)]
pub struct Pattern(pub regex::Regex);

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        regex::RegexBuilder::new(&s)
            .size_limit(1 << 20)
            .build()
            .map(Pattern)
            .map_err(|e| D::Error::custom(format!("not a valid regex: {e}")))
    }
}

impl JsonSchema for Pattern {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "Pattern".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string"})
    }
}

/// A list of strings: a JSON array, or one comma-separated string.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct StrList(pub Vec<String>);

impl<'de> Deserialize<'de> for StrList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Null => Ok(Self::default()),
            Value::String(s) => Ok(Self(
                s.split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect(),
            )),
            Value::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.trim().to_string()),
                    other => Err(D::Error::custom(format!(
                        "expected strings, got {}",
                        kind(&other)
                    ))),
                })
                .collect::<Result<_, _>>()
                .map(Self),
            other => Err(D::Error::custom(format!(
                "expected a list of strings, got {}",
                kind(&other)
            ))),
        }
    }
}

impl JsonSchema for StrList {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "StrList".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "array", "items": {"type": "string"}})
    }
}

/// A label selector as the API server accepts it: requirements separated
/// by commas, each `key`, `!key`, `key=value`, `key==value`, `key!=value`,
/// `key in (a,b)` or `key notin (a,b)`. Checked before it is sent, so a
/// malformed one is the caller's argument error, not an API failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct LabelSelector(String);

impl LabelSelector {
    /// The selector.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Checks `s`.
    pub fn new(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let token = |t: &str, key: bool| {
            let t = t.trim();
            let (prefix, name) = match t.split_once('/') {
                Some((p, n)) if key => (Some(p), n),
                _ => (None, t),
            };
            let ok = |x: &str| {
                x.len() <= 63
                    && x.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                    && x.chars().next().is_none_or(|c| c.is_ascii_alphanumeric())
                    && x.chars().last().is_none_or(|c| c.is_ascii_alphanumeric())
            };
            prefix.is_none_or(|p| !p.is_empty() && p.len() <= 253 && name_problem(p).is_none())
                && ok(name)
                && (!key || !name.is_empty())
        };
        let mut parts = Vec::new();
        let (mut depth, mut start) = (0i32, 0);
        for (i, c) in s.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                ',' if depth == 0 => {
                    parts.push(&s[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        parts.push(&s[start..]);
        for part in parts {
            let p = part.trim();
            let set = |op: &str| -> Option<bool> {
                let at = p.find(op)?;
                let values = p[at + op.len()..]
                    .trim()
                    .strip_prefix('(')?
                    .strip_suffix(')')?;
                Some(token(&p[..at], true) && values.split(',').all(|v| token(v, false)))
            };
            let valid = if let Some(v) = set(" notin ").or_else(|| set(" in ")) {
                v
            } else if let Some((k, v)) = p.split_once("!=") {
                token(k, true) && token(v, false)
            } else if let Some((k, v)) = p.split_once("==").or_else(|| p.split_once('=')) {
                token(k, true) && token(v, false) && !v.contains('=')
            } else if let Some(k) = p.strip_prefix('!') {
                token(k, true)
            } else {
                token(p, true)
            };
            if !valid {
                return Err(format!(
                    "{s:?} is not a label selector (e.g. app=backup, tier in (a,b), !canary): {p:?} does not parse"
                ));
            }
        }
        Ok(Self(s.to_string()))
    }
}

impl<'de> Deserialize<'de> for LabelSelector {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        LabelSelector::new(&s).map_err(D::Error::custom)
    }
}

impl JsonSchema for LabelSelector {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "LabelSelector".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string"})
    }
}

/// A closed set of string choices, matched without regard to case, written
/// and described as its canonical spelling.
#[macro_export]
macro_rules! choice {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every choice.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// Its canonical spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                let t = s.trim();
                Self::ALL
                    .iter()
                    .copied()
                    .find(|c| c.as_str().eq_ignore_ascii_case(t))
                    .ok_or_else(|| {
                        <D::Error as serde::de::Error>::custom(format!(
                            "{t:?} is not one of {}",
                            Self::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ")
                        ))
                    })
            }
        }

        impl schemars::JsonSchema for $name {
            fn inline_schema() -> bool {
                true
            }
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                let values: Vec<&str> = Self::ALL.iter().map(|c| c.as_str()).collect();
                schemars::json_schema!({"type": "string", "enum": values})
            }
        }
    };
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
    use super::super::ToolError;
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors_are_checked() {
        for ok in [
            "app=backup",
            "app.kubernetes.io/component=backup,tier!=web",
            "homelab.mcp/triggerable=true",
            "tier in (web, api),!canary",
            "env notin (dev)",
            "app==x",
            "app",
        ] {
            assert!(LabelSelector::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "=!bad",
            "app=",
            "=x",
            "a b=c",
            "app=x=y",
            "tier in web",
            "-app=x",
            "app=x,",
            "!",
        ] {
            if bad == "app=" {
                // An empty value is valid for the API server.
                assert!(LabelSelector::new(bad).is_ok());
                continue;
            }
            assert!(LabelSelector::new(bad).is_err(), "{bad}");
        }
    }

    fn parse<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, ToolError> {
        super::super::parse_args(v.as_object().cloned().unwrap_or_default())
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Probe {
        #[serde(default)]
        limit: Int<1, 1000, 50>,
        #[serde(default, deserialize_with = "blank_as_none")]
        node: Option<Text>,
        #[serde(default)]
        ipv6: bool,
        #[serde(default, deserialize_with = "blank_as_none")]
        namespace: Option<Name>,
        #[serde(default, deserialize_with = "blank_as_none")]
        grep: Option<Pattern>,
        #[serde(default)]
        sections: StrList,
    }

    #[test]
    fn validation_names_the_argument() {
        let e = parse::<Probe>(json!({"limit": 5000})).unwrap_err();
        assert!(
            e.message.contains("\"limit\"") && e.message.contains("outside 1..1000"),
            "{}",
            e.message
        );
        assert!(
            parse::<Probe>(json!({"limit": 2.5}))
                .unwrap_err()
                .message
                .contains("whole number")
        );
        assert!(
            parse::<Probe>(json!({"node": 3}))
                .unwrap_err()
                .message
                .contains("\"node\"")
        );
        assert!(
            parse::<Probe>(json!({"ipv6": "yes"}))
                .unwrap_err()
                .message
                .contains("\"ipv6\"")
        );
        let e = parse::<Probe>(json!({"nod": "x"})).unwrap_err();
        assert!(
            e.message.contains("\"nod\"") && e.message.contains("node"),
            "{}",
            e.message
        );
        let ok = parse::<Probe>(json!({"limit": 7.0, "node": " ", "sections": "links, routes"}))
            .unwrap();
        assert_eq!(ok.limit.get(), 7);
        assert!(ok.node.is_none(), "blank is not given");
        assert_eq!(ok.sections.0, ["links", "routes"]);
        assert_eq!(parse::<Probe>(json!({})).unwrap().limit.get(), 50);
        assert!(!parse::<Probe>(json!({})).unwrap().ipv6);
    }

    #[test]
    fn names_and_patterns_are_checked_before_use() {
        let e = parse::<Probe>(json!({"namespace": "../kube-system"})).unwrap_err();
        assert!(
            e.message.contains("\"namespace\"") && e.message.contains("not a Kubernetes name"),
            "{}",
            e.message
        );
        assert_eq!(
            parse::<Probe>(json!({"namespace": "jellyfin"}))
                .unwrap()
                .namespace
                .map(|n| n.to_string())
                .as_deref(),
            Some("jellyfin")
        );
        let e = parse::<Probe>(json!({"grep": "(unclosed"})).unwrap_err();
        assert!(e.message.contains("not a valid regex"), "{}", e.message);
        assert!(
            parse::<Probe>(json!({"grep": "err|warn"}))
                .unwrap()
                .grep
                .is_some_and(|r| r.0.is_match("an err"))
        );
    }
}
