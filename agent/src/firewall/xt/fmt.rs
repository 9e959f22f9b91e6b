//! Text the way iptables-save writes it: addresses (glibc's `inet_ntop`,
//! which differs from Rust's `Ipv6Addr` for `::a.b.c.d`), masks, quoted
//! strings, marks, protocol names; and little readers over the info
//! structs (host byte order, as the kernel keeps them).

use std::fmt::Write;

/// Appends `args` to `out` (writing to a String cannot fail).
macro_rules! w {
    ($out:expr, $($arg:tt)*) => {{
        let _ = write!($out, $($arg)*);
    }};
}
pub(crate) use w;

/// Reads fixed-layout info structs; every read is bounds-checked.
#[derive(Debug, Clone, Copy)]
pub struct Info<'a>(pub &'a [u8]);

impl<'a> Info<'a> {
    /// Byte at `at`.
    pub fn u8(&self, at: usize) -> Option<u8> {
        self.0.get(at).copied()
    }
    /// Host-order (little-endian on every target labscope builds) u16.
    pub fn u16(&self, at: usize) -> Option<u16> {
        Some(u16::from_le_bytes(self.0.get(at..at + 2)?.try_into().ok()?))
    }
    /// Network-order u16.
    pub fn be16(&self, at: usize) -> Option<u16> {
        Some(u16::from_be_bytes(self.0.get(at..at + 2)?.try_into().ok()?))
    }
    /// Host-order u32.
    pub fn u32(&self, at: usize) -> Option<u32> {
        Some(u32::from_le_bytes(self.0.get(at..at + 4)?.try_into().ok()?))
    }
    /// Network-order u32.
    pub fn be32(&self, at: usize) -> Option<u32> {
        Some(u32::from_be_bytes(self.0.get(at..at + 4)?.try_into().ok()?))
    }
    /// Host-order i32.
    pub fn i32(&self, at: usize) -> Option<i32> {
        self.u32(at).map(|v| v as i32)
    }
    /// Host-order u64.
    pub fn u64(&self, at: usize) -> Option<u64> {
        Some(u64::from_le_bytes(self.0.get(at..at + 8)?.try_into().ok()?))
    }
    /// `n` bytes at `at`.
    pub fn bytes(&self, at: usize, n: usize) -> Option<&'a [u8]> {
        self.0.get(at..at + n)
    }
    /// A C string in the field `[at, at + n)` (up to its NUL).
    pub fn cstr(&self, at: usize, n: usize) -> Option<&'a str> {
        let field = self.bytes(at, n)?;
        let end = field.iter().position(|&b| b == 0).unwrap_or(n);
        Some(std::str::from_utf8(&field[..end]).unwrap_or("?"))
    }
    /// The raw bytes of a C string field (for text that is not UTF-8).
    pub fn cbytes(&self, at: usize, n: usize) -> Option<&'a [u8]> {
        let field = self.bytes(at, n)?;
        let end = field.iter().position(|&b| b == 0).unwrap_or(n);
        Some(&field[..end])
    }
    /// Length of the struct.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Dotted quad of 4 bytes in memory (network) order.
pub fn ipv4(out: &mut String, a: &[u8]) {
    if let [a, b, c, d, ..] = a {
        w!(out, "{a}.{b}.{c}.{d}");
    }
}

/// glibc's `inet_ntop(AF_INET6)`: the longest run (≥ 2, first on a tie) of
/// zero words becomes `::`; `::a.b.c.d` and `::ffff:a.b.c.d` keep the
/// dotted tail.
pub fn ipv6(out: &mut String, a: &[u8]) {
    let Some(a) = a.get(..16) else { return };
    let words: Vec<u16> = a
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    let (mut best, mut best_len) = (0usize, 0usize);
    let mut i = 0;
    while i < 8 {
        if words[i] == 0 {
            let start = i;
            while i < 8 && words[i] == 0 {
                i += 1;
            }
            if i - start > best_len {
                best = start;
                best_len = i - start;
            }
        } else {
            i += 1;
        }
    }
    // A single zero word is not compressed.
    let run = (best_len >= 2).then_some(best..best + best_len);
    let dotted = best == 0 && (best_len == 6 || (best_len == 5 && words[5] == 0xffff));
    let last = if dotted { 6 } else { 8 };
    let mut i = 0;
    while i < last {
        if let Some(r) = run.as_ref().filter(|r| r.start == i) {
            out.push_str("::");
            i = r.end;
            continue;
        }
        if i > 0 && run.as_ref().is_none_or(|r| r.end != i) {
            out.push(':');
        }
        w!(out, "{:x}", words[i]);
        i += 1;
    }
    if dotted {
        if best_len == 5 {
            out.push(':');
        }
        ipv4(out, &a[12..16]);
    }
}

