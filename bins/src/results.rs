//! The results model the sweep writes and the report (and compare) read: the matrix and
//! its points, the run's `meta.json`, and the one way repeats become a figure (median and
//! spread). One type per file, written and read alike; fields a folder of an older
//! version may lack read as unknown (`None`), never as a guess.

use engine::config::format_size;
use engine::placement::PlacementPolicy;
use engine::{Backend, CounterScope, Mode, PollOpt, Record, RxMode, Workload};
use serde::{Deserialize, Serialize};

/// Version of the folder layout (files, columns, meta.json fields).
pub const FOLDER_VERSION: u32 = 2;

/// What to measure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Matrix {
    pub engines: Vec<Backend>,
    pub modes: Vec<Mode>,
    pub sizes: Vec<usize>,
    pub threads: Vec<usize>,
    pub workload: Workload,
    pub depth: usize,
    pub duration_s: f64,
    pub repeats: usize,
    /// Placement policies, each applied to both sides at every thread count; empty in
    /// folders from before placement policies (their points ran under the old `auto`).
    #[serde(default)]
    pub placements: Vec<PlacementPolicy>,
    /// Receive paths (`--rx`), each a dimension of the matrix; empty in folders from
    /// before them (every point received by copying).
    #[serde(default)]
    pub rx: Vec<RxMode>,
    /// Polling options (`--uring-opts`), each a dimension of the matrix; empty in folders
    /// from before them (plain).
    #[serde(default)]
    pub polling: Vec<PollOpt>,
    /// Open-loop rates (`--rates`), messages a second in all, each a dimension of the
    /// matrix (echo only); empty for a closed-loop sweep, and in folders from before them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rates: Vec<u64>,
}

/// One point of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Point {
    pub engine: Backend,
    pub mode: Mode,
    pub size: usize,
    pub threads: usize,
    /// Where both sides' threads ran; `None` for a record whose CPUs were a list or the
    /// old `auto` plan, which is no one policy.
    pub placement: Option<PlacementPolicy>,
    /// How the receiving side took the bytes off its socket (`--rx`).
    pub rx: RxMode,
    /// What both sides added to avoid syscalls and wake-ups (`--uring-opts`).
    pub polling: PollOpt,
    /// The open-loop rate (`--rate`), messages a second over all the point's client hosts;
    /// `None`: closed loop (and every point of a folder from before rates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<u64>,
}

impl Point {
    /// A point under the default placement (`split`).
    pub fn new(engine: Backend, mode: Mode, size: usize, threads: usize) -> Point {
        Point {
            engine,
            mode,
            size,
            threads,
            placement: Some(PlacementPolicy::Split),
            rx: RxMode::Copy,
            polling: PollOpt::Plain,
            rate: None,
        }
    }
}

/// A rate as the reports and the progress lines write it: `5k`, `1.5M`, `2500` (messages
/// a second), the way `--rate` and `--rates` take it.
pub fn rate_name(r: u64) -> String {
    if r >= 1_000_000 && r % 100_000 == 0 {
        format!("{}M", trimmed(r as f64 / 1e6))
    } else if r >= 1000 && r % 100 == 0 {
        format!("{}k", trimmed(r as f64 / 1e3))
    } else {
        r.to_string()
    }
}

/// A measured rate (messages a second) to three significant digits: `4.99k`, `1.02M`, `850`.
pub fn rate_figure(v: f64) -> String {
    let (x, unit) = if v >= 1e6 {
        (v / 1e6, "M")
    } else if v >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let digits = if x >= 100.0 {
        0
    } else if x >= 10.0 {
        1
    } else {
        2
    };
    let text = format!("{x:.digits$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    };
    format!("{text}{unit}")
}

/// `1.5` for 1.5, `2` for 2.0.
fn trimmed(x: f64) -> String {
    let text = format!("{x:.1}");
    text.strip_suffix(".0").map_or(text.clone(), str::to_owned)
}

/// A placement as reports name it: the policy, or `auto/list` for none.
pub fn placement_name(p: Option<PlacementPolicy>) -> &'static str {
    p.map_or("auto/list", PlacementPolicy::as_str)
}

