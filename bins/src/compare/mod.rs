//! copyperf beside the fastest tools doing the same operation on loopback, interleaved
//! (A B C …, then reversed) over several rounds, every tool pinned the same way (servers
//! on one CPU, clients on another):
//!
//! - stream, receiver copies: against iperf3 (one flow, `-l` = message size);
//! - stream, receiver discards (`--rx discard`): against `baseline`'s io_uring loop of
//!   plain `SEND`s, 8 in flight, whose receiver drops the bytes with `MSG_TRUNC`;
//! - zero-copy stream, receiver discards: against the same loop sending `SEND_ZC` from a
//!   registered buffer it reuses without waiting for the kernel's notification (an upper
//!   bound that a program keeping buffer ownership right cannot simply copy);
//! - echo at depth 1: median and mean round trip against sockperf's TCP ping-pong and
//!   qperf's `tcp_lat` (its one-way figure doubled);
//! - four flows at once, receiver copying (against iperf3 `-P 4`) and discarding
//!   (against the loop with four flows).
//!
//! The folder gets every measurement (`samples.csv`), medians, spread and ratios with
//! their per-round spread (`peers.csv`), the tables and targets (`summary.md`), and a
//! plot (`peers.svg`).

pub mod output;
pub mod tools;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, Result};
use engine::config::{Backend, CounterScope, Mode, RxMode, SqPoll, Workload};
use engine::placement::CpuSpec;
use engine::{ClientConfig, ServerConfig};

use crate::proc::{run_client, ServerProcess};
use tools::{output, PeerServer, SOCKPERF_MAX_SIZE};

/// Sends in flight per stream connection, for copyperf and the loop alike.
pub const STREAM_DEPTH: usize = 8;

/// A comparison: one operation, its copyperf contenders and the tools that do the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Comparison {
    /// One flow, one way, the receiver copies the bytes out: vs iperf3.
    Stream,
    /// One flow, the receiver discards (`MSG_TRUNC`): vs the io_uring SEND loop.
    Discard,
    /// One flow of zero-copy sends, the receiver discards: vs the SEND_ZC loop.
    ZeroCopy,
    /// Depth 1 round trips: vs sockperf ping-pong and qperf tcp_lat.
    Echo,
    /// Several flows at once, receivers copying: vs iperf3 `-P`.
    Flows,
    /// Several flows at once, receivers discarding: vs the SEND loop with as many flows.
    FlowsDiscard,
}

