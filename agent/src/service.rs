//! The `labscope.node.v1.NodeAgent` gRPC service: validate, run the collector
//! or probe off the async threads, map typed errors onto gRPC status codes.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use labscope_proto::v1 as pb;
use labscope_proto::v1::node_agent_server::NodeAgent;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use tracing::debug;

use crate::conntrack::dump::{self as ct_dump, ListRequest};
use crate::history::History;
use crate::memory;
use crate::probe::{self, dns::DnsParams, http::HttpProbeParams, ping::PingParams};
use crate::validate::{self, InvalidArgument};
use crate::{firewall, networking, node_info};

/// Entries per streamed conntrack chunk.
const CONNTRACK_CHUNK: usize = 512;
/// How long a streamed chunk may wait for the client to take it.
const STREAM_SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Quiet time after a big answer before free memory goes back to the kernel.
const TRIM_AFTER: Duration = Duration::from_millis(500);

/// How much of each kind of work the agent takes on at once, and how long a
/// call waits for room before it is refused. On a 1 GiB Pi the agent lives
/// in a small memory limit: without caps a few parallel callers could have
/// it OOM-killed.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `GetFirewall` calls at once (each may hold a ruleset's text and answer).
    pub firewall: usize,
    /// `ListConntrack` calls at once.
    pub conntrack: usize,
    /// Probes at once (`Ping`, `TcpConnect`, `HttpProbe`, `DnsQuery`).
    pub probes: usize,
    /// `GetNodeInfo` and `GetNetworking` calls at once.
    pub reads: usize,
    /// How long a call waits for room before `RESOURCE_EXHAUSTED`.
    pub queue_wait: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            firewall: 2,
            conntrack: 4,
            probes: 16,
            reads: 16,
            queue_wait: Duration::from_secs(2),
        }
    }
}

/// The kinds of work [`Limits`] caps.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Firewall,
    Conntrack,
    Probes,
    Reads,
}

impl Kind {
    /// What a refusal names: the kind and the flag that raises its cap.
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Kind::Firewall => ("GetFirewall", "--max-firewall"),
            Kind::Conntrack => ("ListConntrack", "--max-conntrack"),
            Kind::Probes => ("probe", "--max-probes"),
            Kind::Reads => ("GetNodeInfo/GetNetworking", "--max-reads"),
        }
    }
}

#[derive(Debug)]
struct Gates {
    limits: Limits,
    firewall: Arc<Semaphore>,
    conntrack: Arc<Semaphore>,
    probes: Arc<Semaphore>,
    reads: Arc<Semaphore>,
}

impl Gates {
    fn new(limits: Limits) -> Self {
        let gate = |n: usize| Arc::new(Semaphore::new(n.max(1)));
        Self {
            firewall: gate(limits.firewall),
            conntrack: gate(limits.conntrack),
            probes: gate(limits.probes),
            reads: gate(limits.reads),
            limits,
        }
    }

    /// Room for one call of `kind`, waited for at most `queue_wait`.
    async fn admit(&self, kind: Kind) -> Result<OwnedSemaphorePermit, Status> {
        let (gate, cap) = match kind {
            Kind::Firewall => (&self.firewall, self.limits.firewall),
            Kind::Conntrack => (&self.conntrack, self.limits.conntrack),
            Kind::Probes => (&self.probes, self.limits.probes),
            Kind::Reads => (&self.reads, self.limits.reads),
        };
        match tokio::time::timeout(self.limits.queue_wait, gate.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => {
                let (what, flag) = kind.names();
                Err(Status::resource_exhausted(format!(
                    "agent busy: {} {what} call(s) already running (its cap) and none finished within {} ms; \
                     retry shortly, or raise the agent's {flag}",
                    cap.max(1),
                    self.limits.queue_wait.as_millis()
                )))
            }
        }
    }
}

