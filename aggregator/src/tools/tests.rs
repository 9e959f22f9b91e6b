//! The registry's contracts: schemas, annotations, budgets, the gate.

use super::*;

/// What the model reads of a tool in tools/list, as bytes of compact JSON.
fn visible_bytes(t: &ToolDef) -> usize {
    let tool = crate::server::mcp::mcp_tool(t);
    let v = serde_json::json!({"name": tool.name, "title": tool.title, "description": tool.description,
        "inputSchema": tool.input_schema, "annotations": tool.annotations});
    serde_json::to_vec(&v)
        .map(|b| b.len())
        .unwrap_or(usize::MAX)
}

/// The budget: at most 550 bytes per tool on average across every
/// toolset, every argument documented (kubernetes-mcp-server spends about
/// 1,000 per tool); no tool over 1,100 (get_conntrack_entries, nine
/// filters and paging, is the largest at about 1,060).
#[test]
fn tools_list_stays_within_its_byte_budget() {
    let all = registry();
    let total: usize = all.iter().map(visible_bytes).sum();
    let avg = total as f64 / all.len() as f64;
    assert!(
        avg <= 550.0,
        "{avg:.1} bytes per tool on average ({total} for {} tools)",
        all.len()
    );
    for t in &all {
        assert!(
            visible_bytes(t) <= 1100,
            "{} alone takes {} bytes",
            t.name,
            visible_bytes(t)
        );
        assert!(
            !t.description.is_empty() && t.description.len() <= 120,
            "{}: {}",
            t.name,
            t.description
        );
    }
}

/// Where the model reads them: every argument has a short description,
/// every integer its range, every default its value, and no choice is
/// null; the CLI's help says the same.
#[test]
fn every_argument_is_documented_in_the_input_schema() {
    for t in registry() {
        let schema = t.input_schema();
        let props = schema
            .get("properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (name, p) in &props {
            let at = format!("{}.{name}", t.name);
            let d = p
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default();
            assert!(!d.is_empty() && d.len() <= 160, "{at}: description {d:?}");
            if p.get("type") == Some(&Value::from("integer")) {
                assert!(
                    p.get("minimum").is_some() && p.get("maximum").is_some(),
                    "{at}: an integer without its range: {p}"
                );
            }
            if let Some(choices) = p.get("enum").and_then(Value::as_array) {
                assert!(choices.iter().all(Value::is_string), "{at}: {p}");
            }
            assert!(
                !p.to_string().contains("null"),
                "{at}: null in the schema: {p}"
            );
            let help = t.arg_help().iter().find(|h| &h.name == name).unwrap();
            assert_eq!(help.description, d, "{at}");
            if let Some(default) = &help.default {
                let advertised = match p.get("default") {
                    Some(Value::String(s)) => s.clone(),
                    Some(v) => v.to_string(),
                    None => panic!("{at}: the default {default} is not advertised"),
                };
                assert_eq!(&advertised, default, "{at}");
            }
        }
    }
}

/// Each hint is true: reads are read-only, every operation destroys
/// unless it only adds (a Job from a CronJob), repeating is safe where
/// it is, and the open world is the probes' targets and the services.
#[test]
fn annotations_are_honest() {
    let only_adds = ["trigger_backup", "trigger_cronjob"];
    let not_idempotent = [
        "restart_deployment",
        "recover_helmrelease",
        "trigger_backup",
        "trigger_cronjob",
    ];
    let open_world = [
        "test_pod_connectivity",
        "curl_ingress",
        "test_dns_query",
        "diagnose_dns",
        "get_dns_status",
        "get_pihole_queries",
        "get_pihole_whitelist",
        "update_pihole_gravity",
        "get_media_status",
        "fix_jellyfin_metadata",
    ];
    let mut operations = 0;
    for t in registry() {
        let a = crate::server::mcp::mcp_tool(&t)
            .annotations
            .expect("annotations");
        let at = t.name;
        assert_eq!(
            a.open_world_hint,
            Some(open_world.contains(&at)),
            "{at}: openWorldHint"
        );
        if t.mutates() {
            operations += 1;
            assert_eq!(a.read_only_hint, Some(false), "{at}");
            assert_eq!(
                a.destructive_hint,
                Some(!only_adds.contains(&at)),
                "{at}: destructiveHint"
            );
            assert_eq!(
                a.idempotent_hint,
                Some(!not_idempotent.contains(&at)),
                "{at}: idempotentHint"
            );
        } else {
            assert_eq!(a.read_only_hint, Some(true), "{at}");
            assert_eq!(a.destructive_hint, None, "{at}");
        }
    }
    assert_eq!(operations, 10, "the operations");
}

