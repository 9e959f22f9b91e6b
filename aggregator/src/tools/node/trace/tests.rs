//! Routing by host and path.

use super::routes::{host_matches, httproute_backend};

#[test]
fn httproutes_route_by_host_and_longest_path() {
    let route = |name: &str, hosts: serde_json::Value, rules: serde_json::Value| {
        serde_json::from_value::<kube::api::DynamicObject>(serde_json::json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": name, "namespace": "immich"},
            "spec": {"parentRefs": [{"name": "traefik-gateway", "namespace": "kube-system"}],
                     "hostnames": hosts, "rules": rules}
        }))
        .expect("an HTTPRoute")
    };
    let routes = vec![
        route(
            "immich",
            serde_json::json!(["immich.lab.example"]),
            serde_json::json!([
                {"backendRefs": [{"name": "immich-server", "port": 2283}]},
                {"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
                 "backendRefs": [{"name": "immich-api", "port": 3001}]},
                {"matches": [{"path": {"type": "Exact", "value": "/health"}}],
                 "backendRefs": [{"name": "health", "namespace": "ops", "port": 80}]}
            ]),
        ),
        route(
            "any",
            serde_json::json!([]),
            serde_json::json!([{"backendRefs": [{"name": "catch", "port": 80}]}]),
        ),
    ];
    let svc = |h: &str, p: &str| httproute_backend(&routes, h, p).map(|b| (b.1, b.2));
    assert_eq!(
        svc("immich.lab.example", "/photos"),
        Some(("immich/immich-server".into(), "2283".into()))
    );
    assert_eq!(
        svc("immich.lab.example", "/api/ping"),
        Some(("immich/immich-api".into(), "3001".into()))
    );
    assert_eq!(
        svc("immich.lab.example", "/apix"),
        Some(("immich/immich-server".into(), "2283".into()))
    );
    assert_eq!(
        svc("immich.lab.example", "/health"),
        Some(("ops/health".into(), "80".into()))
    );
    assert_eq!(
        svc("other.lab.example", "/"),
        Some(("immich/catch".into(), "80".into()))
    );
}

#[test]
fn wildcard_hosts_match_one_label() {
    assert!(host_matches("*.lab.example", "immich.lab.example"));
    assert!(!host_matches("*.lab.example", "a.b.lab.example"));
    assert!(!host_matches("*.lab.example", "lab.example"));
    assert!(host_matches("Immich.lab.example", "immich.lab.example"));
}
