//! One rule read back: its expressions run through iptables' register
//! machine (`nft_rule_to_iptables_command_state`), then printed in
//! iptables-save's fixed order — addresses, interfaces, protocol, the
//! matches in rule order, the target.

use std::fmt::Write;

use crate::firewall::nft::model::{Data, Expr, ExprKind, Reg, Rule, verdict};
use crate::firewall::xt::fmt::{self, w};
use crate::firewall::xt::{self, Ctx, SetNames};

/// What a register holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    Undef,
    Payload { base: u32, offset: u32, len: u32 },
    Meta(u32),
    Imm([u8; 16], usize),
    Other,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    load: Load,
    mask: Option<[u8; 16]>,
}

const EMPTY: Slot = Slot {
    load: Load::Undef,
    mask: None,
};

/// Address and mask of `-s`/`-d`.
#[derive(Default)]
struct Addr {
    addr: [u8; 16],
    mask: [u8; 16],
    invert: bool,
    set: bool,
}

#[derive(Default)]
struct Iface {
    name: [u8; 16],
    mask: [u8; 16],
    invert: bool,
}

/// The state a rule's expressions build, printed in iptables' fixed order.
struct State<'r> {
    v6: bool,
    regs: [Slot; 16],
    src: Addr,
    dst: Addr,
    iif: Iface,
    oif: Iface,
    proto: u16,
    proto_invert: bool,
    frag: Option<bool>,
    /// The matches (` -m NAME …`) and `[unsupported …]` markers, in rule
    /// order.
    parts: String,
    /// The tcp/udp match native expressions build (one per rule): where in
    /// `parts` it goes, its name and its info struct.
    tcpudp: Option<(usize, &'static str, [u8; 16])>,
    /// ` -j NAME …` of a verdict or target extension.
    target: String,
    jump: Option<(&'r str, bool)>,
    partial: bool,
}

/// Writes rule lines, keeping its buffers from one rule to the next.
pub struct LineWriter {
    v6: bool,
    parts: String,
    target: String,
}

impl LineWriter {
    /// A writer for IPv4 (`v6` false) or IPv6 rules.
    pub fn new(v6: bool) -> Self {
        Self {
            v6,
            parts: String::with_capacity(512),
            target: String::with_capacity(128),
        }
    }

    /// Appends `[p:b] -A CHAIN …` for one rule; false when some part of it
    /// could only be shown as `[unsupported …]`.
    pub fn write(&mut self, out: &mut String, rule: &Rule<'_>, sets: &dyn SetNames) -> bool {
        let ctx = Ctx::new(self.v6, sets);
        self.parts.clear();
        self.target.clear();
        let mut st = State {
            v6: self.v6,
            regs: [EMPTY; 16],
            src: Addr::default(),
            dst: Addr::default(),
            iif: Iface::default(),
            oif: Iface::default(),
            proto: 0,
            proto_invert: false,
            frag: None,
            parts: std::mem::take(&mut self.parts),
            tcpudp: None,
            target: std::mem::take(&mut self.target),
            jump: None,
            partial: false,
        };
        let mut counters = (0, 0);
        for e in &rule.exprs {
            match e.kind() {
                ExprKind::Counter => counters = (e.u64(2).unwrap_or(0), e.u64(1).unwrap_or(0)),
                _ => st.expr(e, &ctx),
            }
        }
        if let Some(c) = rule.comment() {
            let mut info = [0u8; 256];
            let n = c.len().min(255);
            info[..n].copy_from_slice(&c.as_bytes()[..n]);
            xt::save_match(&mut st.parts, &ctx, "comment", 0, &info);
        }
        w!(out, "[{}:{}] -A {}", counters.0, counters.1, rule.chain);
        st.print(out, &ctx);
        out.push('\n');
        self.parts = st.parts;
        self.target = st.target;
        !(st.partial || ctx.partial.get())
    }
}

fn reg_slot(r: Option<Reg>) -> Option<usize> {
    match r? {
        Reg::Data(n) if n < 16 => Some(usize::from(n)),
        _ => None,
    }
}

/// Appends `[p:b] -A CHAIN …` for one rule; false when some part of it
/// could only be shown as `[unsupported …]`.
pub fn rule_line(out: &mut String, rule: &Rule<'_>, v6: bool, sets: &dyn SetNames) -> bool {
    LineWriter::new(v6).write(out, rule, sets)
}

impl<'r> State<'r> {
    fn unsupported(&mut self, what: impl std::fmt::Display) {
        self.partial = true;
        w!(self.parts, " [unsupported {what}]");
    }

    fn expr(&mut self, e: &Expr<'r>, ctx: &Ctx<'_>) {
        match e.kind() {
            ExprKind::Payload => {
                if e.has(5) {
                    return self.unsupported("payload write");
                }
                let Some(d) = reg_slot(e.reg(1)) else {
                    return self.unsupported("payload into the verdict register");
                };
                self.regs[d] = Slot {
                    load: Load::Payload {
                        base: e.u32(2).unwrap_or(0),
                        offset: e.u32(3).unwrap_or(0),
                        len: e.u32(4).unwrap_or(0),
                    },
                    mask: None,
                };
            }
            ExprKind::Meta => self.meta(e),
            ExprKind::Bitwise => self.bitwise(e),
            ExprKind::Cmp => self.cmp(e, ctx),
            ExprKind::Range => self.range(e),
            ExprKind::Immediate => match e.data(2) {
                Some(Data::Verdict(v)) => self.verdict(v.code, v.chain),
                Some(Data::Value(v)) => {
                    if let Some(d) = reg_slot(e.reg(1)) {
                        let mut data = [0u8; 16];
                        let n = v.len().min(16);
                        data[..n].copy_from_slice(&v[..n]);
                        self.regs[d] = Slot {
                            load: Load::Imm(data, n),
                            mask: None,
                        };
                    }
                }
                None => self.unsupported("immediate"),
            },
            ExprKind::Match => {
                let (name, rev, info) = (
                    e.str(1).unwrap_or("?"),
                    e.u32(2).unwrap_or(0),
                    e.raw(3).unwrap_or_default(),
                );
                xt::save_match(&mut self.parts, ctx, name, rev as u8, info);
            }
            ExprKind::Target => {
                let (name, rev, info) = (
                    e.str(1).unwrap_or("?"),
                    e.u32(2).unwrap_or(0),
                    e.raw(3).unwrap_or_default(),
                );
                self.target.clear();
                xt::save_target(&mut self.target, ctx, name, rev as u8, info);
                self.jump = None;
            }
            ExprKind::Limit => self.limit(e, ctx),
            ExprKind::Log if e.has(1) => self.nflog(e),
            ExprKind::Lookup => {
                let set = e.str(1).unwrap_or("?");
                let neg = e.u32(5).unwrap_or(0) & 1 != 0;
                self.unsupported(format_args!(
                    "set lookup{} @{set}",
                    if neg { " !=" } else { "" }
                ));
            }
            ExprKind::Counter => {}
            _ => self.unsupported(format_args!("expression {}", e.name)),
        }
    }

    fn meta(&mut self, e: &Expr<'r>) {
        let key = e.u32(2).unwrap_or(u32::MAX);
        if let Some(s) = reg_slot(e.reg(3)) {
            // meta set: only `-j TRACE` is iptables'.
            match self.regs[s].load {
                Load::Imm(v, _) if key == 12 && v[..4] != [0; 4] => {
                    self.target.clear();
                    self.target.push_str(" -j TRACE");
                }
                _ => self.unsupported(format_args!("meta set (key {key})")),
            }
            return;
        }
        if let Some(d) = reg_slot(e.reg(1)) {
            self.regs[d] = Slot {
                load: Load::Meta(key),
                mask: None,
            };
        }
    }

    fn bitwise(&mut self, e: &Expr<'r>) {
        let (Some(s), Some(d)) = (reg_slot(e.reg(1)), reg_slot(e.reg(2))) else {
            return self.unsupported("bitwise");
        };
        let mut slot = self.regs[s];
        if e.u32(6).unwrap_or(0) != 0 {
            // Shifts: nothing iptables writes.
            slot.load = Load::Other;
        } else {
            let mut mask = [0u8; 16];
            if let Some(m) = e.value(4) {
                let n = m.len().min(16);
                mask[..n].copy_from_slice(&m[..n]);
            }
            slot.mask = Some(mask);
        }
        self.regs[d] = slot;
    }

    fn limit(&mut self, e: &Expr<'r>, ctx: &Ctx<'_>) {
        let (rate, unit, burst) = (
            e.u64(1).unwrap_or(0),
            e.u64(2).unwrap_or(0),
            e.u32(3).unwrap_or(0),
        );
        if e.u32(4).unwrap_or(0) != 0 || e.u32(5).unwrap_or(0) != 0 || rate == 0 {
            return self.unsupported("limit (bytes or inverted)");
        }
        let avg = (10_000 * unit / rate) as u32;
        let mut info = [0u8; 40];
        info[..4].copy_from_slice(&avg.to_le_bytes());
        info[4..8].copy_from_slice(&burst.to_le_bytes());
        xt::save_match(&mut self.parts, ctx, "limit", 0, &info);
    }

    fn nflog(&mut self, e: &Expr<'r>) {
        self.target.clear();
        self.target.push_str(" -j NFLOG");
        let prefix = e
            .raw(2)
            .map(crate::firewall::nft::model::string)
            .unwrap_or("");
        let prefix = &prefix.as_bytes()[..prefix.len().min(127)];
        let group = e
            .raw(1)
            .map(|v| u16::from_be_bytes([v[0], v.get(1).copied().unwrap_or(0)]));
        let thr = e
            .raw(4)
            .map(|v| u16::from_be_bytes([v[0], v.get(1).copied().unwrap_or(0)]));
        xt::targets::nflog_parts(
            &mut self.target,
            prefix,
            group.unwrap_or(0),
            e.u32(3).unwrap_or(0),
            e.has(3),
            thr.unwrap_or(0),
        );
        self.jump = None;
    }

    fn verdict(&mut self, code: i32, chain: Option<&'r str>) {
        self.target.clear();
        self.jump = None;
        match code {
            verdict::ACCEPT => self.target.push_str(" -j ACCEPT"),
            verdict::DROP => self.target.push_str(" -j DROP"),
            verdict::RETURN => self.target.push_str(" -j RETURN"),
            verdict::JUMP | verdict::GOTO => {
                self.jump = chain.map(|c| (c, code == verdict::GOTO));
            }
            // continue/break/queue: iptables shows no target.
            _ => {}
        }
    }

    fn cmp(&mut self, e: &Expr<'r>, ctx: &Ctx<'_>) {
        let Some(s) = reg_slot(e.reg(1)) else {
            return self.unsupported("cmp");
        };
        let op = e.u32(2).unwrap_or(0);
        let data = e.value(3).unwrap_or_default();
        let slot = self.regs[s];
        let neq = op == 1;
        match slot.load {
            Load::Meta(key) => self.cmp_meta(key, op, data, slot.mask, ctx),
            Load::Payload {
                base: 1,
                offset,
                len,
            } => self.cmp_network(offset, len, op, data, slot.mask, ctx),
            Load::Payload {
                base: 2, offset, ..
            } => self.cmp_transport(offset, op, data, slot.mask, ctx),
            Load::Payload { base, offset, len } => self.unsupported(format_args!(
                "{}payload base {base} offset {offset} len {len}",
                if neq { "!= " } else { "" }
            )),
            _ => self.unsupported("cmp"),
        }
    }

    fn cmp_meta(&mut self, key: u32, op: u32, data: &[u8], mask: Option<[u8; 16]>, ctx: &Ctx<'_>) {
        let neq = op == 1;
        let u32_le = |d: &[u8]| {
            d.get(..4)
                .map(|b| u32::from_le_bytes(b.try_into().unwrap_or_default()))
        };
        match key {
            // NFT_META_L4PROTO
            16 => {
                self.proto = u16::from(data.first().copied().unwrap_or(0));
                self.proto_invert = neq;
            }
            // IIFNAME, BRI_IIFNAME / OIFNAME, BRI_OIFNAME
            6 | 17 => self.iif = iface(data, neq),
            7 | 18 => self.oif = iface(data, neq),
            // IIF / OIF: an index, named as in this namespace.
            4 | 5 => {
                let name = u32_le(data).and_then(index_name).unwrap_or_default();
                let mut f = Iface {
                    invert: neq,
                    ..Iface::default()
                };
                let n = name.len().min(15);
                f.name[..n].copy_from_slice(&name.as_bytes()[..n]);
                f.mask[..=n].fill(0xff);
                if key == 4 {
                    self.iif = f;
                } else {
                    self.oif = f;
                }
            }
            // MARK
            3 => {
                let mut info = [0u8; 16];
                info[..4].copy_from_slice(&u32_le(data).unwrap_or(0).to_le_bytes());
                let m = mask
                    .map(|m| u32::from_le_bytes([m[0], m[1], m[2], m[3]]))
                    .unwrap_or(u32::MAX);
                info[4..8].copy_from_slice(&m.to_le_bytes());
                info[8] = u8::from(neq);
                self.push_match(ctx, "mark", 1, &info);
            }
            // PKTTYPE
            19 => {
                let mut info = [0u8; 8];
                info[..4]
                    .copy_from_slice(&i32::from(data.first().copied().unwrap_or(0)).to_le_bytes());
                info[4..].copy_from_slice(&i32::from(neq).to_le_bytes());
                self.push_match(ctx, "pkttype", 0, &info);
            }
            _ => self.unsupported(format_args!("meta key {key}")),
        }
    }

    fn push_match(&mut self, ctx: &Ctx<'_>, name: &str, rev: u8, info: &[u8]) {
        xt::save_match(&mut self.parts, ctx, name, rev, info);
    }

    fn cmp_network(
        &mut self,
        offset: u32,
        len: u32,
        op: u32,
        data: &[u8],
        mask: Option<[u8; 16]>,
        ctx: &Ctx<'_>,
    ) {
        let neq = op == 1;
        let addr = |st: &mut State<'r>, which_dst: bool, width: usize| {
            let mut a = Addr {
                invert: neq,
                set: true,
                ..Addr::default()
            };
            let n = data.len().min(width);
            a.addr[..n].copy_from_slice(&data[..n]);
            match mask {
                Some(m) => a.mask[..width].copy_from_slice(&m[..width]),
                None => a.mask[..(len as usize).min(width)].fill(0xff),
            }
            if which_dst {
                st.dst = a;
            } else {
                st.src = a;
            }
        };
        let ttl = |st: &mut State<'r>, name: &str| {
            let v = data.first().copied().unwrap_or(0);
            let (mode, v) = match op {
                0 => (0u8, Some(v)),
                1 => (1, Some(v)),
                2 => (2, Some(v)),
                4 => (3, Some(v)),
                3 => (2, v.checked_add(1)),
                5 => (3, v.checked_sub(1)),
                _ => (0, None),
            };
            match v {
                Some(v) => st.push_match(ctx, name, 0, &[mode, v, 0, 0, 0, 0, 0, 0]),
                None => st.unsupported(format_args!("{name} comparison")),
            }
        };
        match (self.v6, offset) {
            (false, 12) => addr(self, false, 4),
            (false, 16) => addr(self, true, 4),
            (false, 9) | (true, 6) => {
                self.proto = u16::from(data.first().copied().unwrap_or(0));
                self.proto_invert = neq;
            }
            (false, 6) => self.frag = Some(mask.is_some() && op == 0),
            (false, 8) => ttl(self, "ttl"),
            (true, 8) => addr(self, false, 16),
            (true, 24) => addr(self, true, 16),
            (true, 7) => ttl(self, "hl"),
            _ => self.unsupported(format_args!(
                "{}network header offset {offset}",
                if neq { "!= " } else { "" }
            )),
        }
    }

    fn tcpudp(&mut self) -> Option<&mut [u8; 16]> {
        let name = match self.proto {
            6 => "tcp",
            17 => "udp",
            _ => return None,
        };
        if self.tcpudp.is_none() {
            // spts 0:65535, dpts 0:65535, the rest 0; printed where the
            // first of its expressions was.
            let mut info = [0u8; 16];
            info[2..4].copy_from_slice(&65535u16.to_le_bytes());
            info[6..8].copy_from_slice(&65535u16.to_le_bytes());
            self.tcpudp = Some((self.parts.len(), name, info));
        }
        self.tcpudp.as_mut().map(|(_, _, info)| info)
    }

    fn cmp_transport(
        &mut self,
        offset: u32,
        op: u32,
        data: &[u8],
        mask: Option<[u8; 16]>,
        ctx: &Ctx<'_>,
    ) {
        let be16 =
            |d: &[u8], at: usize| d.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
        if matches!(self.proto, 1 | 58) {
            let v6 = self.proto == 58 || self.v6;
            let mut info = [255u8, 0, 255, 0, 0, 0, 0, 0];
            match (offset, data.len()) {
                (0, 1) => info[0] = data[0],
                (0, 2) => (info[0], info[1], info[2]) = (data[0], data[1], data[1]),
                (1, 1) => (info[1], info[2]) = (data[0], data[0]),
                _ => return self.unsupported("icmp header comparison"),
            }
            info[3] = u8::from(op == 1);
            let name = if v6 { "icmp6" } else { "icmp" };
            if v6 != ctx.v6 {
                return self.unsupported(format_args!("{name} in the other family"));
            }
            return self.push_match(ctx, name, 0, &info);
        }
        let (is_tcp, proto) = (self.proto == 6, self.proto);
        let Some(info) = self.tcpudp() else {
            return self.unsupported(format_args!(
                "transport header offset {offset} of protocol {proto}"
            ));
        };
        let inv_at = if is_tcp { 11 } else { 8 };
        let apply = |info: &mut [u8; 16], at: usize, port: u16, bit: u8| {
            let (mut lo, mut hi) = (
                u16::from_le_bytes([info[at], info[at + 1]]),
                u16::from_le_bytes([info[at + 2], info[at + 3]]),
            );
            match op {
                0 | 1 => (lo, hi) = (port, port),
                2 => hi = port.saturating_sub(1).max(1),
                3 => hi = port,
                4 => lo = port.saturating_add(1),
                5 => lo = port,
                _ => {}
            }
            if op == 1 {
                info[inv_at] |= bit;
            }
            info[at..at + 2].copy_from_slice(&lo.to_le_bytes());
            info[at + 2..at + 4].copy_from_slice(&hi.to_le_bytes());
        };
        match (offset, data.len()) {
            (0, 2) => apply(info, 0, be16(data, 0).unwrap_or(0), 0x1),
            (2, 2) => apply(info, 4, be16(data, 0).unwrap_or(0), 0x2),
            (0, 4) => {
                apply(info, 0, be16(data, 0).unwrap_or(0), 0x1);
                apply(info, 4, be16(data, 2).unwrap_or(0), 0x2);
            }
            (13, 1) if is_tcp => {
                info[9] = mask.map(|m| m[0]).unwrap_or(0xff);
                info[10] = data[0];
                if op == 1 {
                    info[11] |= 0x4;
                }
            }
            _ => self.unsupported(format_args!("transport header offset {offset}")),
        }
    }

    fn range(&mut self, e: &Expr<'r>) {
        let Some(s) = reg_slot(e.reg(1)) else {
            return self.unsupported("range");
        };
        let (from, to) = (
            e.value(3).unwrap_or_default(),
            e.value(4).unwrap_or_default(),
        );
        let port = |d: &[u8]| d.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]]));
        let offset = match self.regs[s].load {
            Load::Payload {
                base: 2, offset, ..
            } => offset,
            _ => return self.unsupported("range"),
        };
        let (Some(lo), Some(hi)) = (port(from), port(to)) else {
            return self.unsupported("range");
        };
        let neq = e.u32(2).unwrap_or(0) == 1;
        let is_tcp = self.proto == 6;
        let Some(info) = self.tcpudp() else {
            return self.unsupported("port range without tcp or udp");
        };
        let (at, bit) = match offset {
            0 => (0, 0x1),
            2 => (4, 0x2),
            _ => return self.unsupported("range"),
        };
        info[at..at + 2].copy_from_slice(&lo.to_le_bytes());
        info[at + 2..at + 4].copy_from_slice(&hi.to_le_bytes());
        if neq {
            info[if is_tcp { 11 } else { 8 }] |= bit;
        }
    }

    fn print(&self, out: &mut String, ctx: &Ctx<'_>) {
        if self.v6 {
            if self.src.set {
                fmt::ipv6_addr(out, 's', &self.src.addr, &self.src.mask, self.src.invert);
            }
            if self.dst.set {
                fmt::ipv6_addr(out, 'd', &self.dst.addr, &self.dst.mask, self.dst.invert);
            }
        } else {
            if self.src.set {
                fmt::ipv4_addr(
                    out,
                    's',
                    &self.src.addr[..4],
                    &self.src.mask[..4],
                    self.src.invert,
                );
            }
            if self.dst.set {
                fmt::ipv4_addr(
                    out,
                    'd',
                    &self.dst.addr[..4],
                    &self.dst.mask[..4],
                    self.dst.invert,
                );
            }
        }
        fmt::iface(out, 'i', &self.iif.name, &self.iif.mask, self.iif.invert);
        fmt::iface(out, 'o', &self.oif.name, &self.oif.mask, self.oif.invert);
        if self.proto > 0 {
            fmt::proto(out, self.proto, self.proto_invert);
        }
        if let Some(inverted) = self.frag {
            if inverted {
                out.push_str(" !");
            }
            out.push_str(" -f");
        }
        match &self.tcpudp {
            Some((at, name, info)) => {
                out.push_str(&self.parts[..*at]);
                xt::save_match(out, ctx, name, 0, info);
                out.push_str(&self.parts[*at..]);
            }
            None => out.push_str(&self.parts),
        }
        if !self.target.is_empty() {
            out.push_str(&self.target);
        } else if let Some((chain, goto)) = self.jump {
            w!(out, " -{} {chain}", if goto { 'g' } else { 'j' });
        }
    }
}