/// The service; one per agent process (or per in-process agent).
#[derive(Debug, Clone)]
pub struct NodeAgentService {
    node_name: String,
    parking: Arc<ct_dump::Parking>,
    firewall: Arc<firewall::cache::Snapshots>,
    gates: Arc<Gates>,
    /// The change history: started with the service by the agent binary,
    /// at the first `ListChanges` in an in-process agent.
    history: Arc<std::sync::OnceLock<Arc<History>>>,
    history_budget: usize,
}

impl NodeAgentService {
    /// A service answering as `node_name`, with the default [`Limits`].
    pub fn new(node_name: impl Into<String>) -> Self {
        Self::with_limits(node_name, Limits::default())
    }

    /// A service answering as `node_name` within `limits`.
    pub fn with_limits(node_name: impl Into<String>, limits: Limits) -> Self {
        Self {
            node_name: node_name.into(),
            parking: Arc::default(),
            firewall: Arc::default(),
            gates: Arc::new(Gates::new(limits)),
            history: Arc::default(),
            history_budget: crate::history::DEFAULT_BUDGET,
        }
    }

    /// Starts the change history now, within `budget` bytes (0: none is
    /// kept, and `ListChanges` says so).
    pub fn with_history(mut self, budget: usize) -> Self {
        self.history_budget = budget;
        if budget > 0 {
            let _ = self.history.set(History::start(budget));
        }
        self
    }
}

impl From<InvalidArgument> for Status {
    /// INVALID_ARGUMENT with the field named twice: in the message for
    /// people (`invalid route_table: …`) and as a BadRequest field violation
    /// (google.rpc error details) for programs, which need not parse text.
    fn from(e: InvalidArgument) -> Self {
        use tonic_types::{ErrorDetails, StatusExt};
        Status::with_error_details(
            tonic::Code::InvalidArgument,
            e.to_string(),
            ErrorDetails::with_bad_request_violation(e.field, e.message),
        )
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(format!("collector task failed: {e}")))
}

fn firewall_status(e: firewall::Error) -> Status {
    use firewall::Error as E;
    if e.is_permission_denied() {
        return Status::permission_denied(e.to_string());
    }
    match e {
        E::NoSuchChain { .. } => Status::not_found(e.to_string()),
        E::Nft(firewall::nft::Error::Unstable(_))
        | E::Legacy(firewall::legacy::Error::Unstable(_)) => Status::unavailable(e.to_string()),
        E::Decoder { .. } => Status::internal(e.to_string()),
        _ => Status::unavailable(e.to_string()),
    }
}

fn conntrack_status(e: ct_dump::Error) -> Status {
    if e.is_permission_denied() {
        return Status::permission_denied(format!("{e}: reading conntrack needs CAP_NET_ADMIN"));
    }
    let ct_dump::Error::Netlink(inner) = &e;
    match inner {
        crate::netlink::Error::Kernel(io)
            if matches!(io.raw_os_error(), Some(2) | Some(95) | Some(93)) =>
        {
            Status::failed_precondition(format!(
                "{e}: conntrack is not available (is nf_conntrack loaded?)"
            ))
        }
        _ => Status::unavailable(e.to_string()),
    }
}

fn log_done(rpc: &str, started: Instant) {
    debug!(
        rpc,
        micros = started.elapsed().as_micros() as u64,
        "request served"
    );
}

type ChunkStream = Pin<Box<dyn Stream<Item = Result<pb::ConntrackChunk, Status>> + Send>>;

#[tonic::async_trait]
impl NodeAgent for NodeAgentService {
    async fn get_node_info(
        &self,
        _req: Request<pb::GetNodeInfoRequest>,
    ) -> Result<Response<pb::NodeInfo>, Status> {
        let started = Instant::now();
        // The permit goes with the work: a cancelled call does not stop a
        // blocking collector, and the cap must count it until it ends.
        let permit = self.gates.admit(Kind::Reads).await?;
        let name = self.node_name.clone();
        let info = blocking(move || {
            let _permit = permit;
            node_info::collect(&name)
        })
        .await?;
        log_done("GetNodeInfo", started);
        Ok(Response::new(info))
    }

