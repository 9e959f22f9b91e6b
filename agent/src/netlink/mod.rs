//! The socket half of every netlink collector: send one dump request, walk the
//! multipart answer message by message, and hand each message's bytes to a
//! caller-supplied visitor. Parsing lives with each collector, as pure functions.

pub mod nla;

use std::io;
use std::ops::ControlFlow;

use netlink_sys::{Socket, SocketAddr};

/// Netlink header length (`struct nlmsghdr`).
pub const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
/// The kernel sets this on a message when the dump was interrupted by a change.
pub const NLM_F_DUMP_INTR: u16 = 0x10;

/// Errors of the netlink socket layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The socket could not be opened, bound, written or read.
    #[error("netlink socket: {0}")]
    Socket(#[source] io::Error),
    /// The kernel answered the dump with an error code.
    #[error("kernel refused the netlink request: {0}")]
    Kernel(#[source] io::Error),
    /// A message was shorter than its header claims.
    #[error("malformed netlink message at byte {offset}: {reason}")]
    Malformed {
        /// Offset of the bad message in the receive buffer.
        offset: usize,
        /// What was wrong.
        reason: &'static str,
    },
}

impl Error {
    /// Whether the kernel refused for lack of privilege (EPERM/EACCES).
    pub fn is_permission_denied(&self) -> bool {
        match self {
            Error::Socket(e) | Error::Kernel(e) => {
                matches!(e.raw_os_error(), Some(1) | Some(13))
            }
            Error::Malformed { .. } => false,
        }
    }
}

/// Result alias of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One message of a dump, as the visitor sees it.
#[derive(Debug, Clone, Copy)]
pub struct RawMessage<'a> {
    /// `nlmsg_type`.
    pub message_type: u16,
    /// `nlmsg_flags`.
    pub flags: u16,
    /// The whole message, header included.
    pub bytes: &'a [u8],
}

impl RawMessage<'_> {
    /// The payload after the netlink header.
    pub fn payload(&self) -> &[u8] {
        &self.bytes[NLMSG_HDRLEN..]
    }
}

/// Builds a dump request: netlink header plus the family header `body`.
pub fn dump_request(message_type: u16, sequence: u32, body: &[u8]) -> Vec<u8> {
    let len = NLMSG_HDRLEN + body.len();
    let mut buf = Vec::with_capacity(len);
    buf.extend_from_slice(&(len as u32).to_ne_bytes());
    buf.extend_from_slice(&message_type.to_ne_bytes());
    buf.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    buf.extend_from_slice(&sequence.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.extend_from_slice(body);
    buf
}

/// Splits a receive buffer into netlink messages. Pure: used by the dump loop
/// and by tests that replay captured bytes.
pub fn split_messages(buf: &[u8]) -> impl Iterator<Item = Result<RawMessage<'_>>> {
    let mut offset = 0usize;
    std::iter::from_fn(move || {
        if offset + NLMSG_HDRLEN > buf.len() {
            return None;
        }
        let at = offset;
        let len = u32::from_ne_bytes(buf[at..at + 4].try_into().ok()?) as usize;
        if len < NLMSG_HDRLEN || at + len > buf.len() {
            offset = buf.len();
            return Some(Err(Error::Malformed {
                offset: at,
                reason: "length outside the buffer",
            }));
        }
        let message_type = u16::from_ne_bytes([buf[at + 4], buf[at + 5]]);
        let flags = u16::from_ne_bytes([buf[at + 6], buf[at + 7]]);
        offset = at + ((len + 3) & !3);
        Some(Ok(RawMessage {
            message_type,
            flags,
            bytes: &buf[at..at + len],
        }))
    })
}

/// Statistics of one dump.
#[derive(Debug, Default, Clone, Copy)]
pub struct DumpStats {
    /// Messages handed to the visitor.
    pub messages: u64,
    /// Whether any message carried NLM_F_DUMP_INTR (the table changed mid-dump).
    pub interrupted: bool,
}

/// Sends `request` on a new socket of `protocol` and feeds every answer message
/// to `visit` until NLMSG_DONE. Memory stays at one receive buffer whatever the
/// size of the dump. The visitor may stop early with `ControlFlow::Break`.
pub fn dump(
    protocol: isize,
    request: &[u8],
    mut visit: impl FnMut(RawMessage<'_>) -> ControlFlow<()>,
) -> Result<DumpStats> {
    let mut socket = Socket::new(protocol).map_err(Error::Socket)?;
    socket.bind_auto().map_err(Error::Socket)?;
    socket
        .connect(&SocketAddr::new(0, 0))
        .map_err(Error::Socket)?;
    socket.send(request, 0).map_err(Error::Socket)?;

    let mut stats = DumpStats::default();
    // 64 KiB is above the kernel's per-recv dump chunk (it fills at most a page
    // or two per skb for these families), so no message is ever truncated.
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    loop {
        buf.clear();
        let n = socket.recv(&mut buf, 0).map_err(Error::Socket)?;
        if n == 0 {
            return Ok(stats);
        }
        for message in split_messages(&buf) {
            let message = message?;
            match message.message_type {
                NLMSG_DONE => return Ok(stats),
                NLMSG_ERROR => {
                    let payload = message.payload();
                    let code = payload
                        .get(..4)
                        .map(|b| i32::from_ne_bytes(b.try_into().unwrap_or_default()))
                        .unwrap_or(-5);
                    if code == 0 {
                        continue;
                    }
                    return Err(Error::Kernel(io::Error::from_raw_os_error(-code)));
                }
                _ => {
                    stats.messages += 1;
                    if message.flags & NLM_F_DUMP_INTR != 0 {
                        stats.interrupted = true;
                    }
                    if visit(message).is_break() {
                        return Ok(stats);
                    }
                }
            }
        }
    }
}
