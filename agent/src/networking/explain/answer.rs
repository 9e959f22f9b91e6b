//! The explanation's answer part: the kernel's route (or its refusal and
//! why), checked against the walk of the rules, and the one-line summary.

use super::*;

/// The kernel's answer: the route it chose, and whether the walk of the
/// rules ended at the table it answered from.
pub(super) fn answered(
    out: &mut pb::RouteExplanation,
    k: KernelAnswer,
    fib: Option<KernelAnswer>,
    rules: &[RuleSpec],
    last: Option<(usize, Outcome, Option<usize>)>,
    names: &HashMap<u32, String>,
) {
    let mut r = k.route;
    r.oif = names.get(&r.oif_index).cloned().unwrap_or_default();
    out.routable = !error_type(&r.route_type);
    out.route_type = r.route_type.clone();
    out.table = r.table;
    out.table_name = names::table(r.table);
    out.oif = r.oif.clone();
    out.gateway = r.gateway.clone();
    out.prefsrc = r.prefsrc.clone();
    out.mtu = k.mtu;
    if let Some(mut f) = fib.map(|f| f.route) {
        f.oif = names.get(&f.oif_index).cloned().unwrap_or_default();
        for h in &mut f.nexthops {
            h.oif = names.get(&h.oif_index).cloned().unwrap_or_default();
        }
        out.route = Some(f);
    }
    // The walk should end at the table the kernel answered from.
    // Until a policy rule is added, the kernel keeps the local and
    // main tables merged and answers local routes from main.
    let merged = rules
        .iter()
        .all(|x| matches!(x.shown.priority, 0 | 32766 | 32767));
    match last {
        Some((_, Outcome::Answered | Outcome::Refused, _))
            if out.rule.as_ref().is_some_and(|x| x.table == r.table) => {}
        Some((_, Outcome::Answered, _))
            if merged && r.table == 254 && out.rule.as_ref().is_some_and(|x| x.table == 255) =>
        {
            out.notes.push(
                "the kernel keeps the local and main tables merged while no policy rule is added, \
                 so it names main for this route of the local table"
                    .into(),
            );
        }
        _ => {
            out.notes.push(format!(
                "labscope's walk of the rules did not end at table {} where the kernel's answer \
                 came from; the rule shown may not be the one that matched",
                out.table_name
            ));
        }
    }
}

/// The kernel's refusal, with what the walk found (an error route or rule)
/// and why a forwarded packet is refused (forwarding off, rp_filter).
pub(super) fn refused(
    out: &mut pb::RouteExplanation,
    e: &io::Error,
    q: &Query,
    rules: &[RuleSpec],
    routes: &[(Route, IpNet, Option<IpNet>)],
    last: Option<(usize, Outcome, Option<usize>)>,
) {
    let v6 = q.destination.is_ipv6();
    out.routable = false;
    out.error = e
        .to_string()
        .split(" (os error")
        .next()
        .unwrap_or_default()
        .to_string();
    out.errno = errno_name(e).into();
    // An error route or rule: what the walk found says which. A
    // route the walk found that the kernel still refuses is shown
    // with the refusal (forwarding off, rp_filter).
    if let Some((ri, outcome, route)) = last {
        match route {
            Some(at) => {
                let (route, _, _) = &routes[at];
                if outcome == Outcome::Refused {
                    out.route_type = route.route_type.clone();
                }
                out.table = route.table;
                out.table_name = names::table(route.table);
                out.route = Some(route.clone());
            }
            None => out.route_type = rules[ri].shown.action.clone(),
        }
    }
    match (e.raw_os_error(), &q.iif) {
        (Some(113), Some(iif))
            if last.is_none_or(|l| l.1 != Outcome::Refused) && !forwarding(v6, iif) =>
        {
            out.notes.push(format!(
                "forwarding is off for {iif} (net.ipv{}.conf.{iif}.forwarding = 0): the kernel \
                 does not route packets arriving there",
                if v6 { 6 } else { 4 }
            ))
        }
        (Some(18), Some(iif)) => out.notes.push(format!(
            "the reverse-path filter refuses source {} on {iif}: the route back to it leaves by \
             another interface (net.ipv4.conf.{iif}.rp_filter)",
            out.source
        )),
        (Some(22), Some(_)) if q.source.is_none() => out
            .notes
            .push("a forwarded packet needs its source address (source)".into()),
        _ => {}
    }
}

/// Whether the kernel forwards packets arriving on `iif` (the sysctl of
/// this network namespace; unknown counts as on).
pub(super) fn forwarding(v6: bool, iif: &str) -> bool {
    let path = format!(
        "/proc/sys/net/ipv{}/conf/{iif}/forwarding",
        if v6 { 6 } else { 4 }
    );
    std::fs::read_to_string(path).map_or(true, |v| v.trim() != "0")
}

pub(super) fn summary(e: &pb::RouteExplanation) -> String {
    let mut s = e.destination.clone();
    if !e.source.is_empty() {
        s.push_str(" from ");
        s.push_str(&e.source);
    }
    if !e.iif.is_empty() {
        s.push_str(" iif ");
        s.push_str(&e.iif);
    }
    if e.mark != 0 {
        s.push_str(&format!(" mark {:#x}", e.mark));
    }
    if e.tos != 0 {
        s.push_str(&format!(" tos {:#x}", e.tos));
    }
    if let Some(r) = &e.rule {
        s.push_str(&format!(" → rule {} ({})", r.priority, e.rule_text));
    }
    if !e.table_name.is_empty() {
        s.push_str(&format!(" → table {}", e.table_name));
    }
    s.push_str(": ");
    if e.routable {
        if e.route_type != "unicast" && e.route_type != "local" {
            s.push_str(&e.route_type);
            s.push(' ');
        }
        match (&e.gateway, e.oif.is_empty()) {
            _ if e.route_type == "local" => s.push_str("a local address, delivered to this node"),
            (Some(g), false) => s.push_str(&format!("via {} dev {}", g.text, e.oif)),
            (Some(g), true) => s.push_str(&format!("via {}", g.text)),
            (None, false) => s.push_str(&format!("dev {} (directly connected)", e.oif)),
            (None, true) => s.push_str("delivered here"),
        }
        if !ip_text(&e.prefsrc).is_empty() {
            s.push_str(&format!(", source {}", ip_text(&e.prefsrc)));
        }
        if let Some(r) = &e.route {
            s.push_str(&format!(" (route {})", r.destination));
        }
        if e.mtu != 0 {
            s.push_str(&format!(", mtu {}", e.mtu));
        }
    } else {
        match (&e.route, e.route_type.as_str()) {
            (Some(r), t) if error_type(t) => s.push_str(&format!("{t} route {}", r.destination)),
            (None, t) if error_type(t) => s.push_str(&format!("the rule's action is {t}")),
            (Some(r), _) => s.push_str(&format!(
                "route {}{}",
                r.destination,
                r.gateway
                    .as_ref()
                    .map(|g| format!(" via {}", g.text))
                    .unwrap_or_default()
            )),
            _ if e.steps.is_empty() => s.push_str("no rule matched"),
            _ => s.push_str("no route in any table the rules lead to"),
        }
        if !e.error.is_empty() {
            s.push_str(&format!(" — the kernel refuses: {}", e.error));
        }
    }
    s
}
