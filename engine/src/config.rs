//! Flags become one validated, typed configuration here, and nowhere else.
//!
//! Two steps, as ripgrep parses its flags: the binaries turn raw flags into a
//! [`ClientConfig`] or [`ServerConfig`] (plain data, no checks), and
//! [`ClientConfig::validate`] / [`ServerConfig::validate`] check every limit once and
//! return a [`Valid`] one. The engine's entry points validate what they are given and
//! pass only [`Valid`] configurations inward, so nothing runs unchecked and nothing is
//! checked twice.

use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::path::path;
use crate::placement::CpuSpec;
pub use crate::polling::SqPoll;
use crate::pool::PoolPlan;
pub use crate::vocab::*;

/// A configuration that passed its `validate`: only `validate` makes one.
#[derive(Debug, Clone, PartialEq)]
pub struct Valid<T>(T);

impl<T> std::ops::Deref for Valid<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> Valid<T> {
    /// The configuration itself, e.g. for a record.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl Valid<ClientConfig> {
    /// Resolves `--nodelay auto` once the connection's segment size is known.
    pub(crate) fn resolve_nodelay(&mut self, nodelay: bool) {
        self.0.nodelay.get_or_insert(nodelay);
    }
}

/// Everything one client run needs.
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
    /// The measured interval; with a count (`messages`, `bytes`), the most the run may
    /// take (the client binary sets it to [`MAX_DURATION`] then).
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
    /// Who sends the stream: the client (forward), the server (`--reverse`), or both at
    /// once (`--bidir`). Records from before it existed ran forward.
    #[serde(default)]
    pub direction: Direction,
    /// How the receiving side(s) take bytes off the socket (`--rx`): the server, told in
    /// the hello, and in echo the client too.
    #[serde(default)]
    pub rx: RxMode,
    /// `--sqpoll[=CPU]`: the client's rings poll their submission queues from a kernel
    /// thread (uring only); `None`: off.
    #[serde(default)]
    pub sqpoll: Option<SqPoll>,
    /// `--busy-poll USEC`: busy polling on the client's sockets (SO_BUSY_POLL) or rings
    /// (NAPI); `None`: off.
    #[serde(default)]
    pub busy_poll_us: Option<u32>,
    /// `--omit SECONDS` (iperf3's `-O`): a warm-up run before the measured interval and
    /// left out of it; zero: none. Absent from records without one.
    #[serde(default, with = "secs_f64", skip_serializing_if = "Duration::is_zero")]
    pub omit: Duration,
    /// `--interval SECONDS`: how often the client reports live figures (each kept in the
    /// record's `intervals`); zero: never. Absent from records without them.
    #[serde(default, with = "secs_f64", skip_serializing_if = "Duration::is_zero")]
    pub interval: Duration,
    /// `--rate MSGS_PER_S`: echo runs open loop, sending this many messages a second in
    /// all (the run's total, shared evenly by its connections) on a fixed schedule,
    /// with each round trip timed from its message's due time; `depth` caps the echoes
    /// outstanding per connection. `None`: closed loop. Absent from records without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// `--messages N`: the run ends once the client has sent N messages after the warm-up,
    /// in all, split evenly over the connections ([`ClientConfig::messages_of`]), rather
    /// than after `duration`, which is then a cap. Absent from records without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<u64>,
    /// `-n BYTES` (iperf3's `--bytes`): as `messages`, given in bytes and rounded up to
    /// whole messages ([`ClientConfig::message_count`]). Absent from records without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
}

/// The highest `--rate` accepted, messages a second in all: a schedule finer than 10 ns
/// a message is beyond any one host's clock and calls.
pub const MAX_RATE: f64 = 100_000_000.0;

/// The echoes outstanding per connection an open-loop run (`--rate`) allows when
/// `--depth` is not given: enough that the schedule keeps going through a stall of many
/// round trips, while the cap still bounds the buffers.
pub const RATE_DEPTH: usize = 64;

