//! MCP prompts: the three common workflows (a DNS problem, a stuck Flux
//! release, a node's networking) as step-by-step plans that chain the right
//! tools with the user's values filled in. A prompt is listed only when the
//! toolset it needs is enabled, and a plan names only tools this server
//! serves (the cluster steps of the DNS and node plans appear with a cluster).

use std::collections::{BTreeMap, BTreeSet};

use crate::tools::Toolset;
use crate::tools::args::name_problem;

/// One argument of a prompt.
pub struct PromptArg {
    /// Its name.
    pub name: &'static str,
    /// What it is, shown by clients that fill prompts in.
    pub description: &'static str,
    /// Whether the prompt needs it.
    pub required: bool,
    /// The reason a value is refused, or `None` when it is fine.
    check: fn(&str) -> Option<String>,
}

/// One prompt: what it is for, its arguments and the plan it renders.
pub struct PromptDef {
    /// Its name in prompts/get.
    pub name: &'static str,
    /// A short human title.
    pub title: &'static str,
    /// What it is for.
    pub description: &'static str,
    /// Its arguments.
    pub args: &'static [PromptArg],
    /// The toolset its plan cannot do without.
    pub needs: Toolset,
    render: fn(&Values, &Served) -> String,
}

/// Checked argument values by name (only those given).
pub type Values = BTreeMap<String, String>;

/// Why prompts/get was refused.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    /// No prompt has that name.
    #[error("unknown prompt {0:?}; prompts/list shows the available ones")]
    Unknown(String),
    /// The prompt's toolset is not served here.
    #[error("prompt {name:?} needs the {toolset} toolset, which this server does not serve")]
    NotEnabled {
        /// The prompt.
        name: String,
        /// The toolset it needs.
        toolset: &'static str,
    },
    /// An argument is missing, unknown or refused.
    #[error("prompt {prompt:?}, argument {arg:?}: {problem}")]
    Argument {
        /// The prompt.
        prompt: &'static str,
        /// The argument.
        arg: String,
        /// What is wrong.
        problem: String,
    },
}

/// Every prompt, in listing order.
pub fn registry() -> &'static [PromptDef] {
    &PROMPTS
}

/// The prompts whose toolset is enabled.
pub fn enabled(toolsets: &BTreeSet<Toolset>) -> Vec<&'static PromptDef> {
    PROMPTS
        .iter()
        .filter(|p| toolsets.contains(&p.needs))
        .collect()
}

/// What the server serves, which a plan may name: its toolsets, and whether
/// operations are on (a plan then names the operation that fixes what it
/// finds, instead of a command for people).
#[derive(Debug, Clone, Default)]
pub struct Served {
    /// The toolsets served.
    pub toolsets: BTreeSet<Toolset>,
    /// `recover_helmrelease` is served.
    pub recover_helmrelease: bool,
}

/// The plan of prompt `name` for `given` arguments, checked.
pub fn render(
    name: &str,
    given: &serde_json::Map<String, serde_json::Value>,
    toolsets: &BTreeSet<Toolset>,
) -> Result<(&'static PromptDef, String), PromptError> {
    render_for(
        name,
        given,
        &Served {
            toolsets: toolsets.clone(),
            recover_helmrelease: false,
        },
    )
}

