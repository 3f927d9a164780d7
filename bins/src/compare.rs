//! copyperf beside its peers on loopback: stream against iperf3 (one flow, `-l` = message
//! size), echo at depth 1 against sockperf's TCP ping-pong, at each message size,
//! interleaved (A B C …, then reversed) over several repeats, every tool pinned the same
//! way (servers on one CPU, clients on another). The folder gets every measurement
//! (`samples.csv`), the medians, spread and ratios (`peers.csv`), and a plot (`peers.svg`).

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use engine::config::{format_size, Backend, CounterScope, Workload};
use engine::placement::CpuSpec;
use engine::{ClientConfig, ServerConfig};

use crate::proc::{run_client, ServerProcess};
use crate::report::chart::{self, Marker, Panel, Series, XAxis};
use crate::summary::{median, range};

/// The largest message sockperf sends over TCP.
pub const SOCKPERF_MAX_SIZE: usize = 65506;

/// Which comparison a measurement belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// Throughput, one flow, one way: higher is better.
    Stream,
    /// Median round-trip time at depth 1: lower is better.
    Echo,
}

impl Comparison {
    pub fn name(self) -> &'static str {
        match self {
            Comparison::Stream => "stream",
            Comparison::Echo => "echo",
        }
    }
}

/// A contender in a comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contender {
    Copyperf {
        backend: &'static str,
        mode: &'static str,
    },
    Iperf3,
    Sockperf,
}

impl Contender {
    pub fn tool(&self) -> &'static str {
        match self {
            Contender::Copyperf { .. } => "copyperf",
            Contender::Iperf3 => "iperf3",
            Contender::Sockperf => "sockperf",
        }
    }

    /// `copyperf syscall two-copy`, `iperf3`.
    pub fn label(&self) -> String {
        match self {
            Contender::Copyperf { backend, mode } => format!("copyperf {backend} {mode}"),
            other => other.tool().to_owned(),
        }
    }

    fn is_peer(&self) -> bool {
        !matches!(self, Contender::Copyperf { .. })
    }
}

/// The contenders of each comparison: copyperf's two copying syscall modes, its uring
/// engine on one-copy, and the peer.
pub fn contenders(c: Comparison) -> Vec<Contender> {
    let cp = |backend, mode| Contender::Copyperf { backend, mode };
    let peer = match c {
        Comparison::Stream => Contender::Iperf3,
        Comparison::Echo => Contender::Sockperf,
    };
    vec![
        cp("syscall", "two-copy"),
        cp("syscall", "one-copy"),
        cp("uring", "one-copy"),
        peer,
    ]
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
    /// Stream: Gbit/s. Echo: median round trip, µs.
    pub value: f64,
}

/// iperf3's `-J` output: the receiver's throughput in Gbit/s.
pub fn parse_iperf3(json: &str) -> Result<f64> {
    let v: serde_json::Value = serde_json::from_str(json).context("iperf3 output is not JSON")?;
    if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
        bail!("iperf3: {e}");
    }
    v.pointer("/end/sum_received/bits_per_second")
        .and_then(|b| b.as_f64())
        .map(|bps| bps / 1e9)
        .ok_or_else(|| anyhow!("iperf3 output has no end.sum_received.bits_per_second"))
}

/// sockperf ping-pong (`--full-rtt`) output: the median round trip in µs.
pub fn parse_sockperf(text: &str) -> Result<f64> {
    if !text.contains("RTT") && !text.contains("rtt") {
        bail!("sockperf output does not report round-trip times (was --full-rtt given?)");
    }
    text.lines()
        .find_map(|l| {
            let rest = l.split("percentile 50.000").nth(1)?;
            rest.trim_start_matches([' ', '=']).trim().parse().ok()
        })
        .ok_or_else(|| anyhow!("sockperf output has no 50th percentile line"))
}

/// What to compare.
#[derive(Debug, Clone)]
pub struct CompareConfig {
    pub sizes: Vec<usize>,
    pub repeats: usize,
    /// Seconds per measurement (whole seconds: iperf3 takes no fractions).
    pub seconds: u64,
    pub bin_dir: PathBuf,
    /// First of four consecutive ports.
    pub port: u16,
    pub server_cpu: usize,
    pub client_cpu: usize,
}