/// The shortest `--interval` accepted: shorter ones would cost the run more than they show.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);

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
            cpus: CpuSpec::default(),
            counters: CounterScope::Thread,
            nodelay: None,
            rx: RxMode::Copy,
            direction: Direction::Forward,
            sqpoll: None,
            busy_poll_us: None,
            omit: Duration::ZERO,
            interval: Duration::ZERO,
            rate: None,
            messages: None,
            bytes: None,
        }
    }
}

impl ClientConfig {
    /// Checks every limit once; the engine relies on them afterwards.
    pub fn validate(self) -> Result<Valid<Self>, Error> {
        check_size(self.size)?;
        check_count("threads (-t)", self.threads)?;
        check_count("connections per thread (--conns)", self.conns)?;
        if !self.interval.is_zero() && self.interval < MIN_INTERVAL {
            return Err(Error::Config(format!(
                "--interval {} s is under the {} s accepted (0 turns intervals off)",
                self.interval.as_secs_f64(),
                MIN_INTERVAL.as_secs_f64()
            )));
        }
        if let Some(rate) = self.rate {
            check_rate(rate, self.workload)?;
        }
        let plan = check_pool(
            self.backend,
            self.workload,
            Role::Client,
            self.mode,
            self.depth,
            self.size,
        )?;
        if plan.stride.is_some() {
            let n = self.conns * plan.count();
            if n > MAX_FIXED_BUFFERS as usize {
                return Err(Error::Config(format!(
                    "zc-fixed needs {n} registered buffers per ring ({} × {}: \
                     each sender keeps up to 4 MiB of buffers awaiting their notifications, \
                     at least 2 × depth); a ring takes {MAX_FIXED_BUFFERS}: lower --conns, \
                     or --depth where it sets the count",
                    count(self.conns as u64, "connection", "connections"),
                    plan.count()
                )));
            }
        }
        if !self.mode.supported_on(self.backend) {
            return Err(Error::Config(format!(
                "mode {} needs the uring backend (registered buffers); use --backend uring",
                self.mode
            )));
        }
        if let Some(why) = page_cache_direction(self.mode, self.direction) {
            return Err(Error::Config(why));
        }
        if self.direction != Direction::Forward && self.workload != Workload::Stream {
            return Err(Error::Config(format!(
                "--{} applies to the stream workload; echo always goes both ways",
                self.direction
            )));
        }
        if self.direction.server_sends()
            && self.backend == Backend::Uring
            && self.uring_recv == UringRecv::Multishot
            && path(self.mode).wire
        {
            return Err(Error::Config(format!(
                "--uring-recv multishot cannot receive the server's stream (--{}): a multishot \
                 receive takes whatever arrives into the ring's buffers, the server's end-of-run \
                 figures after the stream included; use --uring-recv single",
                self.direction
            )));
        }
        if self.direction != Direction::Forward && self.rx != RxMode::Copy {
            return Err(Error::Config(format!(
                "--rx {} with --{}: the client finds the end of the server's stream by reading \
                 its end record, so it receives by copying; --rx discard and zerocopy go with \
                 the forward stream and echo for now",
                self.rx, self.direction
            )));
        }
        if self.workload == Workload::Echo {
            // The client receives only in echo; a stream's receiving server speaks for
            // itself when it accepts or refuses the hello.
            let recv_zc = (self.backend == Backend::Uring)
                .then(crate::backend::uring::has_recv_zc)
                .flatten();
            if let Some(why) = crate::path::rx::refusal(self.rx, self.backend, recv_zc) {
                return Err(Error::Config(format!("--rx {}: {why}", self.rx)));
            }
            if self.backend == Backend::Uring
                && self.uring_recv == UringRecv::Multishot
                && self.rx != RxMode::Copy
            {
                return Err(Error::Config(format!(
                    "--uring-recv multishot receives by copying out of provided buffers: \
                     it goes with --rx copy, not --rx {}",
                    self.rx
                )));
            }
        }
        if self.backend == Backend::Syscall && self.conns != 1 {
            return Err(Error::Config(
                "--conns applies to the uring backend; the syscall backend runs one connection per thread (-t)".into(),
            ));
        }
        if self.duration.is_zero() || self.duration > MAX_DURATION {
            return Err(Error::Config(format!(
                "duration (-d) is {} seconds: it must be more than 0 and at most {} seconds",
                self.duration.as_secs_f64(),
                MAX_DURATION.as_secs()
            )));
        }
        for (flag, timeout) in [
            ("--connect-timeout", self.connect_timeout),
            ("--io-timeout", self.io_timeout),
        ] {
            if timeout.is_zero() {
                return Err(Error::Config(format!(
                    "{flag} is 0 seconds: it must be more than 0"
                )));
            }
        }
        if self.host.is_empty() {
            return Err(Error::Config("host (-h) must not be empty".into()));
        }
        check_polling(self.backend, self.sqpoll, self.busy_poll_us)?;
        self.check_message_count()?;
        Ok(Valid(self))
    }

