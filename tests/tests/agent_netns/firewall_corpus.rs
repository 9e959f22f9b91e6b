//! The native firewall read against the save tools: rule sets shaped like
//! kube-proxy, flannel, kube-router (ipset policy chains), Tailscale's ts-*
//! chains, Docker's chains and user rules with every extension the decoder
//! knows, written with the `iptables` crate (quoted comments and LOG
//! prefixes through `iptables-restore`, which its argument splitter cannot
//! carry) into both backends, IPv4 and IPv6, tables raw, mangle, filter,
//! nat and security. Every rule's text must equal iptables-save's line and
//! its counters lie between two save runs taken around the read.
//!
//! Names, addresses, marks and ports are random per run; the seed is
//! printed and `LABSCOPE_SEED=N` repeats a run. The agent runs in a mount
//! namespace where every iptables, ip6tables, nft and ipset binary is a stub
//! that fails, so nothing it answers can come from a program.

use std::fmt::Write as _;

use labscope_proto::v1 as pb;
use labscope_tests::reads::saved_rules;
use labscope_tests::{AgentProcess, Netns, connect, require_root, require_tool};

const AGENT: &str = "127.0.0.1:9447";

/// A small deterministic generator (xorshift64*), seeded per run.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn seeded() -> Rng {
        let seed = std::env::var("LABSCOPE_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        eprintln!("firewall corpus: LABSCOPE_SEED={seed}");
        Rng(seed | 1)
    }
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub(crate) fn byte(&mut self) -> u8 {
        self.below(254) as u8 + 1
    }
    /// A port, never the agent's.
    pub(crate) fn port(&mut self) -> u16 {
        loop {
            let p = self.below(60000) as u16 + 1024;
            if p.abs_diff(9447) > 20 {
                return p;
            }
        }
    }
    /// A kube-proxy style hash suffix.
    pub(crate) fn hash(&mut self) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        (0..16)
            .map(|_| ALPHABET[self.below(32) as usize] as char)
            .collect()
    }
    pub(crate) fn mark(&mut self) -> u32 {
        1 << self.below(31)
    }
}

