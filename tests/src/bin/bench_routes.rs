//! The `rtnetlink` crate's route dump against the agent's own reader (one
//! socket, one dump of every family, the same netlink-packet-route decode),
//! on the same table in the same run: a
//! namespace with N routes spread over four tables, read whole by each
//! (dump, decode into netlink-packet-route messages, the agent's `Route`
//! values), alternating. Prints a Markdown table with medians and the ratio
//! (BENCHMARKS.md quotes it). Needs root.
//!
//! `cargo run --release -p labscope-tests --bin bench-routes -- [--routes N] [--runs N]`

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use anyhow::Context;
use futures::TryStreamExt;
use labscope_agent::networking;
use labscope_tests::Netns;
use labscope_tests::bench::{ms, percentile};
use netlink_packet_route::RouteNetlinkMessage;

fn main() -> anyhow::Result<()> {
    let mut routes = 20_000u32;
    let mut runs = 21usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--routes" => routes = args.next().context("--routes N")?.parse()?,
            "--runs" => runs = args.next().context("--runs N")?.parse()?,
            "-h" | "--help" => {
                println!("bench-routes [--routes N (20000)] [--runs N (21)]  (root)");
                return Ok(());
            }
            other => anyhow::bail!("unknown argument {other:?}"),
        }
    }
    anyhow::ensure!(
        nix::unistd::geteuid().is_root(),
        "bench-routes needs root (a network namespace)"
    );
    let ns = Netns::new("lsbrt")?;
    ns.add_silent_address()?;
    // One `ip -batch` process loads the table.
    let batch: String = (0..routes)
        .map(|i| {
            format!(
                "route add 10.{}.{}.{}/32 via 10.98.0.2 table {}\n",
                100 + (i >> 16),
                (i >> 8) & 0xff,
                i & 0xff,
                100 + i % 4
            )
        })
        .collect();
    let file = std::env::temp_dir().join(format!("labscope-bench-routes-{}", std::process::id()));
    std::fs::write(&file, batch)?;
    ns.ip(&["-batch", &file.display().to_string()])?;
    let _ = std::fs::remove_file(&file);
    let (agent, crate_, counts) = ns.block_on(move || async move {
        let (mut agent, mut crate_) = (Vec::new(), Vec::new());
        let mut counts = (0usize, 0usize);
        let (connection, handle, _) = rtnetlink::new_connection()?;
        tokio::spawn(connection);
        for run in 0..runs {
            for turn in 0..2 {
                if (turn == 0) == (run % 2 == 0) {
                    let t = Instant::now();
                    let n = hand_written_dump()?;
                    agent.push(t.elapsed());
                    counts.0 = n;
                } else {
                    let t = Instant::now();
                    let mut n = 0usize;
                    for request in [
                        rtnetlink::RouteMessageBuilder::<Ipv4Addr>::new().build(),
                        rtnetlink::RouteMessageBuilder::<Ipv6Addr>::new().build(),
                    ] {
                        let mut dump = handle.route().get(request).execute();
                        while let Some(m) = dump.try_next().await? {
                            if networking::routes::parse(RouteNetlinkMessage::NewRoute(m)).is_some()
                            {
                                n += 1;
                            }
                        }
                    }
                    crate_.push(t.elapsed());
                    counts.1 = n;
                }
            }
        }
        anyhow::Ok((agent, crate_, counts))
    })?;
    let (a, c) = (percentile(&agent, 0.5), percentile(&crate_, 0.5));
    println!("## Route dumps: the agent's reader against the rtnetlink crate\n");
    println!(
        "{routes} routes in four tables (and the namespace's own), {runs} runs each, alternating; medians.\n"
    );
    println!("| reader | routes | median | p90 | × the agent's |");
    println!("|---|---|---|---|---|");
    println!(
        "| the agent's reader (one RTM_GETROUTE dump of every family) | {} | {} | {} | 1.00 |",
        counts.0,
        ms(a),
        ms(percentile(&agent, 0.9))
    );
    println!(
        "| rtnetlink 0.24 (`route().get`, IPv4 then IPv6, the same decode) | {} | {} | {} | {:.2} |",
        counts.1,
        ms(c),
        ms(percentile(&crate_, 0.9)),
        c.as_secs_f64() / a.as_secs_f64().max(1e-9)
    );
    Ok(())
}

/// The agent's reader: one RTM_GETROUTE dump of every family on one socket
/// (agent/src/netlink), each message decoded by netlink-packet-route and
/// parsed by the agent's parser.
fn hand_written_dump() -> anyhow::Result<usize> {
    let request = labscope_agent::netlink::dump_request(26, 1, &[0u8; 12]);
    let mut n = 0usize;
    labscope_agent::netlink::dump(netlink_sys::protocols::NETLINK_ROUTE, &request, |raw| {
        if let Ok(m) = networking::decode(raw.bytes)
            && networking::routes::parse(m).is_some()
        {
            n += 1;
        }
        std::ops::ControlFlow::Continue(())
    })?;
    Ok(n)
}
