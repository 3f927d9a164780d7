//! sendfile: the fields live in a memfd (its page cache); a send is one `sendfile(2)`
//! from the message's offset in the file — the kernel splices the pages into the socket
//! by reference. io_uring has no sendfile opcode: there the mode runs as the same two
//! linked IORING_OP_SPLICE as `splice` (what sendfile does inside the kernel), and records
//! say so. Received like one-copy, scattered into the fields.

use std::io;
use std::os::fd::RawFd;

use super::splice::{recv_file_fields, URING_SPLICE};
use super::{no_setup, once, CopyPath, SysForm};
use crate::message::Message;
use crate::vocab::Mode;

pub(crate) static PATH: CopyPath = CopyPath {
    mode: Mode::Sendfile,
    wire: false,
    fixed: false,
    zero_copy: false,
    syscall: Some(SysForm {
        setup: no_setup,
        send_flags: 0,
        send: send_sendfile,
        recv: recv_file_fields,
    }),
    uring: URING_SPLICE,
    file: true,
};

/// How this mode sends on the syscall engine, for reports.
pub(super) const SYSCALL_PATH: &str = "sendfile(2) from a memfd";

/// sendfile() of message bytes `off..` from the memfd.
fn send_sendfile(
    fd: RawFd,
    msg: &mut Message,
    off: usize,
    flags: libc::c_int,
) -> io::Result<usize> {
    let (pc, base) = msg.file_span().expect("sendfile messages live in a memfd");
    // sendfile has no MSG_DONTWAIT: the socket's O_NONBLOCK decides.
    pc.set_nonblocking(fd, flags & libc::MSG_DONTWAIT != 0)?;
    let mut at = (base + off as u64) as libc::off_t;
    // SAFETY: the memfd is open while `msg` holds its region; `at` is a live local.
    once(unsafe { libc::sendfile(fd, pc.memfd(), &mut at, msg.size() - off) })
}
