//! ValidatingAdmissionPolicies run as the API server runs them, for the fake
//! API server: a write that a policy in the fixture matches is admitted only
//! when every validation holds, and is refused otherwise with the status
//! and message a real API server sends (422 `Invalid` unless the validation
//! names another reason). The objects reach CEL as maps, as in the API
//! server (it converts them to unstructured first), with `object`,
//! `oldObject` (null on create), `request` and `variables`.
//!
//! Supported: `matchConstraints.resourceRules` (groups, versions,
//! operations, resources, `*`), `matchConditions`, `variables`,
//! `validations` (`message`, `reason`), `failurePolicy`, bindings with the
//! `Deny` action. Not supported, and refused as a fixture error rather than
//! ignored: namespace and object selectors, `excludeResourceRules`,
//! `paramKind`, binding `matchResources`.

use std::sync::Arc;

use cel::{Context, Env};
use serde_json::{Value, json};

/// The request being admitted.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// API group ("" for core).
    pub group: &'a str,
    /// Version of the request path.
    pub version: &'a str,
    /// Plural resource name.
    pub resource: &'a str,
    /// `CREATE` or `UPDATE` (a patch is an update).
    pub operation: &'a str,
    /// Namespace of the object.
    pub namespace: &'a str,
    /// Name of the object.
    pub name: &'a str,
    /// Who asks.
    pub username: &'a str,
}

/// Who the fake admits every write as: labscope's ServiceAccount, the only
/// writer the tests have.
pub const LABSCOPE_USER: &str = "system:serviceaccount:labscope:labscope";

/// A refusal: the HTTP status, the `reason` and the message the API server
/// would send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// 422 unless the validation says otherwise.
    pub code: u16,
    /// `Invalid`, `Forbidden`, …
    pub reason: String,
    /// The Status message.
    pub message: String,
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn matches_rule(rule: &Value, r: &Request<'_>) -> bool {
    let has = |key: &str, want: &str| strings(&rule[key]).iter().any(|v| *v == "*" || *v == want);
    has("apiGroups", r.group)
        && has("apiVersions", r.version)
        && has("operations", r.operation)
        && has("resources", r.resource)
}

/// Every construct of a policy or binding this module does not evaluate.
fn unsupported(policy: &Value, bindings: &[&Value]) -> Vec<String> {
    let spec = &policy["spec"];
    let mut out: Vec<String> = [
        "namespaceSelector",
        "objectSelector",
        "excludeResourceRules",
    ]
    .iter()
    .filter(|k| !spec["matchConstraints"][**k].is_null())
    .map(|k| format!("matchConstraints.{k}"))
    .collect();
    if !spec["paramKind"].is_null() {
        out.push("paramKind".into());
    }
    for b in bindings {
        if !b["spec"]["matchResources"].is_null() || !b["spec"]["paramRef"].is_null() {
            out.push("binding matchResources/paramRef".into());
        }
    }
    out
}

fn to_cel(v: &Value) -> cel::Value {
    cel::to_value(v).unwrap_or(cel::Value::Null)
}

/// Evaluates `expr` with the request's variables.
fn eval(env: &Arc<Env>, expr: &str, vars: &[(&str, cel::Value)]) -> Result<cel::Value, String> {
    let program = env
        .compile(expr)
        .map_err(|e| format!("compilation failed: {e}"))?;
    let mut ctx = Context::with_env(env.clone());
    for (name, value) in vars {
        ctx.add_variable_from_value(*name, value.clone());
    }
    program
        .execute(&ctx)
        .map_err(|e| format!("expression '{expr}' resulted in error: {e}"))
}

