//! Set elements as nft prints them inline (`{ 80, 443 }`, `{ 10.0.0.0/8,
//! 172.16.0.1-172.16.0.9 }`, `{ 0 : goto a, 1 : goto b }`): intervals
//! rebuilt from their end markers, prefixes recognised.

use std::fmt::Write;

use super::super::model::{Data, Element};
use super::super::types::{Ty, value};
use super::SetView;
use super::statements::verdict_text;

/// Splits a concatenated key into its parts (each padded to 4 bytes).
fn split_key<'k>(key: &'k [u8], widths: &[u32]) -> Vec<&'k [u8]> {
    let mut out = Vec::new();
    let mut at = 0usize;
    for &w in widths {
        let end = (at + w as usize).min(key.len());
        out.push(&key[at..end]);
        at += (w as usize).div_ceil(4) * 4;
        if at > key.len() {
            at = key.len();
        }
    }
    out
}

/// One key as nft prints it (concatenations joined by ` . `).
fn key_text(out: &mut String, key: &[u8], tys: &[Ty], widths: &[u32]) {
    if tys.len() <= 1 {
        value(out, tys.first().copied().unwrap_or(Ty::Int), key);
        return;
    }
    for (i, (part, ty)) in split_key(key, widths).iter().zip(tys).enumerate() {
        if i > 0 {
            out.push_str(" . ");
        }
        value(out, *ty, part);
    }
}

/// The inline `{ … }` of an anonymous set or map.
pub(super) fn elements_text(v: &SetView<'_>, tys: &[Ty]) -> String {
    let widths: Vec<u32> = if v.set.fields.is_empty() {
        tys.iter().map(|_| 4).collect()
    } else {
        v.set.fields.clone()
    };
    let widths = if tys.len() == 1 {
        vec![v.set.key_len]
    } else {
        widths
    };
    let interval = v.set.flags & 0x4 != 0 && v.set.fields.len() <= 1;
    let mut items: Vec<String> = Vec::new();
    if interval {
        let mut els: Vec<&Element<'_>> = v.elements.iter().collect();
        els.sort_by(|a, b| a.key.cmp(b.key));
        let mut i = 0;
        while i < els.len() {
            let e = els[i];
            if e.flags & 1 != 0 {
                i += 1;
                continue;
            }
            let ty = tys.first().copied().unwrap_or(Ty::Int);
            let mut s = String::new();
            let end = els.get(i + 1).filter(|n| n.flags & 1 != 0).map(|n| n.key);
            match end {
                Some(end) => {
                    let last = decrement(end);
                    if let Some(n) = prefix_of(e.key, &last) {
                        value(&mut s, ty, e.key);
                        let _ = write!(s, "/{n}");
                    } else if last == e.key {
                        value(&mut s, ty, e.key);
                    } else {
                        value(&mut s, ty, e.key);
                        s.push('-');
                        value(&mut s, ty, &last);
                    }
                    i += 2;
                }
                None => {
                    value(&mut s, ty, e.key);
                    let max = vec![0xffu8; e.key.len()];
                    if e.key != max.as_slice() {
                        s.push('-');
                        value(&mut s, ty, &max);
                    }
                    i += 1;
                }
            }
            element_data(&mut s, e);
            items.push(s);
        }
    } else {
        let mut els: Vec<&Element<'_>> = v.elements.iter().collect();
        els.sort_by(|a, b| a.key.cmp(b.key));
        for e in els {
            let mut s = String::new();
            key_text(&mut s, e.key, tys, &widths);
            if let Some(end) = e.key_end {
                s.push('-');
                key_text(&mut s, end, tys, &widths);
            }
            element_data(&mut s, e);
            items.push(s);
        }
    }
    format!("{{ {} }}", items.join(", "))
}

fn element_data(s: &mut String, e: &Element<'_>) {
    match e.data {
        Some(Data::Verdict(v)) => {
            s.push_str(" : ");
            s.push_str(&verdict_text(v.code, v.chain));
        }
        Some(Data::Value(d)) => {
            s.push_str(" : ");
            value(s, Ty::BeInt, d);
        }
        None => {}
    }
}

/// The key just before `k` (big-endian decrement).
fn decrement(k: &[u8]) -> Vec<u8> {
    let mut v = k.to_vec();
    for b in v.iter_mut().rev() {
        if *b == 0 {
            *b = 0xff;
        } else {
            *b -= 1;
            break;
        }
    }
    v
}

/// The prefix length when `[start, last]` is exactly one prefix (and not a
/// single value).
fn prefix_of(start: &[u8], last: &[u8]) -> Option<u32> {
    if start == last || start.len() != last.len() {
        return None;
    }
    let bits = start.len() as u32 * 8;
    let diff: Vec<u8> = start.iter().zip(last).map(|(a, b)| a ^ b).collect();
    let host = diff.iter().rev().map(|&b| b.count_ones()).sum::<u32>();
    // The differing bits must be the low `host` bits, zero in start and
    // one in last.
    let n = bits - host;
    for i in 0..bits {
        let byte = (i / 8) as usize;
        let bit = 7 - (i % 8);
        let s = start[byte] >> bit & 1;
        let l = last[byte] >> bit & 1;
        if i < n {
            if s != l {
                return None;
            }
        } else if s != 0 || l != 1 {
            return None;
        }
    }
    Some(n)
}
