//! A copy mode's whole behaviour, one file per mode: what its buffers hold, how a socket
//! is prepared for it, and the calls that move a message — the syscall form and the
//! io_uring form side by side, in the spirit of monoio's op structs. Backends look a mode
//! up here ([`path`]) and never match on it; adding a send path is one new file and one
//! line in [`path`].
//!
//! Buffers move into an operation and come back with its result: a syscall borrows the
//! message for the call; an SQE's message is moved by the backend into its in-kernel table
//! before the SQE is pushed and moved out by the completion that ends the kernel's use of
//! it. Every pointer handed to the kernel is made in this module, with its SAFETY argument
//! where it is made.

mod one_copy;
pub(crate) mod rx;
mod sendfile;
mod splice;
mod two_copy;
mod zc;
mod zc_fixed;

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, RawFd};

use io_uring::{opcode, squeue};

use crate::error::Error;
use crate::message::{Message, FIELDS};
use crate::vocab::{Backend, Mode};

/// What a copy mode is and does on each engine.
pub(crate) struct CopyPath {
    pub mode: Mode,
    /// Messages carry a contiguous wire buffer: the fields are serialized into it before
    /// every send, and received into it and copied out after (the user-space copies).
    pub wire: bool,
    /// The fields live in a page-aligned region registered as fixed buffers.
    pub fixed: bool,
    /// The kernel is asked not to copy: a buffer is the kernel's until its completion.
    pub zero_copy: bool,
    /// The syscall form; `None` where the mode has none.
    pub syscall: Option<SysForm>,
    /// The io_uring form.
    pub uring: UringForm,
    /// The fields live in a memfd's page cache, which the kernel sends by reference: a
    /// region sent from may be written again only once the peer has read it.
    pub file: bool,
}

/// A mode on the syscall engine.
pub(crate) struct SysForm {
    /// Prepares a connected socket before the first send.
    pub setup: fn(BorrowedFd<'_>) -> Result<(), Error>,
    /// Flags every send carries on top of the engine's own.
    pub send_flags: libc::c_int,
    /// One send call for message bytes `off..`; returns the bytes taken.
    pub send: fn(RawFd, &mut Message, usize, libc::c_int) -> io::Result<usize>,
    /// One receive call into message bytes `off..`; returns the bytes written.
    pub recv: fn(RawFd, &mut Message, usize, libc::c_int) -> io::Result<usize>,
}

/// A mode on the io_uring engine.
pub(crate) struct UringForm {
    /// The opcodes it needs beyond [`COMMON_OPS`].
    pub ops: &'static [OpInfo],
    /// The flags every one of its message sends carries (0 for the page-cache modes, whose
    /// splices take none of the MSG_* ones): what `send` passes and [`Mode::send_flags`]
    /// records. zc-fixed adds MSG_MORE to some ([`zc_send_flags`]), which the engine
    /// counts (`IoStats::more_sends`).
    pub send_flags: libc::c_int,
    /// `send` adds MSG_MORE when told that another send of its chain follows at once
    /// (zc-fixed); the connection tells it so only while a message is smaller than a
    /// segment, and counts each such send.
    pub more_in_chain: bool,
    /// The SQE that sends a whole message (MSG_WAITALL). `more`: another send of the same
    /// linked chain follows at once; zc-fixed then passes MSG_MORE, so small sends share a
    /// segment instead of each becoming one ([`zc_send_flags`]; copying sends and zc ignore
    /// it: copies coalesce in the socket buffer, by Nagle where `--nodelay auto` leaves it
    /// on).
    pub send: fn(Target, &mut Message, &mut MsgArgs, bool) -> squeue::Entry,
    /// The SQE that receives message bytes `from..` (MSG_WAITALL), with the receive
    /// flags given in `ioprio` ([`POLL_FIRST`] or 0).
    pub recv: fn(Target, &mut Message, usize, &mut MsgArgs, u16) -> squeue::Entry,
    /// The SQE linked in front of every send, where a send takes two steps (splice: the
    /// message's pages into the pipe, then the pipe into the socket).
    pub prep: Option<fn(&mut Message) -> squeue::Entry>,
}

/// The mode's behaviour: the registration of every path.
pub(crate) fn path(mode: Mode) -> &'static CopyPath {
    match mode {
        Mode::TwoCopy => &two_copy::PATH,
        Mode::OneCopy => &one_copy::PATH,
        Mode::Zc => &zc::PATH,
        Mode::ZcFixed => &zc_fixed::PATH,
        Mode::Sendfile => &sendfile::PATH,
        Mode::Splice => &splice::PATH,
    }
}

