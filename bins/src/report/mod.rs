//! Turns a results folder (records.jsonl + meta.json, written by the sweep) into plots
//! and a written report.
//!
//! Everything but [`write_report`] is a pure function from data to values or text, so the
//! analysis, the figures and the markdown are tested on data built in code; the sweep and
//! the `report` binary both call [`write_report`].

pub mod analysis;
pub mod chart;
pub mod cpu;
pub mod data;
pub mod load;
pub mod markdown;
pub mod plots;

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use engine::Record;

pub use crate::results::Meta;
pub use data::{Dataset, Metric, Point};

/// What [`write_report`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportOutput {
    /// Every file written: `DIR/plots/*.svg` in report order (latency under load last,
    /// where the folder has rate points), then `DIR/report.md`.
    pub files: Vec<PathBuf>,
    /// `DIR/report.md`.
    pub report: PathBuf,
    /// Problems with the folder that did not stop the report (also at the top of it).
    pub warnings: Vec<String>,
}

/// The report's contents, before anything is written.
#[derive(Debug, Clone)]
pub struct Report {
    pub markdown: String,
    /// (file name under `plots/`, SVG text).
    pub plots: Vec<(&'static str, String)>,
}

/// What `records.jsonl` held.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    pub records: Vec<Record>,
    /// Lines skipped, and why.
    pub warnings: Vec<String>,
    /// Records with no `warnings` field, written before copyperf recorded warnings: they
    /// load with none, but none there means never checked, which the report must not
    /// present as checked and clean.
    pub unchecked: usize,
}

/// Reads `records.jsonl` text: one record per non-blank line. A line that does not parse
/// (a run cut off mid-write) is skipped with a warning naming it.
pub fn parse_records(text: &str) -> Parsed {
    let mut records = Vec::new();
    let mut warnings = Vec::new();
    let mut unchecked = 0;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parsed = serde_json::from_str::<serde_json::Value>(line).and_then(|v| {
            let checked = v.get("warnings").is_some();
            serde_json::from_value::<Record>(v).map(|r| (r, checked))
        });
        match parsed {
            Ok((r, checked)) => {
                unchecked += usize::from(!checked);
                records.push(r);
            }
            Err(e) => warnings.push(format!("records.jsonl line {} skipped: {e}", i + 1)),
        }
    }
    Parsed {
        records,
        warnings,
        unchecked,
    }
}

