//! The statements of a rule (`log`, `limit`, `dnat to`, `masquerade`,
//! `reject`, `queue`) as nft prints them.

use std::fmt::Write;

use super::super::model::{Expr, family, verdict};
use super::super::types::{Ty, value};
use super::{Item, Renderer};

impl Renderer<'_, '_> {
    pub(super) fn log(&mut self, e: &Expr<'_>) {
        let mut s = String::from("log");
        if let Some(p) = e.str(2) {
            let _ = write!(s, " prefix \"{p}\"");
        }
        if let Some(g) = e.raw(1) {
            let g = u16::from_be_bytes([g[0], g.get(1).copied().unwrap_or(0)]);
            let _ = write!(s, " group {g}");
        }
        if let Some(n) = e.u32(3) {
            let _ = write!(s, " snaplen {n}");
        }
        if let Some(q) = e.raw(4) {
            let q = u16::from_be_bytes([q[0], q.get(1).copied().unwrap_or(0)]);
            let _ = write!(s, " queue-threshold {q}");
        }
        if let Some(l) = e.u32(5) {
            let level = [
                "emerg", "alert", "crit", "err", "warn", "notice", "info", "debug", "audit",
            ];
            match level.get(l as usize) {
                Some(&"warn") | None if l == 4 => {}
                Some(n) => {
                    let _ = write!(s, " level {n}");
                }
                None => {
                    let _ = write!(s, " level {l}");
                }
            }
        }
        if let Some(f) = e.u32(6) {
            let names = [
                (1, "tcp sequence"),
                (2, "tcp options"),
                (4, "ip options"),
                (8, "skuid"),
                (0x20, "ether"),
            ];
            if f == 0x2f {
                s.push_str(" flags all");
            } else {
                let mut tcp = Vec::new();
                for (bit, n) in names {
                    if f & bit != 0 {
                        match n.strip_prefix("tcp ") {
                            Some(t) => tcp.push(t),
                            None => {
                                let _ = write!(s, " flags {n}");
                            }
                        }
                    }
                }
                if !tcp.is_empty() {
                    let _ = write!(s, " flags tcp {}", tcp.join(","));
                }
            }
        }
        self.items.push(Item::Stmt(s));
    }

    pub(super) fn limit(&mut self, e: &Expr<'_>) {
        let (rate, unit, burst) = (
            e.u64(1).unwrap_or(0),
            e.u64(2).unwrap_or(1),
            e.u32(3).unwrap_or(0),
        );
        let bytes = e.u32(4).unwrap_or(0) == 1;
        let over = e.u32(5).unwrap_or(0) & 1 != 0;
        let per = match unit {
            1 => "second",
            60 => "minute",
            3600 => "hour",
            86400 => "day",
            604800 => "week",
            _ => "",
        };
        let mut s = String::from("limit rate ");
        if over {
            s.push_str("over ");
        }
        if bytes {
            let _ = write!(s, "{}/{per}", human_bytes(rate));
            if burst != 0 {
                let _ = write!(s, " burst {}", human_bytes(u64::from(burst)));
            }
        } else {
            let _ = write!(s, "{rate}/{per}");
            if burst != 5 {
                let _ = write!(s, " burst {burst} packets");
            }
        }
        self.items.push(Item::Stmt(s));
    }

    pub(super) fn nat(&mut self, e: &Expr<'_>) {
        let kind = if e.u32(1).unwrap_or(0) == 1 {
            "dnat"
        } else {
            "snat"
        };
        let nfam = e.u32(2).unwrap_or(0) as u8;
        let v6 = nfam == family::IPV6;
        let addr_ty = if v6 { Ty::Ipv6 } else { Ty::Ipv4 };
        let mut s = String::from(kind);
        if self.fam == family::INET {
            s.push_str(if v6 { " ip6" } else { " ip" });
        }
        s.push_str(" to ");
        let amin = self.reg_value(e.reg(3));
        let amax = self.reg_value(e.reg(4));
        let pmin = self.reg_value(e.reg(5));
        let pmax = self.reg_value(e.reg(6));
        if let Some(a) = &amin {
            if v6 && pmin.is_some() {
                s.push('[');
            }
            value(&mut s, addr_ty, a);
            if let Some(b) = &amax
                && b != a
            {
                s.push('-');
                value(&mut s, addr_ty, b);
            }
            if v6 && pmin.is_some() {
                s.push(']');
            }
        } else if e.has(3) {
            return self.unsupported("nat address from a map".into());
        }
        if let Some(p) = &pmin {
            s.push(':');
            value(&mut s, Ty::Port, p);
            if let Some(q) = &pmax
                && q != p
            {
                s.push('-');
                value(&mut s, Ty::Port, q);
            }
        }
        nat_flags(&mut s, e.u32(7).unwrap_or(0));
        self.items.push(Item::Stmt(s));
    }

