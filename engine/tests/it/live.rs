//! Live intervals read TCP_INFO at every look, and `--omit` cuts the warm-up out of the
//! server's figures and the client's per-thread counters, on both engines.

use std::time::Duration;

use engine::{Backend, CounterScope, Interval, Mode, Record, ServerConfig, Workload};

use crate::harness::{workers, TestServer};

fn server(backend: Backend) -> TestServer {
    TestServer::start(ServerConfig {
        backend,
        workers: workers(backend, 2),
        counters: CounterScope::Thread,
        ..Default::default()
    })
}

/// Every interval's lines carry retransmits, cwnd and srtt (loopback: the kernel gives
/// them all), the human lines print them as numbers, and the retransmits of the
/// intervals add up to no more than the end-of-run count (the reporter starts counting
/// at the start line; the end-of-run reading also holds the handshake's).
fn intervals_read_tcp_info(backend: Backend, workload: Workload) {
    let case = format!("{backend} {workload}");
    let srv = server(backend);
    let mut config = srv.client(backend, Mode::OneCopy, workload);
    config.threads = 2;
    // A uring thread runs several connections: its line sums and averages them.
    config.conns = if backend == Backend::Uring { 2 } else { 1 };
    config.duration = Duration::from_millis(400);
    config.interval = Duration::from_millis(100);
    let r = srv.run(&config, &case);
    assert!(r.intervals.len() >= 2, "{case}: {:?}", r.intervals);
    for i in &r.intervals {
        for f in i.threads.iter().chain([&i.sum]) {
            assert!(f.retransmits.is_some(), "{case}: {f:?}");
            assert!(f.cwnd.is_some_and(|c| c > 0), "{case}: {f:?}");
            // Whole segments of at least the smallest MSS TCP allows (536 bytes).
            let (cwnd, bytes) = (f.cwnd.unwrap(), f.cwnd_bytes.expect("cwnd in bytes"));
            assert!(bytes >= cwnd * 536, "{case}: {f:?}");
            assert!(f.srtt_us.is_some(), "{case}: {f:?}");
        }
        let threads: u64 = i.threads.iter().map(|f| f.retransmits.unwrap()).sum();
        assert_eq!(i.sum.retransmits, Some(threads), "{case}");
        // Human: the Retr, Cwnd and srtt columns hold numbers, not `-`.
        let text = engine::export::interval_lines(i);
        for line in text.lines() {
            // From the end: "us", srtt, the window's unit, its size, retransmits.
            let cols: Vec<&str> = line.split_whitespace().rev().take(5).collect();
            assert_eq!(cols[0], "us", "{case}: {line}");
            assert!(cols[2].ends_with("Bytes"), "{case}: cwnd unit in {line}");
            assert!(cols[3].parse::<f64>().is_ok(), "{case}: cwnd in {line}");
            for (col, what) in [(cols[1], "srtt"), (cols[4], "retransmits")] {
                assert!(col.parse::<u64>().is_ok(), "{case}: {what} in {line}");
            }
        }
    }
    for (t, thread) in r.threads.iter().enumerate() {
        let in_intervals: u64 = r
            .intervals
            .iter()
            .map(|i| i.threads[t].retransmits.unwrap())
            .sum();
        let at_end: u64 = thread
            .tcp_info
            .iter()
            .map(|c| c.total_retrans.expect("read at the end"))
            .sum();
        assert!(in_intervals <= at_end, "{case} thread {t}");
    }
    let all: u64 = r.intervals.iter().map(|i| i.sum.retransmits.unwrap()).sum();
    let total = r.client.tcp_info.as_ref().and_then(|t| t.total_retrans);
    assert!(all <= total.expect("the client's summary"), "{case}");
}

#[test]
fn syscall_intervals_read_tcp_info() {
    intervals_read_tcp_info(Backend::Syscall, Workload::Stream);
    intervals_read_tcp_info(Backend::Syscall, Workload::Echo);
}

#[test]
fn uring_intervals_read_tcp_info() {
    intervals_read_tcp_info(Backend::Uring, Workload::Stream);
    intervals_read_tcp_info(Backend::Uring, Workload::Echo);
}

/// Messages the client sent over the whole run, warm-up included: the intervals count
/// them all (the record's counts leave the warm-up out).
fn sent_in_all(intervals: &[Interval]) -> u64 {
    intervals.iter().map(|i| i.sum.msgs_sent).sum()
}

const OMIT: Duration = Duration::from_secs(1);
const DURATION: Duration = Duration::from_millis(300);

fn run_with_omit(srv: &TestServer, backend: Backend, workload: Workload) -> Record {
    let mut config = srv.client(backend, Mode::OneCopy, workload);
    config.threads = 2;
    config.depth = 4;
    config.omit = OMIT;
    config.duration = DURATION;
    config.interval = Duration::from_millis(250);
    config.counters = CounterScope::Thread;
    srv.run(&config, &format!("{backend} {workload}"))
}