/// A peer tool's server, killed and reaped when dropped.
struct PeerServer {
    child: Child,
}

impl PeerServer {
    fn start(cpu: usize, argv: &[String], port: u16) -> Result<PeerServer> {
        let child = Command::new("taskset")
            .args(["-c", &cpu.to_string()])
            .args(argv)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", argv[0]))?;
        let server = PeerServer { child };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if Instant::now() > deadline {
                bail!("{} did not start listening on {addr}", argv[0]);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // sockperf and iperf3 take a moment after the probe connection.
        std::thread::sleep(Duration::from_millis(200));
        Ok(server)
    }
}

impl Drop for PeerServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn output(cpu: usize, argv: &[String]) -> Result<String> {
    let out = Command::new("taskset")
        .args(["-c", &cpu.to_string()])
        .args(argv)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", argv[0]))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "{} failed ({}): {}{}",
            argv[0],
            out.status,
            text.lines().last().unwrap_or(""),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(text + &String::from_utf8_lossy(&out.stderr))
}

/// The version line a tool prints, for the record.
pub fn tool_version(tool: &str) -> String {
    Command::new(tool)
        .arg("--version")
        .output()
        .ok()
        .map(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned()
                + &String::from_utf8_lossy(&o.stderr);
            text.lines().next().unwrap_or("").trim().to_owned()
        })
        .unwrap_or_else(|| "not installed".into())
}

/// Runs every comparison, interleaved, calling `on` after each measurement.
pub fn run(config: &CompareConfig, on: &dyn Fn(&Sample)) -> Result<Vec<Sample>> {
    let s = |x: &str| x.to_owned();
    let port = |i: u16| config.port + i;
    let server_bin = config.bin_dir.join("server");
    let client_bin = config.bin_dir.join("client");
    let copyperf = |backend: Backend, p: u16| {
        let server = ServerConfig {
            bind: [127, 0, 0, 1].into(),
            port: p,
            backend,
            cpus: CpuSpec::List(vec![config.server_cpu]),
            counters: CounterScope::Off,
            workers: (backend == Backend::Uring).then_some(1),
            ..ServerConfig::default()
        };
        ServerProcess::start(&server_bin, None, &server)
    };
    let _syscall = copyperf(Backend::Syscall, port(0))?;
    let _uring = copyperf(Backend::Uring, port(1))?;
    let _iperf3 = PeerServer::start(
        config.server_cpu,
        &[s("iperf3"), s("-s"), s("-p"), port(2).to_string()],
        port(2),
    )?;
    let _sockperf = PeerServer::start(
        config.server_cpu,
        &[
            s("sockperf"),
            s("server"),
            s("--tcp"),
            s("-i"),
            s("127.0.0.1"),
            s("-p"),
            port(3).to_string(),
        ],
        port(3),
    )?;
    let secs = config.seconds.to_string();
    let mut samples = Vec::new();
    for repeat in 0..config.repeats {
        for &size in &config.sizes {
            for comparison in [Comparison::Stream, Comparison::Echo] {
                let mut order = contenders(comparison);
                if repeat % 2 == 1 {
                    order.reverse();
                }
                for contender in order {
                    let (value, tool_size) = match &contender {
                        Contender::Copyperf { backend, mode } => {
                            let p = if *backend == "uring" {
                                port(1)
                            } else {
                                port(0)
                            };
                            let (workload, depth) = match comparison {
                                Comparison::Stream => (Workload::Stream, 8),
                                Comparison::Echo => (Workload::Echo, 1),
                            };
                            let client = ClientConfig {
                                host: "127.0.0.1".into(),
                                port: p,
                                backend: backend.parse().map_err(anyhow::Error::msg)?,
                                mode: mode.parse().map_err(anyhow::Error::msg)?,
                                size,
                                threads: 1,
                                duration: Duration::from_secs(config.seconds),
                                workload,
                                depth,
                                cpus: CpuSpec::List(vec![config.client_cpu]),
                                counters: CounterScope::Off,
                                ..ClientConfig::default()
                            };
                            let r = run_client(&client_bin, None, &client)?;
                            let value = match comparison {
                                Comparison::Stream => r.summary.throughput_gbps,
                                Comparison::Echo => {
                                    r.latency.context("an echo run without latency")?.p50_us
                                }
                            };
                            (value, size)
                        }
                        Contender::Iperf3 => {
                            let argv = [
                                "iperf3",
                                "-c",
                                "127.0.0.1",
                                "-p",
                                &port(2).to_string(),
                                "-t",
                                &secs,
                                "-l",
                                &size.to_string(),
                                "-J",
                            ]
                            .map(String::from);
                            (parse_iperf3(&output(config.client_cpu, &argv)?)?, size)
                        }
                        Contender::Sockperf => {
                            let tool_size = size.min(SOCKPERF_MAX_SIZE);
                            let argv = [
                                "sockperf",
                                "ping-pong",
                                "--tcp",
                                "-i",
                                "127.0.0.1",
                                "-p",
                                &port(3).to_string(),
                                "-t",
                                &secs,
                                "-m",
                                &tool_size.to_string(),
                                "--full-rtt",
                            ]
                            .map(String::from);
                            (
                                parse_sockperf(&output(config.client_cpu, &argv)?)?,
                                tool_size,
                            )
                        }
                    };
                    let sample = Sample {
                        comparison,
                        contender,
                        size,
                        tool_size,
                        repeat,
                        value,
                    };
                    on(&sample);
                    samples.push(sample);
                }
            }
        }
    }
    Ok(samples)
}