    pub(super) fn masq_redir(
        &mut self,
        e: &Expr<'_>,
        name: &str,
        flags_at: u16,
        min_at: u16,
        max_at: u16,
    ) {
        let mut s = String::from(name);
        if let Some(p) = self.reg_value(e.reg(min_at)) {
            s.push_str(" to :");
            value(&mut s, Ty::Port, &p);
            if let Some(q) = self.reg_value(e.reg(max_at))
                && q != p
            {
                s.push('-');
                value(&mut s, Ty::Port, &q);
            }
        }
        nat_flags(&mut s, e.u32(flags_at).unwrap_or(0));
        self.items.push(Item::Stmt(s));
    }

    pub(super) fn reject(&mut self, e: &Expr<'_>) {
        let ty = e.u32(1).unwrap_or(0);
        let code = e.raw(2).and_then(|c| c.first().copied()).unwrap_or(0);
        let v6 = self.fam == family::IPV6;
        let s = match ty {
            1 => "reject with tcp reset".to_string(),
            2 => {
                let n = [
                    "no-route",
                    "port-unreachable",
                    "host-unreachable",
                    "admin-prohibited",
                ];
                if code == 1 {
                    "reject".into()
                } else {
                    format!("reject with icmpx {}", n.get(code as usize).unwrap_or(&"?"))
                }
            }
            _ if v6 => {
                let n = [
                    "no-route",
                    "admin-prohibited",
                    "",
                    "addr-unreachable",
                    "port-unreachable",
                    "policy-fail",
                    "reject-route",
                ];
                if code == 4 && self.fam == family::IPV6 {
                    "reject".into()
                } else {
                    format!(
                        "reject with icmpv6 {}",
                        n.get(code as usize).unwrap_or(&"?")
                    )
                }
            }
            _ => {
                let n = [
                    "net-unreachable",
                    "host-unreachable",
                    "prot-unreachable",
                    "port-unreachable",
                    "",
                    "",
                    "net-prohibited",
                    "host-prohibited",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "admin-prohibited",
                ];
                if code == 3 && self.fam == family::IPV4 {
                    "reject".into()
                } else {
                    format!("reject with icmp {}", n.get(code as usize).unwrap_or(&"?"))
                }
            }
        };
        self.items.push(Item::Stmt(s));
    }

    pub(super) fn queue(&mut self, e: &Expr<'_>) {
        let (num, total, flags) = (
            e.raw(1)
                .map(|v| u16::from_be_bytes([v[0], v.get(1).copied().unwrap_or(0)]))
                .unwrap_or(0),
            e.raw(2)
                .map(|v| u16::from_be_bytes([v[0], v.get(1).copied().unwrap_or(0)]))
                .unwrap_or(1),
            e.raw(3)
                .map(|v| u16::from_be_bytes([v[0], v.get(1).copied().unwrap_or(0)]))
                .unwrap_or(0),
        );
        let mut s = String::from("queue");
        let mut f = Vec::new();
        if flags & 1 != 0 {
            f.push("bypass");
        }
        if flags & 2 != 0 {
            f.push("fanout");
        }
        if !f.is_empty() {
            let _ = write!(s, " flags {}", f.join(","));
        }
        if total > 1 {
            let _ = write!(s, " to {num}-{}", u32::from(num) + u32::from(total) - 1);
        } else {
            let _ = write!(s, " to {num}");
        }
        self.items.push(Item::Stmt(s));
    }
}

pub(super) fn nat_flags(s: &mut String, f: u32) {
    let mut names = Vec::new();
    if f & 0x04 != 0 {
        names.push("random");
    }
    if f & 0x10 != 0 {
        names.push("fully-random");
    }
    if f & 0x08 != 0 {
        names.push("persistent");
    }
    if !names.is_empty() {
        let _ = write!(s, " {}", names.join(","));
    }
}

pub(super) fn verdict_text(code: i32, chain: Option<&str>) -> String {
    match code {
        verdict::ACCEPT => "accept".into(),
        verdict::DROP => "drop".into(),
        verdict::RETURN => "return".into(),
        verdict::CONTINUE => "continue".into(),
        verdict::QUEUE => "queue".into(),
        verdict::JUMP => format!("jump {}", chain.unwrap_or("?")),
        verdict::GOTO => format!("goto {}", chain.unwrap_or("?")),
        other => format!("[unsupported verdict {other}]"),
    }
}

pub(super) fn human_bytes(b: u64) -> String {
    for (unit, size) in [
        ("gbytes", 1u64 << 30),
        ("mbytes", 1 << 20),
        ("kbytes", 1 << 10),
    ] {
        if b >= size && b.is_multiple_of(size) {
            return format!("{} {unit}", b / size);
        }
    }
    format!("{b} bytes")
}
