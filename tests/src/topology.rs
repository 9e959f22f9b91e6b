//! The three-namespace lab every agent test uses:
//!
//! ```text
//!   c (client)  c0 ── r0  r (router: the agent's node)  r1 ── s0  s (server)
//!   10.201.1.2/24      10.201.1.1/24          10.201.2.1/24     10.201.2.2/24
//!   fd00:201:1::2/64   fd00:201:1::1/64    fd00:201:2::1/64     fd00:201:2::2/64
//! ```
//!
//! r forwards between c and s, DNATs 10.201.1.1:8080 to s:80, masquerades
//! towards s, has a custom route table (100), policy rules, a permanent
//! neighbour and iptables rules in filter and nat with custom chains and
//! comments. s runs an HTTP server on :80 and a DNS server on :53. Links,
//! addresses, routes, rules and neighbours are made over rtnetlink
//! ([`crate::rtnl`]); the tests compare the agent with `ip -j`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::netns::Netns;
use crate::rtnl::{self, Route, Rule, veth};
use crate::servers;

/// The lab's namespaces.
pub struct Lab {
    /// Client.
    pub c: Netns,
    /// Router, where the agent runs.
    pub r: Netns,
    /// Server.
    pub s: Netns,
}

/// Name the DNS server in s answers for.
pub const DNS_NAME: &str = "svc.lab.test";
/// s's address.
pub const S_ADDR: &str = "10.201.2.2";
/// r's address towards c.
pub const R_ADDR: &str = "10.201.1.1";

