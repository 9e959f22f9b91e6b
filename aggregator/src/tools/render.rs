//! Compact text renderings of tool results (MCP `content` text and the CLI's
//! table output). Bounded like the structured results they render.

use serde_json::Value;

fn s(v: &Value) -> String {
    match v {
        Value::String(x) => x.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn arr(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

/// list_nodes.
pub fn nodes_text(v: &Value) -> String {
    let mut out = String::new();
    let sum = &v["summary"];
    out.push_str(&format!(
        "{} nodes, {} agents ok, {} without an agent; Kubernetes: {}\n",
        s(&sum["total"]),
        s(&sum["agentsOk"]),
        s(&sum["withoutAgent"]),
        s(&sum["kubernetes"]["status"])
    ));
    if sum["kubernetes"]["status"] == "error" {
        out.push_str(&format!(
            "Kubernetes error: {} (hint: {})\n",
            s(&sum["kubernetes"]["message"]),
            s(&sum["kubernetes"]["hint"])
        ));
    }
    if sum["discoveryError"].is_object() {
        out.push_str(&format!(
            "agent discovery failed: {}\n",
            s(&sum["discoveryError"]["message"])
        ));
    }
    for n in arr(&v["nodes"]) {
        let k = &n["kubernetes"];
        if k.is_object() {
            let ready = match k["ready"].as_bool() {
                Some(true) => "Ready".to_string(),
                Some(false) => format!("NotReady ({})", s(&k["readyReason"])),
                None => "Ready unknown".to_string(),
            };
            out.push_str(&format!(
                "{}: {} {} {} kubelet {}\n",
                s(&n["node"]),
                ready,
                s(&k["kind"]),
                s(&k["arch"]),
                s(&k["kubeletVersion"])
            ));
        }
        let status = s(&n["agent"]["status"]);
        if status == "ok" {
            out.push_str(&format!(
                "{}: agent ok v{} | {} {} | up {}h | load {} | mem {}/{} MiB free | conntrack {}/{} ({}%)\n",
                s(&n["node"]),
                s(&n["agent"]["version"]),
                s(&n["kernel"]),
                s(&n["arch"]),
                n["uptimeSeconds"].as_u64().unwrap_or(0) / 3600,
                s(&n["load"][0]),
                n["memory"]["availableBytes"].as_u64().unwrap_or(0) >> 20,
                n["memory"]["totalBytes"].as_u64().unwrap_or(0) >> 20,
                s(&n["conntrack"]["count"]),
                s(&n["conntrack"]["max"]),
                s(&n["conntrack"]["usagePercent"]),
            ));
        } else {
            out.push_str(&format!(
                "{}: agent {} — {}\n",
                s(&n["node"]),
                status,
                s(&n["agent"]["reason"])
            ));
        }
    }
    out
}

fn counted(v: &Value, name: &str) -> String {
    format!(
        "{} of {}",
        s(&v["counts"][name]["returned"]),
        s(&v["counts"][name]["total"])
    )
}

/// get_node_networking.
pub fn networking_text(v: &Value) -> String {
    let mut out = format!(
        "node {} (routes: table {})\n",
        s(&v["node"]),
        s(&v["table"])
    );
    if !arr(&v["links"]).is_empty() {
        out.push_str(&format!("links ({}):\n", counted(v, "links")));
        for l in arr(&v["links"]) {
            out.push_str(&format!(
                "  {} {} {} mtu {} {}{} rx {}B/{}err tx {}B/{}err\n",
                s(&l["name"]),
                if s(&l["kind"]).is_empty() {
                    "-".into()
                } else {
                    s(&l["kind"])
                },
                s(&l["state"]),
                s(&l["mtu"]),
                s(&l["mac"]),
                if s(&l["master"]).is_empty() {
                    String::new()
                } else {
                    format!(" master {}", s(&l["master"]))
                },
                s(&l["rx"]["bytes"]),
                s(&l["rx"]["errors"]),
                s(&l["tx"]["bytes"]),
                s(&l["tx"]["errors"]),
            ));
        }
    }
    if !arr(&v["addresses"]).is_empty() {
        out.push_str(&format!("addresses ({}):\n", counted(v, "addresses")));
        for a in arr(&v["addresses"]) {
            out.push_str(&format!(
                "  {} {}/{} scope {}\n",
                s(&a["link"]),
                s(&a["address"]),
                s(&a["prefixLen"]),
                s(&a["scope"])
            ));
        }
    }
    if !arr(&v["routes"]).is_empty() {
        out.push_str(&format!("routes ({}):\n", counted(v, "routes")));
        for r in arr(&v["routes"]) {
            let mut line = format!("  {} {}", s(&r["type"]), s(&r["destination"]));
            for (k, name) in [
                ("gateway", "via"),
                ("dev", "dev"),
                ("table", "table"),
                ("protocol", "proto"),
                ("scope", "scope"),
                ("prefsrc", "src"),
            ] {
                let val = s(&r[k]);
                if !val.is_empty() {
                    line.push_str(&format!(" {name} {val}"));
                }
            }
            if r["metric"].as_u64().unwrap_or(0) > 0 {
                line.push_str(&format!(" metric {}", s(&r["metric"])));
            }
            out.push_str(&line);
            out.push('\n');
        }
    }
    if !arr(&v["rules"]).is_empty() {
        out.push_str(&format!("rules ({}):\n", counted(v, "rules")));
        for r in arr(&v["rules"]) {
            let fw = s(&r["fwmark"]);
            out.push_str(&format!(
                "  {}: from {}{} {} {}\n",
                s(&r["priority"]),
                s(&r["from"]),
                if fw.is_empty() {
                    String::new()
                } else {
                    format!(" fwmark {fw}")
                },
                s(&r["action"]),
                s(&r["table"])
            ));
        }
    }
    if !arr(&v["neighbours"]).is_empty() {
        out.push_str(&format!("neighbours ({}):\n", counted(v, "neighbours")));
        for n in arr(&v["neighbours"]) {
            let states: Vec<String> = arr(&n["states"]).iter().map(s).collect();
            out.push_str(&format!(
                "  {} dev {} lladdr {} {}\n",
                s(&n["address"]),
                s(&n["dev"]),
                s(&n["lladdr"]),
                states.join(",")
            ));
        }
    }
    for e in arr(&v["errors"]) {
        out.push_str(&format!(
            "error in {}: {}\n",
            s(&e["section"]),
            s(&e["message"])
        ));
    }
    out
}

/// get_iptables_rules.
pub fn iptables_text(v: &Value) -> String {
    let mut out = format!(
        "node {} {} table {} — backend {}, rules {}-{} of {}\n",
        s(&v["node"]),
        s(&v["family"]),
        s(&v["table"]),
        s(&v["backend"]),
        v["offset"].as_u64().unwrap_or(0) + u64::from(v["returned"].as_u64().unwrap_or(0) > 0),
        v["offset"].as_u64().unwrap_or(0) + v["returned"].as_u64().unwrap_or(0),
        s(&v["total"])
    );
    if !s(&v["warning"]).is_empty() {
        out.push_str(&format!("WARNING: {}\n", s(&v["warning"])));
    }
    for c in arr(&v["chains"]) {
        if c["builtin"].as_bool().unwrap_or(false) {
            out.push_str(&format!(
                "chain {} policy {} [{} pkts, {} bytes]\n",
                s(&c["name"]),
                s(&c["policy"]),
                s(&c["packets"]),
                s(&c["bytes"])
            ));
        }
    }
    for r in arr(&v["rules"]) {
        out.push_str(&format!(
            "[{}:{}] {}\n",
            s(&r["packets"]),
            s(&r["bytes"]),
            s(&r["text"])
        ));
    }
    if !s(&v["nextCursor"]).is_empty() {
        out.push_str(&format!("more: cursor={}\n", s(&v["nextCursor"])));
    }
    out
}

fn tuple_text(t: &Value) -> String {
    if t["icmp"].is_object() {
        format!(
            "{} > {} type {} code {} id {}",
            s(&t["src"]),
            s(&t["dst"]),
            s(&t["icmp"]["type"]),
            s(&t["icmp"]["code"]),
            s(&t["icmp"]["id"])
        )
    } else {
        format!(
            "{}:{} > {}:{}",
            s(&t["src"]),
            s(&t["sport"]),
            s(&t["dst"]),
            s(&t["dport"])
        )
    }
}

/// get_conntrack_entries.
pub fn conntrack_text(v: &Value) -> String {
    let mut out = format!(
        "node {}: {} of {} matching entries; table {}/{} ({}%)\n",
        s(&v["node"]),
        s(&v["returned"]),
        s(&v["matched"]),
        s(&v["tableCount"]),
        s(&v["tableMax"]),
        s(&v["usagePercent"])
    );
    for e in arr(&v["entries"]) {
        let status: Vec<String> = arr(&e["status"])
            .iter()
            .map(s)
            .filter(|x| x == "ASSURED" || x == "UNREPLIED")
            .collect();
        out.push_str(&format!(
            "{} {} {} | reply {} {}{}\n",
            s(&e["protocol"]),
            s(&e["state"]),
            tuple_text(&e["original"]),
            tuple_text(&e["reply"]),
            status.join(","),
            if e["nat"]["dst"].as_bool().unwrap_or(false) {
                " DNAT"
            } else {
                ""
            }
        ));
    }
    if !s(&v["nextCursor"]).is_empty() {
        out.push_str(&format!("more: cursor={}\n", s(&v["nextCursor"])));
    }
    out
}

/// test_pod_connectivity.
pub fn connectivity_text(v: &Value) -> String {
    let p = &v["ping"];
    let ping = if p["error"].is_string() {
        format!("ping: {}", s(&p["error"]))
    } else {
        format!(
            "ping {}: {}/{} received, {}% loss, rtt min/avg/max {}/{}/{} ms ({})",
            s(&p["address"]),
            s(&p["received"]),
            s(&p["transmitted"]),
            s(&p["lossPercent"]),
            s(&p["rttMs"]["min"]),
            s(&p["rttMs"]["avg"]),
            s(&p["rttMs"]["max"]),
            s(&p["method"])
        )
    };
    let t = &v["tcp"];
    format!(
        "from {} to {}\n{ping}\ntcp {}:{} {} in {} ms — {}\n",
        s(&v["sourceNode"]),
        s(&v["target"]),
        s(&t["address"]),
        s(&t["port"]),
        s(&t["outcome"]),
        s(&t["connectMs"]),
        s(&t["message"])
    )
}

/// curl_ingress.
pub fn http_text(v: &Value) -> String {
    let t = &v["timingMs"];
    let mut out = format!(
        "{} from {}: {} status {} in {} ms (dns {} connect {} tls {} first byte {}) {} bytes from {}\n",
        s(&v["url"]),
        s(&v["fromNode"]),
        s(&v["outcome"]),
        s(&v["status"]),
        s(&t["total"]),
        s(&t["dns"]),
        s(&t["connect"]),
        s(&t["tls"]),
        s(&t["firstByte"]),
        s(&v["bodyBytes"]),
        s(&v["remoteAddress"])
    );
    if !s(&v["error"]).is_empty() {
        out.push_str(&format!("error: {}\n", s(&v["error"])));
    }
    if !s(&v["redirect"]).is_empty() {
        out.push_str(&format!("redirect: {}\n", s(&v["redirect"])));
    }
    let c = &v["certificate"];
    if c.is_object() {
        out.push_str(&format!(
            "certificate: {} issued by {}, expires {} ({} days), {} {}\n",
            s(&c["subject"]),
            s(&c["issuer"]),
            s(&c["notAfter"]),
            s(&c["daysLeft"]),
            s(&v["tls"]["version"]),
            if v["tls"]["verified"].as_bool().unwrap_or(false) {
                "verified"
            } else {
                "NOT verified"
            }
        ));
    }
    out
}

/// test_dns_query.
pub fn dns_text(v: &Value) -> String {
    let mut out = format!(
        "{} {} @{} from {}: {} in {} ms{}\n",
        s(&v["domain"]),
        s(&v["type"]),
        s(&v["server"]),
        s(&v["fromNode"]),
        if s(&v["rcode"]).is_empty() {
            "no answer".into()
        } else {
            s(&v["rcode"])
        },
        s(&v["latencyMs"]),
        if s(&v["error"]).is_empty() {
            String::new()
        } else {
            format!(" — {}", s(&v["error"]))
        }
    );
    for a in arr(&v["answers"]) {
        out.push_str(&format!(
            "  {} {} {} {}\n",
            s(&a["name"]),
            s(&a["ttl"]),
            s(&a["type"]),
            s(&a["data"])
        ));
    }
    let flags: Vec<&str> = ["aa", "tc", "rd", "ra", "ad", "cd"]
        .into_iter()
        .filter(|f| v["flags"][*f].as_bool().unwrap_or(false))
        .collect();
    out.push_str(&format!("flags: {}\n", flags.join(" ")));
    out
}

/// check_network_mesh.
pub fn mesh_text(v: &Value) -> String {
    let mut out = format!(
        "{} nodes, {} broken pairs\n",
        arr(&v["nodes"]).len(),
        arr(&v["broken"]).len()
    );
    for a in arr(&v["agents"]) {
        if s(&a["status"]) != "ok" {
            out.push_str(&format!(
                "agent on {} {}: {}\n",
                s(&a["node"]),
                s(&a["status"]),
                s(&a["reason"])
            ));
        }
    }
    for b in arr(&v["broken"]) {
        out.push_str(&format!(
            "broken {} -> {}: icmp {} tcp {}\n",
            s(&b["from"]),
            s(&b["to"]),
            if b["icmp"].as_bool().unwrap_or(false) {
                "ok"
            } else {
                "FAIL"
            },
            if b["tcp"].as_bool().unwrap_or(false) {
                "ok"
            } else {
                "FAIL"
            }
        ));
    }
    if !s(&v["note"]).is_empty() {
        out.push_str(&format!("{}\n", s(&v["note"])));
    }
    out
}
