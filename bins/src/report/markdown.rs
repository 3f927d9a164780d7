//! `report.md`: the machine, the matrix, the doubtful points, the tables, the plots and
//! the answers to the study's questions, as one string built from the data (no I/O here).
//!
//! A median over repeats hides which runs behind it were doubtful, so runs that carried
//! warnings are listed before the tables and the table cells they feed are marked.

use std::fmt::Write as _;

use engine::{Backend, Mode, Record, Workload};

use super::analysis::{
    compare_engines, copied_fraction, copied_note, copied_sentence, crossover_answer, gbps,
    interface_words, latency_answer, list, median_phrase, path_interfaces, path_kind, ratio, size,
    summarize_engines, tally_phrase, threads, unexpected,
};
use super::data::{Dataset, Doubt, Doubtful, Metric, Point, Verdict};
use super::plots::Figure;
use crate::results::Meta;
use crate::summary::{median, median_range};

/// The question headings, in order.
pub const QUESTIONS: [&str; 6] = [
    "Q1. At what message size does one-copy outperform two-copy?",
    "Q2. At what message size does zero-copy outperform two-copy?",
    "Q3. Where does io_uring beat syscalls, and by how much?",
    "Q4. Which cache level shows the most reduction in misses?",
    "Q5. How does thread count move latency?",
    "Q6. Unexpected result",
];

/// What the report is written from.
pub struct Inputs<'a> {
    /// The results folder's name.
    pub folder: &'a str,
    pub meta: &'a Meta,
    /// Problems reading the folder, shown at the top.
    pub warnings: &'a [String],
    /// Records never checked for warnings (written before copyperf recorded them).
    pub unchecked: usize,
    /// The records split by workload and depth, the one the plots and answers cover first.
    pub datasets: &'a [Dataset],
    pub figures: &'a [Figure],
    /// Latency under load, where the folder has rate points ([`super::plots::latency_under_load`]).
    pub load: Option<&'a Figure>,
}

/// The whole `report.md`.
pub fn render(inp: &Inputs) -> String {
    let mut out = String::new();
    let o = &mut out;
    let _ = writeln!(o, "# copyperf report: {}\n", inp.folder);
    let m = inp.meta;
    if m.interrupted() {
        let done = match (m.points_done, m.points_total) {
            (Some(d), Some(t)) => format!("{d} of {t} points were measured"),
            _ => "not every point was measured".into(),
        };
        let _ = writeln!(
            o,
            "> **Warning: this run was interrupted** — {done}; everything below covers only the points that finished.\n"
        );
    }
    let (warned, runs) = warned_runs(inp.datasets);
    if warned > 0 {
        let _ = writeln!(
            o,
            "> **Warning: {} carried warnings** (a stall, a slowdown, a fallback, …): they are listed under Doubtful points, and the table figures they are part of are marked {MARK}.\n",
            warned_of(warned, runs)
        );
    }
    for w in inp.warnings {
        let _ = writeln!(o, "> **Note:** {w}\n");
    }
    machine(o, inp);
    matrix(o, inp);
    choices(o, inp.datasets);
    doubtful(o, inp.datasets, inp.unchecked);
    tables(o, inp.datasets);
    cpu(o, inp.datasets);
    plots(o, inp.figures);
    answers(o, inp);
    which_path(o, inp.datasets);
    load(o, inp.datasets, inp.load);
    placement(o, inp.datasets);
    out
}

/// `## Latency under load`: the open-loop points (`--rates`), where the folder has them —
/// the figure, the lowest p99 at each requested rate, the highest rate each path kept, and
/// every point's figures.
fn load(o: &mut String, sets: &[Dataset], figure: Option<&Figure>) {
    use super::load::{groups, kept_line, lowest_p99, KEEP};
    let groups = groups(sets);
    if groups.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "## Latency under load

The open-loop points (`--rates`): each connection sent on a fixed schedule, whether or not its echoes were back, and each round trip is timed from its message's **due time**, so a send that went out late counts its wait (no coordinated omission). The rate is the run's total over its connections (and its client hosts). At most `depth` echoes were outstanding per connection; a message that fell due with that many out waited, and is counted as held back. \"Achieved\" is what a run sent a second over its measured interval: a path achieving less than it was asked is past its knee, and its latency is at a lower load than the others'. {RULE}\n"
    );
    if let Some(f) = figure {
        let _ = writeln!(o, "![{}](plots/{})\n", f.title, f.file);
    }
    let many = groups.len() > 1;
    for g in &groups {
        if many {
            let _ = writeln!(o, "### {}\n", g.label);
        } else {
            let _ = writeln!(o, "All of them {}.\n", g.label);
        }
        let p99 = lowest_p99(g);
        if !p99.is_empty() {
            let _ = writeln!(
                o,
                "**Lowest p99 at each requested rate**, against the runner-up (a path marked short achieved under {:.0}% of the request in some run, its lowest share given; ? doubtful):\n\n{}\n",
                KEEP * 100.0,
                p99.join("\n")
            );
        }
        let kept: Vec<String> = g
            .cells()
            .into_iter()
            .filter_map(|(s, t)| kept_line(g, s, t))
            .collect();
        if !kept.is_empty() {
            let _ = writeln!(
                o,
                "**The highest rate each path kept**: a rate is kept where every run achieved at least {:.0}% of it, and every lower rate was kept too. A path carries more than another only where, at the first rate the other fell short of, the ranges of their achieved shares are apart.\n\n{}\n",
                KEEP * 100.0,
                kept.join("\n")
            );
        }
        let _ = writeln!(
            o,
            "| size | threads | path | requested | achieved msg/s | lowest share | held back | p50 µs | p99 µs | not used because |\n|---|---|---|---|---|---|---|---|---|---|"
        );
        for (s, t) in g.cells() {
            for (e, m) in g.paths(s, t) {
                for at in g.runs(e, m, s, t) {
                    let (d, p) = (at.set, &at.point);
                    let lowest = d
                        .values(p, Metric::RateFraction)
                        .into_iter()
                        .reduce(f64::min)
                        .map_or("–".to_owned(), |f| format!("{:.1}%", f * 100.0));
                    let _ = writeln!(
                        o,
                        "| {} | {t} | {e} {m} | {} | {} | {lowest} | {} | {} | {} | {} |",
                        size(s),
                        crate::results::rate_name(at.rate),
                        cell(d, p, Metric::RateAchieved, 0, true),
                        cell(d, p, Metric::HeldBack, 0, false),
                        cell(d, p, Metric::LatencyP50, 1, true),
                        cell(d, p, Metric::LatencyP99, 1, true),
                        doubt_cell(d, p)
                    );
                }
            }
        }
        let _ = writeln!(o);
    }
}

