//! The receive paths (`--rx`), one choice per receiving side whatever mode the peer sends
//! in: where the bytes go once TCP has them.
//!
//! - `copy`: the mode's own receive (recv/recvmsg into the message, see the mode's file).
//! - `discard`: `recv(MSG_TRUNC)`. On TCP the kernel advances the stream past the bytes
//!   without copying them anywhere (tcp(7): since Linux 2.4), so what is left is the
//!   sender's cost and the stack's; no buffer is touched, and what can be checked is only
//!   the byte count, and the message boundaries that follow from it. io_uring: `RECV` with
//!   `MSG_TRUNC` and no buffer, *without* `MSG_WAITALL`: io_uring retries a short
//!   MSG_WAITALL receive on the same iterator, which MSG_TRUNC never advances, so the retry
//!   would ask for the whole length again and discard past the message (an echo then
//!   waits for bytes that never come — seen on 6.18); the engine posts the rest itself.
//! - `zerocopy`: `getsockopt(TCP_ZEROCOPY_RECEIVE)` (Linux 4.18) on a region `mmap()`ed
//!   from the socket: the kernel maps into it whole pages of payload whose skb fragments
//!   are exactly one page at offset 0 (`can_map_frag` in net/ipv4/tcp.c), and copies what
//!   is left under a page into `copybuf_address` (Linux 5.11; earlier kernels report it in
//!   `recv_skip_hint`, for a plain `recv`). Each call first zaps the pages it will replace,
//!   so mapped bytes stay readable until the next call, and they are verified before it.
//!   Syscall engine only: io_uring's socket commands (`SOCKET_URING_OP_GETSOCKOPT`, Linux
//!   6.7) take `SOL_SOCKET` options only, not this `IPPROTO_TCP` one.
//!
//! One call moves at most what is left of the message being received, as the copying
//! paths do — except where a server discards a client's stream: there only the byte
//! count is checked, and a call asks for up to [`crate::workload::DISCARD_SPAN`] (whole
//! messages past the one arriving), as a bulk receiver does.

use std::io;
use std::os::fd::RawFd;
use std::ptr::NonNull;

use io_uring::{opcode, squeue};

use super::{on_target, once, CopyPath, MsgArgs, SysForm, Target};
use crate::error::Error;
use crate::message::Message;
use crate::vocab::{Backend, RxMode};
use crate::workload::Flow;

/// Why `rx` cannot run on `backend`, if it cannot; `recv_zc` says whether the kernel's
/// io_uring has `IORING_OP_RECV_ZC` (`None`: not probed).
pub(crate) fn refusal(rx: RxMode, backend: Backend, recv_zc: Option<bool>) -> Option<String> {
    if rx != RxMode::Zerocopy || backend != Backend::Uring {
        return None;
    }
    let has = match recv_zc {
        Some(true) => "this kernel has it, but it is",
        Some(false) => "this kernel lacks it, and it is",
        None => "it is",
    };
    Some(format!(
        "zerocopy receive is syscall-only: TCP_ZEROCOPY_RECEIVE is a getsockopt at \
         IPPROTO_TCP, and io_uring's socket command (SOCKET_URING_OP_GETSOCKOPT, Linux 6.7) \
         takes SOL_SOCKET options only; io_uring's own zero-copy receive \
         (IORING_OP_RECV_ZC, Linux 6.15): {has} not available here (needs NIC header split: \
         a NIC receive queue registered with IORING_REGISTER_ZCRX_IFQ, which loopback and \
         veth lack, and copyperf does not drive it); use --backend syscall on the receiving \
         side or another --rx"
    ))
}

/// The SQE that receives message bytes `from..` on io_uring, by the side's receive path;
/// a discard asks for `want` bytes ([`Flow::rx_want`]);
/// `ioprio` carries the receive flags ([`super::POLL_FIRST`] or 0).
pub(crate) fn uring_recv(
    rx: RxMode,
    copy: &CopyPath,
    target: Target,
    msg: &mut Message,
    (from, want): (usize, usize),
    args: &mut MsgArgs,
    ioprio: u16,
) -> Result<squeue::Entry, Error> {
    match rx {
        RxMode::Copy => Ok((copy.uring.recv)(target, msg, from, args, ioprio)),
        RxMode::Discard => {
            let len = u32::try_from(want).unwrap_or(u32::MAX);
            // No buffer: with MSG_TRUNC TCP never copies, so the kernel writes nowhere. No
            // MSG_WAITALL (see the module's notes): a short receive is continued by the
            // engine with what is left of the message.
            Ok(on_target!(target, |fd| opcode::Recv::new(
                fd,
                std::ptr::null_mut(),
                len
            )
            .flags(libc::MSG_TRUNC)
            .ioprio(ioprio)
            .build()))
        }
        RxMode::Zerocopy => Err(Error::Internal(
            refusal(rx, Backend::Uring, None).expect("refused on uring"),
        )),
    }
}

