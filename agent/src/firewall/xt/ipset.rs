//! ipset names by index, asked of the kernel as iptables asks
//! (`getsockopt(SOL_IP, SO_IP_SET)`: `IP_SET_OP_VERSION`, then
//! `IP_SET_OP_GET_BYINDEX`). One socket serves a whole read; answers are
//! remembered for it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::SetNames;

/// SO_IP_SET.
const SO_IP_SET: i32 = 83;
/// IP_SET_OP_VERSION.
const OP_VERSION: u32 = 0x100;
/// IP_SET_OP_GET_BYINDEX.
const OP_GET_BYINDEX: u32 = 7;

/// The kernel's ipset, asked lazily (no socket until a set match appears).
#[derive(Debug, Default)]
pub struct KernelSets {
    state: RefCell<Option<Option<(OwnedFd, u32)>>>,
    names: RefCell<HashMap<u16, Option<String>>>,
}

#[allow(unsafe_code)]
fn getsockopt(fd: &OwnedFd, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut len = buf.len() as nix::libc::socklen_t;
    // SAFETY: `buf` is writable for `len` bytes; the kernel writes at most
    // that many and updates `len`.
    let rc = unsafe {
        nix::libc::getsockopt(
            fd.as_raw_fd(),
            nix::libc::SOL_IP,
            SO_IP_SET,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(len as usize)
}

#[allow(unsafe_code)]
fn open() -> Option<(OwnedFd, u32)> {
    use nix::libc;
    // SAFETY: plain socket(2); the descriptor is owned right away.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::IPPROTO_RAW,
        )
    };
    if fd < 0 {
        return None;
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut req = [0u8; 8];
    req[..4].copy_from_slice(&OP_VERSION.to_ne_bytes());
    let n = getsockopt(&fd, &mut req).ok()?;
    (n == 8).then(|| (fd, u32::from_ne_bytes([req[4], req[5], req[6], req[7]])))
}

impl SetNames for KernelSets {
    fn name(&self, index: u16) -> Option<String> {
        if let Some(known) = self.names.borrow().get(&index) {
            return known.clone();
        }
        let mut state = self.state.borrow_mut();
        let (fd, version) = state.get_or_insert_with(open).as_ref()?;
        let mut req = [0u8; 40];
        req[..4].copy_from_slice(&OP_GET_BYINDEX.to_ne_bytes());
        req[4..8].copy_from_slice(&version.to_ne_bytes());
        req[8..10].copy_from_slice(&index.to_ne_bytes());
        let name = match getsockopt(fd, &mut req) {
            Ok(40) => {
                let field = &req[8..40];
                let end = field.iter().position(|&b| b == 0).unwrap_or(32);
                (end > 0).then(|| String::from_utf8_lossy(&field[..end]).into_owned())
            }
            _ => None,
        };
        self.names.borrow_mut().insert(index, name.clone());
        name
    }
}
