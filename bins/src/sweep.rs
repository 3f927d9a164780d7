//! The sweep: every point of an engine × mode × size × threads matrix, measured by
//! agents on the server's and the clients' hosts (children in network namespaces when the
//! script made them, or reached over ssh or a daemon's port), written to one results
//! folder after every point so an interrupted run keeps what it measured. With several
//! client hosts (fan-in) each point starts them together and merges their records.
//!
//! The folder holds the seed's files — `results.csv`, `perfstats.csv`, one CSV per size ×
//! threads — plus `records.jsonl` (every record, every repeat) and `meta.json` (the
//! machine, the network, the matrix, what was skipped or failed). The CSV writers here are
//! pure functions from records to text; their columns are documented in README.md.
//!
//! A record's warnings (a stall, a run far below its own rate, …) travel with its point:
//! printed under the point's progress line as it finishes, so a user watching sees a
//! doubtful point when it happens, and counted in the point's `results.csv` row, so a
//! median built partly from doubtful runs says so.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use engine::config::{format_size, Backend, CounterScope, Workload};
use engine::placement::CpuSpec;
use engine::polling::SqPoll;
use engine::{ClientConfig, PollOpt, Record, ServerConfig, WarningKind};

use crate::agent::control::{HostSpec, Link, Reach};
use crate::report::data::{Dataset, Metric};
pub use crate::results::{point_of, Failed, Matrix, Meta, Point, Skipped, FOLDER_VERSION};
use crate::summary::{median, range};

/// Where the sides run: one agent serving, one or more running clients (fan-in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    pub server: HostSpec,
    pub clients: Vec<HostSpec>,
    /// The server's address as the clients dial it (the data path; it may differ from the
    /// address control reaches the host on).
    pub data_addr: String,
    /// A sentence for meta.json and the report.
    pub detail: String,
}

impl Network {
    /// How the agents were reached: `loopback` (children of the controller on one host),
    /// `netns`, `ssh`, `daemon`, or several of those joined by `+`.
    pub fn kind(&self) -> String {
        let of = |h: &HostSpec| match h {
            HostSpec::Local => "loopback",
            HostSpec::Netns(_) => "netns",
            HostSpec::Ssh { .. } => "ssh",
            HostSpec::Daemon { .. } => "daemon",
        };
        crate::unique(std::iter::once(&self.server).chain(&self.clients).map(of)).join("+")
    }
}

/// Everything one sweep needs.
#[derive(Debug, Clone)]
pub struct SweepConfig {
    pub matrix: Matrix,
    pub network: Network,
    /// How the agents are reached (the local agent binary, ssh, the daemons' secret).
    pub reach: Reach,
    pub counters: CounterScope,
    pub port: u16,
    /// Seeds the shuffled order of every round ([`round_order`]).
    pub seed: u64,
    /// The run's own folder (created if missing).
    pub dir: PathBuf,
    pub command_line: String,
}

/// What the sweep reports as it goes.
pub enum SweepEvent<'a> {
    /// Measuring is about to start.
    Start { total: usize },
    /// One measurement finished (or failed, or was skipped).
    Point {
        done: usize,
        total: usize,
        point: Point,
        repeat: usize,
        outcome: Result<&'a Record, String>,
        eta: Option<Duration>,
    },
    /// A line worth showing (a skipped point, a notice).
    Notice(String),
}

/// How a sweep ended.
pub struct Outcome {
    pub meta: Meta,
    pub records: usize,
    /// Records that carried at least one warning.
    pub warned: usize,
}