impl std::fmt::Display for Point {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {} x{} {}",
            self.engine,
            self.mode,
            format_size(self.size),
            self.threads,
            placement_name(self.placement)
        )?;
        if self.rx != RxMode::Copy {
            write!(f, " rx {}", self.rx)?;
        }
        if self.polling != PollOpt::Plain {
            write!(f, " {}", self.polling)?;
        }
        if let Some(r) = self.rate {
            write!(f, " at {}/s", rate_name(r))?;
        }
        Ok(())
    }
}

impl Matrix {
    /// The receive paths the points run (copy where none was asked).
    pub fn rx_paths(&self) -> Vec<RxMode> {
        if self.rx.is_empty() {
            vec![RxMode::Copy]
        } else {
            self.rx.clone()
        }
    }

    /// The polling options the points run (plain where none was asked).
    pub fn polling_opts(&self) -> Vec<PollOpt> {
        if self.polling.is_empty() {
            vec![PollOpt::Plain]
        } else {
            self.polling.clone()
        }
    }

    /// The rates the points run: each of `rates` (echo only), or closed loop (`None`)
    /// where none was asked.
    pub fn rate_points(&self) -> Vec<Option<u64>> {
        if self.rates.is_empty() || self.workload != Workload::Echo {
            vec![None]
        } else {
            self.rates.iter().copied().map(Some).collect()
        }
    }

