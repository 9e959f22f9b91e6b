//! What a tool advertises and how its arguments are read: the input schema
//! (with each argument's description, range and default) and the output
//! schema generated from the Rust types, the arguments' help for people,
//! and the parsing that names the argument at fault.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::ToolError;

/// One argument, for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgHelp {
    /// Name.
    pub name: String,
    /// Type, with its range or choices.
    pub kind: String,
    /// Must be given.
    pub required: bool,
    /// Default, when there is one.
    pub default: Option<String>,
    /// Largest value, for integers with a range (the CLI's `--all` asks
    /// for the largest page).
    pub maximum: Option<u64>,
    /// What it means.
    pub description: String,
}

/// Input schema of `A` as advertised: root `type: object`, without
/// `$schema`, `title` and the struct's own description (the tool's
/// description says that), each argument with its short description, its
/// range (`minimum`/`maximum`) and its default — what the model reads to
/// call the tool right the first time — and without null anywhere in an
/// optional argument's `type`, `anyOf` or `enum` (it may simply be left out;
/// strict consumers reject a null choice). Also the arguments' help for
/// people, from the same schema.
///
/// Untyped JSON on purpose (here and in the schema helpers below): a JSON
/// Schema is itself arbitrary JSON that schemars generates and MCP carries
/// as a map; these functions rewrite it, they do not read a service's data.
pub fn input_schema<A: schemars::JsonSchema + 'static>() -> (Arc<Map<String, Value>>, Vec<ArgHelp>)
{
    let root = schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<A>();
    let Ok(Value::Object(mut schema)) = serde_json::to_value(root) else {
        panic!(
            "{}: the input schema is not an object",
            std::any::type_name::<A>()
        );
    };
    assert_eq!(
        schema.get("type").and_then(Value::as_str),
        Some("object"),
        "{}: MCP requires an object input schema",
        std::any::type_name::<A>()
    );
    // additionalProperties: false is enforced when parsing (an unknown
    // argument is an error naming the ones the tool takes), not advertised.
    for key in ["$schema", "title", "description", "additionalProperties"] {
        schema.remove(key);
    }
    let required: Vec<String> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let mut help = Vec::new();
    if let Some(Value::Object(props)) = schema.get_mut("properties") {
        for (name, prop) in props.iter_mut() {
            drop_null(prop);
            if let Some(obj) = prop.as_object_mut() {
                let description = obj
                    .get("description")
                    .and_then(|d| d.as_str().map(str::to_string))
                    .unwrap_or_default();
                if matches!(obj.get("default"), Some(Value::Null)) {
                    obj.remove("default");
                }
                let kind = arg_kind(obj);
                let default = obj.get("default").map(|d| match d {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                });
                let maximum = obj.get("maximum").and_then(Value::as_u64);
                help.push(ArgHelp {
                    name: name.clone(),
                    kind,
                    required: required.contains(name),
                    default,
                    maximum,
                    description,
                });
            }
        }
    }
    (Arc::new(schema), help)
}

/// "integer 1..1000", "one of filter, nat", "list of string", "string".
fn arg_kind(prop: &Map<String, Value>) -> String {
    if let Some(Value::Array(choices)) = prop.get("enum") {
        let names: Vec<String> = choices
            .iter()
            .filter_map(|c| c.as_str().map(str::to_string))
            .collect();
        return format!("one of {}", names.join(", "));
    }
    let ty = prop.get("type").and_then(Value::as_str).unwrap_or("string");
    match (ty, prop.get("minimum"), prop.get("maximum")) {
        ("integer", Some(lo), Some(hi)) => format!("integer {lo}..{hi}"),
        ("array", _, _) => {
            let item = prop
                .get("items")
                .and_then(Value::as_object)
                .map(arg_kind)
                .unwrap_or_else(|| "string".into());
            format!("list of {item}")
        }
        (ty, _, _) => ty.to_string(),
    }
}

/// `{"type": ["integer", "null"]}` → `{"type": "integer"}`,
/// `{"anyOf": [X, {"type": "null"}]}` → `X`, and `null` out of an `enum`:
/// an optional argument may be left out; it need not be sent as null (serde
/// still accepts null).
fn drop_null(prop: &mut Value) {
    if let Some(Value::Array(choices)) = prop.get_mut("enum") {
        choices.retain(|c| !c.is_null());
    }
    if let Some(Value::Array(types)) = prop.get_mut("type") {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            let only = types[0].clone();
            prop["type"] = only;
        }
    }
    let single = match prop.get("anyOf") {
        Some(Value::Array(alts)) => {
            let rest: Vec<&Value> = alts
                .iter()
                .filter(|a| a.get("type") != Some(&Value::from("null")))
                .collect();
            (rest.len() == 1 && alts.len() == 2).then(|| rest[0].clone())
        }
        _ => None,
    };
    if let (Some(single), Some(obj)) = (single, prop.as_object_mut()) {
        obj.remove("anyOf");
        if let Value::Object(inner) = single {
            for (k, v) in inner {
                obj.entry(k).or_insert(v);
            }
        }
    }
}

