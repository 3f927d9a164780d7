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
        }
    }
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

    /// The points, size by size, thread count by thread count, placement by placement,
    /// receive path by receive path. Modes an engine lacks (zc-fixed on syscall) are left
    /// out. The sweep runs them in a new shuffled order every round.
    pub fn points(&self) -> Vec<Point> {
        let mut v = Vec::new();
        for &size in &self.sizes {
            for &threads in &self.threads {
                for &placement in &self.placements {
                    for rx in self.rx_paths() {
                        for polling in self.polling_opts() {
                            for &engine in &self.engines {
                                for &mode in &self.modes {
                                    // SQPOLL is io_uring's: no syscall point has it.
                                    let runs = mode.supported_on(engine)
                                        && (polling != PollOpt::Sqpoll || engine == Backend::Uring);
                                    if runs {
                                        v.push(Point {
                                            engine,
                                            mode,
                                            size,
                                            threads,
                                            placement: Some(placement),
                                            rx,
                                            polling,
                                        });
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
    }
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
            reason,
        }
    }

    /// `syscall zc 64K ×2`, and the placement, receive path and polling where known.
    pub fn point(&self) -> String {
        let placement = self.placement.map_or(String::new(), |p| format!(" {p}"));
        let rx = self.rx.map_or(String::new(), |r| format!(" rx {r}"));
        let polling = self.polling.map_or(String::new(), |p| format!(" {p}"));
        format!(
            "{} {} {} ×{}{placement}{rx}{polling}",
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
}
