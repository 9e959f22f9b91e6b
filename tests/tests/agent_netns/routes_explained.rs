//! `ExplainRoute` against `ip -j route get` (and `ip route get fibmatch`)
//! in a namespace with a random custom table, policy rules (from, to,
//! fwmark/mask, iif, suppress_prefixlength), blackhole, unreachable,
//! prohibit and throw routes, IPv4 and IPv6: the same device, gateway,
//! source, table and type, the same refusal, the same route entry — and
//! the policy rule the scenario was built to hit.

use labscope_proto::v1 as pb;
use labscope_tests::{AgentProcess, Netns, connect, require_root};
use serde_json::Value;

use super::firewall_corpus::Rng;

const AGENT: &str = "127.0.0.1:9447";

/// One question, the `ip route get` arguments that ask it, and the rule
/// priority the scenario routes it through (0 when no rule decides).
struct Case {
    req: pb::ExplainRouteRequest,
    ip_args: Vec<String>,
    rule: u32,
}

fn case(dst: &str, src: &str, mark: u32, iif: &str, rule: u32) -> Case {
    let mut ip_args = vec!["route".to_string(), "get".into(), dst.into()];
    if !src.is_empty() {
        ip_args.extend(["from".into(), src.into()]);
    }
    if !iif.is_empty() {
        ip_args.extend(["iif".into(), iif.into()]);
    }
    if mark != 0 {
        ip_args.extend(["mark".into(), format!("{mark:#x}")]);
    }
    Case {
        req: pb::ExplainRouteRequest {
            destination: dst.into(),
            source: src.into(),
            mark,
            iif: iif.into(),
            tos: 0,
        },
        ip_args,
        rule,
    }
}

