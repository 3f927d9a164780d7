//! Pure writers from records to text: the human summary in the seed's shape, JSON, and
//! CSV. They do no I/O beyond the writer they are given, so they are tested on strings.
//!
//! CSV columns are derived from the [`Record`] struct itself: nested fields are joined
//! with `_` (`latency_p99_us`, `server_stats_zc_copied`), lists are left to JSON (except
//! `warnings`, whose kinds fill one `+`-joined cell), and a missing value (null in JSON)
//! is an empty cell, never 0. Fields only a program reads ([`JSON_ONLY`]) stay out of
//! the CSV.

use std::fmt::Write as _;
use std::io;
use std::sync::OnceLock;

use serde_json::Value;

use crate::config::{format_size, ClientConfig, CounterScope, Direction, Mode, RxMode, Workload};
use crate::cputime::{CpuFigures, SystemCpu};
use crate::live::Interval;
use crate::record::{Record, SideReport, ThreadReport};
use crate::tcpinfo::Gauge;

const RULE: &str = "=====";

/// The banner a client prints before it starts, as the seed's clients did.
/// A message rate as people write it: `20000`, `2500.5`.
fn msgs_per_s(rate: f64) -> String {
    if rate.fract() == 0.0 || rate >= 1000.0 {
        format!("{rate:.0}")
    } else {
        format!("{rate:.1}")
    }
}

/// `--rate`: what the schedule asked for and what it kept.
fn rate_lines(s: &mut String, rate: &crate::record::RateReport, depth: usize) {
    let _ = writeln!(
        s,
        "Rate: achieved {} of the {} msgs/s requested ({:.1}%); latency above runs from each \
         message's due time",
        msgs_per_s(rate.achieved_per_s),
        msgs_per_s(rate.requested_per_s),
        100.0 * rate.achieved_fraction
    );
    if let Some(lag) = &rate.send_lag {
        let _ = writeln!(
            s,
            "Send lag behind the schedule p50/p99/max: {:.2} / {:.2} / {:.2} µs",
            lag.p50_us, lag.p99_us, lag.max_us
        );
    }
    if rate.held_back > 0 {
        let _ = writeln!(
            s,
            "Held back: {} fell due with {} outstanding on their connection (--depth) and \
             waited",
            crate::vocab::count(rate.held_back, "message", "messages"),
            crate::vocab::count(depth as u64, "echo", "echoes")
        );
    }
}

pub fn client_banner(config: &ClientConfig, server: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{RULE}");
    let _ = writeln!(
        s,
        "copyperf client: {} over {}, {} workload{}",
        config.mode,
        config.backend,
        config.workload,
        match config.direction {
            Direction::Forward => "",
            Direction::Reverse => ", reverse (the server sends)",
            Direction::Bidir => ", bidir (both send)",
        }
    );
    let _ = writeln!(s, "{RULE}");
    let _ = writeln!(s, "Server: {server}");
    let _ = writeln!(s, "Message Size: {} bytes", config.size);
    let _ = writeln!(s, "Threads: {}", config.threads);
    if config.conns > 1 {
        let _ = writeln!(s, "Connections per thread: {}", config.conns);
    }
    let _ = writeln!(s, "Depth: {}", config.depth);
    let cap = config.duration.as_secs_f64();
    match (config.messages, config.bytes, config.message_count()) {
        (Some(n), _, _) => {
            let _ = writeln!(s, "Messages: {n} in all (at most {cap} seconds)");
        }
        (None, Some(b), Some(n)) => {
            let _ = writeln!(
                s,
                "Bytes: {b} in all: {} (at most {cap} seconds)",
                crate::vocab::count(n, "message", "messages")
            );
        }
        _ => {
            let _ = writeln!(s, "Duration: {cap} seconds");
        }
    }
    if !config.omit.is_zero() {
        let _ = writeln!(
            s,
            "Omit: {} seconds (a warm-up first, not counted)",
            config.omit.as_secs_f64()
        );
    }
    if !config.interval.is_zero() {
        let _ = writeln!(s, "Interval: {} seconds", config.interval.as_secs_f64());
    }
    if let Some(rate) = config.rate {
        let _ = writeln!(
            s,
            "Rate: {} msgs/s in all, {} per connection (open loop: latency from each \
             message's due time)",
            msgs_per_s(rate),
            msgs_per_s(rate / config.total_connections().max(1) as f64)
        );
    }
    let _ = writeln!(s, "Verify: {}", config.verify);
    if config.rx != RxMode::Copy {
        let _ = writeln!(s, "Receive: {}", config.rx);
    }
    let _ = write!(s, "{RULE}");
    s
}

/// The heading over the live interval lines (`--interval`).
pub fn interval_header() -> String {
    format!(
        "[ ID] {:<17} {:>15} {:>13} {:>10} {:>10} {:>10} {:>5} {:>12} {:>10}",
        "Interval", "Sent", "Received", "Messages", "p50", "p99", "Retr", "Cwnd", "srtt"
    )
}