    /// A count (`--messages`, `-n`) is one of the two, names at least a message per
    /// connection, and counts what the client sends.
    fn check_message_count(&self) -> Result<(), Error> {
        let flag = match (self.messages, self.bytes) {
            (None, None) => return Ok(()),
            (Some(_), Some(_)) => {
                return Err(Error::Config(
                    "--messages and -n/--bytes both set the run's length: give one".into(),
                ))
            }
            (Some(_), None) => "--messages",
            (None, Some(_)) => "-n/--bytes",
        };
        let n = self.message_count().unwrap_or(0);
        let conns = self.total_connections() as u64;
        if n == 0 {
            return Err(Error::Config(format!(
                "{flag} is 0: it must be more than 0"
            )));
        }
        if n < conns {
            return Err(Error::Config(format!(
                "{flag} asks for {} in all, fewer than the run's {}: each connection \
                 sends its share, at least one",
                count(n, "message", "messages"),
                count(conns, "connection", "connections")
            )));
        }
        if self.direction == Direction::Reverse {
            return Err(Error::Config(format!(
                "{flag} counts what the client sends, and with --reverse it sends nothing; \
                 use -d, or --bidir"
            )));
        }
        Ok(())
    }

    /// Connections in the whole run.
    pub fn total_connections(&self) -> usize {
        self.threads * self.conns
    }

    /// The messages the run ends after, in all (`--messages`, or `-n` rounded up to whole
    /// messages); `None`: it lasts `duration`.
    pub fn message_count(&self) -> Option<u64> {
        self.messages
            .or_else(|| self.bytes.map(|b| b.div_ceil(self.size.max(1) as u64)))
    }

    /// Connection `flow`'s share of [`ClientConfig::message_count`] (flows numbered from 0
    /// over every thread): the count split evenly, the first `count % connections` flows
    /// sending one more.
    pub fn messages_of(&self, flow: usize) -> Option<u64> {
        let conns = self.total_connections().max(1) as u64;
        self.message_count()
            .map(|n| n / conns + u64::from((flow as u64) < n % conns))
    }
}

/// `--rate`: a number of messages a second an echo run can keep to.
fn check_rate(rate: f64, workload: Workload) -> Result<(), Error> {
    if workload != Workload::Echo {
        return Err(Error::Config(
            "--rate applies to the echo workload (a schedule of requests, each timed to its \
             echo); a stream sends as fast as the path takes it"
                .into(),
        ));
    }
    if !(rate.is_finite() && rate > 0.0 && rate <= MAX_RATE) {
        return Err(Error::Config(format!(
            "--rate {rate}: messages a second must be more than 0 and at most {MAX_RATE:.0}"
        )));
    }
    Ok(())
}