    async fn get_networking(
        &self,
        req: Request<pb::GetNetworkingRequest>,
    ) -> Result<Response<pb::Networking>, Status> {
        let started = Instant::now();
        let permit = self.gates.admit(Kind::Reads).await?;
        let req = req.into_inner();
        let tables = validate::route_table(&req.route_table)?;
        let mut sections = Vec::new();
        for s in &req.sections {
            match pb::NetworkingSection::try_from(*s) {
                Ok(pb::NetworkingSection::Unspecified) | Err(_) => {
                    return Err(InvalidArgument {
                        field: "sections",
                        message: format!(
                            "{s} is not links, addresses, routes, rules or neighbours"
                        ),
                    }
                    .into());
                }
                Ok(section) => sections.push(section),
            }
        }
        let answer = blocking(move || {
            let _permit = permit;
            networking::collect(&sections, tables)
        })
        .await?;
        // Every requested section failing is a failure, not an empty answer.
        if !answer.errors.is_empty()
            && answer.links.is_empty()
            && answer.addresses.is_empty()
            && answer.routes.is_empty()
            && answer.rules.is_empty()
            && answer.neighbours.is_empty()
        {
            let all: Vec<&str> = answer.errors.iter().map(|e| e.message.as_str()).collect();
            let text = all.join("; ");
            return Err(if text.contains("CAP_NET_ADMIN") {
                Status::permission_denied(text)
            } else {
                Status::unavailable(text)
            });
        }
        log_done("GetNetworking", started);
        Ok(Response::new(answer))
    }

    async fn get_firewall(
        &self,
        req: Request<pb::GetFirewallRequest>,
    ) -> Result<Response<pb::Firewall>, Status> {
        let started = Instant::now();
        let permit = self.gates.admit(Kind::Firewall).await?;
        let req = req.into_inner();
        let table = validate::firewall_table(&req.table)?.to_string();
        let chain = validate::chain(&req.chain)?.to_string();
        let wanted = validate::snapshot(&req.snapshot)?;
        let page = firewall::Page {
            offset: req.offset as usize,
            limit: match req.limit {
                0 => usize::MAX,
                n => n as usize,
            },
        };
        let ipv6 = req.ipv6;
        let cache = self.firewall.clone();
        let fw = blocking(move || {
            let _permit = permit;
            // A whole table is built beside the read, when this call makes it.
            let whole = chain.is_empty() && page == firewall::Page::ALL;
            let served = cache.get(ipv6, wanted, whole.then_some(table.as_str()))?;
            let snap = served.snapshot.clone();
            let replaced = served.replaced;
            let mut fw =
                firewall::build_answer(ipv6, &table, &chain, &snap.texts, page, served.built)?;
            fw.snapshot = format!("{:x}", snap.id);
            fw.snapshot_age_ms = snap.read_at.elapsed().as_millis() as u64;
            fw.snapshot_replaced = replaced;
            fw.change_signal = snap.signal.describe();
            Ok(fw)
        })
        .await?
        .map_err(firewall_status)?;
        // The read is let go once nobody pages through it, and the memory of
        // the ruleset's text goes back to the kernel after the burst.
        let cache = self.firewall.clone();
        tokio::spawn(async move {
            tokio::time::sleep(firewall::cache::Snapshots::TTL).await;
            if cache.expire() > 0 {
                memory::give_back_soon(Duration::ZERO);
            }
        });
        memory::give_back_soon(TRIM_AFTER);
        log_done("GetFirewall", started);
        Ok(Response::new(fw))
    }

    async fn get_nft_ruleset(
        &self,
        req: Request<pb::GetNftRulesetRequest>,
    ) -> Result<Response<pb::NftRuleset>, Status> {
        let started = Instant::now();
        let permit = self.gates.admit(Kind::Firewall).await?;
        let req = req.into_inner();
        let family = validate::nft_family(&req.family)?;
        let table = validate::nft_table(&req.table)?.to_string();
        let (offset, limit) = (
            req.offset as usize,
            match req.limit {
                0 => usize::MAX,
                n => n as usize,
            },
        );
        let wanted = (req.generation != 0).then_some(req.generation);
        let answer = blocking(move || {
            let _permit = permit;
            let rs = firewall::nft::Ruleset::read(firewall::nft::Scope {
                family,
                table: (!table.is_empty()).then_some(table.as_str()),
                sets: true,
                elements: true,
            })?;
            Ok(firewall::nft::listing::answer(&rs, offset, limit, wanted))
        })
        .await?
        .map_err(|e: firewall::nft::Error| firewall_status(firewall::Error::Nft(e)))?;
        memory::give_back_soon(TRIM_AFTER);
        log_done("GetNftRuleset", started);
        Ok(Response::new(answer))
    }

