//! Reading the agent and the standard tools the same way in every test: a
//! whole ListConntrack stream, and the rules of one table of an
//! `iptables-save -c` text.

use labscope_proto::v1 as pb;
use tokio_stream::StreamExt;

/// Every entry of one ListConntrack call, and the summary its last chunk
/// carries.
pub async fn list_all(
    client: &mut pb::node_agent_client::NodeAgentClient<tonic::transport::Channel>,
    req: pb::ListConntrackRequest,
) -> anyhow::Result<(Vec<pb::ConntrackEntry>, pb::ConntrackSummary)> {
    let mut stream = client.list_conntrack(req).await?.into_inner();
    let mut entries = Vec::new();
    let mut summary = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        entries.extend(chunk.entries);
        if chunk.summary.is_some() {
            summary = chunk.summary;
        }
    }
    Ok((
        entries,
        summary.ok_or_else(|| anyhow::anyhow!("stream ended without a summary"))?,
    ))
}

/// Rule texts and counters (packets, bytes) of `table` in `iptables-save -c`
/// output.
pub fn saved_rules(text: &str, table: &str) -> Vec<(String, u64, u64)> {
    let mut in_table = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(t) = line.strip_prefix('*') {
            in_table = t == table;
        } else if in_table && line.starts_with('[') {
            let end = line.find(']').unwrap();
            let (p, b) = line[1..end].split_once(':').unwrap();
            out.push((
                line[end + 1..].trim().to_string(),
                p.parse().unwrap(),
                b.parse().unwrap(),
            ));
        }
    }
    out
}