/// [`render`] for a server that may serve operations.
pub fn render_for(
    name: &str,
    given: &serde_json::Map<String, serde_json::Value>,
    served: &Served,
) -> Result<(&'static PromptDef, String), PromptError> {
    let toolsets = &served.toolsets;
    let def = PROMPTS
        .iter()
        .find(|p| p.name == name)
        .ok_or_else(|| PromptError::Unknown(name.to_string()))?;
    if !toolsets.contains(&def.needs) {
        return Err(PromptError::NotEnabled {
            name: name.to_string(),
            toolset: def.needs.as_str(),
        });
    }
    let problem = |arg: &str, problem: String| PromptError::Argument {
        prompt: def.name,
        arg: arg.to_string(),
        problem,
    };
    let mut values = Values::new();
    for (key, value) in given {
        let Some(arg) = def.args.iter().find(|a| a.name == key) else {
            let known: Vec<&str> = def.args.iter().map(|a| a.name).collect();
            return Err(problem(
                key,
                format!("unknown argument (known: {})", known.join(", ")),
            ));
        };
        // Prompt arguments are strings on the wire; a number or a boolean
        // from a lenient client is taken as its text.
        let text = match value {
            serde_json::Value::String(s) => s.trim().to_string(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            serde_json::Value::Null => continue,
            other => return Err(problem(key, format!("expected a string, got {other}"))),
        };
        if text.is_empty() {
            continue;
        }
        if let Some(p) = (arg.check)(&text) {
            return Err(problem(key, p));
        }
        values.insert(key.clone(), text);
    }
    if let Some(missing) = def
        .args
        .iter()
        .find(|a| a.required && !values.contains_key(a.name))
    {
        return Err(problem(missing.name, "required".to_string()));
    }
    Ok((def, (def.render)(&values, served)))
}

static PROMPTS: [PromptDef; 3] = [
    PromptDef {
        name: "dns_problem",
        title: "Diagnose a DNS problem",
        description: "A name does not resolve (or resolves wrong): ask every path explicitly, tell DNSSEC \
                      breakage from a server that is down, and say which path fails.",
        args: &[
            PromptArg {
                name: "domain",
                description: "The name that fails, e.g. github.com.",
                required: true,
                check: domain_problem,
            },
            PromptArg {
                name: "type",
                description: "Record type (A by default): A, AAAA, MX, TXT, CNAME, NS, SOA, PTR, SRV.",
                required: false,
                check: record_type_problem,
            },
            PromptArg {
                name: "server",
                description: "The DNS server clients use (IP or IP:port); default: the configured one.",
                required: false,
                check: server_problem,
            },
        ],
        needs: Toolset::Node,
        render: dns_plan,
    },
    PromptDef {
        name: "stuck_flux_release",
        title: "Unstick a Flux release",
        description: "A HelmRelease or Kustomization is not ready or has not moved: find the root cause (a \
                      source, a dependency, a failed upgrade, a crashing pod) and the command that fixes it.",
        args: &[
            PromptArg {
                name: "name",
                description: "The HelmRelease or Kustomization (default: every failing one).",
                required: false,
                check: name_problem,
            },
            PromptArg {
                name: "namespace",
                description: "Its namespace (default: all).",
                required: false,
                check: name_problem,
            },
        ],
        needs: Toolset::Flux,
        render: flux_plan,
    },
    PromptDef {
        name: "node_networking",
        title: "Check a node's networking",
        description: "A node cannot reach something (or is not reached): links, addresses, routes and \
                      policy rules, firewall, conntrack, and probes from the node itself.",
        args: &[
            PromptArg {
                name: "node",
                description: "The node (list_nodes shows them).",
                required: true,
                check: name_problem,
            },
            PromptArg {
                name: "target",
                description: "What it cannot reach: an IP or hostname (optional).",
                required: false,
                check: host_problem,
            },
            PromptArg {
                name: "port",
                description: "The TCP port on the target (optional).",
                required: false,
                check: port_problem,
            },
        ],
        needs: Toolset::Node,
        render: node_plan,
    },
];

/// Numbered steps, and the closing instruction.
struct Plan {
    text: String,
    step: usize,
}

impl Plan {
    fn new(goal: String) -> Self {
        Self {
            text: format!(
                "{goal}\n\nUse the labscope tools in this order; run each call, read its findings, and skip \
                 steps that the earlier answers make pointless.\n"
            ),
            step: 0,
        }
    }

    fn step(&mut self, text: impl AsRef<str>) {
        self.step += 1;
        self.text
            .push_str(&format!("\n{}. {}", self.step, text.as_ref()));
    }

    fn end(mut self, report: &str) -> String {
        self.text.push_str("\n\n");
        self.text.push_str(report);
        self.text
    }
}

fn dns_plan(v: &Values, served: &Served) -> String {
    let toolsets = &served.toolsets;
    let domain = &v["domain"];
    let rtype = v.get("type").map(String::as_str).unwrap_or("A");
    let server = v
        .get("server")
        .map(|s| format!(" server={s}"))
        .unwrap_or_default();
    let query = format!("test_dns_query domain={domain} type={rtype}{server}");
    let mut plan = Plan::new(format!(
        "Diagnose why {domain} ({rtype}) does not resolve as expected{}.",
        v.get("server")
            .map(|s| format!(" through DNS server {s}"))
            .unwrap_or_default()
    ));
    plan.step(
        "list_nodes — which nodes have an answering agent (the queries below run from them).",
    );
    plan.step(format!(
        "{query} fromNode=<each node> — the rcode, answers, flags (AD/RA) and latency from every node. \
         One node failing alone points at that node's path to the server; all failing points at the server \
         or what is behind it."
    ));
    plan.step(format!(
        "If the rcode is SERVFAIL: {query} checkingDisabled=true. An answer with CD set means DNSSEC \
         validation fails upstream (a broken chain or a clock that is wrong), not that the server is down."
    ));
    plan.step(
        "Ask the recursive resolver behind the server directly (e.g. Unbound on port 5335: \
         server=<its IP>:5335), and a public resolver (server=1.1.1.1) for comparison: a stale cache in front \
         can hide an upstream that fails.",
    );
    plan.step(format!(
        "If a query times out: test_pod_connectivity sourceNode=<a failing node> target=<the server's IP> \
         port=53 — ping and TCP show whether the server is reachable at all; then get_iptables_rules \
         node=<that node> table=nat and get_conntrack_entries node=<that node> port=53 state=UNREPLIED for \
         traffic that leaves and gets no answer.{}",
        if v.contains_key("server") {
            ""
        } else {
            " (The server asked is in each answer's `server`.)"
        }
    ));
    if toolsets.contains(&Toolset::Cluster) {
        plan.step(
            "For the DNS servers in the cluster (Pi-hole and Unbound in namespace pihole): describe_resource \
             kind=deployment name=<pihole|unbound> namespace=pihole for ready pods and restarts, get_events \
             namespace=pihole for probe failures and OOM kills, and get_pod_logs namespace=pihole pod=unbound \
             grep=<the domain> for the resolver's own words (DNSSEC 'validation failure', timeouts).",
        );
    }
    plan.end(
        "Report: which path fails (node → server → resolver → upstream), the evidence from each call (rcodes, \
         flags, latencies, log lines), the diagnosis (one server down, DNSSEC breakage, stale cache masking an \
         upstream failure, blocked by the firewall) and the fix.",
    )
}

fn flux_plan(v: &Values, served: &Served) -> String {
    let toolsets = &served.toolsets;
    let ns = v.get("namespace");
    let ns_arg = ns.map(|n| format!(" namespace={n}")).unwrap_or_default();
    let what = match (v.get("name"), ns) {
        (Some(name), Some(ns)) => format!("the Flux release {ns}/{name}"),
        (Some(name), None) => format!("the Flux release {name}"),
        (None, Some(ns)) => format!("the failing Flux releases in namespace {ns}"),
        (None, None) => "the failing Flux releases".to_string(),
    };
    let object = v.get("name").map(String::as_str).unwrap_or("<object>");
    let mut plan = Plan::new(format!(
        "Find out why {what} is stuck, and how to unstick it."
    ));
    plan.step(format!(
        "get_flux_status onlyFailing=true{ns_arg} — every failing Flux object, with STUCK detection and root \
         causes apart from consequences. Work on the root causes first: a release that waits on a dependency \
         or a source heals when that one does."
    ));
    plan.step(
        "If the root cause is a source (GitRepository, OCIRepository, HelmRepository, HelmChart): \
         get_flux_status kind=<that kind> for its fetch error (authentication, a chart version that does not \
         exist, a host that does not resolve).",
    );
    if toolsets.contains(&Toolset::Cluster) {
        plan.step(format!(
            "get_events object=HelmRelease/{object}{ns_arg} type=all — the controller's own account of the \
             last attempts (install/upgrade failures, timeouts, 'another operation is in progress')."
        ));
        plan.step(format!(
            "If an upgrade timed out waiting for pods: get_cluster_health, then describe_resource \
             kind=deployment name=<its workload>{ns_arg} and get_pod_logs{ns_arg} pod=<that pod> previous=true \
             for the pod that never became ready (image pull, crash loop, probe, missing Secret — \
             get_secrets_status when it reads an ExternalSecret)."
        ));
        plan.step(format!(
            "get_pod_logs namespace=flux-system pod=helm-controller grep={object} (or \
             pod=kustomize-controller for a Kustomization) for what the controller said."
        ));
    }
    // A release that exhausted its retries or stalled does not move on a
    // plain reconcile request: name what does.
    let recover = if served.recover_helmrelease {
        format!(
            "the operation recover_helmrelease{ns_arg} name={object}, which applies Flux's recovery from here"
        )
    } else {
        "`flux reconcile helmrelease <name> -n <ns> --reset` (or `flux suspend` then `flux resume`)"
            .to_string()
    };
    plan.end(&format!(
        "Report: the root cause with its evidence, what is only a consequence of it, and the fix — the change \
         to make in Git first. For a release that exhausted its retries or is Stalled, a plain reconcile \
         changes nothing: use {recover}; for one merely waiting on its source, `flux reconcile helmrelease \
         <name> -n <ns> --with-source`; for one stuck in a pending Helm operation, a Helm rollback. Say \
         which of these change the cluster before suggesting them."
    ))
}

fn node_plan(v: &Values, served: &Served) -> String {
    let toolsets = &served.toolsets;
    let node = &v["node"];
    let target = v.get("target");
    let mut plan = Plan::new(match target {
        Some(t) => format!("Find out why node {node} cannot reach {t}."),
        None => format!("Check the networking of node {node}."),
    });
    plan.step(format!(
        "list_nodes — is {node}'s agent answering, and is the node Ready? An agent that does not answer is \
         the first finding."
    ));
    plan.step(format!(
        "get_node_networking node={node} — links (down, no carrier, MTU), addresses, the main routing table \
         (a default route?), policy rules and neighbours (FAILED entries). If rules send traffic to another \
         table (Tailscale uses 52): get_node_networking node={node} sections=routes table=all."
    ));
    plan.step(format!(
        "get_iptables_rules node={node} table=filter, then table=nat — DROP/REJECT rules with counters that \
         rise, and the warning when both iptables backends hold rules."
    ));
    let filter = target
        .filter(|t| t.parse::<std::net::IpAddr>().is_ok())
        .map(|t| format!(" filter={t}"))
        .unwrap_or_default();
    plan.step(format!(
        "get_conntrack_entries node={node}{filter} state=UNREPLIED — flows that leave and get no answer."
    ));
    if let Some(t) = target {
        let port = v.get("port").map(String::as_str).unwrap_or("<port>");
        plan.step(format!(
            "test_pod_connectivity sourceNode={node} target={t} port={port} — ping and TCP from the node \
             itself; then from another node, to tell a problem of {node} from a problem of {t}."
        ));
    }
    plan.step(format!(
        "check_network_mesh — whether {node} reaches the other nodes and they reach it (broken pairs)."
    ));
    if toolsets.contains(&Toolset::Cluster) {
        plan.step(format!(
            "describe_resource kind=node name={node} (conditions, pressure, addresses) and get_events \
             object=Node/{node} type=all; get_tailscale_status when the path goes through Tailscale."
        ));
    }
    plan.end(
        "Report: where the path breaks (link, address, route or rule, firewall, the far end), the evidence from \
         each call, and the fix.",
    )
}

fn domain_problem(v: &str) -> Option<String> {
    let ok = v.len() <= 253
        && v.trim_end_matches('.').split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    (!ok).then(|| format!("{v:?} is not a domain name"))
}

fn record_type_problem(v: &str) -> Option<String> {
    const TYPES: [&str; 9] = ["A", "AAAA", "MX", "TXT", "CNAME", "NS", "SOA", "PTR", "SRV"];
    (!TYPES.contains(&v)).then(|| format!("{v:?} is not one of {}", TYPES.join(", ")))
}

fn server_problem(v: &str) -> Option<String> {
    let ok = v.parse::<std::net::IpAddr>().is_ok() || v.parse::<std::net::SocketAddr>().is_ok();
    (!ok).then(|| format!("{v:?} is not an IP, IP:port or [IPv6]:port"))
}

fn host_problem(v: &str) -> Option<String> {
    (v.parse::<std::net::IpAddr>().is_err() && domain_problem(v).is_some())
        .then(|| format!("{v:?} is neither an IP address nor a hostname"))
}

fn port_problem(v: &str) -> Option<String> {
    match v.parse::<u16>() {
        Ok(p) if p > 0 => None,
        _ => Some(format!("{v:?} is not a port (1..65535)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(pairs: &[(&str, &str)]) -> serde_json::Map<String, serde_json::Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
            .collect()
    }

    fn only(sets: &[Toolset]) -> BTreeSet<Toolset> {
        sets.iter().copied().collect()
    }

    #[test]
    fn plans_name_only_tools_that_are_served() {
        let tools: Vec<_> = crate::tools::registry();
        for sets in [
            only(&[Toolset::Node]),
            only(&[Toolset::Flux]),
            only(&Toolset::ALL),
        ] {
            for def in enabled(&sets) {
                let given: Vec<(&str, &str)> = def
                    .args
                    .iter()
                    .map(|a| {
                        (
                            a.name,
                            match a.name {
                                "domain" => "github.com",
                                "type" => "AAAA",
                                "server" => "192.168.1.55",
                                "target" => "10.0.0.1",
                                "port" => "443",
                                _ => "pihole",
                            },
                        )
                    })
                    .collect();
                let (_, text) = render(def.name, &args(&given), &sets).expect(def.name);
                for tool in &tools {
                    if text.contains(tool.name) {
                        assert!(
                            sets.contains(&tool.toolset),
                            "{} names {} with toolsets {sets:?}",
                            def.name,
                            tool.name
                        );
                    }
                }
                for (_, value) in given {
                    assert!(text.contains(value), "{} leaves out {value}", def.name);
                }
            }
        }
    }

    #[test]
    fn listed_by_toolset() {
        let names = |sets| enabled(&sets).iter().map(|p| p.name).collect::<Vec<_>>();
        assert_eq!(
            names(only(&[Toolset::Node])),
            ["dns_problem", "node_networking"]
        );
        assert_eq!(names(only(&[Toolset::Flux])), ["stuck_flux_release"]);
        assert!(matches!(
            render("stuck_flux_release", &args(&[]), &only(&[Toolset::Node])),
            Err(PromptError::NotEnabled { .. })
        ));
    }

    #[test]
    fn arguments_are_checked() {
        let node = only(&[Toolset::Node]);
        let err = |name, given: &[(&str, &str)]| match render(name, &args(given), &node) {
            Ok(_) => panic!("{name} {given:?} accepted"),
            Err(e) => e.to_string(),
        };
        assert!(err("dns_problem", &[]).contains("\"domain\": required"));
        assert!(err("dns_problem", &[("domain", "a b")]).contains("not a domain name"));
        assert!(err("dns_problem", &[("domain", "x.org"), ("type", "ANY")]).contains("not one of"));
        assert!(
            err("dns_problem", &[("domain", "x.org"), ("zone", "x")]).contains("unknown argument")
        );
        assert!(err("node_networking", &[("node", "Pi_5")]).contains("not a Kubernetes name"));
        assert!(err("node_networking", &[("node", "pi5"), ("port", "0")]).contains("not a port"));
        assert!(err("nope", &[]).contains("unknown prompt"));
        let (_, text) = render(
            "dns_problem",
            &args(&[("domain", "github.com"), ("server", "")]),
            &node,
        )
        .unwrap();
        assert!(text.contains("test_dns_query domain=github.com type=A fromNode"));
    }

    /// A stuck release does not move on a plain reconcile: the plan names
    /// the recovery — the operation when it is served, the flux command
    /// otherwise — and never offers `--with-source` as the fix for it.
    #[test]
    fn the_stuck_release_plan_names_what_recovers_it() {
        let given = args(&[("name", "immich"), ("namespace", "immich")]);
        let mut served = Served {
            toolsets: only(&[Toolset::Flux, Toolset::Cluster]),
            recover_helmrelease: false,
        };
        let (_, text) = render_for("stuck_flux_release", &given, &served).unwrap();
        assert!(
            text.contains("--reset") && !text.contains("recover_helmrelease"),
            "{text}"
        );
        assert!(text.contains("a plain reconcile changes nothing"), "{text}");
        served.recover_helmrelease = true;
        let (_, text) = render_for("stuck_flux_release", &given, &served).unwrap();
        assert!(
            text.contains("recover_helmrelease namespace=immich name=immich"),
            "{text}"
        );
    }
}