    type ListConntrackStream = ChunkStream;

    async fn list_conntrack(
        &self,
        req: Request<pb::ListConntrackRequest>,
    ) -> Result<Response<Self::ListConntrackStream>, Status> {
        let req = req.into_inner();
        let (filter, limit, page) = validate::conntrack(&req)?;
        let list = ListRequest {
            filter,
            limit,
            page,
            chunk: CONNTRACK_CHUNK,
            stop_at_limit: req.stop_at_limit,
        };
        // Bounded: the dump waits for the client instead of buffering the table.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<pb::ConntrackChunk, Status>>(4);
        // The permit lives as long as the dump, which outlives this call.
        let permit = self.gates.admit(Kind::Conntrack).await?;
        let parking = self.parking.clone();
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let started = Instant::now();
            // A client that stops reading must not hold the dump (and its
            // permit) forever: each chunk gets STREAM_SEND_TIMEOUT.
            let send = |chunk: Result<pb::ConntrackChunk, Status>| {
                runtime
                    .block_on(tokio::time::timeout(STREAM_SEND_TIMEOUT, tx.send(chunk)))
                    .is_ok_and(|sent| sent.is_ok())
            };
            let sent = ct_dump::list(&list, &parking, |entries| {
                send(Ok(pb::ConntrackChunk {
                    entries,
                    summary: None,
                }))
            });
            let last = match sent {
                Ok(summary) => Ok(pb::ConntrackChunk {
                    entries: Vec::new(),
                    summary: Some(summary),
                }),
                Err(e) => Err(conntrack_status(e)),
            };
            send(last);
            log_done("ListConntrack", started);
            memory::give_back_soon(TRIM_AFTER);
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn ping(
        &self,
        req: Request<pb::PingRequest>,
    ) -> Result<Response<pb::PingResult>, Status> {
        let started = Instant::now();
        let permit = self.gates.admit(Kind::Probes).await?;
        let req = req.into_inner();
        let target = validate::host("target", &req.target)?;
        let params = PingParams {
            count: validate::count("count", req.count, 3, 20)?,
            timeout: validate::millis("timeout_ms", req.timeout_ms, 1000, 10_000)?,
            interval: validate::millis("interval_ms", req.interval_ms, 200, 5_000)?,
        };
        validate::ping_budget(params.count, params.interval, params.timeout)?;
        let (ips, _) = probe::resolve(&target, params.timeout)
            .await
            .map_err(|e| Status::not_found(e.to_string()))?;
        let ip = ips[0];
        let mut result = blocking(move || {
            let _permit = permit;
            probe::ping::ping_blocking(ip, params)
        })
        .await?
        .map_err(|e| match e {
            probe::ping::Error::NoPrivilege => Status::permission_denied(e.to_string()),
            probe::ping::Error::Socket(_) => Status::unavailable(e.to_string()),
        })?;
        result.target = target;
        result.resolved = ips.into_iter().map(crate::names::ip).collect();
        log_done("Ping", started);
        Ok(Response::new(result))
    }

    async fn tcp_connect(
        &self,
        req: Request<pb::TcpConnectRequest>,
    ) -> Result<Response<pb::TcpConnectResult>, Status> {
        let started = Instant::now();
        let _permit = self.gates.admit(Kind::Probes).await?;
        let req = req.into_inner();
        let target = validate::host("target", &req.target)?;
        let port = validate::port("port", req.port)?;
        let timeout = validate::millis("timeout_ms", req.timeout_ms, 3000, 30_000)?;
        let result = probe::tcp::connect(&target, port, timeout).await;
        log_done("TcpConnect", started);
        Ok(Response::new(result))
    }

    async fn http_probe(
        &self,
        req: Request<pb::HttpProbeRequest>,
    ) -> Result<Response<pb::HttpProbeResult>, Status> {
        let started = Instant::now();
        let _permit = self.gates.admit(Kind::Probes).await?;
        let req = req.into_inner();
        let uri = validate::url(&req.url)?;
        let default_port = uri
            .port_u16()
            .unwrap_or(if uri.scheme_str() == Some("https") {
                443
            } else {
                80
            });
        if req.ca_pem.len() > 64 * 1024 {
            return Err(InvalidArgument {
                field: "ca_pem",
                message: "larger than 64 KiB".into(),
            }
            .into());
        }
        let params = HttpProbeParams {
            method: validate::method(&req.method)?,
            timeout: validate::millis("timeout_ms", req.timeout_ms, 10_000, 30_000)?,
            insecure: req.insecure_skip_verify,
            ca_pem: req.ca_pem,
            connect_to: validate::connect_to(&req.connect_to, default_port)?,
            uri,
        };
        let result = probe::http::probe(params).await;
        log_done("HttpProbe", started);
        Ok(Response::new(result))
    }

    async fn explain_route(
        &self,
        req: Request<pb::ExplainRouteRequest>,
    ) -> Result<Response<pb::RouteExplanation>, Status> {
        let started = Instant::now();
        let permit = self.gates.admit(Kind::Reads).await?;
        let req = req.into_inner();
        let query =
            validate::route_query(&req.destination, &req.source, req.mark, &req.iif, req.tos)?;
        let answer = blocking(move || {
            let _permit = permit;
            networking::explain::explain(&query)
        })
        .await?
        .map_err(|e| match e {
            networking::Error::NoSuchLink { .. } => {
                Status::invalid_argument(format!("invalid iif: {e}"))
            }
            networking::Error::Netlink(n) if n.is_permission_denied() => {
                Status::permission_denied(format!("{n} (the agent lacks CAP_NET_ADMIN)"))
            }
            other => Status::unavailable(other.to_string()),
        })?;
        log_done("ExplainRoute", started);
        Ok(Response::new(answer))
    }

    async fn list_changes(
        &self,
        req: Request<pb::ListChangesRequest>,
    ) -> Result<Response<pb::ChangeHistory>, Status> {
        let req = req.into_inner();
        for k in &req.kinds {
            if !crate::history::KINDS.contains(&k.as_str()) {
                return Err(InvalidArgument {
                    field: "kinds",
                    message: format!("{k:?} is not one of {}", crate::history::KINDS.join(", ")),
                }
                .into());
            }
        }
        if self.history_budget == 0 {
            return Ok(Response::new(pb::ChangeHistory {
                notes: vec!["this agent keeps no history (--history-bytes 0)".into()],
                ..Default::default()
            }));
        }
        let mut fresh = false;
        let history = self.history.get_or_init(|| {
            fresh = true;
            History::start(self.history_budget)
        });
        let mut answer = history.list(&req);
        if fresh {
            answer.notes.push(
                "this in-process agent began watching at this call: changes show from now on, in this process"
                    .into(),
            );
        }
        Ok(Response::new(answer))
    }

    async fn dns_query(
        &self,
        req: Request<pb::DnsQueryRequest>,
    ) -> Result<Response<pb::DnsQueryResult>, Status> {
        let started = Instant::now();
        let _permit = self.gates.admit(Kind::Probes).await?;
        let req = req.into_inner();
        let params = DnsParams {
            name: validate::dns_name(&req.name)?,
            record_type: validate::record_type(&req.record_type)?,
            server: validate::dns_server(&req.server)?,
            checking_disabled: req.checking_disabled,
            timeout: validate::millis("timeout_ms", req.timeout_ms, 2000, 10_000)?,
            tcp: req.tcp,
        };
        let result = probe::dns::query(params).await;
        log_done("DnsQuery", started);
        Ok(Response::new(result))
    }
}