impl CopyPath {
    /// Whether `backend` implements this mode.
    pub fn runs_on(&self, backend: Backend) -> bool {
        match backend {
            Backend::Syscall => self.syscall.is_some(),
            Backend::Uring => true,
        }
    }
}

/// What callers outside the engine may ask of a mode; the answers come from its file.
impl Mode {
    /// True where the kernel is asked not to copy the payload.
    pub fn is_zero_copy(self) -> bool {
        path(self).zero_copy
    }

    /// True where `backend` implements this mode.
    pub fn supported_on(self, backend: Backend) -> bool {
        path(self).runs_on(backend)
    }
}

impl Mode {
    /// The flags every message send of this mode carries on `backend`, `|`-joined as the
    /// kernel's headers name them, for the record: settings copyperf chose for the user,
    /// which a reader must be able to see. `None` for the page-cache modes, which send by
    /// sendfile(2) or splice(2) and pass none of them. Two flags some sends add are not
    /// here: zc-fixed's MSG_MORE within a linked chain of messages smaller than a segment,
    /// which the uring engine counts (`IoStats::more_sends`), and the syscall engine's
    /// MSG_DONTWAIT on a send while the flow waits to receive (how it avoids blocking; it
    /// does not change what the kernel sends).
    pub fn send_flags(self, backend: Backend) -> Option<String> {
        let path = path(self);
        if path.file || !path.runs_on(backend) {
            return None;
        }
        let flags = match (backend, &path.syscall) {
            (Backend::Syscall, Some(sys)) => SYSCALL_SEND_FLAGS | sys.send_flags,
            _ => path.uring.send_flags,
        };
        let names: Vec<&str> = SEND_FLAG_NAMES
            .iter()
            .filter(|(bit, _)| flags & bit != 0)
            .map(|&(_, name)| name)
            .collect();
        Some(names.join("|"))
    }

    /// How a page-cache mode (sendfile, splice) sends on `backend`, in words for reports;
    /// `None` for the other modes.
    pub fn page_cache_path(self, backend: Backend) -> Option<&'static str> {
        if !path(self).file {
            return None;
        }
        Some(match (backend, self) {
            (Backend::Syscall, Mode::Sendfile) => sendfile::SYSCALL_PATH,
            (Backend::Syscall, _) => splice::SYSCALL_PATH,
            (Backend::Uring, _) => splice::URING_PATH,
        })
    }
}

/// An opcode copyperf may use, and the first kernel that has it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OpInfo {
    pub code: u8,
    pub name: &'static str,
    pub since: &'static str,
}

/// Opcodes every mode needs: the receive and send forms the copying modes use, and the
/// eventfd read that wakes a server worker.
pub(crate) const COMMON_OPS: &[OpInfo] = &[
    OpInfo {
        code: opcode::Send::CODE,
        name: "IORING_OP_SEND",
        since: "5.6",
    },
    OpInfo {
        code: opcode::Recv::CODE,
        name: "IORING_OP_RECV",
        since: "5.6",
    },
    OpInfo {
        code: opcode::SendMsg::CODE,
        name: "IORING_OP_SENDMSG",
        since: "5.3",
    },
    OpInfo {
        code: opcode::RecvMsg::CODE,
        name: "IORING_OP_RECVMSG",
        since: "5.3",
    },
    OpInfo {
        code: opcode::Read::CODE,
        name: "IORING_OP_READ",
        since: "5.6",
    },
];

/// Where an SQE's socket is: a registered (fixed) file or a plain descriptor.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target {
    Fixed(u32),
    Fd(RawFd),
}

/// Builds with `$fd` bound to the target's fixed file or raw descriptor: the opcode
/// builders take either type.
macro_rules! on_target {
    ($target:expr, |$fd:ident| $body:expr) => {
        match $target {
            $crate::path::Target::Fixed(slot) => {
                let $fd = io_uring::types::Fixed(slot);
                $body
            }
            $crate::path::Target::Fd(raw) => {
                let $fd = io_uring::types::Fd(raw);
                $body
            }
        }
    };
}
pub(crate) use on_target;

/// IORING_RECVSEND_POLL_FIRST (in a receive's `ioprio`): wait for readiness before the
/// first attempt, for a receive whose data cannot be there yet.
pub(crate) const POLL_FIRST: u16 = crate::backend::sys::IORING_RECVSEND_POLL_FIRST;

/// Flags every io_uring send carries: the whole message or an error, no SIGPIPE.
pub(crate) const URING_SEND_FLAGS: libc::c_int = libc::MSG_WAITALL | libc::MSG_NOSIGNAL;

/// Flags every syscall-engine send carries, on top of its mode's [`SysForm::send_flags`]:
/// no SIGPIPE (a closed peer is an error, not a signal).
pub(crate) const SYSCALL_SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL;

