//! The tool registry: every tool's definition (name, schemas, annotations),
//! its argument parsing and validation, and a uniform result shape, served
//! identically over MCP and the CLI. One module per tool family.

pub mod args;
pub mod backups;
pub mod certificates;
pub mod context;
pub mod describe;
pub mod dns;
pub mod events;
pub mod flux;
pub mod health;
pub mod images;
pub mod ingress;
pub mod kube;
pub mod logs;
pub mod media;
pub mod node;
pub mod ops;
pub mod pihole;
pub mod podspec;
pub mod secrets;
pub mod storage;
pub mod tailscale;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::agents::AgentPool;

/// Settings every tool sees.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Deadline per node for agent calls.
    pub agent_deadline: Duration,
    /// Most agent calls in flight in one fan-out.
    pub fanout_concurrency: usize,
    /// DNS server `test_dns_query` asks when none is given (the primary Pi-hole).
    pub default_dns_server: Option<String>,
    /// Fixed "now" (Unix seconds) for fixtures and tests; `None` reads the clock.
    pub now: Option<i64>,
    /// Zone for CronJobs without spec.timeZone (the controller's local zone).
    pub cron_time_zone: String,
    /// CronJobs (namespace/name) that `get_backup_status` always includes.
    pub backup_cronjobs: Vec<String>,
    /// Longest a cluster tool may take; a composite tool answers with the
    /// parts it has by then and names the part that timed out.
    pub tool_deadline: Duration,
    /// Namespace of the Tailscale operator's pods.
    pub tailscale_namespace: String,
}

/// Default [`Settings::tool_deadline`].
pub const DEFAULT_TOOL_DEADLINE: Duration = Duration::from_secs(20);

impl Default for Settings {
    fn default() -> Self {
        Self {
            agent_deadline: Duration::from_secs(3),
            fanout_concurrency: 32,
            default_dns_server: None,
            now: None,
            cron_time_zone: "UTC".into(),
            backup_cronjobs: Vec::new(),
            tool_deadline: DEFAULT_TOOL_DEADLINE,
            tailscale_namespace: "tailscale".into(),
        }
    }
}

/// What a tool call can use.
#[derive(Debug, Clone)]
pub struct ToolContext {
    /// Agents by node.
    pub pool: AgentPool,
    /// The Kubernetes API, when configured.
    pub cluster: Option<crate::cluster::Cluster>,
    /// Settings.
    pub settings: Settings,
    /// Toolsets served over MCP.
    pub toolsets: std::collections::BTreeSet<Toolset>,
    /// The configuration file (services, DNS servers, `[mutations]`).
    pub config: Arc<crate::config::file::Config>,
    /// What may be changed, and the audit log of every attempt.
    pub safety: Arc<crate::safety::Safety>,
    /// Clients of the configured services (one Pi-hole session each).
    pub services: Arc<crate::services::Services>,
}

/// A successful tool result: structured content plus a compact text rendering.
#[derive(Debug, Clone)]
pub struct ToolOutput {
    /// `structuredContent`, conforming to the tool's output schema
    /// (`Null` when the call asked for text only, [`Call::text_only`], or
    /// for JSON text, [`Call::json_only`]).
    pub structured: Value,
    /// The same content already written as JSON text, when the call asked
    /// for it ([`Call::json_only`]): the CLI prints it without building the
    /// `Value` tree that MCP needs.
    pub json: Option<String>,
    /// Text rendering for clients that show text (empty when the call asked
    /// for structured content only: [`Call::structured_only`]).
    pub text: String,
    /// The `nextCursor` of a paged answer with more to come.
    pub next_cursor: Option<String>,
    /// A mutating tool found the object already as asked and changed
    /// nothing (audited as `no_change`).
    pub unchanged: bool,
}

pub use crate::codes::ErrorCode;

