//! Serves the homelab fixture as a fake Kubernetes API on loopback and writes
//! a kubeconfig for it, so the cluster tools can be tried without a cluster:
//!
//! ```sh
//! cargo run -p labscope-tests --bin fake-kube -- --kubeconfig /tmp/homelab.kubeconfig --scenario jellyfin-crashloop
//! cargo run -p labscope -- --kubeconfig /tmp/homelab.kubeconfig --now 2026-08-20T06:07:00Z call get_cluster_health
//! ```
//!
//! Scenarios (repeatable): jellyfin-crashloop (3.g), certificates (3.h),
//! eso-absent / eso-store-down (3.c), connector-down (3.f). The fixture has
//! no agent pods, so node tools report "no agent" for every node.

use std::path::PathBuf;

use anyhow::{Context, bail};
use labscope_tests::fake_kube::{
    FakeKube, Fixture, certificates_scenario_3h, homelab_certificates, homelab_eso, homelab_nodes,
    homelab_tailscale, jellyfin_crashloop_pod, pihole_pods, running_pod,
};
use serde_json::json;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut kubeconfig = PathBuf::from("homelab.kubeconfig");
    let mut scenarios: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--kubeconfig" => kubeconfig = PathBuf::from(args.next().context("--kubeconfig FILE")?),
            "--scenario" => scenarios.push(args.next().context("--scenario NAME")?),
            "-h" | "--help" => {
                println!(
                    "fake-kube [--kubeconfig FILE (homelab.kubeconfig)] [--scenario NAME]...\n\
                     scenarios: jellyfin-crashloop, certificates, eso-absent, eso-store-down, connector-down\n\
                     use with: labscope --kubeconfig FILE --now 2026-08-20T06:07:00Z call get_cluster_health"
                );
                return Ok(());
            }
            other => bail!("unknown argument {other:?} (see --help)"),
        }
    }
    let has = |s: &str| scenarios.iter().any(|x| x == s);
    for s in &scenarios {
        if ![
            "jellyfin-crashloop",
            "certificates",
            "eso-absent",
            "eso-store-down",
            "connector-down",
        ]
        .contains(&s.as_str())
        {
            bail!("unknown scenario {s:?} (see --help)");
        }
    }
    let (ts_objects, ts_pods) = homelab_tailscale(has("connector-down"));
    let mut objects = ts_objects;
    objects.extend(homelab_certificates());
    if has("certificates") {
        objects = certificates_scenario_3h(objects);
    }
    let mut groups = vec![
        ("cert-manager.io".to_string(), vec!["v1".to_string()]),
        ("acme.cert-manager.io".to_string(), vec!["v1".to_string()]),
        ("tailscale.com".to_string(), vec!["v1alpha1".to_string()]),
    ];
    if !has("eso-absent") {
        groups.push(("external-secrets.io".to_string(), vec!["v1".to_string()]));
        let mut eso = homelab_eso("v1");
        if has("eso-store-down") {
            for (i, o) in eso.iter_mut().enumerate() {
                if o["kind"] == "ClusterSecretStore" {
                    o["status"]["conditions"] = json!([{"type": "Ready", "status": "False", "reason": "InvalidProviderConfig", "message": "wasm error: out of bounds memory access"}]);
                } else if i <= 53 {
                    o["status"]["conditions"] = json!([{"type": "Ready", "status": "False", "reason": "SecretSyncedError", "message": "ClusterSecretStore \"onepassword\" is not ready"}]);
                }
            }
        }
        objects.extend(eso);
    }
    let mut pods = pihole_pods();
    pods.extend(ts_pods);
    pods.push(if has("jellyfin-crashloop") {
        jellyfin_crashloop_pod()
    } else {
        running_pod("jellyfin", "jellyfin-7c9d6f5b8-x4k2p", "jellyfin", "pi-k3s")
    });
    let fake = FakeKube::start(Fixture {
        nodes: homelab_nodes(),
        pods,
        groups,
        objects,
        ..Default::default()
    })
    .await?;
    let dir = kubeconfig
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let written = fake.write_kubeconfig(&dir)?;
    if written != kubeconfig {
        std::fs::rename(&written, &kubeconfig)?;
    }
    println!(
        "fake Kubernetes API for the homelab fixture at {} (scenarios: {})",
        fake.url,
        if scenarios.is_empty() {
            "none".into()
        } else {
            scenarios.join(", ")
        }
    );
    println!("kubeconfig: {}", kubeconfig.display());
    println!(
        "try: labscope --kubeconfig {} --now 2026-08-20T06:07:00Z call get_cluster_health",
        kubeconfig.display()
    );
    println!("Ctrl-C to stop.");
    tokio::signal::ctrl_c().await?;
    Ok(())
}
