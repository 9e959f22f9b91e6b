//! What the fake API server does with writes: JSON merge patches (RFC 7386)
//! and creates, and the controllers' answers to them that labscope's
//! operations watch for — helm-controller's handling of reconcile, reset,
//! force and suspend/resume on a stalled HelmRelease (HOMELAB.md §3.a),
//! the other Flux controllers recording `lastHandledReconcileAt`, the
//! Deployment controller observing a new generation, and External Secrets
//! syncing on `force-sync`.
//!
//! helm-controller's recovery takes two steps, as the real one does: the
//! patch answer shows `Reconciling`/`Ready=Unknown` (Progressing), and the
//! next read of the release shows the upgrade's outcome.

use serde_json::{Value, json};

use crate::fake_kube::Fixture;

/// RFC 7386: objects merge key by key, `null` deletes, anything else
/// replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    crate::fake_kube::rfc3339(secs)
}

fn annotation<'a>(o: &'a Value, key: &str) -> Option<&'a str> {
    o["metadata"]["annotations"][key].as_str()
}

fn condition<'a>(o: &'a Value, type_: &str) -> Option<&'a Value> {
    o["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

fn group_of(o: &Value) -> &str {
    o["apiVersion"]
        .as_str()
        .and_then(|a| a.rsplit_once('/'))
        .map(|(g, _)| g)
        .unwrap_or("")
}

/// Stalled: the modern `Stalled=True` condition, or the legacy
/// "upgrade retries exhausted" Ready message.
fn stalled(hr: &Value) -> bool {
    condition(hr, "Stalled").is_some_and(|c| c["status"] == "True")
        || condition(hr, "Ready").is_some_and(|c| {
            c["status"] == "False"
                && c["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("retries exhausted"))
        })
}

/// Applies `patch` to the object at `objects[i]` and lets the controllers
/// react. `pending` collects HelmReleases whose upgrade finishes on the
/// next read.
pub fn patched(f: &mut Fixture, i: usize, patch: &Value) {
    let before = f.objects[i].clone();
    let obj = &mut f.objects[i];
    merge_patch(obj, patch);
    // What a patch may not change.
    obj["apiVersion"] = before["apiVersion"].clone();
    obj["kind"] = before["kind"].clone();
    obj["metadata"]["name"] = before["metadata"]["name"].clone();
    obj["metadata"]["namespace"] = before["metadata"]["namespace"].clone();
    if obj["spec"] != before["spec"] {
        let g = before["metadata"]["generation"].as_i64().unwrap_or(1);
        obj["metadata"]["generation"] = json!(g + 1);
    }
    let kind = obj["kind"].as_str().unwrap_or_default().to_string();
    let group = group_of(obj).to_string();
    match (group.as_str(), kind.as_str()) {
        ("helm.toolkit.fluxcd.io", "HelmRelease") => {
            if let Some(key) = helm_controller(obj, &before) {
                f.helm_pending.insert(key);
            }
        }
        (g, _) if g.ends_with(".toolkit.fluxcd.io") => {
            let suspended = obj["spec"]["suspend"] == true;
            if let Some(t) = annotation(obj, "reconcile.fluxcd.io/requestedAt")
                && !suspended
            {
                let t = t.to_string();
                obj["status"]["lastHandledReconcileAt"] = json!(t);
            }
        }
        ("apps", "Deployment") => {
            let g = obj["metadata"]["generation"].clone();
            obj["status"]["observedGeneration"] = g;
        }
        ("external-secrets.io", "ExternalSecret") => {
            let asked = annotation(obj, "force-sync");
            let ready = condition(obj, "Ready").is_some_and(|c| c["status"] == "True");
            if asked.is_some() && asked != annotation(&before, "force-sync") && ready {
                obj["status"]["refreshTime"] = json!(now_rfc3339());
            }
        }
        _ => {}
    }
}

/// helm-controller's answer to a patch of a HelmRelease; `Some((ns, name))`
/// when an upgrade is now running (it finishes on the next read).
fn helm_controller(hr: &mut Value, before: &Value) -> Option<(String, String)> {
    if hr["spec"]["suspend"] == true {
        // Suspended: the status is frozen.
        return None;
    }
    let requested = annotation(hr, "reconcile.fluxcd.io/requestedAt").map(str::to_string);
    let reset = annotation(hr, "reconcile.fluxcd.io/resetAt").map(str::to_string);
    let force = annotation(hr, "reconcile.fluxcd.io/forceAt").map(str::to_string);
    let new_request = requested.is_some()
        && requested.as_deref() != hr["status"]["lastHandledReconcileAt"].as_str();
    let resumed = before["spec"]["suspend"] == true;
    let generation = hr["metadata"]["generation"].as_i64().unwrap_or(1);
    let attempted = hr["status"]["lastAttemptedGeneration"].as_i64();
    if !new_request && !resumed && hr["spec"] == before["spec"] {
        return None;
    }
    if let Some(t) = &requested {
        hr["status"]["lastHandledReconcileAt"] = json!(t);
    }
    let mut retry = false;
    if let Some(r) = &reset
        && hr["status"]["lastHandledResetAt"].as_str() != Some(r)
    {
        hr["status"]["lastHandledResetAt"] = json!(r);
        // A reset counts only with the same token as the reconcile request.
        retry |= requested.as_deref() == Some(r.as_str());
    }
    if let Some(fo) = &force
        && hr["status"]["lastHandledForceAt"].as_str() != Some(fo)
    {
        hr["status"]["lastHandledForceAt"] = json!(fo);
        retry |= requested.as_deref() == Some(fo.as_str());
    }
    // A new generation (a spec change, or resume after suspend changed it)
    // resets the counters: "generation differs from last attempt".
    retry |= attempted.is_some_and(|a| a != generation);
    if !retry {
        // Nothing to retry: the request is recorded; a stalled release
        // stays stalled (it is not retried without a reset or a new spec).
        let _ = stalled(hr);
        return None;
    }
    let msg = "Running 'upgrade' action with timeout of 5m0s";
    let now = now_rfc3339();
    hr["status"]["failures"] = json!(0);
    hr["status"]["upgradeFailures"] = json!(0);
    hr["status"]["installFailures"] = json!(0);
    let mut conditions: Vec<Value> = hr["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c["type"] != "Stalled" && c["type"] != "Ready" && c["type"] != "Reconciling")
        .collect();
    conditions.push(json!({"type": "Reconciling", "status": "True", "reason": "Progressing", "message": msg, "lastTransitionTime": now, "observedGeneration": generation}));
    conditions.push(json!({"type": "Ready", "status": "Unknown", "reason": "Progressing", "message": msg, "lastTransitionTime": now, "observedGeneration": generation}));
    hr["status"]["conditions"] = json!(conditions);
    Some((
        hr["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        hr["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    ))
}

/// Finishes the upgrades started by [`patched`]: Ready/Released True
/// `UpgradeSucceeded`, a new deployed history entry, and the Kustomization
/// that was failing its health check because of the release back to Ready.
pub fn settle(f: &mut Fixture) {
    if f.helm_pending.is_empty() {
        return;
    }
    let pending = std::mem::take(&mut f.helm_pending);
    let now = now_rfc3339();
    for (ns, name) in pending {
        let Some(hr) = f.objects.iter_mut().find(|o| {
            o["kind"] == "HelmRelease"
                && o["metadata"]["namespace"] == ns.as_str()
                && o["metadata"]["name"] == name.as_str()
        }) else {
            continue;
        };
        let generation = hr["metadata"]["generation"].as_i64().unwrap_or(1);
        let mut history: Vec<Value> = hr["status"]["history"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for h in history.iter_mut() {
            if h["status"] == "deployed" {
                h["status"] = json!("superseded");
            }
        }
        let version = history
            .iter()
            .filter_map(|h| h["version"].as_i64())
            .max()
            .unwrap_or(0)
            + 1;
        let chart = history
            .first()
            .and_then(|h| h["chartVersion"].as_str())
            .unwrap_or("0.0.0")
            .to_string();
        let chart_name = history
            .first()
            .and_then(|h| h["chartName"].as_str())
            .unwrap_or(&name)
            .to_string();
        history.insert(
            0,
            json!({"name": name, "namespace": ns, "version": version, "chartName": chart_name,
            "chartVersion": chart, "status": "deployed", "lastDeployed": now}),
        );
        let msg = format!(
            "Helm upgrade succeeded for release {ns}/{name}.v{version} with chart {chart_name}@{chart}"
        );
        let mut conditions: Vec<Value> = hr["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|c| {
                !["Ready", "Released", "Reconciling", "Stalled"]
                    .contains(&c["type"].as_str().unwrap_or_default())
            })
            .collect();
        for t in ["Ready", "Released"] {
            conditions.push(
                json!({"type": t, "status": "True", "reason": "UpgradeSucceeded", "message": msg,
                "lastTransitionTime": now, "observedGeneration": generation}),
            );
        }
        hr["status"]["conditions"] = json!(conditions);
        hr["status"]["history"] = json!(history);
        hr["status"]["observedGeneration"] = json!(generation);
        hr["status"]["lastAttemptedGeneration"] = json!(generation);
        let needle = format!("HelmRelease/{ns}/{name}");
        for k in f
            .objects
            .iter_mut()
            .filter(|o| o["kind"] == "Kustomization")
        {
            let failing_on_it = condition(k, "Ready").is_some_and(|c| {
                c["status"] == "False" && c["message"].as_str().is_some_and(|m| m.contains(&needle))
            });
            if failing_on_it {
                let g = k["metadata"]["generation"].as_i64().unwrap_or(1);
                k["status"]["conditions"] = json!([
                    {"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded", "message": "Applied revision: main@sha1:1f0c9e2", "lastTransitionTime": now, "observedGeneration": g},
                    {"type": "Healthy", "status": "True", "reason": "Succeeded", "message": "Health check passed", "lastTransitionTime": now, "observedGeneration": g}]);
            }
        }
    }
}

/// A created object as the API server completes it: uid, creation time,
/// generation, resourceVersion.
pub fn created(
    mut obj: Value,
    api_version: &str,
    kind: &str,
    namespace: &str,
    serial: u64,
) -> Value {
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(kind);
    obj["metadata"]["namespace"] = json!(namespace);
    obj["metadata"]["uid"] = json!(format!("00000000-fake-4000-8000-{serial:012}"));
    obj["metadata"]["creationTimestamp"] = json!(now_rfc3339());
    obj["metadata"]["generation"] = json!(1);
    obj["metadata"]["resourceVersion"] = json!(format!("{}", 5000 + serial));
    obj
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_follows_rfc7386() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut t, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(t, json!({"a": "z", "c": {"d": "e"}}));
        let mut t = json!({"a": [1, 2]});
        merge_patch(&mut t, &json!({"a": [3]}));
        assert_eq!(t, json!({"a": [3]}));
    }
}