/// Admits (`Ok`) or refuses the write of `new` (over `old`, for an update)
/// under every policy among `objects` that a `Deny` binding puts in force.
pub fn admit(
    objects: &[Value],
    r: &Request<'_>,
    old: Option<&Value>,
    new: &Value,
) -> Result<(), Denial> {
    let env = Arc::new(Env::stdlib());
    let request = json!({
        "operation": r.operation,
        "namespace": r.namespace,
        "name": r.name,
        "userInfo": {"username": r.username},
        "resource": {"group": r.group, "version": r.version, "resource": r.resource},
    });
    let what = if r.group.is_empty() {
        format!("{} \"{}\"", r.resource, r.name)
    } else {
        format!("{}.{} \"{}\"", r.resource, r.group, r.name)
    };
    for policy in objects
        .iter()
        .filter(|o| o["kind"] == "ValidatingAdmissionPolicy")
    {
        let name = policy["metadata"]["name"].as_str().unwrap_or_default();
        let bindings: Vec<&Value> = objects
            .iter()
            .filter(|o| {
                o["kind"] == "ValidatingAdmissionPolicyBinding"
                    && o["spec"]["policyName"] == name
                    && strings(&o["spec"]["validationActions"]).contains(&"Deny")
            })
            .collect();
        let spec = &policy["spec"];
        let applies = spec["matchConstraints"]["resourceRules"]
            .as_array()
            .is_some_and(|rules| rules.iter().any(|rule| matches_rule(rule, r)));
        if bindings.is_empty() || !applies {
            continue;
        }
        let unsupported = unsupported(policy, &bindings);
        assert!(
            unsupported.is_empty(),
            "the fake API server cannot evaluate {unsupported:?} of ValidatingAdmissionPolicy {name}"
        );
        let binding = bindings[0]["metadata"]["name"].as_str().unwrap_or_default();
        let fail_closed = spec["failurePolicy"] != "Ignore";
        let refuse = |reason: &str, code: u16, message: String| Denial {
            code,
            reason: reason.to_string(),
            message: format!(
                "{what} is invalid: : ValidatingAdmissionPolicy '{name}' with binding '{binding}' denied request: {message}"
            ),
        };
        let mut vars: Vec<(&str, cel::Value)> = vec![
            ("object", to_cel(new)),
            ("oldObject", old.map(to_cel).unwrap_or(cel::Value::Null)),
            ("request", to_cel(&request)),
        ];
        // An error under failurePolicy Fail refuses; under Ignore admits.
        let on_error = |e: String| -> Result<(), Denial> {
            if fail_closed {
                Err(refuse("Invalid", 422, e))
            } else {
                Ok(())
            }
        };
        let mut matched = true;
        for cond in spec["matchConditions"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let expr = cond["expression"].as_str().unwrap_or_default();
            match eval(&env, expr, &vars) {
                Ok(cel::Value::Bool(true)) => {}
                Ok(cel::Value::Bool(false)) => matched = false,
                Ok(other) => {
                    return on_error(format!("expression '{expr}' is not a bool: {other:?}"));
                }
                Err(e) => return on_error(e),
            }
        }
        if !matched {
            continue;
        }
        let mut variables = serde_json::Map::new();
        for var in spec["variables"].as_array().cloned().unwrap_or_default() {
            let expr = var["expression"].as_str().unwrap_or_default();
            let with_vars = {
                let mut v = vars.clone();
                v.push(("variables", to_cel(&Value::Object(variables.clone()))));
                v
            };
            match eval(&env, expr, &with_vars) {
                Ok(value) => {
                    let json = value
                        .json()
                        .map_err(|e| refuse("Invalid", 422, e.to_string()))?;
                    variables.insert(var["name"].as_str().unwrap_or_default().into(), json);
                }
                Err(e) => return on_error(e),
            }
        }
        vars.push(("variables", to_cel(&Value::Object(variables))));
        for v in spec["validations"].as_array().cloned().unwrap_or_default() {
            let expr = v["expression"].as_str().unwrap_or_default();
            let ok = match eval(&env, expr, &vars) {
                Ok(cel::Value::Bool(b)) => b,
                Ok(other) => {
                    return on_error(format!("expression '{expr}' is not a bool: {other:?}"));
                }
                Err(e) => return on_error(e),
            };
            if !ok {
                let message = v["message"]
                    .as_str()
                    .map(|m| m.trim().to_string())
                    .unwrap_or_else(|| format!("failed expression: {expr}"));
                let (reason, code) = match v["reason"].as_str() {
                    Some("Forbidden") => ("Forbidden", 403),
                    Some("Unauthorized") => ("Unauthorized", 401),
                    Some("RequestEntityTooLarge") => ("RequestEntityTooLarge", 413),
                    _ => ("Invalid", 422),
                };
                return Err(refuse(reason, code, message));
            }
        }
    }
    Ok(())
}

/// Every expression of the policies among `objects` that does not compile,
/// as "policy: expression: error".
pub fn compile_errors(objects: &[Value]) -> Vec<String> {
    let env = Env::stdlib();
    let mut out = Vec::new();
    for p in objects
        .iter()
        .filter(|o| o["kind"] == "ValidatingAdmissionPolicy")
    {
        let name = p["metadata"]["name"].as_str().unwrap_or_default();
        for key in ["matchConditions", "variables", "validations"] {
            for item in p["spec"][key].as_array().cloned().unwrap_or_default() {
                let expr = item["expression"].as_str().unwrap_or_default();
                if let Err(e) = env.compile(expr) {
                    out.push(format!("{name}: {expr}: {e}"));
                }
            }
        }
    }
    out
}

/// The documents of a multi-document YAML file, as JSON values.
pub fn yaml_documents(text: &str) -> anyhow::Result<Vec<Value>> {
    text.split("\n---")
        .filter(|d| {
            d.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .map(|d| Ok(serde_saphyr::from_str::<Value>(d)?))
        .collect()
}

/// labscope's own admission policy and its binding
/// (deploy/components/mutations/admission-policy.yaml), as the homelab
/// with operations installs them.
pub fn labscope_policy() -> Vec<Value> {
    yaml_documents(include_str!(
        "../../deploy/components/mutations/admission-policy.yaml"
    ))
    .expect("deploy/components/mutations/admission-policy.yaml parses")
}