/// Parses `--nodelay`: `auto` (decided per connection, [`auto_nodelay`]), `on` or `off`.
pub fn parse_nodelay(text: &str) -> Result<Option<bool>, String> {
    match text {
        "auto" => Ok(None),
        "on" => Ok(Some(true)),
        "off" => Ok(Some(false)),
        _ => Err(format!(
            "invalid --nodelay '{text}': expected auto, on or off"
        )),
    }
}

/// Why `mode` cannot run in `direction`, if it cannot: the page-cache modes (sendfile,
/// splice) rewrite a sent region only once the receiver proves it read it, and their read
/// receipts flow from the server to the client only, so the server cannot send with them.
pub fn page_cache_direction(mode: Mode, direction: Direction) -> Option<String> {
    (crate::path::path(mode).file && direction.server_sends()).then(|| {
        format!(
            "mode {mode} with {direction}: a page-cache region is rewritten only once the \
             receiver proves it read it, and in this build only the server sends those read \
             receipts (the client's stream); use it forward, or another mode"
        )
    })
}

/// TCP_NODELAY when the user left it automatic. Echo: on, every message waits on its
/// reply. Zero-copy sends: on, whatever the size — Nagle holds a small segment back until
/// the previous one is acknowledged, and a zero-copy send's pages cannot be coalesced into
/// it, so each small send waits out an ACK (uring stream, split placement, 3 interleaved
/// runs of 2 s, medians: zc-fixed 1K 0.16 Gbit/s with Nagle against 0.33 without, 4K 0.52
/// against 1.09; zc 1K 0.13 against 0.25, 4K 0.57 against 1.12; one earlier run moved
/// 0.005 Gbit/s with Nagle at 1K). Other streams: off (Nagle) while a message is smaller
/// than a segment, so small writes coalesce into full segments as bulk senders run; on
/// once a message fills a segment (`mss`, the connection's TCP_MAXSEG), where Nagle could
/// only hold back the remainder until the next ACK.
pub fn auto_nodelay(workload: Workload, mode: Mode, size: usize, mss: usize) -> bool {
    workload == Workload::Echo || mode.is_zero_copy() || size >= mss
}

/// Everything one server needs.
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
    /// uring worker threads (rings); `None`: one per CPU ([`ServerConfig::workers`]). The
    /// syscall backend runs a thread per client and takes none.
    pub workers: Option<usize>,
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
    /// `--sqpoll[=CPU]`: the workers' rings poll their submission queues from a kernel
    /// thread each (uring only); `None`: off.
    #[serde(default)]
    pub sqpoll: Option<SqPoll>,
    /// `--busy-poll USEC`: busy polling on the server's data sockets (SO_BUSY_POLL) or
    /// rings (NAPI); `None`: off.
    #[serde(default)]
    pub busy_poll_us: Option<u32>,
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
            workers: None,
            idle_timeout: Duration::from_secs(10),
            max_memory: default_max_memory(),
            uring_recv: UringRecv::DEFAULT,
            cpus: CpuSpec::default(),
            counters: CounterScope::Thread,
            sqpoll: None,
            busy_poll_us: None,
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
    /// The uring worker count: as given, or one per CPU.
    pub fn workers(&self) -> usize {
        self.workers.unwrap_or_else(default_workers)
    }

    /// Checks every limit once; the engine relies on them afterwards.
    pub fn validate(self) -> Result<Valid<Self>, Error> {
        check_size(self.max_size)?;
        check_count("max clients (-t)", self.max_clients)?;
        match (self.workers, self.backend) {
            (Some(_), Backend::Syscall) => {
                return Err(Error::Config(
                    "--workers sizes the uring backend's ring pool; the syscall backend runs a thread per client".into(),
                ))
            }
            (Some(n), Backend::Uring) => check_count("workers (--workers)", n)?,
            (None, _) => {}
        }
        if let Some(mode) = self.mode {
            if !mode.supported_on(self.backend) {
                return Err(Error::Config(format!(
                    "mode {mode} needs the uring backend (registered buffers); use --backend uring"
                )));
            }
        }
        if self.idle_timeout.is_zero() {
            return Err(Error::Config(
                "--idle-timeout is 0 seconds: it must be more than 0".into(),
            ));
        }
        let smallest = PoolPlan::new(
            self.backend,
            Workload::Echo,
            Role::Server,
            Mode::OneCopy,
            MIN_SIZE,
            1,
        );
        if self.max_memory < smallest.bytes() {
            return Err(Error::Config(format!(
                "--max-memory {} is below what the smallest connection takes ({} bytes)",
                self.max_memory,
                smallest.bytes()
            )));
        }
        check_polling(self.backend, self.sqpoll, self.busy_poll_us)?;
        Ok(Valid(self))
    }
}