/// One copyperf contender against the peer at one size: medians and spread.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub comparison: Comparison,
    pub size: usize,
    pub copyperf: String,
    pub ours: Vec<f64>,
    pub peer: String,
    pub peer_size: usize,
    pub theirs: Vec<f64>,
}

impl Row {
    /// copyperf's median over the peer's.
    pub fn ratio(&self) -> Option<f64> {
        match (median(&self.ours), median(&self.theirs)) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        }
    }

    /// Whether copyperf did at least as well as the peer (higher throughput, lower RTT).
    pub fn copyperf_as_good(&self) -> Option<bool> {
        self.ratio().map(|r| match self.comparison {
            Comparison::Stream => r >= 1.0,
            Comparison::Echo => r <= 1.0,
        })
    }
}

/// Groups samples into rows, in size and contender order.
pub fn rows(samples: &[Sample], sizes: &[usize]) -> Vec<Row> {
    let mut out = Vec::new();
    for comparison in [Comparison::Stream, Comparison::Echo] {
        let all = contenders(comparison);
        let peer = all.iter().find(|c| c.is_peer()).expect("a peer").clone();
        for &size in sizes {
            let of = |c: &Contender| -> Vec<f64> {
                samples
                    .iter()
                    .filter(|s| s.comparison == comparison && s.size == size && &s.contender == c)
                    .map(|s| s.value)
                    .collect()
            };
            let peer_size = samples
                .iter()
                .find(|s| s.comparison == comparison && s.size == size && s.contender == peer)
                .map_or(size, |s| s.tool_size);
            for c in all.iter().filter(|c| !c.is_peer()) {
                out.push(Row {
                    comparison,
                    size,
                    copyperf: c.label(),
                    ours: of(c),
                    peer: peer.label(),
                    peer_size,
                    theirs: of(&peer),
                });
            }
        }
    }
    out
}

/// peers.csv columns.
pub const PEERS_COLUMNS: [&str; 15] = [
    "Comparison",
    "MessageSize",
    "Metric",
    "Unit",
    "Copyperf",
    "Copyperf_Median",
    "Copyperf_Min",
    "Copyperf_Max",
    "Peer",
    "Peer_MessageSize",
    "Peer_Median",
    "Peer_Min",
    "Peer_Max",
    "Ratio",
    "Copyperf_As_Good",
];

fn metric(c: Comparison) -> (&'static str, &'static str) {
    match c {
        Comparison::Stream => ("throughput", "Gbit/s"),
        Comparison::Echo => ("p50 round trip", "us"),
    }
}

