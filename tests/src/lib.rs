//! Shared harness for labscope's end-to-end tests: network namespaces joined
//! by veth pairs, the real `labscope-agent` binary started inside one, a gRPC
//! client that enters the namespace, and small servers (HTTP, DNS) to probe.
//!
//! Everything here needs root. Tests call [`require_root`] first; without
//! root they print why they skip and pass, and CI (which runs as root) runs
//! them for real.

pub mod admission;
pub mod bench;
pub mod fake_controllers;
pub mod fake_kube;
pub mod fake_media;
pub mod fake_pihole;
pub mod homelab;
pub mod mcp;
pub mod netns;
pub mod pki;
pub mod reads;
pub mod rtnl;
pub mod servers;
pub mod topology;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use labscope_proto::v1::node_agent_client::NodeAgentClient;
use tonic::transport::Channel;

pub use netns::Netns;

/// True when running as root. Otherwise prints why the calling test skips
/// — or fails it, when `LABSCOPE_REQUIRE_ROOT=1` (scripts/test sets it when
/// run as root, so that a root-only test never passes without running).
pub fn require_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var_os("LABSCOPE_REQUIRE_ROOT").is_some_and(|v| v == "1") {
        panic!("{test} needs root and LABSCOPE_REQUIRE_ROOT=1 says it must run");
    }
    eprintln!("SKIP {test}: needs root to create network namespaces (CI runs these tests as root)");
    false
}

/// True when `tool` is installed; otherwise says why the calling test fails.
pub fn require_tool(tool: &str) -> anyhow::Result<()> {
    let found = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .any(|d| PathBuf::from(d).join(tool).is_file());
    anyhow::ensure!(
        found,
        "{tool} is not installed; `scripts/test` installs it when run as root"
    );
    Ok(())
}

/// Path of a workspace binary built next to the test executable.
pub fn workspace_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // Tests run from target/<profile>/deps/, bench binaries from target/<profile>/.
    let here = exe
        .parent()
        .ok_or_else(|| anyhow::anyhow!("odd executable path"))?;
    let candidates = [
        here.join(name),
        here.parent().map(|p| p.join(name)).unwrap_or_default(),
    ];
    let path = candidates.iter().find(|p| p.is_file()).cloned().ok_or_else(|| {
        anyhow::anyhow!(
            "{name} is missing next to {}: build the binaries first (`cargo build --workspace --bins`, done by scripts/test)",
            here.display()
        )
    })?;
    Ok(path)
}

/// A running agent process inside a namespace; killed on drop.
pub struct AgentProcess {
    child: Child,
    /// Namespace it runs in.
    pub netns: String,
    /// Address it listens on, as seen from inside that namespace.
    pub addr: String,
}

impl AgentProcess {
    /// Starts `labscope-agent --listen <listen>` inside `ns` and waits until
    /// it accepts connections. `wrap` is an optional argv prefix run inside the
    /// namespace before the agent (e.g. setpriv to drop privileges).
    pub fn start(ns: &Netns, listen: &str, node_name: &str, wrap: &[&str]) -> anyhow::Result<Self> {
        Self::start_args(
            ns,
            listen,
            &["--node-name", node_name, "--insecure-plaintext"],
            wrap,
        )
    }

    /// Like [`AgentProcess::start`] with the agent's arguments given in full
    /// (besides `--listen`).
    pub fn start_args(
        ns: &Netns,
        listen: &str,
        args: &[&str],
        wrap: &[&str],
    ) -> anyhow::Result<Self> {
        Self::start_bin(&workspace_binary("labscope-agent")?, ns, listen, args, wrap)
    }

    /// Like [`AgentProcess::start_args`] with another agent binary (a
    /// benchmark of the static build that ships, say).
    pub fn start_bin(
        bin: &std::path::Path,
        ns: &Netns,
        listen: &str,
        args: &[&str],
        wrap: &[&str],
    ) -> anyhow::Result<Self> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns.name]);
        cmd.args(wrap);
        cmd.arg(bin).args(["--listen", listen]).args(args);
        cmd.env("RUST_LOG", "labscope_agent=debug")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let child = cmd.spawn()?;
        let mut agent = AgentProcess {
            child,
            netns: ns.name.clone(),
            addr: listen.to_string(),
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = agent.child.try_wait()? {
                anyhow::bail!("agent in {} exited before listening: {status}", ns.name);
            }
            let ok = ns
                .run(&[
                    "bash",
                    "-c",
                    &format!("exec 3<>/dev/tcp/{}", listen.replace(':', "/")),
                ])
                .is_ok();
            if ok {
                return Ok(agent);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "agent in {} did not start listening on {listen}",
                ns.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Process id (of the `ip netns exec` wrapper, which execs the agent).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for exit; returns the exit status.
    pub fn terminate(mut self) -> anyhow::Result<std::process::ExitStatus> {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "agent did not exit within 10 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Connects a NodeAgent client to `addr` (must be called inside the agent's
/// namespace, i.e. within [`Netns::block_on`]).
pub async fn connect(addr: &str) -> anyhow::Result<NodeAgentClient<Channel>> {
    let channel = Channel::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(60))
        .connect()
        .await?;
    Ok(NodeAgentClient::new(channel).max_decoding_message_size(64 * 1024 * 1024))
}
