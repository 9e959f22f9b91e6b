//! Times the phases of one full iptables read in this network namespace, as
//! the agent does it for `GetFirewall` with no limit: the nf_tables rule
//! dump alone, the dump with the render (and the table's rules) built beside
//! it ([`read::read_backends_building`]: dump, render, assembly, index), the
//! answer of every rule of the table from those rules, and its protobuf
//! encoding; then the parts of the read: dump with the render beside it, the
//! text's assembly, the index; and, for comparison, the same answer built
//! from the text as a page is. BENCHMARKS.md quotes it ("Where the gRPC
//! answer's time goes"). Needs CAP_NET_ADMIN.
//!
//! `ip netns exec NS cargo run --release -p labscope-agent --example firewall_phases -- [TABLE (nat)] [RUNS (10)] [-6]`

use std::time::{Duration, Instant};

use labscope_agent::firewall::xt::ipset::KernelSets;
use labscope_agent::firewall::{self, iptables_nft, nft, parse, read};

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let ipv6 = args.iter().any(|a| a == "-6");
    let mut rest = args.iter().filter(|a| *a != "-6");
    let table = rest.next().cloned().unwrap_or_else(|| "nat".into());
    let runs: usize = rest.next().and_then(|s| s.parse().ok()).unwrap_or(10);
    let family = if ipv6 {
        nft::model::family::IPV6
    } else {
        nft::model::family::IPV4
    };
    println!(
        "| run | rule dump alone | read (dump + render + build, assemble, index) | answer | encode | rules | bytes | of the read: dump + render + build | assemble | index | answer from the text instead |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for run in 1..=runs {
        let t0 = Instant::now();
        let dumped = nft::Ruleset::read_streaming(family, || 0usize, |n, p| *n += p.len());
        let t1 = Instant::now();
        let (texts, built) = match (dumped, read::read_backends_building(ipv6, Some(&table))) {
            (Ok(_), Ok(t)) => t,
            (Err(e), _) => return eprintln!("nf_tables read failed: {e}"),
            (_, Err(e)) => return eprintln!("read failed: {e}"),
        };
        let t2 = Instant::now();
        let page = firewall::Page::ALL;
        let fw = match firewall::build_answer(ipv6, &table, "", &texts, page, built) {
            Ok(fw) => fw,
            Err(e) => return eprintln!("answer failed: {e}"),
        };
        let t3 = Instant::now();
        let mut buf = Vec::with_capacity(prost::Message::encoded_len(&fw));
        if let Err(e) = prost::Message::encode(&fw, &mut buf) {
            return eprintln!("encoding failed: {e}");
        }
        let t4 = Instant::now();
        drop(fw);
        let s0 = Instant::now();
        let from_text = firewall::build_from_texts(ipv6, &table, "", &texts, page);
        let s1 = Instant::now();
        drop((from_text, texts));
        // The read's parts.
        let sets = KernelSets::default();
        let p0 = Instant::now();
        let (rs, rendered) = match nft::Ruleset::read_streaming(
            family,
            || iptables_nft::Rendered::new(ipv6).building(&table),
            |r, p| r.add(p, &sets),
        ) {
            Ok(x) => x,
            Err(e) => return eprintln!("read failed: {e}"),
        };
        let p1 = Instant::now();
        let text = iptables_nft::assemble(&rs, rendered);
        let p2 = Instant::now();
        let index = parse::Index::build(&text.text);
        let p3 = Instant::now();
        drop((index, text, rs));
        println!(
            "| {run} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            ms(t1 - t0),
            ms(t2 - t1),
            ms(t3 - t2),
            ms(t4 - t3),
            fw_rules(&buf),
            buf.len(),
            ms(p1 - p0),
            ms(p2 - p1),
            ms(p3 - p2),
            ms(s1 - s0),
        );
    }
}

fn fw_rules(encoded: &[u8]) -> u32 {
    <labscope_proto::v1::Firewall as prost::Message>::decode(encoded)
        .map(|f| f.total_rules)
        .unwrap_or(0)
}
