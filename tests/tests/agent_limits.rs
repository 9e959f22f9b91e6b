//! The real agent binary within its limits: past a cap a call waits, then
//! is refused with RESOURCE_EXHAUSTED naming the cap, while health checks
//! and other kinds of calls still answer; a ping that cannot fit its budget
//! is refused up front; the RPC deadline ends a call that would run longer.
//! Needs root (network namespaces); skips with a message otherwise.

use labscope_proto::v1 as pb;
use labscope_tests::netns::SILENT_ADDR;
use labscope_tests::{AgentProcess, Netns, connect, require_root};

fn silent_lab(prefix: &str) -> anyhow::Result<Netns> {
    let ns = Netns::new(prefix)?;
    ns.add_silent_address()?;
    Ok(ns)
}

fn slow_ping() -> pb::PingRequest {
    pb::PingRequest {
        target: SILENT_ADDR.into(),
        count: 2,
        interval_ms: 1000,
        timeout_ms: 1000,
    }
}

#[test]
fn a_busy_agent_refuses_past_its_cap_and_still_answers_health() -> anyhow::Result<()> {
    if !require_root("a_busy_agent_refuses_past_its_cap_and_still_answers_health") {
        return Ok(());
    }
    let ns = silent_lab("lslimit")?;
    let _agent = AgentProcess::start_args(
        &ns,
        "127.0.0.1:9447",
        &[
            "--node-name",
            "limits",
            "--insecure-plaintext",
            "--max-probes",
            "2",
            "--queue-wait-ms",
            "200",
        ],
        &[],
    )?;
    let (pings, health, info, budget) = ns.block_on(|| async {
        // Six pings that each take about two seconds, against a cap of two.
        let mut calls = Vec::new();
        for _ in 0..6 {
            calls.push(tokio::spawn(async {
                let mut client = connect("127.0.0.1:9447").await?;
                anyhow::Ok(client.ping(slow_ping()).await)
            }));
        }
        // While they run: the health service and another kind of call answer.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let channel = tonic::transport::Channel::from_static("http://127.0.0.1:9447")
            .connect()
            .await?;
        let health = tonic_health::pb::health_client::HealthClient::new(channel)
            .check(tonic_health::pb::HealthCheckRequest {
                service: "labscope.node.v1.NodeAgent".into(),
            })
            .await?
            .into_inner()
            .status;
        let info = connect("127.0.0.1:9447")
            .await?
            .get_node_info(pb::GetNodeInfoRequest {})
            .await?
            .into_inner();
        let mut pings = Vec::new();
        for c in calls {
            pings.push(c.await??);
        }
        let budget = connect("127.0.0.1:9447")
            .await?
            .ping(pb::PingRequest {
                target: SILENT_ADDR.into(),
                count: 20,
                interval_ms: 5000,
                timeout_ms: 1000,
            })
            .await;
        Ok((pings, health, info, budget))
    })?;
    assert_eq!(
        health,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    assert_eq!(info.node_name, "limits");
    let served: Vec<&pb::PingResult> = pings
        .iter()
        .filter_map(|p| p.as_ref().ok().map(|r| r.get_ref()))
        .collect();
    let refused: Vec<&tonic::Status> = pings.iter().filter_map(|p| p.as_ref().err()).collect();
    assert_eq!(served.len(), 2, "the cap admits two: {pings:?}");
    assert!(
        served.iter().all(|r| r.received == 0),
        "nothing answers on the silent link: {served:?}"
    );
    assert_eq!(refused.len(), 4, "{pings:?}");
    for status in refused {
        assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
        assert!(
            status.message().contains("--max-probes") && status.message().contains("2 probe"),
            "names the cap and how to raise it: {}",
            status.message()
        );
    }
    // 20 packets 5 s apart cannot fit the 30 s a ping may take.
    let err = budget.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().contains("count") && err.message().contains("30 s"),
        "{}",
        err.message()
    );
    Ok(())
}

#[test]
fn the_rpc_deadline_ends_a_call_that_would_run_longer() -> anyhow::Result<()> {
    if !require_root("the_rpc_deadline_ends_a_call_that_would_run_longer") {
        return Ok(());
    }
    let ns = silent_lab("lsdeadline")?;
    let _agent = AgentProcess::start_args(
        &ns,
        "127.0.0.1:9447",
        &[
            "--node-name",
            "deadline",
            "--insecure-plaintext",
            "--rpc-timeout-ms",
            "1000",
        ],
        &[],
    )?;
    let (connect_result, after) = ns.block_on(|| async {
        let mut client = connect("127.0.0.1:9447").await?;
        // The SYN goes out on the silent link and nothing answers: left alone
        // the probe would report a timeout after 5 s, as a result.
        let r = client
            .tcp_connect(pb::TcpConnectRequest {
                target: SILENT_ADDR.into(),
                port: 80,
                timeout_ms: 5000,
            })
            .await;
        let after = client.get_node_info(pb::GetNodeInfoRequest {}).await;
        Ok((r, after))
    })?;
    let err = connect_result.expect_err("the agent's 1 s deadline ends the call");
    assert!(
        matches!(
            err.code(),
            tonic::Code::Cancelled | tonic::Code::DeadlineExceeded
        ),
        "{err:?}"
    );
    assert!(after.is_ok(), "the agent answers after: {after:?}");
    Ok(())
}
