//! zc-fixed (io_uring only): the fields are laid out in a registered buffer and sent with
//! SEND_ZC by buffer index — no copy and no per-send pinning either. Received like
//! one-copy, scattered into the fields.

use io_uring::opcode;

use super::{
    on_target, uring_recv_fields, zc_send_flags, CopyPath, OpInfo, UringForm, URING_SEND_FLAGS,
};
use crate::backend::sys::IORING_SEND_ZC_REPORT_USAGE;
use crate::vocab::Mode;

pub(crate) static PATH: CopyPath = CopyPath {
    mode: Mode::ZcFixed,
    wire: false,
    fixed: true,
    zero_copy: true,
    syscall: None,
    uring: UringForm {
        ops: &[OpInfo {
            code: opcode::SendZc::CODE,
            name: "IORING_OP_SEND_ZC",
            since: "6.0",
        }],
        send_flags: URING_SEND_FLAGS,
        more_in_chain: true,
        send: |target, msg, _, more| {
            // The span lies in the registered region, which stays mapped and registered
            // until the connection's buffers are unregistered, after every completion.
            let buf = msg
                .contiguous_ptr()
                .expect("zc-fixed messages are contiguous");
            let index = msg.fixed_index().expect("zc-fixed messages are registered");
            let len = msg.size() as u32;
            on_target!(target, |fd| opcode::SendZc::new(fd, buf, len)
                .buf_index(Some(index))
                .flags(zc_send_flags(PATH.uring.send_flags, more))
                .zc_flags(IORING_SEND_ZC_REPORT_USAGE)
                .build())
        },
        recv: uring_recv_fields,
        prep: None,
    },
    file: false,
};
