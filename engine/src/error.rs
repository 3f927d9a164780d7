//! The engine's typed errors and the exit codes the binaries map them to.
//!
//! A leaf: it imports nothing from the crate. [`WireError`] lives here, beside the error
//! that wraps it, so that the wire can depend on the error and not the other way round.

use std::io;

/// Exit codes shared by every binary (documented in README.md).
pub mod exit {
    /// The run completed and every check passed.
    pub const OK: i32 = 0;
    /// An I/O or protocol failure (bind, connect, a peer that went away or went silent),
    /// a resource that ran out, or an internal error.
    pub const FAILURE: i32 = 1;
    /// Bad flags or values: nothing was run.
    pub const USAGE: i32 = 2;
    /// The server refused the connection and said why.
    pub const REFUSED: i32 = 3;
    /// The run completed but received data failed verification.
    pub const VERIFY: i32 = 4;
    /// The kernel lacks a feature the chosen backend or mode needs.
    pub const UNSUPPORTED: i32 = 5;
    /// Stopped by SIGINT before anything was measured (128 + SIGINT, as shells report
    /// it; after SIGTERM the client exits 143).
    pub const INTERRUPTED: i32 = 130;
}

/// Everything that can stop a run, each with the context a user needs to act on it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag or value out of range; raised before anything runs.
    #[error("{0}")]
    Config(String),
    #[error("could not bind {addr}: {source}")]
    Bind { addr: String, source: io::Error },
    #[error("could not connect to {addr}: {source}")]
    Connect { addr: String, source: io::Error },
    #[error("server {addr} refused the connection: {reason}")]
    Refused { addr: String, reason: String },
    #[error("protocol error: {0}")]
    Wire(#[from] WireError),
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
    /// The peer stayed silent past the timeout.
    #[error("{0}")]
    Timeout(String),
    /// The peer broke the protocol: closed mid-message, sent what was not asked for.
    #[error("{0}")]
    Peer(String),
    /// A kernel feature is missing; names the feature and the running kernel.
    #[error("{feature} is not supported by the running kernel ({kernel}): {hint}")]
    Unsupported {
        feature: String,
        kernel: String,
        hint: String,
    },
    /// io_uring rings or registered buffers need more locked memory than RLIMIT_MEMLOCK
    /// allows.
    #[error(
        "{what} need {needed} bytes of locked memory but RLIMIT_MEMLOCK allows {limit}; \
         raise it (ulimit -l {needed_kib}, or memlock in limits.conf) or run with CAP_IPC_LOCK",
        needed_kib = needed.div_ceil(1024)
    )]
    Memlock {
        what: String,
        needed: u64,
        limit: u64,
    },
    /// A resource ran out while running: a kernel limit, the server's memory budget.
    #[error("{0}")]
    Resource(String),
    /// The user stopped the run (SIGINT/SIGTERM) before it measured anything.
    #[error("interrupted before the measured interval started")]
    Interrupted,
    /// The server ended the connection before the run's end and said why (its end notice,
    /// protocol version 4): it is shutting down, it caught a bug, its worker stopped, or
    /// it failed the connection. The text is the server's, bounded and sanitized.
    #[error("server ended the run: {0}")]
    ServerEnded(String),
    /// A bug in copyperf, caught and contained (a panic in one connection's handling).
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// A caught panic, as the internal error it is.
    pub fn from_panic(panic: &(dyn std::any::Any + Send)) -> Error {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into());
        Error::Internal(format!(
            "{what} (a copyperf bug: please report it); only this connection was closed"
        ))
    }

    /// The documented process exit code for this error. Every variant is named, so a new
    /// one must be given its code here.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) => exit::USAGE,
            Error::Refused { .. } => exit::REFUSED,
            Error::Unsupported { .. } | Error::Memlock { .. } => exit::UNSUPPORTED,
            Error::Interrupted => exit::INTERRUPTED,
            Error::Bind { .. }
            | Error::Connect { .. }
            | Error::Wire(_)
            | Error::Io { .. }
            | Error::Timeout(_)
            | Error::Peer(_)
            | Error::ServerEnded(_)
            | Error::Resource(_)
            | Error::Internal(_) => exit::FAILURE,
        }
    }
}

/// The running kernel's release, for error messages and records.
pub fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown kernel".into())
}

/// Why bytes off the wire are not a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("truncated frame: need {need} bytes, have {have}")]
    Truncated { need: usize, have: usize },
    #[error("not a copyperf peer: frame starts with {0:02x?} instead of \"CPRF\"")]
    BadMagic([u8; 4]),
    #[error("peer speaks protocol version {0}, this build speaks {WIRE_VERSION}")]
    Version(u16),
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    #[error("{kind} frame of {len} bytes is over its {max}-byte limit")]
    TooLong {
        kind: &'static str,
        len: usize,
        max: usize,
    },
    #[error("malformed {kind} frame: {why}")]
    Malformed { kind: &'static str, why: String },
    #[error("expected a {expected} frame, got {got}")]
    Unexpected {
        expected: &'static str,
        got: &'static str,
    },
}

/// The protocol version this build speaks (re-exported as `wire::VERSION`).
pub const WIRE_VERSION: u16 = 4;
