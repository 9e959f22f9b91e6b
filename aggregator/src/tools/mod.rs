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
mod gate;
pub mod health;
pub mod images;
pub mod ingress;
pub mod jellyfin_metadata;
pub mod kube;
pub mod logs;
pub mod media;
pub mod node;
pub mod ops;
pub mod pihole;
pub mod podspec;
mod schema;
pub mod secrets;
pub mod storage;
pub mod tailscale;

pub use gate::{call, change_question};
pub use schema::{ArgHelp, did_you_mean, input_schema, output_schema, parse_args};

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
    /// The source file that defines it (where its constructor was called),
    /// for the tools reference: a newcomer finds any tool from its name.
    pub source: &'static str,
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

impl std::fmt::Debug for ToolDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolDef").field("name", &self.name).finish()
    }
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
    #[track_caller]
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
    #[track_caller]
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

    #[track_caller]
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
            source: std::panic::Location::caller().file(),
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
        jellyfin_metadata::fix_tool(),
        pihole::queries_tool(),
        pihole::whitelist_tool(),
        pihole::gravity_tool(),
    ]);
    tools
}

#[cfg(test)]
mod tests;
