//! TLS end to end: the HTTPS probe against servers with a private CA, an
//! expired and a wrongly named certificate; and the agent's own mTLS
//! (--tls-cert/--tls-key/--client-ca) with and without a client certificate.
//! Needs root; skips with a message otherwise.

use std::net::SocketAddr;

use labscope_proto::v1 as pb;
use labscope_proto::v1::node_agent_client::NodeAgentClient;
use labscope_tests::pki::TestCa;
use labscope_tests::topology::{Lab, S_ADDR};
use labscope_tests::{AgentProcess, connect, require_root, servers, workspace_binary};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

#[test]
fn https_probe_verifies_and_describes_certificates() -> anyhow::Result<()> {
    if !require_root("https_probe_verifies_and_describes_certificates") {
        return Ok(());
    }
    let lab = Lab::build()?;
    let ca = TestCa::new("labscope test CA")?;
    let good = ca.leaf(&["svc.lab.test", S_ADDR], (2030, 1, 1))?;
    let expired = ca.leaf(&["svc.lab.test", S_ADDR], (2020, 1, 1))?;
    let good_addr: SocketAddr = format!("{S_ADDR}:8443").parse()?;
    let expired_addr: SocketAddr = format!("{S_ADDR}:8444").parse()?;
    lab.s
        .spawn(move || servers::https(good_addr, good.cert_pem, good.key_pem, "secure hello"))?;
    lab.s
        .spawn(move || servers::https(expired_addr, expired.cert_pem, expired.key_pem, "stale"))?;
    let _agent = AgentProcess::start(&lab.r, "127.0.0.1:9447", "lab-r", &[])?;
    let ca_pem = ca.pem();
    let (default, trusted, insecure, wrong_name, stale) = lab.r.block_on(move || async move {
        let mut c = connect("127.0.0.1:9447").await?;
        let probe = |url: &str| pb::HttpProbeRequest {
            url: url.into(),
            timeout_ms: 5000,
            ..Default::default()
        };
        let default = c
            .http_probe(probe("https://10.201.2.2:8443/"))
            .await?
            .into_inner();
        let trusted = c
            .http_probe(pb::HttpProbeRequest {
                ca_pem: ca_pem.clone(),
                ..probe("https://10.201.2.2:8443/")
            })
            .await?
            .into_inner();
        let insecure = c
            .http_probe(pb::HttpProbeRequest {
                insecure_skip_verify: true,
                ..probe("https://10.201.2.2:8443/")
            })
            .await?
            .into_inner();
        let wrong_name = c
            .http_probe(pb::HttpProbeRequest {
                ca_pem: ca_pem.clone(),
                connect_to: "10.201.2.2".into(),
                ..probe("https://other.lab.test:8443/")
            })
            .await?
            .into_inner();
        let stale = c
            .http_probe(pb::HttpProbeRequest {
                ca_pem,
                ..probe("https://10.201.2.2:8444/")
            })
            .await?
            .into_inner();
        Ok((default, trusted, insecure, wrong_name, stale))
    })?;

    // Verification is on by default: a private CA is an error, named, with the certificate described.
    assert_eq!(
        default.outcome,
        pb::HttpProbeOutcome::TlsError as i32,
        "{default:?}"
    );
    assert!(
        default.error.to_lowercase().contains("issuer"),
        "{}",
        default.error
    );
    let cert = default
        .certificate
        .as_ref()
        .expect("certificate facts even when verification fails");
    assert!(cert.subject.contains("svc.lab.test"), "{}", cert.subject);
    assert!(cert.issuer.contains("labscope test CA"), "{}", cert.issuer);
    assert_eq!(cert.not_after, "2030-01-01T00:00:00Z");
    assert!(cert.days_left > 0);
    assert!(cert.dns_names.contains(&"svc.lab.test".to_string()));

    assert_eq!(
        trusted.outcome,
        pb::HttpProbeOutcome::Ok as i32,
        "{}",
        trusted.error
    );
    assert_eq!(
        (trusted.status, trusted.body_bytes),
        (200, "secure hello".len() as u64)
    );
    assert!(trusted.tls_verified);
    assert!(
        trusted.tls_version.starts_with("TLSv1_"),
        "{}",
        trusted.tls_version
    );
    let t = trusted.timing.unwrap();
    assert!(
        t.tls_us > 0 && t.first_byte_us >= t.connect_us + t.tls_us,
        "{t:?}"
    );

    assert_eq!(
        insecure.outcome,
        pb::HttpProbeOutcome::Ok as i32,
        "{}",
        insecure.error
    );
    assert!(
        !insecure.tls_verified,
        "skipped verification is reported as such"
    );

    assert_eq!(wrong_name.outcome, pb::HttpProbeOutcome::TlsError as i32);
    assert!(
        wrong_name.error.contains("NotValidForName") || wrong_name.error.contains("not valid for"),
        "{}",
        wrong_name.error
    );
    assert_eq!(wrong_name.remote_address, "10.201.2.2:8443");

    assert_eq!(stale.outcome, pb::HttpProbeOutcome::TlsError as i32);
    assert!(
        stale.error.to_lowercase().contains("expired"),
        "{}",
        stale.error
    );
    assert!(stale.certificate.unwrap().days_left < 0);
    Ok(())
}

