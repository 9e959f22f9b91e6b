//! The CLI for people: `labscope tools` and `labscope call TOOL key=value …`,
//! running the same tools in-process with the same configuration.

use serde_json::{Map, Value};

use crate::tools::{ToolDef, ToolError};

/// The JSON type of argument `key` in an input schema: "string",
/// "integer", "number", "boolean" or "array" (following a `$ref` into
/// `$defs`, ignoring "null" in a type list).
pub fn arg_type<'a>(schema: &'a Map<String, Value>, key: &str) -> &'a str {
    let mut prop = schema.get("properties").and_then(|p| p.get(key));
    if let Some(r) = prop.and_then(|p| p.get("$ref")).and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or_default();
        prop = schema.get("$defs").and_then(|d| d.get(name));
    }
    match prop.and_then(|p| p.get("type")) {
        Some(Value::String(t)) => t,
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("string"),
        _ => "string",
    }
}

/// Turns `key=value` words into tool arguments, typed by the tool's input
/// schema (integers, booleans, lists), and merges `--json` on top.
pub fn parse_call_args(
    tool: &ToolDef,
    pairs: &[String],
    json: Option<&str>,
) -> Result<Map<String, Value>, ToolError> {
    let mut args = Map::new();
    if let Some(text) = json {
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(m)) => args.extend(m),
            Ok(_) => return Err(ToolError::invalid("--json", "must be a JSON object")),
            Err(e) => return Err(ToolError::invalid("--json", e)),
        }
    }
    for pair in pairs {
        let (key, raw) = pair
            .split_once('=')
            .ok_or_else(|| ToolError::invalid(pair, "expected key=value (or --json '{…}')"))?;
        let ty = arg_type(&tool.input_schema, key);
        let value = match ty {
            "integer" | "number" => raw
                .parse::<i64>()
                .map(Value::from)
                .or_else(|_| raw.parse::<f64>().map(Value::from))
                .map_err(|_| ToolError::invalid(key, format!("{raw:?} is not a number")))?,
            "boolean" => match raw {
                "true" | "yes" | "1" => Value::Bool(true),
                "false" | "no" | "0" => Value::Bool(false),
                _ => {
                    return Err(ToolError::invalid(
                        key,
                        format!("{raw:?} is not true or false"),
                    ));
                }
            },
            "array" => match serde_json::from_str::<Value>(raw) {
                Ok(v @ Value::Array(_)) => v,
                _ => Value::Array(
                    raw.split(',')
                        .map(|s| Value::String(s.trim().to_string()))
                        .collect(),
                ),
            },
            _ => Value::String(raw.to_string()),
        };
        args.insert(key.to_string(), value);
    }
    Ok(args)
}

/// `labscope tools`: one line per tool.
pub fn tools_listing(tools: &[ToolDef]) -> String {
    let width = tools.iter().map(|t| t.name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for t in tools {
        let required: Vec<String> = t
            .input_schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| {
                r.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let args = if required.is_empty() {
            String::new()
        } else {
            format!(" [{}]", required.join(", "))
        };
        out.push_str(&format!("{:width$}  {}{}\n", t.name, t.title, args));
    }
    out
}

/// Cuts lines to `width` characters so tables fit a terminal.
pub fn fit(text: &str, width: usize) -> String {
    text.lines()
        .map(|l| {
            if l.chars().count() > width {
                let cut: String = l.chars().take(width.saturating_sub(1)).collect();
                format!("{cut}…")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::registry;

    #[test]
    fn args_are_typed_by_schema() {
        let tools = registry();
        let t = tools
            .iter()
            .find(|t| t.name == "get_iptables_rules")
            .unwrap();
        let args = parse_call_args(
            t,
            &["node=pi-k3s".into(), "limit=10".into(), "ipv6=true".into()],
            None,
        )
        .unwrap();
        assert_eq!(args["node"], "pi-k3s");
        assert_eq!(args["limit"], 10);
        assert_eq!(args["ipv6"], true);
        assert!(parse_call_args(t, &["limit=ten".into()], None).is_err());
        assert!(parse_call_args(t, &["nokey".into()], None).is_err());
        let m = tools
            .iter()
            .find(|t| t.name == "check_network_mesh")
            .unwrap();
        let args = parse_call_args(m, &["nodes=a,b".into()], Some(r#"{"port": 9447}"#)).unwrap();
        assert_eq!(args["nodes"], serde_json::json!(["a", "b"]));
        assert_eq!(args["port"], 9447);
        assert!(parse_call_args(m, &[], Some("[1]")).is_err());
    }

    #[test]
    fn fit_cuts_long_lines() {
        assert_eq!(fit("abcdef\nab", 4), "abc…\nab");
    }
}
