//! Network namespaces made with `ip netns`, removed on drop, and a way to run
//! async code (a gRPC client, a test server) inside one.

use std::os::fd::AsFd;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, bail};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// An address that [`Netns::add_silent_address`] makes on-link and silent.
pub const SILENT_ADDR: &str = "10.98.0.2";

/// A named network namespace; deleted (with its veth ends) on drop.
#[derive(Debug)]
pub struct Netns {
    /// Name under /run/netns.
    pub name: String,
}

impl Netns {
    /// Creates a namespace named `<prefix>-<pid>-<n>` with loopback up.
    pub fn new(prefix: &str) -> anyhow::Result<Self> {
        let name = format!(
            "{prefix}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        ip(&["netns", "add", &name])?;
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Makes [`SILENT_ADDR`] an on-link address that never answers: a veth
    /// pair whose far end has no address, and a permanent neighbour entry so
    /// that packets do leave (no resolution failure cuts a wait short).
    /// Probes to it run to their timeouts.
    pub fn add_silent_address(&self) -> anyhow::Result<()> {
        let path = format!("/run/netns/{}", self.name);
        self.block_on(move || async move {
            let _ = &path;
            let (connection, h, _) = rtnetlink::new_connection()?;
            tokio::spawn(connection);
            h.link()
                .add(rtnetlink::LinkVeth::new("v0", "v1").build())
                .execute()
                .await?;
            anyhow::Ok(())
        })?;
        for dev in ["v0", "v1"] {
            let d = dev.to_string();
            self.block_on(move || async move {
                let (connection, h, _) = rtnetlink::new_connection()?;
                tokio::spawn(connection);
                use futures::TryStreamExt;
                let link = h
                    .link()
                    .get()
                    .match_name(d.clone())
                    .execute()
                    .try_next()
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("no link {d}"))?;
                h.link()
                    .set(
                        rtnetlink::LinkUnspec::new_with_index(link.header.index)
                            .up()
                            .build(),
                    )
                    .execute()
                    .await?;
                anyhow::Ok(())
            })?;
        }
        crate::rtnl::address(self, "v0", "10.98.0.1".parse()?, 24)?;
        crate::rtnl::neighbour(self, "v0", SILENT_ADDR.parse()?, [2, 0, 0, 0, 0, 2])?;
        Ok(())
    }

    /// Runs `ip -n NAME args…`.
    pub fn ip(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        ip(&full)
    }

    /// Runs a command inside the namespace; fails on a non-zero exit.
    pub fn run(&self, argv: &[&str]) -> anyhow::Result<String> {
        let out = self.output(argv)?;
        if !out.status.success() {
            bail!(
                "{argv:?} in {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs a command inside the namespace and returns its output whatever the exit.
    pub fn output(&self, argv: &[&str]) -> anyhow::Result<Output> {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(argv)
            .output()
            .with_context(|| format!("running {argv:?} in {}", self.name))
    }

    /// Runs `fut` on a fresh thread that has entered this namespace, with a
    /// current-thread runtime: every socket it opens lives in the namespace.
    pub fn block_on<T, F>(&self, make: impl FnOnce() -> F + Send + 'static) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: std::future::Future<Output = anyhow::Result<T>>,
    {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || -> anyhow::Result<T> {
            enter(&path)?;
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(make())
        })
        .join()
        .map_err(|_| anyhow::anyhow!("namespace thread panicked"))?
    }

    /// Starts `fut` on a background thread inside this namespace, for servers
    /// that live as long as the test. Returns once `fut` has started.
    pub fn spawn<F>(&self, make: impl FnOnce() -> F + Send + 'static) -> anyhow::Result<()>
    where
        F: std::future::Future<Output = ()>,
    {
        let path = format!("/run/netns/{}", self.name);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            if let Err(e) = enter(&path) {
                let _ = ready_tx.send(Err(e));
                return;
            }
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.into()));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            rt.block_on(make());
        });
        ready_rx.recv()?
    }
}

fn enter(path: &str) -> anyhow::Result<()> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {path}"))?;
    nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).context("setns")?;
    Ok(())
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// Runs `ip args…` in the current namespace.
pub fn ip(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip")?;
    if !out.status.success() {
        bail!(
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Joins `a` and `b` with a veth pair named `a_if`/`b_if`, both up.
pub fn veth(a: &Netns, a_if: &str, b: &Netns, b_if: &str) -> anyhow::Result<()> {
    crate::rtnl::veth(a, a_if, b, b_if)
}
