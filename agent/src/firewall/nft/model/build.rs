//! Builders of kernel-shaped nf_tables messages, for tests and benchmarks.

use crate::netlink::nla::build::{nested, nla};

/// A string attribute with its NUL.
pub fn s(kind: u16, v: &str) -> Vec<u8> {
    let mut b = v.as_bytes().to_vec();
    b.push(0);
    nla(kind, &b)
}

/// A big-endian u32 attribute.
pub fn u32(kind: u16, v: u32) -> Vec<u8> {
    nla(kind, &v.to_be_bytes())
}

/// A big-endian u64 attribute.
pub fn u64(kind: u16, v: u64) -> Vec<u8> {
    nla(kind, &v.to_be_bytes())
}

/// NFTA_DATA_VALUE nested in attribute `kind`.
pub fn value(kind: u16, v: &[u8]) -> Vec<u8> {
    nested(kind, &[nla(1, v)])
}

/// NFTA_DATA_VERDICT nested in attribute `kind`.
pub fn verdict(kind: u16, code: i32, chain: Option<&str>) -> Vec<u8> {
    let mut parts = vec![nla(1, &code.to_be_bytes())];
    if let Some(c) = chain {
        parts.push(s(2, c));
    }
    nested(kind, &[nested(2, &parts)])
}

/// One expression (NFTA_LIST_ELEM) with its data attributes.
pub fn expr(name: &str, data: &[Vec<u8>]) -> Vec<u8> {
    nested(1, &[s(1, name), nested(2, data)])
}

/// A NEWRULE payload (nfgenmsg + attributes).
pub fn rule(
    family: u8,
    table: &str,
    chain: &str,
    exprs: &[Vec<u8>],
    userdata: Option<&[u8]>,
) -> Vec<u8> {
    let mut out = vec![family, 0, 0, 0];
    out.extend(s(1, table));
    out.extend(s(2, chain));
    out.extend(u64(3, 1));
    out.extend(nested(4, exprs));
    if let Some(u) = userdata {
        out.extend(nla(7, u));
    }
    out
}