/// One interval as iperf3 prints it: a line per thread, then `[SUM]`; lines inside the
/// warm-up (`--omit`) end in `(omitted)`. Retransmits, the congestion window (in bytes,
/// with iperf3's units) and the smoothed RTT come from TCP_INFO; `-` where the kernel did
/// not give them.
pub fn interval_lines(i: &Interval) -> String {
    let mut s = String::new();
    for f in i.threads.iter().chain(std::iter::once(&i.sum)) {
        let id = f.thread.map_or("SUM".to_string(), |t| format!("{t:>3}"));
        let us = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1} us"));
        let n = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
        let _ = writeln!(
            s,
            "[{id}] {:>6.2}-{:<6.2} sec {:>8.2} Gbit/s {:>6.2} Gbit/s {:>10} {:>10} {:>10} {:>5} {:>12} {:>10}{}",
            i.start_s,
            i.end_s,
            f.sent_gbps,
            f.received_gbps,
            f.msgs_sent.max(f.msgs_received),
            us(f.p50_us),
            us(f.p99_us),
            n(f.retransmits),
            f.cwnd_bytes.map_or("-".to_string(), iperf_bytes),
            f.srtt_us.map_or("-".to_string(), |v| format!("{v} us")),
            if i.omitted { "  (omitted)" } else { "" }
        );
    }
    s.pop();
    s
}