/// A failed tool call: what failed, why, and what to do next.
#[derive(Debug, Clone, Serialize, thiserror::Error)]
#[error("{message}")]
pub struct ToolError {
    /// Code.
    pub code: ErrorCode,
    /// What failed and why.
    pub message: String,
    /// What to do next.
    pub hint: String,
    /// The mutation rule that refused the call (code `refused`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

impl ToolError {
    /// A new error.
    pub fn new(code: ErrorCode, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            hint: hint.into(),
            rule: None,
        }
    }

    /// An invalid argument, naming it.
    pub fn invalid(arg: &str, message: impl std::fmt::Display) -> Self {
        Self::new(
            ErrorCode::InvalidArgument,
            format!("argument {arg:?}: {message}"),
            "fix the argument and call again; `labscope tools` or tools/list shows each tool's schema",
        )
    }

    /// Structured form (`{code, message, hint}`).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// Boxed future of a tool run.
pub type ToolFuture = Pin<Box<dyn Future<Output = Result<ToolOutput, ToolError>> + Send>>;

pub use crate::assess::label;

/// A tool's compact text rendering, for clients that feed only text to the
/// model: it carries every finding of the structured result.
pub trait Render {
    /// The text.
    fn text(&self) -> String;

    /// The text of a page that continues earlier ones (the CLI's `--all`):
    /// the items alone, without the summary the first page printed.
    fn continued_text(&self) -> String {
        self.text()
    }

    /// The cursor of the next page, for paged answers.
    fn next_cursor(&self) -> Option<&str> {
        None
    }

    /// For a mutating tool: it found nothing to change.
    fn changed_nothing(&self) -> bool {
        false
    }
}

pub use crate::config::Toolset;

/// MCP annotations that carry meaning for a tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hints {
    /// Never changes anything.
    pub read_only: bool,
    /// May destroy or overwrite (meaningful only when not read-only).
    pub destructive: bool,
    /// Same call, same effect.
    pub idempotent: bool,
    /// Talks to things outside the cluster's own state (probes of targets the
    /// caller names, external services).
    pub open_world: bool,
}

impl Hints {
    /// A read of cluster or node state.
    pub const READ: Hints = Hints {
        read_only: true,
        destructive: false,
        idempotent: true,
        open_world: false,
    };
    /// A probe of a target the caller names (ping, TCP, HTTP, DNS).
    pub const PROBE: Hints = Hints {
        read_only: true,
        destructive: false,
        idempotent: true,
        open_world: true,
    };
    /// A read of an outside service (Pi-hole, Jellyfin, Immich): its answers
    /// come from a system labscope does not own.
    pub const SERVICE: Hints = Hints {
        read_only: true,
        destructive: false,
        idempotent: true,
        open_world: true,
    };
    /// A change that sets state and can be repeated with the same effect (a
    /// reconcile request, suspend, resume, a refresh). Destructive in MCP's
    /// sense: it changes what is there rather than only adding to it (a
    /// suspended Kustomization stops applying; a refresh rewrites a Secret).
    pub const CHANGE: Hints = Hints {
        read_only: false,
        destructive: true,
        idempotent: true,
        open_world: false,
    };
    /// A change that replaces or disrupts something running (a restart, a
    /// forced upgrade) and does it again when repeated.
    pub const DISRUPT: Hints = Hints {
        read_only: false,
        destructive: true,
        idempotent: false,
        open_world: false,
    };
    /// A change that only adds something new each time (a Job from a
    /// CronJob): not destructive, not idempotent.
    pub const CREATE: Hints = Hints {
        read_only: false,
        destructive: false,
        idempotent: false,
        open_world: false,
    };

    /// The same, acting on an outside service (Pi-hole, Jellyfin).
    pub const fn on_a_service(self) -> Hints {
        Hints {
            open_world: true,
            ..self
        }
    }

    /// Changes something: served only with mutations on, gated, audited.
    pub fn mutates(self) -> bool {
        !self.read_only
    }
}

/// The rule of the error that stops a call until the person answers: not a
/// refusal, so no audit line is written for it.
pub const PENDING_RULE: &str = "confirmation_pending";

pub use crate::safety::audit::Confirmation;

