//! Which Ingress rule or Gateway API HTTPRoute routes a host and path, as
//! the controllers choose: exact host over wildcard, longest path, Exact
//! over Prefix.

use k8s_openapi::api::networking::v1::Ingress;

/// Whether an Ingress rule host matches (`*.example.org` matches one label).
pub(super) fn host_matches(rule: &str, host: &str) -> bool {
    match rule.strip_prefix("*.") {
        Some(suffix) => host
            .split_once('.')
            .is_some_and(|(first, rest)| !first.is_empty() && rest == suffix),
        None => rule.eq_ignore_ascii_case(host),
    }
}

/// How specific a match is: (host exact 2 / wildcard 1 / none 0, path
/// length, Exact).
type Specificity = (u8, usize, bool);

/// (the Ingress or route, its Service `ns/name`, the port, the path matched).
type Backend = (String, String, String, String);

fn specificity(host_rule: Option<&str>, path: &str, exact: bool) -> Specificity {
    let host = match host_rule {
        Some(h) if h.starts_with("*.") => 1,
        Some(_) => 2,
        None => 0,
    };
    (host, path.len(), exact)
}

/// The backend an Ingress gives `host` and `path`: (ingress, service,
/// port name or number, matched path), longest path first; `Exact` paths
/// match only themselves.
pub fn ingress_backend(ingresses: &[Ingress], host: &str, path: &str) -> Option<Backend> {
    let mut best: Option<(Specificity, Backend)> = None;
    for ing in ingresses {
        let ns = ing.metadata.namespace.clone().unwrap_or_default();
        let name = ing.metadata.name.clone().unwrap_or_default();
        let Some(spec) = &ing.spec else { continue };
        for rule in spec.rules.iter().flatten() {
            if !rule.host.as_deref().is_none_or(|h| host_matches(h, host)) {
                continue;
            }
            for p in rule.http.iter().flat_map(|h| h.paths.iter()) {
                let want = p.path.clone().unwrap_or_else(|| "/".into());
                let hit = match p.path_type.as_str() {
                    "Exact" => path == want,
                    _ => {
                        let w = want.trim_end_matches('/');
                        w.is_empty() || path == w || path.starts_with(&format!("{w}/"))
                    }
                };
                let Some(svc) = p.backend.service.as_ref() else {
                    continue;
                };
                let port = svc
                    .port
                    .as_ref()
                    .map(|p| match (&p.name, p.number) {
                        (Some(n), _) => n.clone(),
                        (None, Some(n)) => n.to_string(),
                        _ => String::new(),
                    })
                    .unwrap_or_default();
                // As the controllers pick: the host first (exact, then
                // wildcard, then none), then the longest path, Exact first.
                let score = specificity(rule.host.as_deref(), &want, p.path_type == "Exact");
                if hit && best.as_ref().is_none_or(|(s, _)| score > *s) {
                    best = Some((
                        score,
                        (
                            format!("{ns}/{name}"),
                            format!("{ns}/{}", svc.name),
                            port,
                            want,
                        ),
                    ));
                }
            }
        }
    }
    best.map(|(_, b)| b)
}

/// The backend a Gateway API HTTPRoute gives `host` and `path`: (route,
/// service, port, matched path), longest path first; no hostnames means
/// every host.
pub fn httproute_backend(
    routes: &[kube::api::DynamicObject],
    host: &str,
    path: &str,
) -> Option<Backend> {
    let mut best: Option<(Specificity, Backend)> = None;
    for r in routes {
        let ns = r.metadata.namespace.clone().unwrap_or_default();
        let name = r.metadata.name.clone().unwrap_or_default();
        // A route whose fields do not read as the Gateway API defines them
        // is not one this host can be sent by.
        let Ok(route) = crate::cluster::kinds::fields::<httproute::Route>(r) else {
            continue;
        };
        let hostnames: Vec<&str> = route.spec.hostnames.iter().map(String::as_str).collect();
        if !hostnames.is_empty() && !hostnames.iter().any(|h| host_matches(h, host)) {
            continue;
        }
        for rule in &route.spec.rules {
            let Some(backend) = rule.backend_refs.first() else {
                continue;
            };
            if backend.kind.as_deref().is_some_and(|k| k != "Service") {
                continue;
            }
            let matches: Vec<(String, String)> = if rule.matches.is_empty() {
                vec![("PathPrefix".into(), "/".into())]
            } else {
                rule.matches
                    .iter()
                    .map(|m| {
                        let p = m.path.clone().unwrap_or_default();
                        (
                            p.kind.unwrap_or_else(|| "PathPrefix".into()),
                            p.value.unwrap_or_else(|| "/".into()),
                        )
                    })
                    .collect()
            };
            for (kind, want) in matches {
                let hit = match kind.as_str() {
                    "Exact" => path == want,
                    _ => {
                        let w = want.trim_end_matches('/');
                        w.is_empty() || path == w || path.starts_with(&format!("{w}/"))
                    }
                };
                let host_rule = hostnames.iter().find(|h| host_matches(h, host)).copied();
                let score = specificity(host_rule, &want, kind == "Exact");
                if hit && best.as_ref().is_none_or(|(s, _)| score > *s) {
                    let svc_ns = backend.namespace.as_deref().unwrap_or(&ns);
                    best = Some((
                        score,
                        (
                            format!("{ns}/{name}"),
                            format!("{svc_ns}/{}", backend.name),
                            backend.port.map(|p| p.to_string()).unwrap_or_default(),
                            want,
                        ),
                    ));
                }
            }
        }
    }
    best.map(|(_, b)| b)
}

/// The fields of a Gateway API HTTPRoute (gateway.networking.k8s.io/v1)
/// that route a request: absent is empty, as the API defaults it.
mod httproute {
    use serde::Deserialize;

    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    pub struct Route {
        pub spec: Spec,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    pub struct Spec {
        pub hostnames: Vec<String>,
        pub rules: Vec<Rule>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct Rule {
        pub matches: Vec<Match>,
        pub backend_refs: Vec<BackendRef>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    pub struct Match {
        pub path: Option<PathMatch>,
    }

    #[derive(Debug, Clone, Default, Deserialize)]
    #[serde(default)]
    pub struct PathMatch {
        /// Exact, PathPrefix or RegularExpression.
        #[serde(rename = "type")]
        pub kind: Option<String>,
        pub value: Option<String>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    pub struct BackendRef {
        /// Service when absent.
        pub kind: Option<String>,
        pub name: String,
        pub namespace: Option<String>,
        pub port: Option<u16>,
    }
}
