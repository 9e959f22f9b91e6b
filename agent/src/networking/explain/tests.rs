//! The policy-rule walk and the route decision, on captured and built inputs.

use super::*;

fn rule(priority: u32, action: u8, table: u32, goto: u32) -> RuleSpec {
    RuleSpec {
        shown: Rule {
            priority,
            table,
            goto_priority: goto,
            action: match action {
                1 => "lookup",
                2 => "goto",
                _ => "nop",
            }
            .into(),
            source: "all".into(),
            destination: "all".into(),
            ..Default::default()
        },
        mark_mask: u32::MAX,
        action,
        ..Default::default()
    }
}

fn route(table: u32, dst: &str, kind: &str) -> (Route, IpNet, Option<IpNet>) {
    (
        Route {
            table,
            route_type: kind.into(),
            destination: dst.into(),
            ..Default::default()
        },
        dst.parse().unwrap_or_default(),
        None,
    )
}

fn flow() -> Flow<'static> {
    Flow {
        dst: "10.0.0.9".parse().unwrap_or(IpAddr::from([0u8; 4])),
        src: None,
        mark: 0,
        iif: "lo",
        tos: 0,
    }
}

#[test]
fn a_goto_without_its_target_falls_through() {
    let routes = vec![
        route(10, "10.0.0.0/8", "unicast"),
        route(20, "10.0.0.0/8", "unicast"),
    ];
    // Nothing at 200: the kernel goes on with 150.
    let rules = vec![
        rule(100, 2, 0, 200),
        rule(150, 1, 10, 0),
        rule(300, 1, 20, 0),
    ];
    assert_eq!(walk(&rules, &routes, &flow()).last().map(|s| s.0), Some(1));
    // With a rule at 200 it jumps there.
    let rules = vec![
        rule(100, 2, 0, 200),
        rule(150, 1, 10, 0),
        rule(200, 1, 20, 0),
    ];
    assert_eq!(walk(&rules, &routes, &flow()).last().map(|s| s.0), Some(2));
}

#[test]
fn throw_and_suppression_hand_on_to_the_next_rule() {
    let routes = vec![
        route(10, "10.0.0.0/8", "throw"),
        route(20, "0.0.0.0/0", "unicast"),
        route(254, "10.0.0.0/16", "unicast"),
    ];
    let mut suppressing = rule(150, 1, 20, 0);
    suppressing.suppress_prefixlen = Some(0);
    let rules = vec![rule(100, 1, 10, 0), suppressing, rule(32766, 1, 254, 0)];
    let w = walk(&rules, &routes, &flow());
    let outcomes: Vec<Outcome> = w.steps.iter().map(|s| s.1).collect();
    assert_eq!(
        outcomes,
        [Outcome::Thrown, Outcome::Suppressed, Outcome::Answered]
    );
    assert_eq!(w.last().map(|s| s.0), Some(2));
}

#[test]
fn host_prefixes_print_without_length_per_family() {
    let mut r = rule(10, 1, 254, 0);
    r.shown.source = "10.0.0.1/32".into();
    r.shown.destination = "2001:db8::/32".into();
    r.shown.table_name = "main".into();
    assert_eq!(rule_text(&r), "from 10.0.0.1 to 2001:db8::/32 lookup main");
}