impl From<crate::safety::Refusal> for ToolError {
    fn from(r: crate::safety::Refusal) -> Self {
        let mut e = ToolError::new(
            ErrorCode::Refused,
            format!("refused by {}: {}", r.rule, r.message),
            r.how,
        );
        e.rule = Some(r.rule);
        e
    }
}

/// The future a [`Confirmer`] answers with.
pub type ConfirmFuture<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Option<Confirmation>, ToolError>> + Send + 'a>,
>;

/// Asks a person whether an operation may go ahead: `Ok(Some(how))` for
/// yes, `Ok(None)` when nobody can be asked here (the fallback decides),
/// `Err` (code `refused`) when the person said no or gave up.
pub trait Confirmer: Send + Sync {
    /// Asks `question` (what will change, and where).
    fn confirm<'a>(&'a self, question: &'a str) -> ConfirmFuture<'a>;
}

/// The refusal when a person says no.
pub fn declined(how: &str) -> ToolError {
    ToolError {
        code: ErrorCode::Refused,
        message: format!("not confirmed: {how}; nothing was changed"),
        hint: "call again when the change is wanted".into(),
        rule: Some("confirmation".into()),
    }
}

/// What a tool call may report while it runs (MCP progress notifications
/// when the client sent a progress token; progress on stderr in the CLI),
/// and who confirms an operation.
#[derive(Clone, Default)]
pub struct Call {
    progress: Option<ProgressSink>,
    caller: Option<Arc<str>>,
    rendering: Rendering,
    confirmer: Option<Arc<dyn Confirmer>>,
}

/// Which renderings of the answer a call wants (MCP sends both; the CLI
/// prints one, and skips building the other for big pages).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Rendering {
    skip_structured: bool,
    skip_text: bool,
    continued: bool,
    json: Option<JsonForm>,
}

/// How [`Call::json_only`] writes the structured content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonForm {
    /// One line.
    Compact,
    /// Indented, for people.
    Pretty,
}

/// Receives (done, total, message).
type ProgressSink = Arc<dyn Fn(f64, Option<f64>, String) + Send + Sync>;

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("progress", &self.progress.is_some())
            .field("caller", &self.caller)
            .field("rendering", &self.rendering)
            .finish()
    }
}

impl Call {
    /// Operations ask `confirmer` before they change anything.
    pub fn confirmed_by(mut self, confirmer: Arc<dyn Confirmer>) -> Self {
        self.confirmer = Some(confirmer);
        self
    }

    /// A call that reports progress through `sink(done, total, message)`.
    pub fn with_progress(sink: impl Fn(f64, Option<f64>, String) + Send + Sync + 'static) -> Self {
        Self {
            progress: Some(Arc::new(sink)),
            ..Self::default()
        }
    }

    /// The answer's text only (`structured` is left `Null`).
    pub fn text_only(mut self) -> Self {
        self.rendering.skip_structured = true;
        self.rendering.skip_text = false;
        self.rendering.json = None;
        self
    }

    /// The answer's structured content only (`text` is left empty).
    pub fn structured_only(mut self) -> Self {
        self.rendering.skip_text = true;
        self.rendering.skip_structured = false;
        self.rendering.json = None;
        self
    }

    /// The answer's structured content only, written straight from the
    /// result as JSON text into [`ToolOutput::json`] (`structured` is left
    /// `Null`, `text` empty). The same content, keys in the result's own
    /// order.
    pub fn json_only(mut self, form: JsonForm) -> Self {
        self.rendering.skip_text = true;
        self.rendering.skip_structured = true;
        self.rendering.json = Some(form);
        self
    }

    /// A page after the first of a read that follows the cursor: its text
    /// holds the items without the first page's summary.
    pub fn continued(mut self) -> Self {
        self.rendering.continued = true;
        self
    }

    /// The same call, made by `caller` (the API key's name, "stdio",
    /// "cli"): the audit log records it.
    pub fn by(mut self, caller: impl Into<Arc<str>>) -> Self {
        self.caller = Some(caller.into());
        self
    }