/// Runs the sweep, rewriting every file after every point. Returns when done or when
/// `stop` is set (the running client killed, `interrupted` recorded).
pub fn run(config: &SweepConfig, stop: &AtomicBool, on: &dyn Fn(SweepEvent)) -> Result<Outcome> {
    std::fs::create_dir_all(&config.dir)
        .with_context(|| format!("creating {}", config.dir.display()))?;
    let points = config.matrix.points();
    let mut meta = new_meta(config, points.len() * config.matrix.repeats);
    let mut records: Vec<Record> = Vec::new();
    write_all(&config.dir, &meta, &records, &config.matrix)?;
    let mut fleet = Fleet::open(config)?;
    meta.server_host = fleet.describe_server(&config.network.data_addr);
    // What each host's own kernel can run decides, not the controller's.
    let mut support: Vec<(Backend, engine::Mode, Result<(), String>)> = Vec::new();
    let mut runnable = Vec::new();
    for p in &points {
        let known = support
            .iter()
            .find(|(b, m, _)| (*b, *m) == (p.engine, p.mode))
            .map(|(_, _, r)| r.clone());
        let verdict = match known {
            Some(v) => v,
            None => {
                let v = fleet.supports(p.engine, p.mode);
                support.push((p.engine, p.mode, v.clone()));
                v
            }
        };
        // A combination no host can run (a receive path an engine lacks) is refused by
        // the client's own configuration, the same everywhere.
        let verdict = verdict.and_then(|()| {
            engine::check_rx_support(p.engine, p.rx).map_err(|e| e.to_string())?;
            point_config(config, *p)
                .validate()
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
        match verdict {
            Ok(()) => runnable.push(*p),
            Err(reason) => {
                on(SweepEvent::Notice(format!("skipping {p}: {reason}")));
                meta.skipped
                    .get_or_insert_with(Vec::new)
                    .push(Skipped::new(p, reason));
            }
        }
    }
    let total = runnable.len() * config.matrix.repeats;
    meta.points_total = Some(total);
    write_all(&config.dir, &meta, &records, &config.matrix)?;
    on(SweepEvent::Start { total });
    let started = Instant::now();
    let mut done = 0;
    'outer: for repeat in 0..config.matrix.repeats {
        for p in &round_order(&runnable, config.seed, repeat) {
            if stop.load(Ordering::Relaxed) {
                meta.interrupted = Some(true);
                break 'outer;
            }
            let result = fleet.measure(config, *p, stop);
            for text in fleet.notices() {
                on(SweepEvent::Notice(text));
            }
            let result = match result {
                Ok(Some(record)) => Ok(record),
                Ok(None) => Err(anyhow::anyhow!("interrupted")),
                Err(e) => Err(e),
            };
            if stop.load(Ordering::Relaxed) {
                meta.interrupted = Some(true);
                break 'outer;
            }
            done += 1;
            let elapsed = started.elapsed();
            let eta = (done < total).then(|| elapsed / done as u32 * (total - done) as u32);
            match result {
                Ok(record) => {
                    if meta.uring_setup_flags.is_none() {
                        meta.uring_setup_flags =
                            record.client.uring.as_ref().map(|u| u.flags.to_string());
                    }
                    if meta.client_hosts.is_none() {
                        let hosts = client_hosts(&record);
                        meta.client_host = hosts.first().cloned();
                        meta.client_hosts = Some(hosts);
                        if let Some(h) = record.server.as_ref().and_then(|s| s.host.clone()) {
                            meta.server_host = Some(h);
                        }
                    }
                    records.push(record);
                    meta.points_done = Some(records.len());
                    on(SweepEvent::Point {
                        done,
                        total,
                        point: *p,
                        repeat,
                        outcome: Ok(records.last().expect("just pushed")),
                        eta,
                    });
                }
                Err(e) => {
                    let error = format!("{e:#}");
                    meta.failed.get_or_insert_with(Vec::new).push(Failed {
                        point: p.to_string(),
                        repeat: Some(repeat),
                        error: error.clone(),
                    });
                    on(SweepEvent::Point {
                        done,
                        total,
                        point: *p,
                        repeat,
                        outcome: Err(error),
                        eta,
                    });
                }
            }
            write_all(&config.dir, &meta, &records, &config.matrix)?;
        }
    }
    fleet.close();
    meta.finished_at = Some(engine::rfc3339(SystemTime::now()));
    write_all(&config.dir, &meta, &records, &config.matrix)?;
    Ok(Outcome {
        meta,
        records: records.len(),
        warned: records.iter().filter(|r| !r.warnings.is_empty()).count(),
    })
}

/// The order of round `round`: every point once, shuffled afresh (Fisher–Yates driven by
/// splitmix64 from `seed` and the round), so that drift over the run — a neighbour's
/// load, thermal state, the VM's steal — spreads over all points instead of always
/// landing on the same ones. The same seed gives the same orders.
pub fn round_order(points: &[Point], seed: u64, round: usize) -> Vec<Point> {
    let mut state = seed ^ (round as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut v = points.to_vec();
    for i in (1..v.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
    v
}

/// Each client host's own description, as its record (or each part of a merged record)
/// carries it.
fn client_hosts(record: &Record) -> Vec<engine::host::HostInfo> {
    record.client_hosts().into_iter().cloned().collect()
}

/// How long a point's clients may take beyond their planned interval before the
/// controller gives up on them: connecting, collecting, the server's reports.
const FINISH_SLACK: Duration = Duration::from_secs(60);

/// How long an aborted client has to hand back what it has.
const ABORT_WAIT: Duration = Duration::from_secs(10);

/// One host's agent: its link, opened again after a fault.
struct Slot {
    spec: HostSpec,
    link: Option<Link>,
}

impl Slot {
    fn link(&mut self, reach: &Reach) -> Result<&mut Link> {
        if self.link.as_ref().is_some_and(Link::is_dead) {
            self.link = None;
        }
        if self.link.is_none() {
            self.link = Some(Link::open(&self.spec, reach)?);
        }
        Ok(self.link.as_mut().expect("just opened"))
    }

    /// Forgets a link that broke, so the next point starts its agent afresh.
    fn forget_if_dead(&mut self) {
        if self.link.as_ref().is_some_and(Link::is_dead) {
            self.link = None;
        }
    }
}

/// The agents of one sweep: one serving, one per client host.
struct Fleet {
    server: Slot,
    clients: Vec<Slot>,
    /// Notices already shown: each is shown once per sweep, not once per point.
    shown: Vec<String>,
}

impl Fleet {
    /// Starts every agent once, so an unreachable host, a failed ssh or an agent of
    /// another version stops the sweep before it measures anything, naming the host.
    fn open(config: &SweepConfig) -> Result<Fleet> {
        let slot = |spec: &HostSpec| -> Result<Slot> {
            Ok(Slot {
                spec: spec.clone(),
                link: Some(Link::open(spec, &config.reach)?),
            })
        };
        Ok(Fleet {
            server: slot(&config.network.server)?,
            clients: config
                .network
                .clients
                .iter()
                .map(slot)
                .collect::<Result<_>>()?,
            shown: Vec::new(),
        })
    }

    /// The server host as it describes itself, with the interface holding the data
    /// address when that is one of its addresses.
    fn describe_server(&mut self, data_addr: &str) -> Option<engine::host::HostInfo> {
        let ip = data_addr.parse().ok();
        self.server.link.as_mut()?.describe(ip).ok()
    }

    /// Whether every host runs `mode` on `backend`; the first refusal's reason (naming the
    /// host) where one does not. A host that cannot be asked counts as refusing.
    fn supports(&mut self, backend: Backend, mode: engine::Mode) -> Result<(), String> {
        for slot in std::iter::once(&mut self.server).chain(&mut self.clients) {
            match slot.link.as_mut() {
                Some(link) => link.supports(backend, mode).map_err(|e| format!("{e:#}"))?,
                None => return Err(format!("{}: no agent", slot.spec)),
            }
        }
        Ok(())
    }

    /// What the agents said on the side since last asked, oldest first, each distinct
    /// line once per sweep.
    fn notices(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        for slot in std::iter::once(&mut self.server).chain(&mut self.clients) {
            if let Some(link) = &mut slot.link {
                let label = link.label().to_string();
                for n in link.notices.drain(..) {
                    let line = format!("{label}: {n}");
                    if !self.shown.contains(&line) {
                        self.shown.push(line.clone());
                        out.push(line);
                    }
                }
            }
        }
        out
    }

    /// One measurement: a server for the point, every client host connected, let go at
    /// once, their records merged. `None` when `stop` was set.
    fn measure(
        &mut self,
        config: &SweepConfig,
        p: Point,
        stop: &AtomicBool,
    ) -> Result<Option<Record>> {
        let m = &config.matrix;
        let max_size = m.sizes.iter().copied().max().unwrap_or(p.size).max(p.size);
        let hosts = self.clients.len();
        let unspecified = match config.network.data_addr.parse::<IpAddr>() {
            Ok(IpAddr::V6(_)) => IpAddr::from([0u16; 8]),
            _ => IpAddr::from([0, 0, 0, 0]),
        };
        let server_config = ServerConfig {
            bind: unspecified,
            port: config.port,
            backend: p.engine,
            max_clients: p.threads * hosts,
            max_size,
            counters: config.counters,
            workers: (p.engine == Backend::Uring).then_some(p.threads * hosts),
            cpus: placement(p),
            sqpoll: (p.polling == PollOpt::Sqpoll).then_some(SqPoll { cpu: None }),
            busy_poll_us: (p.polling == PollOpt::BusyPoll).then_some(BUSY_POLL_US),
            ..ServerConfig::default()
        };
        let serving = self.server.link(&config.reach)?.serve(&server_config);
        let port = match serving {
            Ok(addr) => addr.port(),
            Err(e) => {
                self.server.forget_if_dead();
                return Err(e);
            }
        };
        let client_config = ClientConfig {
            port,
            ..point_config(config, p)
        };
        let peer = config.network.server.daemon_addr();
        let result = self.run_clients(config, &client_config, peer, stop);
        for slot in &mut self.clients {
            slot.forget_if_dead();
        }
        let stopped = match self.server.link.as_mut() {
            Some(link) => link.stop_serving(),
            None => Ok(()),
        };
        self.server.forget_if_dead();
        let parts = result?;
        stopped?;
        let Some(mut parts) = parts else {
            return Ok(None);
        };
        if parts.len() == 1 {
            return Ok(parts.pop().map(|(_, r)| r));
        }
        Record::merge(&parts)
            .map(Some)
            .context("merging the client hosts' records")
    }

    /// Connects every client host, lets them go together, and collects their records.
    fn run_clients(
        &mut self,
        config: &SweepConfig,
        client: &ClientConfig,
        peer: Option<String>,
        stop: &AtomicBool,
    ) -> Result<Option<Vec<(String, Record)>>> {
        let mut connected = 0;
        let mut failure = None;
        for slot in &mut self.clients {
            let link = match slot.link(&config.reach) {
                Ok(l) => l,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            if let Err(e) = link.connect(client, peer.clone()) {
                failure = Some(e);
                break;
            }
            connected += 1;
        }
        if failure.is_none() {
            // The start line: every host is connected and past its handshakes; each
            // times its own interval from here.
            for slot in &mut self.clients {
                if let Err(e) = slot.link.as_mut().expect("connected").go() {
                    failure = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failure {
            self.abort(connected);
            return Err(e);
        }
        let deadline = Instant::now() + client.duration + FINISH_SLACK;
        let mut parts = Vec::new();
        for i in 0..self.clients.len() {
            let link = self.clients[i].link.as_mut().expect("connected");
            match link.finish(deadline, stop) {
                Ok(Some(record)) => parts.push((link.label().to_string(), record)),
                Ok(None) => {
                    self.abort(self.clients.len());
                    return Ok(None);
                }
                Err(e) => {
                    self.abort(self.clients.len());
                    return Err(e);
                }
            }
        }
        Ok(Some(parts))
    }

    /// Ends the runs of the first `n` client hosts and collects (and drops) what they
    /// hand back, so no stale answer is read as the next point's; a host that does not
    /// answer in time is forgotten and its agent started afresh.
    fn abort(&mut self, n: usize) {
        for slot in self.clients.iter_mut().take(n) {
            if let Some(link) = slot.link.as_mut().filter(|l| !l.is_dead()) {
                link.abort();
                let never = AtomicBool::new(false);
                if link.finish(Instant::now() + ABORT_WAIT, &never).is_err() && link.is_dead() {
                    slot.link = None;
                }
            }
        }
    }

    /// Ends every session; each agent stops what it started.
    fn close(self) {
        for slot in std::iter::once(self.server).chain(self.clients) {
            if let Some(link) = slot.link {
                link.close();
            }
        }
    }
}

/// The client configuration every client host runs at `p` (the port comes from the
/// point's server).
fn point_config(config: &SweepConfig, p: Point) -> ClientConfig {
    let m = &config.matrix;
    ClientConfig {
        host: config.network.data_addr.clone(),
        backend: p.engine,
        mode: p.mode,
        size: p.size,
        threads: p.threads,
        duration: Duration::from_secs_f64(m.duration_s),
        workload: m.workload,
        depth: m.depth,
        counters: config.counters,
        cpus: placement(p),
        rx: p.rx,
        sqpoll: (p.polling == PollOpt::Sqpoll).then_some(SqPoll { cpu: None }),
        busy_poll_us: (p.polling == PollOpt::BusyPoll).then_some(BUSY_POLL_US),
        rate: p.rate.map(|r| host_rate(r, config.network.clients.len())),
        ..ClientConfig::default()
    }
}

/// Each client host's share of a point's rate: the point's rate is the total the server
/// sees, so `hosts` client hosts (fan-in) run a `1/hosts` share each, and their merged
/// record's request adds back up to it.
pub fn host_rate(rate: u64, hosts: usize) -> f64 {
    rate as f64 / hosts.max(1) as f64
}

/// The busy-poll budget both sides get under `--uring-opts busy-poll`, µs: what the
/// kernel's documentation suggests for low latency (net.core.busy_read = 50).
pub const BUSY_POLL_US: u32 = 50;

/// Both sides' CPUs at `p`: its placement policy (every point the sweep makes has one).
fn placement(p: Point) -> CpuSpec {
    p.placement.map_or_else(CpuSpec::default, CpuSpec::from)
}

fn new_meta(config: &SweepConfig, total: usize) -> Meta {
    Meta {
        schema_version: Some(FOLDER_VERSION),
        copyperf_version: Some(env!("CARGO_PKG_VERSION").into()),
        git_revision: git_revision(),
        command_line: Some(config.command_line.clone()),
        host: Some(hostname()),
        kernel: Some(engine::kernel_release()),
        cpu_model: Some(crate::summary::cpu_model()),
        cores: std::thread::available_parallelism().ok().map(|n| n.get()),
        memory_bytes: meminfo_total(),
        optmem_max: std::fs::read_to_string("/proc/sys/net/core/optmem_max")
            .ok()
            .and_then(|s| s.trim().parse().ok()),
        memlock_limit_bytes: Some(engine::memlock_limit()),
        uring_setup_flags: None,
        client_host: None,
        server_host: None,
        network: Some(config.network.kind()),
        server: Some(config.network.server.to_string()),
        clients: Some(
            config
                .network
                .clients
                .iter()
                .map(ToString::to_string)
                .collect(),
        ),
        data_addr: Some(config.network.data_addr.clone()),
        client_hosts: None,
        network_detail: Some(config.network.detail.clone()),
        counter_scope: Some(config.counters),
        matrix: Some(config.matrix.clone()),
        order_seed: Some(config.seed),
        started_at: Some(engine::rfc3339(SystemTime::now())),
        finished_at: None,
        points_total: Some(total),
        points_done: Some(0),
        skipped: Some(Vec::new()),
        failed: Some(Vec::new()),
        interrupted: Some(false),
    }
}

/// This machine's host name.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "host".into())
}

/// The checkout's revision, `-dirty` when tracked files differ from it.
pub fn git_revision() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let rev = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let dirty = std::process::Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .is_some_and(|o| !o.stdout.is_empty());
    Some(if dirty { format!("{rev}-dirty") } else { rev })
}

fn meminfo_total() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = s
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// The folder name for a run: `<date>-<HHMM>_<host>[_label]`, UTC.
pub fn folder_name(now: SystemTime, host: &str, label: Option<&str>) -> String {
    let stamp = engine::rfc3339(now); // 2026-11-24T19:35:04Z
    let date = format!("{}-{}{}", &stamp[..10], &stamp[11..13], &stamp[14..16]);
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .collect()
    };
    match label {
        Some(l) if !l.is_empty() => format!("{date}_{}_{}", clean(host), clean(l)),
        _ => format!("{date}_{}", clean(host)),
    }
}

/// Rewrites every file of the folder from what is known now.
pub fn write_all(dir: &Path, meta: &Meta, records: &[Record], matrix: &Matrix) -> Result<()> {
    let aggs = aggregate(records);
    write_file(dir, "results.csv", &results_csv(&aggs))?;
    write_file(dir, "perfstats.csv", &perfstats_csv(&aggs))?;
    for &size in &matrix.sizes {
        for &threads in &matrix.threads {
            let some: Vec<&Aggregate> = aggs
                .iter()
                .filter(|a| a.point.size == size && a.point.threads == threads)
                .collect();
            write_file(
                dir,
                &format!("{size}B_{threads}T.csv"),
                &results_rows(&some),
            )?;
        }
    }
    let mut jsonl = String::new();
    for r in records {
        jsonl.push_str(&engine::export::json_line(r));
        jsonl.push('\n');
    }
    write_file(dir, "records.jsonl", &jsonl)?;
    write_file(
        dir,
        "meta.json",
        &(serde_json::to_string_pretty(meta)? + "\n"),
    )?;
    Ok(())
}

/// Writes through a temporary file and a rename, so a reader never sees half a file.
fn write_file(dir: &Path, name: &str, text: &str) -> Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, dir.join(name)).with_context(|| format!("writing {name}"))?;
    Ok(())
}

/// One side's figures at a point: medians over repeats, `None` where never measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SideAgg {
    pub scope: Option<CounterScope>,
    pub cycles: Option<f64>,
    pub instructions: Option<f64>,
    pub l1d_load_misses: Option<f64>,
    pub llc_load_misses: Option<f64>,
    pub context_switches: Option<f64>,
    pub cpu_migrations: Option<f64>,
    pub page_faults: Option<f64>,
    pub task_clock_ns: Option<f64>,
    /// The side's own worker threads' user and system time.
    pub user_ns: Option<f64>,
    pub system_ns: Option<f64>,
    pub cycles_per_byte: Option<f64>,
    pub cpu_ns_per_byte: Option<f64>,
    pub context_switches_per_msg: Option<f64>,
    pub kernel_calls: Option<f64>,
    pub kernel_calls_per_msg: Option<f64>,
}

/// The machine's CPU figures at a point (the record's `system`): medians over repeats,
/// `None` where never measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SystemAgg {
    pub busy_ns: Option<f64>,
    pub irq_ns: Option<f64>,
    pub softirq_ns: Option<f64>,
    pub steal_ns: Option<f64>,
    pub capacity_ns: Option<f64>,
}