/// Output schema of `O`: what its `Serialize` writes — types, enums,
/// required fields — without descriptions (the field names say it; the
/// Rust docs of the result types say more).
pub fn output_schema<O: schemars::JsonSchema + 'static>() -> Arc<Map<String, Value>> {
    // Generated here rather than by rmcp's `schema_for_output`, which keeps
    // two copies of every schema, descriptions included, in per-thread
    // caches for the life of the process. The serialize contract: what the
    // result writes (an `Option` without `skip_serializing_if` is present).
    let mut schema = schemars::generate::SchemaSettings::draft2020_12()
        .for_serialize()
        .into_generator()
        .into_root_schema_for::<O>()
        .to_value();
    strip_descriptions(&mut schema);
    let Value::Object(mut schema) = schema else {
        unreachable!("a schema object stays an object")
    };
    schema.remove("$schema");
    Arc::new(schema)
}

/// Removes `description` and `title` everywhere in a schema (not inside
/// `properties`, where they would be field names), and schemars' integer
/// `format`s (uint, int64, double: not JSON Schema formats, which strict
/// validators such as ajv reject); writes a `oneOf` of string constants as
/// one `enum`.
fn strip_descriptions(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("description");
            m.remove("title");
            const NUMERIC: [&str; 12] = [
                "uint", "uint8", "uint16", "uint32", "uint64", "int", "int8", "int16", "int32",
                "int64", "float", "double",
            ];
            if m.get("format")
                .and_then(Value::as_str)
                .is_some_and(|f| NUMERIC.contains(&f))
            {
                m.remove("format");
            }
            let constants: Option<Vec<Value>> =
                m.get("oneOf").and_then(Value::as_array).and_then(|alts| {
                    alts.iter()
                        .map(|a| {
                            let c = a.get("const")?;
                            (c.is_string()
                                && a.as_object().is_some_and(|o| {
                                    o.keys().all(|k| {
                                        ["const", "type", "description"].contains(&k.as_str())
                                    })
                                }))
                            .then(|| c.clone())
                        })
                        .collect()
                });
            if let Some(values) = constants {
                m.remove("oneOf");
                m.insert("type".into(), Value::from("string"));
                m.insert("enum".into(), Value::Array(values));
            }
            nullable_as_any_of(m);
            for (k, child) in m.iter_mut() {
                if k == "properties" || k == "$defs" {
                    if let Value::Object(fields) = child {
                        fields.values_mut().for_each(strip_descriptions);
                    }
                } else {
                    strip_descriptions(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strip_descriptions),
        _ => {}
    }
}

/// `{"type": [X, "null"], …}` → `{"anyOf": [{"type": X, …}, {"type":
/// "null"}]}`: one `type` per schema, which clients that map tool schemas
/// onto a single-type dialect (Gemini's OpenAPI subset; MCP Inspector's
/// portability check) accept; `null` leaves an `enum` for its own branch.
fn nullable_as_any_of(m: &mut Map<String, Value>) {
    let Some(Value::Array(types)) = m.get("type") else {
        return;
    };
    let others: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
    if others.len() != 1 || types.len() != 2 {
        return;
    }
    let mut branch = std::mem::take(m);
    branch.insert("type".into(), others[0].clone());
    if let Some(Value::Array(choices)) = branch.get_mut("enum") {
        choices.retain(|c| !c.is_null());
    }
    m.insert(
        "anyOf".into(),
        Value::Array(vec![
            Value::Object(branch),
            serde_json::json!({"type": "null"}),
        ]),
    );
}

/// The candidate `word` was most likely meant as, if one is close enough:
/// a small edit distance for its length (a typo, a missing letter), or the
/// only candidate it is a prefix of.
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let w = word.to_ascii_lowercase();
    let best = candidates
        .iter()
        .map(|c| (strsim::levenshtein(&w, &c.to_ascii_lowercase()), *c))
        .min_by_key(|(d, _)| *d)?;
    let allowed = (w.chars().count() / 3).clamp(1, 3);
    if best.0 <= allowed {
        return Some(best.1);
    }
    let prefixed: Vec<&str> = candidates
        .iter()
        .copied()
        .filter(|c| w.len() >= 3 && c.to_ascii_lowercase().starts_with(&w))
        .collect();
    (prefixed.len() == 1).then(|| prefixed[0])
}

/// Deserialises a call's arguments into `A`; an error names the argument.
pub fn parse_args<A: serde::de::DeserializeOwned>(
    args: Map<String, Value>,
) -> Result<A, ToolError> {
    serde_path_to_error::deserialize::<_, A>(Value::Object(args)).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let quoted = |s: &str| s.split('`').nth(1).map(str::to_string);
        // An unknown argument (at the top, or where serde names it).
        let top = path == "." || path.is_empty();
        if let Some(rest) = inner.strip_prefix("unknown field ")
            && (top || quoted(rest).as_deref() == Some(path.as_str()))
        {
            {
                let known: Vec<&str> = rest.split('`').skip(3).step_by(2).collect();
                let given = quoted(rest).unwrap_or_default();
                let guess = did_you_mean(&given, &known)
                    .map(|k| format!("did you mean {k:?}? "))
                    .unwrap_or_default();
                return ToolError::invalid(
                    &given,
                    if known.is_empty() {
                        "unknown argument; this tool takes none".to_string()
                    } else {
                        format!(
                            "unknown argument; {guess}this tool takes: {}",
                            known.join(", ")
                        )
                    },
                );
            }
        }
        if top {
            if let Some(rest) = inner.strip_prefix("missing field ") {
                return ToolError::invalid(&quoted(rest).unwrap_or_default(), "required");
            }
            return ToolError::invalid("arguments", inner);
        }
        ToolError::invalid(&path, inner)
    })
}