    /// Who called ("unknown" when the transport did not say).
    pub fn caller(&self) -> &str {
        self.caller.as_deref().unwrap_or("unknown")
    }

    /// Reports `done` of `total` steps.
    pub fn progress(&self, done: f64, total: Option<f64>, message: impl Into<String>) {
        if let Some(p) = &self.progress {
            p(done, total, message.into());
        }
    }

    /// Awaits `fut`, reporting progress once a second while it runs:
    /// seconds elapsed of `expected` (the longest it can take), with `what`.
    pub async fn ticking<T>(
        &self,
        what: &str,
        expected: Duration,
        fut: impl Future<Output = T>,
    ) -> T {
        if self.progress.is_none() {
            return fut.await;
        }
        let total = expected.as_secs_f64().max(1.0);
        self.progress(0.0, Some(total), format!("{what}…"));
        let started = tokio::time::Instant::now();
        let mut tick =
            tokio::time::interval_at(started + Duration::from_secs(1), Duration::from_secs(1));
        tokio::pin!(fut);
        loop {
            tokio::select! {
                out = &mut fut => {
                    self.progress(total, Some(total), format!("{what}: done"));
                    return out;
                }
                _ = tick.tick() => {
                    let done = started.elapsed().as_secs_f64().min(total);
                    self.progress(done, Some(total), format!("{what}: {done:.0} s of at most {total:.0} s"));
                }
            }
        }
    }
}

/// What a tool is, apart from its argument and result types.
#[derive(Debug, Clone, Copy)]
pub struct Meta {
    /// Name (kept compatible with the predecessor).
    pub name: &'static str,
    /// Human title.
    pub title: &'static str,
    /// What the model reads to choose it: short, the arguments' meaning
    /// where the schema cannot say it.
    pub description: &'static str,
    /// Its set.
    pub toolset: Toolset,
    /// Annotations.
    pub hints: Hints,
}

type RunFn = Arc<dyn Fn(Arc<ToolContext>, Map<String, Value>, Call) -> ToolFuture + Send + Sync>;

/// One tool: its definition and how to run it.
#[derive(Clone)]
pub struct ToolDef {
    /// Name (kept compatible with the predecessor).
    pub name: &'static str,
    /// Human title.
    pub title: &'static str,
    /// One-paragraph description.
    pub description: &'static str,
    /// Its set.
    pub toolset: Toolset,
    /// Annotations.
    pub hints: Hints,
    /// Its schemas, generated on first use: a `labscope call` process
    /// needs one tool's, not the ~5 ms of CPU that generating all of them
    /// costs (a server generates them once, for its first tools/list).
    schemas: Arc<LazySchemas>,
    run: RunFn,
    /// Built with [`ToolDef::mutating`]: changes something.
    mutating: bool,
    /// Parses the arguments (and for an operation asks its allowlist)
    /// without running: an operation checks both before it asks a person
    /// anything.
    check: CheckFn,
}

/// See [`ToolDef::check_args`].
type CheckFn =
    Arc<dyn Fn(&Map<String, Value>, &crate::safety::Policy) -> Result<(), ToolError> + Send + Sync>;

/// A tool's schemas and argument help, generated once, on first use.
struct LazySchemas {
    cell: std::sync::OnceLock<Schemas>,
    make: fn() -> Schemas,
}

struct Schemas {
    input: Arc<Map<String, Value>>,
    output: Arc<Map<String, Value>>,
    arg_help: Vec<ArgHelp>,
}

fn schemas_of<A: schemars::JsonSchema + 'static, O: schemars::JsonSchema + 'static>() -> Schemas {
    let (input, arg_help) = input_schema::<A>();
    Schemas {
        input,
        output: output_schema::<O>(),
        arg_help,
    }
}

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

impl std::fmt::Debug for ToolDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolDef").field("name", &self.name).finish()
    }
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

/// An operation's allowlist: whether the change its arguments name may be
/// made, decided from the arguments alone.
pub type Allowlist<A> = fn(&crate::safety::Policy, &A) -> Result<(), crate::safety::Refusal>;