/// A point's figures: medians over its repeats, with the throughput spread.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    pub point: Point,
    pub workload: Workload,
    pub depth: usize,
    pub repeats: usize,
    pub throughput_gbps: f64,
    pub throughput_min: f64,
    pub throughput_max: f64,
    /// Bytes sent one way, Gbit/s (median).
    pub one_way_gbps: Option<f64>,
    /// Why the report keeps this point out of its answers (throughput first, then mean
    /// latency); `None` where it is fit.
    pub doubt: Option<String>,
    pub latency_mean_us: Option<f64>,
    pub latency_p50_us: Option<f64>,
    pub latency_p99_us: Option<f64>,
    pub bytes_sent: f64,
    pub bytes_received: f64,
    pub messages: f64,
    pub zc_copied_fraction: Option<f64>,
    /// Under `--rx zerocopy`: the share of received bytes the receiver mapped (median).
    pub rx_mapped_fraction: Option<f64>,
    /// Each side's TCP_INFO retransmitted segments (`total_retrans`, summed over its
    /// connections), and the client's mean smoothed RTT, µs: medians over repeats.
    pub client_retransmits: Option<f64>,
    pub server_retransmits: Option<f64>,
    pub client_srtt_us: Option<f64>,
    pub client: SideAgg,
    pub server: SideAgg,
    pub system: SystemAgg,
    /// Repeats behind the medians that carried at least one warning.
    pub warned: usize,
    /// The kinds of warning over all repeats, each once, in the order first seen.
    pub warnings: Vec<WarningKind>,
    /// Open loop (`--rate`): messages a second sent (median), the lowest share of the
    /// request any repeat achieved, messages held back (median) and the send lag's p99
    /// (median); `None` in a closed loop.
    pub rate_achieved: Option<f64>,
    pub rate_fraction_min: Option<f64>,
    pub held_back: Option<f64>,
    pub send_lag_p99_us: Option<f64>,
}

