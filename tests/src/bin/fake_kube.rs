//! Serves the homelab fixture as a fake Kubernetes API on loopback and writes
//! a kubeconfig for it, so the cluster tools can be tried without a cluster:
//!
//! ```sh
//! cargo run -p labscope-tests --bin fake-kube -- --kubeconfig /tmp/homelab.kubeconfig --scenario jellyfin-crashloop
//! cargo run -p labscope -- --kubeconfig /tmp/homelab.kubeconfig --now 2026-08-20T06:07:00Z call get_cluster_health
//! ```
//!
//! Scenarios (repeatable) are HOMELAB.md's incident overlays; `--help`
//! lists them. The fixture has no agent pods, so node tools report "no agent"
//! for every node.

use std::path::PathBuf;

use anyhow::{Context, bail};
use labscope_tests::fake_kube::FakeKube;
use labscope_tests::homelab::{SCENARIOS, homelab};

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
                    "fake-kube [--kubeconfig FILE (homelab.kubeconfig)] [--scenario NAME]...\n\n\
                     Serves the homelab of HOMELAB.md as a fake Kubernetes API on 127.0.0.1 and writes a\n\
                     kubeconfig for it. Scenarios:"
                );
                for (name, what) in SCENARIOS {
                    println!("  {name:<26} {what}");
                }
                println!(
                    "\nuse with: labscope --kubeconfig FILE --now 2026-08-20T06:07:00Z call get_cluster_health"
                );
                return Ok(());
            }
            other => bail!("unknown argument {other:?} (see --help)"),
        }
    }
    let names: Vec<&str> = scenarios.iter().map(String::as_str).collect();
    let fake = FakeKube::start(homelab(&names)?).await?;
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