fn cells(xs: &[f64]) -> [String; 3] {
    let f = |v: Option<f64>| v.map_or(String::new(), |x| format!("{x:.3}"));
    let (lo, hi) = range(xs).unzip();
    [f(median(xs)), f(lo), f(hi)]
}

/// peers.csv: one row per copyperf contender and size.
pub fn peers_csv(rows: &[Row]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(PEERS_COLUMNS).expect("memory");
    for r in rows {
        let (m, unit) = metric(r.comparison);
        let [om, olo, ohi] = cells(&r.ours);
        let [pm, plo, phi] = cells(&r.theirs);
        w.write_record([
            r.comparison.name().to_owned(),
            r.size.to_string(),
            m.to_owned(),
            unit.to_owned(),
            r.copyperf.clone(),
            om,
            olo,
            ohi,
            r.peer.clone(),
            r.peer_size.to_string(),
            pm,
            plo,
            phi,
            r.ratio().map_or(String::new(), |x| format!("{x:.3}")),
            r.copyperf_as_good()
                .map_or(String::new(), |b| b.to_string()),
        ])
        .expect("memory");
    }
    String::from_utf8(w.into_inner().expect("flushed")).expect("utf-8")
}

/// samples.csv: every measurement.
pub fn samples_csv(samples: &[Sample]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "Comparison",
        "MessageSize",
        "Tool",
        "Contender",
        "Tool_MessageSize",
        "Repeat",
        "Value",
        "Unit",
    ])
    .expect("memory");
    for s in samples {
        w.write_record([
            s.comparison.name().to_owned(),
            s.size.to_string(),
            s.contender.tool().to_owned(),
            s.contender.label(),
            s.tool_size.to_string(),
            s.repeat.to_string(),
            format!("{:.3}", s.value),
            metric(s.comparison).1.to_owned(),
        ])
        .expect("memory");
    }
    String::from_utf8(w.into_inner().expect("flushed")).expect("utf-8")
}

/// The ratio table as printed (and pasted into README.md).
pub fn table(rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "| comparison | size | copyperf | median [min–max] | peer median [min–max] | copyperf / peer |");
    let _ = writeln!(s, "|---|---|---|---|---|---|");
    for r in rows {
        let (_, unit) = metric(r.comparison);
        let unit = if unit == "us" { "µs" } else { unit };
        let peer = if r.peer_size == r.size {
            r.peer.clone()
        } else {
            format!("{} ({} B)", r.peer, r.peer_size)
        };
        let _ = writeln!(
            s,
            "| {} vs {peer} | {} | {} | {} {unit} | {} {unit} | {} |",
            r.comparison.name(),
            format_size(r.size),
            r.copyperf.trim_start_matches("copyperf "),
            crate::summary::median_range(&r.ours, 2),
            crate::summary::median_range(&r.theirs, 2),
            r.ratio().map_or("–".into(), |x| format!("{x:.2}×")),
        );
    }
    s
}

/// One of issue 7's targets, judged on the data.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub text: String,
    pub met: Option<bool>,
    pub detail: String,
}