impl ToolDef {
    /// A read-only tool with typed arguments `A` and result `O`: its schemas
    /// are generated from them, its arguments parsed and validated into `A`,
    /// its result serialised and rendered from `O`.
    ///
    /// # Panics
    /// When `meta.hints` say the tool changes something: an operation is
    /// built with [`ToolDef::mutating`], which gives it its allowlist (the
    /// registry is built at start-up, and a test builds every tool).
    pub fn typed<A, O, F, Fut>(meta: Meta, run: F) -> Self
    where
        A: serde::de::DeserializeOwned + schemars::JsonSchema + Send + 'static,
        O: Serialize + schemars::JsonSchema + Render + Send + 'static,
        F: Fn(Arc<ToolContext>, A, Call) -> Fut + Send + Sync + Copy + 'static,
        Fut: Future<Output = Result<O, ToolError>> + Send + 'static,
    {
        assert!(
            !meta.hints.mutates(),
            "{}: a tool that changes something is built with ToolDef::mutating",
            meta.name
        );
        Self::build(meta, None, run)
    }

    /// An operation: a tool that changes something. Declared as such here,
    /// not inferred: the gate ([`call`]) serves it only with mutations on,
    /// asks `allowed` before anybody is asked to confirm and again right
    /// before `run`, and writes its audit line whatever happens — the tool
    /// itself cannot forget any of it. (A check that needs the object
    /// itself, such as a CronJob's opt-in label, is the tool's own, on top.)
    ///
    /// # Panics
    /// When `meta.hints` say the tool is read-only.
    pub fn mutating<A, O, F, Fut>(meta: Meta, allowed: Allowlist<A>, run: F) -> Self
    where
        A: serde::de::DeserializeOwned + schemars::JsonSchema + Send + 'static,
        O: Serialize + schemars::JsonSchema + Render + Send + 'static,
        F: Fn(Arc<ToolContext>, A, Call) -> Fut + Send + Sync + Copy + 'static,
        Fut: Future<Output = Result<O, ToolError>> + Send + 'static,
    {
        assert!(
            meta.hints.mutates(),
            "{}: ToolDef::mutating needs hints that change something (Hints::CHANGE, DISRUPT or CREATE)",
            meta.name
        );
        Self::build(meta, Some(allowed), run)
    }

    fn build<A, O, F, Fut>(meta: Meta, allowed: Option<Allowlist<A>>, run: F) -> Self
    where
        A: serde::de::DeserializeOwned + schemars::JsonSchema + Send + 'static,
        O: Serialize + schemars::JsonSchema + Render + Send + 'static,
        F: Fn(Arc<ToolContext>, A, Call) -> Fut + Send + Sync + Copy + 'static,
        Fut: Future<Output = Result<O, ToolError>> + Send + 'static,
    {
        let erased: RunFn = Arc::new(move |ctx, args, call| {
            Box::pin(async move {
                let args: A = parse_args(args)?;
                if let Some(allowed) = allowed {
                    allowed(&ctx.safety.policy, &args)?;
                }
                let rendering = call.rendering;
                let out = run(ctx, args, call).await?;
                let unserialisable = |e: serde_json::Error| {
                    ToolError::new(
                        ErrorCode::AgentError,
                        format!("the result could not be serialised: {e}"),
                        "this is a labscope bug worth reporting",
                    )
                };
                let structured = if rendering.skip_structured {
                    Value::Null
                } else {
                    serde_json::to_value(&out).map_err(unserialisable)?
                };
                let json = match rendering.json {
                    None => None,
                    Some(JsonForm::Compact) => {
                        Some(serde_json::to_string(&out).map_err(unserialisable)?)
                    }
                    Some(JsonForm::Pretty) => {
                        Some(serde_json::to_string_pretty(&out).map_err(unserialisable)?)
                    }
                };
                let text = match rendering {
                    Rendering {
                        skip_text: true, ..
                    } => String::new(),
                    Rendering {
                        continued: true, ..
                    } => out.continued_text(),
                    _ => out.text(),
                };
                Ok(ToolOutput {
                    structured,
                    json,
                    text,
                    next_cursor: out.next_cursor().map(str::to_owned),
                    unchanged: out.changed_nothing(),
                })
            })
        });
        Self {
            name: meta.name,
            title: meta.title,
            description: meta.description,
            toolset: meta.toolset,
            hints: meta.hints,
            schemas: Arc::new(LazySchemas {
                cell: std::sync::OnceLock::new(),
                make: schemas_of::<A, O>,
            }),
            run: erased,
            mutating: allowed.is_some(),
            check: Arc::new(move |args, policy| {
                let a: A = parse_args(args.clone())?;
                match allowed {
                    Some(allowed) => allowed(policy, &a).map_err(ToolError::from),
                    None => Ok(()),
                }
            }),
        }
    }

