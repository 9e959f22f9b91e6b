//! The expressions that take more than a line to read back: bitwise
//! masks, comparisons (with nft's own shorthand for flags and prefixes),
//! fib lookups, numgen, quotas and stateful object references.

use super::*;

impl Renderer<'_, '_> {
    pub(super) fn bitwise(&mut self, e: &Expr<'_>) {
        let (Some(s), Some(d)) = (slot(e.reg(1)), slot(e.reg(2))) else {
            return self.unsupported("bitwise".into());
        };
        let mut sl = self.regs[s].clone();
        let xor = e.value(5).unwrap_or_default();
        if e.u32(6).unwrap_or(0) != 0 {
            sl.src = Src::Other("bitwise shift".into());
        } else if xor.iter().any(|&b| b != 0) {
            // `x | v` (mask ~v, xor v), `x ^ v` (mask all ones),
            // `x & m ^ v` otherwise: kept as an expression.
            sl.src = Src::Bits {
                of: Box::new(sl.src.clone()),
                mask: e.value(4).unwrap_or_default().to_vec(),
                xor: xor.to_vec(),
            };
        } else {
            sl.mask = e.value(4).map(<[u8]>::to_vec);
        }
        self.regs[d] = sl;
    }

    pub(super) fn cmp(&mut self, e: &Expr<'_>) {
        let Some(s) = slot(e.reg(1)) else {
            return self.unsupported("cmp".into());
        };
        let op = e.u32(2).unwrap_or(0);
        let rhs = e.value(3).unwrap_or_default().to_vec();
        // `>= a` then `<= b` on the same register is a range.
        if op == 3
            && let Some(Item::Rel {
                lhs,
                op: 5,
                rhs: from,
            }) = self.items.last()
            && lhs.src == self.regs[s].src
        {
            let (lhs, from) = (lhs.clone(), from.clone());
            self.items.pop();
            self.items.push(Item::Range {
                lhs,
                neq: false,
                from,
                to: rhs,
            });
            return;
        }
        self.items.push(Item::Rel {
            lhs: self.regs[s].clone(),
            op,
            rhs,
        });
    }

    pub(super) fn numgen(&mut self, e: &Expr<'_>) {
        let ty = e.u32(3).unwrap_or(0);
        self.load(
            e.reg(1),
            Src::Numgen {
                modulus: e.u32(2).unwrap_or(0),
                random: ty == 1,
                offset: e.u32(4).unwrap_or(0),
            },
            4,
        );
    }

    pub(super) fn fib(&mut self, e: &Expr<'_>) {
        let flags = e.u32(3).unwrap_or(0);
        let result = e.u32(2).unwrap_or(0);
        let mut what = Vec::new();
        for (bit, n) in [
            (1, "saddr"),
            (2, "daddr"),
            (4, "mark"),
            (8, "iif"),
            (16, "oif"),
        ] {
            if flags & bit != 0 {
                what.push(n);
            }
        }
        let res = match result {
            1 => "oif",
            2 => "oifname",
            3 => "type",
            _ => "?",
        };
        let len = if result == 2 { 16 } else { 4 };
        self.load(
            e.reg(1),
            Src::Fib(format!("fib {} {res}", what.join(" . "))),
            len,
        );
    }

    pub(super) fn objref(&mut self, e: &Expr<'_>) {
        let kind = match e.u32(1).unwrap_or(0) {
            1 => "counter",
            2 => "quota",
            3 => "ct helper",
            4 => "limit",
            7 => "ct timeout",
            8 => "secmark",
            9 => "synproxy",
            10 => "ct expectation",
            _ => "object",
        };
        match e.str(2) {
            Some(n) => self.items.push(Item::Stmt(format!("{kind} name \"{n}\""))),
            None => self.unsupported("object map".into()),
        }
    }

    pub(super) fn quota(&mut self, e: &Expr<'_>) {
        let bytes = e.u64(1).unwrap_or(0);
        let over = e.u32(2).unwrap_or(0) & 1 != 0;
        self.items.push(Item::Stmt(format!(
            "quota {}{}",
            if over { "over " } else { "" },
            human_bytes(bytes)
        )));
    }
}
