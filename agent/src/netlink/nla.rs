//! A zero-allocation walker over netlink attributes (`struct nlattr` runs).
//!
//! Used for ctnetlink, where netlink-packet-netfilter allocates a `Vec` per
//! tuple and leaves counters, zone, id, NAT and ICMP fields undecoded; the
//! benchmark in docs/benchmarks-log.md compares the two on a 50,000-entry dump.

/// `NLA_F_NESTED`: set by the kernel on nested attributes. It and
/// `NLA_F_NET_BYTEORDER` must be masked off the type, or every nested
/// attribute (counters among them) fails to match its constant and is lost.
pub const NLA_F_NESTED: u16 = 0x8000;
/// `NLA_F_NET_BYTEORDER`: the payload is big-endian.
pub const NLA_F_NET_BYTEORDER: u16 = 0x4000;
/// Mask that leaves the attribute type number.
pub const NLA_TYPE_MASK: u16 = !(NLA_F_NESTED | NLA_F_NET_BYTEORDER);

/// One attribute: its type (flags masked off) and payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nla<'a> {
    /// Attribute type with the nested/byte-order flags removed.
    pub kind: u16,
    /// Payload bytes (padding excluded).
    pub value: &'a [u8],
}

impl<'a> Nla<'a> {
    /// Iterates the attributes nested in this one.
    pub fn nested(&self) -> NlaIter<'a> {
        NlaIter::new(self.value)
    }
    /// Payload as a u8.
    pub fn u8(&self) -> Option<u8> {
        self.value.first().copied()
    }
    /// Payload as a big-endian u16.
    pub fn be16(&self) -> Option<u16> {
        Some(u16::from_be_bytes(self.value.get(..2)?.try_into().ok()?))
    }
    /// Payload as a big-endian u32.
    pub fn be32(&self) -> Option<u32> {
        Some(u32::from_be_bytes(self.value.get(..4)?.try_into().ok()?))
    }
    /// Payload as a big-endian u64.
    pub fn be64(&self) -> Option<u64> {
        Some(u64::from_be_bytes(self.value.get(..8)?.try_into().ok()?))
    }
}

/// Iterator over a run of attributes. Stops (without panicking) at the first
/// attribute whose length is impossible; `malformed()` then reports it.
#[derive(Debug, Clone)]
pub struct NlaIter<'a> {
    buf: &'a [u8],
    malformed: bool,
}

impl<'a> NlaIter<'a> {
    /// Walks the attributes in `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self {
            buf,
            malformed: false,
        }
    }
    /// Whether the walk stopped on a malformed attribute.
    pub fn malformed(&self) -> bool {
        self.malformed
    }
}

impl<'a> Iterator for NlaIter<'a> {
    type Item = Nla<'a>;

    fn next(&mut self) -> Option<Nla<'a>> {
        if self.buf.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([self.buf[0], self.buf[1]]) as usize;
        let kind = u16::from_ne_bytes([self.buf[2], self.buf[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > self.buf.len() {
            self.malformed = true;
            self.buf = &[];
            return None;
        }
        let value = &self.buf[4..len];
        let advance = ((len + 3) & !3).min(self.buf.len());
        self.buf = &self.buf[advance..];
        Some(Nla { kind, value })
    }
}

/// Builders of kernel-shaped attributes, for tests and benchmarks.
#[cfg(any(test, feature = "test-support"))]
pub mod build {
    use super::NLA_F_NESTED;

    /// One attribute, padded to 4 bytes.
    pub fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + value.len() + 3);
        out.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(value);
        while out.len() % 4 != 0 {
            out.push(0);
        }
        out
    }

    /// A nested attribute, with the NLA_F_NESTED bit as the kernel sets it.
    pub fn nested(kind: u16, parts: &[Vec<u8>]) -> Vec<u8> {
        nla(kind | NLA_F_NESTED, &parts.concat())
    }
}

#[cfg(test)]
mod tests {
    use super::build::nla;
    use super::*;

    #[test]
    fn masks_nested_flag_and_walks_padding() {
        let inner = [nla(1, &7u64.to_be_bytes()), nla(2, &9u64.to_be_bytes())].concat();
        let buf = [nla(9 | NLA_F_NESTED, &inner), nla(12, &[0xab])].concat();
        let attrs: Vec<_> = NlaIter::new(&buf).collect();
        assert_eq!(attrs.len(), 2);
        assert_eq!(attrs[0].kind, 9, "nested flag must be masked");
        let counters: Vec<_> = attrs[0]
            .nested()
            .map(|a| (a.kind, a.be64().unwrap()))
            .collect();
        assert_eq!(counters, vec![(1, 7), (2, 9)]);
        assert_eq!(attrs[1].u8(), Some(0xab));
    }

    #[test]
    fn stops_on_impossible_length() {
        let mut buf = nla(1, &[1, 2, 3, 4]);
        buf.extend_from_slice(&[200, 0, 1, 0]);
        let mut it = NlaIter::new(&buf);
        assert_eq!(it.next().map(|a| a.kind), Some(1));
        assert_eq!(it.next(), None);
        assert!(it.malformed());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            for a in NlaIter::new(&bytes) {
                let _ = (a.be64(), a.be32(), a.be16(), a.u8());
                for b in a.nested() { let _ = b.be32(); }
            }
        }
    }
}
