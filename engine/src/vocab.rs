//! The vocabulary every layer speaks: what a run is made of (backend, copy mode,
//! workload, verify level, receive strategy, counting scope, which end), the limits on
//! sizes and counts, and how sizes and durations are written. A leaf: it imports nothing
//! from the crate, so anything may use it.
//!
//! The names here are the ones on the command line, in records and on reports; the bytes
//! that stand for them on the wire are the wire's business (`wire`).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

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
/// Most registered buffers one io_uring ring takes (IORING_MAX_REG_BUFFERS).
pub const MAX_FIXED_BUFFERS: u32 = 1 << 14;
/// Longest measured interval.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
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
        Syscall = "syscall",
        /// One io_uring per worker thread, many connections per ring.
        Uring = "uring",
    }
}

named_enum! {
    /// Which copies a message goes through on its way into the socket.
    Mode {
        /// Serialize the 8 fields into one buffer, then send it; receive, then copy out.
        TwoCopy = "two-copy",
        /// sendmsg/recvmsg with an 8-entry iovec over the fields.
        OneCopy = "one-copy",
        /// MSG_ZEROCOPY (syscall) or SENDMSG_ZC (uring) over the iovec.
        Zc = "zc",
        /// uring only: SEND_ZC from a registered buffer holding the 8 fields.
        ZcFixed = "zc-fixed",
        /// The fields in a memfd (page cache); sendfile(2) (uring: SPLICE via a pipe).
        Sendfile = "sendfile",
        /// The fields in a memfd (page cache); splice into a pipe, then into the socket.
        Splice = "splice",
    }
}

named_enum! {
    /// What a connection does with messages.
    Workload {
        /// Send a message, wait for its echo; round-trip time per message.
        Echo = "echo",
        /// Bulk, one way or both (`Direction`); the receiver counts and checks.
        Stream = "stream",
    }
}

named_enum! {
    /// How much of every received message is checked.
    Verify {
        /// Every byte.
        Full = "full",
        /// The sequence tag and a few bytes of every field.
        Sample = "sample",
        /// Nothing.
        Off = "off",
    }
}

named_enum! {
    /// How the uring backend receives two-copy messages.
    UringRecv {
        /// One RECV with MSG_WAITALL per message into its wire buffer.
        Single = "single",
        /// One multishot RECV per connection into a ring of provided buffers; each chunk is
        /// copied out into the fields (the same copies as two-copy's receive).
        Multishot = "multishot",
    }
}

named_enum! {
    /// Where kernel counters are counted.
    CounterScope {
        /// Per worker thread (perf_event_open on the thread).
        Thread = "thread",
        /// Per CPU the run is pinned to: also catches softirq and kernel work for the sockets.
        Core = "core",
        /// Not at all.
        Off = "off",
    }
}

named_enum! {
    /// Where the two sides' threads run relative to each other: one named policy applied
    /// the same way at every thread count, so that a change of thread count is not also a
    /// change of placement.
    PlacementPolicy {
        /// Client thread i and server thread i share CPU i (wrapping over the CPUs): each
        /// round trip stays on one CPU.
        Paired = "paired",
        /// Servers on the first half of the CPUs, clients on the other half (wrapping within
        /// each half): the two sides never share a CPU, as on two hosts.
        Split = "split",
        /// Nothing pinned; the scheduler decides.
        Unpinned = "unpinned",
    }
}

named_enum! {
    /// What kind of doubt a record's warning raises.
    WarningKind {
        /// The run was stopped before its planned end.
        Interrupted = "interrupted",
        /// No message completed for a large part of the run.
        Stall = "stall",
        /// Far fewer messages than the run's own median rate predicts.
        BelowOwnRate = "below-own-rate",
        /// Received data failed verification.
        VerifyErrors = "verify-errors",
        /// Something asked for was not had; what ran instead.
        Fallback = "fallback",
        /// A CPU figure above what the CPUs could give in the interval: a counting error.
        ImpossibleCpu = "impossible-cpu",
        /// Busy polling was granted but the socket had no NAPI context to poll (loopback,
        /// veth): the option changed nothing.
        NoNapi = "no-napi",
    }
}

named_enum! {
    /// Which way a stream's messages flow on each connection.
    Direction {
        /// The client sends, the server receives and checks (the seed's stream).
        Forward = "forward",
        /// The server sends, the client receives and checks (`--reverse`).
        Reverse = "reverse",
        /// Both send and both receive, at once, on every connection (`--bidir`).
        Bidir = "bidir",
    }
}

impl Direction {
    /// Whether the client originates a stream.
    pub fn client_sends(self) -> bool {
        matches!(self, Direction::Forward | Direction::Bidir)
    }

    /// Whether the server originates a stream.
    pub fn server_sends(self) -> bool {
        matches!(self, Direction::Reverse | Direction::Bidir)
    }

    /// Whether `role` originates a stream in this direction.
    pub fn sends(self, role: Role) -> bool {
        match role {
            Role::Client => self.client_sends(),
            Role::Server => self.server_sends(),
        }
    }

