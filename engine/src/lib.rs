//! copyperf's engine: everything that moves or measures bytes.
//!
//! The binaries parse flags into a [`ClientConfig`] or [`ServerConfig`], call
//! [`run_client`] or [`Server::run`], and print the [`Record`] with one of the [`export`]
//! writers. Everything a second binary could need lives here.
//!
//! Inside, a connection's workload ([`workload`]: echo or stream, client or server side)
//! makes every decision that is not I/O; a backend (syscall or io_uring) moves its
//! messages; `message` and `pool` own the bytes; `wire` frames the handshake and the
//! end-of-run report.

mod backend;
mod client;
pub mod config;
mod conn;
pub mod counters;
pub mod cputime;
mod error;
pub mod export;
pub mod host;
mod live;
mod merge;
mod message;
mod pagecache;
mod path;
pub mod placement;
pub mod polling;
mod pool;
mod proof;
mod record;
mod server;
mod sqthread;
mod stats;
pub mod tcpinfo;
pub mod vocab;
pub mod wire;
mod workload;

pub use client::{run_client, run_client_until, run_valid_client_until, ClientEvent};
pub use config::{
    Backend, ClientConfig, CounterScope, Direction, Mode, PollOpt, RxMode, ServerConfig, UringRecv,
    Verify, Workload,
};
pub use error::{exit, kernel_release, Error};
pub use live::{Interval, IntervalFigures};
pub use merge::MergeError;
pub use record::{
    rfc3339, Part, RateReport, Record, SideReport, Summary, ThreadReport, Warning, WarningKind,
    SCHEMA_VERSION,
};
pub use server::{Server, ServerEvent};
pub use stats::{
    ByRefStats, FlowStats, HistogramError, IoStats, Latency, LatencySummary, PeerReport, RxStats,
    ZeroCopyStats, MAX_SERIALIZED_LEN,
};

/// The soft RLIMIT_MEMLOCK (what io_uring rings and registered buffers may pin without
/// CAP_IPC_LOCK); `None` when unlimited.
pub fn memlock_limit() -> Option<u64> {
    backend::uring::memlock_limit()
}

/// Whether `backend` can receive by `rx` (whatever the kernel: zerocopy is syscall-only);
/// the error says why not.
pub fn check_rx_support(backend: Backend, rx: RxMode) -> Result<(), Error> {
    let recv_zc = (backend == Backend::Uring)
        .then(backend::uring::has_recv_zc)
        .flatten();
    match path::rx::refusal(rx, backend, recv_zc) {
        Some(why) => Err(Error::Config(format!("--rx {rx}: {why}"))),
        None => Ok(()),
    }
}

/// Whether this kernel can run `mode` on `backend`; the error names what is missing.
pub fn check_support(backend: Backend, mode: Mode) -> Result<(), Error> {
    if !mode.supported_on(backend) {
        return Err(Error::Config(format!(
            "mode {mode} is not available on the {backend} backend"
        )));
    }
    match backend {
        Backend::Uring => backend::uring::check_kernel(Some(mode)),
        Backend::Syscall => Ok(()),
    }
}
