//! `labscope`: MCP server (stdio, Streamable HTTP) and CLI over the node agents.

use std::io::IsTerminal;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use labscope::agents::AgentSpec;
use labscope::cli::call::{Output, Request};
use labscope::cli::terminal::{Out, fitted, is_stdout_closed, tool_guess};
use labscope::config::{AgentOptions, api_key_from_env};
use labscope::server::http::{self, HttpOptions};
use labscope::server::mcp::McpServer;
use labscope::tools::Toolset;
use labscope::{cli, tools};
use rmcp::ServiceExt;
use tokio_util::sync::CancellationToken;

/// The static 64-bit musl builds (the amd64 and arm64 images) allocate
/// through mimalloc: musl's allocator made a big MCP answer, whose
/// `serde_json::Value` tree takes ~35 small allocations per conntrack entry,
/// cost far more CPU than glibc's (docs/benchmarks-log.md, "The shipped aggregator's
/// allocator"). glibc builds keep glibc's; 32-bit ARM keeps musl's.
#[cfg(all(target_env = "musl", target_pointer_width = "64"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc gives freed pages back to the kernel at once instead of a second
/// later (`MIMALLOC_PURGE_DELAY` or its older name `MIMALLOC_RESET_DELAY`,
/// when set, still decides): with its default a full 50k-entry conntrack
/// read left 10–30 MiB more resident for tens of seconds, for ~20 % less CPU
/// than this setting (docs/benchmarks-log.md).
#[cfg(all(target_env = "musl", target_pointer_width = "64"))]
#[allow(unsafe_code)]
fn configure_allocator() {
    // `mi_option_purge_delay` in mimalloc.h's `mi_option_e` (v2 and v3);
    // libmimalloc-sys names only some of the options.
    const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // mimalloc reads its variables case-insensitively, and has read them by
    // now: mi_option_set_default would no longer change anything.
    let set_by_env = std::env::vars_os().any(|(name, _)| {
        name.to_str().is_some_and(|n| {
            n.eq_ignore_ascii_case("MIMALLOC_PURGE_DELAY")
                || n.eq_ignore_ascii_case("MIMALLOC_RESET_DELAY")
        })
    });
    if !set_by_env {
        // SAFETY: sets one of mimalloc's options, which it reads each time it
        // considers purging; the same as MIMALLOC_PURGE_DELAY=0.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) }
    }
}

#[cfg(not(all(target_env = "musl", target_pointer_width = "64")))]
fn configure_allocator() {
    labscope_agent::memory::configure();
}

/// labscope: see into, and safely operate, a small Kubernetes cluster.
///
/// Talks to labscope-agent on every node (gRPC) and publishes the tools over
/// MCP (`serve`) and for people (`tools`, `call`). With no --agent, runs in
/// local mode: an in-process agent for this machine, named after its hostname.
#[derive(Debug, Parser)]
#[command(name = "labscope", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    agents: AgentArgs,
}