const UNKNOWN: &str = "unknown (not in meta.json)";

/// The noise rule, as the report states it (see `data`'s module doc).
const RULE: &str = "The rule for every comparison below: two points differ only where the [min–max] ranges of their runs do not overlap; otherwise the answer is \"no difference beyond noise\". A figure with fewer than 3 runs, a run that carried a warning, or runs spread over more than 50% of their median is doubtful: it is not judged and never supplies a headline. Two points with no real difference still come out apart 1 time in 10 with 3 runs each (no test on 3 runs can do better), so a finding that rests on a single comparison is a lead to confirm with more rounds, not a result.";

/// Marks a table figure that a run with warnings is part of.
const MARK: &str = "⚠";

/// `3 of the 32 runs`, or `the one run` where there is only one.
fn warned_of(warned: usize, runs: usize) -> String {
    if runs == 1 {
        "the one run".into()
    } else {
        format!("{warned} of the {runs} runs")
    }
}

/// `s` with its first letter upper-case, to start a sentence.
fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map_or(String::new(), |f| f.to_uppercase().chain(c).collect())
}

/// `echo, depth 1, split placement: ` where a folder holds several datasets (`many`), so a
/// line says which one it is about; empty where there is one.
fn prefix(d: &Dataset, many: bool) -> String {
    if many {
        format!("{}: ", d.label())
    } else {
        String::new()
    }
}

/// Runs that carried warnings, and all runs, over `sets`.
fn warned_runs(sets: &[Dataset]) -> (usize, usize) {
    let warned = sets.iter().map(|d| d.doubtful().len()).sum();
    let runs = sets.iter().map(|d| d.records().len()).sum();
    (warned, runs)
}

/// One run's list item: the point in bold, which of its runs (where it ran more than
/// once), the kinds of warning it carried, and its first warning's text.
fn doubtful_line(label: &str, x: &Doubtful) -> String {
    let p = &x.point;
    let run = if x.runs > 1 {
        format!(", run {} of {}", x.run, x.runs)
    } else {
        String::new()
    };
    let mut kinds: Vec<String> = Vec::new();
    for w in x.warnings {
        let k = format!("`{}`", w.kind.as_str());
        if !kinds.contains(&k) {
            kinds.push(k);
        }
    }
    let first = x.warnings.first().map_or("", |w| w.text.as_str());
    // One list item per run: a line break in the text would end it.
    let mut line = format!(
        "- **{label}{} {} {} ×{}**{run}: {} — {}",
        p.engine,
        p.mode,
        size(p.size),
        p.threads,
        kinds.join(", "),
        first.split_whitespace().collect::<Vec<_>>().join(" ")
    );
    match x.warnings.len() {
        0 | 1 => {}
        2 => line.push_str(" (and 1 more warning in records.jsonl)"),
        n => line.push_str(&format!(" (and {} more warnings in records.jsonl)", n - 1)),
    }
    line
}

/// `## Doubtful points`: every run that carried a warning, with the first warning's text
/// (it says what to do); or a line saying none did. `unchecked` runs predate warnings:
/// their silence is said to mean nothing.
fn doubtful(o: &mut String, sets: &[Dataset], unchecked: usize) {
    let _ = writeln!(o, "## Doubtful points\n");
    warned_section(o, sets, unchecked);
    spread_section(o, sets);
}

/// Points whose runs disagree by more than the spread limit: listed with their runs, and
/// kept out of the answers.
fn spread_section(o: &mut String, sets: &[Dataset]) {
    let many = sets.len() > 1;
    let mut lines = Vec::new();
    for d in sets {
        let label = prefix(d, many);
        for p in d.points() {
            let parts: Vec<String> = [
                (Metric::Throughput, "Gbit/s", 2),
                (Metric::LatencyMean, "mean µs", 1),
            ]
            .into_iter()
            .filter_map(|(m, what, digits)| {
                let x = d.measured(p, m)?;
                let Some(Doubt::Spread(spread)) = x.doubt else {
                    return None;
                };
                let runs: Vec<String> = x.values.iter().map(|v| format!("{v:.digits$}")).collect();
                Some(format!(
                    "{what} {} ({}% of the median)",
                    runs.join(", "),
                    (spread * 100.0).round()
                ))
            })
            .collect();
            if !parts.is_empty() {
                lines.push(format!(
                    "- **{label}{} {} {} ×{}**: {}",
                    p.engine,
                    p.mode,
                    size(p.size),
                    p.threads,
                    parts.join("; ")
                ));
            }
        }
    }
    if lines.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "{} point(s) whose runs spread over more than {:.0}% of their median in the figure(s) named; the answers do not use those figures (the tables say so in their last column). Their runs:\n\n{}\n",
        lines.len(),
        super::data::SPREAD_LIMIT * 100.0,
        lines.join("\n")
    );
}

fn warned_section(o: &mut String, sets: &[Dataset], unchecked: usize) {
    let (warned, runs) = warned_runs(sets);
    if runs == 0 {
        let _ = writeln!(o, "No records in this folder, so no warnings either.\n");
        return;
    }
    let unchecked = unchecked.min(runs);
    if unchecked > 0 {
        let which = match runs {
            1 => "The one run was".into(),
            n if unchecked == n => format!("All {n} runs were"),
            n => format!("{unchecked} of the {n} runs were"),
        };
        let _ = writeln!(
            o,
            "{which} written by a copyperf that did not record warnings (no `warnings` field): nothing looked for stalls or slowdowns in them, so none being listed here does not mean they ran clean.\n"
        );
    }
    if warned == 0 {
        let none = match runs - unchecked {
            0 => return,
            1 if unchecked == 0 => "The one run carried no warning.".into(),
            n if unchecked == 0 => format!("None of the {n} runs carried a warning."),
            1 => "The other run carried no warning.".into(),
            n => format!("None of the other {n} runs carried a warning."),
        };
        let _ = writeln!(o, "{none}\n");
        return;
    }
    let _ = writeln!(
        o,
        "{} carried warnings. Their figures are still in the medians of the tables (cells marked {MARK}, or {MARK}k/n where k of a point's n runs warned), but the answers do not judge their points; rerun them before trusting them.\n",
        capitalized(&warned_of(warned, runs))
    );
    let many = sets.len() > 1;
    for d in sets {
        let label = prefix(d, many);
        for x in d.doubtful() {
            let _ = writeln!(o, "{}", doubtful_line(&label, &x));
        }
    }
    let _ = writeln!(o);
}

