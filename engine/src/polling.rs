//! Polling instead of waiting: what `--sqpoll` and `--busy-poll` ask of the kernel, what it
//! granted, and the socket options behind `--busy-poll` on the syscall engine.
//!
//! - `--sqpoll[=CPU]` (uring): IORING_SETUP_SQPOLL, a kernel thread (`iou-sqp-<tid>`)
//!   that takes submissions off the ring by polling it, so a submission needs no
//!   io_uring_enter while that thread is awake. The thread's CPU time is counted into the
//!   side's own (see `sqthread.rs`).
//! - `--busy-poll USEC`: a receive that finds nothing spins on the device's NAPI context
//!   for up to USEC µs instead of sleeping until the interrupt. Syscall engine:
//!   SO_BUSY_POLL (and SO_PREFER_BUSY_POLL) on each data socket; uring: NAPI busy polling
//!   registered on the ring (IORING_REGISTER_NAPI, Linux 6.9). Either needs a socket whose
//!   packets came through a NAPI context (a NIC's receive queue): `napi_id` records the
//!   socket's SO_INCOMING_NAPI_ID after the run, and 0 there (loopback, veth) means there
//!   was nothing to poll.

use std::io;
use std::mem::size_of;
use std::os::fd::RawFd;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::record::Warning;
use crate::vocab::WarningKind;

/// How long an io_uring SQ thread keeps polling after its last submission before it
/// sleeps (`sq_thread_idle`, ms). Longer than any gap inside a running measurement (a
/// wait in the kernel lasts at most 100 ms, and a message moves far more often), so the
/// thread stays awake while a run moves data; short enough that an idle server worker's
/// thread stops burning a CPU soon after its last client.
pub const SQ_THREAD_IDLE_MS: u32 = 50;

/// `--sqpoll[=CPU]` as configured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SqPoll {
    /// The CPU the SQ thread is bound to (IORING_SETUP_SQ_AFF); `None`: the scheduler's
    /// choice.
    pub cpu: Option<u32>,
}

/// What the kernel set up for a ring's SQ polling thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SqPollGrant {
    /// The CPU the thread is bound to; null when unbound.
    pub cpu: Option<u32>,
    /// `sq_thread_idle`, ms.
    pub idle_ms: u32,
}

/// How busy polling was set up on a side, as the kernel took it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusyPoll {
    /// `SO_BUSY_POLL` (syscall) or `IORING_REGISTER_NAPI` (uring).
    pub via: String,
    /// µs asked for.
    pub requested_us: u32,
    /// µs the kernel holds, read back (getsockopt, or the ring's settings as a second
    /// registration reports them).
    pub granted_us: u32,
    /// Busy polling preferred over interrupts (SO_PREFER_BUSY_POLL, or the NAPI
    /// registration's flag), as read back.
    pub prefer: bool,
    /// Why preferring was refused, naming the option and the error; null when granted.
    pub prefer_refused: Option<String>,
    /// The data socket's SO_INCOMING_NAPI_ID after the run: the NAPI context its packets
    /// came through. 0: none (loopback, veth), so busy polling had nothing to poll; null:
    /// not read.
    pub napi_id: Option<u32>,
}

/// SO_PREFER_BUSY_POLL (Linux 5.11); libc may not name it.
const SO_PREFER_BUSY_POLL: libc::c_int = 69;