fn str_of(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn with_prefix(dst: &str, v6: bool) -> String {
    if dst == "default" || dst.contains('/') {
        dst.to_string()
    } else {
        format!("{dst}/{}", if v6 { 128 } else { 32 })
    }
}

#[test]
fn explain_route_equals_ip_route_get() -> anyhow::Result<()> {
    if !require_root("explain_route_equals_ip_route_get") {
        return Ok(());
    }
    let mut rng = Rng::seeded();
    let ns = Netns::new("rtx")?;
    let a = rng.byte();
    let (table, table2) = (100 + rng.below(100) as u32, 300 + rng.below(100) as u32);
    let mark = rng.mark() & 0x00ff_0000 | 0x0001_0000;
    let p = |s: &str| s.replace('A', &a.to_string());
    let t = table.to_string();
    let t2 = table2.to_string();
    let ip = |args: &[&str]| ns.ip(args).map(|_| ());
    ip(&["link", "add", "d0", "type", "veth", "peer", "name", "d1"])?;
    ip(&["link", "set", "d0", "up"])?;
    ip(&["link", "set", "d1", "up"])?;
    ip(&["addr", "add", &p("10.A.0.2/24"), "dev", "d0"])?;
    ip(&["addr", "add", &p("10.A.1.2/24"), "dev", "d1"])?;
    ip(&["addr", "add", "2001:db8:1::2/64", "dev", "d0", "nodad"])?;
    ip(&["route", "add", "default", "via", &p("10.A.0.1")])?;
    ip(&[
        "route",
        "add",
        &p("10.A.42.0/24"),
        "via",
        &p("10.A.0.254"),
        "table",
        &t,
    ])?;
    ip(&[
        "route",
        "add",
        "default",
        "via",
        &p("10.A.1.1"),
        "table",
        &t,
    ])?;
    ip(&["route", "add", "throw", &p("10.A.43.0/24"), "table", &t])?;
    ip(&["route", "add", "blackhole", &p("10.A.44.0/24"), "table", &t])?;
    ip(&["route", "add", "unreachable", &p("10.A.45.0/24")])?;
    ip(&["route", "add", "prohibit", &p("10.A.46.0/24")])?;
    ip(&[
        "route",
        "add",
        &p("10.A.47.0/24"),
        "via",
        &p("10.A.1.254"),
        "table",
        &t2,
    ])?;
    ip(&[
        "rule",
        "add",
        "pref",
        "100",
        "to",
        &p("10.A.48.0/24"),
        "prohibit",
    ])?;
    ip(&[
        "rule",
        "add",
        "pref",
        "5210",
        "fwmark",
        &format!("{mark:#x}/0xff0000"),
        "lookup",
        "main",
    ])?;
    ip(&[
        "rule",
        "add",
        "pref",
        "5260",
        "lookup",
        &t,
        "suppress_prefixlength",
        "0",
    ])?;
    ip(&[
        "rule",
        "add",
        "pref",
        "5270",
        "from",
        &p("10.A.0.2"),
        "lookup",
        &t,
    ])?;
    ip(&["rule", "add", "pref", "5280", "iif", "d1", "lookup", &t2])?;
    ip(&[
        "-6",
        "route",
        "add",
        "default",
        "via",
        "2001:db8:1::1",
        "dev",
        "d0",
    ])?;
    ip(&[
        "-6",
        "route",
        "add",
        "2001:db8:42::/48",
        "via",
        "2001:db8:1::fe",
        "dev",
        "d0",
        "table",
        &t,
    ])?;
    ip(&["-6", "route", "add", "blackhole", "2001:db8:44::/48"])?;
    ip(&["-6", "route", "add", "unreachable", "2001:db8:45::/48"])?;
    ip(&[
        "-6",
        "rule",
        "add",
        "pref",
        "5270",
        "to",
        "2001:db8:42::/48",
        "lookup",
        &t,
    ])?;
    ns.run(&["sysctl", "-qw", "net.ipv4.conf.all.forwarding=1"])?;

    let cases = vec![
        // Main table's default.
        case(&p("10.A.9.9"), "", 0, "", 32766),
        // Custom table through suppress_prefixlength: a /24 is kept.
        case(&p("10.A.42.7"), "", 0, "", 5260),
        // The same from the address the from-rule names: still 5260.
        case(&p("10.A.42.7"), &p("10.A.0.2"), 0, "", 5260),
        // suppress_prefixlength 0 drops table's default; the from-rule
        // then takes it.
        case(&p("10.A.9.9"), &p("10.A.0.2"), 0, "", 5270),
        // fwmark: main before anything else.
        case(&p("10.A.42.7"), "", mark, "", 5210),
        // A throw route hands on to main.
        case(&p("10.A.43.1"), &p("10.A.0.2"), 0, "", 32766),
        // Blackhole in the custom table.
        case(&p("10.A.44.1"), "", 0, "", 5260),
        // Unreachable and prohibit routes in main.
        case(&p("10.A.45.1"), "", 0, "", 32766),
        case(&p("10.A.46.1"), "", 0, "", 32766),
        // A prohibit rule.
        case(&p("10.A.48.1"), "", 0, "", 100),
        // Local delivery.
        case(&p("10.A.0.2"), "", 0, "", 0),
        // Forwarded: arriving on d1 from a neighbour.
        case(&p("10.A.47.9"), &p("10.A.1.7"), 0, "d1", 5280),
        // IPv6: a custom table by destination rule, the main default,
        // blackhole and unreachable routes.
        case("2001:db8:42::9", "", 0, "", 5270),
        case("2001:db8:77::9", "", 0, "", 32766),
        case("2001:db8:44::1", "", 0, "", 32766),
        case("2001:db8:45::1", "", 0, "", 32766),
    ];
    let _agent = AgentProcess::start(&ns, AGENT, "rtx", &[])?;
    let reqs: Vec<pb::ExplainRouteRequest> = cases.iter().map(|c| c.req.clone()).collect();
    let answers = ns.block_on(move || async move {
        let mut client = connect(AGENT).await?;
        let mut out = Vec::new();
        for r in reqs {
            out.push(client.explain_route(r).await?.into_inner());
        }
        anyhow::Ok(out)
    })?;
    for (c, e) in cases.iter().zip(&answers) {
        let what = format!("{:?}: {}", c.ip_args, e.summary);
        eprintln!("{what}");
        let v6 = c.req.destination.contains(':');
        let mut argv: Vec<&str> = vec!["ip", "-j"];
        if v6 {
            argv.push("-6");
        }
        argv.extend(c.ip_args.iter().map(String::as_str));
        let out = ns.output(&argv)?;
        if out.status.success() {
            let got: Value = serde_json::from_slice(&out.stdout)?;
            let got = &got[0];
            let kind = match str_of(got, "type") {
                t if t.is_empty() => "unicast".to_string(),
                t => t,
            };
            assert_eq!(e.route_type, kind, "type of {what}");
            assert_eq!(e.oif, str_of(got, "dev"), "dev of {what}");
            let gw = e
                .gateway
                .as_ref()
                .map(|g| g.text.clone())
                .unwrap_or_default();
            assert_eq!(gw, str_of(got, "gateway"), "gateway of {what}");
            let src = e
                .prefsrc
                .as_ref()
                .map(|g| g.text.clone())
                .unwrap_or_default();
            assert_eq!(src, str_of(got, "prefsrc"), "prefsrc of {what}");
            let table = match str_of(got, "table") {
                t if t.is_empty() => "main".to_string(),
                t => t,
            };
            assert_eq!(e.table_name, table, "table of {what}");
            // The route entry: `ip route get fibmatch`.
            let mut fib = argv.clone();
            fib.insert(if v6 { 5 } else { 4 }, "fibmatch");
            let fo = ns.output(&fib)?;
            if fo.status.success() && kind != "blackhole" && kind != "unreachable" {
                let fv: Value = serde_json::from_slice(&fo.stdout)?;
                let dst = with_prefix(&str_of(&fv[0], "dst"), v6);
                let ours = e
                    .route
                    .as_ref()
                    .map(|r| r.destination.clone())
                    .unwrap_or_default();
                assert_eq!(ours, dst, "fibmatch route of {what}");
            }
            assert_eq!(
                e.routable,
                !matches!(kind.as_str(), "blackhole" | "unreachable" | "prohibit"),
                "{what}"
            );
        } else {
            let err = String::from_utf8_lossy(&out.stderr);
            let err = err.trim().trim_start_matches("RTNETLINK answers: ");
            assert!(!e.routable, "ip refused ({err}), the agent routed: {what}");
            assert_eq!(e.error, err, "refusal of {what}");
        }
        let rule = e.rule.as_ref().map(|r| r.priority).unwrap_or(0);
        if c.rule != 0 {
            assert_eq!(
                rule, c.rule,
                "deciding rule of {what} (steps {:?})",
                e.steps
            );
        }
        assert!(
            e.notes.iter().all(|n| !n.contains("did not end")),
            "{what}: {:?}",
            e.notes
        );
        assert!(!e.summary.is_empty());
    }
    // A bad question names its field.
    let bad = ns.block_on(|| async {
        let mut client = connect(AGENT).await?;
        let r = client
            .explain_route(pb::ExplainRouteRequest {
                destination: "10.0.0.1".into(),
                source: "10.0.0.2".into(),
                iif: "nosuchif0".into(),
                ..Default::default()
            })
            .await;
        anyhow::Ok(r.err().map(|s| (s.code(), s.message().to_string())))
    })?;
    let (code, message) = bad.expect("an unknown iif is refused");
    assert_eq!(code, tonic::Code::InvalidArgument);
    assert!(
        message.contains("iif") && message.contains("d0"),
        "{message}"
    );
    Ok(())
}