/// `## Settings copyperf chose`: every socket option and setting the records show copyperf
/// chose on the user's behalf, with the values the runs used, so that a path slowed by one
/// of them can be told from a path that is slow.
fn choices(o: &mut String, sets: &[Dataset]) {
    let records: Vec<&Record> = sets.iter().flat_map(|d| d.records()).collect();
    if records.is_empty() {
        return;
    }
    let _ = writeln!(o, "## Settings copyperf chose\n");
    let distinct =
        |f: &dyn Fn(&Record) -> String| crate::unique(records.iter().map(|r| f(r))).join("; ");
    let nodelay = {
        let mut by_value: Vec<(&str, Vec<String>)> = Vec::new();
        for r in &records {
            let value = match r.config.nodelay {
                Some(true) => "on",
                Some(false) => "off (Nagle)",
                None => "unknown",
            };
            let what = format!("{} {}", r.config.workload, r.config.mode);
            match by_value.iter_mut().find(|(v, _)| *v == value) {
                Some((_, w)) if !w.contains(&what) => w.push(what),
                Some(_) => {}
                None => by_value.push((value, vec![what])),
            }
        }
        match by_value.as_slice() {
            [(value, _)] => format!("{value} in all {} runs", records.len()),
            _ => by_value
                .iter()
                .map(|(v, w)| format!("{v} for {}", w.join(", ")))
                .collect::<Vec<_>>()
                .join("; "),
        }
    };
    let rows = [
        (
            "TCP_NODELAY on the client (`--nodelay auto`)",
            format!("on for echo and for every zero-copy send (Nagle would hold each small zero-copy segment for an ACK); for other streams off below a segment, on from a segment up. As used: {nodelay}"),
        ),
        (
            "TCP_NODELAY on the server",
            "on for echo (it sends the echoes), off for stream (it sends nothing)".into(),
        ),
        (
            "SO_ZEROCOPY",
            "set on zero-copy sockets (MSG_ZEROCOPY is ignored without it)".into(),
        ),
        (
            "Socket buffers",
            "SO_SNDBUF and SO_RCVBUF are not set: the kernel's autotuning sizes them".into(),
        ),
        ("Send flags (message sends, as recorded)", send_flags(&records)),
        (
            "Verification",
            distinct(&|r: &Record| r.config.verify.to_string()),
        ),
        (
            "Two-copy receive on uring",
            distinct(&|r: &Record| r.config.uring_recv.to_string()),
        ),
        (
            "Placement (both sides)",
            distinct(&|r: &Record| r.config.cpus.to_string()),
        ),
        (
            "Messages in flight per connection",
            distinct(&|r: &Record| r.config.depth.to_string()),
        ),
    ];
    let rows = rows
        .into_iter()
        .chain(records.iter().any(|r| r.config.rate.is_some()).then(|| {
            (
                "Timer slack under `--rate`",
                "1 ns on the client's worker threads (PR_SET_TIMERSLACK), so a wait for \
                     the next due time ends on time; the default 50 µs would be in every \
                     send's lag"
                    .into(),
            )
        }));
    for (k, v) in rows {
        let _ = writeln!(o, "- **{k}:** {v}");
    }
    let _ = writeln!(o);
}

/// The flags each side's message sends carried, per mode and engine, as the records give
/// them, with why copyperf chose those beyond the engine's own where the records show
/// them.
fn send_flags(records: &[&Record]) -> String {
    let mut seen = Vec::new();
    let mut unrecorded = 0;
    let (mut more, mut more_of) = (0, 0);
    for r in records {
        for side in std::iter::once(&r.client).chain(r.server.as_ref()) {
            match &side.send_flags {
                Some(f) => seen.push(format!("{} on {}: {f}", r.config.mode, side.backend)),
                // Page-cache modes pass none; a side that sent nothing has none to pass.
                None if side.stats.msgs_sent > 0
                    && r.config.mode.page_cache_path(side.backend).is_none() =>
                {
                    unrecorded += 1
                }
                None => {}
            }
            if side.stats.io.more_sends > 0 {
                more += side.stats.io.more_sends;
                more_of += side.stats.msgs_sent;
            }
        }
    }
    let mut parts = crate::unique(seen.iter().cloned());
    if parts.is_empty() && unrecorded == 0 {
        return "none: every send was by sendfile or splice".into();
    }
    if unrecorded > 0 {
        parts.push(format!(
            "not recorded for {unrecorded} side(s) (records from before copyperf kept them)"
        ));
    }
    let mut why = Vec::new();
    if seen.iter().any(|f| f.contains("MSG_EOR")) {
        why.push(
            "MSG_EOR ends each zc message, so the kernel never joins two queued zc \
             messages in one skb (joined, they outgrew the window zc's page fragments \
             shrink, and open-loop echo waited 200 ms for a zero-window probe)"
                .to_string(),
        );
    }
    if more > 0 {
        why.push(format!(
            "MSG_MORE went on {more} of {more_of} zc-fixed sends, each followed at once by \
             another of its linked chain of messages smaller than a segment, so that they \
             share one"
        ));
    }
    let mut text = parts.join("; ");
    if !why.is_empty() {
        text.push_str(&format!(
            ". Beyond the engine's own (MSG_NOSIGNAL; uring MSG_WAITALL): {}",
            why.join("; ")
        ));
    }
    text
}

/// `## CPU per side`: each side's own CPU and the machine's, per dataset.
fn cpu(o: &mut String, sets: &[Dataset]) {
    if sets.iter().all(Dataset::is_empty) {
        return;
    }
    let _ = writeln!(o, "## CPU per side\n");
    let many = sets.len() > 1;
    for d in sets.iter().filter(|d| !d.is_empty()) {
        if many {
            let _ = writeln!(o, "**{}**\n", d.label());
        }
        let _ = writeln!(o, "{}\n", super::cpu::cpu_section(d).join("\n"));
    }
}

/// `## Which path wins where`: the best path at every size and thread count, over
/// engines, modes and receive paths.
fn which_path(o: &mut String, sets: &[Dataset]) {
    if let Some(lines) = super::analysis::which_path_answer(sets) {
        let _ = writeln!(
            o,
            "## Which path wins where

{RULE} A path marked ? is doubtful itself. The copied share is the zero-copy sender's (on loopback and veth every such send is copied on delivery); the mapped share is the receiver's under --rx zerocopy.

{}
",
            lines.join("\n")
        );
    }
}

/// `## Placement`: what placement does, where the folder measured more than one.
fn placement(o: &mut String, sets: &[Dataset]) {
    if let Some(lines) = super::analysis::placement_answer(sets) {
        let _ = writeln!(
            o,
            "## Placement\n\nThe same points under different placements. {RULE}\n\n{}\n",
            lines.join("\n")
        );
    }
}

fn or_unknown(v: Option<String>) -> String {
    v.filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| UNKNOWN.into())
}