impl Lab {
    /// Builds the topology, rules and servers (no traffic yet).
    pub fn build() -> anyhow::Result<Self> {
        let lab = Lab {
            c: Netns::new("lsc")?,
            r: Netns::new("lsr")?,
            s: Netns::new("lss")?,
        };
        let (c, r, s) = (&lab.c, &lab.r, &lab.s);
        veth(c, "c0", r, "r0")?;
        veth(r, "r1", s, "s0")?;
        for (ns, dev, v4, v6) in [
            (c, "c0", "10.201.1.2", "fd00:201:1::2"),
            (r, "r0", "10.201.1.1", "fd00:201:1::1"),
            (r, "r1", "10.201.2.1", "fd00:201:2::1"),
            (s, "s0", "10.201.2.2", "fd00:201:2::2"),
        ] {
            rtnl::address(ns, dev, v4.parse()?, 24)?;
            rtnl::address(ns, dev, v6.parse()?, 64)?;
        }
        for (ns, gw) in [
            (c, "10.201.1.1"),
            (c, "fd00:201:1::1"),
            (s, "10.201.2.1"),
            (s, "fd00:201:2::1"),
        ] {
            rtnl::route(
                ns,
                Route {
                    via: Some(gw.parse()?),
                    ..Route::default()
                },
            )?;
        }
        r.run(&["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        r.run(&["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"])?;

        rtnl::route(
            r,
            Route {
                to: Some(("10.99.0.0".parse()?, 24)),
                via: Some("10.201.2.2".parse()?),
                dev: Some("r1".into()),
                table: Some(100),
                ..Route::default()
            },
        )?;
        rtnl::route(
            r,
            Route {
                to: Some(("10.98.0.0".parse()?, 24)),
                via: Some("10.201.2.2".parse()?),
                metric: Some(50),
                static_proto: true,
                ..Route::default()
            },
        )?;
        rtnl::route(
            r,
            Route {
                to: Some(("10.97.0.0".parse()?, 24)),
                blackhole: true,
                ..Route::default()
            },
        )?;
        rtnl::route(
            r,
            Route {
                to: Some(("fd00:99::".parse()?, 64)),
                via: Some("fd00:201:2::2".parse()?),
                table: Some(100),
                ..Route::default()
            },
        )?;
        rtnl::rule(
            r,
            Rule {
                from: None,
                fwmark: Some((0x10, 0xff)),
                v6: false,
                table: 100,
                priority: 1000,
            },
        )?;
        rtnl::rule(
            r,
            Rule {
                from: Some(("10.201.1.0".parse()?, 24)),
                fwmark: None,
                v6: false,
                table: 100,
                priority: 1001,
            },
        )?;
        rtnl::rule(
            r,
            Rule {
                from: Some(("fd00:201:1::".parse()?, 64)),
                fwmark: None,
                v6: true,
                table: 100,
                priority: 1002,
            },
        )?;
        rtnl::neighbour(r, "r1", "10.201.2.99".parse()?, [2, 0, 0, 0, 2, 0x99])?;

        let ipt = |ns: &Netns, tool: &str, args: &str| -> anyhow::Result<()> {
            let mut argv = vec![tool];
            argv.extend(split_args(args));
            ns.run(&argv).map(|_| ())
        };
        ipt(
            r,
            "iptables",
            "-t nat -A PREROUTING -d 10.201.1.1/32 -p tcp --dport 8080 -m comment --comment \"labscope test: dnat to s\" -j DNAT --to-destination 10.201.2.2:80",
        )?;
        ipt(r, "iptables", "-t nat -N LABSCOPE-POST")?;
        ipt(r, "iptables", "-t nat -A POSTROUTING -j LABSCOPE-POST")?;
        ipt(
            r,
            "iptables",
            "-t nat -A LABSCOPE-POST -o r1 -m comment --comment \"masquerade to s\" -j MASQUERADE",
        )?;
        ipt(r, "iptables", "-N LABSCOPE-FWD")?;
        ipt(r, "iptables", "-A FORWARD -j LABSCOPE-FWD")?;
        ipt(
            r,
            "iptables",
            "-A LABSCOPE-FWD -p tcp --dport 80 -m comment --comment \"allow web\" -j ACCEPT",
        )?;
        ipt(r, "iptables", "-A LABSCOPE-FWD -p icmp -j ACCEPT")?;
        ipt(r, "iptables", "-A INPUT -p tcp --dport 9999 -j DROP")?;
        ipt(
            r,
            "ip6tables",
            "-A INPUT -p tcp --dport 9999 -m comment --comment \"v6 drop\" -j DROP",
        )?;
        ipt(s, "iptables", "-A INPUT -p tcp --dport 82 -j DROP")?;

        let http_addr = SocketAddr::new(S_ADDR.parse()?, 80);
        s.spawn(move || servers::http(http_addr, 200, "hello from s\n"))?;
        let redirect_addr = SocketAddr::new(S_ADDR.parse()?, 8081);
        s.spawn(move || servers::http(redirect_addr, 302, ""))?;
        let dns_addr = SocketAddr::new(S_ADDR.parse()?, 53);
        s.spawn(move || {
            servers::dns(dns_addr, DNS_NAME, IpAddr::V4(Ipv4Addr::new(10, 201, 2, 2)))
        })?;
        // Wait until both servers answer.
        for _ in 0..100 {
            if s.output(&["bash", "-c", "exec 3<>/dev/tcp/10.201.2.2/80"])?
                .status
                .success()
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(lab)
    }

    /// Sends traffic from c so that r's conntrack has ICMP, TCP (through the
    /// DNAT and masquerade) and UDP entries. Uses the kernel's ping where
    /// present and a real TCP exchange from inside c.
    pub fn traffic(&self) -> anyhow::Result<()> {
        self.c
            .run(&["ping", "-c", "2", "-i", "0.2", "-W", "1", R_ADDR])?;
        self.c.run(&["ping", "-c", "1", "-W", "1", S_ADDR])?;
        self.c.block_on(|| async {
            let mut stream = tokio::net::TcpStream::connect("10.201.1.1:8080").await?;
            stream
                .write_all(b"GET / HTTP/1.1\r\nHost: s\r\n\r\n")
                .await?;
            let mut body = Vec::new();
            tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut body)).await??;
            anyhow::ensure!(
                body.starts_with(b"HTTP/1.1 200"),
                "DNAT path did not reach s"
            );
            let udp = tokio::net::UdpSocket::bind("10.201.1.2:0").await?;
            udp.send_to(b"x", "10.201.2.2:5353").await?;
            Ok(())
        })
    }
}

/// Splits a command line with double-quoted arguments (test-only helper; no shell).
pub fn split_args(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        if let Some(stripped) = rest.strip_prefix('"') {
            let end = stripped.find('"').unwrap_or(stripped.len());
            out.push(&stripped[..end]);
            rest = stripped.get(end + 1..).unwrap_or("").trim_start();
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            out.push(&rest[..end]);
            rest = rest[end..].trim_start();
        }
    }
    out
}