#[derive(Debug, Args)]
struct AgentArgs {
    /// An agent: NAME=URL (repeatable), e.g. pi-k3s=https://192.168.1.55:9447.
    #[arg(long = "agent", value_name = "NAME=URL", global = true)]
    agents: Vec<AgentSpec>,
    /// CA (PEM) that signed the agents' certificates (https:// agents).
    #[arg(long, global = true, value_name = "FILE")]
    agent_ca: Option<PathBuf>,
    /// Client certificate (PEM) for mTLS to the agents.
    #[arg(long, global = true, value_name = "FILE", requires = "agent_key")]
    agent_cert: Option<PathBuf>,
    /// Client key (PEM) for mTLS to the agents.
    #[arg(long, global = true, value_name = "FILE", requires = "agent_cert")]
    agent_key: Option<PathBuf>,
    /// Server name to verify on agent certificates instead of the URL host.
    #[arg(long, global = true, value_name = "NAME")]
    agent_tls_domain: Option<String>,
    /// Node name of the in-process agent in local mode (default: hostname).
    #[arg(long, global = true)]
    node_name: Option<String>,
    /// Deadline per node for agent calls, in milliseconds.
    #[arg(long, global = true, default_value_t = 3000, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    agent_deadline_ms: u64,
    /// Most agent calls in flight during a fan-out.
    #[arg(long, global = true, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=1024))]
    fanout_concurrency: u64,
    /// DNS server test_dns_query asks when none is given (e.g. the primary Pi-hole).
    #[arg(long, global = true, value_name = "IP[:PORT]")]
    dns_server: Option<String>,
    /// Kubernetes API via this kubeconfig (else KUBECONFIG, else in-cluster when in a pod).
    /// With a cluster and no --agent, agents are discovered from the DaemonSet's pods.
    #[arg(long, global = true, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// Namespace of the labscope-agent DaemonSet (discovery).
    #[arg(long, global = true, default_value = "labscope")]
    agent_namespace: String,
    /// Label selector of the agent pods (discovery).
    #[arg(
        long,
        global = true,
        default_value = "app.kubernetes.io/name=labscope-agent"
    )]
    agent_selector: String,
    /// Port of discovered agents.
    #[arg(long, global = true, default_value_t = 9447)]
    agent_port: u16,
    /// Scheme of discovered agents: https (mTLS, the deployed default) or http.
    #[arg(long, global = true, default_value = "https", value_parser = ["http", "https"])]
    agent_scheme: String,
    /// Evaluate time-based checks (expiry, overdue) at this RFC 3339 instant
    /// instead of now; for fixtures and reproducible reports.
    #[arg(long, global = true, value_name = "RFC3339", value_parser = parse_now)]
    now: Option<i64>,
    /// Time zone of the CronJob controller, for CronJobs without spec.timeZone
    /// (k3s uses the server's local zone).
    #[arg(long, global = true, value_name = "IANA ZONE", default_value = "UTC", value_parser = parse_zone)]
    cron_time_zone: String,
    /// A CronJob that get_backup_status always includes, whatever its name
    /// (repeatable). Every CronJob in a backup namespace (`[workloads]
    /// backup_namespaces` in the config: backup-jobs by default), or with "backup"
    /// in its name, or labelled app.kubernetes.io/component=backup, is included anyway.
    #[arg(long = "backup-cronjob", global = true, value_name = "NAMESPACE/NAME")]
    backup_cronjobs: Vec<String>,
    /// Deadline of each Kubernetes API request, in milliseconds; a hung API
    /// server costs a tool at most this per request.
    #[arg(long, global = true, default_value_t = 8000, value_parser = clap::value_parser!(u64).range(100..=120_000))]
    kube_timeout_ms: u64,
    /// Deadline of each cluster tool call, in milliseconds. get_cluster_health
    /// answers within it with the parts it could read and names the rest.
    #[arg(long, global = true, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(500..=300_000))]
    tool_deadline_ms: u64,
    /// Namespace of the Tailscale operator's pods (get_tailscale_status).
    #[arg(long, global = true, default_value = "tailscale")]
    tailscale_namespace: String,
    /// Toolsets to serve over MCP, comma-separated: node, cluster, flux, or
    /// all. Default: those that work with this configuration (node; with a
    /// Kubernetes API also cluster and flux). Also from $LABSCOPE_TOOLSETS.
    #[arg(
        long,
        global = true,
        env = "LABSCOPE_TOOLSETS",
        value_name = "SETS",
        value_delimiter = ',',
        value_parser = parse_toolset
    )]
    toolsets: Vec<Vec<Toolset>>,
    /// Configuration file (TOML): the homelab's services (Pi-hole, Jellyfin,
    /// Immich), DNS servers, and [mutations] — whether and where labscope may
    /// change anything, and the audit log. Secrets are named by *_env or
    /// *_file keys, never written in it. See the README's "Configuration".
    #[arg(long, global = true, env = "LABSCOPE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Serve and run no tool that changes anything, whatever the config file
    /// says (mutations are off by default anyway).
    #[arg(long, global = true)]
    read_only: bool,
}

