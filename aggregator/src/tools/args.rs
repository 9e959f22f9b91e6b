//! Argument parsing with validation on parse. Typed tools declare their
//! arguments as a struct built from the types here — each deserialises only
//! valid values (a Kubernetes name, a number within its range, a regex that
//! compiles, one of a set of choices) and describes itself in the input
//! schema — so an error always names the argument (`parse_args` adds the
//! path). `Args` is the older getter-based parser, for tools not yet typed.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{Deserializer, Error as _};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::ToolError;

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
            #[allow(dead_code)]
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
