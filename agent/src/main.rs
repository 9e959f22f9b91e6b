//! `labscope-agent`: serves this node's network state and probes over gRPC.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use labscope_agent::server::{self, TlsFiles};
use labscope_agent::service::Limits;
use tracing::info;

/// labscope node agent: reads interfaces, addresses, routes, rules,
/// neighbours, iptables (nf_tables and legacy) and conntrack from the kernel,
/// runs ICMP/TCP/HTTP(S)/DNS probes, and serves all of it over gRPC
/// (service labscope.node.v1.NodeAgent, plus grpc.health.v1 and reflection).
/// Read-only: it never changes node state and never runs a shell.
#[derive(Debug, Parser)]
#[command(name = "labscope-agent", version, about, long_about = None)]
struct Args {
    /// Address to listen on: IP:PORT, [IPv6]:PORT, or an IP alone for port
    /// 9447 (so `--listen=$(HOST_IP)` works on IPv4 and IPv6 nodes alike).
    /// A non-loopback address needs TLS (--tls-cert/--tls-key/--client-ca)
    /// or --insecure-plaintext.
    #[arg(long, default_value = "0.0.0.0:9447", value_parser = listen_addr(9447))]
    listen: SocketAddr,

    /// Name this node answers as (default: the hostname).
    #[arg(long, env = "LABSCOPE_NODE_NAME")]
    node_name: Option<String>,

    /// Server certificate chain (PEM) for TLS.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// Server private key (PEM) for TLS.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// CA (PEM) that client certificates must chain to: turns TLS into mTLS.
    #[arg(long, requires = "tls_cert")]
    client_ca: Option<PathBuf>,

    /// A name the client certificate must carry (DNS or URI SAN, else CN):
    /// repeat for several. Applies with --client-ca; a certificate from the
    /// right CA with another name is refused.
    #[arg(
        long = "client-identity",
        value_name = "NAME",
        default_value = "labscope-aggregator"
    )]
    client_identities: Vec<String>,

    /// Also serve grpc.health.v1 alone, in plaintext, on this address: for
    /// the kubelet's gRPC probes, which cannot present a client
    /// certificate. It answers SERVING or not and nothing else. IP:PORT,
    /// [IPv6]:PORT, or an IP alone for port 9448.
    #[arg(long, value_name = "ADDR", value_parser = listen_addr(9448))]
    health_listen: Option<SocketAddr>,

    /// Serve plaintext gRPC on a non-loopback address (tests, trusted labs).
    #[arg(long)]
    insecure_plaintext: bool,

    /// Longest any call may take, in milliseconds (a client's shorter
    /// grpc-timeout wins).
    #[arg(long, default_value_t = 40_000, value_parser = clap::value_parser!(u64).range(1000..=600_000))]
    rpc_timeout_ms: u64,

    /// GetFirewall calls served at once (each may hold a ruleset and its answer).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=64))]
    max_firewall: u64,

    /// ListConntrack calls served at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    max_conntrack: u64,

    /// Probes (Ping, TcpConnect, HttpProbe, DnsQuery) served at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=256))]
    max_probes: u64,

    /// GetNodeInfo and GetNetworking calls served at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=256))]
    max_reads: u64,

    /// How long a call waits for room under those caps before it is refused
    /// with RESOURCE_EXHAUSTED, in milliseconds.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    queue_wait_ms: u64,

    /// Memory for the change history (ListChanges: links, addresses,
    /// routes, rules, gateway neighbours, nf_tables, conntrack pressure),
    /// in bytes; the oldest changes go first. 0 keeps no history.
    #[arg(long, default_value_t = 1024 * 1024, value_parser = clap::value_parser!(u64).range(0..=64 * 1024 * 1024))]
    history_bytes: u64,
}