/// Median of what `f` gives over `records`, skipping missing values.
fn med(records: &[&Record], f: impl Fn(&Record) -> Option<f64>) -> Option<f64> {
    median(&records.iter().filter_map(|r| f(r)).collect::<Vec<_>>())
}

fn side_agg(records: &[&Record], side: impl Fn(&Record) -> Option<&engine::SideReport>) -> SideAgg {
    let c = |f: fn(&engine::counters::Counters) -> Option<u64>| {
        med(records, |r| {
            side(r)?.counters.as_ref().and_then(f).map(|v| v as f64)
        })
    };
    SideAgg {
        scope: records
            .iter()
            .find_map(|r| side(r).map(|s| s.counter_scope)),
        cycles: c(|x| x.cycles),
        instructions: c(|x| x.instructions),
        l1d_load_misses: c(|x| x.l1d_load_misses),
        llc_load_misses: c(|x| x.llc_load_misses),
        context_switches: c(|x| x.context_switches),
        cpu_migrations: c(|x| x.cpu_migrations),
        page_faults: c(|x| x.page_faults),
        task_clock_ns: c(|x| x.task_clock_ns),
        user_ns: med(records, |r| Some(side(r)?.own_cpu?.user_ns as f64)),
        system_ns: med(records, |r| Some(side(r)?.own_cpu?.system_ns as f64)),
        cycles_per_byte: med(records, |r| side(r)?.cycles_per_byte),
        cpu_ns_per_byte: med(records, |r| side(r)?.cpu_ns_per_byte),
        context_switches_per_msg: med(records, |r| side(r)?.context_switches_per_msg),
        kernel_calls: med(records, |r| Some(side(r)?.stats.io.kernel_calls() as f64)),
        kernel_calls_per_msg: med(records, |r| side(r)?.kernel_calls_per_msg),
    }
}

fn system_agg(records: &[&Record]) -> SystemAgg {
    let m = |f: fn(&engine::cputime::SystemCpu) -> u64| {
        med(records, |r| r.system.as_ref().map(|s| f(s) as f64))
    };
    SystemAgg {
        busy_ns: m(|s| s.total.busy_ns),
        irq_ns: m(|s| s.total.irq_ns),
        softirq_ns: m(|s| s.total.softirq_ns),
        steal_ns: m(|s| s.total.steal_ns),
        capacity_ns: m(|s| s.capacity_ns),
    }
}

/// Groups records by point (the report's grouping: by workload and depth, then by
/// point) and takes medians; rows in size, threads, engine, mode order.
pub fn aggregate(records: &[Record]) -> Vec<Aggregate> {
    let datasets = Dataset::split(records.to_vec(), None);
    let mut aggs: Vec<Aggregate> = datasets
        .iter()
        .flat_map(|d| d.points().map(move |p| (d, *p)))
        .map(|(d, p)| {
            let rs: Vec<&Record> = d.of(&p).collect();
            let tp = d.values(&p, Metric::Throughput);
            let (lo, hi) = range(&tp).unwrap_or((0.0, 0.0));
            Aggregate {
                point: p,
                workload: d.workload,
                depth: d.depth,
                repeats: rs.len(),
                throughput_gbps: median(&tp).unwrap_or(0.0),
                throughput_min: lo,
                throughput_max: hi,
                one_way_gbps: d.median(&p, Metric::OneWay),
                doubt: [Metric::Throughput, Metric::LatencyMean]
                    .iter()
                    .find_map(|m| d.measured(&p, *m).and_then(|x| x.doubt))
                    .map(|x| x.to_string()),
                latency_mean_us: med(&rs, |r| r.latency.map(|l| l.mean_us)),
                latency_p50_us: med(&rs, |r| r.latency.map(|l| l.p50_us)),
                latency_p99_us: med(&rs, |r| r.latency.map(|l| l.p99_us)),
                bytes_sent: med(&rs, |r| Some(r.summary.bytes_sent as f64)).unwrap_or(0.0),
                bytes_received: med(&rs, |r| Some(r.summary.bytes_received as f64)).unwrap_or(0.0),
                messages: med(&rs, |r| Some(r.summary.messages as f64)).unwrap_or(0.0),
                zc_copied_fraction: med(&rs, |r| r.client.zc_copied_fraction),
                rx_mapped_fraction: med(&rs, Record::rx_mapped_fraction),
                client_retransmits: med(&rs, |r| {
                    r.client.tcp_info?.total_retrans.map(|n| n as f64)
                }),
                server_retransmits: med(&rs, |r| {
                    r.server.as_ref()?.tcp_info?.total_retrans.map(|n| n as f64)
                }),
                client_srtt_us: med(&rs, |r| Some(r.client.tcp_info?.srtt_us?.mean)),
                client: side_agg(&rs, |r| Some(&r.client)),
                server: side_agg(&rs, |r| r.server.as_ref()),
                system: system_agg(&rs),
                warned: rs.iter().filter(|r| !r.warnings.is_empty()).count(),
                warnings: kinds(&rs),
                rate_achieved: med(&rs, |r| r.rate.as_ref().map(|x| x.achieved_per_s)),
                rate_fraction_min: rs
                    .iter()
                    .filter_map(|r| r.rate.as_ref().map(|x| x.achieved_fraction))
                    .reduce(f64::min),
                held_back: med(&rs, |r| r.rate.as_ref().map(|x| x.held_back as f64)),
                send_lag_p99_us: med(&rs, |r| {
                    r.rate.as_ref()?.send_lag.as_ref().map(|l| l.p99_us)
                }),
            }
        })
        .collect();
    aggs.sort_by_key(|a| {
        (
            a.point.size,
            a.point.threads,
            a.point.placement,
            a.point.engine,
            a.point.mode,
            a.point.rate,
        )
    });
    aggs
}