    /// Whether `role` receives a stream in this direction.
    pub fn receives(self, role: Role) -> bool {
        match role {
            Role::Client => self.server_sends(),
            Role::Server => self.client_sends(),
        }
    }
}

// The enum's derives come from `named_enum!`, which has no Default.
#[allow(clippy::derivable_impls)]
impl Default for Direction {
    fn default() -> Self {
        Direction::Forward
    }
}

named_enum! {
    /// How a receiving side takes bytes off its socket, whatever the send mode.
    RxMode {
        /// recv/recvmsg into the message's buffers (as the mode receives), then verified.
        Copy = "copy",
        /// recv with MSG_TRUNC: TCP drops the bytes in the kernel without copying them to
        /// user space (Linux 2.4+), so the sender's cost is isolated; only byte counts and
        /// the message boundaries they imply can be checked.
        Discard = "discard",
        /// TCP_ZEROCOPY_RECEIVE (Linux 4.18+, syscall engine only): whole pages of payload
        /// are mapped into an mmap()ed region of the socket where the kernel and alignment
        /// allow it, the rest copied; verified where it lies.
        Zerocopy = "zerocopy",
    }
}

impl RxMode {
    /// Today's receive, and what a record without the field ran.
    pub const DEFAULT: RxMode = RxMode::Copy;
}

impl Default for RxMode {
    fn default() -> Self {
        RxMode::DEFAULT
    }
}

impl UringRecv {
    /// The faster of the two on the benchmark (README, "Engines").
    pub const DEFAULT: UringRecv = UringRecv::Single;
}

impl Default for UringRecv {
    fn default() -> Self {
        UringRecv::DEFAULT
    }
}

/// `n` and the noun that goes with it: `1 echo`, `2 echoes`.
pub fn count(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A host as a user writes it: a name, an IPv4 address, or an IPv6 address bare (`::1`)
/// or bracketed (`[::1]`, as it appears in `[::1]:8080`), returned without the brackets.
pub fn parse_host(text: &str) -> Result<String, String> {
    match text.strip_prefix('[') {
        Some(rest) => rest
            .strip_suffix(']')
            .filter(|inner| inner.parse::<std::net::Ipv6Addr>().is_ok())
            .map(str::to_string)
            .ok_or_else(|| {
                format!("invalid host '{text}': brackets hold an IPv6 address, such as [::1]")
            }),
        None => Ok(text.to_string()),
    }
}

/// An IP address, an IPv6 one bare (`::1`) or bracketed (`[::1]`).
pub fn parse_ip(text: &str) -> Result<std::net::IpAddr, String> {
    let bare = parse_host(text)?;
    bare.parse()
        .map_err(|_| format!("invalid address '{text}': expected an IPv4 or IPv6 address"))
}

/// `host:port` as addresses are written: an IPv6 address in brackets (`[::1]:8080`).
pub fn host_port(host: &str, port: u16) -> String {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.parse::<std::net::Ipv6Addr>().is_ok() {
        format!("[{bare}]:{port}")
    } else {
        format!("{host}:{port}")
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
            "invalid duration '{text}': expected a finite number of seconds, 0 or more"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// An io_uring setup flag copyperf asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetupFlag {
    /// IORING_SETUP_SINGLE_ISSUER: only the creating thread submits.
    SingleIssuer,
    /// IORING_SETUP_DEFER_TASKRUN: completion work runs only when the thread waits.
    DeferTaskrun,
    /// IORING_SETUP_COOP_TASKRUN: no interrupting IPI for completion work.
    CoopTaskrun,
    /// IORING_SETUP_SUBMIT_ALL: a failing SQE does not stop the batch.
    SubmitAll,
    /// IORING_SETUP_SQPOLL: a kernel thread polls the submission queue (`--sqpoll`).
    SqPoll,
    /// IORING_SETUP_SQ_AFF: that thread is bound to one CPU (`--sqpoll=CPU`).
    SqAff,
}

impl SetupFlag {
    pub const ALL: &'static [SetupFlag] = &[
        SetupFlag::SingleIssuer,
        SetupFlag::DeferTaskrun,
        SetupFlag::CoopTaskrun,
        SetupFlag::SubmitAll,
        SetupFlag::SqPoll,
        SetupFlag::SqAff,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SetupFlag::SingleIssuer => "single_issuer",
            SetupFlag::DeferTaskrun => "defer_taskrun",
            SetupFlag::CoopTaskrun => "coop_taskrun",
            SetupFlag::SubmitAll => "submit_all",
            SetupFlag::SqPoll => "sqpoll",
            SetupFlag::SqAff => "sq_aff",
        }
    }
}

/// The setup flags a ring got, written `+`-joined in records (`none` for none); an unknown
/// name in a record is an error, not a default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetupFlags(pub Vec<SetupFlag>);