/// Every operation is declared with its allowlist, and the gate asks
/// it: with mutations on and every allowlist empty, each one is refused
/// by its own rule before it could run (`check_args` is what the gate
/// asks before confirming; the run asks the same function again).
#[test]
fn every_operation_is_refused_by_its_own_allowlist() {
    use crate::config::file::Mutations;
    use serde_json::json;
    let policy = crate::safety::Policy::new(
        Mutations {
            enabled: true,
            audit_log: Some("/tmp/x".into()),
            trigger_namespaces: Some(Default::default()),
            ..Mutations::default()
        },
        false,
    );
    let ns_name = json!({"namespace": "media", "name": "x"});
    let examples: [(&str, Value); 10] = [
        (
            "restart_deployment",
            json!({"namespace": "media", "deployment": "jellyfin"}),
        ),
        (
            "trigger_backup",
            json!({"namespace": "media", "cronjob": "x"}),
        ),
        (
            "trigger_cronjob",
            json!({"namespace": "media", "cronjob": "x"}),
        ),
        ("refresh_secret", ns_name.clone()),
        (
            "reconcile_flux",
            json!({"resource": "kustomization/media/apps"}),
        ),
        (
            "suspend_flux",
            json!({"resource": "kustomization/media/apps"}),
        ),
        (
            "resume_flux",
            json!({"resource": "kustomization/media/apps"}),
        ),
        ("recover_helmrelease", ns_name),
        ("update_pihole_gravity", json!({})),
        ("fix_jellyfin_metadata", json!({"name": "x"})),
    ];
    let operations: Vec<ToolDef> = registry().into_iter().filter(|t| t.mutates()).collect();
    assert_eq!(operations.len(), examples.len());
    for t in &operations {
        let (_, args) = examples
            .iter()
            .find(|(n, _)| *n == t.name)
            .unwrap_or_else(|| panic!("{}: no example arguments here", t.name));
        let Value::Object(args) = args.clone() else {
            unreachable!()
        };
        let e = t.check_args(&args, &policy).expect_err(t.name);
        assert_eq!(e.code, ErrorCode::Refused, "{}: {e:?}", t.name);
        assert!(
            e.rule
                .as_deref()
                .is_some_and(|r| r.starts_with("mutations.")),
            "{}: {:?}",
            t.name,
            e.rule
        );
    }
}

/// Whether a tool changes something is what it was built as: a read
/// built with a changing hint, or an operation with a read-only one,
/// does not build.
#[test]
fn mutating_is_declared_by_construction() {
    async fn noop(_: Arc<ToolContext>, _: NoArgs, _: Call) -> Result<Done, ToolError> {
        Ok(Done)
    }
    #[derive(serde::Deserialize, schemars::JsonSchema)]
    struct NoArgs {}
    #[derive(Serialize, schemars::JsonSchema)]
    struct Done;
    impl Render for Done {
        fn text(&self) -> String {
            String::new()
        }
    }
    let meta = |hints| Meta {
        name: "t",
        title: "t",
        description: "t",
        toolset: Toolset::Cluster,
        hints,
    };
    let read = std::panic::catch_unwind(|| ToolDef::typed(meta(Hints::CHANGE), noop));
    assert!(read.is_err(), "a read built with Hints::CHANGE");
    let op = std::panic::catch_unwind(|| ToolDef::mutating(meta(Hints::READ), |_, _| Ok(()), noop));
    assert!(op.is_err(), "an operation built with Hints::READ");
    assert!(ToolDef::mutating(meta(Hints::CREATE), |_, _| Ok(()), noop).mutates());
    assert!(!ToolDef::typed(meta(Hints::READ), noop).mutates());
}

