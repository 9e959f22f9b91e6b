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
    message(message_type, NLM_F_REQUEST | NLM_F_DUMP, sequence, body)
}

fn message(message_type: u16, flags: u16, sequence: u32, body: &[u8]) -> Vec<u8> {
    let len = NLMSG_HDRLEN + body.len();
    let mut buf = Vec::with_capacity(len);
    buf.extend_from_slice(&(len as u32).to_ne_bytes());
    buf.extend_from_slice(&message_type.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&sequence.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.extend_from_slice(body);
    buf
}

fn kernel_error(message: &RawMessage<'_>) -> Option<Error> {
    let code = message
        .payload()
        .get(..4)
        .map(|b| i32::from_ne_bytes(b.try_into().unwrap_or_default()))
        .unwrap_or(-5);
    (code != 0).then(|| Error::Kernel(io::Error::from_raw_os_error(-code)))
}

/// Sends one (non-dump) request and returns the payload of the kernel's
/// answer, after the netlink header.
pub fn request(protocol: isize, message_type: u16, body: &[u8]) -> Result<Vec<u8>> {
    let mut whole = request_message(protocol, message_type, body)?;
    whole.drain(..NLMSG_HDRLEN);
    Ok(whole)
}

/// Sends one (non-dump) request and returns the kernel's answer, header
/// included (for decoders that read whole messages).
pub fn request_message(protocol: isize, message_type: u16, body: &[u8]) -> Result<Vec<u8>> {
    let mut socket = Socket::new(protocol).map_err(Error::Socket)?;
    socket.bind_auto().map_err(Error::Socket)?;
    socket
        .connect(&SocketAddr::new(0, 0))
        .map_err(Error::Socket)?;
    socket
        .send(&message(message_type, NLM_F_REQUEST, 1, body), 0)
        .map_err(Error::Socket)?;
    let mut buf: Vec<u8> = Vec::with_capacity(32 * 1024);
    socket.recv(&mut buf, 0).map_err(Error::Socket)?;
    let first = split_messages(&buf).next().ok_or(Error::Malformed {
        offset: 0,
        reason: "empty answer",
    })??;
    if first.message_type == NLMSG_ERROR {
        return Err(kernel_error(&first).unwrap_or(Error::Malformed {
            offset: 0,
            reason: "acknowledgement instead of an answer",
        }));
    }
    Ok(first.bytes.to_vec())
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
    visit: impl FnMut(RawMessage<'_>) -> ControlFlow<()>,
) -> Result<DumpStats> {
    let mut open = OpenDump::start(protocol, request)?;
    open.walk(visit)?;
    Ok(open.stats)
}

/// Receive buffer of a dump. 64 KiB is above the kernel's per-recv dump chunk
/// (it fills at most a page or two per skb for these families), so no message
/// is ever truncated.
const RECV_BUFFER: usize = 64 * 1024;

/// A dump that can pause between two messages and resume later, even from
/// another thread: the kernel keeps its place in the table for as long as the
/// socket is open, and produces the next batch only when it is read. Paused,
/// it holds one socket and the unread rest of one batch.
pub struct OpenDump {
    socket: Socket,
    buf: Vec<u8>,
    /// Offset of the next message not yet accepted by a visitor.
    pos: usize,
    done: bool,
    /// Messages accepted so far, over every walk.
    pub stats: DumpStats,
}

impl std::fmt::Debug for OpenDump {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenDump")
            .field("buffered", &(self.buf.len() - self.pos))
            .field("done", &self.done)
            .field("stats", &self.stats)
            .finish()
    }
}

impl OpenDump {
    /// Opens a socket of `protocol` and sends `request`.
    pub fn start(protocol: isize, request: &[u8]) -> Result<Self> {
        let mut socket = Socket::new(protocol).map_err(Error::Socket)?;
        socket.bind_auto().map_err(Error::Socket)?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(Error::Socket)?;
        socket.send(request, 0).map_err(Error::Socket)?;
        Ok(Self {
            socket,
            buf: Vec::new(),
            pos: 0,
            done: false,
            stats: DumpStats::default(),
        })
    }

    /// Whether the kernel has said NLMSG_DONE and every message was accepted.
    pub fn finished(&self) -> bool {
        self.done && self.pos >= self.buf.len()
    }

    /// Feeds messages to `visit` until the dump ends (`Ok(true)`) or `visit`
    /// breaks (`Ok(false)`). The message `visit` broke on is not accepted: the
    /// next walk starts with it.
    pub fn walk(
        &mut self,
        mut visit: impl FnMut(RawMessage<'_>) -> ControlFlow<()>,
    ) -> Result<bool> {
        loop {
            if self.pos >= self.buf.len() {
                if self.done {
                    return Ok(true);
                }
                self.buf.clear();
                self.buf.reserve(RECV_BUFFER);
                self.pos = 0;
                let n = self.socket.recv(&mut self.buf, 0).map_err(Error::Socket)?;
                if n == 0 {
                    self.done = true;
                    return Ok(true);
                }
            }
            let mut pos = self.pos;
            for message in split_messages(&self.buf[self.pos..]) {
                let message = message?;
                let step = (message.bytes.len() + 3) & !3;
                match message.message_type {
                    NLMSG_DONE => {
                        self.done = true;
                        self.pos = self.buf.len();
                        return Ok(true);
                    }
                    NLMSG_ERROR => {
                        if let Some(e) = kernel_error(&message) {
                            self.done = true;
                            self.pos = self.buf.len();
                            return Err(e);
                        }
                    }
                    _ => {
                        if visit(message).is_break() {
                            self.pos = pos;
                            return Ok(false);
                        }
                        self.stats.messages += 1;
                        if message.flags & NLM_F_DUMP_INTR != 0 {
                            self.stats.interrupted = true;
                        }
                    }
                }
                pos += step;
            }
            self.pos = self.buf.len();
        }
    }

    /// Gives back the receive buffer's spare room before the dump is parked,
    /// keeping only the messages not yet accepted.
    pub fn shrink(&mut self) {
        self.buf.drain(..self.pos.min(self.buf.len()));
        self.pos = 0;
        self.buf.shrink_to_fit();
    }
}