/// A byte count as iperf3 prints its Cwnd column: in Bytes, KBytes, MBytes or GBytes
/// (powers of 1024), with 3 significant digits or the whole number above 100.
fn iperf_bytes(bytes: u64) -> String {
    let units = ["Bytes", "KBytes", "MBytes", "GBytes"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    let digits = match value {
        v if v >= 99.95 => 0,
        v if v >= 9.995 => 1,
        _ => 2,
    };
    format!("{value:.digits$} {}", units[unit])
}

/// `[Client N] Completed. …` — one thread's line.
pub fn thread_line(t: &ThreadReport) -> String {
    format!(
        "[Client {}] Completed. Duration: {:.2} sec, Sent: {} bytes ({} msgs), Received: {} bytes ({} msgs)",
        t.thread,
        t.duration_s,
        t.stats.bytes_sent,
        t.stats.msgs_sent,
        t.stats.bytes_received,
        t.stats.msgs_received
    )
}

/// The per-thread lines and the SUMMARY block.
pub fn human(r: &Record) -> String {
    let mut s = String::new();
    for t in &r.threads {
        let _ = writeln!(s, "{}", thread_line(t));
    }
    let m = &r.summary;
    let _ = writeln!(s, "{RULE}\nSUMMARY\n{RULE}");
    if r.interrupted {
        let planned = match r.config.message_count() {
            Some(n) => crate::vocab::count(n, "message", "messages"),
            None => format!("{:.2} s", r.config.duration.as_secs_f64()),
        };
        let _ = writeln!(
            s,
            "Interrupted: stopped after {:.2} s of {planned}; the figures cover what ran",
            m.duration_s,
        );
    }
    let _ = writeln!(s, "Active Threads: {}", m.threads);
    match r.config.direction {
        Direction::Forward => {}
        Direction::Reverse => {
            let _ = writeln!(
                s,
                "Direction: reverse (the server sent with {}, the client received)",
                r.server
                    .as_ref()
                    .map_or("its engine".into(), |x| x.backend.to_string())
            );
        }
        Direction::Bidir => {
            let _ = writeln!(
                s,
                "Direction: bidir (both sides sent and received at once on every connection)"
            );
        }
    }
    if m.connections != m.threads {
        let _ = writeln!(s, "Connections: {}", m.connections);
    }
    let _ = writeln!(s, "Total Bytes Sent: {}", m.bytes_sent);
    let _ = writeln!(s, "Total Bytes Received: {}", m.bytes_received);
    let _ = writeln!(s, "Total Messages: {}", m.messages);
    let _ = writeln!(s, "Throughput: {:.4} Gbps", m.throughput_gbps);
    if let Some(one_way) = m.one_way_gbps {
        if r.config.workload == Workload::Echo {
            let _ = writeln!(
                s,
                "Throughput one way: {one_way:.4} Gbps (the line above counts every byte twice: sent and echoed back)"
            );
        } else if r.config.direction == Direction::Bidir {
            let _ = writeln!(
                s,
                "Throughput one way: {one_way:.4} Gbps (the busier direction; the line above adds both)"
            );
        }
    }
    match &r.latency {
        Some(l) => {
            let _ = writeln!(s, "Avg Latency: {:.2} µs", l.mean_us);
            let _ = writeln!(
                s,
                "Latency p50/p90/p99/p99.9/max: {:.2} / {:.2} / {:.2} / {:.2} / {:.2} µs",
                l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.max_us
            );
        }
        None if r.config.workload == Workload::Stream => {
            let _ = writeln!(s, "Latency: not measured (stream has no round trip)");
        }
        None => {
            let _ = writeln!(s, "Latency: no round trips completed");
        }
    }
    if let Some(rate) = &r.rate {
        rate_lines(&mut s, rate, r.config.depth);
    }
    side_lines(&mut s, "Client", &r.client);
    page_cache_line(&mut s, "Client", r.config.mode, &r.client);
    match &r.server {
        Some(server) => {
            let _ = writeln!(
                s,
                "Server: received {} bytes ({} msgs), sent {} bytes ({} msgs) in {:.2} s",
                server.stats.bytes_received,
                server.stats.msgs_received,
                server.stats.bytes_sent,
                server.stats.msgs_sent,
                server.duration_s
            );
            side_lines(&mut s, "Server", server);
            page_cache_line(&mut s, "Server", r.config.mode, server);
        }
        None => {
            let _ = writeln!(s, "Server: sent no figures");
        }
    }
    system_lines(&mut s, r.system.as_ref());
    let _ = writeln!(s, "Verify Errors: {}", m.verify_errors);
    for (who, side) in [("client", Some(&r.client)), ("server", r.server.as_ref())] {
        if let Some(e) = side.and_then(|x| x.stats.first_verify_error.as_ref()) {
            let _ = writeln!(s, "First {who} verify error: {e}");
        }
    }
    for w in &r.warnings {
        let _ = writeln!(s, "Warning: {}", w.text);
    }
    let _ = write!(s, "{RULE}");
    s
}

fn side_lines(s: &mut String, who: &str, side: &SideReport) {
    let io = &side.stats.io;
    let calls = match side.kernel_calls_per_msg {
        Some(per) if io.enters > 0 => format!(
            "{who} Calls: {} io_uring_enter ({per:.2} per message), {} SQEs, {} CQEs, {:.2} CQEs per reap",
            io.enters,
            io.sqes,
            io.cqes,
            side.cqes_per_reap.unwrap_or(0.0)
        ),
        Some(per) => format!("{who} Calls: {} syscalls ({per:.2} per message)", io.syscalls),
        None => format!("{who} Calls: none"),
    };
    let _ = writeln!(s, "{calls}");
    own_cpu_line(s, who, side);
    tcp_line(s, who, side);
    polling_lines(s, who, side);
    counter_lines(s, who, side);
    rx_line(s, who, side);
    if let Some(flags) = &side.send_flags {
        let more = match side.stats.io.more_sends {
            0 => String::new(),
            n => format!(
                "; MSG_MORE on {n} of {} (within linked chains)",
                side.stats.msgs_sent
            ),
        };
        let _ = writeln!(s, "{who} Send flags: {flags}{more}");
    }
    let zc = &side.stats.zc;
    if zc.sends > 0 {
        let _ = writeln!(
            s,
            "{who} Zero-copy: {} sends, {} completed, {} copied ({})",
            zc.sends,
            zc.completions,
            zc.copied,
            side.zc_copied_fraction
                .map_or("n/a".into(), |f| format!("{:.1}% copied", f * 100.0))
        );
    }
}

/// The side's connections' `TCP_INFO` at the end of the run, in one line: counters
/// summed, gauges as mean [min–max]; `n/a` where the kernel did not fill a field.
fn tcp_line(s: &mut String, who: &str, side: &SideReport) {
    let Some(t) = &side.tcp_info else {
        return;
    };
    let na = || "n/a".to_string();
    // `mean [min–max] unit`, each value scaled and rounded alike; the range only where
    // the connections differ.
    let gauge = |g: Option<Gauge>, scale: f64, digits: usize, unit: &str| {
        g.map_or_else(na, |g| {
            let v = |x: f64| format!("{:.digits$}", x * scale);
            if g.min == g.max {
                format!("{} {unit}", v(g.mean))
            } else {
                format!(
                    "{} [{}–{}] {unit}",
                    v(g.mean),
                    v(g.min as f64),
                    v(g.max as f64)
                )
            }
        })
    };
    let secs = |us: Option<u64>| us.map_or_else(na, |us| format!("{:.2} s", us as f64 / 1e6));
    let _ = writeln!(
        s,
        "{who} TCP: {} retransmits ({} in all), cwnd {}, srtt {} (rttvar {}), delivery {}, busy {}, rwnd-limited {}, sndbuf-limited {}",
        t.retransmits.map_or_else(na, |n| n.to_string()),
        t.total_retrans.map_or_else(na, |n| n.to_string()),
        gauge(t.cwnd, 1.0, 0, "segments"),
        gauge(t.srtt_us, 1.0, 0, "µs"),
        gauge(t.rttvar_us, 1.0, 0, "µs"),
        gauge(t.delivery_rate, 8.0 / 1e9, 2, "Gbit/s"),
        secs(t.busy_us),
        secs(t.rwnd_limited_us),
        secs(t.sndbuf_limited_us),
    );
}

/// How the side received, and what that let it check.
fn rx_line(s: &mut String, who: &str, side: &SideReport) {
    let Some(rx) = side.rx else {
        return;
    };
    let checked = match side.rx_content_checked {
        Some(true) => "content verified",
        _ if rx == RxMode::Discard => {
            "content not verified: the kernel dropped the bytes, only byte counts and \
             message boundaries were checked"
        }
        _ => "content not verified (--verify off)",
    };
    let what = match rx {
        RxMode::Copy => "copy (recv into the message)".to_owned(),
        RxMode::Discard => "discard (recv with MSG_TRUNC)".to_owned(),
        RxMode::Zerocopy => {
            let r = &side.stats.rx;
            format!(
                "zerocopy (TCP_ZEROCOPY_RECEIVE): {} bytes mapped, {} copied ({})",
                r.mapped,
                r.copied,
                side.rx_mapped_fraction
                    .map_or("n/a".into(), |f| format!("{:.1}% mapped", f * 100.0))
            )
        }
    };
    let _ = writeln!(s, "{who} Receive: {what}; {checked}");
}

/// sendfile, splice: how the side sent, the pipe the kernel granted, and how the sent
/// regions waited for the peer's read before they were written again.
fn page_cache_line(s: &mut String, who: &str, mode: Mode, side: &SideReport) {
    let Some(how) = mode.page_cache_path(side.backend) else {
        return;
    };
    let b = &side.stats.by_ref;
    let pipe = b.pipe_bytes.map_or("no".into(), |p| format!("{p}-byte"));
    let receipts = match b.receipt_every {
        Some(n) => format!(
            "; {} (one per {n} messages read)",
            crate::vocab::count(b.receipts, "read receipt", "read receipts")
        ),
        None => String::new(),
    };
    let _ = writeln!(
        s,
        "{who} Page cache: {} by {how}; {pipe} pipe; at most {} waited at once for the \
         peer's read{receipts}",
        crate::vocab::count(b.sends, "send", "sends"),
        crate::vocab::count(b.held_max, "sent region", "sent regions")
    );
}

fn ms(ns: u64) -> String {
    format!("{:.1} ms", ns as f64 / 1e6)
}

/// What `--sqpoll` and `--busy-poll` got from the kernel on one side, and what SQ polling
/// cost.
fn polling_lines(s: &mut String, who: &str, side: &SideReport) {
    if let Some(ring) = &side.uring {
        if let Some(sq) = &ring.sqpoll {
            let cpu = sq
                .cpu
                .map_or("unbound".to_owned(), |c| format!("bound to CPU {c}"));
            let cost = match side.own_cpu.as_ref().and_then(|o| Some((o, o.sqpoll_ns?))) {
                Some((own, ns)) => format!(
                    "; SQ thread(s) used {} ({:.1}% of the side's own CPU time, included in it)",
                    ms(ns),
                    100.0 * ns as f64 / own.total_ns().max(1) as f64
                ),
                None => "; SQ thread CPU time not measured".to_owned(),
            };
            let _ = writeln!(
                s,
                "{who} SQ polling: granted (ring flags {}), thread {cpu}, idle {} ms; {} of {} \
                 io_uring_enter woke it{cost}",
                ring.flags, sq.idle_ms, side.stats.io.sq_wakeups, side.stats.io.enters
            );
        }
    }
    if let Some(b) = &side.busy_poll {
        let prefer = match (&b.prefer_refused, b.prefer) {
            (Some(why), _) => format!("prefer refused ({why})"),
            (None, true) => "preferred over interrupts".to_owned(),
            (None, false) => "not preferred".to_owned(),
        };
        let napi = match b.napi_id {
            Some(0) => "socket NAPI id 0: nothing to poll".to_owned(),
            Some(id) => format!("socket NAPI id {id}"),
            None => "socket NAPI id unknown".to_owned(),
        };
        let _ = writeln!(
            s,
            "{who} Busy poll: {} {} µs granted (asked {}), {prefer}; {napi}",
            b.via, b.granted_us, b.requested_us
        );
    }
}

/// One side's own CPU time: its worker threads' user and system time, what share of the
/// CPUs they could use that is, and per byte.
fn own_cpu_line(s: &mut String, who: &str, side: &SideReport) {
    let Some(own) = &side.own_cpu else {
        let _ = writeln!(s, "{who} CPU: not measured");
        return;
    };
    let share = match own.capacity_ns().filter(|&c| c > 0) {
        Some(c) => format!(
            " ({:.1}% of {} CPU(s))",
            100.0 * own.total_ns() as f64 / c as f64,
            own.cpus.unwrap_or(0)
        ),
        None => String::new(),
    };
    let per_byte = side
        .cpu_ns_per_byte
        .map_or(String::new(), |v| format!(", {v:.3} CPU-ns/byte"));
    let _ = writeln!(
        s,
        "{who} CPU (own threads): {} user + {} system = {} in {:.2} s on {} thread(s){share}{per_byte}",
        ms(own.user_ns),
        ms(own.system_ns),
        ms(own.total_ns()),
        own.interval_s,
        own.threads,
    );
}

/// The machine's CPUs over the run: every CPU, and the run's own CPUs where they are
/// fewer.
fn system_lines(s: &mut String, system: Option<&SystemCpu>) {
    let Some(sys) = system else {
        let _ = writeln!(s, "System CPU: not measured (/proc/stat unreadable)");
        return;
    };
    let figures = |f: &CpuFigures, capacity: u64| {
        let share = if capacity > 0 {
            format!(" ({:.1}%)", 100.0 * f.busy_ns as f64 / capacity as f64)
        } else {
            String::new()
        };
        format!(
            "busy {} of {}{share}, softirq {}, irq {}, steal {}",
            ms(f.busy_ns),
            ms(capacity),
            ms(f.softirq_ns),
            ms(f.irq_ns),
            ms(f.steal_ns)
        )
    };
    let _ = writeln!(
        s,
        "System CPU (all {} CPUs, {:.2} s): {}",
        sys.per_cpu.len(),
        sys.interval_s,
        figures(&sys.total, sys.capacity_ns)
    );
    let involved = sys.involved();
    if involved.len() < sys.per_cpu.len() {
        let (f, capacity) = sys.over(&involved);
        let _ = writeln!(
            s,
            "System CPU (the run's CPUs {}): {}",
            crate::placement::join(&involved),
            figures(&f, capacity)
        );
    }
}

/// The counters block of one side: what was counted, what is missing, what it means per
/// byte and per message.
fn counter_lines(s: &mut String, who: &str, side: &SideReport) {
    let Some(c) = &side.counters else {
        if side.counter_scope == CounterScope::Off {
            let _ = writeln!(s, "{who} Counters: off");
        } else {
            let _ = writeln!(s, "{who} Counters: none read");
        }
        return;
    };
    let scope = match side.counter_scope {
        CounterScope::Core => format!("per CPU {}", side.cpus.as_deref().unwrap_or("(all)")),
        _ => "per thread".to_owned(),
    };
    let mut parts = Vec::new();
    let mut add = |name: &str, v: Option<u64>, f: &dyn Fn(u64) -> String| {
        if let Some(v) = v {
            parts.push(format!("{name} {}", f(v)));
        }
    };
    let count = |v: u64| v.to_string();
    let ms = |v: u64| format!("{:.1} ms", v as f64 / 1e6);
    add("task clock", c.task_clock_ns, &ms);
    add("cycles", c.cycles, &count);
    add("instructions", c.instructions, &count);
    add("L1d load misses", c.l1d_load_misses, &count);
    add("LLC load misses", c.llc_load_misses, &count);
    add("context switches", c.context_switches, &count);
    add("migrations", c.cpu_migrations, &count);
    add("page faults", c.page_faults, &count);
    if parts.is_empty() {
        parts.push("none available".into());
    }
    let _ = writeln!(s, "{who} Counters ({scope}): {}", parts.join(", "));
    if let Some(missing) = side.counters_missing.as_ref().filter(|m| !m.0.is_empty()) {
        let names: Vec<&str> = missing.0.iter().map(|c| c.as_str()).collect();
        let _ = writeln!(
            s,
            "{who} Counters missing on this machine: {}",
            names.join(", ")
        );
    }
    let mut derived = Vec::new();
    for (name, v) in [
        ("cycles/byte", side.cycles_per_byte),
        ("instructions/byte", side.instructions_per_byte),
        ("context switches/msg", side.context_switches_per_msg),
    ] {
        if let Some(v) = v {
            derived.push(format!("{v:.3} {name}"));
        }
    }
    if !derived.is_empty() {
        let _ = writeln!(s, "{who} Per unit: {}", derived.join(", "));
    }
    if let Some(cpus) = &side.cpus {
        let _ = writeln!(s, "{who} CPUs: {cpus}");
    }
}

/// The record as pretty JSON.
pub fn json(r: &Record) -> String {
    serde_json::to_string_pretty(r).expect("a Record always serializes")
}

/// The record as one JSON line (for `.jsonl` files).
pub fn json_line(r: &Record) -> String {
    serde_json::to_string(r).expect("a Record always serializes")
}

/// The CSV columns, derived once from the Record struct.
pub fn csv_columns() -> &'static [String] {
    static COLUMNS: OnceLock<Vec<String>> = OnceLock::new();
    COLUMNS.get_or_init(|| {
        let v = serde_json::to_value(Record::example()).expect("serializes");
        let mut cells = Vec::new();
        flatten(&v, "", &mut cells);
        cells.into_iter().map(|(k, _)| k).collect()
    })
}

