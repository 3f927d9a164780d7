//! Which io_uring opcodes this kernel has: probed once, and a missing one is an error
//! naming the opcode and the running kernel, never a quiet fallback to another path.

use std::io;
use std::sync::OnceLock;

use io_uring::IoUring;

use super::setup::{ring_error, ring_memory};
use crate::error::{kernel_release, Error};
use crate::path::{path, OpInfo, COMMON_OPS};
use crate::vocab::Mode;

/// The opcodes a mode needs (`None`: what every mode needs).
pub(crate) fn ops_for(mode: Option<Mode>) -> Vec<OpInfo> {
    let mut ops = COMMON_OPS.to_vec();
    if let Some(mode) = mode {
        ops.extend_from_slice(path(mode).uring.ops);
    }
    ops
}

/// Fails with the first of `ops` that `supported` lacks, naming it and `kernel`.
pub(crate) fn require(
    ops: &[OpInfo],
    supported: impl Fn(u8) -> bool,
    kernel: &str,
) -> Result<(), Error> {
    match ops.iter().find(|op| !supported(op.code)) {
        None => Ok(()),
        Some(op) => Err(Error::Unsupported {
            feature: format!("io_uring opcode {}", op.name),
            kernel: kernel.to_owned(),
            hint: format!(
                "it needs Linux {} or later; use another --mode or --backend syscall",
                op.since
            ),
        }),
    }
}

/// The running kernel's opcode probe, taken once.
fn probe() -> Result<&'static [bool; 256], Error> {
    // The OS error number: io::Error is not Clone, and every caller gets its own Error.
    static PROBE: OnceLock<Result<[bool; 256], i32>> = OnceLock::new();
    let errno = |e: io::Error| e.raw_os_error().unwrap_or(libc::EIO);
    PROBE
        .get_or_init(|| {
            let ring = IoUring::new(PROBE_ENTRIES).map_err(errno)?;
            let mut probe = io_uring::Probe::new();
            ring.submitter().register_probe(&mut probe).map_err(errno)?;
            Ok(std::array::from_fn(|op| probe.is_supported(op as u8)))
        })
        .as_ref()
        .map_err(|&e| {
            ring_error(
                io::Error::from_raw_os_error(e),
                ring_memory(PROBE_ENTRIES, 2 * PROBE_ENTRIES),
            )
        })
}

/// Entries of the throwaway ring the opcode probe is taken on.
const PROBE_ENTRIES: u32 = 2;

/// Checks that the kernel has io_uring and the opcodes `mode` needs (`None`: any mode's
/// common opcodes).
pub(crate) fn check_kernel(mode: Option<Mode>) -> Result<(), Error> {
    let probe = probe()?;
    require(&ops_for(mode), |op| probe[op as usize], &kernel_release())
}

/// Whether this kernel's io_uring has IORING_OP_RECV_ZC (Linux 6.15), io_uring's own
/// zero-copy receive; `None` where io_uring itself could not be probed.
pub(crate) fn has_recv_zc() -> Option<bool> {
    probe()
        .ok()
        .map(|p| p[io_uring::opcode::RecvZc::CODE as usize])
}

/// Whether receives may ask to wait for readiness before their first attempt
/// (`IORING_RECVSEND_POLL_FIRST`, Linux 5.19; earlier kernels refuse a receive whose
/// `ioprio` is set). No probe shows a flag, so the kernel release decides.
pub(crate) fn has_poll_first() -> bool {
    release_at_least(&kernel_release(), (5, 19))
}

/// Whether a kernel release string (`6.18.44-fc`) names `want` (major, minor) or later;
/// one that cannot be read is not.
fn release_at_least(release: &str, want: (u32, u32)) -> bool {
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>());
    match (parts.next(), parts.next()) {
        (Some(Ok(major)), Some(Ok(minor))) => (major, minor) >= want,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_releases_are_compared_by_major_and_minor() {
        assert!(release_at_least("6.18.44-fc-v657", (5, 19)));
        assert!(release_at_least("5.19.0", (5, 19)));
        assert!(!release_at_least("5.15.0-91-generic", (5, 19)));
        assert!(!release_at_least("4.19", (5, 19)));
        assert!(!release_at_least("unknown kernel", (5, 19)));
    }

    /// The one opcode a zero-copy mode adds.
    const fn path_op(mode: Mode) -> OpInfo {
        match mode {
            Mode::Zc => OpInfo {
                code: io_uring::opcode::SendMsgZc::CODE,
                name: "IORING_OP_SENDMSG_ZC",
                since: "6.1",
            },
            _ => OpInfo {
                code: io_uring::opcode::SendZc::CODE,
                name: "IORING_OP_SEND_ZC",
                since: "6.0",
            },
        }
    }

    #[test]
    fn a_missing_opcode_is_named_with_the_kernel() {
        const SENDMSG_ZC: OpInfo = path_op(Mode::Zc);
        const SEND_ZC: OpInfo = path_op(Mode::ZcFixed);
        let ops = ops_for(Some(Mode::Zc));
        let e = require(&ops, |op| op != SENDMSG_ZC.code, "5.15.0-test").unwrap_err();
        let text = e.to_string();
        assert!(text.contains("IORING_OP_SENDMSG_ZC"), "{text}");
        assert!(
            text.contains("5.15.0-test") && text.contains("Linux 6.1"),
            "{text}"
        );
        assert_eq!(e.exit_code(), crate::error::exit::UNSUPPORTED);
        let e = require(
            &ops_for(Some(Mode::ZcFixed)),
            |op| op != SEND_ZC.code,
            "5.19",
        )
        .unwrap_err();
        assert!(e.to_string().contains("IORING_OP_SEND_ZC") && e.to_string().contains("6.0"));
        assert!(require(
            &ops_for(Some(Mode::OneCopy)),
            |op| op != SEND_ZC.code,
            "5.19"
        )
        .is_ok());
    }

    /// sendfile and splice on io_uring need IORING_OP_SPLICE; a kernel without it is
    /// named, with the version that added it.
    #[test]
    fn a_kernel_without_splice_is_named() {
        let splice = io_uring::opcode::Splice::CODE;
        for mode in [Mode::Sendfile, Mode::Splice] {
            let e = require(&ops_for(Some(mode)), |op| op != splice, "5.6.0-test").unwrap_err();
            let text = e.to_string();
            assert!(
                text.contains("IORING_OP_SPLICE")
                    && text.contains("5.6.0-test")
                    && text.contains("Linux 5.7"),
                "{mode}: {text}"
            );
            assert_eq!(e.exit_code(), crate::error::exit::UNSUPPORTED);
        }
        assert!(require(&ops_for(Some(Mode::OneCopy)), |op| op != splice, "5.6").is_ok());
    }

    #[test]
    fn this_kernel_has_what_every_mode_needs() {
        for mode in Mode::ALL {
            check_kernel(Some(*mode)).unwrap_or_else(|e| panic!("{mode}: {e}"));
        }
    }
}