impl Comparison {
    pub const ALL: [Comparison; 6] = [
        Comparison::Stream,
        Comparison::Discard,
        Comparison::ZeroCopy,
        Comparison::Echo,
        Comparison::Flows,
        Comparison::FlowsDiscard,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Comparison::Stream => "stream",
            Comparison::Discard => "discard",
            Comparison::ZeroCopy => "zero-copy",
            Comparison::Echo => "echo",
            Comparison::Flows => "flows",
            Comparison::FlowsDiscard => "flows-discard",
        }
    }

    /// What is compared, in words.
    pub fn title(self) -> &'static str {
        match self {
            Comparison::Stream => "stream, receiver copies",
            Comparison::Discard => "stream, receiver discards",
            Comparison::ZeroCopy => "zero-copy stream, receiver discards",
            Comparison::Echo => "echo, depth 1",
            Comparison::Flows => "flows at once, receivers copy",
            Comparison::FlowsDiscard => "flows at once, receivers discard",
        }
    }

    /// How the receivers take the bytes.
    pub fn rx(self) -> RxMode {
        match self {
            Comparison::Stream | Comparison::Echo | Comparison::Flows => RxMode::Copy,
            Comparison::Discard | Comparison::ZeroCopy | Comparison::FlowsDiscard => {
                RxMode::Discard
            }
        }
    }

    pub fn is_flows(self) -> bool {
        matches!(self, Comparison::Flows | Comparison::FlowsDiscard)
    }

    /// What each run of this comparison yields.
    pub fn metrics(self) -> &'static [Metric] {
        match self {
            Comparison::Echo => &[Metric::P50, Metric::Mean],
            _ => &[Metric::Throughput],
        }
    }

    /// copyperf's contenders, then the other tools.
    pub fn contenders(self) -> Vec<Contender> {
        use Backend::{Syscall, Uring};
        use Mode::{OneCopy, TwoCopy, Zc, ZcFixed};
        let cp = |backend, mode| Contender::Copyperf {
            backend,
            mode,
            sqpoll: false,
        };
        match self {
            Comparison::Stream => vec![
                cp(Syscall, TwoCopy),
                cp(Syscall, OneCopy),
                cp(Uring, OneCopy),
                Contender::Iperf3,
            ],
            Comparison::Discard => vec![
                cp(Syscall, TwoCopy),
                cp(Syscall, OneCopy),
                cp(Uring, TwoCopy),
                cp(Uring, OneCopy),
                Contender::Loop { zc: false },
            ],
            Comparison::ZeroCopy => vec![
                cp(Syscall, Zc),
                cp(Uring, Zc),
                cp(Uring, ZcFixed),
                Contender::Loop { zc: true },
            ],
            Comparison::Echo => vec![
                cp(Syscall, TwoCopy),
                cp(Syscall, OneCopy),
                cp(Uring, OneCopy),
                Contender::Copyperf {
                    backend: Uring,
                    mode: OneCopy,
                    sqpoll: true,
                },
                Contender::Sockperf,
                Contender::Qperf,
            ],
            Comparison::Flows => vec![cp(Syscall, OneCopy), cp(Uring, OneCopy), Contender::Iperf3],
            Comparison::FlowsDiscard => vec![
                cp(Syscall, OneCopy),
                cp(Uring, OneCopy),
                Contender::Loop { zc: false },
            ],
        }
    }
}

impl FromStr for Comparison {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Comparison::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Comparison::ALL.iter().map(|c| c.name()).collect();
                format!("unknown comparison {s:?} (one of: {})", names.join(", "))
            })
    }
}

/// What a measurement measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    /// Gbit/s received (iperf3, copyperf) or sent (the loop): higher is better.
    Throughput,
    /// Median round trip, µs: lower is better.
    P50,
    /// Mean round trip, µs: lower is better.
    Mean,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::Throughput => "throughput",
            Metric::P50 => "p50 round trip",
            Metric::Mean => "mean round trip",
        }
    }

    pub fn unit(self) -> &'static str {
        match self {
            Metric::Throughput => "Gbit/s",
            Metric::P50 | Metric::Mean => "us",
        }
    }

    pub fn higher_is_better(self) -> bool {
        self == Metric::Throughput
    }

    /// Whether `a` is at least as good as `b`.
    pub fn as_good(self, a: f64, b: f64) -> bool {
        if self.higher_is_better() {
            a >= b
        } else {
            a <= b
        }
    }
}

/// Who runs a measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Contender {
    Copyperf {
        backend: Backend,
        mode: Mode,
        /// Both sides' rings poll their submission queues from a kernel thread.
        sqpoll: bool,
    },
    Iperf3,
    Sockperf,
    Qperf,
    /// `baseline send`: the bare io_uring loop; `zc`: SEND_ZC from a registered buffer.
    Loop {
        zc: bool,
    },
}

impl Contender {
    pub fn tool(&self) -> &'static str {
        match self {
            Contender::Copyperf { .. } => "copyperf",
            Contender::Iperf3 => "iperf3",
            Contender::Sockperf => "sockperf",
            Contender::Qperf => "qperf",
            Contender::Loop { .. } => "baseline",
        }
    }

    /// `copyperf syscall two-copy`, `copyperf uring one-copy sqpoll`, `iperf3`,
    /// `uring SEND loop`.
    pub fn label(&self) -> String {
        match self {
            Contender::Copyperf {
                backend,
                mode,
                sqpoll,
            } => format!(
                "copyperf {backend} {mode}{}",
                if *sqpoll { " sqpoll" } else { "" }
            ),
            Contender::Loop { zc: false } => "uring SEND loop".into(),
            Contender::Loop { zc: true } => "uring SEND_ZC loop".into(),
            other => other.tool().to_owned(),
        }
    }

    pub fn is_peer(&self) -> bool {
        !matches!(self, Contender::Copyperf { .. })
    }
}