/// The targets: the best syscall stream mode ≥ iperf3 at 16K and 64K; the best syscall
/// echo mode's p50 ≤ sockperf's at 1K and 4K; uring ≥ syscall on one-copy stream at 64K.
pub fn targets(rows: &[Row]) -> Vec<Target> {
    let mut out = Vec::new();
    let best = |c: Comparison, size: usize| -> Option<(String, f64)> {
        rows.iter()
            .filter(|r| r.comparison == c && r.size == size && r.copyperf.contains("syscall"))
            .filter_map(|r| Some((r.copyperf.clone(), r.ratio()?)))
            .reduce(|a, b| match c {
                Comparison::Stream if b.1 > a.1 => b,
                Comparison::Echo if b.1 < a.1 => b,
                _ => a,
            })
    };
    for (c, sizes, text) in [
        (
            Comparison::Stream,
            [16384, 65536],
            "best syscall mode, stream ≥ 1.0× iperf3 throughput",
        ),
        (
            Comparison::Echo,
            [1024, 4096],
            "best syscall mode, echo p50 round trip ≤ 1.0× sockperf's",
        ),
    ] {
        for size in sizes {
            let (met, detail) = match best(c, size) {
                Some((who, ratio)) => (
                    Some(match c {
                        Comparison::Stream => ratio >= 1.0,
                        Comparison::Echo => ratio <= 1.0,
                    }),
                    format!("{who}: {ratio:.2}×"),
                ),
                None => (None, "not measured".into()),
            };
            out.push(Target {
                text: format!("{text} at {}", format_size(size)),
                met,
                detail,
            });
        }
    }
    let stream_64k = |who: &str| {
        rows.iter()
            .find(|r| r.comparison == Comparison::Stream && r.size == 65536 && r.copyperf == who)
            .and_then(|r| median(&r.ours))
    };
    let (met, detail) = match (
        stream_64k("copyperf uring one-copy"),
        stream_64k("copyperf syscall one-copy"),
    ) {
        (Some(u), Some(s)) if s > 0.0 => (
            Some(u >= s),
            format!("{u:.2} vs {s:.2} Gbit/s: {:.2}×", u / s),
        ),
        _ => (None, "not measured".into()),
    };
    out.push(Target {
        text: "uring ≥ syscall, one-copy stream depth 8 at 64K".into(),
        met,
        detail,
    });
    out
}

/// peers.svg: throughput vs size against iperf3, p50 round trip vs size against sockperf.
pub fn plot(rows: &[Row]) -> Result<String> {
    let panel = |c: Comparison, title: &str, y: &str| {
        let mut p = Panel::new(title, XAxis::Size, y);
        let colors = [
            chart::mode_color(engine::Mode::TwoCopy),
            chart::mode_color(engine::Mode::OneCopy),
            chart::mode_color(engine::Mode::ZcFixed),
        ];
        let mut names: Vec<String> = Vec::new();
        for r in rows.iter().filter(|r| r.comparison == c) {
            if !names.contains(&r.copyperf) {
                names.push(r.copyperf.clone());
            }
        }
        for (i, name) in names.iter().enumerate() {
            let points = rows
                .iter()
                .filter(|r| r.comparison == c && &r.copyperf == name)
                .filter_map(|r| Some((r.size as f64, median(&r.ours)?)))
                .collect();
            p.series.push(Series {
                label: name.clone(),
                color: colors[i % colors.len()],
                dashed: name.contains("uring"),
                marker: if name.contains("uring") {
                    Marker::Triangle
                } else {
                    Marker::Circle
                },
                points,
                spreads: Vec::new(),
            });
        }
        let mut peer_points: Vec<(f64, f64)> = Vec::new();
        let mut peer = String::new();
        for r in rows.iter().filter(|r| r.comparison == c) {
            peer.clone_from(&r.peer);
            if let Some(m) = median(&r.theirs) {
                if !peer_points.iter().any(|(x, _)| *x == r.size as f64) {
                    peer_points.push((r.size as f64, m));
                }
            }
        }
        p.series.push(Series {
            label: peer,
            color: plotters::style::RGBColor(40, 40, 40),
            dashed: false,
            marker: Marker::None,
            points: peer_points,
            spreads: Vec::new(),
        });
        p
    };
    chart::render(
        "copyperf beside iperf3 and sockperf (loopback, medians)",
        &[
            panel(
                Comparison::Stream,
                "stream, one flow: vs iperf3 (higher is better)",
                "throughput (Gbit/s)",
            ),
            panel(
                Comparison::Echo,
                "echo, depth 1: vs sockperf ping-pong (lower is better)",
                "p50 round trip (µs)",
            ),
        ],
    )
}

