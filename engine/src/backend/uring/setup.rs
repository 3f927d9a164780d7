//! Making a ring: the fastest setup flags the kernel takes, ring sizes, and the locked
//! memory rings and registered buffers need (checked first, so a shortfall is an error
//! that says how many bytes).

use std::io;

use io_uring::IoUring;

use crate::error::{kernel_release, Error};
use crate::polling::{SqPoll, SqPollGrant, SQ_THREAD_IDLE_MS};
use crate::vocab::{SetupFlag, SetupFlags};

/// Locked memory one ring's queues take (the kernel charges them to RLIMIT_MEMLOCK unless
/// the process holds CAP_IPC_LOCK): the completion ring with the submission index array,
/// and the submission entries, each rounded up to pages.
pub(crate) fn ring_memory(sq_entries: u32, cq_entries: u32) -> u64 {
    const RINGS_HEADER: u64 = 256;
    let page = crate::pool::page_size() as u64;
    let rings = RINGS_HEADER + 16 * u64::from(cq_entries) + 4 * u64::from(sq_entries);
    let sqes = 64 * u64::from(sq_entries);
    rings.next_multiple_of(page) + sqes.next_multiple_of(page)
}

/// Registered buffers pin memory, charged to RLIMIT_MEMLOCK unless the process holds
/// CAP_IPC_LOCK. Checked before registering, so the error can say how much is needed.
/// What registered buffers may pin in all: RLIMIT_MEMLOCK, or `None` when unlimited (or
/// the process holds CAP_IPC_LOCK).
pub(crate) fn pin_limit() -> Option<u64> {
    memlock_limit().filter(|_| !has_cap_ipc_lock())
}

pub(crate) fn check_memlock(needed: u64) -> Result<(), Error> {
    memlock_verdict(needed, memlock_limit(), has_cap_ipc_lock())
}

fn memlock_verdict(needed: u64, limit: Option<u64>, cap_ipc_lock: bool) -> Result<(), Error> {
    match limit {
        Some(limit) if !cap_ipc_lock && needed > limit => Err(Error::Memlock {
            what: "registered buffers".into(),
            needed,
            limit,
        }),
        _ => Ok(()),
    }
}

/// The soft RLIMIT_MEMLOCK; `None` when unlimited.
pub fn memlock_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } == 0;
    (ok && lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur)
}

/// Submission entries of a server worker's ring, which serves many connections.
pub(crate) const SERVER_RING_INFLIGHT: usize = 512;

/// Checks that a server's `workers` rings fit in RLIMIT_MEMLOCK, before any is made.
pub(crate) fn check_server_rings(workers: usize) -> Result<(), Error> {
    let (sq, cq) = ring_sizes(SERVER_RING_INFLIGHT);
    check_ring_memlock(workers, sq, cq)
}

/// Checks that `rings` rings of `sq`/`cq` entries fit in RLIMIT_MEMLOCK, before any is made.
pub(crate) fn check_ring_memlock(rings: usize, sq: u32, cq: u32) -> Result<(), Error> {
    let needed = rings as u64 * ring_memory(sq, cq);
    match memlock_limit() {
        Some(limit) if !has_cap_ipc_lock() && needed > limit => Err(Error::Memlock {
            what: format!("{rings} io_uring ring(s) of {sq} submission entries"),
            needed,
            limit,
        }),
        _ => Ok(()),
    }
}

/// Whether CAP_IPC_LOCK is in this process's effective set.
fn has_cap_ipc_lock() -> bool {
    const CAP_IPC_LOCK: u32 = 14;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << CAP_IPC_LOCK) != 0)
}

