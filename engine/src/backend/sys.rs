//! Kernel ABI values the libc crate does not carry (include/uapi/linux/errqueue.h,
//! asm-generic/socket.h, io_uring.h).

/// `setsockopt(SOL_SOCKET, SO_ZEROCOPY)`: without it MSG_ZEROCOPY is silently ignored.
pub const SO_ZEROCOPY: libc::c_int = 60;
/// `sock_extended_err.ee_origin` of a MSG_ZEROCOPY completion.
pub const SO_EE_ORIGIN_ZEROCOPY: u8 = 5;
/// `sock_extended_err.ee_code` bit: the kernel copied the data after all.
pub const SO_EE_CODE_ZEROCOPY_COPIED: u8 = 1;
/// io_uring zero-copy send flag: report in the notification whether data was copied.
pub const IORING_SEND_ZC_REPORT_USAGE: u16 = 8;
/// io_uring receive flag (in `ioprio`): wait for readiness before the first attempt.
pub const IORING_RECVSEND_POLL_FIRST: u16 = 1;
/// Bit 31 of a notification CQE's `res` under REPORT_USAGE: the kernel copied after all.
pub const IORING_NOTIF_USAGE_ZC_COPIED: u32 = 1 << 31;