fn set_int(fd: RawFd, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: `fd` is a socket the caller keeps open; a pointer to a live c_int of its size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            name,
            (&value as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn get_int(fd: RawFd, level: libc::c_int, name: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `fd` is a socket the caller keeps open; a c_int-sized out parameter.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The errno's name and meaning, e.g. `EPERM (Operation not permitted)`.
pub(crate) fn errno_text(e: &io::Error) -> String {
    let name = match e.raw_os_error() {
        Some(libc::EPERM) => "EPERM",
        Some(libc::EINVAL) => "EINVAL",
        Some(libc::ENOPROTOOPT) => "ENOPROTOOPT",
        Some(libc::EOPNOTSUPP) => "EOPNOTSUPP",
        Some(libc::EACCES) => "EACCES",
        _ => return e.to_string(),
    };
    let text = e.to_string();
    let meaning = text.split(" (os error").next().unwrap_or(&text);
    format!("{name} ({meaning})")
}

/// Sets SO_BUSY_POLL to `usec` on socket `fd`, and SO_PREFER_BUSY_POLL where the kernel
/// lets this process (it needs CAP_NET_ADMIN), and reads back what the kernel holds.
/// SO_BUSY_POLL refused is an error naming it; SO_PREFER_BUSY_POLL refused is recorded in
/// [`BusyPoll::prefer_refused`] and the run goes on (busy polling works without it).
pub fn set_socket_busy_poll(fd: RawFd, usec: u32) -> Result<BusyPoll, Error> {
    let value = libc::c_int::try_from(usec)
        .map_err(|_| Error::Config(format!("--busy-poll {usec} is too large")))?;
    set_int(fd, libc::SO_BUSY_POLL, value).map_err(|e| busy_poll_refused(&e, usec))?;
    let granted = get_int(fd, libc::SOL_SOCKET, libc::SO_BUSY_POLL)
        .map_err(|e| Error::io("getsockopt(SO_BUSY_POLL)", e))?;
    let prefer_refused = set_int(fd, SO_PREFER_BUSY_POLL, 1).err().map(|e| {
        let why = errno_text(&e);
        match e.raw_os_error() {
            Some(libc::EPERM) => format!("SO_PREFER_BUSY_POLL: {why}: it needs CAP_NET_ADMIN"),
            Some(libc::ENOPROTOOPT) | Some(libc::EINVAL) => {
                format!("SO_PREFER_BUSY_POLL: {why}: it needs Linux 5.11")
            }
            _ => format!("SO_PREFER_BUSY_POLL: {why}"),
        }
    });
    let prefer = get_int(fd, libc::SOL_SOCKET, SO_PREFER_BUSY_POLL).is_ok_and(|v| v != 0);
    Ok(BusyPoll {
        via: "SO_BUSY_POLL".into(),
        requested_us: usec,
        granted_us: granted.max(0) as u32,
        prefer,
        prefer_refused,
        napi_id: None,
    })
}

fn busy_poll_refused(e: &io::Error, usec: u32) -> Error {
    let why = errno_text(e);
    let hint = match e.raw_os_error() {
        Some(libc::EPERM) => format!(
            "SO_BUSY_POLL {usec} was refused ({why}): raising it needs CAP_NET_ADMIN on this \
             kernel; run as root or lower --busy-poll to net.core.busy_read"
        ),
        Some(libc::ENOPROTOOPT) => format!(
            "SO_BUSY_POLL was refused ({why}): the kernel was built without \
             CONFIG_NET_RX_BUSY_POLL"
        ),
        _ => format!("SO_BUSY_POLL {usec} was refused ({why})"),
    };
    Error::Unsupported {
        feature: "SO_BUSY_POLL (--busy-poll)".into(),
        kernel: crate::error::kernel_release(),
        hint,
    }
}

/// SO_INCOMING_NAPI_ID (Linux 4.12): the NAPI context the socket's last packets came
/// through; 0 where none (loopback, veth). `None` where the kernel would not say.
pub fn napi_id(fd: RawFd) -> Option<u32> {
    get_int(fd, libc::SOL_SOCKET, libc::SO_INCOMING_NAPI_ID)
        .ok()
        .map(|v| v as u32)
}

/// Checks `--busy-poll` can be had at all, on a throwaway socket: a server says so at
/// start instead of failing each connection.
pub fn check_socket_busy_poll(usec: u32) -> Result<BusyPoll, Error> {
    // SAFETY: socket() has no memory preconditions; the result is checked and closed.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(Error::io("socket", io::Error::last_os_error()));
    }
    let result = set_socket_busy_poll(fd, usec);
    // SAFETY: closes the socket made above, which nothing else holds.
    unsafe { libc::close(fd) };
    result
}

/// What a side's busy polling deserves in the record's warnings: preferring refused
/// (the option ran without it), and no NAPI context to poll (the option changed nothing).
pub(crate) fn warnings(side: &str, b: &BusyPoll) -> Vec<Warning> {
    let mut out = Vec::new();
    if let Some(why) = &b.prefer_refused {
        out.push(Warning {
            kind: WarningKind::Fallback,
            text: format!(
                "--busy-poll on the {side}: {why}; busy polling ran without preferring it over \
                 interrupts"
            ),
        });
    }
    if b.napi_id == Some(0) {
        out.push(Warning {
            kind: WarningKind::NoNapi,
            text: format!(
                "--busy-poll on the {side} ({} {} µs granted) had nothing to poll: the socket's \
                 SO_INCOMING_NAPI_ID is 0, its packets came through no NAPI context (loopback \
                 and veth deliver without one), so the receive path ran as without the option; \
                 only a NIC's receive queue can be busy-polled",
                b.via, b.granted_us
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_poll_is_read_back_from_the_socket() {
        let b = check_socket_busy_poll(37).unwrap();
        assert_eq!(b.via, "SO_BUSY_POLL");
        assert_eq!((b.requested_us, b.granted_us), (37, 37));
        // Preferring is either granted (CAP_NET_ADMIN) or refused by name, never both.
        assert_eq!(b.prefer, b.prefer_refused.is_none(), "{b:?}");
        if let Some(why) = &b.prefer_refused {
            assert!(why.starts_with("SO_PREFER_BUSY_POLL"), "{why}");
        }
    }

    #[test]
    fn errno_names_come_first() {
        let t = errno_text(&io::Error::from_raw_os_error(libc::EPERM));
        assert!(t.starts_with("EPERM ("), "{t}");
        assert!(!t.contains("os error"), "{t}");
    }
}
