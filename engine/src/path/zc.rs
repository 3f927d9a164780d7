//! zc: the fields' pages are pinned instead of copied — `sendmsg(MSG_ZEROCOPY)` on a socket
//! with SO_ZEROCOPY (syscall), SENDMSG_ZC (io_uring). A buffer stays the kernel's until
//! its completion; the kernel says whether it copied after all.

use std::os::fd::{AsRawFd, BorrowedFd};

use io_uring::opcode;

use super::{
    on_target, recv_fields, send_fields, uring_recv_fields, CopyPath, OpInfo, SysForm, UringForm,
    URING_SEND_FLAGS,
};
use crate::backend::sys::{IORING_SEND_ZC_REPORT_USAGE, SO_ZEROCOPY};
use crate::error::{kernel_release, Error};
use crate::vocab::Mode;

/// Every zc send ends its message with MSG_EOR, so that the kernel never appends the next
/// message to the same skb: a message is an skb of its own (or several, if it is larger
/// than one). The kernel otherwise joins consecutive zero-copy sends that wait in the
/// socket (MSG_ZEROCOPY extends the previous send's notification; io_uring links
/// notifications, Linux 6.10), and with zc's 8 heap fields that stalled open-loop echoes
/// for 200 ms. Each field is a fragment the kernel charges as at least a whole page
/// (`truesize` adds `PAGE_ALIGN` of each iovec's span), so a 4K message costs the receiver
/// some 32K of buffer, and its receive window shrinks to what that ratio allows of the
/// buffer (13.5K of 128K seen on loopback, `rcv_ssthresh`). A receiver that has read
/// everything re-advertises its window only once that would double what it still offers
/// (`tcp_cleanup_rbuf`): with 7K still offered and two messages joined in one 8K skb,
/// neither side moved until the sender's zero-window probe (`timer:(persist)`, one RTO,
/// 200 ms). With one message to an skb, a message that does not fit what is offered means
/// less than 4K is offered, under half of the 13.5K the receiver can give back, so its
/// next read re-advertises. Measured with `--rate 3000 -d 0.5 -t 2`, 4K, on loopback: a
/// round trip of about 200 ms in 7 of 30 runs (uring client, old and new builds taking
/// turns) and 5 of 30 (syscall client) before, with a persist timer on the client's
/// socket in `ss`; 1 of 30 (uring, none with a persist timer) and 0 of 30 after. Again,
/// 20 runs per engine beside two busy loops: 4 of 20 per engine before, none after. A zc
/// stream (depth 8, 1K to 64K, both engines, 5 interleaved rounds) showed no difference
/// beyond noise.
pub(crate) static PATH: CopyPath = CopyPath {
    mode: Mode::Zc,
    wire: false,
    fixed: false,
    zero_copy: true,
    syscall: Some(SysForm {
        setup: enable_zerocopy,
        send_flags: libc::MSG_ZEROCOPY | libc::MSG_EOR,
        send: send_fields,
        recv: recv_fields,
    }),
    uring: UringForm {
        ops: &[OpInfo {
            code: opcode::SendMsgZc::CODE,
            name: "IORING_OP_SENDMSG_ZC",
            since: "6.1",
        }],
        // The engine's own flags, and MSG_EOR (see above).
        send_flags: URING_SEND_FLAGS | libc::MSG_EOR,
        more_in_chain: false,
        // No MSG_MORE (see `zc_send_flags`): the 8 fields are 8 heap allocations, so a
        // message takes 8 of a segment's 17 page fragments and at most two share one; held
        // back for the next send they gained nothing (uring stream, depth 8, 3 interleaved
        // runs of 2 s on a loaded 2-core VM, medians: 1K 0.12 Gbit/s with it against 0.19
        // without, 16K 0.98 against 1.88).
        send: |target, msg, args, _| {
            // `args` and the message stay put until the notification (see `MsgArgs::fill`).
            let hdr = args.fill(msg, 0);
            on_target!(target, |fd| opcode::SendMsgZc::new(fd, hdr)
                .flags(PATH.uring.send_flags as u32)
                .ioprio(IORING_SEND_ZC_REPORT_USAGE)
                .build())
        },
        recv: uring_recv_fields,
        prep: None,
    },
    file: false,
};

/// Turns on SO_ZEROCOPY; without it the kernel silently ignores MSG_ZEROCOPY.
fn enable_zerocopy(fd: BorrowedFd<'_>) -> Result<(), Error> {
    let one: libc::c_int = 1;
    // SAFETY: a valid socket, and a pointer to a live c_int with its exact size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_ZEROCOPY,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ENOPROTOOPT) | Some(libc::EOPNOTSUPP) | Some(libc::EINVAL) => {
            Err(Error::Unsupported {
                feature: "SO_ZEROCOPY (MSG_ZEROCOPY on TCP)".into(),
                kernel: kernel_release(),
                hint: "MSG_ZEROCOPY on TCP needs Linux 4.14 or later".into(),
            })
        }
        _ => Err(Error::io("setsockopt(SO_ZEROCOPY)", e)),
    }
}
