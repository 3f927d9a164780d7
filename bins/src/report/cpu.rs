//! The report's CPU section: what each side's own threads spent per byte, and what the
//! machine's CPUs did around them, per point, as medians over repeats. The two sides'
//! figures add up; the machine's is in neither (README, "CPU time").

use engine::config::format_size;
use engine::{Backend, Record, WarningKind};

use super::data::{Dataset, Metric, Point};

/// The first record schema in which each side's CPU is its own threads' time.
const OWN_CPU_SCHEMA: u32 = 2;

/// The warnings about CPU figures themselves.
const CPU_WARNINGS: [WarningKind; 1] = [WarningKind::ImpossibleCpu];

/// Markdown lines for the `## CPU per side` section (the caller writes the heading): what
/// the figures include, a table per engine, and the runs whose CPU figures were doubtful.
pub fn cpu_section(d: &Dataset) -> Vec<String> {
    let mut out = vec![
        "Each side's CPU is its own worker threads' user + system time (getrusage), and \
         CPU-ns/B is that time over the bytes the side sent and received: the two sides add \
         up, and neither includes the other side, other processes or time the hypervisor \
         stole. A thread's system time includes the kernel work done in its context — on \
         loopback and veth most of the network stack's softirq work, done by the thread whose \
         send raised it, whichever side's socket it was for. The machine's columns are \
         /proc/stat's over all CPUs for the client's measured interval: softirq (machine-wide, \
         whichever process it ran for), steal (time the hypervisor gave the CPUs to someone \
         else) and busy time (user, system, irq and softirq) over capacity (interval × CPUs). \
         Medians over repeats; – where not measured."
            .to_owned(),
        String::new(),
    ];
    let (own, older): (Vec<&Record>, Vec<&Record>) = d
        .records()
        .iter()
        .partition(|r| r.schema_version >= OWN_CPU_SCHEMA);
    if !older.is_empty() {
        out.push(format!(
            "{} of the {} runs were recorded before copyperf measured each side's own threads \
             (record schema 1) and are left out here: their CPU-ns/B was the task clock, or \
             per core the busy time of CPUs both sides shared.",
            older.len(),
            d.records().len()
        ));
        out.push(String::new());
    }
    if own.is_empty() {
        out.push("No run here measured CPU per side.".into());
        return out;
    }
    let d = Dataset::new(d.workload, d.depth, own.into_iter().cloned().collect());
    for engine in d.engines() {
        out.extend(engine_table(&d, engine));
    }
    out.extend(warning_lines(&d));
    out
}

/// One engine's tables, one per thread count (as the results tables): size × mode rows.
fn engine_table(d: &Dataset, engine: Backend) -> Vec<String> {
    let mut out = Vec::new();
    for t in d.threads() {
        let mut rows: Vec<Point> = d
            .points()
            .filter(|p| p.engine == engine && p.threads == t)
            .copied()
            .collect();
        if rows.is_empty() {
            continue;
        }
        rows.sort_by_key(|p| (p.size, p.mode));
        out.push(format!("### {engine}, {t} thread(s) (CPU)"));
        out.push(String::new());
        out.push(
            "| size | mode | client CPU-ns/B | server CPU-ns/B | client user / sys ms | \
             server user / sys ms | softirq ms | steal ms | busy / capacity |"
                .into(),
        );
        out.push(format!("|{}", "---|".repeat(9)));
        for p in rows {
            let cell = |m: Metric, digits: usize| {
                d.median(&p, m)
                    .map_or("–".to_owned(), |v| format!("{v:.digits$}"))
            };
            let pair = |a: Metric, b: Metric| format!("{} / {}", cell(a, 1), cell(b, 1));
            let busy = d
                .median(&p, Metric::BusyPercent)
                .map_or("–".to_owned(), |v| format!("{v:.0}%"));
            out.push(format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {busy} |",
                format_size(p.size),
                p.mode,
                cell(Metric::CpuNsPerByte, 2),
                cell(Metric::ServerCpuNsPerByte, 2),
                pair(Metric::ClientUserMs, Metric::ClientSystemMs),
                pair(Metric::ServerUserMs, Metric::ServerSystemMs),
                cell(Metric::SoftirqMs, 1),
                cell(Metric::StealMs, 1),
            ));
        }
        out.push(String::new());
    }
    out
}