/// The most `--busy-poll` takes, µs: a second of spinning per receive is already far
/// beyond any use.
pub const MAX_BUSY_POLL_US: u32 = 1_000_000;

/// `--sqpoll` is the uring engine's; `--busy-poll` is 1 µs to [`MAX_BUSY_POLL_US`].
fn check_polling(
    backend: Backend,
    sqpoll: Option<SqPoll>,
    busy_poll_us: Option<u32>,
) -> Result<(), Error> {
    if sqpoll.is_some() && backend != Backend::Uring {
        return Err(Error::Config(
            "--sqpoll sets up io_uring's submission polling thread; it needs --backend uring"
                .into(),
        ));
    }
    if let Some(us) = busy_poll_us {
        if !(1..=MAX_BUSY_POLL_US).contains(&us) {
            return Err(Error::Config(format!(
                "--busy-poll {us} is out of range: it must be from 1 to {MAX_BUSY_POLL_US} µs"
            )));
        }
    }
    Ok(())
}

fn check_size(size: usize) -> Result<(), Error> {
    if !(MIN_SIZE..=MAX_SIZE).contains(&size) {
        return Err(Error::Config(format!(
            "message size {size} is out of range: it must be from {MIN_SIZE} bytes to {} ({MAX_SIZE} bytes)",
            format_size(MAX_SIZE)
        )));
    }
    Ok(())
}

fn check_count(what: &str, n: usize) -> Result<(), Error> {
    if !(1..=MAX_THREADS).contains(&n) {
        return Err(Error::Config(format!(
            "{what} is {n}: it must be from 1 to {MAX_THREADS}"
        )));
    }
    Ok(())
}

