//! What the copyperf binaries share: flag parsers for the engine's types, signal setup,
//! and the way an error ends a process. No measuring logic lives here.

pub mod agent;
pub mod compare;
pub mod proc;
pub mod report;
pub mod results;
pub mod summary;
pub mod sweep;
#[cfg(test)]
pub(crate) mod testing;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use clap::builder::{PossibleValue, TypedValueParser};
use engine::config::{
    Backend, CounterScope, Mode, PlacementPolicy, PollOpt, RxMode, UringRecv, Verify, Workload,
};

/// A clap parser for one of the engine's named enums, listing its values in `--help`.
pub trait EnumArg: Sized + Copy + Send + Sync + 'static {
    const ALL: &'static [Self];
    /// Names users reach for that are not the value's (the kernel's, other tools'), each
    /// with the value it means, lower case with `-` for `_`: a value refused under one of
    /// them suggests that value. Each value keeps one spelling.
    const OTHER_NAMES: &'static [(&'static str, Self)] = &[];
    fn name(self) -> &'static str;

    fn parser() -> NamedParser<Self> {
        NamedParser(std::marker::PhantomData)
    }
}

/// The value `text` most likely meant, for the tip under a refusal: the value itself
/// written in another case or with `_`, a name in [`EnumArg::OTHER_NAMES`], or the one
/// value within two edits of it (a typo). clap's own guess goes by letters in common, and
/// suggested `one-copy` for `zerocopy`.
pub fn suggestion<T: EnumArg>(text: &str) -> Option<&'static str> {
    let norm = text.trim().to_ascii_lowercase().replace('_', "-");
    if let Some(v) = T::ALL.iter().find(|v| v.name() == norm) {
        return Some(v.name());
    }
    if let Some((_, v)) = T::OTHER_NAMES.iter().find(|(n, _)| *n == norm) {
        return Some(v.name());
    }
    match T::ALL
        .iter()
        .filter(|v| edits(&norm, v.name()) <= 2)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [one] => Some(one.name()),
        _ => None,
    }
}

/// Levenshtein distance between two short strings.
fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let next = (diag + usize::from(ca != cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// The parser [`EnumArg::parser`] gives: exactly the values' names, and a refusal that
/// lists them with [`suggestion`]'s tip.
#[derive(Clone)]
pub struct NamedParser<T>(std::marker::PhantomData<T>);

impl<T: EnumArg> TypedValueParser for NamedParser<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<T, clap::Error> {
        use clap::error::{ContextKind, ContextValue, ErrorKind};
        let text = value.to_string_lossy();
        if let Some(v) = T::ALL.iter().find(|v| v.name() == text) {
            return Ok(*v);
        }
        let mut e = clap::Error::new(ErrorKind::InvalidValue).with_cmd(cmd);
        let arg = arg.map_or_else(|| "...".to_string(), ToString::to_string);
        e.insert(ContextKind::InvalidArg, ContextValue::String(arg));
        e.insert(
            ContextKind::InvalidValue,
            ContextValue::String(text.to_string()),
        );
        e.insert(
            ContextKind::ValidValue,
            ContextValue::Strings(T::ALL.iter().map(|v| v.name().to_string()).collect()),
        );
        if let Some(s) = suggestion::<T>(&text) {
            e.insert(
                ContextKind::SuggestedValue,
                ContextValue::String(s.to_string()),
            );
        }
        Err(e)
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            T::ALL.iter().map(|v| PossibleValue::new(v.name())),
        ))
    }
}