    /// Whether `args` are this tool's and, for an operation that can say so
    /// up front, whether its allowlist admits them, without running it.
    pub fn check_args(
        &self,
        args: &Map<String, Value>,
        policy: &crate::safety::Policy,
    ) -> Result<(), ToolError> {
        (self.check)(args, policy)
    }

    /// Whether this tool changes something (it was built with
    /// [`ToolDef::mutating`]): served only with mutations on, gated,
    /// allowlisted, audited.
    pub fn mutates(&self) -> bool {
        self.mutating
    }

    fn schemas(&self) -> &Schemas {
        self.schemas.cell.get_or_init(self.schemas.make)
    }

    /// JSON Schema of the arguments.
    pub fn input_schema(&self) -> &Arc<Map<String, Value>> {
        &self.schemas().input
    }

    /// JSON Schema of `structuredContent`.
    pub fn output_schema(&self) -> &Arc<Map<String, Value>> {
        &self.schemas().output
    }

    /// Each argument documented, for `labscope call TOOL --help` (the
    /// advertised input schema stays lean; the description covers what the
    /// model needs).
    pub fn arg_help(&self) -> &[ArgHelp] {
        &self.schemas().arg_help
    }

    /// Runs the tool.
    pub fn run(&self, ctx: Arc<ToolContext>, args: Map<String, Value>, call: Call) -> ToolFuture {
        (self.run)(ctx, args, call)
    }
}

/// The read-only tools of `toolsets`, in listing order (mutating tools are
/// served only when mutations are on: see [`served`]).
pub fn enabled(toolsets: &std::collections::BTreeSet<Toolset>) -> Vec<ToolDef> {
    registry()
        .into_iter()
        .filter(|t| toolsets.contains(&t.toolset) && !t.mutates())
        .collect()
}

/// The tools `ctx` serves: those of its toolsets, the mutating ones only
/// when its policy turns mutations on, and none that can only fail for want
/// of configuration (`diagnose_dns` without `[dns] servers`). A tool left
/// out for either reason still answers a call, with the error that says
/// why (refused, not_configured).
pub fn served(ctx: &ToolContext) -> Vec<ToolDef> {
    let mutations = ctx.safety.policy.mutations_on();
    registry()
        .into_iter()
        .filter(|t| ctx.toolsets.contains(&t.toolset) && (mutations || !t.mutates()))
        .filter(|t| configured(t, ctx))
        .collect()
}

/// Whether `t` has what it needs beyond its toolset.
fn configured(t: &ToolDef, ctx: &ToolContext) -> bool {
    match t.name {
        "diagnose_dns" => !ctx.config.dns_servers.is_empty(),
        _ => true,
    }
}

/// All tools, in listing order: node, cluster, flux.
pub fn registry() -> Vec<ToolDef> {
    REGISTRY.clone()
}

/// The tools, built once: generating their schemas takes a few MiB for a
/// moment, which a server must not pay again for every MCP session.
static REGISTRY: std::sync::LazyLock<Vec<ToolDef>> = std::sync::LazyLock::new(build_registry);

