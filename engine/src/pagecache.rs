//! Page-cache-backed message memory for the `sendfile` and `splice` modes: a memfd whose
//! pages the fields live in (mapped shared, so writing a field writes the page cache), the
//! pipe `splice` moves those pages through, and the socket's O_NONBLOCK state, which
//! sendfile(2) and splice(2) read instead of a per-call flag.
//!
//! The kernel sends these pages by reference: the socket's buffers, and on local delivery
//! (loopback, veth) the peer's receive queue, point at the very pages the fields are in
//! until the peer has read them. An acknowledgement does not end that (the peer's TCP
//! acknowledges what it queued, not what its reader took), so whoever writes into a
//! region first needs proof that the peer read what was sent from it: see
//! `workload::Flow` and `proof`.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};

use crate::error::{kernel_release, Error};

/// The memfd behind a region, and the pipe splice goes through.
#[derive(Debug)]
pub struct PageCache {
    memfd: OwnedFd,
    pipe: Option<Pipe>,
    /// The socket's O_NONBLOCK as last set here: 0 not yet known, 1 blocking, 2 not.
    nonblocking: AtomicU8,
    /// Calls made beside the send call the engine counts: fcntl(F_SETFL) switching
    /// O_NONBLOCK, splices from the memfd into the pipe.
    extra_calls: AtomicU64,
}

/// A pipe sized to hold a whole message, and how many message bytes wait in it.
#[derive(Debug)]
pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    capacity: usize,
    filled: AtomicUsize,
}

impl PageCache {
    /// A memfd of `len` bytes, and with `pipe_for` a pipe that holds that many bytes.
    pub fn new(len: usize, pipe_for: Option<usize>) -> Result<PageCache, Error> {
        // SAFETY: a NUL-terminated name; the flags are valid.
        let fd = unsafe { libc::memfd_create(c"copyperf-fields".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::ENOSYS) => Error::Unsupported {
                    feature: "memfd_create".into(),
                    kernel: kernel_release(),
                    hint:
                        "sendfile and splice modes keep the fields in a memfd: Linux 3.17 or later"
                            .into(),
                },
                _ => Error::io("memfd_create", e),
            });
        }
        // SAFETY: `fd` was just created and is owned by nothing else.
        let memfd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: a valid descriptor.
        if unsafe { libc::ftruncate(memfd.as_raw_fd(), len as libc::off_t) } != 0 {
            return Err(Error::io("sizing the memfd", io::Error::last_os_error()));
        }
        let pipe = pipe_for.map(Pipe::new).transpose()?;
        Ok(PageCache {
            memfd,
            pipe,
            nonblocking: AtomicU8::new(0),
            extra_calls: AtomicU64::new(0),
        })
    }

    pub fn memfd(&self) -> RawFd {
        self.memfd.as_raw_fd()
    }

    pub fn pipe(&self) -> Option<&Pipe> {
        self.pipe.as_ref()
    }

    /// Bytes the pipe holds, as the kernel granted it.
    pub fn pipe_capacity(&self) -> Option<usize> {
        self.pipe.as_ref().map(|p| p.capacity)
    }

    /// Calls made beside the ones the engine counts (see the field).
    pub fn extra_calls(&self) -> u64 {
        self.extra_calls.load(Ordering::Relaxed)
    }

    /// Sets the socket's O_NONBLOCK to `on` unless it already is: sendfile and splice
    /// have no per-call MSG_DONTWAIT, and a blocking receive needs it off.
    pub fn set_nonblocking(&self, sock: RawFd, on: bool) -> io::Result<()> {
        let want = if on { 2 } else { 1 };
        if self.nonblocking.load(Ordering::Relaxed) == want {
            return Ok(());
        }
        // SAFETY: fcntl on a descriptor the caller holds open.
        let flags = unsafe { libc::fcntl(sock, libc::F_GETFL) };
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        let to = if on {
            flags | libc::O_NONBLOCK
        } else {
            flags & !libc::O_NONBLOCK
        };
        // SAFETY: as above.
        if to != flags && unsafe { libc::fcntl(sock, libc::F_SETFL, to) } < 0 {
            return Err(io::Error::last_os_error());
        }
        self.extra_calls.fetch_add(2, Ordering::Relaxed);
        self.nonblocking.store(want, Ordering::Relaxed);
        Ok(())
    }

    /// Counts a call made beside the engine's.
    pub fn count_call(&self) {
        self.extra_calls.fetch_add(1, Ordering::Relaxed);
    }
}