/// What to write into one namespace for one family.
#[derive(Default)]
struct Corpus {
    /// (table, chain) to create first.
    chains: Vec<(&'static str, String)>,
    /// (table, chain, rule arguments) for the iptables crate.
    rules: Vec<(&'static str, String, String)>,
    /// iptables-restore --noflush input: rules with quotes inside quotes.
    restore: String,
    /// ipsets to create: (name, type, family).
    sets: Vec<(String, &'static str)>,
}

impl Corpus {
    fn chain(&mut self, table: &'static str, name: &str) {
        self.chains.push((table, name.to_string()));
    }
    fn rule(&mut self, table: &'static str, chain: &str, args: impl Into<String>) {
        self.rules.push((table, chain.to_string(), args.into()));
    }
}

fn v4(rng: &mut Rng) -> Corpus {
    let mut c = Corpus::default();
    // The test talks to the agent over loopback, through these tables: its
    // TCP port first, then everything else.
    c.rule(
        "filter",
        "INPUT",
        "-i lo -p tcp -m tcp --dport 9447 -j ACCEPT",
    );
    c.rule(
        "filter",
        "INPUT",
        "-i lo -p tcp -m tcp --sport 9447 -j ACCEPT",
    );
    let net = rng.byte();
    let ip = |rng: &mut Rng| format!("10.{net}.{}.{}", rng.byte(), rng.byte());
    let masq = rng.mark();
    // kube-proxy (iptables mode).
    let svc = format!("KUBE-SVC-{}", rng.hash());
    let sep = format!("KUBE-SEP-{}", rng.hash());
    let sep2 = format!("KUBE-SEP-{}", rng.hash());
    for ch in [
        "KUBE-SERVICES",
        "KUBE-POSTROUTING",
        "KUBE-MARK-MASQ",
        "KUBE-NODEPORTS",
        svc.as_str(),
        sep.as_str(),
        sep2.as_str(),
    ] {
        c.chain("nat", ch);
    }
    let cluster_ip = format!("10.43.{}.{}", rng.byte(), rng.byte());
    let (pod1, pod2) = (ip(rng), ip(rng));
    let port = rng.port();
    c.rule(
        "nat",
        "PREROUTING",
        "-m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
    );
    c.rule(
        "nat",
        "OUTPUT",
        "-m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
    );
    c.rule(
        "nat",
        "POSTROUTING",
        "-m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING",
    );
    c.rule(
        "nat",
        "KUBE-MARK-MASQ",
        format!("-j MARK --or-mark {masq:#x}"),
    );
    c.rule(
        "nat",
        "KUBE-POSTROUTING",
        format!("-m mark ! --mark {masq:#x}/{masq:#x} -j RETURN"),
    );
    c.rule(
        "nat",
        "KUBE-POSTROUTING",
        format!("-j MARK --xor-mark {masq:#x}"),
    );
    c.rule("nat", "KUBE-POSTROUTING", "-m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully");
    c.rule("nat", "KUBE-SERVICES", format!("-d {cluster_ip}/32 -p tcp -m comment --comment \"default/web:http cluster IP\" -m tcp --dport {port} -j {svc}"));
    c.rule("nat", "KUBE-SERVICES", "-m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS");
    c.rule("nat", &svc, format!("! -s 10.{net}.0.0/16 -d {cluster_ip}/32 -p tcp -m comment --comment \"default/web:http cluster IP\" -m tcp --dport {port} -j KUBE-MARK-MASQ"));
    c.rule("nat", &svc, format!("-m comment --comment \"default/web:http -> {pod1}:8080\" -m statistic --mode random --probability 0.50000000000 -j {sep}"));
    c.rule(
        "nat",
        &svc,
        format!("-m comment --comment \"default/web:http -> {pod2}:8080\" -j {sep2}"),
    );
    for (s, pod) in [(&sep, &pod1), (&sep2, &pod2)] {
        c.rule(
            "nat",
            s,
            format!("-s {pod}/32 -m comment --comment default/web:http -j KUBE-MARK-MASQ"),
        );
        c.rule("nat", s, format!("-p tcp -m comment --comment default/web:http -m tcp -j DNAT --to-destination {pod}:8080"));
    }
    c.rule(
        "nat",
        "KUBE-NODEPORTS",
        format!(
            "-p tcp -m comment --comment \"default/web:http\" -m tcp --dport {} -j {svc}",
            30000 + rng.below(2767)
        ),
    );
    // flannel.
    c.chain("filter", "FLANNEL-FWD");
    c.chain("nat", "FLANNEL-POSTRTG");
    c.rule(
        "filter",
        "FORWARD",
        "-m comment --comment \"flanneld forward\" -j FLANNEL-FWD",
    );
    c.rule(
        "filter",
        "FLANNEL-FWD",
        format!("-s 10.{net}.0.0/16 -m comment --comment \"flanneld forward\" -j ACCEPT"),
    );
    c.rule(
        "filter",
        "FLANNEL-FWD",
        format!("-d 10.{net}.0.0/16 -m comment --comment \"flanneld forward\" -j ACCEPT"),
    );
    c.rule(
        "nat",
        "POSTROUTING",
        "-m comment --comment \"flanneld masq\" -j FLANNEL-POSTRTG",
    );
    c.rule(
        "nat",
        "FLANNEL-POSTRTG",
        format!(
            "-m mark --mark {masq:#x}/{masq:#x} -m comment --comment \"flanneld masq\" -j RETURN"
        ),
    );
    c.rule("nat", "FLANNEL-POSTRTG", format!("-s 10.{net}.0.0/16 ! -d 224.0.0.0/4 -m comment --comment \"flanneld masq\" -j MASQUERADE --random-fully"));
    // kube-router network policy chains over ipsets.
    let pod_set = format!("KUBE-DST-{}", rng.hash());
    let ns_set = format!("KUBE-SRC-{}", rng.hash());
    c.sets.push((pod_set.clone(), "hash:ip"));
    c.sets.push((ns_set.clone(), "hash:net"));
    let pol = format!("KUBE-NWPLCY-{}", rng.hash());
    let podfw = format!("KUBE-POD-FW-{}", rng.hash());
    for ch in [
        "KUBE-ROUTER-INPUT",
        "KUBE-ROUTER-FORWARD",
        pol.as_str(),
        podfw.as_str(),
    ] {
        c.chain("filter", ch);
    }
    let policy_mark = rng.mark();
    c.rule(
        "filter",
        "INPUT",
        "-m comment --comment \"kube-router netpol - 4IA2OSFRMVNDXBVV\" -j KUBE-ROUTER-INPUT",
    );
    c.rule(
        "filter",
        "FORWARD",
        "-m comment --comment \"kube-router netpol - TEMCG2JMHZYE7H7T\" -j KUBE-ROUTER-FORWARD",
    );
    c.rule(
        "filter",
        "KUBE-ROUTER-FORWARD",
        format!("-d {pod1}/32 -m comment --comment \"run through firewall chain\" -j {podfw}"),
    );
    c.rule("filter", &podfw, "-m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment \"rule for stateful firewall\" -j ACCEPT");
    c.rule(
        "filter",
        &podfw,
        format!("-m comment --comment \"run through nw policy\" -j {pol}"),
    );
    c.rule("filter", &pol, format!("-m set --match-set {ns_set} src -m set --match-set {pod_set} dst -p tcp -m tcp --dport 8080 -j MARK --set-xmark {policy_mark:#x}/{policy_mark:#x}"));
    c.rule(
        "filter",
        &pol,
        format!("-m set ! --match-set {ns_set} src,src -j RETURN"),
    );
    c.rule("filter", &podfw, format!("-m mark ! --mark {policy_mark:#x}/{policy_mark:#x} -m comment --comment \"rule to log dropped traffic\" -j NFLOG --nflog-group 100 --nflog-threshold 10"));
    c.rule("filter", &podfw, format!("-m mark ! --mark {policy_mark:#x}/{policy_mark:#x} -j REJECT --reject-with icmp-port-unreachable"));
    // Tailscale.
    for (t, ch) in [
        ("filter", "ts-input"),
        ("filter", "ts-forward"),
        ("nat", "ts-postrouting"),
    ] {
        c.chain(t, ch);
    }
    c.rule("filter", "INPUT", "-j ts-input");
    c.rule("filter", "FORWARD", "-j ts-forward");
    c.rule("nat", "POSTROUTING", "-j ts-postrouting");
    c.rule(
        "filter",
        "ts-input",
        format!(
            "-s 100.{}.{}.{}/32 -i lo -j ACCEPT",
            64 + rng.below(63),
            rng.byte(),
            rng.byte()
        ),
    );
    c.rule(
        "filter",
        "ts-input",
        "-s 100.115.92.0/23 ! -i tailscale0 -j RETURN",
    );
    c.rule(
        "filter",
        "ts-input",
        "-s 100.64.0.0/10 ! -i tailscale0 -j DROP",
    );
    c.rule(
        "filter",
        "ts-forward",
        "-i tailscale0 -j MARK --set-xmark 0x40000/0xff0000",
    );
    c.rule(
        "filter",
        "ts-forward",
        "-m mark --mark 0x40000/0xff0000 -j ACCEPT",
    );
    c.rule(
        "filter",
        "ts-forward",
        "-s 100.64.0.0/10 -o tailscale0 -j DROP",
    );
    c.rule("filter", "ts-forward", "-o tailscale0 -j ACCEPT");
    c.rule(
        "nat",
        "ts-postrouting",
        "-m mark --mark 0x40000/0xff0000 -j MASQUERADE",
    );
    // Docker.
    for ch in [
        "DOCKER",
        "DOCKER-USER",
        "DOCKER-ISOLATION-STAGE-1",
        "DOCKER-ISOLATION-STAGE-2",
    ] {
        c.chain("filter", ch);
    }
    c.chain("nat", "DOCKER");
    let bridge = format!("br-{:x}", rng.next() & 0xffff_ffff_ffff);
    c.rule("filter", "FORWARD", "-j DOCKER-USER");
    c.rule("filter", "FORWARD", "-j DOCKER-ISOLATION-STAGE-1");
    c.rule(
        "filter",
        "FORWARD",
        "-o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    );
    c.rule("filter", "FORWARD", "-o docker0 -j DOCKER");
    c.rule(
        "filter",
        "DOCKER-ISOLATION-STAGE-1",
        format!("-i {bridge} ! -o {bridge} -j DOCKER-ISOLATION-STAGE-2"),
    );
    c.rule("filter", "DOCKER-ISOLATION-STAGE-2", "-o docker0 -j DROP");
    c.rule("filter", "DOCKER-USER", "-j RETURN");
    c.rule(
        "nat",
        "PREROUTING",
        "-m addrtype --dst-type LOCAL -j DOCKER",
    );
    c.rule(
        "nat",
        "POSTROUTING",
        "-s 172.17.0.0/16 ! -o docker0 -j MASQUERADE",
    );
    c.rule(
        "nat",
        "DOCKER",
        format!(
            "! -i docker0 -p tcp -m tcp --dport {} -j DNAT --to-destination 172.17.0.2:80",
            rng.port()
        ),
    );
    // Every other extension, with negations.
    let (a, b) = (ip(rng), ip(rng));
    let p = rng.port();
    let mark = rng.mark();
    for r in [
        "-m conntrack ! --ctstate NEW --ctproto 6 --ctorigdstport 80:90 --ctdir ORIGINAL -j ACCEPT".to_string(),
        format!("-m conntrack --ctorigsrc {a}/24 --ctstatus ASSURED,CONFIRMED --ctexpire 10:20 -j ACCEPT"),
        "-m state --state NEW,INVALID -j DROP".into(),
        format!("-m mark --mark {mark:#x} -j ACCEPT"),
        format!("-m connmark ! --mark {mark:#x}/0xff -j ACCEPT"),
        format!("-p tcp -m multiport --dports 22,{p},8000:8080 -j ACCEPT"),
        "-p udp -m multiport ! --sports 1000:2000,53 -j ACCEPT".into(),
        format!("-p tcp --tcp-flags SYN,ACK SYN ! --dport {p} -j ACCEPT"),
        "-p tcp --syn --sport 1024:65535 -j ACCEPT".into(),
        "-p tcp ! --sport 0:1023 -j ACCEPT".into(),
        format!("-p tcp ! --sport 22 ! --dport {p} -j ACCEPT"),
        "-p tcp -m tcp --tcp-option 5 -j ACCEPT".into(),
        format!("-p udp --sport {p}:{} --dport 53 -j ACCEPT", p + 10),
        "-p icmp --icmp-type echo-request -j ACCEPT".into(),
        "-p icmp --icmp-type 3/4 -j ACCEPT".into(),
        "-p icmp ! --icmp-type any -j DROP".into(),
        "-m addrtype ! --src-type LOCAL,BROADCAST --limit-iface-in -j ACCEPT".into(),
        format!("-m statistic --mode nth --every {} --packet 1 -j ACCEPT", 2 + rng.below(9)),
        "-m statistic --mode random ! --probability 0.3 -j ACCEPT".into(),
        "-m limit --limit 5/sec --limit-burst 10 -j ACCEPT".into(),
        "-m limit --limit 7/min -j ACCEPT".into(),
        format!("-p tcp --dport 22 -m hashlimit --hashlimit-upto 3/min --hashlimit-burst 4 --hashlimit-mode srcip,dstport --hashlimit-name ssh{} -j ACCEPT", rng.below(100)),
        "-m hashlimit --hashlimit-above 100/sec --hashlimit-name lim2 --hashlimit-srcmask 24 -j DROP".into(),
        "-m hashlimit --hashlimit-upto 4kb/s --hashlimit-burst 400kb --hashlimit-mode dstip --hashlimit-name bytes -j ACCEPT".into(),
        "-m recent --set --name DEFAULT --rsource".into(),
        "-m recent ! --rcheck --seconds 60 --hitcount 4 --rttl --name SSH --rdest -j DROP".into(),
        "-m recent --update --seconds 30 --reap --name X --mask 255.255.255.0 -j DROP".into(),
        format!("-m iprange ! --src-range 10.{net}.1.1-10.{net}.2.1 --dst-range {a}-{b} -j ACCEPT"),
        "-m length --length 0:100 -j ACCEPT".into(),
        "-m length ! --length 1500 -j DROP".into(),
        "-m pkttype --pkt-type broadcast -j DROP".into(),
        "-m pkttype ! --pkt-type multicast -j ACCEPT".into(),
        "-m mac ! --mac-source 00:11:22:aa:bb:cc -j DROP".into(),
        format!("-s {a}/255.255.0.255 -f -j RETURN"),
        format!("! -f -d {b}/16 -j DROP"),
        "-p gre -j ACCEPT".into(),
        "! -p 47 -j ACCEPT".into(),
        "-p 253 -j ACCEPT".into(),
        "-j REJECT".into(),
        "-p tcp -j REJECT --reject-with tcp-reset".into(),
        "-j REJECT --reject-with icmp-admin-prohibited".into(),
        "-j NFLOG --nflog-group 0 --nflog-size 128 --nflog-threshold 2".into(),
        "-m helper --helper ftp -j ACCEPT".into(),
        "-m socket --transparent --nowildcard -j ACCEPT".into(),
        "-m dscp ! --dscp 0x10 -j ACCEPT".into(),
        "-m tos --tos 0x10/0x3f -j ACCEPT".into(),
        "-m connlimit --connlimit-above 10 --connlimit-mask 24 -j DROP".into(),
        "-m connbytes --connbytes 10:1000 --connbytes-mode bytes --connbytes-dir both -j ACCEPT".into(),
        "-m quota ! --quota 1000 -j ACCEPT".into(),
        "-p esp -m esp --espspi 5:10 -j ACCEPT".into(),
        "-m time --timestart 09:00 --timestop 17:00 --weekdays Mon,Fri -j ACCEPT".into(),
        "-m ttl --ttl-gt 10 -j ACCEPT".into(),
        "-j LOG --log-level 6 --log-tcp-options --log-uid".into(),
        String::new(),
    ] {
        c.rule("filter", "INPUT", r);
    }
    c.rule(
        "filter",
        "OUTPUT",
        "-m owner --uid-owner 0-10 --gid-owner 5 -j ACCEPT",
    );
    c.rule(
        "filter",
        "OUTPUT",
        "-m owner ! --uid-owner 1000 --socket-exists -j ACCEPT",
    );
    c.rule(
        "filter",
        "OUTPUT",
        "-p tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu",
    );
    c.rule(
        "filter",
        "OUTPUT",
        "-p tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 1400",
    );
    c.rule(
        "filter",
        "OUTPUT",
        format!(
            "-j NFQUEUE --queue-balance 0:{} --queue-bypass --queue-cpu-fanout",
            1 + rng.below(6)
        ),
    );
    c.rule(
        "filter",
        "FORWARD",
        "-m physdev --physdev-is-in --physdev-in veth+ -j ACCEPT",
    );
    c.rule(
        "filter",
        "FORWARD",
        "-m physdev ! --physdev-out br0 --physdev-is-bridged -j ACCEPT",
    );
    c.rule("filter", "FORWARD", "-g ts-forward");
    c.rule(
        "nat",
        "PREROUTING",
        format!("-p tcp --dport {p} -j REDIRECT --to-ports 8080"),
    );
    c.rule(
        "nat",
        "POSTROUTING",
        format!("-o eth0 -j SNAT --to-source {a} --random-fully"),
    );
    let x = rng.byte();
    c.rule("nat", "OUTPUT", format!("-d 192.0.2.0/24 -p tcp -j DNAT --to-destination 10.{net}.{x}.10-10.{net}.{x}.20:1000-2000 --random --persistent"));
    c.rule("mangle", "PREROUTING", "-j CONNMARK --restore-mark");
    c.rule(
        "mangle",
        "PREROUTING",
        format!("-j CONNMARK --set-xmark {mark:#x}/0xff"),
    );
    c.rule(
        "mangle",
        "POSTROUTING",
        "-j CONNMARK --save-mark --nfmask 0xff00 --ctmask 0xff",
    );
    c.rule(
        "mangle",
        "PREROUTING",
        format!("-j MARK --set-mark {mark:#x}"),
    );
    c.rule("mangle", "PREROUTING", "-j MARK --and-mark 0xf");
    c.rule("mangle", "FORWARD", "-j DSCP --set-dscp 0x10");
    c.rule("mangle", "FORWARD", "-j TOS --set-tos 0x10/0x3f");
    c.rule("mangle", "PREROUTING", format!("-d 192.0.2.0/24 -p tcp -j TPROXY --on-port {p} --on-ip {a} --tproxy-mark {mark:#x}/{mark:#x}"));
    c.rule("mangle", "POSTROUTING", "-j CHECKSUM --checksum-fill");
    c.rule("mangle", "POSTROUTING", "-j CLASSIFY --set-class 1:2");
    c.rule("raw", "PREROUTING", "-p udp --dport 53 -j CT --notrack");
    c.rule("raw", "PREROUTING", "-p udp --dport 54 -j NOTRACK");
    c.rule(
        "raw",
        "OUTPUT",
        "-p tcp --dport 21 -j CT --helper ftp --zone-orig 5",
    );
    c.rule("raw", "OUTPUT", "-j CT --ctevents new,destroy --zone mark");
    c.rule("raw", "PREROUTING", "-j TRACE");
    c.rule("security", "INPUT", "-j ACCEPT");
    // Quotes inside quoted arguments: through iptables-restore.
    let _ = writeln!(
        c.restore,
        "*filter\n-A INPUT -m comment --comment \"quotes \\\"x\\\" and 'y' {}\" -j ACCEPT\n\
         -A INPUT -m state --state NEW -j LOG --log-prefix \"new conn {}: \" --log-level 6\n\
         -A INPUT -j NFLOG --nflog-group 3 --nflog-prefix \"a \\\"b\\\" c\"\nCOMMIT",
        rng.below(1000),
        rng.below(1000)
    );
    c
}

fn v6(rng: &mut Rng) -> Corpus {
    let mut c = Corpus::default();
    let g = rng.below(0xffff);
    let ip = |rng: &mut Rng| {
        format!(
            "fd00:{g:x}:{:x}::{:x}",
            rng.below(0xffff),
            1 + rng.below(0xfffe)
        )
    };
    let (a, b) = (ip(rng), ip(rng));
    let svc = format!("KUBE-SVC-{}", rng.hash());
    c.chain("nat", &svc);
    c.chain("filter", "KUBE-FW");
    let p = rng.port();
    for r in [
        format!("-s {a}/64 -d fe80::/10 -p 47 -j ACCEPT"),
        "! -s ::1.2.3.4/128 -j DROP".into(),
        "-s ::ffff:1.2.3.4 -j DROP".into(),
        "-s 2001:0:1::/ffff:0:ffff:: -j ACCEPT".into(),
        "-p ipv6-icmp --icmpv6-type echo-request -j ACCEPT".into(),
        "-p ipv6-icmp --icmpv6-type 1/3 -j ACCEPT".into(),
        "! -p ipv6-icmp -j ACCEPT".into(),
        "-p mh -j ACCEPT".into(),
        "-m hl --hl-eq 1 -j DROP".into(),
        format!("-m conntrack --ctstate RELATED,ESTABLISHED --ctorigsrc {a}/56 -j ACCEPT"),
        format!("-i eth0 -p tcp -m multiport --dports 22,{p} -j ACCEPT"),
        format!("-p udp --sport {p}:{} --dport 53 -j ACCEPT", p + 5),
        format!("-m iprange --src-range {a}-{b} -j ACCEPT"),
        "-m recent --set --name V6 --mask ffff:ffff:ffff:ffff:: --rsource".into(),
        "-m hashlimit --hashlimit-upto 10/sec --hashlimit-name h6 --hashlimit-srcmask 64 -j ACCEPT"
            .into(),
        "-m connlimit --connlimit-above 5 --connlimit-mask 64 --connlimit-daddr -j DROP".into(),
        "-j REJECT".into(),
        "-p tcp -j REJECT --reject-with tcp-reset".into(),
        "-j REJECT --reject-with icmp6-adm-prohibited".into(),
        "-j KUBE-FW".into(),
    ] {
        c.rule("filter", "INPUT", r);
    }
    c.rule(
        "nat",
        "PREROUTING",
        format!("-d {b}/128 -p tcp --dport 443 -j {svc}"),
    );
    c.rule(
        "nat",
        &svc,
        format!("-p tcp -j DNAT --to-destination [{a}]:8443"),
    );
    c.rule(
        "nat",
        &svc,
        format!("-p tcp -j DNAT --to-destination [{a}-{b}]:1000-2000"),
    );
    c.rule("nat", &svc, format!("-j DNAT --to-destination {b}"));
    c.rule(
        "nat",
        "POSTROUTING",
        format!("-s {a}/56 ! -d {a}/56 -j MASQUERADE --random-fully"),
    );
    c.rule(
        "nat",
        "POSTROUTING",
        format!("-o eth0 -j SNAT --to-source {b}"),
    );
    c.rule(
        "mangle",
        "PREROUTING",
        "-p tcp -j TPROXY --on-port 1 --on-ip ::1 --tproxy-mark 0x1/0x1",
    );
    c.rule("raw", "PREROUTING", "-j CT --notrack");
    let set = format!("v6-{}", rng.hash());
    c.sets.push((set.clone(), "hash:ip family inet6"));
    c.rule(
        "filter",
        "KUBE-FW",
        format!("-m set --match-set {set} dst -j ACCEPT"),
    );
    let _ = writeln!(
        c.restore,
        "*filter\n-A KUBE-FW -m comment --comment \"v6 \\\"fw\\\" {}\" -j LOG --log-prefix \"fw6 x \"\nCOMMIT",
        rng.below(1000)
    );
    c
}

/// Writes a corpus with the `iptables` crate (`cmd` is the binary of the
/// backend) from a thread inside the namespace, so the commands it runs
/// land there.
fn write(ns: &Netns, corpus: &Corpus, cmd: &'static str, restore: &str) -> anyhow::Result<()> {
    for (name, kind) in &corpus.sets {
        let mut argv = vec!["ipset", "create", name.as_str()];
        argv.extend(kind.split(' '));
        ns.run(&argv)?;
    }
    let path = format!("/run/netns/{}", ns.name);
    let chains = corpus.chains.clone();
    let rules = corpus.rules.clone();
    std::thread::spawn(move || -> anyhow::Result<()> {
        let file = std::fs::File::open(&path)?;
        nix::sched::setns(
            std::os::fd::AsFd::as_fd(&file),
            nix::sched::CloneFlags::CLONE_NEWNET,
        )?;
        let mut ipt = iptables::new(cmd.starts_with("ip6")).map_err(|e| anyhow::anyhow!("{e}"))?;
        ipt.cmd = cmd;
        for (table, chain) in &chains {
            ipt.new_chain(table, chain)
                .map_err(|e| anyhow::anyhow!("{cmd} -t {table} -N {chain}: {e}"))?;
        }
        for (table, chain, rule) in &rules {
            ipt.append(table, chain, rule)
                .map_err(|e| anyhow::anyhow!("{cmd} -t {table} -A {chain} {rule}: {e}"))?;
        }
        Ok(())
    })
    .join()
    .map_err(|_| anyhow::anyhow!("rule writer panicked"))??;
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &ns.name, restore, "--noflush"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .map(|mut s| s.write_all(corpus.restore.as_bytes()))
                .transpose()?;
            child.wait_with_output()
        })?;
    anyhow::ensure!(
        out.status.success(),
        "{restore}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// `sh -c` run before the agent (inside `unshare --mount`): every firewall
/// binary becomes a stub that fails, checked, then the agent is exec'd.
fn stubbed(stub: &str) -> String {
    format!(
        "set -e; for f in /usr/sbin/*tables* /sbin/*tables* /usr/sbin/nft /usr/sbin/ipset /usr/bin/*tables*; do \
         [ -e \"$f\" ] && [ ! -d \"$f\" ] && mount --bind {stub} \"$f\"; done; \
         if /usr/sbin/iptables-save >/dev/null 2>&1 || /usr/sbin/iptables-legacy-save >/dev/null 2>&1; then \
         echo 'the stubs did not take' >&2; exit 97; fi; exec \"$@\""
    )
}

/// (table, IPv6) pairs every run reads.
const TABLES: [&str; 5] = ["raw", "mangle", "filter", "nat", "security"];

#[test]
fn native_firewall_equals_the_save_tools_on_the_corpus() -> anyhow::Result<()> {
    if !require_root("native_firewall_equals_the_save_tools_on_the_corpus") {
        return Ok(());
    }
    for tool in [
        "iptables-legacy-save",
        "ip6tables-nft-save",
        "ipset",
        "unshare",
    ] {
        require_tool(tool)?;
    }
    let mut rng = Rng::seeded();
    let stub_dir = tempfile::tempdir()?;
    let stub = stub_dir.path().join("stub");
    std::fs::write(
        &stub,
        "#!/bin/sh\necho \"labscope test: $0 must not run\" >&2\nexit 99\n",
    )?;
    std::fs::set_permissions(&stub, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let script = stubbed(&stub.display().to_string());
    for legacy in [false, true] {
        let ns = Netns::new(if legacy { "fwl" } else { "fwn" })?;
        let (c4, c6) = (v4(&mut rng), v6(&mut rng));
        let (b4, b6, r4, r6, save4, save6, backend) = if legacy {
            (
                "iptables-legacy",
                "ip6tables-legacy",
                "iptables-legacy-restore",
                "ip6tables-legacy-restore",
                "iptables-legacy-save",
                "ip6tables-legacy-save",
                pb::FirewallBackend::Legacy,
            )
        } else {
            (
                "iptables-nft",
                "ip6tables-nft",
                "iptables-nft-restore",
                "ip6tables-nft-restore",
                "iptables-nft-save",
                "ip6tables-nft-save",
                pb::FirewallBackend::Nft,
            )
        };
        write(&ns, &c4, b4, r4)?;
        write(&ns, &c6, b6, r6)?;
        let wrap = [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script.as_str(),
            "sh",
        ];
        let _agent = AgentProcess::start_args(
            &ns,
            AGENT,
            &["--node-name", "corpus", "--insecure-plaintext"],
            &wrap,
        )?;
        // Traffic while the counters are read, so that they move.
        ns.run(&["ping", "-c", "3", "-i", "0.01", "-W", "1", "127.0.0.1"])
            .ok();
        let busy = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns.name,
                "ping",
                "-q",
                "-f",
                "-w",
                "5",
                "127.0.0.1",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let mut busy = scopeguard(busy);
        for (v6, save) in [(false, save4), (true, save6)] {
            let before = ns.run(&[save, "-c"])?;
            let answers = ns.block_on(move || async move {
                let mut client = connect(AGENT).await?;
                let mut out = Vec::new();
                for table in TABLES {
                    let req = pb::GetFirewallRequest {
                        ipv6: v6,
                        table: table.into(),
                        ..Default::default()
                    };
                    out.push(client.get_firewall(req).await?.into_inner());
                }
                anyhow::Ok(out)
            })?;
            let after = ns.run(&[save, "-c"])?;
            let mut compared = 0;
            for (table, fw) in TABLES.iter().zip(&answers) {
                let want = saved_rules(&after, table);
                let low = saved_rules(&before, table);
                let got: Vec<&pb::FirewallRule> = fw.chains.iter().flat_map(|c| &c.rules).collect();
                let family = if v6 { "IPv6" } else { "IPv4" };
                assert_eq!(
                    got.iter().map(|r| r.text.as_str()).collect::<Vec<_>>(),
                    want.iter().map(|w| w.0.as_str()).collect::<Vec<_>>(),
                    "{family} {table} ({backend:?}): every rule as {save} prints it"
                );
                for ((r, lo), hi) in got.iter().zip(&low).zip(&want) {
                    assert!(
                        lo.1 <= r.packets
                            && r.packets <= hi.1
                            && lo.2 <= r.bytes
                            && r.bytes <= hi.2,
                        "{family} {table}: counters of {:?}: {} packets {} bytes, not between {lo:?} and {hi:?}",
                        r.text,
                        r.packets,
                        r.bytes
                    );
                    assert!(!r.partly_decoded, "{}", r.text);
                }
                if !want.is_empty() {
                    assert_eq!(fw.backend, backend as i32, "{family} {table}");
                    let expected = if legacy { "getsockopt" } else { "netlink" };
                    assert!(fw.method.starts_with(expected), "{}", fw.method);
                }
                assert_eq!(fw.partly_decoded_rules, 0, "{family} {table}");
                // Chain policies and counters as the save tool prints them.
                let chains: Vec<String> = fw
                    .chains
                    .iter()
                    .map(|c| {
                        let policy = if c.policy.is_empty() {
                            "-"
                        } else {
                            c.policy.as_str()
                        };
                        let (p, b) = if c.builtin {
                            (c.packets, c.bytes)
                        } else {
                            (0, 0)
                        };
                        format!(":{} {policy} [{p}:{b}]", c.name)
                    })
                    .collect();
                let saved_chains = chain_lines(&after, table);
                assert_eq!(
                    chains
                        .iter()
                        .map(|l| l.split(" [").next().unwrap_or_default())
                        .collect::<Vec<_>>(),
                    saved_chains
                        .iter()
                        .map(|l| l.split(" [").next().unwrap_or_default())
                        .collect::<Vec<_>>(),
                    "{family} {table}: chains and policies"
                );
                compared += got.len();
            }
            if !v6 {
                // The loopback traffic went through the filter table: the
                // counters compared above are not all zero.
                let moved: u64 = answers[2]
                    .chains
                    .iter()
                    .flat_map(|c| &c.rules)
                    .map(|r| r.packets)
                    .sum();
                assert!(moved > 0, "no counter moved in the IPv4 filter table");
            }
            let expected = if v6 { c6.rules.len() } else { c4.rules.len() };
            assert!(
                compared >= expected,
                "{compared} rules compared, {expected} written"
            );
            whole_tables_built_beside_the_read(&ns, v6, legacy)?;
        }
        let _ = busy.0.kill();
        let _ = busy.0.wait();
    }
    Ok(())
}

/// A whole table's answer is built beside the nf_tables dump (each rule as
/// its line is rendered) instead of from the text afterwards: for every
/// table of the corpus, in this namespace, it must equal the answer a page
/// of the same read's text builds, rule for rule.
fn whole_tables_built_beside_the_read(ns: &Netns, v6: bool, legacy: bool) -> anyhow::Result<()> {
    use labscope_agent::firewall::{self, Page, read};
    ns.block_on(move || async move {
        let mut rules = 0;
        for table in TABLES {
            let (texts, built) = read::read_backends_building(v6, Some(table))?;
            let built =
                built.ok_or_else(|| anyhow::anyhow!("{table}: nothing built beside the read"))?;
            rules += built.chains.iter().map(Vec::len).sum::<usize>();
            let fast = firewall::build_whole_table(v6, table, &texts, built)?.ok_or_else(|| {
                anyhow::anyhow!(
                    "{table} (v6 {v6}): the rules built beside the read did not fit the text"
                )
            })?;
            let slow = firewall::build_from_texts(v6, table, "", &texts, Page::ALL)?;
            assert_eq!(
                fast, slow,
                "{table} (v6 {v6}, legacy {legacy}): built beside the read"
            );
        }
        // The iptables-nft corpus is built from; the legacy one is not
        // nf_tables' (its namespace holds no iptables-nft table).
        anyhow::ensure!(
            legacy == (rules == 0),
            "{rules} rules built beside the read (v6 {v6}, legacy {legacy})"
        );
        Ok(())
    })
}

/// The `:CHAIN POLICY [p:b]` lines of one table.
fn chain_lines(text: &str, table: &str) -> Vec<String> {
    let mut in_table = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(t) = line.strip_prefix('*') {
            in_table = t == table;
        } else if in_table && line.starts_with(':') {
            out.push(line.to_string());
        }
    }
    out
}

/// Kills a child process when dropped (a failed assertion must not leave a
/// ping flood running).
struct Guard(std::process::Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn scopeguard(c: std::process::Child) -> Guard {
    Guard(c)
}
