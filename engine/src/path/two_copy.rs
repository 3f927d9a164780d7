//! two-copy: the 8 fields are serialized into one contiguous buffer, then sent; received
//! into one buffer, then copied out into the fields — the user-space copies plus the
//! kernel's (the seed's first program).

use io_uring::opcode;

use super::{
    no_setup, on_target, recv_wire, send_wire, uring_recv_wire, CopyPath, SysForm, UringForm,
    URING_SEND_FLAGS,
};
use crate::vocab::Mode;

pub(crate) static PATH: CopyPath = CopyPath {
    mode: Mode::TwoCopy,
    wire: true,
    fixed: false,
    zero_copy: false,
    syscall: Some(SysForm {
        setup: no_setup,
        send_flags: 0,
        send: send_wire,
        recv: recv_wire,
    }),
    uring: UringForm {
        ops: &[],
        send_flags: URING_SEND_FLAGS,
        more_in_chain: false,
        send: |target, msg, _, _| {
            // The wire buffer stays valid until the completion: the message waits in the
            // connection's in-kernel table, boxed.
            let buf = msg.wire().as_ptr();
            let len = msg.size() as u32;
            on_target!(target, |fd| opcode::Send::new(fd, buf, len)
                .flags(PATH.uring.send_flags)
                .build())
        },
        recv: uring_recv_wire,
        prep: None,
    },
    file: false,
};
