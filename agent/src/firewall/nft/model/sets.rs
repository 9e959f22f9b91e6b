//! Named sets and their elements (`NEWSET`, `NEWSETELEM`).

use super::*;

/// A named set (or an anonymous one, for lookups).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set<'a> {
    /// NFPROTO family.
    pub family: u8,
    /// Table.
    pub table: &'a str,
    /// Name ("__set%d" for anonymous sets).
    pub name: &'a str,
    /// NFT_SET_* flags.
    pub flags: u32,
    /// Key data type (nft's datatype ids, concatenations packed 6 bits each).
    pub key_type: u32,
    /// Key length in bytes.
    pub key_len: u32,
    /// Data type of a map.
    pub data_type: Option<u32>,
    /// Data length of a map.
    pub data_len: Option<u32>,
    /// Policy (0 performance, 1 memory).
    pub policy: Option<u32>,
    /// Declared size.
    pub size: Option<u32>,
    /// Timeout (ms).
    pub timeout: Option<u64>,
    /// GC interval (ms).
    pub gc_interval: Option<u32>,
    /// Field lengths of a concatenated key.
    pub fields: Vec<u32>,
    /// NFTA_SET_USERDATA (key byte order, comment).
    pub userdata: Option<&'a [u8]>,
    /// Kernel handle.
    pub handle: u64,
    /// Object type of an object map.
    pub obj_type: Option<u32>,
}

impl<'a> Set<'a> {
    /// Decodes a NEWSET message payload.
    pub fn decode(payload: &'a [u8]) -> Set<'a> {
        let mut s = Set {
            family: message_family(payload),
            table: "",
            name: "",
            flags: 0,
            key_type: 0,
            key_len: 0,
            data_type: None,
            data_len: None,
            policy: None,
            size: None,
            timeout: None,
            gc_interval: None,
            fields: Vec::new(),
            userdata: None,
            handle: 0,
            obj_type: None,
        };
        for a in attrs(payload) {
            match a.kind {
                1 => s.table = string(a.value),
                2 => s.name = string(a.value),
                3 => s.flags = be32(a.value).unwrap_or(0),
                4 => s.key_type = be32(a.value).unwrap_or(0),
                5 => s.key_len = be32(a.value).unwrap_or(0),
                6 => s.data_type = be32(a.value),
                7 => s.data_len = be32(a.value),
                8 => s.policy = be32(a.value),
                9 => {
                    for d in a.nested() {
                        match d.kind {
                            1 => s.size = be32(d.value),
                            2 => {
                                s.fields = d
                                    .nested()
                                    .filter_map(|f| f.nested().find(|x| x.kind == 1))
                                    .filter_map(|x| be32(x.value))
                                    .collect()
                            }
                            _ => {}
                        }
                    }
                }
                11 => s.timeout = be64(a.value),
                12 => s.gc_interval = be32(a.value),
                13 => s.userdata = Some(a.value),
                15 => s.obj_type = be32(a.value),
                16 => s.handle = be64(a.value).unwrap_or(0),
                _ => {}
            }
        }
        s
    }

    /// Whether nft made it for one rule (`{ … }` in the rule's text).
    pub fn is_anonymous(&self) -> bool {
        self.flags & 0x1 != 0
    }
}

/// One element of a set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element<'a> {
    /// Key bytes.
    pub key: &'a [u8],
    /// End of an interval (NFTA_SET_ELEM_KEY_END, concatenated ranges).
    pub key_end: Option<&'a [u8]>,
    /// Map data.
    pub data: Option<Data<'a>>,
    /// NFT_SET_ELEM_* flags (1: interval end, 2: catch-all).
    pub flags: u32,
    /// Timeout (ms).
    pub timeout: Option<u64>,
    /// Expires in (ms).
    pub expiration: Option<u64>,
    /// Object name of an object map.
    pub objref: Option<&'a str>,
    /// Counter attached to the element (packets, bytes).
    pub counter: Option<(u64, u64)>,
    /// Comment.
    pub comment: Option<&'a str>,
}

/// Decodes a NEWSETELEM message payload into its elements; returns the set
/// name too.
pub fn decode_elements(payload: &[u8]) -> (&str, Vec<Element<'_>>) {
    let mut set = "";
    let mut out = Vec::new();
    for a in attrs(payload) {
        match a.kind {
            2 => set = string(a.value),
            3 => {
                for e in a.nested() {
                    let mut el = Element {
                        key: &[],
                        key_end: None,
                        data: None,
                        flags: 0,
                        timeout: None,
                        expiration: None,
                        objref: None,
                        counter: None,
                        comment: None,
                    };
                    for x in e.nested() {
                        match x.kind {
                            1 => {
                                if let Some(Data::Value(v)) = data(x.value) {
                                    el.key = v;
                                }
                            }
                            2 => el.data = data(x.value),
                            3 => el.flags = be32(x.value).unwrap_or(0),
                            4 => el.timeout = be64(x.value),
                            5 => el.expiration = be64(x.value),
                            6 => el.comment = udata(x.value, 0).map(string),
                            7 => {
                                let ex = Expr::decode(Nla {
                                    kind: 1,
                                    value: x.value,
                                });
                                if ex.kind() == ExprKind::Counter {
                                    el.counter =
                                        Some((ex.u64(2).unwrap_or(0), ex.u64(1).unwrap_or(0)));
                                }
                            }
                            9 => el.objref = Some(string(x.value)),
                            10 => {
                                if let Some(Data::Value(v)) = data(x.value) {
                                    el.key_end = Some(v);
                                }
                            }
                            11 => {
                                for le in x.nested() {
                                    let ex = Expr::decode(le);
                                    if ex.kind() == ExprKind::Counter {
                                        el.counter =
                                            Some((ex.u64(2).unwrap_or(0), ex.u64(1).unwrap_or(0)));
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                    out.push(el);
                }
            }
            _ => {}
        }
    }
    (set, out)
}