/// The report of `records` for the folder named `folder`; `unchecked` of the records were
/// never checked for warnings ([`Parsed::unchecked`]).
pub fn build_report(
    folder: &str,
    meta: &Meta,
    records: Vec<Record>,
    unchecked: usize,
    warnings: &[String],
) -> Result<Report> {
    let prefer = meta.matrix.as_ref().map(|m| (m.workload, m.depth));
    let mut datasets = Dataset::split(records, prefer);
    if datasets.is_empty() {
        let workload = prefer.map_or(engine::Workload::Echo, |p| p.0);
        datasets.push(Dataset::new(
            workload,
            prefer.map_or(1, |p| p.1),
            Vec::new(),
        ));
    }
    let figures = plots::figures(&datasets[0]);
    let load = plots::latency_under_load(&datasets);
    let svgs = figures
        .iter()
        .chain(&load)
        .map(|f| {
            Ok((
                f.file,
                f.svg().with_context(|| format!("drawing {}", f.file))?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let markdown = markdown::render(&markdown::Inputs {
        folder,
        meta,
        warnings,
        unchecked,
        datasets: &datasets,
        figures: &figures,
        load: load.as_ref(),
    });
    Ok(Report {
        markdown,
        plots: svgs,
    })
}

/// Reads `dir/records.jsonl` and `dir/meta.json`; writes `dir/plots/*.svg` and
/// `dir/report.md`. A missing or unreadable `meta.json` and unreadable record lines are
/// warnings (in the report and in the result); a missing `records.jsonl` is an error.
pub fn write_report(dir: &Path) -> Result<ReportOutput> {
    let path = dir.join("records.jsonl");
    let text =
        fs::read_to_string(&path).with_context(|| format!("could not read {}", path.display()))?;
    let Parsed {
        records,
        mut warnings,
        unchecked,
    } = parse_records(&text);
    let meta_path = dir.join("meta.json");
    let meta = match fs::read_to_string(&meta_path) {
        Ok(t) => Meta::parse(&t).unwrap_or_else(|e| {
            warnings.push(format!(
                "meta.json could not be parsed ({e}); the machine and matrix are unknown"
            ));
            Meta::default()
        }),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            warnings.push("meta.json is missing; the machine and matrix are unknown".into());
            Meta::default()
        }
        Err(e) => return Err(e).with_context(|| format!("could not read {}", meta_path.display())),
    };
    let folder = dir
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| dir.display().to_string());
    let report = build_report(&folder, &meta, records, unchecked, &warnings)?;

    let plot_dir = dir.join("plots");
    fs::create_dir_all(&plot_dir)
        .with_context(|| format!("could not create {}", plot_dir.display()))?;
    let mut files = Vec::new();
    for (name, svg) in &report.plots {
        let p = plot_dir.join(name);
        fs::write(&p, svg).with_context(|| format!("could not write {}", p.display()))?;
        files.push(p);
    }
    let md = dir.join("report.md");
    fs::write(&md, &report.markdown)
        .with_context(|| format!("could not write {}", md.display()))?;
    files.push(md.clone());
    Ok(ReportOutput {
        files,
        report: md,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{record, warn};
    use engine::{Backend, Mode, WarningKind};

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let p = std::env::temp_dir().join(format!(
                "copyperf-report-{name}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    const META: &str = r#"{
        "schema_version": 1, "copyperf_version": "0.1.0", "git_revision": "abc1234",
        "command_line": "sweep --quick", "cpu_model": "Test CPU", "cores": 2,
        "kernel": "6.18.0", "memory_bytes": 8589934592, "optmem_max": 131072,
        "memlock_limit_bytes": null, "network": "loopback",
        "network_detail": "loopback 127.0.0.1", "counter_scope": "thread",
        "matrix": {"engines": ["syscall", "uring"], "modes": ["two-copy", "zc"],
                   "sizes": [1024, 65536], "threads": [1, 2], "workload": "echo",
                   "depth": 1, "duration_s": 0.3, "repeats": 2},
        "points_total": 17, "points_done": 16,
        "skipped": [{"engine": "syscall", "mode": "zc-fixed", "size": 1024, "threads": 1,
                     "reason": "zc-fixed is uring only"}],
        "failed": [{"point": "uring zc 64K x2", "error": "connection reset"}],
        "interrupted": true
    }"#;

    fn fixture() -> Vec<Record> {
        let mut v = Vec::new();
        for e in [Backend::Syscall, Backend::Uring] {
            for (m, base) in [(Mode::TwoCopy, 2.0), (Mode::Zc, 1.0)] {
                for s in [1024, 65536] {
                    for t in [1, 2] {
                        for rep in [0.9, 1.0, 1.1] {
                            let mut r = record(e, m, s, t, base * rep * (s as f64).log2());
                            if m == Mode::Zc {
                                r.client.zc_copied_fraction = Some(1.0);
                            }
                            v.push(r);
                        }
                    }
                }
            }
        }
        v
    }

    #[test]
    fn writes_every_plot_and_a_report_with_every_question() {
        let dir = TempDir::new("full");
        let records = fixture();
        let lines: Vec<String> = records
            .iter()
            .map(|r| serde_json::to_string(r).unwrap())
            .collect();
        fs::write(
            dir.0.join("records.jsonl"),
            lines.join("\n") + "\n{\"cut\": ",
        )
        .unwrap();
        fs::write(dir.0.join("meta.json"), META).unwrap();

        let out = write_report(&dir.0).unwrap();
        assert_eq!(out.files.len(), plots::FILES.len() + 1);
        assert_eq!(out.files.last(), Some(&dir.0.join("report.md")));
        for (p, name) in out.files.iter().zip(plots::FILES) {
            assert_eq!(p, &dir.0.join("plots").join(name));
            let svg = fs::read_to_string(p).unwrap();
            assert!(
                svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
                "{name}"
            );
        }
        assert_eq!(out.warnings.len(), 1, "{:?}", out.warnings);
        let cut = format!("records.jsonl line {} skipped", records.len() + 1);
        assert!(out.warnings[0].starts_with(&cut), "{:?}", out.warnings);

        let md = fs::read_to_string(&out.report).unwrap();
        for q in markdown::QUESTIONS {
            assert!(md.contains(&format!("### {q}")), "missing {q}");
        }
        for f in plots::FILES {
            assert!(md.contains(&format!("(plots/{f})")), "missing {f}");
        }
        assert!(md.contains("**Warning: this run was interrupted** — 16 of 17 points"));
        assert!(md.contains("syscall zc-fixed 1K ×1: zc-fixed is uring only"));
        assert!(md.contains("uring zc 64K x2: connection reset"));
        assert!(md.contains("Locked-memory limit (RLIMIT_MEMLOCK):** unlimited"));
        // Two repeats: spreads in the tables (two-copy 1K 1 thread: 2 × 10 × 0.9..1.1).
        assert!(
            md.contains("| 1K | two-copy | 20.00 [18.00–22.00] | 10.00 | 20.0 [20.0–20.0] |"),
            "{md}"
        );
        assert!(
            md.contains("| 1K | zc | 10.00 [9.00–11.00] | 5.00 |"),
            "{md}"
        );
        assert!(md.contains("the kernel marked 100% of zero-copy completions as copied"));
        assert!(md.contains(
            "- **syscall**, zc outperforms two-copy: never beyond noise in the measured range (1K–64K); behind at 1K and 64K, at every thread count measured (1 and 2)."
        ), "{md}");
        assert!(md.contains(
            "two points differ only where the [min–max] ranges of their runs do not overlap"
        ));
        // A closed-loop folder: no section, no plot for rates.
        assert!(!md.contains("Latency under load"), "{md}");
        assert!(!dir.0.join("plots").join(plots::LOAD_FILE).exists());
    }

    #[test]
    fn rate_points_get_a_latency_under_load_section_and_plot() {
        use crate::testing::at_rate;
        let dir = TempDir::new("rates");
        let mut records = Vec::new();
        for rep in [0.9f64, 1.0, 1.1] {
            // syscall falls to 70% of 20k; uring keeps 99% of it.
            for (e, p99, short) in [(Backend::Syscall, 40.0, 0.7), (Backend::Uring, 20.0, 0.99)] {
                for (rate, share) in [(5000, 1.0), (20_000, short)] {
                    let r = record(e, Mode::TwoCopy, 1024, 1, 1.0);
                    let achieved = rate as f64 * share;
                    records.push(at_rate(r, rate, achieved, p99 / 2.0 * rep, p99 * rep));
                }
            }
        }
        let lines: Vec<String> = records
            .iter()
            .map(|r| serde_json::to_string(r).unwrap())
            .collect();
        fs::write(dir.0.join("records.jsonl"), lines.join("\n")).unwrap();
        let meta = META.replace(r#""depth": 1,"#, r#""depth": 64, "rates": [5000, 20000],"#);
        fs::write(dir.0.join("meta.json"), &meta).unwrap();
        let out = write_report(&dir.0).unwrap();
        assert!(out.warnings.is_empty(), "{:?}", out.warnings);
        assert_eq!(
            out.files.len(),
            plots::FILES.len() + 2,
            "the six and the load plot"
        );
        let svg = fs::read_to_string(dir.0.join("plots").join(plots::LOAD_FILE)).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("p99, 1K, 1 thread"));
        let md = fs::read_to_string(&out.report).unwrap();
        assert!(md.contains("## Latency under load"), "{md}");
        assert!(
            md.contains(
                "| open-loop rates | 5k, 20k msg/s in all (each a dimension of the matrix;"
            ),
            "{md}"
        );
        assert!(
            md.contains("This folder mixes open-loop rates (each a dataset of its own; \"Latency under load\" puts them side by side). The plots and answers cover echo, depth 64, split placement, at 5k msg/s (6 runs)"),
            "{md}"
        );
        assert!(
            md.contains("![Latency under load (echo, depth 64, split placement)](plots/latency_under_load.svg)"),
            "{md}"
        );
        // uring's p99 runs (18–22) are all below syscall's (36–44).
        assert!(
            md.contains("| 1K | 1 | 5k msg/s | uring two-copy | 20.0 [18.0–22.0] | < syscall two-copy (40.0): lower beyond noise, ×2.00 |"),
            "{md}"
        );
        assert!(
            md.contains("| 1K | 1 | 20k msg/s | uring two-copy | 20.0 [18.0–22.0] | < syscall two-copy (short: 70.0%) (40.0): lower beyond noise, ×2.00 |"),
            "{md}"
        );
        assert!(
            md.contains("- **1K, 1 thread**: syscall two-copy up to 5k msg/s (at 20k msg/s its runs achieved [70.0%–70.0%]); uring two-copy up to 20k msg/s (every rate it ran). The highest kept, 20k msg/s, by uring two-copy: ahead of syscall two-copy beyond noise."),
            "{md}"
        );
        assert!(
            md.contains("| 1K | 1 | uring two-copy | 20k | 19800 [19800–19800] | 99.0% | 0 | 10.0 [9.0–11.0] | 20.0 [18.0–22.0] |  |"),
            "{md}"
        );
    }

    #[test]
    fn records_from_before_warnings_still_load_and_are_counted_as_unchecked() {
        let new = record(Backend::Syscall, Mode::TwoCopy, 1024, 1, 1.0);
        let mut old = serde_json::to_value(&new).unwrap();
        let map = old.as_object_mut().unwrap();
        map.remove("warnings");
        map.remove("interrupted");
        let text = format!("{old}\n{}\n", serde_json::to_string(&new).unwrap());
        let parsed = parse_records(&text);
        assert_eq!(parsed.records.len(), 2);
        assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
        assert_eq!(parsed.unchecked, 1);
        let r = &parsed.records[0];
        assert!(r.warnings.is_empty() && !r.interrupted);
        assert_eq!(
            parse_records(&serde_json::to_string(&new).unwrap()).unchecked,
            0
        );

        let dir = TempDir::new("old");
        fs::write(dir.0.join("records.jsonl"), format!("{old}\n")).unwrap();
        let md = fs::read_to_string(write_report(&dir.0).unwrap().report).unwrap();
        assert!(
            md.contains("The one run was written by a copyperf that did not record warnings"),
            "{md}"
        );
        assert!(!md.contains("carried no warning"), "{md}");
    }

    #[test]
    fn a_warned_run_is_listed_and_marked_in_the_written_report() {
        let dir = TempDir::new("warned");
        let mut records = fixture();
        let stall = "no message completed for 0.500 s of this 3.000 s run (17%): rerun it";
        records[1] = warn(records[1].clone(), WarningKind::Stall, stall);
        let lines: Vec<String> = records
            .iter()
            .map(|r| serde_json::to_string(r).unwrap())
            .collect();
        fs::write(dir.0.join("records.jsonl"), lines.join("\n")).unwrap();
        fs::write(dir.0.join("meta.json"), META).unwrap();
        let out = write_report(&dir.0).unwrap();
        assert!(out.warnings.is_empty(), "{:?}", out.warnings);
        let md = fs::read_to_string(&out.report).unwrap();
        assert!(
            md.contains("**Warning: 1 of the 48 runs carried warnings**"),
            "{md}"
        );
        assert!(
            md.contains(&format!(
                "- **syscall two-copy 1K ×1**, run 2 of 3: `stall` — {stall}"
            )),
            "{md}"
        );
        assert!(
            md.contains("| 1K | two-copy | 20.00 [18.00–22.00] ⚠1/3 | 10.00 ⚠1/3 |"),
            "{md}"
        );
    }

    #[test]
    fn a_folder_without_meta_or_records_still_reports() {
        let dir = TempDir::new("bare");
        fs::write(dir.0.join("records.jsonl"), "").unwrap();
        let out = write_report(&dir.0).unwrap();
        assert!(out.warnings[0].contains("meta.json is missing"));
        let md = fs::read_to_string(&out.report).unwrap();
        assert!(md.contains("Not answerable from this run: the folder holds no records."));
        assert!(write_report(&dir.0.join("nope")).is_err());
    }
}