/// Every tool's `verdict` speaks the one vocabulary of
/// [`crate::assess::VERDICTS`] (or "no <things>" for an empty answer):
/// a model that learns "degraded" from one tool reads it right in all.
#[test]
fn verdicts_share_one_vocabulary() {
    fn values(node: &Value, defs: &Map<String, Value>, out: &mut Vec<String>) {
        let node = match node.get("$ref").and_then(Value::as_str) {
            Some(r) => defs
                .get(r.rsplit('/').next().unwrap_or_default())
                .unwrap_or(node),
            None => node,
        };
        for v in node
            .get("enum")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            out.extend(v.as_str().map(str::to_string));
        }
        for key in ["oneOf", "anyOf"] {
            for alt in node
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                out.extend(alt.get("const").and_then(Value::as_str).map(str::to_string));
                values(alt, defs, out);
            }
        }
    }
    let words: Vec<&str> = crate::assess::VERDICTS.iter().map(|(w, _)| *w).collect();
    let mut seen = 0;
    for t in registry() {
        let schema = Value::Object((**t.output_schema()).clone());
        let defs = schema
            .get("$defs")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        // The tool's own verdict (rows may have states of their own:
        // a CronJob `overdue`, a backend `no endpoints`).
        let mut found = Vec::new();
        if let Some(v) = schema.pointer("/properties/verdict") {
            values(v, &defs, &mut found);
        }
        for v in &found {
            seen += 1;
            assert!(
                words.contains(&v.as_str()) || v.starts_with("no "),
                "{}: verdict {v:?} is not in assess::VERDICTS",
                t.name
            );
        }
    }
    assert!(
        seen > 40,
        "only {seen} verdict values found: the walk is broken"
    );
}

#[test]
fn schemas_are_lean_and_exact() {
    for t in registry() {
        let input = serde_json::to_string(&**t.input_schema()).unwrap_or_default();
        for noise in [
            "\"$schema\"",
            "\"null\"",
            "additionalProperties",
            "\"title\"",
        ] {
            assert!(!input.contains(noise), "{}: {noise} in {input}", t.name);
        }
        let output = serde_json::to_string(&**t.output_schema()).unwrap_or_default();
        assert!(
            output.contains("\"required\""),
            "{}: the output schema marks required fields",
            t.name
        );
        for noise in [
            "\"format\":\"uint",
            "\"description\"",
            "\"$schema\"",
            // One type per schema (nullable as anyOf), for portability.
            "\"type\":[",
        ] {
            assert!(
                !output.contains(noise),
                "{}: {noise} in the output schema",
                t.name
            );
        }
        let ann = crate::server::mcp::mcp_tool(&t)
            .annotations
            .unwrap_or_default();
        assert!(ann.title.is_none(), "{}: the title is said once", t.name);
    }
}

#[test]
fn typos_get_a_did_you_mean() {
    let names: Vec<&str> = registry().iter().map(|t| t.name).collect();
    assert_eq!(did_you_mean("list_node", &names), Some("list_nodes"));
    assert_eq!(
        did_you_mean("get_iptable_rules", &names),
        Some("get_iptables_rules")
    );
    assert_eq!(
        did_you_mean("get_conntrack", &names),
        Some("get_conntrack_entries")
    );
    assert_eq!(did_you_mean("frobnicate", &names), None);
    let args = ["namespace", "type", "sinceMinutes", "object", "limit"];
    assert_eq!(did_you_mean("limt", &args), Some("limit"));
    assert_eq!(did_you_mean("Namespace", &args), Some("namespace"));
    assert_eq!(did_you_mean("x", &args), None);
    let e = parse_args::<super::events::Args>(
        serde_json::json!({"limt": 5}).as_object().cloned().unwrap(),
    )
    .unwrap_err();
    assert!(
        e.message.contains("did you mean \"limit\"?"),
        "{}",
        e.message
    );
}

#[test]
fn toolsets_partition_the_tools() {
    let all = registry();
    let mut names: Vec<&str> = all.iter().map(|t| t.name).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), all.len(), "tool names are unique");
    let node_only: std::collections::BTreeSet<Toolset> = [Toolset::Node].into_iter().collect();
    assert!(
        enabled(&node_only)
            .iter()
            .all(|t| t.toolset == Toolset::Node)
    );
    assert_eq!(enabled(&node_only).len(), 12);
    let every: std::collections::BTreeSet<Toolset> = Toolset::ALL.into_iter().collect();
    let read_only = all.iter().filter(|t| !t.mutates()).count();
    assert_eq!(enabled(&every).len(), read_only);
}

/// Every tool names the file that defines it, and the file is there.
#[test]
fn every_tool_names_its_source_file() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for t in registry() {
        assert!(
            t.source.starts_with("aggregator/src/tools/"),
            "{}: {}",
            t.name,
            t.source
        );
        assert!(
            root.join(t.source).is_file(),
            "{}: {} is not a file",
            t.name,
            t.source
        );
    }
}