/// The send flags copyperf passes, by the names the kernel's headers give them.
const SEND_FLAG_NAMES: &[(libc::c_int, &str)] = &[
    (libc::MSG_WAITALL, "MSG_WAITALL"),
    (libc::MSG_NOSIGNAL, "MSG_NOSIGNAL"),
    (libc::MSG_ZEROCOPY, "MSG_ZEROCOPY"),
    (libc::MSG_EOR, "MSG_EOR"),
    (libc::MSG_MORE, "MSG_MORE"),
];

/// A zc-fixed send's flags: its form's `flags`, and MSG_MORE where `more`, the next send
/// of its chain following at once.
/// TCP_NODELAY is on for zero-copy sends (see [`crate::config::auto_nodelay`]), so without
/// MSG_MORE every send went out as a segment of its own, however small — a zero-copy send
/// cannot be copied into the segment before it — and each segment costs a pass through
/// the stack and a wake-up of the receiver. MSG_MORE lets the chain's sends fill a segment
/// together (the kernel links their notifications, Linux 6.10); the chain's last send goes
/// without it and pushes whatever is held. Measured (uring stream, depth 8, 3 interleaved
/// runs of 2 s on a loaded 2-core VM, medians): 1K 0.69 Gbit/s against 0.38 without, 4K
/// 2.29 against 1.89, 16K 3.28 against 2.31.
pub(crate) fn zc_send_flags(flags: libc::c_int, more: bool) -> libc::c_int {
    if more {
        flags | libc::MSG_MORE
    } else {
        flags
    }
}

/// A msghdr and its iovec, at a stable address (one per buffer slot, boxed by the owner)
/// while a SENDMSG/RECVMSG uses them.
pub(crate) struct MsgArgs {
    hdr: libc::msghdr,
    iov: [libc::iovec; FIELDS],
}

impl MsgArgs {
    pub fn new() -> MsgArgs {
        MsgArgs {
            // SAFETY: an all-zero msghdr is a valid empty one.
            hdr: unsafe { std::mem::zeroed() },
            iov: [EMPTY_IOV; FIELDS],
        }
    }

    /// Points the header at the message's bytes `from..` and returns it. The pointers stay
    /// valid while both this MsgArgs (boxed by its connection) and the message (moved into
    /// the connection's in-kernel table until the completion) stay put.
    pub fn fill(&mut self, msg: &mut Message, from: usize) -> *mut libc::msghdr {
        let n = msg.iovecs_from(from, &mut self.iov);
        self.hdr.msg_iov = self.iov.as_mut_ptr();
        self.hdr.msg_iovlen = n;
        &mut self.hdr
    }
}

const EMPTY_IOV: libc::iovec = libc::iovec {
    iov_base: std::ptr::null_mut(),
    iov_len: 0,
};