/// Writes a header and one row per record.
pub fn write_csv<W: io::Write>(w: W, records: &[Record]) -> csv::Result<()> {
    let mut out = csv::Writer::from_writer(w);
    out.write_record(csv_columns())?;
    for r in records {
        out.write_record(csv_row(r))?;
    }
    out.flush()?;
    Ok(())
}

/// The record's cells, in [`csv_columns`] order.
pub fn csv_row(r: &Record) -> Vec<String> {
    let v = serde_json::to_value(r).expect("serializes");
    let mut cells = Vec::new();
    flatten(&v, "", &mut cells);
    let map: std::collections::HashMap<_, _> = cells.into_iter().collect();
    csv_columns()
        .iter()
        .map(|c| map.get(c).cloned().unwrap_or_default())
        .collect()
}

/// The record as CSV text, header included.
pub fn csv(r: &Record) -> String {
    let mut buf = Vec::new();
    write_csv(&mut buf, std::slice::from_ref(r)).expect("writing to memory");
    String::from_utf8(buf).expect("CSV of UTF-8 values")
}

/// Record fields the CSV leaves out, by column name: the histograms (kilobytes of base64
/// that a spreadsheet cannot use; their percentiles are in `latency_*` and
/// `rate_send_lag_*`) and the live intervals (a list; the totals are in the other
/// columns).
pub const JSON_ONLY: &[&str] = &["latency_histogram", "rate_send_lag_histogram", "intervals"];