/// One measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub comparison: Comparison,
    pub contender: Contender,
    pub size: usize,
    /// The size the tool actually sent (sockperf caps TCP messages at 65506).
    pub tool_size: usize,
    pub repeat: usize,
    pub metric: Metric,
    /// Gbit/s or µs.
    pub value: f64,
}

/// What to compare.
#[derive(Debug, Clone)]
pub struct CompareConfig {
    pub comparisons: Vec<Comparison>,
    pub sizes: Vec<usize>,
    /// Message sizes of the flows comparisons.
    pub flow_sizes: Vec<usize>,
    /// Flows in the flows comparisons.
    pub flows: usize,
    pub repeats: usize,
    /// Seconds per measurement (whole seconds: iperf3 takes no fractions).
    pub seconds: u64,
    pub bin_dir: PathBuf,
    /// First of [`PORTS`] consecutive ports.
    pub port: u16,
    pub server_cpu: usize,
    pub client_cpu: usize,
}

/// Consecutive ports used from `--port` on.
pub const PORTS: u16 = 7;

impl CompareConfig {
    /// The sizes `c` runs at.
    pub fn sizes_of(&self, c: Comparison) -> &[usize] {
        if c.is_flows() {
            &self.flow_sizes
        } else {
            &self.sizes
        }
    }

    /// How many measurements a run makes.
    pub fn runs(&self) -> usize {
        self.repeats
            * self
                .comparisons
                .iter()
                .map(|&c| self.sizes_of(c).len() * c.contenders().len())
                .sum::<usize>()
    }

    fn needs(&self, who: impl Fn(&Contender) -> bool) -> bool {
        self.comparisons
            .iter()
            .any(|c| c.contenders().iter().any(&who))
    }

    /// The packaged tools this selection runs.
    pub fn tools(&self) -> Vec<&'static str> {
        let mut out = vec!["taskset"];
        for (tool, who) in [
            ("iperf3", Contender::Iperf3),
            ("sockperf", Contender::Sockperf),
            ("qperf", Contender::Qperf),
        ] {
            if self.needs(|c| *c == who) {
                out.push(tool);
            }
        }
        out
    }
}

/// Where each contender's server listens.
struct Servers {
    port: u16,
    _running: Vec<Box<dyn std::any::Any>>,
}

impl Servers {
    const SYSCALL: u16 = 0;
    const URING: u16 = 1;
    const URING_SQPOLL: u16 = 2;
    const IPERF3: u16 = 3;
    const SOCKPERF: u16 = 4;
    const QPERF: u16 = 5;
    const LOOP: u16 = 6;

    /// The port slot of the copyperf server that runs `backend` with or without SQPOLL.
    fn copyperf_slot(backend: Backend, sqpoll: bool) -> u16 {
        match (backend, sqpoll) {
            (Backend::Syscall, _) => Self::SYSCALL,
            (Backend::Uring, false) => Self::URING,
            (Backend::Uring, true) => Self::URING_SQPOLL,
        }
    }