fn build_registry() -> Vec<ToolDef> {
    let mut tools = node::tools();
    tools.extend([
        health::tool(),
        certificates::tool(),
        secrets::tool(),
        tailscale::tool(),
        ingress::tool(),
        storage::tool(),
        describe::tool(),
        events::tool(),
        logs::pod_logs_tool(),
        logs::job_logs_tool(),
    ]);
    tools.extend([backups::backups_tool(), backups::details_tool()]);
    tools.extend([flux::tool(), images::tool()]);
    tools.extend(ops::tools());
    tools.extend([
        dns::status_tool(),
        media::status_tool(),
        media::fix_tool(),
        pihole::queries_tool(),
        pihole::whitelist_tool(),
        pihole::gravity_tool(),
    ]);
    tools
}

/// Finds and runs a tool, recording metrics.
pub async fn call(
    ctx: Arc<ToolContext>,
    tools: &[ToolDef],
    name: &str,
    args: Map<String, Value>,
    call: Call,
) -> Result<ToolOutput, ToolError> {
    let Some(tool) = tools.iter().find(|t| t.name == name) else {
        return Err(ToolError::new(
            ErrorCode::UnknownTool,
            format!("no tool named {name:?}"),
            format!(
                "available tools: {}",
                tools.iter().map(|t| t.name).collect::<Vec<_>>().join(", ")
            ),
        ));
    };
    use tracing::Instrument;
    // One `tool` span per call: the agent calls and Kubernetes requests it
    // makes are its children (a warning inside names the tool); its
    // duration and outcome are logged at debug (`RUST_LOG=labscope=debug`),
    // the latency histograms are on /metrics.
    let span = tracing::info_span!("tool", name = tool.name);
    let started = std::time::Instant::now();
    let result = run_tool(ctx, tool, args, call)
        .instrument(span.clone())
        .await;
    span.in_scope(|| match &result {
        Ok(_) => tracing::debug!(micros = started.elapsed().as_micros() as u64, "tool call"),
        Err(e) => tracing::debug!(
            micros = started.elapsed().as_micros() as u64,
            code = ?e.code,
            "tool call failed"
        ),
    });
    result
}

/// [`call`] inside its span: the gate for mutating tools, the tool deadline
/// for Kubernetes tools, the metrics.
async fn run_tool(
    ctx: Arc<ToolContext>,
    tool: &ToolDef,
    args: Map<String, Value>,
    call: Call,
) -> Result<ToolOutput, ToolError> {
    let name = tool.name;
    let started = std::time::Instant::now();
    let metrics = crate::metrics::global();
    if tool.mutates() {
        return audited(ctx, tool, args, call).await;
    }
    let result = match tool.toolset.uses_kubernetes() {
        false => tool.run(ctx, args, call).await,
        true => {
            let deadline = ctx.settings.tool_deadline;
            match tokio::time::timeout(deadline, tool.run(ctx, args, call)).await {
                Ok(r) => r,
                Err(_) => Err(ToolError::new(
                    ErrorCode::Timeout,
                    format!(
                        "{name} did not finish within {} (the tool deadline)",
                        crate::cluster::error::human_duration(deadline)
                    ),
                    "the Kubernetes API is slow or hanging; get_cluster_health answers with the parts it could read; \
                     raise --tool-deadline-ms if the API server is merely slow",
                )),
            }
        }
    };
    metrics.record_call(tool.name, result.is_ok(), started.elapsed());
    result
}

