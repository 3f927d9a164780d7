//! Flags become one validated, typed configuration here, and nowhere else.
//!
//! The binaries parse raw flags with clap and hand them to [`ClientConfig::validate`] or
//! [`ServerConfig::validate`]; everything past that point can rely on the limits below.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::placement::CpuSpec;
use crate::pool::PoolPlan;

/// Smallest message: 8 fields of at least 8 bytes, each opening with its sequence tag.
pub const MIN_SIZE: usize = 64;
/// Largest message a client may ask for and a server may accept.
pub const MAX_SIZE: usize = 16 << 20;
/// Most messages in flight on one connection.
pub const MAX_DEPTH: usize = 1024;
/// Most bytes one connection's buffers may take (its pool and template, as allocated).
pub const MAX_POOL_BYTES: usize = 256 << 20;
/// Most client threads, uring connections per thread and server clients.
pub const MAX_THREADS: usize = 1024;
/// Longest measured interval.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal / $code:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in the order the CLI lists them.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The name used on the command line, in records and on reports.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// The byte that stands for this value on the wire.
            pub fn code(self) -> u8 {
                match self { $($name::$variant => $code),+ }
            }

            /// The value a wire byte stands for, if any.
            pub fn from_code(code: u8) -> Option<Self> {
                match code { $($code => Some($name::$variant),)+ _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(format!(
                        "unknown {} '{}' (expected one of: {})",
                        stringify!($name).to_lowercase(),
                        s,
                        [$($text),+].join(", ")
                    )),
                }
            }
        }
    };
}

named_enum! {
    /// How bytes reach the kernel.
    Backend {
        /// Classic blocking syscalls, one thread per connection (the seed's model).
        Syscall = "syscall" / 1,
        /// One io_uring per worker thread, many connections per ring.
        Uring = "uring" / 2,
    }
}

named_enum! {
    /// Which copies a message goes through on its way into the socket.
    Mode {
        /// Serialize the 8 fields into one buffer, then send it; receive, then copy out.
        TwoCopy = "two-copy" / 1,
        /// sendmsg/recvmsg with an 8-entry iovec over the fields.
        OneCopy = "one-copy" / 2,
        /// MSG_ZEROCOPY (syscall) or SENDMSG_ZC (uring) over the iovec.
        Zc = "zc" / 3,
        /// uring only: SEND_ZC from a registered buffer holding the 8 fields.
        ZcFixed = "zc-fixed" / 4,
    }
}

named_enum! {
    /// What a connection does with messages.
    Workload {
        /// Send a message, wait for its echo; round-trip time per message.
        Echo = "echo" / 1,
        /// One-way bulk; the server counts and checks.
        Stream = "stream" / 2,
    }
}

named_enum! {
    /// How much of every received message is checked.
    Verify {
        /// Every byte.
        Full = "full" / 1,
        /// The sequence tag and a few bytes of every field.
        Sample = "sample" / 2,
        /// Nothing.
        Off = "off" / 3,
    }
}

named_enum! {
    /// How the uring backend receives two-copy messages.
    UringRecv {
        /// One RECV with MSG_WAITALL per message into its wire buffer.
        Single = "single" / 1,
        /// One multishot RECV per connection into a ring of provided buffers; each chunk is
        /// copied out into the fields (the same copies as two-copy's receive).
        Multishot = "multishot" / 2,
    }
}

named_enum! {
    /// Where kernel counters are counted.
    CounterScope {
        /// Per worker thread (perf_event_open on the thread).
        Thread = "thread" / 1,
        /// Per CPU the run is pinned to: also catches softirq and kernel work for the sockets.
        Core = "core" / 2,
        /// Not at all.
        Off = "off" / 3,
    }
}

impl UringRecv {
    /// The faster of the two on the benchmark (README, "Engines").
    pub const DEFAULT: UringRecv = UringRecv::Single;
}

impl Mode {
    /// True where the kernel is asked not to copy the payload.
    pub fn is_zero_copy(self) -> bool {
        matches!(self, Mode::Zc | Mode::ZcFixed)
    }

    /// True where this backend implements this mode.
    pub fn supported_on(self, backend: Backend) -> bool {
        !(self == Mode::ZcFixed && backend == Backend::Syscall)
    }
}