    /// The points, size by size, thread count by thread count, placement by placement,
    /// receive path by receive path, rate by rate. Modes an engine lacks (zc-fixed on
    /// syscall) are left out. The sweep runs them in a new shuffled order every round.
    pub fn points(&self) -> Vec<Point> {
        let mut v = Vec::new();
        for &size in &self.sizes {
            for &threads in &self.threads {
                for &placement in &self.placements {
                    for rx in self.rx_paths() {
                        for polling in self.polling_opts() {
                            for rate in self.rate_points() {
                                for &engine in &self.engines {
                                    for &mode in &self.modes {
                                        // SQPOLL is io_uring's: no syscall point has it.
                                        let runs = mode.supported_on(engine)
                                            && (polling != PollOpt::Sqpoll
                                                || engine == Backend::Uring);
                                        if runs {
                                            v.push(Point {
                                                engine,
                                                mode,
                                                size,
                                                threads,
                                                placement: Some(placement),
                                                rx,
                                                polling,
                                                rate,
                                            });
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        v
    }
}

/// The point a record measured.
pub fn point_of(r: &Record) -> Point {
    Point {
        engine: r.config.backend,
        mode: r.config.mode,
        size: r.config.size,
        threads: r.config.threads,
        placement: r.config.cpus.policy(),
        rx: r.config.rx,
        polling: poll_opt_of(&r.config),
        rate: rate_of(r),
    }
}

/// The open-loop rate a record ran at, messages a second over all its client hosts: its
/// rate section's request (a merged record's is the hosts' sum), else its configuration's.
pub fn rate_of(r: &Record) -> Option<u64> {
    r.rate
        .as_ref()
        .map(|x| x.requested_per_s)
        .or(r.config.rate)
        .map(|x| x.round() as u64)
}

/// `, rx discard, sqpoll`: what a receive path and polling option add to a label, each
/// left out where it is the default (copy, plain).
pub fn path_extras(rx: RxMode, polling: PollOpt) -> String {
    let mut s = String::new();
    if rx != RxMode::Copy {
        s += &format!(", rx {rx}");
    }
    if polling != PollOpt::Plain {
        s += &format!(", {polling}");
    }
    s
}

/// The polling option a client configuration ran under.
pub fn poll_opt_of(c: &engine::ClientConfig) -> PollOpt {
    if c.sqpoll.is_some() {
        PollOpt::Sqpoll
    } else if c.busy_poll_us.is_some() {
        PollOpt::BusyPoll
    } else {
        PollOpt::Plain
    }
}

/// A point that was not measured, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    pub engine: Backend,
    pub mode: Mode,
    pub size: usize,
    pub threads: usize,
    /// Absent in folders from before placement policies.
    #[serde(default)]
    pub placement: Option<PlacementPolicy>,
    /// The receive path and polling option, where not the default (absent in older
    /// folders: copy, plain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rx: Option<RxMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub polling: Option<PollOpt>,
    /// The open-loop rate, messages a second (absent: closed loop).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<u64>,
    pub reason: String,
}

impl Skipped {
    /// `p`, not measured for `reason`.
    pub fn new(p: &Point, reason: String) -> Skipped {
        Skipped {
            engine: p.engine,
            mode: p.mode,
            size: p.size,
            threads: p.threads,
            placement: p.placement,
            rx: (p.rx != RxMode::Copy).then_some(p.rx),
            polling: (p.polling != PollOpt::Plain).then_some(p.polling),
            rate: p.rate,
            reason,
        }
    }

    /// `syscall zc 64K ×2`, and the placement, receive path and polling where known.
    pub fn point(&self) -> String {
        let placement = self.placement.map_or(String::new(), |p| format!(" {p}"));
        let rx = self.rx.map_or(String::new(), |r| format!(" rx {r}"));
        let polling = self.polling.map_or(String::new(), |p| format!(" {p}"));
        let rate = self
            .rate
            .map_or(String::new(), |r| format!(" at {}/s", rate_name(r)));
        format!(
            "{} {} {} ×{}{placement}{rx}{polling}{rate}",
            self.engine,
            self.mode,
            format_size(self.size),
            self.threads
        )
    }
}

/// A point whose measurement failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failed {
    pub point: String,
    /// Which repeat failed; absent in some older folders.
    #[serde(default)]
    pub repeat: Option<usize>,
    pub error: String,
}

impl Failed {
    /// The point and, where known, the repeat, in one line.
    pub fn point(&self) -> String {
        match self.repeat {
            Some(r) => format!("{} (repeat {r})", self.point),
            None => self.point.clone(),
        }
    }
}

/// `meta.json`: the machine, the network, the matrix, and how far the run got. The sweep
/// fills every field; a field missing from an older folder reads as `None` (unknown).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Meta {
    pub schema_version: Option<u32>,
    pub copyperf_version: Option<String>,
    pub git_revision: Option<String>,
    pub command_line: Option<String>,
    /// The controller's machine (where the sweep ran) from here to `memlock_limit_bytes`;
    /// each side's own host is `client_host` and `server_host`.
    pub host: Option<String>,
    pub kernel: Option<String>,
    pub cpu_model: Option<String>,
    pub cores: Option<usize>,
    pub memory_bytes: Option<u64>,
    pub optmem_max: Option<u64>,
    /// RLIMIT_MEMLOCK soft limit: absent, unknown; `null`, unlimited.
    #[serde(deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub memlock_limit_bytes: Option<Option<u64>>,
    /// The ring setup flags the kernel took (from the first uring record).
    pub uring_setup_flags: Option<String>,
    /// Where each side ran, as that side described itself (from the first record): host,
    /// kernel, CPU, its namespace's optmem_max and memlock, and the data's interface.
    pub client_host: Option<engine::host::HostInfo>,
    pub server_host: Option<engine::host::HostInfo>,
    /// Every client host's own description, in `clients` order (fan-in has several).
    pub client_hosts: Option<Vec<engine::host::HostInfo>>,
    /// How the agents were reached: `loopback`, `netns`, `ssh`, `daemon` (`+`-joined
    /// when the hosts differ).
    pub network: Option<String>,
    /// The server's host as given to the sweep (`netns:NAME`, `ssh://…`, `agent://…`).
    pub server: Option<String>,
    /// The client hosts as given.
    pub clients: Option<Vec<String>>,
    /// The address the clients dialled the server on.
    pub data_addr: Option<String>,
    pub network_detail: Option<String>,
    /// The counter scope asked for (the records say what each side got).
    pub counter_scope: Option<CounterScope>,
    pub matrix: Option<Matrix>,
    /// The seed of the rounds' shuffled orders (`--seed` repeats a run's order).
    pub order_seed: Option<u64>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub points_total: Option<usize>,
    pub points_done: Option<usize>,
    pub skipped: Option<Vec<Skipped>>,
    pub failed: Option<Vec<Failed>>,
    pub interrupted: Option<bool>,
}

/// A field that is present: `null` becomes `Some(None)`; an absent field stays `None`
/// through `#[serde(default)]`.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

impl Meta {
    /// Parses `meta.json` text; `null` for a whole list or object is as good as absent.
    pub fn parse(text: &str) -> serde_json::Result<Meta> {
        let mut v: serde_json::Value = serde_json::from_str(text)?;
        if let serde_json::Value::Object(map) = &mut v {
            map.retain(|k, val| !val.is_null() || k == "memlock_limit_bytes");
        }
        serde_json::from_value(v)
    }

    pub fn interrupted(&self) -> bool {
        self.interrupted == Some(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_null_fields_are_unknown_but_null_memlock_is_unlimited() {
        let m = Meta::parse("{}").unwrap();
        assert_eq!(m, Meta::default());
        assert_eq!(m.memlock_limit_bytes, None);
        let m = Meta::parse(r#"{"memlock_limit_bytes": null, "skipped": null, "cores": null}"#)
            .unwrap();
        assert_eq!(m.memlock_limit_bytes, Some(None));
        assert_eq!(m.skipped, None);
        assert_eq!(m.cores, None);
        let m = Meta::parse(r#"{"memlock_limit_bytes": 8388608, "interrupted": true}"#).unwrap();
        assert_eq!(m.memlock_limit_bytes, Some(Some(8 << 20)));
        assert!(m.interrupted());
    }

    #[test]
    fn what_the_sweep_writes_reads_back_whole() {
        let m = Meta {
            schema_version: Some(FOLDER_VERSION),
            memlock_limit_bytes: Some(None),
            counter_scope: Some(CounterScope::Core),
            skipped: Some(vec![Skipped {
                rx: None,
                polling: None,
                rate: None,
                engine: Backend::Syscall,
                mode: Mode::ZcFixed,
                size: 65536,
                threads: 2,
                placement: None,
                reason: "uring only".into(),
            }]),
            failed: Some(vec![Failed {
                point: "uring zc 4K x1".into(),
                repeat: Some(2),
                error: "boom".into(),
            }]),
            ..Meta::default()
        };
        let back = Meta::parse(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.skipped.unwrap()[0].point(), "syscall zc-fixed 64K ×2");
        assert_eq!(back.failed.unwrap()[0].point(), "uring zc 4K x1 (repeat 2)");
    }

    fn matrix(workload: Workload, rates: Vec<u64>) -> Matrix {
        Matrix {
            engines: vec![Backend::Syscall, Backend::Uring],
            modes: vec![Mode::TwoCopy, Mode::ZcFixed],
            sizes: vec![1024],
            threads: vec![1, 2],
            workload,
            depth: 64,
            duration_s: 1.0,
            repeats: 3,
            placements: vec![PlacementPolicy::Split],
            rx: Vec::new(),
            polling: Vec::new(),
            rates,
        }
    }

    #[test]
    fn each_rate_is_a_dimension_of_an_echo_matrix() {
        // Per thread count: syscall two-copy, uring two-copy and zc-fixed.
        let closed = matrix(Workload::Echo, Vec::new()).points();
        assert_eq!(closed.len(), 2 * 3);
        assert!(closed.iter().all(|p| p.rate.is_none()));
        let open = matrix(Workload::Echo, vec![5000, 20_000]).points();
        assert_eq!(open.len(), 2 * 3 * 2);
        for rate in [5000, 20_000] {
            assert_eq!(open.iter().filter(|p| p.rate == Some(rate)).count(), 6);
        }
        assert!(
            open.iter().all(|p| p.rate.is_some()),
            "no closed-loop point"
        );
        let stream = matrix(Workload::Stream, vec![5000]).points();
        assert!(
            stream.iter().all(|p| p.rate.is_none()),
            "stream has no rate"
        );
        let p = open.iter().find(|p| p.rate == Some(20_000)).unwrap();
        assert!(p.to_string().ends_with(" at 20k/s"), "{p}");
        let skipped = Skipped::new(p, "why".into());
        assert!(
            skipped.point().ends_with(" at 20k/s"),
            "{}",
            skipped.point()
        );
    }

    #[test]
    fn rates_are_named_as_the_flags_take_them() {
        assert_eq!(rate_name(5000), "5k");
        assert_eq!(rate_name(2500), "2.5k");
        assert_eq!(rate_name(1_500_000), "1.5M");
        assert_eq!(rate_name(1234), "1234");
        assert_eq!(rate_name(999), "999");
        assert_eq!(rate_figure(4987.6), "4.99k");
        assert_eq!(rate_figure(20_000.0), "20k");
        assert_eq!(rate_figure(1_020_000.0), "1.02M");
        assert_eq!(rate_figure(850.0), "850");
    }

    #[test]
    fn a_folder_from_before_rates_reads_as_closed_loop() {
        // A version-2 folder's matrix, point and skipped entry: no rate fields.
        let m: Matrix = serde_json::from_str(
            r#"{"engines": ["syscall"], "modes": ["two-copy"], "sizes": [1024],
                "threads": [1], "workload": "echo", "depth": 1, "duration_s": 2.0,
                "repeats": 3, "placements": ["split"]}"#,
        )
        .unwrap();
        assert!(m.rates.is_empty());
        assert!(m.points().iter().all(|p| p.rate.is_none()));
        let p: Point = serde_json::from_str(
            r#"{"engine": "uring", "mode": "zc", "size": 4096, "threads": 2,
                "placement": "split", "rx": "copy", "polling": "plain"}"#,
        )
        .unwrap();
        assert_eq!(p, Point::new(Backend::Uring, Mode::Zc, 4096, 2));
        // And a closed-loop sweep writes what it wrote before: no rates field.
        let text = serde_json::to_string(&matrix(Workload::Echo, Vec::new())).unwrap();
        assert!(!text.contains("rates"), "{text}");
        let text = serde_json::to_string(&Point::new(Backend::Uring, Mode::Zc, 4096, 2)).unwrap();
        assert!(!text.contains("rate"), "{text}");
        let open = matrix(Workload::Echo, vec![5000]);
        let back: Matrix = serde_json::from_str(&serde_json::to_string(&open).unwrap()).unwrap();
        assert_eq!(back, open, "the rate list is recorded");
    }

    #[test]
    fn a_records_rate_is_its_total_request() {
        let mut r = crate::testing::record(Backend::Syscall, Mode::TwoCopy, 1024, 1, 1.0);
        assert_eq!(point_of(&r).rate, None);
        // A fan-in part ran its host's share; the merged record's request is the total.
        r.config.rate = Some(2500.0);
        assert_eq!(rate_of(&r), Some(2500));
        let mut merged = crate::testing::at_rate(r, 5000, 4990.0, 10.0, 20.0);
        merged.config.rate = Some(2500.0);
        assert_eq!(point_of(&merged).rate, Some(5000));
    }
}