fn flatten(v: &Value, prefix: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}_{k}")
                };
                if JSON_ONLY.contains(&key.as_str()) {
                    continue;
                }
                flatten(v, &key, out);
            }
        }
        // The warnings' kinds, so that a spreadsheet can filter doubtful rows.
        Value::Array(items) if prefix == "warnings" => {
            let kinds: Vec<&str> = items.iter().filter_map(|w| w["kind"].as_str()).collect();
            out.push((prefix.to_owned(), kinds.join("+")));
        }
        Value::Array(_) => {}
        Value::Null => out.push((prefix.to_owned(), String::new())),
        Value::String(s) => out.push((prefix.to_owned(), s.clone())),
        other => out.push((prefix.to_owned(), other.to_string())),
    }
}

/// A size as the seed's tables write it: `1 KB`, `64 KB`.
pub fn size_label(n: usize) -> String {
    format_size(n).replace('K', " KB").replace('M', " MB")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_banner_says_a_count_where_it_sets_the_run_length() {
        let timed = ClientConfig::default();
        let text = client_banner(&timed, "h:1");
        assert!(text.contains("\nDuration: 3 seconds\n"), "{text}");
        let counted = ClientConfig {
            messages: Some(5000),
            duration: crate::config::MAX_DURATION,
            ..ClientConfig::default()
        };
        let text = client_banner(&counted, "h:1");
        assert!(
            text.contains("\nMessages: 5000 in all (at most 86400 seconds)\n"),
            "{text}"
        );
        assert!(!text.contains("Duration:"), "{text}");
        let text = client_banner(
            &ClientConfig {
                messages: None,
                bytes: Some(10 * 4096 + 1),
                ..counted
            },
            "h:1",
        );
        assert!(
            text.contains("\nBytes: 40961 in all: 11 messages (at most 86400 seconds)\n"),
            "{text}"
        );
        let mut r = Record::example();
        r.interrupted = true;
        r.config.bytes = None;
        assert!(
            human(&r).contains("Interrupted: stopped after 1.00 s of 1000 messages;"),
            "{}",
            human(&r)
        );
    }

    #[test]
    fn interval_lines_are_one_per_thread_then_the_sum_marked_when_omitted() {
        use crate::live::IntervalFigures;
        let figures = |thread| IntervalFigures {
            thread,
            msgs_sent: 10,
            msgs_received: 9,
            sent_gbps: 1.5,
            received_gbps: 1.25,
            p50_us: Some(20.0),
            p99_us: Some(40.0),
            ..Default::default()
        };
        let mut i = Interval {
            start_s: 0.0,
            end_s: 1.0,
            omitted: false,
            threads: vec![figures(Some(0)), figures(Some(1))],
            sum: figures(None),
        };
        let text = interval_lines(&i);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("[  0]   0.00-1.00"), "{text}");
        assert!(lines[2].starts_with("[SUM]"), "{text}");
        assert!(lines[2].contains("1.50 Gbit/s") && lines[2].contains("1.25 Gbit/s"));
        assert!(
            lines[2].contains(" 10 ") && lines[2].contains("20.0 us"),
            "{text}"
        );
        assert!(
            lines[2].trim_end().ends_with("-            -          -"),
            "no TCP_INFO read: {text}"
        );
        i.sum.retransmits = Some(3);
        i.sum.cwnd = Some(10);
        i.sum.cwnd_bytes = Some(10 * 65483);
        i.sum.srtt_us = Some(35);
        let text = interval_lines(&i);
        let sum = text.lines().last().unwrap();
        assert!(sum.ends_with("    3   639 KBytes      35 us"), "{text}");
        let header = interval_header();
        assert_eq!(
            header.find("srtt").map(|at| at + 4),
            Some(sum.len()),
            "columns under their headings: {header}\n{sum}"
        );
        i.omitted = true;
        assert!(interval_lines(&i).lines().all(|l| l.ends_with("(omitted)")));
        assert!(interval_header().starts_with("[ ID] Interval"));
    }

    #[test]
    fn a_window_is_printed_in_iperf3s_units() {
        for (bytes, text) in [
            (0, "0.00 Bytes"),
            (1000, "1000 Bytes"),
            (14_480, "14.1 KBytes"),
            (654_830, "639 KBytes"),
            (3_334_000, "3.18 MBytes"),
            (5 << 30, "5.00 GBytes"),
        ] {
            assert_eq!(iperf_bytes(bytes), text, "{bytes}");
        }
    }

    #[test]
    fn human_summary_keeps_the_seeds_lines() {
        let text = human(&Record::example());
        for line in [
            "[Client 0] Completed. Duration: 1.00 sec, Sent: 4096 bytes (1 msgs), Received: 4096 bytes (1 msgs)",
            "SUMMARY",
            "Active Threads: 1",
            "Total Bytes Sent: 4096",
            "Total Bytes Received: 4096",
            "Total Messages: 1",
            "Throughput: 0.0001 Gbps",
            "Throughput one way: 0.0000 Gbps (the line above counts every byte twice",
            "Avg Latency: 20.0",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(text.contains("Latency p50/p90/p99/p99.9/max"));
        assert!(text.contains("Client Zero-copy: 1 sends, 1 completed, 0 copied (0.0% copied)"));
        for who in ["Client", "Server"] {
            let line = format!(
                "{who} Receive: zerocopy (TCP_ZEROCOPY_RECEIVE): 3072 bytes mapped, 1024 \
                 copied (75.0% mapped); content verified"
            );
            assert!(text.contains(&line), "missing {line:?} in\n{text}");
        }
        let mut r = Record::example();
        r.client
            .set_rx(Some(RxMode::Discard), crate::config::Verify::Sample);
        let text = human(&r);
        assert!(
            text.contains("Client Receive: discard (recv with MSG_TRUNC); content not verified"),
            "{text}"
        );
        assert!(!text.contains("Page cache"), "only for sendfile and splice");
    }

    #[test]
    fn human_summary_has_one_tcp_info_line_per_side() {
        let mut r = Record::example();
        let text = human(&r);
        let line = "TCP: 0 retransmits (1 in all), cwnd 10 segments, srtt 35 µs (rttvar 10 µs), \
                    delivery 8.00 Gbit/s, busy 0.00 s, rwnd-limited 0.00 s, sndbuf-limited 0.00 s";
        assert!(text.contains(&format!("Client {line}")), "{text}");
        assert!(text.contains(&format!("Server {line}")), "{text}");
        // Gauges that differ across connections show their range; a field the kernel did
        // not fill reads n/a, never 0.
        let t = r.client.tcp_info.as_mut().unwrap();
        t.cwnd = Some(crate::tcpinfo::Gauge {
            mean: 20.0,
            min: 10,
            max: 30,
        });
        t.busy_us = None;
        let text = human(&r);
        assert!(text.contains("cwnd 20 [10–30] segments"), "{text}");
        assert!(text.contains("busy n/a,"), "{text}");
        r.server.as_mut().unwrap().tcp_info = None;
        assert!(!human(&r).contains("Server TCP:"));
    }

    #[test]
    fn human_summary_says_how_the_page_cache_modes_sent() {
        let mut r = Record::example();
        r.config.mode = Mode::Splice;
        r.client.stats.by_ref.sends = 1;
        r.client.stats.by_ref.held_max = 1;
        r.client.stats.by_ref.receipts = 3;
        let text = human(&r);
        let line = text
            .lines()
            .find(|l| l.starts_with("Client Page cache:"))
            .unwrap_or_else(|| panic!("no page-cache line in\n{text}"));
        for part in [
            "1 send by splice(2) memfd -> pipe -> socket",
            "65536-byte pipe",
            "at most 1 sent region waited",
            "3 read receipts (one per 32 messages read)",
        ] {
            assert!(line.contains(part), "{part:?} not in {line:?}");
        }
        r.client.backend = crate::config::Backend::Uring;
        assert!(human(&r).contains("IORING_OP_SPLICE memfd -> pipe, linked to pipe -> socket"));
    }

    #[test]
    fn human_summary_shows_each_sides_own_cpu_and_the_machines() {
        let text = human(&Record::example());
        // 1 ms user + 2 ms system of one thread in 1 s, over 8192 bytes.
        for line in [
            "Client CPU (own threads): 1.0 ms user + 2.5 ms system = 3.5 ms in 1.00 s on 1 \
             thread(s) (0.2% of 2 CPU(s)), 427.246 CPU-ns/byte",
            "Server CPU (own threads): 1.0 ms user + 2.5 ms system = 3.5 ms in 1.00 s on 1 \
             thread(s) (0.2% of 2 CPU(s)), 427.246 CPU-ns/byte",
            "Client SQ polling: granted (ring flags sqpoll+single_issuer+submit_all+sq_aff), \
             thread bound to CPU 1, idle 50 ms; 0 of 0 io_uring_enter woke it; SQ thread(s) \
             used 0.5 ms (14.3% of the side's own CPU time, included in it)",
            "Client Busy poll: SO_BUSY_POLL 50 µs granted (asked 50), prefer refused \
             (SO_PREFER_BUSY_POLL: EPERM (Operation not permitted)); socket NAPI id 0: \
             nothing to poll",
            "System CPU (all 2 CPUs, 1.00 s): busy 400.0 ms of 2000.0 ms (20.0%), softirq \
             40.0 ms, irq 10.0 ms, steal 10.0 ms",
            "System CPU (the run's CPUs 0): busy 400.0 ms of 1000.0 ms (40.0%), softirq \
             40.0 ms, irq 10.0 ms, steal 10.0 ms",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(!text.contains("CPU busy"), "{text}");
        let mut r = Record::example();
        r.system = None;
        r.server.as_mut().unwrap().own_cpu = None;
        let text = human(&r);
        assert!(text.contains("Server CPU: not measured"), "{text}");
        assert!(text.contains("System CPU: not measured"), "{text}");
    }

    #[test]
    fn csv_columns_cover_every_scalar_field_and_no_list() {
        let cols = csv_columns();
        for c in [
            "schema_version",
            "config_mode",
            "config_duration",
            "summary_throughput_gbps",
            "summary_one_way_gbps",
            "latency_p99_us",
            "client_stats_zc_copied",
            "server_stats_io_syscalls",
            "server_zc_copied_fraction",
            "client_rx",
            "server_rx_mapped_fraction",
            "server_rx_content_checked",
            "client_stats_rx_mapped",
            "client_send_flags",
            "server_send_flags",
        ] {
            assert!(cols.iter().any(|x| x == c), "no column {c} in {cols:?}");
        }
        assert!(!cols.iter().any(|c| c.starts_with("threads")));
        // The histogram is in the example, and only in its JSON.
        assert!(Record::example().latency_histogram.is_some());
        assert!(!cols.iter().any(|c| c.contains("histogram")), "{cols:?}");
        assert!(!csv(&Record::example())
            .contains(Record::example().latency_histogram.as_deref().unwrap()));
        // Every Option in the example is filled, so no column hides behind a null.
        let v = serde_json::to_value(Record::example()).unwrap();
        let mut cells = Vec::new();
        flatten(&v, "", &mut cells);
        assert!(cells.iter().all(|(_, x)| !x.is_empty()), "{cells:?}");
    }

    #[test]
    fn missing_values_are_empty_cells_not_zero() {
        let mut r = Record::example();
        r.latency = None;
        r.server = None;
        let row = csv_row(&r);
        let cols = csv_columns();
        let cell = |name: &str| &row[cols.iter().position(|c| c == name).unwrap()];
        assert_eq!(cell("latency_p50_us"), "");
        assert_eq!(cell("server_stats_bytes_sent"), "");
        assert_eq!(cell("config_mode"), "two-copy");
        let text = csv(&r);
        let mut rd = csv::Reader::from_reader(text.as_bytes());
        assert_eq!(rd.headers().unwrap().len(), cols.len());
        assert_eq!(rd.records().next().unwrap().unwrap().len(), cols.len());
    }

    #[test]
    fn json_carries_config_and_schema() {
        let v: Value = serde_json::from_str(&json(&Record::example())).unwrap();
        assert_eq!(v["schema_version"], crate::record::SCHEMA_VERSION);
        assert_eq!(v["config"]["mode"], "two-copy");
        assert_eq!(v["config"]["size"], 4096);
        assert!(v["threads"].is_array());
        assert!(v["latency_histogram"].is_string());
        assert!(!json_line(&Record::example()).contains('\n'));
    }
}