impl SetupFlags {
    pub fn contains(&self, f: SetupFlag) -> bool {
        self.0.contains(&f)
    }
}

impl fmt::Display for SetupFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        let names: Vec<&str> = self.0.iter().map(|x| x.as_str()).collect();
        f.write_str(&names.join("+"))
    }
}

impl FromStr for SetupFlags {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "none" || s.is_empty() {
            return Ok(SetupFlags::default());
        }
        s.split('+')
            .map(|name| {
                SetupFlag::ALL
                    .iter()
                    .copied()
                    .find(|f| f.as_str() == name)
                    .ok_or_else(|| format!("unknown io_uring setup flag '{name}'"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(SetupFlags)
    }
}

/// A `+`-joined list written as one string, read back strictly.
macro_rules! serde_as_string {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
#[allow(clippy::single_component_path_imports)]
pub(crate) use serde_as_string;

serde_as_string!(SetupFlags);

/// Which end of the connection a flow runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Originates messages for `duration`.
    Client,
    /// Receives, checks, and in echo sends every message back.
    Server,
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
        assert_eq!(
            parse_seconds("-1").unwrap_err(),
            "invalid duration '-1': expected a finite number of seconds, 0 or more"
        );
        assert_eq!(parse_seconds("0.25"), Ok(Duration::from_millis(250)));
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("soon").is_err());
    }

    #[test]
    fn setup_flags_read_back_strictly() {
        let all = SetupFlags(SetupFlag::ALL.to_vec());
        assert_eq!(all.to_string().parse::<SetupFlags>(), Ok(all));
        assert_eq!("none".parse::<SetupFlags>(), Ok(SetupFlags::default()));
        assert!("single_issuer+iopoll"
            .parse::<SetupFlags>()
            .unwrap_err()
            .contains("iopoll"));
        let json = serde_json::to_string(&SetupFlags(vec![SetupFlag::CoopTaskrun])).unwrap();
        assert_eq!(json, "\"coop_taskrun\"");
    }

    #[test]
    fn names_round_trip() {
        for m in Mode::ALL {
            assert_eq!(m.as_str().parse::<Mode>(), Ok(*m));
        }
        assert!("three-copy"
            .parse::<Mode>()
            .unwrap_err()
            .contains("two-copy"));
    }

    #[test]
    fn directions_say_who_sends() {
        use Direction::*;
        assert!(Forward.sends(Role::Client) && !Forward.sends(Role::Server));
        assert!(Reverse.sends(Role::Server) && !Reverse.sends(Role::Client));
        assert!(Bidir.sends(Role::Client) && Bidir.sends(Role::Server));
        for d in Direction::ALL {
            for role in [Role::Client, Role::Server] {
                let peer = match role {
                    Role::Client => Role::Server,
                    Role::Server => Role::Client,
                };
                assert_eq!(d.sends(role), d.receives(peer), "{d} {role:?}");
            }
        }
        assert_eq!(Direction::default(), Forward);
    }

    /// Issue 16: "1 echoes outstanding".
    #[test]
    fn counts_take_the_noun_their_number_needs() {
        assert_eq!(count(1u32, "echo", "echoes"), "1 echo");
        assert_eq!(count(0u32, "echo", "echoes"), "0 echoes");
        assert_eq!(count(2u64, "client", "clients"), "2 clients");
    }

    /// Issue 16: `client -h '[::1]'` failed to resolve while errors print `[::1]:8081`.
    #[test]
    fn hosts_take_ipv6_addresses_with_or_without_brackets() {
        assert_eq!(parse_host("[::1]").as_deref(), Ok("::1"));
        assert_eq!(parse_host("::1").as_deref(), Ok("::1"));
        assert_eq!(parse_host("example.org").as_deref(), Ok("example.org"));
        assert!(parse_host("[::1")
            .unwrap_err()
            .contains("brackets hold an IPv6"));
        assert!(parse_host("[example.org]").is_err());
        assert_eq!(parse_ip("[fe80::1]"), Ok("fe80::1".parse().unwrap()));
        assert_eq!(parse_ip("10.0.0.1"), Ok([10, 0, 0, 1].into()));
        assert!(parse_ip("localhost").is_err());
        assert_eq!(host_port("::1", 8080), "[::1]:8080");
        assert_eq!(host_port("[::1]", 8080), "[::1]:8080");
        assert_eq!(host_port("127.0.0.1", 8080), "127.0.0.1:8080");
        assert_eq!(host_port("example.org", 80), "example.org:80");
    }
}

named_enum! {
    /// What a sweep point adds to avoid syscalls and wake-ups (`sweep --uring-opts`).
    PollOpt {
        /// Neither: the rings and sockets as the engine sets them up.
        Plain = "plain",
        /// IORING_SETUP_SQPOLL on both sides' rings (uring only).
        Sqpoll = "sqpoll",
        /// Busy polling on both sides: NAPI on the rings, SO_BUSY_POLL on the sockets.
        BusyPoll = "busy-poll",
    }
}