/// The page size, which TCP_ZEROCOPY_RECEIVE maps in.
fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as usize
    } else {
        4096
    }
}

/// How long a zero-copy receive that may block waits for data before it gives the
/// syscall engine back control (its stop flag, the message's deadline): the engine's slice.
const ZC_POLL_MS: libc::c_int = 100;

/// A receive path as one connection runs it on the syscall engine.
pub(crate) enum SysRx {
    Copy,
    Discard,
    Zerocopy(ZcMap),
}

impl SysRx {
    /// Prepares `rx` on the connected socket `fd` for messages of `size` bytes.
    pub fn new(rx: RxMode, fd: RawFd, size: usize) -> Result<SysRx, Error> {
        Ok(match rx {
            RxMode::Copy => SysRx::Copy,
            RxMode::Discard => SysRx::Discard,
            RxMode::Zerocopy => SysRx::Zerocopy(ZcMap::new(fd, size)?),
        })
    }

    /// One receive for message bytes `off..` (of `msg`, which only a copy writes into);
    /// returns the bytes that arrived, 0 at the end of the stream. A discard asks for what
    /// the flow allows ([`Flow::rx_want`]), which may run past the message. Calls beyond
    /// the first are counted into the flow here; zero-copy spans are shown to it where they
    /// lie.
    pub fn recv(
        &mut self,
        fd: RawFd,
        sys: &SysForm,
        msg: &mut Message,
        off: usize,
        flags: libc::c_int,
        flow: &mut Flow,
    ) -> io::Result<usize> {
        // A page-cache sender's socket may be left O_NONBLOCK by its last sendfile or
        // splice (they have no MSG_DONTWAIT): a blocking receive needs it off, or it spins
        // on EAGAIN. The copying receive of those modes sees to it itself.
        if flags & libc::MSG_DONTWAIT == 0 && !matches!(self, SysRx::Copy) {
            if let Some(pc) = flow.page_cache() {
                pc.set_nonblocking(fd, false)?;
            }
        }
        match self {
            SysRx::Copy => (sys.recv)(fd, msg, off, flags),
            SysRx::Discard => {
                let want = flow.rx_want(off);
                // SAFETY: with MSG_TRUNC, TCP copies nothing to user space: no buffer is
                // written, so none is passed.
                once(unsafe { libc::recv(fd, std::ptr::null_mut(), want, flags | libc::MSG_TRUNC) })
            }
            SysRx::Zerocopy(map) => map.recv(fd, off, msg.size() - off, flags, flow),
        }
    }
}

/// The mapping a zero-copy receive fills, and the buffer for what it cannot map.
pub(crate) struct ZcMap {
    region: NonNull<u8>,
    len: usize,
    page: usize,
    copybuf: Box<[u8]>,
}

// SAFETY: the mapping is used only by the thread running the connection it belongs to;
// it moves with the connection, never shared.
unsafe impl Send for ZcMap {}

/// `struct tcp_zerocopy_receive` (include/uapi/linux/tcp.h, Linux 5.11+ layout; older
/// kernels read the prefix they know).
#[repr(C)]
#[derive(Default)]
struct ZcReceive {
    address: u64,
    length: u32,
    recv_skip_hint: u32,
    inq: u32,
    err: i32,
    copybuf_address: u64,
    copybuf_len: i32,
    flags: u32,
    msg_control: u64,
    msg_controllen: u64,
    msg_flags: u32,
    reserved: u32,
}

/// TCP_ZEROCOPY_RECEIVE (include/uapi/linux/tcp.h).
const TCP_ZEROCOPY_RECEIVE: libc::c_int = 35;

