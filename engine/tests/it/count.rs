//! A run of a count (`--messages`, `-n`) rather than a duration, on both engines: the
//! client sends exactly the count, split evenly over its connections, the server receives
//! exactly that, and a count the time cap cuts short says so.

use std::time::Duration;

use engine::{Backend, Direction, Mode, Record, WarningKind, Workload};

use crate::harness::{assert_clean_run, TestServer};

const ENGINES: [Backend; 2] = [Backend::Syscall, Backend::Uring];

/// A counted run: 2 threads (uring: 2 connections each), depth 4, a duration that would
/// be the cap were it reached.
fn counted(
    srv: &TestServer,
    backend: Backend,
    mode: Mode,
    workload: Workload,
    set: impl FnOnce(&mut engine::ClientConfig),
) -> Record {
    let mut config = srv.client(backend, mode, workload);
    config.threads = 2;
    config.conns = if backend == Backend::Uring { 2 } else { 1 };
    config.depth = 4;
    // Far beyond what the counts below take, even on a loaded machine.
    config.duration = Duration::from_secs(120);
    set(&mut config);
    let case = format!("{backend} {mode} {workload} {:?}", config.message_count());
    srv.run(&config, &case)
}

/// What every run that reached its count shows.
fn assert_count_reached(r: &Record, count: u64, case: &str) {
    assert_clean_run(r, case);
    let server = r.server.as_ref().expect("server figures");
    assert_eq!(
        r.client.stats.msgs_sent, count,
        "{case}: the client's count"
    );
    assert_eq!(
        server.stats.msgs_received, count,
        "{case}: the server's count"
    );
    assert_eq!(
        r.client.stats.bytes_sent,
        count * r.config.size as u64,
        "{case}"
    );
    assert!(
        !r.warnings
            .iter()
            .any(|w| w.kind == WarningKind::Interrupted),
        "{case}: {:?}",
        r.warnings
    );
    // It ended by its count, not at its cap.
    assert!(
        r.summary.duration_s > 0.0 && r.summary.duration_s < 60.0,
        "{case}: {}",
        r.summary.duration_s
    );
}

#[test]
fn messages_sends_exactly_the_count_split_over_the_connections() {
    for server in ENGINES {
        let srv = TestServer::with_backend(server);
        for backend in ENGINES {
            for (mode, workload) in [
                (Mode::OneCopy, Workload::Echo),
                (Mode::TwoCopy, Workload::Stream),
                (Mode::Zc, Workload::Stream),
                (Mode::Sendfile, Workload::Stream),
            ] {
                let case = format!("{backend} client, {server} server: {mode} {workload}");
                // Uneven over the connections: some send one more.
                let n = 1003;
                let r = counted(&srv, backend, mode, workload, |c| c.messages = Some(n));
                assert_count_reached(&r, n, &case);
                let conns = r.config.total_connections() as u64;
                for t in &r.threads {
                    let share = |flow: u64| n / conns + u64::from(flow < n % conns);
                    let first = t.thread as u64 * r.config.conns as u64;
                    let want: u64 = (first..first + r.config.conns as u64).map(share).sum();
                    assert_eq!(t.stats.msgs_sent, want, "{case}: thread {}", t.thread);
                }
                if workload == Workload::Echo {
                    assert_eq!(r.latency.as_ref().unwrap().count, n, "{case}");
                }
            }
        }
    }
}

#[test]
fn bytes_round_up_to_whole_messages() {
    for backend in ENGINES {
        let srv = TestServer::with_backend(backend);
        for workload in [Workload::Echo, Workload::Stream] {
            let case = format!("{backend} {workload}");
            let r = counted(&srv, backend, Mode::TwoCopy, workload, |c| {
                c.size = 1000;
                c.bytes = Some(100 * 1000 + 1);
            });
            assert_count_reached(&r, 101, &case);
            assert_eq!(r.config.bytes, Some(100_001), "{case}: kept as given");
            assert_eq!(r.config.messages, None, "{case}");
        }
    }
}

#[test]
fn a_bidir_count_is_of_what_the_client_sends() {
    for backend in ENGINES {
        let srv = TestServer::with_backend(backend);
        let r = counted(&srv, backend, Mode::OneCopy, Workload::Stream, |c| {
            c.direction = Direction::Bidir;
            c.messages = Some(500);
        });
        let server = r.server.as_ref().unwrap();
        assert_eq!(r.summary.verify_errors, 0, "{backend}");
        assert_eq!(r.client.stats.msgs_sent, 500, "{backend}");
        assert_eq!(server.stats.msgs_received, 500, "{backend}");
        assert_eq!(r.client.stats.msgs_received, server.stats.msgs_sent);
    }
}

/// The count is of measured messages: those the warm-up sent are not in it.
#[test]
fn a_count_follows_the_warm_up() {
    for backend in ENGINES {
        let srv = TestServer::with_backend(backend);
        for workload in [Workload::Echo, Workload::Stream] {
            let case = format!("{backend} {workload}");
            let r = counted(&srv, backend, Mode::OneCopy, workload, |c| {
                c.omit = Duration::from_millis(200);
                c.messages = Some(2000);
            });
            let server = r.server.as_ref().unwrap();
            assert_eq!(r.summary.verify_errors, 0, "{case}");
            assert_eq!(r.client.stats.msgs_sent, 2000, "{case}");
            // The server cuts the warm-up too, on its own clock (from its first message,
            // so no earlier than the client). In echo it then counts no more than the
            // client's measured messages and the echoes in flight at the cut, where the
            // warm-up alone sent thousands. (A stream's cut is looser: what the socket
            // buffers held at the client's cut reaches the server after its own; see
            // live.rs.)
            if workload == Workload::Stream {
                continue;
            }
            let in_flight = (r.config.total_connections() * r.config.depth) as u64;
            assert!(
                server.stats.msgs_received <= 2000 + in_flight,
                "{case}: the server counts the warm-up: {}",
                server.stats.msgs_received
            );
        }
    }
}

#[test]
fn a_count_its_cap_cuts_short_says_so() {
    for backend in ENGINES {
        let srv = TestServer::with_backend(backend);
        for workload in [Workload::Echo, Workload::Stream] {
            let case = format!("{backend} {workload}");
            let r = counted(&srv, backend, Mode::OneCopy, workload, |c| {
                c.duration = Duration::from_millis(300);
                c.messages = Some(1 << 40);
            });
            assert_eq!(r.summary.verify_errors, 0, "{case}");
            assert!(!r.interrupted, "{case}: no signal stopped it");
            let sent = r.client.stats.msgs_sent;
            assert!(sent > 0 && sent < 1 << 40, "{case}");
            assert_eq!(
                r.server.as_ref().unwrap().stats.msgs_received,
                sent,
                "{case}"
            );
            let w = r
                .warnings
                .iter()
                .find(|w| w.kind == WarningKind::Interrupted)
                .unwrap_or_else(|| panic!("{case}: no warning: {:?}", r.warnings));
            assert!(
                w.text.contains("the time cap of 0.3 s ended the run after")
                    && w.text
                        .contains(&format!("{sent} messages of the 1099511627776")),
                "{case}: {}",
                w.text
            );
        }
    }
}