    /// Starts every server the selection needs, each pinned to the server CPU.
    fn start(config: &CompareConfig) -> Result<Servers> {
        let p = |i: u16| config.port + i;
        let s = |x: &str| x.to_owned();
        let cpu = config.server_cpu;
        let mut running: Vec<Box<dyn std::any::Any>> = Vec::new();
        let copyperf = |backend: Backend, sqpoll: bool, port: u16| {
            let server = ServerConfig {
                bind: [127, 0, 0, 1].into(),
                port,
                backend,
                cpus: CpuSpec::List(vec![cpu]),
                counters: CounterScope::Off,
                workers: (backend == Backend::Uring).then_some(1),
                sqpoll: sqpoll.then_some(SqPoll { cpu: None }),
                ..ServerConfig::default()
            };
            ServerProcess::start(&config.bin_dir.join("server"), None, &server)
        };
        // One copyperf server per (engine, SQPOLL) a selected contender runs on.
        for (backend, sqpoll) in [
            (Backend::Syscall, false),
            (Backend::Uring, false),
            (Backend::Uring, true),
        ] {
            let runs_here = |c: &Contender| {
                matches!(c, Contender::Copyperf { backend: b, sqpoll: s, .. }
                    if *b == backend && *s == sqpoll)
            };
            if config.needs(runs_here) {
                let port = p(Self::copyperf_slot(backend, sqpoll));
                running.push(Box::new(copyperf(backend, sqpoll, port)?));
            }
        }
        let peer = |argv: Vec<String>, port: u16| PeerServer::start(cpu, &argv, port);
        if config.needs(|c| *c == Contender::Iperf3) {
            let port = p(Self::IPERF3);
            running.push(Box::new(peer(
                vec![s("iperf3"), s("-s"), s("-p"), port.to_string()],
                port,
            )?));
        }
        if config.needs(|c| *c == Contender::Sockperf) {
            let port = p(Self::SOCKPERF);
            let argv = ["sockperf", "server", "--tcp", "-i", "127.0.0.1", "-p"];
            let mut argv: Vec<String> = argv.map(s).to_vec();
            argv.push(port.to_string());
            running.push(Box::new(peer(argv, port)?));
        }
        if config.needs(|c| *c == Contender::Qperf) {
            let port = p(Self::QPERF);
            running.push(Box::new(peer(
                vec![s("qperf"), s("-lp"), port.to_string()],
                port,
            )?));
        }
        if config.needs(|c| matches!(c, Contender::Loop { .. })) {
            let port = p(Self::LOOP);
            let bin = config.bin_dir.join("baseline").display().to_string();
            running.push(Box::new(peer(
                vec![
                    bin,
                    s("recv"),
                    s("--rx"),
                    s("discard"),
                    s("--listen"),
                    format!("127.0.0.1:{port}"),
                ],
                port,
            )?));
        }
        Ok(Servers {
            port: config.port,
            _running: running,
        })
    }
}