/// The kinds of warning `records` carry, each once, in the order first seen.
pub fn kinds(records: &[&Record]) -> Vec<WarningKind> {
    crate::unique(records.iter().flat_map(|r| &r.warnings).map(|w| w.kind))
}

/// Kinds `+`-joined, as the client's CSV `warnings` cell writes them; empty for none.
pub fn kinds_cell(kinds: &[WarningKind]) -> String {
    kinds
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join("+")
}

/// results.csv columns (README.md documents each).
pub const RESULTS_COLUMNS: [&str; 33] = [
    "Engine",
    "Implementation",
    "MessageSize",
    "Threads",
    "Workload",
    "Depth",
    "Repeats",
    "Throughput_Gbps",
    "Throughput_Min_Gbps",
    "Throughput_Max_Gbps",
    "Latency_us",
    "Latency_P50_us",
    "Latency_P99_us",
    "BytesSent",
    "BytesReceived",
    "Messages",
    "ZC_Copied_Fraction",
    // Last, so the seed's columns keep their places.
    "Warned_Repeats",
    "Warnings",
    "Placement",
    "Throughput_OneWay_Gbps",
    "Not_Judged_Because",
    "Rx",
    "Polling",
    "Rx_Mapped_Fraction",
    "Client_Retransmits",
    "Server_Retransmits",
    "Client_Srtt_Us",
    "Rate_Requested",
    "Rate_Achieved",
    "Rate_Achieved_Fraction_Min",
    "Held_Back",
    "Send_Lag_P99_us",
];

/// perfstats.csv columns (README.md documents each). A side's row fills the columns up to
/// `Kernel_Calls_per_Msg`; the point's `system` row only the point and the machine's
/// columns after them ([`MACHINE_COLUMNS`]).
pub const PERFSTATS_COLUMNS: [&str; 30] = [
    "Engine",
    "Implementation",
    "MessageSize",
    "Threads",
    "Side",
    "CounterScope",
    "Cycles",
    "Instructions",
    "L1_Misses",
    "LLC_Misses",
    "Context_Switches",
    "CPU_Migrations",
    "Page_Faults",
    "Task_Clock_ms",
    "User_ms",
    "System_ms",
    "Cycles_per_Byte",
    "CPU_ns_per_Byte",
    "Context_Switches_per_Msg",
    "Kernel_Calls",
    "Kernel_Calls_per_Msg",
    "Busy_ms",
    "Softirq_ms",
    "Irq_ms",
    "Steal_ms",
    "Capacity_ms",
    // Last, so every earlier column keeps its place.
    "Placement",
    "Rx",
    "Polling",
    "Rate_Requested",
];

/// The machine's columns in [`PERFSTATS_COLUMNS`], just before `Placement`: `Busy_ms` to
/// `Capacity_ms`.
pub const MACHINE_COLUMNS: usize = 5;

fn num(v: Option<f64>, digits: usize) -> String {
    v.map_or(String::new(), |x| format!("{x:.digits$}"))
}

fn csv_line(out: &mut String, cells: &[String]) {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    w.write_record(cells).expect("writing to memory");
    out.push_str(&String::from_utf8(w.into_inner().expect("flushed")).expect("utf-8"));
}

/// results.csv: one row per point, figures are medians over repeats.
pub fn results_csv(aggs: &[Aggregate]) -> String {
    results_rows(&aggs.iter().collect::<Vec<_>>())
}

fn results_rows(aggs: &[&Aggregate]) -> String {
    let mut s = String::new();
    csv_line(&mut s, &RESULTS_COLUMNS.map(String::from));
    for a in aggs {
        csv_line(
            &mut s,
            &[
                a.point.engine.to_string(),
                a.point.mode.to_string(),
                a.point.size.to_string(),
                a.point.threads.to_string(),
                a.workload.to_string(),
                a.depth.to_string(),
                a.repeats.to_string(),
                format!("{:.4}", a.throughput_gbps),
                format!("{:.4}", a.throughput_min),
                format!("{:.4}", a.throughput_max),
                num(a.latency_mean_us, 2),
                num(a.latency_p50_us, 2),
                num(a.latency_p99_us, 2),
                format!("{:.0}", a.bytes_sent),
                format!("{:.0}", a.bytes_received),
                format!("{:.0}", a.messages),
                num(a.zc_copied_fraction, 4),
                a.warned.to_string(),
                kinds_cell(&a.warnings),
                crate::results::placement_name(a.point.placement).into(),
                num(a.one_way_gbps, 4),
                a.doubt.clone().unwrap_or_default(),
                a.point.rx.to_string(),
                a.point.polling.to_string(),
                num(a.rx_mapped_fraction, 4),
                num(a.client_retransmits, 0),
                num(a.server_retransmits, 0),
                num(a.client_srtt_us, 1),
                a.point.rate.map_or(String::new(), |r| r.to_string()),
                num(a.rate_achieved, 1),
                num(a.rate_fraction_min, 4),
                num(a.held_back, 0),
                num(a.send_lag_p99_us, 2),
            ],
        );
    }
    s
}

/// perfstats.csv: per point, one row per side and one for the machine (`system`); empty
/// cells are figures not measured, or not the row's.
pub fn perfstats_csv(aggs: &[Aggregate]) -> String {
    let mut s = String::new();
    csv_line(&mut s, &PERFSTATS_COLUMNS.map(String::from));
    let count = |v: Option<f64>| num(v, 0);
    let ms = |v: Option<f64>| num(v.map(|ns| ns / 1e6), 3);
    let width = PERFSTATS_COLUMNS.len() - 4; // before Placement, Rx, Polling and Rate
    for a in aggs {
        let point = [
            a.point.engine.to_string(),
            a.point.mode.to_string(),
            a.point.size.to_string(),
            a.point.threads.to_string(),
        ];
        let placement = crate::results::placement_name(a.point.placement).to_owned();
        let tail = [
            placement,
            a.point.rx.to_string(),
            a.point.polling.to_string(),
            a.point.rate.map_or(String::new(), |r| r.to_string()),
        ];
        // A side's row: the machine's cells are empty.
        for (side, x) in [("client", &a.client), ("server", &a.server)] {
            let mut row: Vec<String> = point.to_vec();
            row.extend([
                side.into(),
                x.scope.map_or(String::new(), |s| s.to_string()),
                count(x.cycles),
                count(x.instructions),
                count(x.l1d_load_misses),
                count(x.llc_load_misses),
                count(x.context_switches),
                count(x.cpu_migrations),
                count(x.page_faults),
                ms(x.task_clock_ns),
                ms(x.user_ns),
                ms(x.system_ns),
                num(x.cycles_per_byte, 3),
                num(x.cpu_ns_per_byte, 3),
                num(x.context_switches_per_msg, 3),
                count(x.kernel_calls),
                num(x.kernel_calls_per_msg, 3),
            ]);
            row.resize(width, String::new());
            row.extend(tail.iter().cloned());
            csv_line(&mut s, &row);
        }
        // The machine's row: only its own cells are filled.
        let m = &a.system;
        let mut row: Vec<String> = point.to_vec();
        row.push("system".into());
        row.resize(width - MACHINE_COLUMNS, String::new());
        row.extend([
            ms(m.busy_ns),
            ms(m.softirq_ns),
            ms(m.irq_ns),
            ms(m.steal_ns),
            ms(m.capacity_ns),
        ]);
        row.extend(tail);
        csv_line(&mut s, &row);
    }
    s
}