/// `parse_ifname`: a trailing NUL is an exact name; without it the name is
/// a prefix (`eth+`); iptables writes `! -i +` as the name `INVAL/D`.
fn iface(data: &[u8], neq: bool) -> Iface {
    let mut f = Iface {
        invert: neq,
        ..Iface::default()
    };
    if data.is_empty() {
        return f;
    }
    if data.last() == Some(&0) {
        let end = data
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(data.len())
            .min(15);
        f.name[..end].copy_from_slice(&data[..end]);
        f.mask[..=end].fill(0xff);
    } else if data.len() < 15 {
        f.name[..data.len()].copy_from_slice(data);
        f.name[data.len()] = b'+';
        f.mask[..data.len()].fill(0xff);
    } else {
        // A 15- or 16-byte prefix: iptables prints nothing for it.
        let n = data.len().min(16);
        f.name[..n].copy_from_slice(&data[..n]);
    }
    if !f.invert && &f.name[..8] == b"INVAL/D\0" {
        f = Iface {
            invert: true,
            ..Iface::default()
        };
        f.name[0] = b'+';
        f.mask[..2].fill(0xff);
    }
    f
}

/// The name of interface `index` in this network namespace.
#[allow(unsafe_code)]
pub fn index_name(index: u32) -> Option<String> {
    let mut buf = [0 as nix::libc::c_char; 16];
    // SAFETY: `buf` has IF_NAMESIZE (16) bytes, as if_indextoname needs.
    let p = unsafe { nix::libc::if_indextoname(index, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    let bytes: Vec<u8> = buf
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8(bytes).ok()
}