#[test]
fn agent_mtls_requires_a_client_certificate() -> anyhow::Result<()> {
    if !require_root("agent_mtls_requires_a_client_certificate") {
        return Ok(());
    }
    let lab = Lab::build()?;
    let ca = TestCa::new("labscope agents CA")?;
    let server = ca.leaf(&["lab-r", "10.201.1.1"], (2030, 1, 1))?;
    let client = ca.leaf(&["labscope-aggregator"], (2030, 1, 1))?;
    let dir = tempfile::tempdir()?;
    let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    std::fs::write(path("tls.crt"), &server.cert_pem)?;
    std::fs::write(path("tls.key"), &server.key_pem)?;
    std::fs::write(path("ca.crt"), ca.pem())?;

    // Plaintext on a non-loopback address is refused unless asked for.
    let bin = workspace_binary("labscope-agent")?;
    let refused = lab.r.output(&[
        bin.to_str().unwrap_or_default(),
        "--listen",
        "10.201.1.1:9444",
    ])?;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("refusing to serve plaintext"));

    let args = [
        "--node-name",
        "lab-r",
        "--tls-cert",
        &path("tls.crt"),
        "--tls-key",
        &path("tls.key"),
        "--client-ca",
        &path("ca.crt"),
        "--health-listen",
        "10.201.1.1:9448",
    ];
    let _agent = AgentProcess::start_args(&lab.r, "10.201.1.1:9443", &args, &[])?;
    // start_args waits for the main listener; the health listener is bound
    // just after it, so wait for that one too (up to 5 s).
    lab.c.block_on(|| async {
        for _ in 0..100 {
            if tokio::net::TcpStream::connect("10.201.1.1:9448")
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        anyhow::Ok(())
    })?;
    // The kubelet's gRPC probe has no client certificate: the plaintext
    // health listener answers it, and serves nothing else.
    let (probe, other) = lab.c.block_on(|| async {
        let channel = Channel::from_static("http://10.201.1.1:9448")
            .connect()
            .await?;
        let probe = tonic_health::pb::health_client::HealthClient::new(channel.clone())
            .check(tonic_health::pb::HealthCheckRequest {
                service: "labscope.node.v1.NodeAgent".into(),
            })
            .await?
            .into_inner()
            .status;
        let other = NodeAgentClient::new(channel)
            .get_node_info(pb::GetNodeInfoRequest {})
            .await;
        Ok((probe, other))
    })?;
    assert_eq!(
        probe,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    assert_eq!(
        other.expect_err("only health on the plaintext port").code(),
        tonic::Code::Unimplemented
    );
    let ca_pem = ca.pem();
    // Right CA, wrong identity: a workload's certificate from a shared issuer.
    let workload = ca.leaf(&["some-workload.default.svc"], (2030, 1, 1))?;
    // Right name, another CA.
    let stranger =
        TestCa::new("someone else's CA")?.leaf(&["labscope-aggregator"], (2030, 1, 1))?;
    let ca_pem2 = ca_pem.clone();
    let others = lab.c.block_on(move || async move {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&ca_pem2))
            .domain_name("lab-r");
        let mut out = Vec::new();
        for leaf in [workload, stranger] {
            let r = async {
                let channel = Channel::from_static("https://10.201.1.1:9443")
                    .tls_config(
                        tls.clone()
                            .identity(Identity::from_pem(&leaf.cert_pem, &leaf.key_pem)),
                    )?
                    .connect()
                    .await?;
                Ok::<_, anyhow::Error>(
                    NodeAgentClient::new(channel)
                        .get_node_info(pb::GetNodeInfoRequest {})
                        .await,
                )
            }
            .await;
            out.push(r);
        }
        Ok(out)
    })?;
    match &others[0] {
        Ok(Err(status)) => {
            assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
            assert!(
                status.message().contains("some-workload.default.svc")
                    && status.message().contains("--client-identity"),
                "{}",
                status.message()
            );
        }
        other => panic!("a right-CA certificate of another identity must be refused: {other:?}"),
    }
    assert!(
        !matches!(&others[1], Ok(Ok(_))),
        "a certificate from another CA must be refused: {:?}",
        others[1]
    );
    let (with_cert, without_cert) = lab.c.block_on(move || async move {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&ca_pem))
            .domain_name("lab-r");
        let channel = Channel::from_static("https://10.201.1.1:9443")
            .tls_config(
                tls.clone()
                    .identity(Identity::from_pem(&client.cert_pem, &client.key_pem)),
            )?
            .connect()
            .await?;
        let info = NodeAgentClient::new(channel)
            .get_node_info(pb::GetNodeInfoRequest {})
            .await?
            .into_inner();
        let anonymous = async {
            let channel = Channel::from_static("https://10.201.1.1:9443")
                .tls_config(tls)?
                .connect()
                .await?;
            NodeAgentClient::new(channel)
                .get_node_info(pb::GetNodeInfoRequest {})
                .await?;
            anyhow::Ok(())
        }
        .await;
        Ok((info, anonymous))
    })?;
    assert_eq!(with_cert.node_name, "lab-r");
    assert!(
        without_cert.is_err(),
        "a client without a certificate must be refused"
    );

    // cert-manager renews: new files appear under the same paths (renamed
    // into place, as a Secret volume swaps them). The running agent serves
    // the new certificate — the only one naming "lab-r-renewed" — on the
    // next connection, without a restart.
    let renewed = ca.leaf(&["lab-r", "lab-r-renewed", "10.201.1.1"], (2031, 1, 1))?;
    for (name, pem) in [
        ("tls.key", &renewed.key_pem),
        ("tls.crt", &renewed.cert_pem),
    ] {
        std::fs::write(path(&format!("{name}.new")), pem)?;
        std::fs::rename(path(&format!("{name}.new")), path(name))?;
    }
    let client = ca.leaf(&["labscope-aggregator"], (2030, 1, 1))?;
    let ca_pem = ca.pem();
    let after_renewal = lab.c.block_on(move || async move {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&ca_pem))
            .domain_name("lab-r-renewed")
            .identity(Identity::from_pem(&client.cert_pem, &client.key_pem));
        let channel = Channel::from_static("https://10.201.1.1:9443")
            .tls_config(tls)?
            .connect()
            .await?;
        Ok(NodeAgentClient::new(channel)
            .get_node_info(pb::GetNodeInfoRequest {})
            .await?
            .into_inner())
    })?;
    assert_eq!(
        after_renewal.node_name, "lab-r",
        "served with the renewed certificate"
    );
    Ok(())
}