/// The progress line for one point.
pub fn point_line(
    done: usize,
    total: usize,
    point: &Point,
    outcome: &Result<&Record, String>,
    eta: Option<Duration>,
) -> String {
    let width = total.to_string().len();
    let mut s = format!(
        "[{done:>width$}/{total}] {:<7} {:<8} {:>4} x{:<2} {:<8} ",
        point.engine.as_str(),
        point.mode.as_str(),
        format_size(point.size),
        point.threads,
        crate::results::placement_name(point.placement)
    );
    if point.rx != engine::RxMode::Copy {
        let _ = write!(s, "rx {:<9}", point.rx.as_str());
    }
    if point.polling != PollOpt::Plain {
        let _ = write!(s, "{:<10}", point.polling.as_str());
    }
    if let Some(rate) = point.rate {
        let _ = write!(s, "{:<9}", format!("{}/s", crate::results::rate_name(rate)));
    }
    match outcome {
        Ok(r) => {
            let _ = write!(s, "{:8.3} Gbit/s", r.summary.throughput_gbps);
            if let Some(l) = r.latency {
                let _ = write!(s, ", {:8.1} µs mean", l.mean_us);
                if r.rate.is_some() {
                    let _ = write!(s, ", {:.1} µs p99", l.p99_us);
                }
            }
            if let Some(x) = &r.rate {
                let _ = write!(s, ", {:.1}% of rate", x.achieved_fraction * 100.0);
                if x.held_back > 0 {
                    let _ = write!(s, " ({} held back)", x.held_back);
                }
            }
            if let Some(c) = r.client.cpu_ns_per_byte {
                let _ = write!(s, ", {c:.2} CPU-ns/B");
            }
            if let Some(f) = r.client.zc_copied_fraction {
                let _ = write!(s, ", {:.0}% copied", f * 100.0);
            }
            if r.summary.verify_errors > 0 {
                let _ = write!(s, ", {} VERIFY ERRORS", r.summary.verify_errors);
            }
        }
        Err(e) => {
            let _ = write!(s, "FAILED: {e}");
        }
    }
    if let Some(eta) = eta {
        let secs = eta.as_secs();
        let _ = write!(s, "  (ETA {}m{:02}s)", secs / 60, secs % 60);
    }
    s
}