/// Depth is bounded on its own, and with the size by the memory one side of a connection
/// allocates for its buffers ([`PoolPlan::bytes`]); returns that plan.
pub(crate) fn check_pool(
    backend: Backend,
    workload: Workload,
    role: Role,
    mode: Mode,
    depth: usize,
    size: usize,
) -> Result<PoolPlan, Error> {
    if !(1..=MAX_DEPTH).contains(&depth) {
        return Err(Error::Config(format!(
            "depth {depth} is out of range: it must be from 1 to {MAX_DEPTH}"
        )));
    }
    let plan = PoolPlan::new(backend, workload, role, mode, size, depth);
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
    fn intervals_under_the_minimum_are_refused_and_old_configs_have_none() {
        let at = |ms| ClientConfig {
            interval: Duration::from_millis(ms),
            ..ClientConfig::default()
        };
        assert!(at(0).validate().is_ok(), "0: off");
        assert!(at(10).validate().is_ok());
        let e = at(5).validate().unwrap_err();
        assert!(e.to_string().contains("--interval"), "{e}");
        let mut v = serde_json::to_value(ClientConfig::default()).unwrap();
        assert!(v.get("omit").is_none() && v.get("interval").is_none());
        v["omit"] = serde_json::json!(1.5);
        let c: ClientConfig = serde_json::from_value(v).unwrap();
        assert_eq!(
            (c.omit, c.interval),
            (Duration::from_millis(1500), Duration::ZERO)
        );
    }

    #[test]
    fn a_count_is_checked_split_and_absent_from_records_without_one() {
        let ok = ClientConfig {
            workload: Workload::Stream,
            backend: Backend::Uring,
            threads: 2,
            conns: 2,
            size: 1000,
            ..ClientConfig::default()
        };
        let with = |messages, bytes| ClientConfig {
            messages,
            bytes,
            ..ok.clone()
        };
        let err = |c: ClientConfig| c.validate().unwrap_err().to_string();
        assert_eq!(
            with(None, Some(4001)).message_count(),
            Some(5),
            "rounded up"
        );
        assert_eq!(with(None, Some(4000)).message_count(), Some(4));
        assert_eq!(with(Some(7), None).message_count(), Some(7));
        assert_eq!(ok.message_count(), None);
        let c = with(Some(7), None);
        let shares: Vec<_> = (0..4).map(|f| c.messages_of(f).unwrap()).collect();
        assert_eq!(shares, [2, 2, 2, 1], "7 over 4 connections");
        assert_eq!(ok.messages_of(0), None);
        assert!(with(Some(4), None).validate().is_ok());
        assert!(with(None, Some(3001)).validate().is_ok(), "4 messages");
        assert_eq!(
            err(with(Some(1), Some(1))),
            "--messages and -n/--bytes both set the run's length: give one"
        );
        assert_eq!(
            err(with(Some(0), None)),
            "--messages is 0: it must be more than 0"
        );
        assert_eq!(
            err(with(None, Some(2001))),
            "-n/--bytes asks for 3 messages in all, fewer than the run's 4 connections: \
             each connection sends its share, at least one"
        );
        let e = err(ClientConfig {
            direction: Direction::Reverse,
            ..with(Some(10), None)
        });
        assert!(e.contains("with --reverse it sends nothing"), "{e}");
        assert!(ClientConfig {
            direction: Direction::Bidir,
            ..with(Some(10), None)
        }
        .validate()
        .is_ok());
        // The cap is still a duration's limits.
        assert!(ClientConfig {
            duration: MAX_DURATION,
            ..with(Some(10), None)
        }
        .validate()
        .is_ok());
        let v = serde_json::to_value(&ok).unwrap();
        assert!(v.get("messages").is_none() && v.get("bytes").is_none());
        let c: ClientConfig = serde_json::from_value(v).unwrap();
        assert_eq!(c, ok, "a record without a count reads back without one");
        for c in [with(Some(10), None), with(None, Some(1 << 20))] {
            let back: ClientConfig =
                serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
            assert_eq!(back, c);
        }
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
        let e = ClientConfig {
            conns: 64,
            depth: 200,
            backend: Backend::Uring,
            mode: Mode::ZcFixed,
            ..ok.clone()
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("registered buffers per ring"), "{e}");
        assert!(ClientConfig {
            duration: Duration::ZERO,
            ..ok
        }
        .validate()
        .is_err());
    }

    /// Issue 16: `-d 0` was refused with "must be between 0 and 86400", which 0 is.
    #[test]
    fn range_messages_state_the_range_taken() {
        let ok = ClientConfig::default();
        for duration in [Duration::ZERO, MAX_DURATION + Duration::from_secs(1)] {
            let e = ClientConfig {
                duration,
                ..ok.clone()
            }
            .validate()
            .unwrap_err()
            .to_string();
            assert!(
                e.ends_with("it must be more than 0 and at most 86400 seconds"),
                "{e}"
            );
        }
        assert!(ClientConfig {
            duration: MAX_DURATION,
            ..ok.clone()
        }
        .validate()
        .is_ok());
        let e = ClientConfig {
            io_timeout: Duration::ZERO,
            ..ok.clone()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert_eq!(e, "--io-timeout is 0 seconds: it must be more than 0");
        let e = ClientConfig {
            threads: 0,
            ..ok.clone()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert_eq!(e, "threads (-t) is 0: it must be from 1 to 1024");
        let e = ClientConfig { depth: 0, ..ok }
            .validate()
            .unwrap_err()
            .to_string();
        assert_eq!(e, "depth 0 is out of range: it must be from 1 to 1024");
    }

    #[test]
    fn a_receive_path_the_clients_engine_lacks_is_refused_where_the_client_receives() {
        let uring = ClientConfig {
            backend: Backend::Uring,
            rx: RxMode::Zerocopy,
            ..ClientConfig::default()
        };
        let e = uring.clone().validate().unwrap_err();
        assert!(
            e.to_string().contains("zerocopy receive is syscall-only"),
            "{e}"
        );
        assert_eq!(e.exit_code(), crate::error::exit::USAGE);
        // A stream's client receives nothing: its server decides.
        assert!(ClientConfig {
            workload: Workload::Stream,
            ..uring.clone()
        }
        .validate()
        .is_ok());
        assert!(ClientConfig {
            backend: Backend::Syscall,
            ..uring.clone()
        }
        .validate()
        .is_ok());
        assert!(ClientConfig {
            rx: RxMode::Discard,
            ..uring
        }
        .validate()
        .is_ok());
    }

    #[test]
    fn the_page_cache_modes_send_forward_only() {
        for mode in [Mode::Sendfile, Mode::Splice] {
            for direction in [Direction::Reverse, Direction::Bidir] {
                let c = ClientConfig {
                    workload: Workload::Stream,
                    mode,
                    direction,
                    ..ClientConfig::default()
                };
                let e = c.validate().unwrap_err().to_string();
                assert!(e.contains("read receipts"), "{mode} {direction}: {e}");
            }
            let forward = ClientConfig {
                workload: Workload::Stream,
                mode,
                ..ClientConfig::default()
            };
            assert!(forward.validate().is_ok(), "{mode}");
        }
    }

    #[test]
    fn a_client_receiving_the_servers_stream_receives_by_copying() {
        for direction in [Direction::Reverse, Direction::Bidir] {
            for rx in [RxMode::Discard, RxMode::Zerocopy] {
                let c = ClientConfig {
                    workload: Workload::Stream,
                    direction,
                    rx,
                    ..ClientConfig::default()
                };
                let e = c.validate().unwrap_err().to_string();
                assert!(e.contains("receives by copying"), "{direction} {rx}: {e}");
            }
            let copy = ClientConfig {
                workload: Workload::Stream,
                direction,
                ..ClientConfig::default()
            };
            assert!(copy.validate().is_ok());
        }
    }

    #[test]
    fn nodelay_follows_the_workload_the_mode_and_the_segment_size() {
        use Mode::*;
        assert!(auto_nodelay(Workload::Echo, TwoCopy, 1024, 65483));
        assert!(
            !auto_nodelay(Workload::Stream, OneCopy, 16384, 65483),
            "loopback: 16K coalesces"
        );
        assert!(
            auto_nodelay(Workload::Stream, TwoCopy, 65536, 65483),
            "64K fills a loopback segment"
        );
        assert!(
            auto_nodelay(Workload::Stream, TwoCopy, 4096, 1448),
            "Ethernet MSS"
        );
        for zc in [Zc, ZcFixed] {
            assert!(
                auto_nodelay(Workload::Stream, zc, 1024, 65483),
                "Nagle cripples small zero-copy sends"
            );
        }
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
            ..ok.clone()
        }
        .validate()
        .is_ok());
        let e = ServerConfig {
            workers: Some(2),
            ..ok.clone()
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("--workers"), "{e}");
        assert!(ServerConfig {
            workers: Some(2),
            backend: Backend::Uring,
            ..ok
        }
        .validate()
        .is_ok());
    }
}