macro_rules! enum_arg {
    ($($t:ty $(=> [$(($other:literal, $v:ident)),+ $(,)?])?),+ $(,)?) => {$(
        impl EnumArg for $t {
            const ALL: &'static [Self] = <$t>::ALL;
            $(const OTHER_NAMES: &'static [(&'static str, Self)] = &[$(($other, <$t>::$v)),+];)?
            fn name(self) -> &'static str { self.as_str() }
        }
    )+};
}
enum_arg!(
    Backend => [
        ("io-uring", Uring), ("iouring", Uring), ("ring", Uring),
        ("sys", Syscall), ("syscalls", Syscall), ("sockets", Syscall), ("blocking", Syscall),
    ],
    Mode => [
        ("zerocopy", Zc), ("zero-copy", Zc), ("msg-zerocopy", Zc), ("msgzerocopy", Zc),
        ("sendmsg-zc", Zc),
        ("fixed", ZcFixed), ("zcfixed", ZcFixed), ("send-zc", ZcFixed), ("sendzc", ZcFixed),
        ("zerocopy-fixed", ZcFixed), ("zero-copy-fixed", ZcFixed), ("registered", ZcFixed),
        ("twocopy", TwoCopy), ("copy", TwoCopy), ("send", TwoCopy), ("serialize", TwoCopy),
        ("onecopy", OneCopy), ("sendmsg", OneCopy), ("iovec", OneCopy), ("writev", OneCopy),
        ("scatter-gather", OneCopy),
        ("send-file", Sendfile), ("page-cache", Sendfile),
    ],
    Workload => [
        ("ping-pong", Echo), ("pingpong", Echo), ("rr", Echo), ("request-response", Echo),
        ("latency", Echo), ("rtt", Echo),
        ("bulk", Stream), ("throughput", Stream), ("one-way", Stream),
    ],
    Verify => [
        ("none", Off), ("no", Off), ("false", Off),
        ("all", Full), ("every", Full), ("yes", Full), ("true", Full),
        ("some", Sample), ("tags", Sample),
    ],
    UringRecv => [("multi", Multishot), ("multi-shot", Multishot), ("single-shot", Single)],
    CounterScope => [
        ("cpu", Core), ("per-cpu", Core), ("cores", Core),
        ("threads", Thread), ("per-thread", Thread), ("task", Thread),
        ("none", Off), ("no", Off),
    ],
    PlacementPolicy => [("off", Unpinned), ("none", Unpinned), ("pair", Paired)],
    RxMode => [
        ("mmap", Zerocopy), ("tcp-zerocopy", Zerocopy), ("zero-copy", Zerocopy),
        ("zc", Zerocopy), ("mapped", Zerocopy),
        ("trunc", Discard), ("msg-trunc", Discard), ("drop", Discard), ("sink", Discard),
        ("recv", Copy), ("read", Copy),
    ],
    PollOpt => [
        ("sq-poll", Sqpoll), ("sqthread", Sqpoll),
        ("busypoll", BusyPoll), ("napi", BusyPoll),
        ("none", Plain), ("off", Plain),
    ],
);

/// `items` without repeats, each kept where it first came: the one "distinct, in order"
/// that lists of engines, warning kinds, counter names and settings all need.
pub fn unique<T: PartialEq>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut out = Vec::new();
    for x in items {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

/// Sizes with K/M/G suffixes, as `engine::config::parse_size` reads them.
pub fn size_arg(s: &str) -> Result<usize, String> {
    engine::config::parse_size(s)
}

/// Seconds, fractions allowed.
pub fn seconds_arg(s: &str) -> Result<std::time::Duration, String> {
    engine::config::parse_seconds(s)
}

/// Parses `--rate`: messages a second, a plain or decimal number with an optional `k`
/// (thousands) or `M` (millions): `20000`, `20k`, `1.5M`.
pub fn rate_arg(s: &str) -> Result<f64, String> {
    let (digits, scale) = match s.strip_suffix(['k', 'K']) {
        Some(d) => (d, 1e3),
        None => match s.strip_suffix('M') {
            Some(d) => (d, 1e6),
            None => (s, 1.0),
        },
    };
    match digits.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v * scale),
        Ok(_) => Err(format!("{s}: messages a second must be more than 0")),
        Err(_) => Err(format!(
            "{s}: expected messages a second, such as 20000, 20k or 1.5M"
        )),
    }
}

/// Parses one rate of the sweep's `--rates`: as [`rate_arg`], a whole number of messages
/// a second (a point's rate is an integer, so that points compare exactly) up to
/// [`engine::config::MAX_RATE`].
pub fn sweep_rate_arg(s: &str) -> Result<u64, String> {
    let v = rate_arg(s)?;
    if v > engine::config::MAX_RATE {
        return Err(format!(
            "{s}: at most {:.0} messages a second",
            engine::config::MAX_RATE
        ));
    }
    // `1.1k` is 1100.0000000000002 in binary: whole within rounding.
    let whole = v.round();
    if whole < 1.0 || (v - whole).abs() > 1e-9 * v {
        return Err(format!(
            "{s}: a sweep's rates are whole messages a second ({v} is not)"
        ));
    }
    Ok(whole as u64)
}