/// The lines printed under a point's progress line, one per warning its record carries:
/// the user sees a doubtful point as it finishes, with what to do, not only in report.md.
pub fn warning_lines(r: &Record) -> Vec<String> {
    r.warnings
        .iter()
        .map(|w| format!("  warning ({}): {}", w.kind.as_str(), w.text))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{record, warn};
    use engine::placement::PlacementPolicy;
    use engine::Mode;

    fn matrix() -> Matrix {
        Matrix {
            engines: vec![Backend::Syscall, Backend::Uring],
            modes: vec![Mode::TwoCopy, Mode::OneCopy, Mode::Zc, Mode::ZcFixed],
            sizes: vec![1024, 4096, 16384, 65536],
            threads: vec![1, 2, 4, 8],
            workload: Workload::Echo,
            depth: 1,
            duration_s: 3.0,
            repeats: 1,
            placements: vec![PlacementPolicy::Split],
            rx: Vec::new(),
            polling: Vec::new(),
            rates: Vec::new(),
        }
    }

    #[test]
    fn the_default_matrix_is_48_points_per_engine_plus_zc_fixed() {
        let points = matrix().points();
        let per = |e| points.iter().filter(|p| p.engine == e).count();
        assert_eq!(per(Backend::Syscall), 48);
        assert_eq!(per(Backend::Uring), 64, "48 + 16 zc-fixed");
        assert!(!points
            .iter()
            .any(|p| p.engine == Backend::Syscall && p.mode == Mode::ZcFixed));
    }

    #[test]
    fn receive_paths_and_polling_multiply_the_points_and_sqpoll_is_uring_only() {
        let mut m = matrix();
        m.rx = vec![engine::RxMode::Copy, engine::RxMode::Discard];
        m.polling = vec![PollOpt::Plain, PollOpt::Sqpoll];
        let points = m.points();
        // Per size × threads: syscall 3 modes + uring 4, × 2 receive paths, plain; uring
        // alone again under sqpoll.
        assert_eq!(points.len(), 16 * (7 * 2 + 4 * 2));
        assert!(points
            .iter()
            .filter(|p| p.polling == PollOpt::Sqpoll)
            .all(|p| p.engine == Backend::Uring));
        let p = points
            .iter()
            .find(|p| p.rx == engine::RxMode::Discard && p.polling == PollOpt::Sqpoll)
            .unwrap();
        assert!(p.to_string().ends_with(" rx discard sqpoll"), "{p}");
        assert_eq!(matrix().points().len(), 16 * 7, "the default adds nothing");
    }

    #[test]
    fn placements_multiply_the_points() {
        let mut m = matrix();
        m.placements = vec![PlacementPolicy::Paired, PlacementPolicy::Split];
        let points = m.points();
        assert_eq!(points.len(), 2 * 112);
        assert_eq!(
            points
                .iter()
                .filter(|p| p.placement == Some(PlacementPolicy::Paired))
                .count(),
            112
        );
    }

    #[test]
    fn every_round_runs_every_point_once_in_its_own_order() {
        let points = matrix().points();
        let mut sorted = points.clone();
        sorted.sort();
        let orders: Vec<Vec<Point>> = (0..3).map(|r| round_order(&points, 42, r)).collect();
        for o in &orders {
            let mut s = o.clone();
            s.sort();
            assert_eq!(s, sorted, "a permutation of the points");
        }
        assert_ne!(orders[0], orders[1]);
        assert_ne!(orders[1], orders[2]);
        assert_ne!(orders[0], points, "shuffled, not the matrix order");
        assert_eq!(
            round_order(&points, 42, 1),
            orders[1],
            "the seed repeats it"
        );
        assert_ne!(round_order(&points, 43, 1), orders[1]);
    }

    #[test]
    fn repeats_collapse_to_medians_with_spread() {
        let rs = vec![
            record(Backend::Syscall, Mode::TwoCopy, 1024, 1, 1.0),
            record(Backend::Syscall, Mode::TwoCopy, 1024, 1, 3.0),
            record(Backend::Syscall, Mode::TwoCopy, 1024, 1, 2.0),
            record(Backend::Uring, Mode::TwoCopy, 1024, 1, 5.0),
        ];
        let aggs = aggregate(&rs);
        assert_eq!(aggs.len(), 2);
        assert_eq!(aggs[0].repeats, 3);
        assert_eq!(aggs[0].throughput_gbps, 2.0);
        assert_eq!((aggs[0].throughput_min, aggs[0].throughput_max), (1.0, 3.0));
        assert_eq!(aggs[1].point.engine, Backend::Uring);
    }

    #[test]
    fn csv_files_carry_the_documented_columns_and_empty_missing_cells() {
        let mut r = record(Backend::Syscall, Mode::Zc, 4096, 2, 1.5);
        r.client.counters.as_mut().unwrap().cycles = None;
        r.latency = None;
        let aggs = aggregate(&[r]);
        let text = results_csv(&aggs);
        let mut rd = csv::Reader::from_reader(text.as_bytes());
        assert_eq!(
            rd.headers().unwrap().iter().collect::<Vec<_>>(),
            RESULTS_COLUMNS
        );
        let row = rd.records().next().unwrap().unwrap();
        assert_eq!(&row[0], "syscall");
        assert_eq!(&row[1], "zc");
        assert_eq!(&row[7], "1.5000");
        assert_eq!(&row[10], "", "no latency: empty, not 0");
        // TCP_INFO's columns come last, after every earlier one.
        let at = |name: &str| RESULTS_COLUMNS.iter().position(|c| *c == name).unwrap();
        assert_eq!(at("Client_Retransmits"), 25);
        assert_eq!(&row[at("Client_Retransmits")], "1");
        assert_eq!(&row[at("Server_Retransmits")], "1");
        assert_eq!(&row[at("Client_Srtt_Us")], "35.0");
        let mut unread = record(Backend::Syscall, Mode::Zc, 4096, 2, 1.5);
        unread.client.tcp_info = None;
        let text = results_csv(&aggregate(&[unread]));
        let mut rd = csv::Reader::from_reader(text.as_bytes());
        let row = rd.records().next().unwrap().unwrap();
        assert_eq!(&row[at("Client_Retransmits")], "", "not read: empty, not 0");
        assert_eq!(&row[at("Client_Srtt_Us")], "");
        assert_eq!(&row[at("Server_Retransmits")], "1");
        let text = perfstats_csv(&aggs);
        let mut rd = csv::Reader::from_reader(text.as_bytes());
        assert_eq!(
            rd.headers().unwrap().iter().collect::<Vec<_>>(),
            PERFSTATS_COLUMNS
        );
        let rows: Vec<_> = rd.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 3, "client, server and the machine");
        assert_eq!(&rows[0][4], "client");
        assert_eq!(&rows[0][6], "", "cycles missing: empty, not 0");
        assert_ne!(&rows[0][10], "");
    }

    #[test]
    fn perfstats_has_each_sides_own_cpu_and_one_machine_row() {
        let mut r = record(Backend::Uring, Mode::OneCopy, 4096, 1, 1.5);
        let mut no_machine = record(Backend::Uring, Mode::OneCopy, 1024, 1, 1.5);
        no_machine.system = None;
        let server = r.server.as_mut().unwrap();
        server.own_cpu.as_mut().unwrap().system_ns = 5_000_000;
        let text = perfstats_csv(&aggregate(&[r, no_machine]));
        let mut rd = csv::Reader::from_reader(text.as_bytes());
        let cols = rd.headers().unwrap().clone();
        assert_eq!(
            cols[cols.len() - 4 - MACHINE_COLUMNS].to_string(),
            "Busy_ms"
        );
        assert_eq!(
            cols.iter().rev().take(4).collect::<Vec<_>>(),
            ["Rate_Requested", "Polling", "Rx", "Placement"],
            "every row ends with what sets its point apart"
        );
        assert!(
            !cols.iter().any(|c| c == "CPU_Busy_ms"),
            "no per-side busy time"
        );
        let rows: Vec<_> = rd.records().map(Result::unwrap).collect();
        let at = |row: usize, name: &str| {
            rows[row][cols.iter().position(|c| c == name).unwrap()].to_string()
        };
        let sides: Vec<String> = (0..rows.len()).map(|i| at(i, "Side")).collect();
        assert_eq!(
            sides,
            ["client", "server", "system", "client", "server", "system"]
        );
        // 1024 B first: its machine row has no figures, empty rather than 0.
        for c in ["Busy_ms", "Softirq_ms", "Irq_ms", "Steal_ms", "Capacity_ms"] {
            assert_eq!(at(2, c), "", "{c}");
        }
        // The example's own time: 1 ms user, 2.5 ms system (its SQ thread's 0.5 ms in
        // it; the server's now 5 ms).
        assert_eq!(
            (at(3, "User_ms"), at(3, "System_ms")),
            ("1.000".into(), "2.500".into())
        );
        assert_eq!(at(4, "System_ms"), "5.000");
        assert_eq!(at(3, "CPU_ns_per_Byte"), format!("{:.3}", 3.5e6 / 8192.0));
        assert_eq!(at(3, "Busy_ms"), "", "the machine's figure is not a side's");
        // The example machine: 2 CPUs for 1 s, 400 ms busy, 40 softirq, 10 irq, 10 steal.
        assert_eq!(at(5, "Busy_ms"), "400.000");
        assert_eq!(at(5, "Softirq_ms"), "40.000");
        assert_eq!(at(5, "Irq_ms"), "10.000");
        assert_eq!(at(5, "Steal_ms"), "10.000");
        assert_eq!(at(5, "Capacity_ms"), "2000.000");
        for c in ["CounterScope", "User_ms", "CPU_ns_per_Byte", "Kernel_Calls"] {
            assert_eq!(at(5, c), "", "{c} is not the machine's");
        }
        // Every row says which placement its point ran under.
        for row in 0..rows.len() {
            assert_eq!(at(row, "Placement"), "split", "row {row}");
        }
    }

    const STALL: &str = "no message completed for 0.500 s of this 3.000 s run (17%): a stall \
                         distorts every figure; rerun it, longer or on a quieter machine";

    #[test]
    fn a_warned_point_shows_its_warnings_under_its_progress_line() {
        let r = warn(
            record(Backend::Uring, Mode::Zc, 4096, 2, 1.5),
            WarningKind::Stall,
            STALL,
        );
        let p = point_of(&r);
        let line = point_line(3, 10, &p, &Ok(&r), None);
        assert!(
            line.starts_with("[ 3/10] uring   zc         4K x2  split    "),
            "{line}"
        );
        assert_eq!(
            warning_lines(&r),
            vec![format!("  warning (stall): {STALL}")]
        );
        let r = warn(r, WarningKind::BelowOwnRate, "slowed down");
        assert_eq!(
            warning_lines(&r)[1],
            "  warning (below-own-rate): slowed down"
        );
        let clean = record(Backend::Uring, Mode::Zc, 4096, 2, 1.5);
        assert!(warning_lines(&clean).is_empty());
    }

    #[test]
    fn results_csv_counts_the_warned_repeats_and_names_their_kinds() {
        let stalled = warn(
            record(Backend::Syscall, Mode::TwoCopy, 1024, 1, 1.0),
            WarningKind::Stall,
            STALL,
        );
        let both = warn(
            warn(
                record(Backend::Syscall, Mode::TwoCopy, 1024, 1, 2.0),
                WarningKind::Fallback,
                "ran without DEFER_TASKRUN",
            ),
            WarningKind::Stall,
            STALL,
        );
        let rs = vec![
            stalled,
            both,
            record(Backend::Syscall, Mode::TwoCopy, 1024, 1, 3.0),
            record(Backend::Uring, Mode::TwoCopy, 1024, 1, 5.0),
        ];
        let aggs = aggregate(&rs);
        assert_eq!(aggs[0].warned, 2);
        assert_eq!(
            aggs[0].warnings,
            [WarningKind::Stall, WarningKind::Fallback]
        );
        let text = results_csv(&aggs);
        let mut rd = csv::Reader::from_reader(text.as_bytes());
        let cols = rd.headers().unwrap().clone();
        let at = |name: &str| cols.iter().position(|c| c == name).unwrap();
        let rows: Vec<_> = rd.records().map(Result::unwrap).collect();
        assert_eq!(&rows[0][at("Repeats")], "3");
        assert_eq!(&rows[0][at("Warned_Repeats")], "2");
        assert_eq!(&rows[0][at("Warnings")], "stall+fallback");
        assert_eq!(&rows[1][at("Warned_Repeats")], "0");
        assert_eq!(&rows[1][at("Warnings")], "", "no warning: empty");
        assert_eq!(&rows[0][at("Placement")], "split");
        assert_eq!(&rows[0][at("Throughput_OneWay_Gbps")], "1.0000");
        assert_eq!(
            &rows[0][at("Not_Judged_Because")],
            "2 run(s) carried warnings"
        );
        assert_eq!(
            &rows[1][at("Not_Judged_Because")],
            "one run, spread unknown"
        );
    }

    #[test]
    fn kinds_are_spelled_as_the_records_spell_them() {
        assert_eq!(WarningKind::BelowOwnRate.as_str(), "below-own-rate");
        assert_eq!(
            serde_json::to_value(WarningKind::VerifyErrors).unwrap(),
            "verify-errors"
        );
        assert_eq!(
            kinds_cell(&[WarningKind::Interrupted, WarningKind::Stall]),
            "interrupted+stall"
        );
        assert_eq!(kinds_cell(&[]), "");
    }

    #[test]
    fn rate_points_show_their_rate_and_fill_the_rate_columns_at_the_end() {
        use crate::testing::at_rate;
        let rs = vec![
            at_rate(
                record(Backend::Uring, Mode::Zc, 4096, 2, 1.5),
                20_000,
                19_800.0,
                10.0,
                30.0,
            ),
            at_rate(
                record(Backend::Uring, Mode::Zc, 4096, 2, 1.5),
                20_000,
                20_000.0,
                11.0,
                31.0,
            ),
            at_rate(
                record(Backend::Uring, Mode::Zc, 4096, 2, 1.5),
                20_000,
                19_000.0,
                12.0,
                32.0,
            ),
            at_rate(
                record(Backend::Uring, Mode::Zc, 4096, 2, 1.5),
                5000,
                5000.0,
                9.0,
                20.0,
            ),
            record(Backend::Uring, Mode::Zc, 4096, 2, 1.5),
        ];
        let aggs = aggregate(&rs);
        assert_eq!(aggs.len(), 3, "closed loop and two rates apart");
        let text = results_csv(&aggs);
        let mut rd = csv::Reader::from_reader(text.as_bytes());
        let cols = rd.headers().unwrap().clone();
        // Every earlier column keeps its place: the rate's come after Client_Srtt_Us.
        assert_eq!(cols.iter().position(|c| c == "Client_Srtt_Us"), Some(27));
        assert_eq!(
            cols.iter().skip(28).collect::<Vec<_>>(),
            [
                "Rate_Requested",
                "Rate_Achieved",
                "Rate_Achieved_Fraction_Min",
                "Held_Back",
                "Send_Lag_P99_us"
            ]
        );
        let rows: Vec<_> = rd.records().map(Result::unwrap).collect();
        let at = |row: usize, name: &str| {
            rows[row][cols.iter().position(|c| c == name).unwrap()].to_string()
        };
        // Closed loop first, then the rates ascending; empty cells where no rate ran.
        for c in [
            "Rate_Requested",
            "Rate_Achieved",
            "Held_Back",
            "Send_Lag_P99_us",
        ] {
            assert_eq!(at(0, c), "", "{c}");
        }
        assert_eq!(at(1, "Rate_Requested"), "5000");
        assert_eq!(at(2, "Rate_Requested"), "20000");
        assert_eq!(at(2, "Repeats"), "3");
        assert_eq!(at(2, "Rate_Achieved"), "19800.0", "the median");
        assert_eq!(at(2, "Rate_Achieved_Fraction_Min"), "0.9500", "the lowest");
        assert_eq!(at(2, "Held_Back"), "0");
        assert_eq!(at(2, "Send_Lag_P99_us"), "2.00");
        assert_eq!(at(2, "Latency_P99_us"), "31.00");
        let perf = perfstats_csv(&aggs);
        let mut rd = csv::Reader::from_reader(perf.as_bytes());
        let last = rd.headers().unwrap().len() - 1;
        let rates: Vec<String> = rd.records().map(|r| r.unwrap()[last].to_string()).collect();
        assert_eq!(
            rates,
            ["", "", "", "5000", "5000", "5000", "20000", "20000", "20000"]
        );

        let line = point_line(1, 9, &point_of(&rs[0]), &Ok(&rs[0]), None);
        assert!(
            line.starts_with("[1/9] uring   zc         4K x2  split    20k/s       1.500 Gbit/s"),
            "{line}"
        );
        assert!(line.contains("30.0 µs p99, 99.0% of rate"), "{line}");
        let closed = point_line(1, 9, &point_of(&rs[4]), &Ok(&rs[4]), None);
        assert!(
            !closed.contains("k/s") && !closed.contains("of rate"),
            "{closed}"
        );
    }

    /// A sweep of `m` on this host, writing into `dir`.
    fn loopback_config(m: &Matrix, dir: PathBuf) -> SweepConfig {
        SweepConfig {
            matrix: m.clone(),
            network: Network {
                server: HostSpec::Local,
                clients: vec![HostSpec::Local],
                data_addr: "127.0.0.1".into(),
                detail: "loopback".into(),
            },
            reach: Reach::default(),
            counters: CounterScope::Thread,
            port: 0,
            seed: 7,
            dir,
            command_line: "test".into(),
        }
    }

    #[test]
    fn a_point_runs_its_rate_as_the_total_of_its_client_hosts() {
        let mut m = matrix();
        m.rates = vec![6000];
        m.depth = engine::config::RATE_DEPTH;
        let mut config = loopback_config(&m, PathBuf::from("unused"));
        let p = m.points()[0];
        assert_eq!(p.rate, Some(6000));
        let c = point_config(&config, p);
        assert_eq!((c.rate, c.depth), (Some(6000.0), 64));
        c.validate().expect("an open-loop echo point is valid");
        // Fan-in: three hosts, a third each, so the server sees the point's rate.
        config.network.clients = vec![
            HostSpec::Local,
            HostSpec::Netns("a".into()),
            HostSpec::Netns("b".into()),
        ];
        assert_eq!(point_config(&config, p).rate, Some(2000.0));
        // What travels to every kind of host: the configuration as JSON, rate in it.
        let json = serde_json::to_string(&point_config(&config, p)).unwrap();
        let back: ClientConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back.rate, Some(2000.0));
        let closed = point_config(
            &config,
            Point::new(Backend::Syscall, Mode::TwoCopy, 1024, 1),
        );
        assert_eq!(closed.rate, None);
    }

    #[test]
    fn folder_names_are_dated_and_clean() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_771_459_200 + 3661);
        assert_eq!(folder_name(t, "vm", None), "2026-02-19-0101_vm");
        assert_eq!(
            folder_name(t, "my host", Some("run/1")),
            "2026-02-19-0101_my-host_run-1"
        );
    }

    #[test]
    fn files_are_written_and_rewritten() {
        let dir = std::env::temp_dir().join(format!("copyperf-sweep-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut m = matrix();
        m.sizes = vec![1024];
        m.threads = vec![1, 2];
        let config = loopback_config(&m, dir.clone());
        let meta = new_meta(&config, 2);
        let rs = vec![record(Backend::Syscall, Mode::TwoCopy, 1024, 1, 1.0)];
        write_all(&dir, &meta, &rs, &m).unwrap();
        for f in [
            "results.csv",
            "perfstats.csv",
            "1024B_1T.csv",
            "1024B_2T.csv",
            "records.jsonl",
            "meta.json",
        ] {
            assert!(dir.join(f).exists(), "{f}");
        }
        let back: Meta =
            serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json")).unwrap()).unwrap();
        assert_eq!(back, meta);
        assert_eq!(
            std::fs::read_to_string(dir.join("records.jsonl"))
                .unwrap()
                .lines()
                .count(),
            1
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("1024B_2T.csv"))
                .unwrap()
                .lines()
                .count(),
            1,
            "header only"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