fn bytes(n: u64) -> String {
    const GIB: f64 = (1u64 << 30) as f64;
    if n >= 1 << 30 {
        format!("{:.1} GiB", n as f64 / GIB)
    } else {
        format!("{n} bytes ({})", size(n as usize))
    }
}

fn first_record<'a>(inp: &Inputs<'a>) -> Option<&'a Record> {
    inp.datasets.iter().flat_map(|d| d.records()).next()
}

fn machine(o: &mut String, inp: &Inputs) {
    let m = inp.meta;
    let rec = first_record(inp);
    let _ = writeln!(o, "## Machine and run\n");
    let mut row = |k: &str, v: String| {
        let _ = writeln!(o, "- **{k}:** {v}");
    };
    row("Host", or_unknown(m.host.clone()));
    let cores = m.cores.map(|c| format!(", {c} cores")).unwrap_or_default();
    row(
        "CPU",
        match &m.cpu_model {
            Some(c) => format!("{c}{cores}"),
            None if !cores.is_empty() => format!("model unknown{cores}"),
            None => UNKNOWN.into(),
        },
    );
    row(
        "Kernel",
        m.kernel
            .clone()
            .or_else(|| rec.map(|r| format!("{} (from the records)", r.kernel)))
            .unwrap_or_else(|| UNKNOWN.into()),
    );
    row("Memory", or_unknown(m.memory_bytes.map(bytes)));
    row(
        "optmem_max (zero-copy control memory per socket)",
        or_unknown(m.optmem_max.map(bytes)),
    );
    row(
        "Locked-memory limit (RLIMIT_MEMLOCK)",
        match m.memlock_limit_bytes {
            Some(None) => "unlimited".into(),
            Some(Some(n)) => bytes(n),
            None => UNKNOWN.into(),
        },
    );
    let from_records = |v: Option<String>| v.map(|v| format!("{v} (from the records)"));
    let ring_flags = inp
        .datasets
        .iter()
        .flat_map(|d| d.records())
        .find_map(|r| r.client.uring.as_ref().map(|u| u.flags.to_string()));
    row(
        "io_uring setup flags",
        or_unknown(
            m.uring_setup_flags
                .clone()
                .or_else(|| from_records(ring_flags)),
        ),
    );
    row(
        "Network",
        match (&m.network, &m.network_detail) {
            (Some(n), Some(d)) => format!("{n}: {d}"),
            (Some(n), None) => n.clone(),
            (None, Some(d)) => d.clone(),
            (None, None) => UNKNOWN.into(),
        },
    );
    let hosts = inp.datasets.iter().flat_map(|d| d.records()).find_map(|r| {
        let clients = r.client_hosts();
        (!clients.is_empty()).then(|| {
            (
                clients.into_iter().cloned().collect::<Vec<_>>(),
                r.server.as_ref().and_then(|s| s.host.clone()),
            )
        })
    });
    if let Some((clients, server)) = hosts {
        let side = |h: &engine::host::HostInfo| {
            let memlock = h.memlock_limit.map_or("unlimited".to_owned(), bytes);
            format!(
                "{}, kernel {}, {}{}; optmem_max {}, memlock {memlock}; data on {}",
                h.hostname,
                h.kernel,
                h.cpu_model.as_deref().unwrap_or("CPU unknown"),
                h.cores.map_or(String::new(), |c| format!(
                    ", {c} core{}",
                    if c == 1 { "" } else { "s" }
                )),
                h.optmem_max.map_or("unknown".into(), bytes),
                h.interface
                    .as_ref()
                    .map_or("an interface it could not name".into(), interface_words),
            )
        };
        if let [client] = clients.as_slice() {
            row("Client side (as it described itself)", side(client));
        } else {
            for (i, client) in clients.iter().enumerate() {
                row(
                    &format!(
                        "Client host {} of {} (as it described itself)",
                        i + 1,
                        clients.len()
                    ),
                    side(client),
                );
            }
        }
        if let Some(server) = &server {
            row("Server side (as it described itself)", side(server));
        }
        if let Some((c, s)) = inp.datasets.iter().find_map(path_interfaces) {
            let kind = path_kind(&c, &s);
            row(
                "Path of the data",
                if kind.stays_local() {
                    format!("{} — both sides in one kernel: MSG_ZEROCOPY and io_uring zero-copy sends (zc, zc-fixed) are copied on delivery, whatever the engine; page-cache sends (sendfile, splice) are not", kind.as_str())
                } else {
                    format!("{} — between the sides' devices", kind.as_str())
                },
            );
        }
    }
    row(
        "Counter scope",
        or_unknown(
            m.counter_scope
                .map(|c| c.to_string())
                .or_else(|| from_records(rec.map(|r| r.client.counter_scope.to_string()))),
        ),
    );
    let missing: Vec<String> = crate::unique(
        inp.datasets
            .iter()
            .filter_map(Dataset::client_counters_missing)
            .flatten(),
    );
    if first_record(inp).is_some() {
        row(
            "Counters missing on this machine (client)",
            if missing.is_empty() {
                "none".into()
            } else {
                format!(
                    "{} (no figures for them anywhere below)",
                    missing.join(", ")
                )
            },
        );
    }
    let steal: Vec<f64> = inp
        .datasets
        .iter()
        .flat_map(|d| d.records())
        .filter_map(|r| {
            let s = r.system.as_ref()?;
            (s.capacity_ns > 0).then(|| s.total.steal_ns as f64 / s.capacity_ns as f64)
        })
        .collect();
    if let (Some(mid), Some((lo, hi))) = (median(&steal), crate::summary::range(&steal)) {
        row(
            "Steal (time the hypervisor kept this VM's CPUs waiting)",
            format!(
                "median {:.1}% of the CPUs' time over the {} runs, from {:.1}% to {:.1}% (per point in the CPU section). Steal is reported, not warned about: on a VM it grows with the wake-ups of idle vCPUs, so latency-bound runs with few threads show the most, and it is part of what the path costs there",
                mid * 100.0,
                steal.len(),
                lo * 100.0,
                hi * 100.0,
            ),
        );
    }
    let version = m
        .copyperf_version
        .clone()
        .or_else(|| rec.map(|r| format!("{} (from the records)", r.copyperf_version)));
    row(
        "copyperf",
        match (version, &m.git_revision) {
            (Some(v), Some(g)) => format!("{v}, git {g}"),
            (Some(v), None) => format!("{v}, git revision unknown"),
            (None, Some(g)) => format!("version unknown, git {g}"),
            (None, None) => UNKNOWN.into(),
        },
    );
    row(
        "Command line",
        m.command_line
            .as_ref()
            .map_or(UNKNOWN.into(), |c| format!("`{c}`")),
    );
    row(
        "Started / finished",
        format!(
            "{} / {}",
            m.started_at.as_deref().unwrap_or("unknown"),
            m.finished_at.as_deref().unwrap_or("unknown")
        ),
    );
    row(
        "Points done",
        match (m.points_done, m.points_total) {
            (Some(d), Some(t)) => format!("{d} of {t}"),
            (Some(d), None) => format!("{d} (total unknown)"),
            _ => UNKNOWN.into(),
        },
    );
    row(
        "Interrupted",
        match m.interrupted {
            Some(true) => "**yes**".into(),
            Some(false) => "no".into(),
            None => UNKNOWN.into(),
        },
    );
    points_list(
        o,
        "Skipped points",
        m.skipped
            .as_ref()
            .map(|v| v.iter().map(|s| (s.point(), s.reason.clone())).collect()),
    );
    points_list(
        o,
        "Failed points",
        m.failed
            .as_ref()
            .map(|v| v.iter().map(|f| (f.point(), f.error.clone())).collect()),
    );
    let _ = writeln!(o);
}