/// The flags the server and the client share.
#[derive(Debug, clap::Args)]
pub struct SideFlags {
    /// How the uring backend receives two-copy messages: a RECV per message (single) or a
    /// multishot RECV into provided buffers.
    #[arg(long, value_name = "HOW", default_value = UringRecv::DEFAULT.as_str(), value_parser = UringRecv::parser())]
    pub uring_recv: UringRecv,
    /// Where worker threads run: a placement policy — split (servers on the first half of
    /// the CPUs, clients on the other half), paired (client thread i and server thread i
    /// share CPU i), unpinned (or off) —, a list such as 0,2-3 (thread i on the i-th), or
    /// auto (the old plan: split while there are twice as many CPUs as threads, both sides
    /// over all CPUs beyond, so it changes with the thread count). Give both sides the same
    /// policy.
    #[arg(long, value_name = "POLICY|LIST", default_value = "split", value_parser = cpus_arg)]
    pub cpus: engine::placement::CpuSpec,
    /// Kernel counters: per worker thread, per pinned CPU (core: also catches softirq
    /// work), or off.
    #[arg(long, value_name = "SCOPE", default_value = "thread", value_parser = CounterScope::parser())]
    pub counters: CounterScope,
    /// uring: poll each ring's submission queue from a kernel thread (IORING_SETUP_SQPOLL),
    /// bound to CPU when given (--sqpoll=1); the thread's CPU time counts as this side's.
    #[arg(long, value_name = "CPU", num_args = 0..=1, require_equals = true, default_missing_value = "any", value_parser = sqpoll_arg)]
    pub sqpoll: Option<engine::config::SqPoll>,
    /// Busy-poll receives for up to USEC µs before sleeping: SO_BUSY_POLL on the sockets
    /// (syscall), NAPI busy polling on the rings (uring, Linux 6.9).
    #[arg(long, value_name = "USEC")]
    pub busy_poll: Option<u32>,
}

/// `--sqpoll` (`any`: no CPU) or `--sqpoll=CPU`.
pub fn sqpoll_arg(s: &str) -> Result<engine::config::SqPoll, String> {
    match s {
        "any" => Ok(engine::config::SqPoll { cpu: None }),
        _ => s
            .parse()
            .map(|cpu| engine::config::SqPoll { cpu: Some(cpu) })
            .map_err(|_| format!("invalid --sqpoll CPU '{s}': expected a CPU number")),
    }
}

/// `--nodelay` as given: `auto` (`None`), `on` or `off`. A newtype, so that clap does not
/// read the `Option` as "the flag may be absent".
#[derive(Debug, Clone, Copy)]
pub struct Nodelay(pub Option<bool>);

/// TCP_NODELAY: `auto`, `on` or `off`.
pub fn nodelay_arg(s: &str) -> Result<Nodelay, String> {
    engine::config::parse_nodelay(s).map(Nodelay)
}

/// A CPU list: `auto`, `off`, or `0,2-3`.
pub fn cpus_arg(s: &str) -> Result<engine::placement::CpuSpec, String> {
    s.parse()
}

/// Set by SIGINT or SIGTERM.
pub static STOP: AtomicBool = AtomicBool::new(false);
/// The signal that set [`STOP`] (0: none).
static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_stop_signal(sig: libc::c_int) {
    if STOP.swap(true, Ordering::SeqCst) {
        // A second signal: the user does not want to wait for a clean stop.
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(128 + sig) };
    }
    SIGNAL.store(sig, Ordering::SeqCst);
}

/// The exit code for a process stopped by the signal that set [`STOP`]: 130 for SIGINT,
/// 143 for SIGTERM (128 + the signal, as shells report it).
pub fn stopped_code() -> i32 {
    128 + SIGNAL.load(Ordering::SeqCst).max(libc::SIGINT)
}

/// SIGINT and SIGTERM set [`STOP`], and a second one exits at once; SIGPIPE is ignored
/// so a vanished peer is an error return, not a dead process.
pub fn install_signal_handlers() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let stop = SigAction::new(
        SigHandler::Handler(on_stop_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        let _ = sigaction(Signal::SIGINT, &stop);
        let _ = sigaction(Signal::SIGTERM, &stop);
        let _ = sigaction(Signal::SIGPIPE, &ignore);
    }
}

/// Writes the server's readiness, `{"addr": "IP:PORT"}` and a newline, to the inherited
/// descriptor `fd`, and closes it.
pub fn announce_ready(fd: i32, addr: std::net::SocketAddr) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::fd::FromRawFd;
    if fd < 3 {
        return Err(std::io::Error::other(
            "not a descriptor of its own (0, 1 and 2 are stdio)",
        ));
    }
    // SAFETY: the parent handed this descriptor to this process for this one line; it is
    // owned here from now on and closed when the File drops.
    let mut f = unsafe { std::fs::File::from_raw_fd(fd) };
    let line = serde_json::json!({ "addr": addr.to_string() });
    writeln!(f, "{line}")
}

/// A `--spec` JSON as the configuration type `T` (`what` names it in the error); a spec
/// that is not one is a usage error, exit 2.
pub fn parse_spec<T: serde::de::DeserializeOwned>(json: &str, what: &str) -> Result<T, ExitCode> {
    serde_json::from_str(json).map_err(|e| {
        eprintln!("error: --spec is not a {what} configuration: {e}");
        exit_code(engine::exit::USAGE)
    })
}