/// Runs one measurement: each of the comparison's metrics, and the size the tool sent.
fn measure(
    config: &CompareConfig,
    servers: &Servers,
    comparison: Comparison,
    contender: Contender,
    size: usize,
) -> Result<(Vec<(Metric, f64)>, usize)> {
    let port = |i: u16| (servers.port + i).to_string();
    let secs = config.seconds.to_string();
    let flows = if comparison.is_flows() {
        config.flows
    } else {
        1
    };
    let argv = |words: &[&str]| words.iter().map(|w| w.to_string()).collect::<Vec<_>>();
    let cpu = config.client_cpu;
    match contender {
        Contender::Copyperf {
            backend,
            mode,
            sqpoll,
        } => {
            let server_port = Servers::copyperf_slot(backend, sqpoll);
            let (workload, depth) = match comparison {
                Comparison::Echo => (Workload::Echo, 1),
                _ => (Workload::Stream, STREAM_DEPTH),
            };
            // The uring engine serves several connections from one ring; the syscall
            // engine takes a thread per connection.
            let (threads, conns) = match backend {
                Backend::Syscall => (flows, 1),
                Backend::Uring => (1, flows),
            };
            let client = ClientConfig {
                host: "127.0.0.1".into(),
                port: servers.port + server_port,
                backend,
                mode,
                size,
                threads,
                conns,
                duration: Duration::from_secs(config.seconds),
                workload,
                depth,
                rx: comparison.rx(),
                sqpoll: sqpoll.then_some(SqPoll { cpu: None }),
                cpus: CpuSpec::List(vec![cpu]),
                counters: CounterScope::Off,
                ..ClientConfig::default()
            };
            let r = run_client(&config.bin_dir.join("client"), None, &client)?;
            let values = match comparison {
                Comparison::Echo => {
                    let l = r.latency.context("an echo run without latency")?;
                    vec![(Metric::P50, l.p50_us), (Metric::Mean, l.mean_us)]
                }
                _ => vec![(Metric::Throughput, r.summary.throughput_gbps)],
            };
            Ok((values, size))
        }
        Contender::Iperf3 => {
            let mut a = argv(&["iperf3", "-c", "127.0.0.1", "-t", &secs, "-J"]);
            a.extend(["-p".into(), port(Servers::IPERF3)]);
            a.extend(["-l".into(), size.to_string()]);
            a.extend(["-P".into(), flows.to_string()]);
            let gbps = tools::parse_iperf3(&output(cpu, &a)?)?;
            Ok((vec![(Metric::Throughput, gbps)], size))
        }
        Contender::Sockperf => {
            let tool_size = size.min(SOCKPERF_MAX_SIZE);
            let mut a = argv(&["sockperf", "ping-pong", "--tcp", "-i", "127.0.0.1"]);
            a.extend(["-p".into(), port(Servers::SOCKPERF)]);
            a.extend(["-t".into(), secs, "--full-rtt".into()]);
            a.extend(["-m".into(), tool_size.to_string()]);
            let (p50, mean) = tools::parse_sockperf(&output(cpu, &a)?)?;
            Ok((vec![(Metric::P50, p50), (Metric::Mean, mean)], tool_size))
        }
        Contender::Qperf => {
            let mut a = argv(&["qperf", "-lp"]);
            a.extend([port(Servers::QPERF), "127.0.0.1".into()]);
            a.extend(["-t".into(), secs, "-m".into(), size.to_string()]);
            a.push("tcp_lat".into());
            let mean = tools::parse_qperf(&output(cpu, &a)?)?;
            Ok((vec![(Metric::Mean, mean)], size))
        }
        Contender::Loop { zc } => {
            let bin = config.bin_dir.join("baseline").display().to_string();
            let mut a = vec![bin, "send".into(), "--to".into()];
            a.push(format!("127.0.0.1:{}", port(Servers::LOOP)));
            a.extend(["-s".into(), size.to_string(), "-d".into(), secs]);
            a.extend(["--depth".into(), STREAM_DEPTH.to_string()]);
            a.extend(["--flows".into(), flows.to_string()]);
            a.extend([
                "--send".into(),
                if zc { "zc-fixed" } else { "plain" }.into(),
            ]);
            let gbps = tools::parse_baseline(&output(cpu, &a)?)?;
            Ok((vec![(Metric::Throughput, gbps)], size))
        }
    }
}

/// What happened to one measurement, for the progress line.
pub enum Progress<'a> {
    Measured(&'a [Sample]),
    /// A contender failed: it is not run again, and the reason is kept.
    Failed {
        comparison: Comparison,
        contender: Contender,
        size: usize,
        error: &'a anyhow::Error,
    },
}

/// Every measurement, and the contenders that failed with why.
#[derive(Debug, Default)]
pub struct Outcome {
    pub samples: Vec<Sample>,
    pub failed: BTreeMap<(Comparison, Contender), String>,
}

/// Runs every comparison, interleaved, calling `on` after each measurement. A contender
/// that fails is reported and left out of the later rounds; the others go on.
pub fn run(config: &CompareConfig, on: &dyn Fn(Progress)) -> Result<Outcome> {
    let servers = Servers::start(config)?;
    let mut out = Outcome::default();
    for repeat in 0..config.repeats {
        for &comparison in &config.comparisons {
            for &size in config.sizes_of(comparison) {
                let mut order = comparison.contenders();
                if repeat % 2 == 1 {
                    order.reverse();
                }
                for contender in order {
                    if out.failed.contains_key(&(comparison, contender)) {
                        continue;
                    }
                    match measure(config, &servers, comparison, contender, size) {
                        Ok((values, tool_size)) => {
                            let new: Vec<Sample> = values
                                .into_iter()
                                .map(|(metric, value)| Sample {
                                    comparison,
                                    contender,
                                    size,
                                    tool_size,
                                    repeat,
                                    metric,
                                    value,
                                })
                                .collect();
                            on(Progress::Measured(&new));
                            out.samples.extend(new);
                        }
                        Err(error) => {
                            on(Progress::Failed {
                                comparison,
                                contender,
                                size,
                                error: &error,
                            });
                            out.failed
                                .insert((comparison, contender), format!("{error:#}"));
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}