/// The runs whose CPU figures were impossible or whose CPUs were stolen, one line each.
fn warning_lines(d: &Dataset) -> Vec<String> {
    let kinds = CPU_WARNINGS.map(|k| k.as_str()).join(" or ");
    let mut lines = Vec::new();
    let mut runs = 0;
    for x in d.doubtful() {
        let mut hit = false;
        for w in x.warnings.iter().filter(|w| CPU_WARNINGS.contains(&w.kind)) {
            hit = true;
            lines.push(format!(
                "- {}, run {} of {} ({}): {}",
                x.point, x.run, x.runs, w.kind, w.text
            ));
        }
        runs += usize::from(hit);
    }
    let total = d.records().len();
    if runs == 0 {
        return vec![format!(
            "None of the {total} runs carried an {kinds} warning."
        )];
    }
    let mut out = vec![
        format!("{runs} of the {total} runs carried an {kinds} warning; their CPU figures are in the medians above:"),
        String::new(),
    ];
    out.extend(lines);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{record, warn};
    use engine::{Mode, Workload};

    /// A run whose client used `client_ms` (user, system) and whose machine saw `softirq`
    /// and `steal` ms of its 2000 ms capacity, 1000 ms busy.
    fn run(
        engine: Backend,
        size: usize,
        threads: usize,
        client_ms: (u64, u64),
        softirq: u64,
        steal: u64,
    ) -> Record {
        let mut r = record(engine, Mode::TwoCopy, size, threads, 1.0);
        let own = r.client.own_cpu.as_mut().unwrap();
        own.user_ns = client_ms.0 * 1_000_000;
        own.system_ns = client_ms.1 * 1_000_000;
        let bytes = (r.client.stats.bytes_sent + r.client.stats.bytes_received) as f64;
        r.client.cpu_ns_per_byte = Some(own.total_ns() as f64 / bytes);
        let sys = r.system.as_mut().unwrap();
        sys.total.softirq_ns = softirq * 1_000_000;
        sys.total.steal_ns = steal * 1_000_000;
        sys.total.busy_ns = 1_000_000_000;
        r
    }

    #[test]
    fn the_section_explains_then_tabulates_medians_per_engine() {
        let d = Dataset::new(
            Workload::Echo,
            1,
            vec![
                run(Backend::Syscall, 4096, 1, (100, 200), 30, 0),
                run(Backend::Syscall, 4096, 1, (300, 500), 50, 20),
                run(Backend::Syscall, 4096, 1, (200, 300), 40, 10),
                run(Backend::Uring, 1024, 2, (10, 20), 5, 0),
            ],
        );
        let lines = cpu_section(&d);
        assert!(lines[0].starts_with("Each side's CPU is its own worker threads'"));
        assert!(
            !lines.iter().any(|l| l.starts_with("## ")),
            "the caller heads it"
        );
        let at = |head: &str| lines.iter().position(|l| l == head).unwrap();
        let (s, u) = (
            at("### syscall, 1 thread(s) (CPU)"),
            at("### uring, 2 thread(s) (CPU)"),
        );
        assert!(s < u);
        assert_eq!(
            lines[s + 2],
            "| size | mode | client CPU-ns/B | server CPU-ns/B | client user / sys ms \
             | server user / sys ms | softirq ms | steal ms | busy / capacity |"
        );
        let columns = |l: &str| l.matches('|').count();
        assert_eq!(
            columns(&lines[s + 3]),
            columns(&lines[s + 2]),
            "{}",
            lines[s + 3]
        );
        assert_eq!(
            columns(&lines[s + 4]),
            columns(&lines[s + 2]),
            "{}",
            lines[s + 4]
        );
        // Medians of each column on their own: user 200, system 300 → 500 ms / 8192 B.
        assert_eq!(
            lines[s + 4],
            format!(
                "| 4K | two-copy | {:.2} | {:.2} | 200.0 / 300.0 | 1.0 / 2.5 | 40.0 | 10.0 | 50% |",
                5e8 / 8192.0,
                3.5e6 / 8192.0
            )
        );
        assert_eq!(
            lines[u + 4],
            format!(
                "| 1K | two-copy | {:.2} | {:.2} | 10.0 / 20.0 | 1.0 / 2.5 | 5.0 | 0.0 | 50% |",
                3e7 / 8192.0,
                3.5e6 / 8192.0
            )
        );
        assert_eq!(
            lines.last().unwrap(),
            "None of the 4 runs carried an impossible-cpu warning."
        );
    }

    #[test]
    fn a_figure_not_measured_is_a_dash() {
        let mut r = run(Backend::Syscall, 4096, 1, (1, 2), 3, 0);
        r.server.as_mut().unwrap().own_cpu = None;
        r.server.as_mut().unwrap().cpu_ns_per_byte = None;
        r.system = None;
        let lines = cpu_section(&Dataset::new(Workload::Echo, 1, vec![r]));
        let row = lines.iter().find(|l| l.starts_with("| 4K |")).unwrap();
        assert!(
            row.ends_with(&format!(
                "| {:.2} | – | 1.0 / 2.0 | – / – | – | – | – |",
                3e6 / 8192.0
            )),
            "server and machine unmeasured: {row}"
        );
    }

    #[test]
    fn every_thread_count_has_its_table() {
        let mut recs = Vec::new();
        for size in [1024, 4096, 16384, 65536] {
            for threads in [2, 4, 8] {
                for mode in [Mode::TwoCopy, Mode::OneCopy] {
                    let mut r = run(Backend::Syscall, size, threads, (1, 2), 0, 0);
                    r.config.mode = mode;
                    recs.push(r);
                }
            }
        }
        let lines = cpu_section(&Dataset::new(Workload::Echo, 1, recs));
        for t in [2, 4, 8] {
            let head = lines
                .iter()
                .position(|l| *l == format!("### syscall, {t} thread(s) (CPU)"))
                .unwrap();
            assert!(lines[head + 2].starts_with("| size | mode | client CPU-ns/B |"));
            assert_eq!(
                lines[head + 3].matches('|').count(),
                lines[head + 2].matches('|').count()
            );
            let rows = lines[head + 4..]
                .iter()
                .take_while(|l| l.starts_with("| "))
                .count();
            assert_eq!(rows, 4 * 2, "sizes × modes at {t} threads");
        }
    }

    #[test]
    fn older_records_are_left_out_and_said_so() {
        let mut old = run(Backend::Syscall, 4096, 1, (900, 900), 0, 0);
        old.schema_version = 1;
        let d = Dataset::new(
            Workload::Echo,
            1,
            vec![old.clone(), run(Backend::Syscall, 4096, 1, (1, 2), 0, 0)],
        );
        let lines = cpu_section(&d);
        assert!(
            lines[2].starts_with("1 of the 2 runs were recorded before"),
            "{lines:?}"
        );
        assert!(lines
            .iter()
            .any(|l| l.contains("| 1.0 / 2.0 | 1.0 / 2.5 |")));
        let lines = cpu_section(&Dataset::new(Workload::Echo, 1, vec![old]));
        assert_eq!(lines.last().unwrap(), "No run here measured CPU per side.");
    }

    #[test]
    fn cpu_warnings_are_listed_and_others_are_not() {
        let p = "the machine's busy time, 9700.0 ms, is more than its 2 CPU(s) could give";
        let recs = vec![
            warn(
                run(Backend::Syscall, 4096, 1, (1, 2), 0, 0),
                WarningKind::Stall,
                "stalled",
            ),
            warn(
                run(Backend::Syscall, 4096, 1, (1, 2), 0, 0),
                WarningKind::ImpossibleCpu,
                p,
            ),
            run(Backend::Syscall, 4096, 1, (1, 2), 0, 0),
        ];
        let lines = cpu_section(&Dataset::new(Workload::Echo, 1, recs));
        let from = lines
            .iter()
            .position(|l| {
                l == "1 of the 3 runs carried an impossible-cpu warning; their CPU \
                      figures are in the medians above:"
            })
            .unwrap();
        assert_eq!(
            lines[from + 2..],
            [format!(
                "- syscall two-copy 4K x1 split, run 2 of 3 (impossible-cpu): {p}"
            )]
        );
        assert!(!lines.iter().any(|l| l.contains("stalled")));
    }
}