/// Parses a byte count: `4096`, `1K`, `64k`, `1M`, `2KiB`, `1MB`. Suffixes are binary
/// (1K = 1024), as in the seed's 1KB…64KB matrix.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, suffix) = t.split_at(split);
    if digits.is_empty() {
        return Err(format!(
            "invalid size '{text}': expected a number such as 4096, 4K or 1M"
        ));
    }
    let shift = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(format!("invalid size suffix in '{text}': use K, M or G")),
    };
    let n: usize = digits
        .parse()
        .map_err(|_| format!("invalid size '{text}': number too large"))?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("invalid size '{text}': number too large"))
}

/// Formats a byte count the way [`parse_size`] reads it: `1K`, `64K`, `1M`, or plain bytes.
pub fn format_size(n: usize) -> String {
    for (shift, unit) in [(30, "G"), (20, "M"), (10, "K")] {
        if n >= 1 << shift && n % (1 << shift) == 0 {
            return format!("{}{unit}", n >> shift);
        }
    }
    n.to_string()
}

/// Parses a duration in seconds, fractions allowed (`3`, `0.5`).
pub fn parse_seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("invalid duration '{text}': expected seconds, such as 3 or 0.5"))?;
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!(
            "invalid duration '{text}': must be a positive number of seconds"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Everything one client run needs, validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientConfig {
    /// Server host name or address.
    pub host: String,
    /// Server TCP port.
    pub port: u16,
    pub backend: Backend,
    pub mode: Mode,
    pub workload: Workload,
    /// Message size in bytes.
    pub size: usize,
    /// Worker threads (syscall: one connection each; uring: one ring each).
    pub threads: usize,
    /// Connections per uring ring (always 1 on the syscall backend).
    pub conns: usize,
    /// Messages in flight per connection.
    pub depth: usize,
    /// The measured interval.
    #[serde(with = "secs_f64")]
    pub duration: Duration,
    pub verify: Verify,
    /// How long connecting and the handshake may take.
    #[serde(with = "secs_f64")]
    pub connect_timeout: Duration,
    /// How long the server may stay silent while the client waits on it.
    #[serde(with = "secs_f64")]
    pub io_timeout: Duration,
    /// How the uring backend receives two-copy messages.
    pub uring_recv: UringRecv,
    /// Which CPUs the worker threads are pinned to.
    pub cpus: CpuSpec,
    /// Where kernel counters are counted.
    pub counters: CounterScope,
    /// TCP_NODELAY on the client's sockets; `None` (auto) is resolved once connected (see
    /// [`auto_nodelay`]) and the record holds the value used.
    pub nodelay: Option<bool>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            host: "127.0.0.1".into(),
            port: 8080,
            backend: Backend::Syscall,
            mode: Mode::TwoCopy,
            workload: Workload::Echo,
            size: 4096,
            threads: 1,
            conns: 1,
            depth: 1,
            duration: Duration::from_secs(3),
            verify: Verify::Sample,
            connect_timeout: Duration::from_secs(5),
            io_timeout: Duration::from_secs(10),
            uring_recv: UringRecv::DEFAULT,
            cpus: CpuSpec::Auto,
            counters: CounterScope::Thread,
            nodelay: None,
        }
    }
}

impl ClientConfig {
    /// Checks every limit once; the engine relies on them afterwards.
    pub fn validate(self) -> Result<Self, Error> {
        check_size(self.size)?;
        check_count("threads (-t)", self.threads)?;
        check_count("connections per thread (--conns)", self.conns)?;
        check_pool(
            crate::workload::Role::Client,
            self.mode,
            self.depth,
            self.size,
        )?;
        if !self.mode.supported_on(self.backend) {
            return Err(Error::Config(format!(
                "mode {} needs the uring backend (registered buffers); use --backend uring",
                self.mode
            )));
        }
        if self.backend == Backend::Syscall && self.conns != 1 {
            return Err(Error::Config(
                "--conns applies to the uring backend; the syscall backend runs one connection per thread (-t)".into(),
            ));
        }
        if self.duration.is_zero() || self.duration > MAX_DURATION {
            return Err(Error::Config(format!(
                "duration must be between 0 and {} seconds",
                MAX_DURATION.as_secs()
            )));
        }
        if self.connect_timeout.is_zero() || self.io_timeout.is_zero() {
            return Err(Error::Config("timeouts must be greater than zero".into()));
        }
        if self.host.is_empty() {
            return Err(Error::Config("host (-h) must not be empty".into()));
        }
        Ok(self)
    }

    /// Connections in the whole run.
    pub fn total_connections(&self) -> usize {
        self.threads * self.conns
    }
}

