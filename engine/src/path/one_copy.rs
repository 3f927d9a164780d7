//! one-copy: sendmsg/recvmsg with an 8-entry iovec over the fields — the kernel's copy
//! only, no serialization.

use io_uring::opcode;

use super::{
    no_setup, on_target, recv_fields, send_fields, uring_recv_fields, CopyPath, SysForm, UringForm,
    URING_SEND_FLAGS,
};
use crate::vocab::Mode;

pub(crate) static PATH: CopyPath = CopyPath {
    mode: Mode::OneCopy,
    wire: false,
    fixed: false,
    zero_copy: false,
    syscall: Some(SysForm {
        setup: no_setup,
        send_flags: 0,
        send: send_fields,
        recv: recv_fields,
    }),
    uring: UringForm {
        ops: &[],
        send_flags: URING_SEND_FLAGS,
        more_in_chain: false,
        send: |target, msg, args, _| {
            // `args` and the message stay put until the completion (see `MsgArgs::fill`).
            let hdr = args.fill(msg, 0);
            on_target!(target, |fd| opcode::SendMsg::new(fd, hdr)
                .flags(PATH.uring.send_flags as u32)
                .build())
        },
        recv: uring_recv_fields,
        prep: None,
    },
    file: false,
};