/// Writes samples.csv, peers.csv and peers.svg into `dir`.
pub fn write(dir: &Path, samples: &[Sample], sizes: &[usize]) -> Result<Vec<Row>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let rows = rows(samples, sizes);
    std::fs::write(dir.join("samples.csv"), samples_csv(samples))?;
    std::fs::write(dir.join("peers.csv"), peers_csv(&rows))?;
    std::fs::write(dir.join("peers.svg"), plot(&rows)?)?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iperf3_json_gives_receiver_throughput() {
        let json = r#"{"end": {"sum_sent": {"bits_per_second": 2e10}, "sum_received": {"bits_per_second": 1.5e10}}}"#;
        assert_eq!(parse_iperf3(json).unwrap(), 15.0);
        assert!(parse_iperf3(r#"{"error": "unable to connect"}"#)
            .unwrap_err()
            .to_string()
            .contains("unable"));
        assert!(parse_iperf3("not json").is_err());
    }

    #[test]
    fn sockperf_output_gives_the_median_round_trip() {
        let text = "sockperf: ====> avg-rtt=19.512 (std-dev=3.1)\n\
                    sockperf: ---> <MAX> observation =  120.456\n\
                    sockperf: ---> percentile 99.000 =   30.001\n\
                    sockperf: ---> percentile 50.000 =   18.250\n\
                    sockperf: ---> <MIN> observation =   12.000\n";
        assert_eq!(parse_sockperf(text).unwrap(), 18.25);
        assert!(
            parse_sockperf("sockperf: avg-latency=9.1\n---> percentile 50.000 = 9.0").is_err(),
            "half RTT"
        );
        assert!(parse_sockperf("rtt but no percentiles").is_err());
    }

    fn sample(c: Comparison, who: Contender, size: usize, value: f64) -> Sample {
        Sample {
            comparison: c,
            contender: who,
            size,
            tool_size: size,
            repeat: 0,
            value,
        }
    }

    #[test]
    fn rows_ratios_and_targets() {
        let cp = |backend, mode| Contender::Copyperf { backend, mode };
        let mut s = Vec::new();
        for size in [16384, 65536] {
            s.push(sample(
                Comparison::Stream,
                cp("syscall", "two-copy"),
                size,
                10.0,
            ));
            s.push(sample(
                Comparison::Stream,
                cp("syscall", "one-copy"),
                size,
                12.0,
            ));
            s.push(sample(
                Comparison::Stream,
                cp("uring", "one-copy"),
                size,
                13.0,
            ));
            s.push(sample(Comparison::Stream, Contender::Iperf3, size, 11.0));
        }
        for size in [1024, 4096] {
            s.push(sample(
                Comparison::Echo,
                cp("syscall", "two-copy"),
                size,
                20.0,
            ));
            s.push(sample(
                Comparison::Echo,
                cp("syscall", "one-copy"),
                size,
                22.0,
            ));
            s.push(sample(
                Comparison::Echo,
                cp("uring", "one-copy"),
                size,
                25.0,
            ));
            s.push(sample(Comparison::Echo, Contender::Sockperf, size, 21.0));
        }
        let rows = rows(&s, &[1024, 4096, 16384, 65536]);
        let r = rows
            .iter()
            .find(|r| r.size == 16384 && r.copyperf == "copyperf syscall one-copy")
            .unwrap();
        assert!((r.ratio().unwrap() - 12.0 / 11.0).abs() < 1e-9);
        assert_eq!(r.copyperf_as_good(), Some(true));
        let t = targets(&rows);
        assert_eq!(t.len(), 5);
        assert!(t.iter().all(|t| t.met == Some(true)), "{t:#?}");
        assert!(
            t[0].detail.contains("syscall one-copy"),
            "the best syscall mode: {}",
            t[0].detail
        );
        assert!(
            t[2].detail.contains("syscall two-copy"),
            "lowest RTT wins: {}",
            t[2].detail
        );
        let csv = peers_csv(&rows);
        let mut rd = csv::Reader::from_reader(csv.as_bytes());
        assert_eq!(
            rd.headers().unwrap().iter().collect::<Vec<_>>(),
            PEERS_COLUMNS
        );
        assert_eq!(rd.records().count(), rows.len());
        assert!(table(&rows).contains("| stream vs iperf3 | 16K | syscall one-copy |"));
        assert!(plot(&rows).unwrap().starts_with("<svg"));
    }
}
