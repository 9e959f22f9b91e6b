//! The CLI for people: `labscope tools` and `labscope call TOOL key=value …`,
//! running the same tools in-process with the same configuration.

pub mod call;
pub mod terminal;

use serde_json::{Map, Value};

use crate::tools::{ArgHelp, ToolDef, ToolError, Toolset};

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
        let ty = arg_type(tool.input_schema(), key);
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

/// `labscope tools`: the tools of each toolset, one line each; sets not
/// served under this configuration are said so.
pub fn tools_listing(tools: &[ToolDef], served: &std::collections::BTreeSet<Toolset>) -> String {
    let width = tools.iter().map(|t| t.name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for set in Toolset::ALL {
        let in_set: Vec<&ToolDef> = tools.iter().filter(|t| t.toolset == set).collect();
        if in_set.is_empty() {
            continue;
        }
        out.push_str(&format!(
            "{} — {}{}\n",
            set.as_str(),
            set.about(),
            if served.contains(&set) {
                ""
            } else {
                " [not served over MCP here: no Kubernetes API configured, or --toolsets]"
            }
        ));
        for t in in_set {
            let required: Vec<&str> = t
                .arg_help()
                .iter()
                .filter(|a| a.required)
                .map(|a| a.name.as_str())
                .collect();
            let args = if required.is_empty() {
                String::new()
            } else {
                format!(" [{}]", required.join(", "))
            };
            let mark = if t.mutates() { " ✎" } else { "" };
            out.push_str(&format!(
                "  {:width$}  {}{}{}\n",
                t.name, t.title, args, mark
            ));
        }
    }
    if tools.iter().any(|t| t.mutates()) {
        out.push_str(
            "\n✎ changes state: served and run only when the config file (--config) sets [mutations] enabled = true,\n  \
             each within its allowlist there, and recorded in the audit log; --read-only always refuses them.\n",
        );
    }
    out.push_str(
        "\n`labscope tools TOOL` (or `labscope call TOOL --help`) shows a tool's arguments.\n",
    );
    out
}

/// `labscope tools --markdown`: the tools reference (docs/tools.md), every
/// tool by toolset with its annotations and arguments, from the registry.
pub fn tools_markdown(tools: &[ToolDef]) -> String {
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let mut out = String::from(
        "# labscope tools\n\n\
         Generated by `labscope tools --markdown` from the tool registry (tests/tests/cli.rs fails when this \
         file is stale). Every tool answers with a text rendering and `structuredContent` that matches its \
         output schema; a failure is `isError` with `{code, message, hint}` in `_meta[\"io.labscope/error\"]`. \
         `labscope tools TOOL` shows the same for one tool, `labscope tools --json` the MCP definitions.\n\n\
         ✎ marks an operation. Operations are served only with `[mutations] enabled = true`, each within its \
         allowlist, and every call is recorded in the audit log. An operation asks a person before it changes \
         anything, saying what will change: an MCP client on protocol 2026-07-28 that declares elicitation gets \
         an input request (its retry carries the answer and a sealed `requestState`), an older one that \
         declares elicitation is asked with `elicitation/create`, the CLI asks on its terminal (`--yes` answers \
         for the person). With nobody to ask, `[mutations] confirm_fallback` decides: `\"allow\"` (the \
         default) or `\"refuse\"`.\n",
    );
    for set in Toolset::ALL {
        let in_set: Vec<&ToolDef> = tools.iter().filter(|t| t.toolset == set).collect();
        if in_set.is_empty() {
            continue;
        }
        out.push_str(&format!("\n## {} — {}\n", set.as_str(), set.about()));
        for t in in_set {
            let h = t.hints;
            let mut notes = vec![if h.read_only {
                "read-only".to_string()
            } else if h.destructive {
                "✎ operation, destructive".to_string()
            } else {
                "✎ operation, only adds".to_string()
            }];
            if !h.read_only {
                notes.push(
                    if h.idempotent {
                        "idempotent"
                    } else {
                        "not idempotent"
                    }
                    .into(),
                );
            }
            if h.open_world {
                notes.push("open world".into());
            }
            out.push_str(&format!(
                "\n### `{}` — {}\n\n{} ({})\n\nSource: `{}`\n\n",
                t.name,
                t.title,
                t.description,
                notes.join(", "),
                t.source
            ));
            if t.arg_help().is_empty() {
                out.push_str("No arguments.\n");
            } else {
                out.push_str("| argument | type | required | default | description |\n|---|---|---|---|---|\n");
                for a in t.arg_help() {
                    out.push_str(&format!(
                        "| `{}` | {} | {} | {} | {} |\n",
                        a.name,
                        cell(&a.kind),
                        if a.required { "yes" } else { "" },
                        a.default
                            .as_deref()
                            .map(|d| format!("`{}`", cell(d)))
                            .unwrap_or_default(),
                        cell(&a.description)
                    ));
                }
            }
        }
    }
    out
}

/// `labscope tools TOOL`: what one tool does and each of its arguments.
pub fn tool_help(t: &ToolDef) -> String {
    let mut out = format!(
        "{} — {} (toolset {})\n\n{}\n\n",
        t.name,
        t.title,
        t.toolset.as_str(),
        t.description
    );
    if t.arg_help().is_empty() {
        out.push_str("No arguments.\n");
    } else {
        out.push_str("Arguments (key=value; lists as a,b; or --json '{…}'):\n");
        let width = t.arg_help().iter().map(|a| a.name.len()).max().unwrap_or(0);
        let mut args: Vec<&ArgHelp> = t.arg_help().iter().collect();
        args.sort_by_key(|a| (!a.required, a.name.clone()));
        for a in args {
            let when = if a.required {
                "required".to_string()
            } else {
                match &a.default {
                    Some(d) => format!("default {d}"),
                    None => "optional".to_string(),
                }
            };
            out.push_str(&format!(
                "  {:width$}  {} ({when}) — {}\n",
                a.name, a.kind, a.description
            ));
        }
    }
    let example: Vec<String> = t
        .arg_help()
        .iter()
        .filter(|a| a.required)
        .map(|a| format!("{}=…", a.name))
        .collect();
    out.push_str(&format!(
        "\nExample: labscope call {} {}\n",
        t.name,
        example.join(" ")
    ));
    if t.mutates() {
        out.push_str(
            "\n✎ An operation: served only with [mutations] enabled, within its allowlist, recorded in the \
             audit log. It asks a person first, saying what will change: on this terminal ([y/N]; --yes \
             answers for you), or through the MCP client (an input request, or elicitation). With nobody \
             to ask, [mutations] confirm_fallback decides: \"allow\" (the default) or \"refuse\".\n",
        );
    }
    out
}

/// `call --all`: the tool must be paged (take a `cursor`); without a
/// `limit` the largest page the tool's schema allows is asked for.
pub fn prepare_all(tool: &ToolDef, args: &mut Map<String, Value>) -> Result<(), ToolError> {
    let props = tool.input_schema().get("properties");
    if props.and_then(|p| p.get("cursor")).is_none() {
        return Err(ToolError::invalid(
            "--all",
            format!(
                "{} is not paged (it takes no cursor); --all follows nextCursor of \
                 get_conntrack_entries, get_iptables_rules and get_node_networking",
                tool.name
            ),
        ));
    }
    if !args.contains_key("limit") {
        // The published schema leaves ranges out (they are checked when
        // parsing); the help keeps them.
        let max = tool
            .arg_help()
            .iter()
            .find(|a| a.name == "limit")
            .and_then(|a| a.maximum);
        if let Some(max) = max {
            args.insert("limit".into(), max.into());
        }
    }
    Ok(())
}

/// A page's text without its `more: cursor=…` line (`call --all` follows
/// the cursor itself).
pub fn without_cursor_line(mut text: String) -> String {
    let body = text.trim_end_matches('\n');
    if let Some(at) = body.rfind('\n').map(|i| i + 1).or(Some(0))
        && body[at..].starts_with("more: cursor=")
    {
        text.truncate(at);
    }
    text
}

/// Progress on stderr for a call that takes longer than a second, when
/// stderr is a terminal: the tool's own progress messages, else the time
/// spent. The line is cleared when the call ends.
pub struct StderrProgress {
    latest: std::sync::Arc<std::sync::Mutex<Option<String>>>,
    ticker: Option<tokio::task::JoinHandle<()>>,
    shown: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl StderrProgress {
    /// Starts ticking (only when stderr is a terminal).
    pub fn start(tool: &str) -> Self {
        use std::io::IsTerminal;
        let latest = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
        let shown = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let ticker = std::io::stderr().is_terminal().then(|| {
            let (latest, shown, tool) = (latest.clone(), shown.clone(), tool.to_string());
            tokio::spawn(async move {
                let started = tokio::time::Instant::now();
                let mut tick = tokio::time::interval_at(
                    started + std::time::Duration::from_secs(1),
                    std::time::Duration::from_secs(1),
                );
                loop {
                    tick.tick().await;
                    let message = latest
                        .lock()
                        .ok()
                        .and_then(|m| m.clone())
                        .unwrap_or_else(|| {
                            format!("{tool}: running, {} s", started.elapsed().as_secs())
                        });
                    eprint!("\r\x1b[2K{message}");
                    shown.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            })
        });
        Self {
            latest,
            ticker,
            shown,
        }
    }

    /// The call context that feeds the tool's progress messages here.
    pub fn call(&self) -> crate::tools::Call {
        let latest = self.latest.clone();
        crate::tools::Call::with_progress(move |_, _, message| {
            if let Ok(mut m) = latest.lock() {
                *m = Some(message);
            }
        })
    }

    /// Replaces the message shown (until the tool reports its own).
    pub fn note(&self, message: String) {
        if let Ok(mut m) = self.latest.lock() {
            *m = Some(message);
        }
    }

    /// Stops and clears the line.
    pub fn finish(self) {
        if let Some(t) = self.ticker {
            t.abort();
        }
        if self.shown.load(std::sync::atomic::Ordering::Relaxed) {
            eprint!("\r\x1b[2K");
        }
    }
}

/// The width to fit output to: `$COLUMNS`, else the terminal's, else none
/// (output to a pipe or file is never cut).
pub fn output_width(stdout_is_tty: bool) -> Option<usize> {
    if let Some(c) = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()) {
        return Some(c);
    }
    if !stdout_is_tty {
        return None;
    }
    terminal_size::terminal_size().map(|(w, _)| w.0 as usize)
}

/// Wraps lines longer than `width` at spaces, continuing indented: nothing
/// is cut (the end of a line is often the fix or the next tool to call).
pub fn fit(text: &str, width: usize) -> String {
    let width = width.max(20);
    let mut out = Vec::new();
    for line in text.lines() {
        if line.chars().count() <= width {
            out.push(line.to_string());
            continue;
        }
        // A line keeps its indent; what wraps goes four further in.
        let body = line.trim_start_matches(' ');
        let indent = &line[..line.len() - body.len()];
        let more = format!("{indent}    ");
        let mut current = indent.to_string();
        let mut words_in_line = 0;
        for word in body.split(' ').filter(|w| !w.is_empty()) {
            if words_in_line > 0 && current.chars().count() + 1 + word.chars().count() > width {
                out.push(std::mem::replace(&mut current, more.clone()));
                words_in_line = 0;
            }
            if words_in_line > 0 {
                current.push(' ');
            }
            current.push_str(word);
            words_in_line += 1;
        }
        if words_in_line > 0 {
            out.push(current);
        }
    }
    let mut fitted = out.join("\n");
    if text.ends_with('\n') {
        fitted.push('\n');
    }
    fitted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::registry;

    #[test]
    fn all_asks_for_the_largest_page_and_only_of_paged_tools() {
        let tools = registry();
        let def = |name: &str| tools.iter().find(|t| t.name == name).unwrap();
        for (name, max) in [
            ("get_conntrack_entries", 1000),
            ("get_iptables_rules", 2000),
            ("get_node_networking", 5000),
        ] {
            let mut args = Map::new();
            prepare_all(def(name), &mut args).unwrap();
            assert_eq!(args["limit"], max, "{name}");
            let mut args = Map::new();
            args.insert("limit".into(), 7.into());
            prepare_all(def(name), &mut args).unwrap();
            assert_eq!(args["limit"], 7, "{name}: a given limit stays");
        }
        let e = prepare_all(def("list_nodes"), &mut Map::new()).unwrap_err();
        assert!(e.message.contains("not paged"), "{e:?}");
        assert_eq!(
            without_cursor_line("a\nb\nmore: cursor=xyz\n".into()),
            "a\nb\n"
        );
        assert_eq!(without_cursor_line("more: cursor=xyz\n".into()), "");
        assert_eq!(without_cursor_line("a\nb\n".into()), "a\nb\n");
    }

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
    fn fit_wraps_long_lines_and_loses_nothing() {
        let line = "[critical] FluxStuck helmrelease/immich/immich: UpgradeFailed: Stalled for 15d 23h → get_flux_status";
        let out = fit(line, 40);
        assert!(out.lines().all(|l| l.chars().count() <= 40), "{out}");
        assert!(
            out.ends_with("get_flux_status"),
            "the end of the line survives: {out}"
        );
        assert_eq!(
            out.split_whitespace().collect::<Vec<_>>(),
            line.split_whitespace().collect::<Vec<_>>()
        );
        assert_eq!(fit("short\nlines\n", 40), "short\nlines\n");
        let indented = fit(
            "routes:\n  unicast default via 192.0.2.1 dev eth0 table main",
            32,
        );
        assert_eq!(
            indented,
            "routes:\n  unicast default via 192.0.2.1\n      dev eth0 table main"
        );
    }

    #[test]
    fn per_tool_help_names_every_argument() {
        let tools = registry();
        let t = tools.iter().find(|t| t.name == "get_pod_logs").unwrap();
        let help = tool_help(t);
        for arg in [
            "namespace",
            "pod",
            "container",
            "lines",
            "sinceSeconds",
            "previous",
            "grep",
            "maxBytes",
        ] {
            assert!(help.contains(arg), "{arg} missing from {help}");
        }
        assert!(
            help.contains("integer ..5000 (default 100)") || help.contains("integer"),
            "{help}"
        );
        assert!(
            help.contains("namespace") && help.contains("required"),
            "{help}"
        );
        let served: std::collections::BTreeSet<Toolset> = [Toolset::Node].into_iter().collect();
        let listing = tools_listing(&tools, &served);
        assert!(
            listing.contains("cluster — ") && listing.contains("not served"),
            "{listing}"
        );
    }
}
