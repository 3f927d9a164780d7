//! Live intervals read TCP_INFO at every look, on both engines.

use std::time::Duration;

use engine::{run_client, Backend, CounterScope, Mode, ServerConfig, Workload};

use crate::harness::{workers, TestServer};

fn server(backend: Backend) -> TestServer {
    TestServer::start(ServerConfig {
        backend,
        workers: workers(backend, 2),
        counters: CounterScope::Thread,
        idle_timeout: Duration::from_secs(2),
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
    let r = run_client(&config, &|_| {}).unwrap_or_else(|e| panic!("{case}: {e}"));
    assert!(r.intervals.len() >= 2, "{case}: {:?}", r.intervals);
    for i in &r.intervals {
        for f in i.threads.iter().chain([&i.sum]) {
            assert!(f.retransmits.is_some(), "{case}: {f:?}");
            assert!(f.cwnd.is_some_and(|c| c > 0), "{case}: {f:?}");
            assert!(f.srtt_us.is_some(), "{case}: {f:?}");
        }
        let threads: u64 = i.threads.iter().map(|f| f.retransmits.unwrap()).sum();
        assert_eq!(i.sum.retransmits, Some(threads), "{case}");
        // Human: the Retr, Cwnd and srtt columns hold numbers, not `-`.
        let text = engine::export::interval_lines(i);
        for line in text.lines() {
            let cols: Vec<&str> = line.split_whitespace().rev().take(4).collect();
            assert_eq!(cols[0], "us", "{case}: {line}");
            for (col, what) in cols[1..].iter().zip(["srtt", "cwnd", "retransmits"]) {
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
