//! splice: the fields live in a memfd (its page cache); a send splices the message's
//! pages into a pipe and the pipe into the socket — `splice(2)` twice (syscall), or two
//! linked IORING_OP_SPLICE (uring, which runs them in its io-wq workers). Pages move by
//! reference: nothing is copied into the socket, and on local delivery the peer reads
//! from these very pages. Received like one-copy, scattered into the fields.

use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, squeue, types};

use super::{
    no_setup, on_target, once, recv_fields, uring_recv_fields, CopyPath, MsgArgs, OpInfo, SysForm,
    Target, UringForm,
};
use crate::message::Message;
use crate::pagecache::{PageCache, Pipe};
use crate::vocab::Mode;

pub(crate) static PATH: CopyPath = CopyPath {
    mode: Mode::Splice,
    wire: false,
    fixed: false,
    zero_copy: false,
    syscall: Some(SysForm {
        setup: no_setup,
        send_flags: 0,
        send: send_splice,
        recv: recv_file_fields,
    }),
    uring: URING_SPLICE,
    file: true,
};

/// How this mode sends on the syscall engine, for reports.
pub(super) const SYSCALL_PATH: &str = "splice(2) memfd -> pipe -> socket";
/// How both page-cache modes send on io_uring, for reports.
pub(super) const URING_PATH: &str = "IORING_OP_SPLICE memfd -> pipe, linked to pipe -> socket, \
     run by io_uring's io-wq threads (their CPU time is in the machine figure, not this side's)";

/// The io_uring form of both page-cache modes: io_uring has no sendfile opcode, and
/// sendfile(2) itself is a splice through a pipe inside the kernel.
pub(super) const URING_SPLICE: UringForm = UringForm {
    ops: &[OpInfo {
        code: opcode::Splice::CODE,
        name: "IORING_OP_SPLICE",
        since: "5.7",
    }],
    send_flags: 0,
    more_in_chain: false,
    send: uring_splice_out,
    recv: uring_recv_fields,
    prep: Some(uring_splice_in),
};

/// The memfd and pipe of a message in a page-cache region.
fn backing(msg: &Message) -> (&PageCache, &Pipe, u64) {
    let (pc, base) = msg
        .file_span()
        .expect("sendfile and splice messages live in a memfd");
    let pipe = pc.pipe().expect("a memfd region has its pipe");
    (pc, pipe, base)
}

/// Message bytes `off..` into the socket through the pipe. What the pipe still holds
/// from a call the socket took only part of goes first; bytes in the pipe are message
/// bytes `off..off + filled`.
fn send_splice(fd: RawFd, msg: &mut Message, off: usize, flags: libc::c_int) -> io::Result<usize> {
    let (pc, pipe, base) = backing(msg);
    pc.set_nonblocking(fd, flags & libc::MSG_DONTWAIT != 0)?;
    let mut filled = pipe.filled();
    if filled == 0 {
        let mut at = (base + off as u64) as libc::loff_t;
        let want = (msg.size() - off).min(pipe.capacity());
        pc.count_call();
        // SAFETY: both descriptors belong to the page cache, open while `msg` holds its
        // region; `at` is a live local. Nothing is copied: the pipe takes page references.
        filled = once(unsafe {
            libc::splice(
                pc.memfd(),
                &mut at,
                pipe.write_end(),
                std::ptr::null_mut(),
                want,
                libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
            )
        })?;
        pipe.set_filled(filled);
    }
    // SAFETY: the pipe's read end and the caller's socket, both open for the call.
    let n = once(unsafe {
        libc::splice(
            pipe.read_end(),
            std::ptr::null_mut(),
            fd,
            std::ptr::null_mut(),
            filled,
            libc::SPLICE_F_MOVE,
        )
    })?;
    pipe.set_filled(filled - n);
    Ok(n)
}

/// recvmsg into the fields (one-copy's receive). A blocking receive needs the socket's
/// O_NONBLOCK off, which a non-blocking sendfile or splice may have left on.
pub(super) fn recv_file_fields(
    fd: RawFd,
    msg: &mut Message,
    off: usize,
    flags: libc::c_int,
) -> io::Result<usize> {
    if flags & libc::MSG_DONTWAIT == 0 {
        let (pc, _) = msg
            .file_span()
            .expect("sendfile and splice messages live in a memfd");
        pc.set_nonblocking(fd, false)?;
    }
    recv_fields(fd, msg, off, flags)
}

/// SPLICE of the whole message from the memfd into the pipe, linked in front of its send.
fn uring_splice_in(msg: &mut Message) -> squeue::Entry {
    let (pc, pipe, base) = backing(msg);
    // The descriptors stay open while the message (moved into the connection's in-kernel
    // table until its send completes) holds its region.
    opcode::Splice::new(
        types::Fd(pc.memfd()),
        base as i64,
        types::Fd(pipe.write_end()),
        -1,
        msg.size() as u32,
    )
    .flags(libc::SPLICE_F_MOVE)
    .build()
}

/// SPLICE of the whole message from the pipe into the socket.
fn uring_splice_out(target: Target, msg: &mut Message, _: &mut MsgArgs, _: bool) -> squeue::Entry {
    let (_, pipe, _) = backing(msg);
    let read = types::Fd(pipe.read_end());
    let len = msg.size() as u32;
    on_target!(target, |fd| opcode::Splice::new(read, -1, fd, -1, len)
        .flags(libc::SPLICE_F_MOVE)
        .build())
}