/// Runs a mutating tool through the gate, writing one audit line whatever
/// happens: refused by the global gate or by the tool's allowlist, failed,
/// or performed.
async fn audited(
    ctx: Arc<ToolContext>,
    tool: &ToolDef,
    args: Map<String, Value>,
    call: Call,
) -> Result<ToolOutput, ToolError> {
    use crate::safety::audit::{Entry, Outcome, redact_args};
    let started = std::time::Instant::now();
    let arguments = redact_args(&args);
    let caller = call.caller().to_string();
    let safety = ctx.safety.clone();
    let metrics = crate::metrics::global();
    let now = crate::cluster::time::rfc3339(crate::cluster::time::now(None));
    let mut confirmed = None;
    // Refused by the gate, or with arguments that could not run, before
    // anybody is asked anything.
    let gated = match safety.policy.gate(tool.name) {
        Err(refusal) => Err(ToolError::from(refusal)),
        Ok(()) => match tool.check_args(&args, &safety.policy) {
            Err(e) => Err(e),
            Ok(()) => confirm(&ctx, tool, &arguments, &call).await,
        },
    };
    let result = match gated {
        Err(e) => Err(e),
        Ok(how) => {
            confirmed = Some(how);
            let deadline = ctx.settings.tool_deadline;
            match tokio::time::timeout(deadline, tool.run(ctx, args, call)).await {
                Ok(r) => r,
                Err(_) => Err(ToolError::new(
                    ErrorCode::Timeout,
                    format!(
                        "{} did not finish within {} (the tool deadline); the change may or may not have been made",
                        tool.name,
                        crate::cluster::error::human_duration(deadline)
                    ),
                    "check the object's state (get_flux_status, describe_resource) before trying again",
                )),
            }
        }
    };
    let (outcome, rule, message) = match &result {
        Ok(out) => (
            if out.unchanged {
                Outcome::NoChange
            } else {
                Outcome::Performed
            },
            None,
            out.text.lines().next().unwrap_or_default().to_string(),
        ),
        Err(e) if e.code == ErrorCode::Refused => {
            (Outcome::Refused, e.rule.clone(), e.message.clone())
        }
        Err(e) => (Outcome::Failed, None, e.message.clone()),
    };
    // A call stopped to ask (MCP 2026-07-28) has done nothing yet: its
    // retry with the answer is the call the log records.
    if matches!(&result, Err(e) if e.rule.as_deref() == Some(PENDING_RULE)) {
        return result;
    }
    safety.audit.record(&Entry {
        time: now,
        tool: tool.name.to_string(),
        arguments,
        caller,
        outcome,
        rule,
        confirmed,
        message,
    });
    metrics.record_call(tool.name, result.is_ok(), started.elapsed());
    result
}

/// The question put to a person before `tool` runs: what it does, to what,
/// and whether repeating it repeats the change.
pub fn change_question(tool: &ToolDef, arguments: &Value) -> String {
    let args: Vec<String> = arguments
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect();
    let effect = if tool.hints.destructive {
        "This changes what is running"
    } else {
        "This adds to what is running"
    };
    format!(
        "labscope {} — {} ({}). {effect}{}. Go ahead?",
        tool.name,
        tool.title,
        if args.is_empty() {
            "no arguments".to_string()
        } else {
            args.join(", ")
        },
        if tool.hints.idempotent {
            ""
        } else {
            ", again each time it is confirmed"
        },
    )
}

/// Asks the call's confirmer; with nobody to ask, `[mutations]
/// confirm_fallback` decides.
async fn confirm(
    ctx: &ToolContext,
    tool: &ToolDef,
    arguments: &Value,
    call: &Call,
) -> Result<Confirmation, ToolError> {
    let asked = match &call.confirmer {
        Some(c) => c.confirm(&change_question(tool, arguments)).await?,
        None => None,
    };
    match asked {
        Some(how) => Ok(how),
        None => match ctx.safety.policy.mutations().confirm_fallback {
            crate::config::file::ConfirmFallback::Allow => Ok(Confirmation::Fallback),
            crate::config::file::ConfirmFallback::Refuse => Err(ToolError {
                code: ErrorCode::Refused,
                message: format!(
                    "{} needs a person's yes, and nobody can be asked here (an MCP client without \
                     elicitation, or a CLI without a terminal)",
                    tool.name
                ),
                hint:
                    "run it from a client that can ask its user, or the CLI on a terminal or with \
                       --yes; or set [mutations] confirm_fallback = \"allow\""
                        .into(),
                rule: Some("mutations.confirm_fallback".into()),
            }),
        },
    }
}

#[cfg(test)]
mod tests {
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
        let op =
            std::panic::catch_unwind(|| ToolDef::mutating(meta(Hints::READ), |_, _| Ok(()), noop));
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
}