/// The hello tells the server of the warm-up: it counts from its first message plus
/// `--omit`, on its own clock, so it counts fewer messages than the client sent in all,
/// no more than the client's measured ones and what was in flight (echo: `depth` per
/// connection), and its per-connection counters and duration cover about `-d`, as the
/// client's per-thread counters do. The record warns of what still holds the warm-up
/// (TCP_INFO's counters), and of nothing that is cut.
fn omit_cuts_both_sides(backend: Backend, workload: Workload) {
    let case = format!("{backend} {workload}");
    let srv = server(backend);
    let r = run_with_omit(&srv, backend, workload);
    let server = r.server.as_ref().expect("the server's side");
    let (c, s) = (&r.client.stats, &server.stats);
    let all = sent_in_all(&r.intervals);
    assert!(
        c.msgs_sent > 0 && all > c.msgs_sent,
        "{case}: {all} vs {c:?}"
    );
    assert!(s.msgs_received > 0, "{case}: {s:?}");
    // Without the cut the server receives every message sent.
    assert!(
        s.msgs_received < all,
        "{case}: the server counted the warm-up: {} of {all}",
        s.msgs_received
    );
    if workload == Workload::Echo {
        let in_flight = r.config.depth as u64 * r.summary.connections as u64;
        assert!(
            s.msgs_received <= c.msgs_sent + in_flight,
            "{case}: server {} vs client {} + {in_flight}",
            s.msgs_received,
            c.msgs_sent
        );
    }
    // Each connection's time and its thread's CPU time run from the server's cut: well
    // under the warm-up plus -d (generous: a loaded machine stretches the end).
    for p in &r.server_reports {
        assert!(
            p.duration_s < OMIT.as_secs_f64(),
            "{case}: {}",
            p.duration_s
        );
        // The serving thread's readings (counters, calls, CPU time) were taken again at
        // the cut: they span about -d, not the warm-up and -d since the connection began.
        let thread = p
            .samples
            .iter()
            .find(|s| s.start.cpu.is_some())
            .unwrap_or_else(|| panic!("{case}: the serving thread's sample"));
        let (a, b) = (thread.start.cpu.as_ref(), thread.end.cpu.as_ref());
        let window = (b.unwrap().at_ns - a.unwrap().at_ns) as f64 / 1e9;
        assert!(window < OMIT.as_secs_f64(), "{case}: {window} s");
        assert!(
            thread.start.counters.is_some(),
            "{case}: counted per thread"
        );
    }
    let windows: f64 = r.server_reports.iter().map(|p| p.duration_s + 0.05).sum();
    let task = |side: &engine::SideReport| {
        side.counters
            .as_ref()
            .and_then(|c| c.task_clock_ns)
            .unwrap_or_else(|| panic!("{case}: task clock counted"))
    };
    assert!(
        (task(server) as f64) < windows * 1e9,
        "{case}: server task clock {} ns over {windows} s",
        task(server)
    );
    // The client's per-thread counters are read again at the warm-up's end, where its
    // own CPU time starts (getrusage, from the flows' end of the warm-up): the task clock
    // they count is then about that CPU time — it would be about four times it, warm-up
    // and all, if they were not. The two are different clocks (perf's task clock,
    // getrusage's tick-sampled split): on the development VM under load they disagree by
    // up to about 25% either way, so the bound is twice, well short of four times.
    let own = r.client.own_cpu.as_ref().expect("the client's CPU time");
    let own_ns = (own.user_ns + own.system_ns) as f64;
    assert!(
        (task(&r.client) as f64) <= own_ns * 2.0 + 5e6,
        "{case}: client task clock {} ns, own CPU {own_ns} ns",
        task(&r.client)
    );
    let texts: Vec<&str> = r.warnings.iter().map(|w| w.text.as_str()).collect();
    assert!(
        !texts
            .iter()
            .any(|w| w.contains("server's figures") || w.contains("per-thread counters")),
        "{case}: {texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|w| w.contains("--omit") && w.contains("TCP_INFO")),
        "{case}: what still holds the warm-up is named: {texts:?}"
    );
}

#[test]
fn syscall_omit_cuts_the_servers_figures_and_the_threads_counters() {
    omit_cuts_both_sides(Backend::Syscall, Workload::Echo);
    omit_cuts_both_sides(Backend::Syscall, Workload::Stream);
}

#[test]
fn uring_omit_cuts_the_servers_figures_and_the_threads_counters() {
    omit_cuts_both_sides(Backend::Uring, Workload::Echo);
    omit_cuts_both_sides(Backend::Uring, Workload::Stream);
}