impl ZcMap {
    /// Maps a read-only region of the socket big enough for one message's pages.
    fn new(fd: RawFd, size: usize) -> Result<ZcMap, Error> {
        let page = page_size();
        let len = size.div_ceil(page).max(1) * page;
        // SAFETY: a fresh shared mapping of the socket; TCP's mmap refuses write or exec
        // access, and no memory of ours is touched.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            let e = io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::ENODEV) | Some(libc::EOPNOTSUPP) | Some(libc::EACCES) => {
                    Error::Unsupported {
                        feature: "TCP_ZEROCOPY_RECEIVE (mmap of a TCP socket)".into(),
                        kernel: crate::error::kernel_release(),
                        hint: format!("it needs Linux 4.18 or later ({e}); use another --rx"),
                    }
                }
                _ => Error::io("mapping the socket for zero-copy receive", e),
            });
        }
        Ok(ZcMap {
            region: NonNull::new(ptr.cast()).expect("mmap returned null"),
            len,
            page,
            copybuf: vec![0; size].into_boxed_slice(),
        })
    }

    fn recv(
        &mut self,
        fd: RawFd,
        off: usize,
        want: usize,
        flags: libc::c_int,
        flow: &mut Flow,
    ) -> io::Result<usize> {
        let mut calls = 0u64;
        let result = self.recv_counted(fd, off, want, flags, flow, &mut calls);
        // The engine counts one call per receive; the others are counted here.
        flow.stats.io.syscalls += calls.saturating_sub(1);
        result
    }

    /// [`ZcMap::recv`], counting the calls it makes into `calls`.
    fn recv_counted(
        &mut self,
        fd: RawFd,
        off: usize,
        want: usize,
        flags: libc::c_int,
        flow: &mut Flow,
        calls: &mut u64,
    ) -> io::Result<usize> {
        if flags & libc::MSG_DONTWAIT == 0 {
            // The getsockopt never waits: wait here, at most a slice, as a blocking
            // receive would.
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            if unsafe { libc::poll(&mut pfd, 1, ZC_POLL_MS) } < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            *calls += 1;
        }
        let map_len = (want & !(self.page - 1)).min(self.len);
        let (mut got, mut hint) = (0, 0);
        if map_len > 0 {
            let tail = want - map_len;
            let mut zc = ZcReceive {
                address: self.region.as_ptr() as u64,
                length: map_len as u32,
                copybuf_address: self.copybuf.as_mut_ptr() as u64,
                // Only the sub-page tail: the kernel copies everything when all it holds
                // fits in the copy buffer, which must not take what it could map.
                copybuf_len: tail as i32,
                ..ZcReceive::default()
            };
            let mut optlen = std::mem::size_of::<ZcReceive>() as libc::socklen_t;
            // SAFETY: `zc` is a live tcp_zerocopy_receive of the length given; the kernel
            // maps pages only into our socket mapping at `address` (at most `map_len`
            // bytes, inside it) and copies at most `copybuf_len` bytes into `copybuf`.
            let rc = unsafe {
                libc::getsockopt(
                    fd,
                    libc::IPPROTO_TCP,
                    TCP_ZEROCOPY_RECEIVE,
                    (&mut zc as *mut ZcReceive).cast(),
                    &mut optlen,
                )
            };
            *calls += 1;
            if rc < 0 {
                let e = io::Error::last_os_error();
                // EIO: nothing queued and the peer is done; a plain recv tells the end
                // of the stream from an error.
                if e.raw_os_error() != Some(libc::EIO) {
                    return Err(e);
                }
            } else {
                if zc.copybuf_len < 0 {
                    return Err(io::Error::from_raw_os_error(-zc.copybuf_len));
                }
                let mapped = zc.length as usize;
                let copied = zc.copybuf_len as usize;
                // SAFETY: the kernel mapped `mapped` bytes of payload at the start of our
                // region (read-only, ours until the next call or munmap); `copied` bytes
                // landed in `copybuf`.
                let pages = unsafe { std::slice::from_raw_parts(self.region.as_ptr(), mapped) };
                flow.rx_seen(off, pages);
                flow.rx_seen(off + mapped, &self.copybuf[..copied]);
                flow.stats.rx.mapped += mapped as u64;
                flow.stats.rx.copied += copied as u64;
                got = mapped + copied;
                hint = zc.recv_skip_hint as usize;
            }
        }
        // What could not be mapped (a sub-page remainder, fragments not laid out in whole
        // pages) is read plainly; so is the end of the stream or an error.
        if got < want && (got == 0 || hint > 0) {
            let n = if hint > 0 {
                hint.min(want - got)
            } else {
                want - got
            };
            *calls += 1;
            let buf = &mut self.copybuf[..n];
            // SAFETY: `buf` is valid for writes of its length for the duration of the call.
            let r = once(unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), n, libc::MSG_DONTWAIT) });
            match r {
                Ok(k) if k > 0 => {
                    flow.rx_seen(off + got, &self.copybuf[..k]);
                    flow.stats.rx.copied += k as u64;
                    got += k;
                }
                Ok(_) => {}
                Err(e) if got == 0 => return Err(e),
                Err(_) => {}
            }
        }
        Ok(got)
    }
}

impl Drop for ZcMap {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `new` mapped; nothing refers into it past the
        // connection, whose receives end before it drops.
        unsafe { libc::munmap(self.region.as_ptr().cast(), self.len) };
    }
}