/// `- **Skipped points:** 2` and a line per point with its reason.
fn points_list(o: &mut String, key: &str, points: Option<Vec<(String, String)>>) {
    let count = match &points {
        None => UNKNOWN.to_owned(),
        Some(v) if v.is_empty() => "none".into(),
        Some(v) => v.len().to_string(),
    };
    let _ = writeln!(o, "- **{key}:** {count}");
    for (point, why) in points.unwrap_or_default() {
        let _ = writeln!(o, "  - {point}: {why}");
    }
}

fn matrix(o: &mut String, inp: &Inputs) {
    let _ = writeln!(o, "## Matrix\n");
    match &inp.meta.matrix {
        None => {
            let _ = writeln!(o, "The matrix asked for is {UNKNOWN}.\n");
        }
        Some(x) => {
            fn list<T>(v: &[T], f: impl Fn(&T) -> String) -> String {
                v.iter().map(f).collect::<Vec<_>>().join(", ")
            }
            let _ = writeln!(o, "| parameter | asked for |\n|---|---|");
            let rows = [
                ("engines", list(&x.engines, |e| e.to_string())),
                ("modes", list(&x.modes, |m| m.to_string())),
                ("sizes", list(&x.sizes, |&n| size(n))),
                (
                    "threads",
                    match inp.meta.clients.as_ref().map_or(1, Vec::len) {
                        1 => list(&x.threads, |n| n.to_string()),
                        hosts => format!(
                            "{} per client host, on {hosts} client hosts at once (fan-in: the \
                             server serves {hosts}× as many)",
                            list(&x.threads, |n| n.to_string())
                        ),
                    },
                ),
                ("workload", x.workload.to_string()),
                ("depth", x.depth.to_string()),
                ("duration per run", format!("{} s", x.duration_s)),
                (
                    "rounds (runs per point)",
                    format!(
                        "{} — the whole matrix once per round, each round in its own shuffled order{}",
                        x.repeats,
                        inp.meta
                            .order_seed
                            .map_or(String::new(), |s| format!(" (seed {s})"))
                    ),
                ),
                (
                    "placement",
                    if x.placements.is_empty() {
                        "unknown: before placement policies (the old auto plan, which changed with the thread count)".into()
                    } else {
                        list(&x.placements, |p| p.to_string())
                    },
                ),
            ];
            let rates = (!x.rates.is_empty()).then(|| {
                (
                    "open-loop rates",
                    format!(
                        "{} msg/s in all (each a dimension of the matrix; latency timed from due times)",
                        list(&x.rates, |&r| crate::results::rate_name(r))
                    ),
                )
            });
            for (k, v) in rows.into_iter().chain(rates) {
                let _ = writeln!(o, "| {k} | {v} |");
            }
            let _ = writeln!(o);
        }
    }
    let total: usize = inp.datasets.iter().map(|d| d.records().len()).sum();
    let points: usize = inp.datasets.iter().map(|d| d.points().count()).sum();
    let reps: Vec<usize> = inp
        .datasets
        .iter()
        .flat_map(|d| d.points().map(|p| d.repeats(p)))
        .collect();
    let reps = match (reps.iter().min(), reps.iter().max()) {
        (Some(a), Some(b)) if a == b => format!(", {a} per point"),
        (Some(a), Some(b)) => format!(", {a}–{b} per point"),
        _ => String::new(),
    };
    let _ = writeln!(o, "Measured: {total} runs in {points} points{reps}.");
    if let Some((first, rest)) = inp.datasets.split_first() {
        if !rest.is_empty() {
            // A rate sweep's datasets differ by rate: name each by its label.
            let rated = inp.datasets.iter().any(|d| d.rate.is_some());
            let name = |d: &Dataset| {
                if rated {
                    d.label()
                } else {
                    format!("{} at depth {}", d.workload, d.depth)
                }
            };
            let others: Vec<String> = rest
                .iter()
                .map(|d| format!("{} ({} runs)", name(d), d.records().len()))
                .collect();
            let what = if rated {
                "open-loop rates (each a dataset of its own; \"Latency under load\" puts them side by side)"
            } else {
                "workloads or depths"
            };
            let _ = writeln!(
                o,
                "\nThis folder mixes {what}. The plots and answers cover {} ({} runs); the tables also cover {}.",
                name(first),
                first.records().len(),
                list(&others)
            );
        }
    }
    let _ = writeln!(o);
}

/// A figure's cell: `median [min–max]` where it ran more than once, the value where once,
/// `–` where not measured; marked where runs behind it carried warnings.
fn cell(d: &Dataset, p: &Point, m: Metric, digits: usize, spread: bool) -> String {
    let v = d.values(p, m);
    let figure = match v.as_slice() {
        [] => return "–".into(),
        [one] => format!("{one:.digits$}"),
        _ if spread => median_range(&v, digits),
        _ => format!("{:.digits$}", median(&v).unwrap_or(f64::NAN)),
    };
    match (d.warned(p, m), v.len()) {
        (0, _) => figure,
        (_, 1) => format!("{figure} {MARK}"),
        (k, n) => format!("{figure} {MARK}{k}/{n}"),
    }
}