/// TCP_NODELAY when the user left it automatic. Echo: on, every message waits on its
/// reply. Stream: off (Nagle) while a message is smaller than a segment, so small writes
/// coalesce into full segments as bulk senders run; on once a message fills a segment
/// (`mss`, the connection's TCP_MAXSEG), where Nagle could only hold back the remainder
/// until the next ACK.
pub fn auto_nodelay(workload: Workload, size: usize, mss: usize) -> bool {
    workload == Workload::Echo || size >= mss
}

/// Everything one server needs, validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerConfig {
    pub bind: IpAddr,
    pub port: u16,
    pub backend: Backend,
    /// The one mode this server serves, or `None` to serve whatever each client asks for.
    pub mode: Option<Mode>,
    /// Largest message size a client may ask for.
    pub max_size: usize,
    /// Most clients connected at once; one more is refused with the reason.
    pub max_clients: usize,
    /// uring worker threads (rings); ignored by the syscall backend's thread per client.
    pub workers: usize,
    /// A connection that moves no whole message for this long is closed.
    #[serde(with = "secs_f64")]
    pub idle_timeout: Duration,
    /// Bytes all connections' buffers may take together; a client whose buffers would go
    /// past it is refused with the reason.
    #[serde(default = "default_max_memory")]
    pub max_memory: u64,
    /// How the uring backend receives two-copy messages.
    pub uring_recv: UringRecv,
    /// Which CPUs the worker threads are pinned to.
    pub cpus: CpuSpec,
    /// Where kernel counters are counted.
    pub counters: CounterScope,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: IpAddr::from([0, 0, 0, 0]),
            port: 8080,
            backend: Backend::Syscall,
            mode: None,
            max_size: 1 << 20,
            max_clients: 64,
            workers: default_workers(),
            idle_timeout: Duration::from_secs(10),
            max_memory: default_max_memory(),
            uring_recv: UringRecv::DEFAULT,
            cpus: CpuSpec::Auto,
            counters: CounterScope::Thread,
        }
    }
}

/// The server's default memory budget: a quarter of this machine's physical memory, so
/// that clients cannot push it into swap or the OOM killer.
pub fn default_max_memory() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let (pages, page) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    if pages > 0 && page > 0 {
        pages as u64 * page as u64 / 4
    } else {
        1 << 30
    }
}

/// The uring server's default worker count: one per CPU this process may run on.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl ServerConfig {
    /// Checks every limit once; the engine relies on them afterwards.
    pub fn validate(self) -> Result<Self, Error> {
        check_size(self.max_size)?;
        check_count("max clients (-t)", self.max_clients)?;
        check_count("workers (--workers)", self.workers)?;
        if let Some(mode) = self.mode {
            if !mode.supported_on(self.backend) {
                return Err(Error::Config(format!(
                    "mode {mode} needs the uring backend (registered buffers); use --backend uring"
                )));
            }
        }
        if self.idle_timeout.is_zero() {
            return Err(Error::Config(
                "--idle-timeout must be greater than zero".into(),
            ));
        }
        let smallest = PoolPlan::new(crate::workload::Role::Server, Mode::OneCopy, MIN_SIZE, 1);
        if self.max_memory < smallest.bytes() {
            return Err(Error::Config(format!(
                "--max-memory {} is below what the smallest connection takes ({} bytes)",
                self.max_memory,
                smallest.bytes()
            )));
        }
        Ok(self)
    }
}

fn check_size(size: usize) -> Result<(), Error> {
    if !(MIN_SIZE..=MAX_SIZE).contains(&size) {
        return Err(Error::Config(format!(
            "message size {size} is out of range: it must be between {MIN_SIZE} bytes and {} ({MAX_SIZE} bytes)",
            format_size(MAX_SIZE)
        )));
    }
    Ok(())
}

fn check_count(what: &str, n: usize) -> Result<(), Error> {
    if !(1..=MAX_THREADS).contains(&n) {
        return Err(Error::Config(format!(
            "{what} is {n}: it must be between 1 and {MAX_THREADS}"
        )));
    }
    Ok(())
}