/// Prints `error: …` and returns the error's documented exit code.
pub fn fail(e: &engine::Error) -> ExitCode {
    eprintln!("error: {e}");
    exit_code(e.exit_code())
}

pub fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(code.clamp(0, 255) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The refusal clap prints for `--flag value` under `T`'s parser.
    fn refusal<T: EnumArg + Clone>(value: &str) -> String {
        let cmd = clap::Command::new("t").arg(
            clap::Arg::new("flag")
                .long("flag")
                .value_parser(T::parser()),
        );
        cmd.try_get_matches_from(["t", "--flag", value])
            .expect_err("refused")
            .to_string()
    }

    /// Issue 16: `--mode zerocopy` suggested `one-copy`.
    #[test]
    fn refused_values_suggest_the_value_meant() {
        for (given, meant) in [
            ("zerocopy", "zc"),
            ("zero-copy", "zc"),
            ("msg_zerocopy", "zc"),
            ("MSG_ZEROCOPY", "zc"),
            ("fixed", "zc-fixed"),
            ("zc_fixed", "zc-fixed"),
            ("sendmsg", "one-copy"),
            ("one-cpy", "one-copy"),
        ] {
            let e = refusal::<Mode>(given);
            assert!(
                e.contains(&format!("a similar value exists: '{meant}'")),
                "{given}: {e}"
            );
            assert!(
                e.contains("[possible values: two-copy, one-copy"),
                "{given}: {e}"
            );
        }
        let e = refusal::<Backend>("io_uring");
        assert!(e.contains("a similar value exists: 'uring'"), "{e}");
        let e = refusal::<RxMode>("mmap");
        assert!(e.contains("a similar value exists: 'zerocopy'"), "{e}");
        let e = refusal::<Workload>("ping-pong");
        assert!(e.contains("a similar value exists: 'echo'"), "{e}");
        // Nothing close: no tip rather than a wrong one.
        let e = refusal::<Mode>("three-copy-deluxe");
        assert!(!e.contains("similar value"), "{e}");
    }

    #[test]
    fn other_names_are_not_values_and_lead_to_their_value() {
        fn check<T: EnumArg + PartialEq + std::fmt::Debug>() {
            for &(other, value) in T::OTHER_NAMES {
                assert!(
                    !T::ALL.iter().any(|v| v.name() == other),
                    "{other} is a value's own name"
                );
                assert_eq!(other, other.to_ascii_lowercase().replace('_', "-"));
                assert_eq!(suggestion::<T>(other), Some(value.name()), "{other}");
            }
            for &v in T::ALL {
                let parsed = T::parser().parse_ref(
                    &clap::Command::new("t"),
                    None,
                    std::ffi::OsStr::new(v.name()),
                );
                assert_eq!(parsed.ok(), Some(v));
            }
        }
        check::<Backend>();
        check::<Mode>();
        check::<Workload>();
        check::<Verify>();
        check::<UringRecv>();
        check::<CounterScope>();
        check::<PlacementPolicy>();
        check::<RxMode>();
        check::<PollOpt>();
    }

    #[test]
    fn edits_counts_insertions_deletions_and_substitutions() {
        assert_eq!(edits("zc", "zc"), 0);
        assert_eq!(edits("one-cpy", "one-copy"), 1);
        assert_eq!(edits("uring", "urign"), 2);
        assert_eq!(edits("", "echo"), 4);
    }

    #[test]
    fn sweep_rates_are_whole_messages_a_second_with_k_and_m() {
        assert_eq!(sweep_rate_arg("5k"), Ok(5000));
        assert_eq!(sweep_rate_arg("1.1k"), Ok(1100), "whole within rounding");
        assert_eq!(sweep_rate_arg("1.5M"), Ok(1_500_000));
        assert_eq!(sweep_rate_arg("250"), Ok(250));
        assert_eq!(
            sweep_rate_arg("2.5"),
            Err("2.5: a sweep's rates are whole messages a second (2.5 is not)".into())
        );
        assert!(sweep_rate_arg("0").unwrap_err().contains("more than 0"));
        assert!(sweep_rate_arg("fast")
            .unwrap_err()
            .contains("such as 20000"));
        assert!(sweep_rate_arg("200M")
            .unwrap_err()
            .contains("at most 100000000"));
        let cmd = clap::Command::new("t").arg(
            clap::Arg::new("rates")
                .long("rates")
                .value_delimiter(',')
                .value_parser(sweep_rate_arg),
        );
        let m = cmd
            .try_get_matches_from(["t", "--rates", "5k,10k,20000"])
            .unwrap();
        let rates: Vec<u64> = m.get_many("rates").unwrap().copied().collect();
        assert_eq!(rates, [5000, 10_000, 20_000]);
    }
}