/// An address of the family (4 or 16 bytes used).
pub fn addr(out: &mut String, v6: bool, a: &[u8]) {
    if v6 { ipv6(out, a) } else { ipv4(out, a) }
}

/// Prefix length of a contiguous mask, None otherwise.
pub fn prefix_len(mask: &[u8]) -> Option<u32> {
    let mut n = 0;
    let mut ended = false;
    for &b in mask {
        for bit in (0..8).rev() {
            if b & (1 << bit) != 0 {
                if ended {
                    return None;
                }
                n += 1;
            } else {
                ended = true;
            }
        }
    }
    Some(n)
}

/// `/n` for a contiguous mask (nothing for a full one), else `/` and the
/// mask as an address (`xtables_ipmask_to_numeric` / `ip6mask`).
pub fn mask_suffix(out: &mut String, v6: bool, mask: &[u8]) {
    let bits = if v6 { 128 } else { 32 };
    let mask = &mask[..mask.len().min(bits / 8)];
    match prefix_len(mask) {
        Some(n) if n as usize == bits => {}
        Some(n) => w!(out, "/{n}"),
        None => {
            out.push('/');
            addr(out, v6, mask);
        }
    }
}

/// `xtables_save_string`: bare when made only of `[A-Za-z0-9_-]`, else
/// double-quoted with `"`, `\` and `'` escaped by a backslash.
pub fn save_string(out: &mut String, s: &[u8]) {
    out.push(' ');
    let plain = !s.is_empty()
        && s.iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-');
    if plain {
        out.push_str(&String::from_utf8_lossy(s));
        return;
    }
    out.push('"');
    let text = String::from_utf8_lossy(s);
    for c in text.chars() {
        if matches!(c, '"' | '\\' | '\'') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// ` 0xMARK/0xMASK`, the mask left out when it is 0xffffffff.
pub fn mark_mask(out: &mut String, mark: u32, mask: u32) {
    if mask == u32::MAX {
        w!(out, " 0x{mark:x}");
    } else {
        w!(out, " 0x{mark:x}/0x{mask:x}");
    }
}

/// The protocol name iptables-save prints: its own short table first,
/// then Debian's /etc/protocols (netbase), which is what the save tools on
/// a Debian/Raspberry Pi OS node print; None: the number.
pub fn proto_name(p: u16) -> Option<&'static str> {
    Some(match p {
        6 => "tcp",
        132 => "sctp",
        17 => "udp",
        136 => "udplite",
        1 => "icmp",
        58 => "ipv6-icmp",
        50 => "esp",
        51 => "ah",
        135 => "mobility-header",
        2 => "igmp",
        3 => "ggp",
        4 => "ipencap",
        5 => "st",
        8 => "egp",
        9 => "igp",
        12 => "pup",
        20 => "hmp",
        22 => "xns-idp",
        27 => "rdp",
        29 => "iso-tp4",
        33 => "dccp",
        36 => "xtp",
        37 => "ddp",
        38 => "idpr-cmtp",
        41 => "ipv6",
        43 => "ipv6-route",
        44 => "ipv6-frag",
        45 => "idrp",
        46 => "rsvp",
        47 => "gre",
        57 => "skip",
        59 => "ipv6-nonxt",
        60 => "ipv6-opts",
        73 => "rspf",
        81 => "vmtp",
        88 => "eigrp",
        89 => "ospf",
        93 => "ax.25",
        94 => "ipip",
        97 => "etherip",
        98 => "encap",
        103 => "pim",
        108 => "ipcomp",
        112 => "vrrp",
        115 => "l2tp",
        124 => "isis",
        133 => "fc",
        137 => "mpls-in-ip",
        138 => "manet",
        139 => "hip",
        140 => "shim6",
        141 => "wesp",
        142 => "rohc",
        143 => "ethernet",
        262 => "mptcp",
        _ => return None,
    })
}

/// ` -p NAME` (or the number).
pub fn proto(out: &mut String, p: u16, invert: bool) {
    if invert {
        out.push_str(" !");
    }
    match proto_name(p) {
        Some(n) => w!(out, " -p {n}"),
        None => w!(out, " -p {p}"),
    }
}

/// ` -i NAME` from a name and its byte mask (`save_iface`): the `+` of a
/// wildcard comes from the mask ending before the name does.
pub fn iface(out: &mut String, letter: char, name: &[u8], mask: &[u8], invert: bool) {
    if mask.first().copied().unwrap_or(0) == 0 {
        return;
    }
    if invert {
        out.push_str(" !");
    }
    w!(out, " -{letter} ");
    for i in 0..16.min(name.len()).min(mask.len()) {
        if mask[i] != 0 {
            if name[i] != 0 {
                out.push(name[i] as char);
            }
        } else {
            if i > 0 && name[i - 1] != 0 {
                out.push('+');
            }
            break;
        }
    }
}

/// `-s`/`-d` of an IPv4 rule (`save_ipv4_addr`): nothing for 0/0 not
/// inverted; the address as stored, then `/prefix` (always) or `/mask`.
pub fn ipv4_addr(out: &mut String, letter: char, addr: &[u8], mask: &[u8], invert: bool) {
    if mask == [0, 0, 0, 0] && addr == [0, 0, 0, 0] && !invert {
        return;
    }
    if invert {
        out.push_str(" !");
    }
    w!(out, " -{letter} ");
    ipv4(out, addr);
    match prefix_len(mask) {
        Some(n) => w!(out, "/{n}"),
        None => {
            out.push('/');
            ipv4(out, mask);
        }
    }
}

/// `-s`/`-d` of an IPv6 rule (`save_ipv6_addr`): nothing for prefix 0 not
/// inverted, whatever the address; `/128` printed.
pub fn ipv6_addr(out: &mut String, letter: char, addr: &[u8], mask: &[u8], invert: bool) {
    let len = prefix_len(mask);
    if !invert && len == Some(0) {
        return;
    }
    if invert {
        out.push_str(" !");
    }
    w!(out, " -{letter} ");
    ipv6(out, addr);
    match len {
        Some(n) => w!(out, "/{n}"),
        None => {
            out.push('/');
            ipv6(out, mask);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v6(s: &str) -> String {
        let a: std::net::Ipv6Addr = s.parse().unwrap();
        let mut out = String::new();
        ipv6(&mut out, &a.octets());
        out
    }

    #[test]
    fn ipv6_as_glibc_prints_it() {
        for (input, want) in [
            ("::", "::"),
            ("::1", "::1"),
            ("::2", "::2"),
            ("::1.2.3.4", "::1.2.3.4"),
            ("::ffff:1.2.3.4", "::ffff:1.2.3.4"),
            ("::ffff:0:102:304", "::ffff:0:102:304"),
            ("::100", "::100"),
            ("1:0:0:1::1", "1:0:0:1::1"),
            ("1::1:0:0:1:1", "1::1:0:0:1:1"),
            ("::1:0:0", "::1:0:0"),
            ("fd00:10:42::1", "fd00:10:42::1"),
            ("2001:db8::", "2001:db8::"),
            ("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"),
            ("1:0:2:3:4:5:6:7", "1:0:2:3:4:5:6:7"),
            ("fe80::", "fe80::"),
        ] {
            assert_eq!(v6(input), want, "{input}");
        }
    }

    proptest::proptest! {
        /// Rust's Display agrees with glibc but for `::a.b.c.d` (and the
        /// zero runs that make it).
        #[test]
        fn ipv6_agrees_with_display_elsewhere(words in proptest::array::uniform8(proptest::prop_oneof![proptest::strategy::Just(0u16), proptest::num::u16::ANY])) {
            let a = std::net::Ipv6Addr::from(words);
            let mut out = String::new();
            ipv6(&mut out, &a.octets());
            if words[..6] != [0; 6] || words[6] == 0 {
                proptest::prop_assert_eq!(out, a.to_string());
            }
        }
    }

    #[test]
    fn strings_are_quoted_as_xtables_does() {
        let q = |s: &str| {
            let mut o = String::new();
            save_string(&mut o, s.as_bytes());
            o
        };
        assert_eq!(q("ssh"), " ssh");
        assert_eq!(
            q("kube-system/kube-dns:dns"),
            " \"kube-system/kube-dns:dns\""
        );
        assert_eq!(q("a \"b\" 'c' \\"), " \"a \\\"b\\\" \\'c\\' \\\\\"");
        assert_eq!(q(""), " \"\"");
    }

    #[test]
    fn masks_and_interfaces() {
        let mut o = String::new();
        ipv4_addr(&mut o, 's', &[10, 0, 0, 0], &[255, 0, 0, 0], false);
        ipv4_addr(&mut o, 'd', &[10, 0, 0, 1], &[255, 0, 255, 0], true);
        ipv4_addr(&mut o, 'd', &[0; 4], &[0; 4], false);
        assert_eq!(o, " -s 10.0.0.0/8 ! -d 10.0.0.1/255.0.255.0");
        let mut o = String::new();
        let mut name = [0u8; 16];
        name[..4].copy_from_slice(b"eth+");
        let mut mask = [0u8; 16];
        mask[..3].fill(0xff);
        iface(&mut o, 'i', &name, &mask, true);
        let mut name = [0u8; 16];
        name[..4].copy_from_slice(b"eth0");
        let mut mask = [0u8; 16];
        mask[..5].fill(0xff);
        iface(&mut o, 'o', &name, &mask, false);
        assert_eq!(o, " ! -i eth+ -o eth0");
    }
}