/// Depth is bounded on its own, and with the size by the memory one side of a connection
/// allocates for its buffers ([`PoolPlan::bytes`]); returns that plan.
pub(crate) fn check_pool(
    role: crate::workload::Role,
    mode: Mode,
    depth: usize,
    size: usize,
) -> Result<PoolPlan, Error> {
    if !(1..=MAX_DEPTH).contains(&depth) {
        return Err(Error::Config(format!(
            "depth {depth} is out of range: it must be between 1 and {MAX_DEPTH}"
        )));
    }
    let plan = PoolPlan::new(role, mode, size, depth);
    let bytes = plan.bytes();
    if bytes > MAX_POOL_BYTES as u64 {
        return Err(Error::Config(format!(
            "depth {depth} × size {size} ({mode}) needs {bytes} bytes of buffers per connection \
             ({} messages), over the {} limit",
            plan.count(),
            format_size(MAX_POOL_BYTES)
        )));
    }
    Ok(plan)
}

/// Durations travel as fractional seconds in records.
pub(crate) mod secs_f64 {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("1K"), Ok(1024));
        assert_eq!(parse_size("64k"), Ok(65536));
        assert_eq!(parse_size("2KiB"), Ok(2048));
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert_eq!(parse_size("1MB"), Ok(1 << 20));
        assert!(parse_size("").is_err());
        assert!(parse_size("K").is_err());
        assert!(parse_size("4X").is_err());
        assert!(parse_size("-4").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
    }

    #[test]
    fn sizes_format_back() {
        for n in [64, 1024, 4096, 65536, 1 << 20, 1000] {
            assert_eq!(parse_size(&format_size(n)), Ok(n));
        }
        assert_eq!(format_size(65536), "64K");
    }

    #[test]
    fn seconds_allow_fractions() {
        assert_eq!(parse_seconds("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_seconds("0.25"), Ok(Duration::from_millis(250)));
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("soon").is_err());
    }

    #[test]
    fn names_and_codes_round_trip() {
        for m in Mode::ALL {
            assert_eq!(m.as_str().parse::<Mode>(), Ok(*m));
            assert_eq!(Mode::from_code(m.code()), Some(*m));
        }
        for b in Backend::ALL {
            assert_eq!(Backend::from_code(b.code()), Some(*b));
        }
        assert!("three-copy"
            .parse::<Mode>()
            .unwrap_err()
            .contains("two-copy"));
        assert_eq!(Mode::from_code(0), None);
    }

    #[test]
    fn client_limits_are_enforced() {
        let ok = ClientConfig::default();
        assert!(ok.clone().validate().is_ok());
        let e = ClientConfig {
            size: 10,
            ..ok.clone()
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("out of range"), "{e}");
        assert!(ClientConfig {
            size: MAX_SIZE + 1,
            ..ok.clone()
        }
        .validate()
        .is_err());
        assert!(ClientConfig {
            threads: 0,
            ..ok.clone()
        }
        .validate()
        .is_err());
        assert!(ClientConfig {
            depth: 0,
            ..ok.clone()
        }
        .validate()
        .is_err());
        assert!(ClientConfig {
            depth: 1000,
            size: 1 << 20,
            ..ok.clone()
        }
        .validate()
        .is_err());
        let e = ClientConfig {
            mode: Mode::ZcFixed,
            ..ok.clone()
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("uring"), "{e}");
        assert!(ClientConfig {
            conns: 2,
            ..ok.clone()
        }
        .validate()
        .is_err());
        assert!(ClientConfig {
            conns: 2,
            backend: Backend::Uring,
            ..ok.clone()
        }
        .validate()
        .is_ok());
        assert!(ClientConfig {
            duration: Duration::ZERO,
            ..ok
        }
        .validate()
        .is_err());
    }

    #[test]
    fn nodelay_follows_the_workload_and_the_segment_size() {
        assert!(auto_nodelay(Workload::Echo, 1024, 65483));
        assert!(
            !auto_nodelay(Workload::Stream, 16384, 65483),
            "loopback: 16K coalesces"
        );
        assert!(
            auto_nodelay(Workload::Stream, 65536, 65483),
            "64K fills a loopback segment"
        );
        assert!(auto_nodelay(Workload::Stream, 4096, 1448), "Ethernet MSS");
    }

    #[test]
    fn server_limits_are_enforced() {
        let ok = ServerConfig::default();
        assert!(ok.clone().validate().is_ok());
        assert!(ServerConfig {
            max_clients: 0,
            ..ok.clone()
        }
        .validate()
        .is_err());
        assert!(ServerConfig {
            mode: Some(Mode::ZcFixed),
            ..ok.clone()
        }
        .validate()
        .is_err());
        assert!(ServerConfig {
            mode: Some(Mode::ZcFixed),
            backend: Backend::Uring,
            ..ok
        }
        .validate()
        .is_ok());
    }
}