impl Pipe {
    /// A pipe whose capacity is at least `bytes` (F_SETPIPE_SZ), or the most an
    /// unprivileged pipe may have (fs.pipe-max-size) where `bytes` is more: a syscall
    /// splice moves a message in pipe-sized steps; io_uring's needs it whole, and says so
    /// ([`Pipe::holds`]).
    fn new(bytes: usize) -> Result<Pipe, Error> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` has room for the two descriptors.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(Error::io("pipe2", io::Error::last_os_error()));
        }
        // SAFETY: both descriptors were just created and are owned by nothing else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: fcntl on the pipe just made.
        let mut capacity = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_GETPIPE_SZ) };
        let set = |to: usize| {
            // SAFETY: as above.
            unsafe {
                libc::fcntl(
                    write.as_raw_fd(),
                    libc::F_SETPIPE_SZ,
                    to.min(i32::MAX as usize) as libc::c_int,
                )
            }
        };
        if capacity >= 0 && (capacity as usize) < bytes {
            capacity = set(bytes);
            if capacity < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EPERM) {
                if let Some(max) = pipe_max_size().filter(|&m| m < bytes) {
                    capacity = set(max);
                }
            }
        }
        if capacity < 0 {
            let e = io::Error::last_os_error();
            return Err(Error::Resource(format!(
                "the kernel refused a pipe of {bytes} bytes for splice ({e}); {}",
                pipe_limits()
            )));
        }
        Ok(Pipe {
            read,
            write,
            capacity: capacity as usize,
            filled: AtomicUsize::new(0),
        })
    }

    pub fn read_end(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    pub fn write_end(&self) -> RawFd {
        self.write.as_raw_fd()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether one splice can carry `size` bytes starting at file offset `offset` into
    /// this pipe: a pipe has one slot per page, and the message touches this many pages.
    pub fn holds(&self, offset: u64, size: usize) -> bool {
        let page = crate::pool::page_size();
        let pages = (offset as usize % page + size).div_ceil(page);
        pages * page <= self.capacity
    }

    /// Message bytes spliced into the pipe and not yet out of it (syscall engine).
    pub fn filled(&self) -> usize {
        self.filled.load(Ordering::Relaxed)
    }

    pub fn set_filled(&self, n: usize) {
        self.filled.store(n, Ordering::Relaxed);
    }
}

/// fs.pipe-max-size: the most a pipe may hold without CAP_SYS_RESOURCE.
fn pipe_max_size() -> Option<usize> {
    std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// The limits on pipe sizes, for an error message.
pub fn pipe_limits() -> String {
    let max = pipe_max_size().map_or("unreadable".into(), |m| format!("{m} bytes"));
    format!(
        "fs.pipe-max-size is {max} (raise it, or the per-user fs.pipe-user-pages-soft, \
         or use a smaller --size)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipe_holds_what_it_was_asked_for() {
        let pc = PageCache::new(1 << 20, Some(300 << 10)).unwrap();
        let cap = pc.pipe_capacity().unwrap();
        assert!(cap >= 300 << 10, "{cap}");
        let pipe = pc.pipe().unwrap();
        assert!(pipe.holds(0, cap) && !pipe.holds(1, cap) && pipe.holds(1, cap - 4096));
        assert!(pc.memfd() >= 0);
        assert_eq!(pc.pipe().unwrap().filled(), 0);
        assert!(PageCache::new(4096, None).unwrap().pipe().is_none());
    }
}