fn parse_toolset(s: &str) -> Result<Vec<Toolset>, String> {
    if s.trim().eq_ignore_ascii_case("all") {
        return Ok(Toolset::ALL.to_vec());
    }
    Toolset::parse(s).map(|t| vec![t]).ok_or_else(|| {
        format!(
            "{s:?} is not a toolset; one of {} or all",
            Toolset::ALL
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

fn parse_zone(s: &str) -> Result<String, String> {
    labscope::cluster::cron::zone(s).map(|_| s.to_string())
}

fn parse_now(s: &str) -> Result<i64, String> {
    labscope::cluster::time::parse_rfc3339(s)
        .ok_or_else(|| format!("{s:?} is not an RFC 3339 time like 2026-08-20T06:07:00Z"))
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The configuration file: `config check` validates it (--config or
    /// LABSCOPE_CONFIG) and prints the effective configuration, secrets
    /// named by where they come from, never shown.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Serve the tools over MCP: --stdio, or Streamable HTTP at /mcp (default 127.0.0.1:8080).
    Serve {
        /// Speak MCP on stdin/stdout (logs go to stderr).
        #[arg(long, conflicts_with = "http")]
        stdio: bool,
        /// Listen for Streamable HTTP on this address. A non-loopback address
        /// needs LABSCOPE_API_KEY or LABSCOPE_API_KEY_FILE.
        #[arg(long, value_name = "ADDR")]
        http: Option<SocketAddr>,
        /// Also accept this Host header value (repeatable), e.g. behind an ingress.
        #[arg(long = "allowed-host", value_name = "HOST", value_parser = allowed_host)]
        allowed_hosts: Vec<String>,
        /// Most MCP sessions kept over HTTP; at the cap the least recently
        /// used one is closed for a new one (sessions also end after 5
        /// minutes idle, or when the client deletes them).
        #[arg(long, value_name = "N", default_value_t = labscope::server::sessions::DEFAULT_MAX_SESSIONS, value_parser = clap::value_parser!(usize))]
        max_sessions: usize,
    },
    /// List the tools by toolset, or show one tool's arguments.
    Tools {
        /// One tool: its description and arguments.
        tool: Option<String>,
        /// Print the MCP tool definitions as JSON (as tools/list sends them).
        #[arg(long, conflicts_with = "markdown")]
        json: bool,
        /// Print the tools reference as Markdown (docs/tools.md is this).
        #[arg(long, conflicts_with = "tool")]
        markdown: bool,
    },
    /// Run one tool in-process and print the result (`call TOOL --help`
    /// shows the tool's arguments).
    #[command(disable_help_flag = true)]
    Call {
        /// Tool name (see `labscope tools`).
        tool: Option<String>,
        /// Show the tool's arguments (or this help without a tool).
        #[arg(short = 'h', long)]
        help: bool,
        /// Arguments as key=value, typed by the tool's schema.
        #[arg(value_name = "KEY=VALUE")]
        args: Vec<String>,
        /// Arguments as one JSON object (merged under key=value ones).
        #[arg(long, value_name = "JSON")]
        json: Option<String>,
        /// Output format. `json`: the structured result, one object per
        /// line (for pipes and `jq`).
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
        /// With `--output json`: indented over several lines, for people.
        #[arg(long)]
        pretty: bool,
        /// Run an operation (✎) without asking. Without it, an operation
        /// asks on the terminal first; with no terminal, the config's
        /// `[mutations] confirm_fallback` decides ("allow" by default).
        #[arg(long, short = 'y')]
        yes: bool,
        /// Follow `nextCursor` to the end of a paged answer
        /// (get_conntrack_entries, get_iptables_rules, get_node_networking),
        /// printing each page as it arrives: the first page's summary, then
        /// only the items; with `--output json`, one JSON object per page,
        /// one per line. Without limit=N the tool's largest page is asked
        /// for.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigAction {
    /// Validate the file (exit 1 naming the key when it is not valid) and
    /// print the configuration in force, defaults included.
    Check,
}

fn main() -> ExitCode {
    configure_allocator();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "labscope=info,labscope_agent=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(colour_on_stderr())
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("labscope: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        // `labscope call … | head`: the reader had enough.
        Err(e) if is_stdout_closed(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("labscope: {}", causes(&e));
            ExitCode::from(2)
        }
    }
}

/// Colour in logs only for a person at a terminal, and never with
/// `NO_COLOR` set (no-color.org): files and pipes get plain text.
fn colour_on_stderr() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// An error and its causes on one line, each cause said once: a cause
/// whose text its parent already quotes (many errors print their source
/// in their own message) is not repeated.
fn causes(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Config {
        action: ConfigAction::Check,
    } = cli.command
    {
        return config_check(cli.agents.config.as_deref());
    }
    let options = agent_options(cli.agents)?;
    match cli.command {
        // Answered above, before the configuration is used.
        Command::Config { .. } => Ok(ExitCode::SUCCESS),
        Command::Tools {
            tool,
            json,
            markdown,
        } => list_tools(&options, tool, json, markdown),
        Command::Call {
            tool,
            help,
            args,
            json,
            output,
            pretty,
            yes,
            all,
        } => {
            let defs = tools::registry();
            let Some(tool) = tool else {
                use clap::CommandFactory;
                // Built first, so that the usage line says `labscope call`.
                let mut cmd = Cli::command();
                cmd.build();
                if let Some(call) = cmd.find_subcommand_mut("call") {
                    if help {
                        call.print_help()?;
                    } else {
                        eprint!("{}", call.render_help());
                    }
                }
                return Ok(if help {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(2)
                });
            };
            let Some(def) = defs.iter().find(|t| t.name == tool) else {
                eprintln!(
                    "labscope: no tool named {tool:?}{}; `labscope tools` lists them",
                    tool_guess(&tool, &defs)
                );
                return Ok(ExitCode::from(2));
            };
            if help {
                let mut stdout = Out::stdout();
                write!(stdout, "{}", fitted(cli::tool_help(def)))?;
                stdout.flush()?;
                return Ok(ExitCode::SUCCESS);
            }
            let request = Request {
                args,
                json,
                output,
                pretty,
                yes,
                all,
            };
            cli::call::run(&options, &defs, def, &request).await
        }
        Command::Serve {
            stdio,
            http,
            allowed_hosts,
            max_sessions,
        } => serve(&options, stdio, http, allowed_hosts, max_sessions).await,
    }
}

/// `labscope config check`: validates the file and prints the
/// configuration in force.
fn config_check(path: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    let Some(path) = path else {
        eprintln!("labscope: config check needs a file: --config FILE (or LABSCOPE_CONFIG)");
        return Ok(ExitCode::from(2));
    };
    Ok(match labscope::config::file::Config::load(path) {
        Ok(config) => {
            let mut stdout = Out::stdout();
            write!(stdout, "{}: valid\n{}", path.display(), config.describe())?;
            stdout.flush()?;
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("labscope: {e}");
            ExitCode::from(1)
        }
    })
}

/// The options every command shares, from the flags and the config file.
fn agent_options(a: AgentArgs) -> anyhow::Result<AgentOptions> {
    let config = match &a.config {
        Some(path) => labscope::config::file::Config::load(path)?,
        None => labscope::config::file::Config::default(),
    };
    Ok(AgentOptions {
        agents: a.agents,
        ca: a.agent_ca,
        cert: a.agent_cert,
        key: a.agent_key,
        domain: a.agent_tls_domain,
        local_name: a.node_name,
        deadline: Duration::from_millis(a.agent_deadline_ms),
        concurrency: a.fanout_concurrency as usize,
        dns_server: a.dns_server,
        kubeconfig: a.kubeconfig,
        discovery: labscope::cluster::discovery::DiscoveryOptions {
            namespace: a.agent_namespace,
            selector: a.agent_selector,
            port: a.agent_port,
            scheme: a.agent_scheme,
        },
        now: a.now,
        cron_time_zone: Some(a.cron_time_zone),
        backup_cronjobs: a.backup_cronjobs,
        kube_timeout: Some(Duration::from_millis(a.kube_timeout_ms)),
        tool_deadline: Some(Duration::from_millis(a.tool_deadline_ms)),
        tailscale_namespace: Some(a.tailscale_namespace),
        toolsets: (!a.toolsets.is_empty()).then(|| a.toolsets.into_iter().flatten().collect()),
        config: std::sync::Arc::new(config),
        read_only: a.read_only,
    })
}

/// `labscope tools [TOOL] [--json | --markdown]`.
fn list_tools(
    options: &AgentOptions,
    tool: Option<String>,
    json: bool,
    markdown: bool,
) -> anyhow::Result<ExitCode> {
    let mut stdout = Out::stdout();
    let defs = tools::registry();
    let served = options.toolsets_for(options.cluster_configured());
    if markdown {
        write!(stdout, "{}", cli::tools_markdown(&defs))?;
    } else if let Some(name) = tool {
        let Some(def) = defs.iter().find(|t| t.name == name) else {
            eprintln!(
                "labscope: no tool named {name:?}{}; `labscope tools` lists them",
                tool_guess(&name, &defs)
            );
            return Ok(ExitCode::from(2));
        };
        if json {
            writeln!(
                stdout,
                "{}",
                serde_json::to_string_pretty(&labscope::server::mcp::mcp_tool(def))?
            )?;
        } else {
            write!(stdout, "{}", fitted(cli::tool_help(def)))?;
        }
    } else if json {
        let list: Vec<_> = tools::enabled(&served)
            .iter()
            .map(labscope::server::mcp::mcp_tool)
            .collect();
        writeln!(stdout, "{}", serde_json::to_string_pretty(&list)?)?;
    } else {
        write!(stdout, "{}", fitted(cli::tools_listing(&defs, &served)))?;
    }
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `labscope serve --stdio | --http ADDR`.
async fn serve(
    options: &AgentOptions,
    stdio: bool,
    http: Option<SocketAddr>,
    allowed_hosts: Vec<String>,
    max_sessions: usize,
) -> anyhow::Result<ExitCode> {
    let ctx = options.context().await?;
    // A served in-process agent keeps its change history from the
    // start, as a node's agent does (a one-shot `call` keeps none).
    if ctx.pool.local_mode {
        for agent in ctx.pool.all() {
            tokio::spawn(async move {
                let start = labscope_proto::v1::ListChangesRequest {
                    limit: 1,
                    ..Default::default()
                };
                let _ = agent.client().list_changes(start).await;
            });
        }
    }
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    let services = ctx.services.clone();
    if stdio {
        let running = McpServer::new(ctx).serve(rmcp::transport::stdio()).await?;
        tokio::select! {
            r = running.waiting() => { r?; }
            _ = shutdown.cancelled() => {}
        }
        // Pi-hole sessions hold API seats: end them.
        services.shutdown().await;
        return Ok(ExitCode::SUCCESS);
    }
    let opts = HttpOptions {
        addr: http.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
        api_key: api_key_from_env()?,
        api_key_name: std::env::var("LABSCOPE_API_KEY_NAME")
            .ok()
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "api-key".into()),
        allowed_hosts,
        max_sessions,
    };
    http::serve(ctx, opts, shutdown).await?;
    services.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// `--allowed-host`: a host name or address as clients put it in `Host`
/// (with a port if they do), never empty — an install setting left unset
/// renders `--allowed-host=`, which would match no client.
fn allowed_host(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err(
            "empty: give the host clients reach MCP at, e.g. labscope.lab.example \
             (in the Flux install, set LABSCOPE_HOST in the settings)"
                .into(),
        );
    }
    if s.contains("://") || s.contains('/') || s.chars().any(char::is_whitespace) {
        return Err(format!(
            "{s:?} is not a host: give the name alone, e.g. labscope.lab.example (no scheme, no path)"
        ));
    }
    Ok(s.to_string())
}

async fn cancel_on_signal(token: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down");
    token.cancel();
}