fn main() -> std::process::ExitCode {
    labscope_agent::memory::configure();
    // Blocking collector threads end a second after their last job (tokio's
    // default keeps them ten): a burst's threads, stacks and all, are gone
    // soon after it.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_keep_alive(std::time::Duration::from_secs(1))
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("labscope-agent: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("labscope-agent: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}

async fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "labscope_agent=info".into()),
        )
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal, never with NO_COLOR: a
        // pod's log and a pipe get plain text.
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        )
        .init();
    let args = Args::parse();

    let tls = args.tls_cert.clone().map(|cert| TlsFiles {
        cert,
        key: args.tls_key.clone().unwrap_or_default(),
        client_ca: args.client_ca.clone(),
    });
    if tls.is_none() && !args.listen.ip().is_loopback() && !args.insecure_plaintext {
        bail!(
            "refusing to serve plaintext gRPC on non-loopback {}: give --tls-cert, --tls-key and --client-ca, \
             or --insecure-plaintext on a trusted network",
            args.listen
        );
    }
    if tls.as_ref().is_some_and(|t| t.client_ca.is_none()) {
        tracing::warn!("TLS without --client-ca: clients are not authenticated");
    }
    let node_name = match args.node_name.filter(|n| !n.trim().is_empty()) {
        Some(n) => n,
        None => nix::unistd::gethostname()
            .context("reading the hostname (give --node-name)")?
            .to_string_lossy()
            .into_owned(),
    };

    // The health listener first: whoever sees the main port open (a test, a
    // kubelet probing both) must find the health port open as well.
    let health_listener = match args.health_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the health listener {addr}"))?,
        ),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    info!(
        listen = %listener.local_addr()?,
        node = %node_name,
        tls = tls.is_some(),
        version = env!("CARGO_PKG_VERSION"),
        "labscope-agent serving"
    );
    let options = server::Options {
        node_name,
        tls,
        limits: Limits {
            firewall: args.max_firewall as usize,
            conntrack: args.max_conntrack as usize,
            probes: args.max_probes as usize,
            reads: args.max_reads as usize,
            queue_wait: Duration::from_millis(args.queue_wait_ms),
        },
        rpc_timeout: Duration::from_millis(args.rpc_timeout_ms),
        client_identities: args.client_identities,
        health_listener,
        history_bytes: args.history_bytes as usize,
    };
    server::serve_listener(listener, options, shutdown_signal()).await?;
    info!("labscope-agent stopped");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: draining"),
        _ = tokio::signal::ctrl_c() => info!("SIGINT: draining"),
    }
}

/// A clap parser for listen addresses: IP:PORT or [IPv6]:PORT as usual, or
/// an IP alone (v4 or v6, as the downward API's `status.hostIP` gives it)
/// for `default_port`.
fn listen_addr(default_port: u16) -> impl Fn(&str) -> Result<SocketAddr, String> + Clone {
    move |s: &str| {
        let s = s.trim();
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(addr);
        }
        if let Ok(ip) = s.parse::<std::net::IpAddr>() {
            return Ok(SocketAddr::new(ip, default_port));
        }
        Err(format!(
            "{s:?} is not IP:PORT, [IPv6]:PORT or an IP address (alone it means port {default_port})"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_with_and_without_port() {
        let p = listen_addr(9447);
        assert_eq!(
            p("10.0.0.5:1234").unwrap(),
            "10.0.0.5:1234".parse().unwrap()
        );
        assert_eq!(p("10.0.0.5").unwrap(), "10.0.0.5:9447".parse().unwrap());
        assert_eq!(p("fd00::5").unwrap(), "[fd00::5]:9447".parse().unwrap());
        assert_eq!(
            p("[fd00::5]:9448").unwrap(),
            "[fd00::5]:9448".parse().unwrap()
        );
        // What `$(HOST_IP):9447` used to make of an IPv6 node address.
        assert!(p("fd00::5:9447").unwrap() == "[fd00::5:9447]:9447".parse().unwrap());
        assert!(p("node-1:9447").unwrap_err().contains("not IP:PORT"));
        assert!(p("").is_err());
    }

    #[test]
    fn the_cli_parses() {
        use clap::CommandFactory;
        Args::command().debug_assert();
        let a = Args::try_parse_from([
            "labscope-agent",
            "--listen",
            "fd00::5",
            "--health-listen",
            "fd00::5",
        ])
        .unwrap();
        assert_eq!(a.listen, "[fd00::5]:9447".parse().unwrap());
        assert_eq!(a.health_listen, Some("[fd00::5]:9448".parse().unwrap()));
    }
}