/// Builds a ring with the fastest setup flags the kernel takes: SINGLE_ISSUER +
/// DEFER_TASKRUN (completions run only when this thread asks), then COOP_TASKRUN, then
/// none. Returns the ring and the flags it got.
///
/// With `sqpoll` (`--sqpoll`), SQPOLL (and SQ_AFF with its CPU) is in every attempt —
/// never dropped for speed elsewhere: the kernel refuses DEFER_TASKRUN and COOP_TASKRUN
/// beside SQPOLL (EINVAL; completion work runs in the SQ thread, which needs no IPI), so
/// the attempts are SQPOLL + SINGLE_ISSUER + SUBMIT_ALL, then SQPOLL alone. (With SQPOLL,
/// SINGLE_ISSUER binds no task: the SQ thread is the one submitter, and registration from
/// the worker thread stays allowed.) A kernel that takes neither is an error naming
/// SQPOLL, never a quiet ring without it.
pub(crate) fn build_ring(
    sq_entries: u32,
    cq_entries: u32,
    sqpoll: Option<SqPoll>,
) -> Result<(IoUring, SetupFlags, Option<SqPollGrant>), Error> {
    use SetupFlag::*;
    const ATTEMPTS: [&[SetupFlag]; 4] = [
        &[SingleIssuer, DeferTaskrun, SubmitAll],
        &[SingleIssuer, CoopTaskrun, SubmitAll],
        &[CoopTaskrun],
        &[],
    ];
    const SQPOLL_ATTEMPTS: [&[SetupFlag]; 2] = [&[SqPoll, SingleIssuer, SubmitAll], &[SqPoll]];
    let attempts: &[&[SetupFlag]] = if sqpoll.is_some() {
        &SQPOLL_ATTEMPTS
    } else {
        &ATTEMPTS
    };
    let mut last = None;
    for flags in attempts {
        let mut flags = flags.to_vec();
        let mut b = IoUring::builder();
        b.setup_cqsize(cq_entries).setup_clamp();
        for f in &flags {
            match f {
                SingleIssuer => b.setup_single_issuer(),
                DeferTaskrun => b.setup_defer_taskrun(),
                CoopTaskrun => b.setup_coop_taskrun(),
                SubmitAll => b.setup_submit_all(),
                SqPoll => b.setup_sqpoll(SQ_THREAD_IDLE_MS),
                SqAff => &mut b,
            };
        }
        if let Some(cpu) = sqpoll.and_then(|s| s.cpu) {
            b.setup_sqpoll_cpu(cpu);
            flags.push(SqAff);
        }
        match b.build(sq_entries) {
            Ok(ring) => {
                if !ring.params().is_feature_ext_arg() {
                    return Err(Error::Unsupported {
                        feature: "IORING_FEAT_EXT_ARG (timed waits)".into(),
                        kernel: kernel_release(),
                        hint: "it needs Linux 5.11 or later".into(),
                    });
                }
                let grant = sqpoll.map(|s| SqPollGrant {
                    cpu: s.cpu,
                    idle_ms: ring.params().sq_thread_idle(),
                });
                return Ok((ring, SetupFlags(flags), grant));
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => last = Some(e),
            Err(e) if sqpoll.is_some() && e.raw_os_error() == Some(libc::EPERM) => {
                return Err(sqpoll_refused(e, sqpoll))
            }
            Err(e) => return Err(ring_error(e, ring_memory(sq_entries, cq_entries))),
        }
    }
    let last = last.expect("at least one attempt");
    if sqpoll.is_some() {
        return Err(sqpoll_refused(last, sqpoll));
    }
    Err(ring_error(last, ring_memory(sq_entries, cq_entries)))
}

/// Why a ring with SQPOLL could not be made, naming the flag.
fn sqpoll_refused(e: io::Error, sqpoll: Option<SqPoll>) -> Error {
    let why = crate::polling::errno_text(&e);
    let hint = match (e.raw_os_error(), sqpoll.and_then(|s| s.cpu)) {
        (Some(libc::EINVAL), Some(cpu)) => format!(
            "io_uring_setup refused IORING_SETUP_SQPOLL | IORING_SETUP_SQ_AFF with              sq_thread_cpu {cpu} ({why}): that CPU is offline, does not exist or is outside              this process's cpuset; name another with --sqpoll=CPU, or leave the CPU out"
        ),
        (Some(libc::EPERM), _) => format!(
            "io_uring_setup refused IORING_SETUP_SQPOLL ({why}): before Linux 5.13 it needs              CAP_SYS_NICE (5.11) or root"
        ),
        _ => format!(
            "io_uring_setup refused IORING_SETUP_SQPOLL ({why}): it needs Linux 5.11              (unprivileged: 5.13)"
        ),
    };
    Error::Unsupported {
        feature: "IORING_SETUP_SQPOLL (--sqpoll)".into(),
        kernel: kernel_release(),
        hint,
    }
}

/// Why a ring could not be made: ENOMEM is the locked-memory limit (named with what the
/// ring needs) unless memory is really short; anything else, io_uring is not available.
pub(crate) fn ring_error(e: io::Error, needed: u64) -> Error {
    match e.raw_os_error() {
        Some(libc::ENOMEM) => match memlock_limit() {
            Some(limit) if !has_cap_ipc_lock() => Error::Memlock {
                what: "an io_uring ring's queues (with what other rings of this user hold)".into(),
                needed,
                limit,
            },
            _ => Error::io("io_uring_setup (out of memory)", e),
        },
        _ => Error::Unsupported {
            feature: "io_uring".into(),
            kernel: kernel_release(),
            hint: format!(
                "creating a ring failed ({e}); io_uring may be disabled \
                 (see /proc/sys/kernel/io_uring_disabled) or filtered by seccomp"
            ),
        },
    }
}

pub(crate) fn memlock_or_io(e: io::Error, what: &str, needed: u64) -> Error {
    if e.raw_os_error() == Some(libc::ENOMEM) && needed > 0 {
        return Error::Memlock {
            what: "registered buffers".into(),
            needed,
            limit: memlock_limit().unwrap_or(u64::MAX),
        };
    }
    Error::io(what, e)
}

/// Ring sizes for `inflight` operations that may each post two completions.
pub(crate) fn ring_sizes(inflight: usize) -> (u32, u32) {
    let sq = (inflight.next_power_of_two() as u32).clamp(64, 4096);
    let cq = ((2 * inflight + 64).next_power_of_two() as u32).clamp(2 * sq, 65536);
    (sq, cq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memlock_shortfall_says_how_much_is_needed() {
        let e = memlock_verdict(1 << 20, Some(65536), false).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("1048576") && text.contains("65536"), "{text}");
        assert!(text.contains("ulimit -l 1024"), "{text}");
        assert!(memlock_verdict(1 << 20, Some(65536), true).is_ok());
        assert!(memlock_verdict(1 << 20, None, false).is_ok());
        assert!(memlock_verdict(100, Some(65536), false).is_ok());
    }

    #[test]
    fn ring_setup_falls_back_and_reports_its_flags() {
        let (ring, flags, grant) = build_ring(64, 256, None).unwrap();
        assert!(ring.params().sq_entries() >= 64);
        assert!(!flags.0.is_empty(), "this kernel takes at least one flag");
        assert_eq!(grant, None);
        assert!(!flags.contains(SetupFlag::SqPoll));
    }

    #[test]
    fn sqpoll_is_asked_in_every_attempt_and_recorded() {
        let (ring, flags, grant) = build_ring(64, 256, Some(SqPoll { cpu: Some(0) })).unwrap();
        assert!(ring.params().is_setup_sqpoll());
        assert!(flags.contains(SetupFlag::SqPoll) && flags.contains(SetupFlag::SqAff));
        assert!(
            !flags.contains(SetupFlag::DeferTaskrun) && !flags.contains(SetupFlag::CoopTaskrun),
            "the kernel refuses them beside SQPOLL: {flags}"
        );
        assert_eq!(
            grant,
            Some(SqPollGrant {
                cpu: Some(0),
                idle_ms: SQ_THREAD_IDLE_MS
            })
        );
        // A CPU that cannot exist is refused by name, not run without SQPOLL.
        let Err(e) = build_ring(64, 256, Some(SqPoll { cpu: Some(100_000) })) else {
            panic!("a ring whose SQ thread is bound to CPU 100000");
        };
        let text = e.to_string();
        assert!(
            text.contains("IORING_SETUP_SQPOLL") && text.contains("100000"),
            "{text}"
        );
    }
}