/// One call's result: a count, or the error (EINTR included: the caller looks at its stop
/// flag and calls again).
fn once(n: isize) -> io::Result<usize> {
    if n >= 0 {
        Ok(n as usize)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// No socket preparation.
fn no_setup(_: BorrowedFd<'_>) -> Result<(), Error> {
    Ok(())
}

/// send() of the serialized wire buffer, bytes `off..`.
fn send_wire(fd: RawFd, msg: &mut Message, off: usize, flags: libc::c_int) -> io::Result<usize> {
    let wire = &msg.wire()[off..];
    // SAFETY: `wire` is valid for reads of its length for the duration of the call.
    once(unsafe { libc::send(fd, wire.as_ptr().cast(), wire.len(), flags) })
}

/// recv() into the wire buffer, bytes `off..`.
fn recv_wire(fd: RawFd, msg: &mut Message, off: usize, flags: libc::c_int) -> io::Result<usize> {
    let wire = &mut msg.wire_mut()[off..];
    // SAFETY: `wire` is valid for writes of its length for the duration of the call.
    once(unsafe { libc::recv(fd, wire.as_mut_ptr().cast(), wire.len(), flags) })
}

/// sendmsg() with an iovec over the fields, bytes `off..`.
fn send_fields(fd: RawFd, msg: &mut Message, off: usize, flags: libc::c_int) -> io::Result<usize> {
    let mut iov = [EMPTY_IOV; FIELDS];
    let n = msg.iovecs_from(off, &mut iov);
    // SAFETY: an all-zero msghdr is valid; it is pointed at `iov`, which points into `msg`.
    let mut hdr: libc::msghdr = unsafe { MaybeUninit::zeroed().assume_init() };
    hdr.msg_iov = iov.as_mut_ptr();
    hdr.msg_iovlen = n;
    // SAFETY: the iovecs cover live fields of `msg`, borrowed for the call. With
    // MSG_ZEROCOPY the kernel keeps reading those pages after returning; the caller hands
    // the buffer to its ledger, which keeps it until the completion arrives.
    once(unsafe { libc::sendmsg(fd, &hdr, flags) })
}

/// recvmsg() scattering into the fields, bytes `off..`.
fn recv_fields(fd: RawFd, msg: &mut Message, off: usize, flags: libc::c_int) -> io::Result<usize> {
    let mut iov = [EMPTY_IOV; FIELDS];
    let n = msg.iovecs_from(off, &mut iov);
    // SAFETY: as in `send_fields`; the kernel writes only within the iovecs during the call.
    let mut hdr: libc::msghdr = unsafe { MaybeUninit::zeroed().assume_init() };
    hdr.msg_iov = iov.as_mut_ptr();
    hdr.msg_iovlen = n;
    once(unsafe { libc::recvmsg(fd, &mut hdr, flags) })
}

/// RECV into the wire buffer, bytes `from..`.
fn uring_recv_wire(
    target: Target,
    msg: &mut Message,
    from: usize,
    _: &mut MsgArgs,
    ioprio: u16,
) -> squeue::Entry {
    // The buffer stays valid until the completion: the message is in the connection's
    // in-kernel table, boxed, until then.
    let buf = msg.wire_mut()[from..].as_mut_ptr();
    let len = (msg.size() - from) as u32;
    on_target!(target, |fd| opcode::Recv::new(fd, buf, len)
        .flags(libc::MSG_WAITALL)
        .ioprio(ioprio)
        .build())
}

/// RECVMSG scattering into the fields, bytes `from..`.
fn uring_recv_fields(
    target: Target,
    msg: &mut Message,
    from: usize,
    args: &mut MsgArgs,
    ioprio: u16,
) -> squeue::Entry {
    let hdr = args.fill(msg, from);
    on_target!(target, |fd| opcode::RecvMsg::new(fd, hdr)
        .flags(libc::MSG_WAITALL as u32)
        .ioprio(ioprio)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mode_is_registered_under_its_own_name() {
        for &mode in Mode::ALL {
            let p = path(mode);
            assert_eq!(p.mode, mode);
            assert!(p.runs_on(Backend::Uring), "{mode}");
            assert_eq!(p.wire, mode == Mode::TwoCopy, "{mode}");
            assert_eq!(p.fixed, mode == Mode::ZcFixed, "{mode}");
            let file = matches!(mode, Mode::Sendfile | Mode::Splice);
            assert_eq!(p.file, file, "{mode}");
            assert_eq!(p.uring.prep.is_some(), file, "{mode}");
            assert!(!(file && p.zero_copy), "{mode}: no completions to wait for");
        }
        assert!(!path(Mode::ZcFixed).runs_on(Backend::Syscall));
        assert!(path(Mode::Zc).zero_copy && path(Mode::ZcFixed).zero_copy);
    }

    #[test]
    fn send_flags_are_named_as_each_engine_passes_them() {
        use Backend::{Syscall, Uring};
        let flags = |mode: Mode, backend| mode.send_flags(backend);
        assert_eq!(
            flags(Mode::Zc, Syscall).as_deref(),
            Some("MSG_NOSIGNAL|MSG_ZEROCOPY|MSG_EOR")
        );
        assert_eq!(
            flags(Mode::Zc, Uring).as_deref(),
            Some("MSG_WAITALL|MSG_NOSIGNAL|MSG_EOR")
        );
        assert_eq!(
            flags(Mode::ZcFixed, Uring).as_deref(),
            Some("MSG_WAITALL|MSG_NOSIGNAL"),
            "MSG_MORE on some sends only, counted apart"
        );
        assert_eq!(flags(Mode::ZcFixed, Syscall), None, "no syscall form");
        for mode in [Mode::TwoCopy, Mode::OneCopy] {
            assert_eq!(flags(mode, Syscall).as_deref(), Some("MSG_NOSIGNAL"));
            assert_eq!(
                flags(mode, Uring).as_deref(),
                Some("MSG_WAITALL|MSG_NOSIGNAL")
            );
        }
        for mode in [Mode::Sendfile, Mode::Splice] {
            assert_eq!((flags(mode, Syscall), flags(mode, Uring)), (None, None));
        }
        // Every bit a path passes has a name: none is left out of the record.
        let named = SEND_FLAG_NAMES.iter().fold(0, |all, (bit, _)| all | bit);
        for &mode in Mode::ALL {
            let p = path(mode);
            let sys = p.syscall.as_ref().map_or(0, |s| s.send_flags);
            for f in [SYSCALL_SEND_FLAGS | sys, p.uring.send_flags] {
                assert_eq!(f & !named, 0, "{mode}: {f:#x}");
            }
        }
    }
}
