//! The backends that move a connection's messages: classic syscalls, and io_uring.
//! Both run the same [`crate::workload::Flow`]; neither knows which workload it runs.

pub(crate) mod sys;
pub(crate) mod syscall;
pub(crate) mod uring;
pub(crate) mod zerocopy;