/// Why a point is kept out of the conclusions, short, for the table's last column; empty
/// where it is fit (throughput, and mean latency where measured).
fn doubt_cell(d: &Dataset, p: &Point) -> String {
    let mut notes = Vec::new();
    for (m, what) in [
        (Metric::Throughput, "throughput"),
        (Metric::LatencyMean, "latency"),
    ] {
        match d.measured(p, m).and_then(|x| x.doubt) {
            Some(Doubt::Spread(s)) => notes.push(format!("{what} spread {:.0}%", s * 100.0)),
            Some(Doubt::Runs(n)) if notes.is_empty() => {
                notes.push(format!("{n} run{}", if n == 1 { "" } else { "s" }))
            }
            Some(Doubt::Warned(_)) if !notes.iter().any(|n| n == "warned") => {
                notes.push("warned".into())
            }
            _ => {}
        }
    }
    notes.join(", ")
}

/// One table per engine and thread count: a row per size and mode with the seed's
/// sent+received throughput, the one-way figure beside it, and (echo) the mean, p50 and
/// p99 round trip; the last column says why a point is kept out of the conclusions.
fn results_table(o: &mut String, d: &Dataset, engine: Backend, t: usize) -> bool {
    let modes = d.modes(Some(engine));
    let echo = d.workload == Workload::Echo;
    let rows: Vec<Point> = d
        .sizes()
        .into_iter()
        .flat_map(|s| modes.iter().map(move |md| d.point(engine, *md, s, t)))
        .filter(|p| d.repeats(p) > 0)
        .collect();
    if rows.is_empty() {
        return false;
    }
    if echo {
        let _ = writeln!(
            o,
            "| size | mode | Gbit/s sent+received | Gbit/s one way | mean µs | p50 µs | p99 µs | not used because |\n|---|---|---|---|---|---|---|---|"
        );
    } else {
        let _ = writeln!(
            o,
            "| size | mode | Gbit/s (one way) | not used because |\n|---|---|---|---|"
        );
    }
    for p in rows {
        let mut cells = vec![size(p.size), p.mode.to_string()];
        if echo {
            cells.extend([
                cell(d, &p, Metric::Throughput, 2, true),
                cell(d, &p, Metric::OneWay, 2, false),
                cell(d, &p, Metric::LatencyMean, 1, true),
                cell(d, &p, Metric::LatencyP50, 1, false),
                cell(d, &p, Metric::LatencyP99, 1, false),
            ]);
        } else {
            cells.push(cell(d, &p, Metric::Throughput, 2, true));
        }
        cells.push(doubt_cell(d, &p));
        let _ = writeln!(o, "| {} |", cells.join(" | "));
    }
    let _ = writeln!(o);
    true
}

fn tables(o: &mut String, sets: &[Dataset]) {
    let many = sets.len() > 1;
    let marked = if warned_runs(sets).0 > 0 {
        format!(" {MARK}: a run behind the figure carried a warning ({MARK}k/n: k of its n runs); see Doubtful points.")
    } else {
        String::new()
    };
    let _ = writeln!(
        o,
        "## Results\n\nMedians over the runs, with [min–max] where a point ran at least twice; – where not measured.{marked} \"Gbit/s sent+received\" is the seed's figure: in echo every byte crosses twice, so it is twice the one-way figure a tool such as iperf3 would print. Latencies are round trips; p50 and p99 are the medians of each run's percentiles. The last column names why a point is kept out of the answers (see Doubtful points).\n"
    );
    if sets.iter().all(Dataset::is_empty) {
        let _ = writeln!(o, "No records in this folder.\n");
    }
    for d in sets {
        let label = prefix(d, many);
        for e in d.engines() {
            for t in d.threads() {
                let mut table = String::new();
                if results_table(&mut table, d, e, t) {
                    let _ = write!(o, "### {label}{e}, {}\n\n{table}", threads(t));
                }
            }
        }
    }
}

/// `## Plots`: the figures of the first dataset (latency under load has its own section).
fn plots(o: &mut String, figures: &[Figure]) {
    let _ = writeln!(o, "## Plots\n");
    for f in figures {
        let _ = writeln!(o, "### {}\n\n![{}](plots/{})\n", f.caption, f.title, f.file);
    }
}

fn answers(o: &mut String, inp: &Inputs) {
    let _ = writeln!(o, "## Answers\n");
    let Some(d) = inp.datasets.first().filter(|d| !d.is_empty()) else {
        for q in QUESTIONS {
            let _ = writeln!(
                o,
                "### {q}\n\nNot answerable from this run: the folder holds no records.\n"
            );
        }
        return;
    };
    let warned = d.doubtful().len();
    let doubt = if warned > 0 {
        format!(
            " {} carried warnings (see Doubtful points): their points are not judged.",
            capitalized(&warned_of(warned, d.records().len()))
        )
    } else {
        String::new()
    };
    let _ = writeln!(
        o,
        "Computed from the {} runs in {} points ({}), compared at the same size, thread count and placement. {RULE} \"Outperforms\" means higher throughput beyond noise at that size and at every larger size measured. Ratios are of medians and carry the verdict: > higher beyond noise, < lower beyond noise, ≈ no difference beyond noise, ? not judged.{doubt}\n",
        d.records().len(),
        d.points().count(),
        d.label()
    );
    let modes = d.modes(None);
    let has = |m: Mode| modes.contains(&m);
    let section = |o: &mut String, q: &str, lines: Vec<String>| {
        let _ = writeln!(o, "### {q}\n\n{}\n", lines.join("\n"));
    };

    // Q1
    let q1 = if has(Mode::OneCopy) && has(Mode::TwoCopy) {
        non_empty(
            crossover_answer(d, Mode::OneCopy, Mode::TwoCopy),
            "one-copy and two-copy never ran at the same engine, size and thread count",
        )
    } else {
        vec![not_both("one-copy", "two-copy", &modes)]
    };
    section(o, QUESTIONS[0], q1);

    // Q2
    let mut q2 = Vec::new();
    if !has(Mode::TwoCopy) || !(has(Mode::Zc) || has(Mode::ZcFixed)) {
        q2.push(not_both("zc or zc-fixed", "two-copy", &modes));
    } else {
        for zc in [Mode::Zc, Mode::ZcFixed] {
            if has(zc) {
                q2.extend(crossover_answer(d, zc, Mode::TwoCopy));
            }
        }
        if q2.is_empty() {
            q2.push("Not answerable from this run: zero-copy and two-copy never ran at the same engine, size and thread count.".into());
        }
        q2.push(String::new());
        q2.push("What the kernel did with the zero-copy sends (client side):".into());
        q2.push(String::new());
        for e in d.engines() {
            for zc in [Mode::Zc, Mode::ZcFixed] {
                if d.modes(Some(e)).contains(&zc) {
                    q2.push(format!(
                        "- {}",
                        copied_sentence(e, zc, copied_fraction(d, e, zc))
                    ));
                }
            }
        }
        let network = inp
            .meta
            .network_detail
            .as_deref()
            .or(inp.meta.network.as_deref());
        if let Some(note) = copied_note(d, network) {
            q2.push(String::new());
            q2.push(note);
        }
    }
    section(o, QUESTIONS[1], q2);

    // Q3
    let rows = compare_engines(d);
    let q3 = match summarize_engines(&rows) {
        None => {
            let engines: Vec<String> = d.engines().iter().map(|e| e.to_string()).collect();
            vec![format!(
                "Not answerable from this run: no mode ran on both engines at the same size and thread count (engines measured: {}).",
                list(&engines)
            )]
        }
        Some(s) => {
            let mut v = vec![s.sentence(&rows), String::new()];
            for m in Mode::ALL {
                let mine: Vec<_> = rows
                    .iter()
                    .copied()
                    .filter(|r| r.point.mode == *m)
                    .collect();
                if !mine.is_empty() {
                    v.push(format!(
                        "- {m}: uring {}; {}",
                        tally_phrase(&mine, "faster", "slower"),
                        median_phrase(&mine, "uring/syscall"),
                    ));
                }
            }
            v.push(String::new());
            v.push(
                "| mode | size | threads | syscall Gbit/s | uring Gbit/s | uring / syscall | beyond noise? |"
                    .into(),
            );
            v.push("|---|---|---|---|---|---|---|".into());
            for r in &rows {
                v.push(format!(
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    r.point.mode,
                    size(r.point.size),
                    r.point.threads,
                    gbps(r.b),
                    gbps(r.a),
                    ratio(r.ratio()),
                    verdict_words(r.verdict, "uring faster", "uring slower")
                ));
            }
            v
        }
    };
    section(o, QUESTIONS[2], q3);

    // Q4
    section(o, QUESTIONS[3], super::analysis::cache_answer(d));

    // Q5
    section(o, QUESTIONS[4], latency_answer(d, inp.meta.cores));

    // Q6
    let found = unexpected(d);
    let q6 = if found.is_empty() {
        vec!["Nothing flagged. The checks, each beyond noise only: a copy-avoiding mode slower than two-copy at every judged point; uring slower than syscall at most judged points; zc-fixed slower than zc at every judged point; more threads or a larger message moving less; and messages failing verification.".into()]
    } else {
        found.into_iter().map(|s| format!("- {s}")).collect()
    };
    section(o, QUESTIONS[5], q6);
}

/// A verdict in a table cell.
fn verdict_words(v: Verdict, higher: &str, lower: &str) -> String {
    match v {
        Verdict::Higher => higher.into(),
        Verdict::Lower => lower.into(),
        Verdict::Same => "no difference beyond noise".into(),
        Verdict::Unjudged => "not judged (doubtful point)".into(),
    }
}

fn non_empty(lines: Vec<String>, why: &str) -> Vec<String> {
    if lines.is_empty() {
        vec![format!("Not answerable from this run: {why}.")]
    } else {
        lines
    }
}

fn not_both(a: &str, b: &str, modes: &[Mode]) -> String {
    let present: Vec<&str> = modes.iter().map(|m| m.as_str()).collect();
    format!(
        "Not answerable from this run: it needs both {a} and {b} (modes measured: {}).",
        if present.is_empty() {
            "none".into()
        } else {
            list(&present)
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{record, warn};
    use engine::WarningKind;

    const STALL: &str = "no message completed for 0.500 s of this 3.000 s run (17%): a stall \
                         (a busy or descheduled CPU, another tenant, swapping) distorts every \
                         figure; rerun it, longer or on a quieter machine";

    fn section(sets: &[Dataset]) -> String {
        let mut o = String::new();
        doubtful(&mut o, sets, 0);
        o
    }

    #[test]
    fn a_run_with_a_stall_is_listed_with_its_text() {
        let d = Dataset::new(
            Workload::Echo,
            1,
            vec![
                record(Backend::Uring, Mode::Zc, 65536, 4, 9.0),
                warn(
                    warn(
                        record(Backend::Uring, Mode::Zc, 65536, 4, 3.0),
                        WarningKind::Stall,
                        STALL,
                    ),
                    WarningKind::BelowOwnRate,
                    "slowed down",
                ),
                record(Backend::Syscall, Mode::TwoCopy, 1024, 1, 1.0),
            ],
        );
        let s = section(std::slice::from_ref(&d));
        assert!(
            s.starts_with("## Doubtful points\n\n1 of the 3 runs carried warnings."),
            "{s}"
        );
        assert!(
            s.contains(&format!(
                "- **uring zc 64K ×4**, run 2 of 2: `stall`, `below-own-rate` — {STALL} (and 1 more warning in records.jsonl)\n"
            )),
            "{s}"
        );
        assert!(!s.contains("syscall"), "{s}");
        // The median's cell says one of its two runs warned; a clean point is unmarked.
        let mut t = String::new();
        assert!(results_table(&mut t, &d, Backend::Uring, 4));
        assert!(
            t.contains("| 64K | zc | 6.00 [3.00–9.00] ⚠1/2 | 3.00 ⚠1/2 | 20.0 [20.0–20.0] ⚠1/2 |"),
            "{t}"
        );
        assert!(t.ends_with("| 2 runs |\n\n"), "{t}");
        let mut t = String::new();
        assert!(results_table(&mut t, &d, Backend::Syscall, 1));
        assert!(t.contains("| 1K | two-copy | 1.00 | 0.50 | 20.0 |"), "{t}");
        assert!(t.ends_with("| 1 run |\n\n"), "{t}");
        assert!(!results_table(&mut t, &d, Backend::Syscall, 8));
    }

    #[test]
    fn a_single_run_names_no_run_number_and_each_dataset_is_labelled() {
        let mut stream = warn(
            record(Backend::Syscall, Mode::OneCopy, 4096, 2, 1.0),
            WarningKind::Fallback,
            "the kernel refused IORING_SETUP_DEFER_TASKRUN",
        );
        stream.config.workload = Workload::Stream;
        let sets = Dataset::split(
            vec![
                stream,
                record(Backend::Syscall, Mode::TwoCopy, 1024, 1, 1.0),
            ],
            Some((Workload::Echo, 1)),
        );
        let s = section(&sets);
        assert!(
            s.contains(
                "- **stream, depth 1, split placement: syscall one-copy 4K ×2**: `fallback` — the kernel refused IORING_SETUP_DEFER_TASKRUN\n"
            ),
            "{s}"
        );
        let alone = [Dataset::new(
            Workload::Echo,
            1,
            vec![warn(
                record(Backend::Syscall, Mode::TwoCopy, 1024, 1, 1.0),
                WarningKind::Stall,
                STALL,
            )],
        )];
        assert!(
            section(&alone).contains("\n\nThe one run carried warnings. Their figures"),
            "{}",
            section(&alone)
        );
    }

    #[test]
    fn a_run_without_warnings_says_so() {
        let recs = vec![
            record(Backend::Syscall, Mode::TwoCopy, 1024, 1, 1.0),
            record(Backend::Uring, Mode::TwoCopy, 1024, 1, 2.0),
        ];
        let sets = [Dataset::new(Workload::Echo, 1, recs)];
        assert_eq!(
            section(&sets),
            "## Doubtful points\n\nNone of the 2 runs carried a warning.\n\n"
        );
        let one = [Dataset::new(
            Workload::Echo,
            1,
            vec![record(Backend::Syscall, Mode::TwoCopy, 1024, 1, 1.0)],
        )];
        assert!(section(&one).contains("The one run carried no warning."));
        let empty = [Dataset::new(Workload::Echo, 1, Vec::new())];
        assert!(section(&empty).contains("No records in this folder"));
        // Records from before warnings: their silence is not vouched for.
        let mut o = String::new();
        doubtful(&mut o, &sets, 1);
        assert!(
            o.contains("1 of the 2 runs were written by a copyperf that did not record warnings"),
            "{o}"
        );
        assert!(o.contains("The other run carried no warning."), "{o}");
        // Nothing doubtful: no banner, no legend, no marks.
        let md = render(&Inputs {
            folder: "f",
            meta: &Meta::default(),
            warnings: &[],
            unchecked: 0,
            datasets: &sets,
            figures: &[],
            load: None,
        });
        assert!(
            md.contains("## Doubtful points\n\nNone of the 2 runs"),
            "{md}"
        );
        assert!(!md.contains(MARK), "{md}");
    }

    #[test]
    fn the_banner_and_the_answers_count_the_warned_runs() {
        let recs = vec![
            warn(
                record(Backend::Syscall, Mode::TwoCopy, 1024, 1, 1.0),
                WarningKind::Stall,
                STALL,
            ),
            record(Backend::Uring, Mode::TwoCopy, 1024, 1, 2.0),
        ];
        let sets = [Dataset::new(Workload::Echo, 1, recs)];
        let md = render(&Inputs {
            folder: "f",
            meta: &Meta::default(),
            warnings: &[],
            unchecked: 0,
            datasets: &sets,
            figures: &[],
            load: None,
        });
        assert!(
            md.contains("> **Warning: 1 of the 2 runs carried warnings**"),
            "{md}"
        );
        assert!(
            md.contains("1 of the 2 runs carried warnings (see Doubtful points): their points are not judged."),
            "{md}"
        );
        let doubtful = md.find("## Doubtful points").unwrap();
        assert!(doubtful < md.find("## Results").unwrap());
        assert!(md.contains("| 1K | two-copy | 1.00 ⚠ | 0.50 ⚠ |"), "{md}");
    }

    #[test]
    fn wide_spreads_are_listed_and_the_settings_named() {
        let mut stream = record(Backend::Syscall, Mode::OneCopy, 1024, 1, 2.0);
        stream.config.workload = Workload::Stream;
        stream.config.nodelay = Some(false);
        let recs = vec![
            record(Backend::Uring, Mode::Zc, 1024, 2, 1.0),
            record(Backend::Uring, Mode::Zc, 1024, 2, 2.0),
            record(Backend::Uring, Mode::Zc, 1024, 2, 3.0),
        ];
        let sets = [Dataset::new(Workload::Echo, 1, recs.clone())];
        let mut o = String::new();
        spread_section(&mut o, &sets);
        assert!(
            o.contains("- **uring zc 1K ×2**: Gbit/s 1.00, 2.00, 3.00 (100% of the median)\n"),
            "{o}"
        );
        let mut o = String::new();
        choices(&mut o, &sets);
        assert!(o.contains("As used: on in all 3 runs"), "{o}");
        assert!(o.contains("- **Placement (both sides):** split"), "{o}");
        // The flags come from the records, each mode and engine once (a uring client,
        // the example's syscall server), and why MSG_EOR is among them.
        assert!(
            o.contains(
                "- **Send flags (message sends, as recorded):** zc on uring: \
                 MSG_WAITALL|MSG_NOSIGNAL|MSG_EOR; zc on syscall: \
                 MSG_NOSIGNAL|MSG_ZEROCOPY|MSG_EOR. Beyond the engine's own \
                 (MSG_NOSIGNAL; uring MSG_WAITALL): MSG_EOR ends each zc message"
            ),
            "{o}"
        );
        assert!(!o.contains("MSG_MORE went"), "no zc-fixed run: {o}");
        // Records from before: said so, and no reason given for flags they may not have had.
        let mut old = recs[0].clone();
        old.client.send_flags = None;
        old.server.as_mut().unwrap().send_flags = None;
        let mut o = String::new();
        choices(&mut o, &[Dataset::new(Workload::Echo, 1, vec![old])]);
        assert!(
            o.contains(
                "- **Send flags (message sends, as recorded):** not recorded for 2 side(s) \
                 (records from before copyperf kept them)\n"
            ),
            "{o}"
        );
        // zc-fixed's MSG_MORE, as counted.
        let mut fixed = record(Backend::Uring, Mode::ZcFixed, 1024, 1, 1.0);
        fixed.client.stats.msgs_sent = 800;
        fixed.client.stats.io.more_sends = 700;
        let server = fixed.server.as_mut().unwrap();
        server.backend = Backend::Uring; // zc-fixed needs a uring server
        server.send_flags = Mode::ZcFixed.send_flags(Backend::Uring);
        let mut o = String::new();
        choices(&mut o, &[Dataset::new(Workload::Echo, 1, vec![fixed])]);
        assert!(
            o.contains("as recorded):** zc-fixed on uring: MSG_WAITALL|MSG_NOSIGNAL. Beyond"),
            "{o}"
        );
        assert!(
            o.contains("MSG_MORE went on 700 of 800 zc-fixed sends"),
            "{o}"
        );
        assert!(!o.contains("not recorded") && !o.contains("MSG_EOR"), "{o}");
        assert!(!o.contains("Timer slack"), "closed loop sets none: {o}");
        let mut open_loop = recs[0].clone();
        open_loop.config.rate = Some(2000.0);
        let mut o = String::new();
        choices(&mut o, &[Dataset::new(Workload::Echo, 1, vec![open_loop])]);
        assert!(o.contains("- **Timer slack under `--rate`:** 1 ns"), "{o}");
        let sets = Dataset::split(vec![recs[0].clone(), stream], None);
        let mut o = String::new();
        choices(&mut o, &sets);
        assert!(
            o.contains("As used: on for echo zc; off (Nagle) for stream one-copy"),
            "{o}"
        );
    }
}
