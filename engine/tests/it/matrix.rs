//! Every backend × mode × workload × depth on loopback, full verification, both sides'
//! byte counts checked.

use engine::{run_client, Backend, Mode, Workload};

use crate::harness::{assert_clean_run, assert_zc_loopback, TestServer};

fn run_case(backend: Backend, mode: Mode, workload: Workload, depth: usize) {
    run_pair(backend, backend, mode, workload, depth);
}

/// A `client` engine against a `server` engine.
fn run_pair(client: Backend, server: Backend, mode: Mode, workload: Workload, depth: usize) {
    let backend = client;
    let case = format!("{client} client, {server} server: {mode} {workload} depth {depth}");
    let server = TestServer::with_backend(server);
    let mut config = server.client(backend, mode, workload);
    config.depth = depth;
    config.threads = 2;
    config.size = 16 * 1024 + 8; // uneven: the last field takes the remainder
    let started = std::time::Instant::now();
    let record = server.run(&config, &case);
    // A ring waits in 100 ms ticks: an idle tick wakes it empty, as many as the run took
    // tenths of a second, which a starved run on a loaded machine stretches.
    let ticks = (started.elapsed().as_secs_f64() * 10.0).ceil() as u64;
    assert_clean_run(&record, &case);
    assert_eq!(record.threads.len(), 2, "{case}");
    let io = &record.client.stats.io;
    match backend {
        Backend::Syscall => assert!(io.syscalls > 0 && io.enters == 0, "{case}: {io:?}"),
        Backend::Uring => {
            assert!(io.enters > 0 && io.syscalls == 0, "{case}: {io:?}");
            assert!(
                io.sqes >= record.client.stats.msgs_sent,
                "{case}: an SQE per send"
            );
            let setup = record.client.uring.as_ref().expect("ring setup recorded");
            if setup.cqe_skip && !mode.is_zero_copy() {
                // Sends inside a chain succeed silently: one completion per round trip at
                // echo depth 1 (send + linked receive), one per chain in stream.
                assert!(io.cqes <= io.sqes, "{case}: {io:?}");
                if depth > 1 || workload == Workload::Echo {
                    assert!(io.cqes < io.sqes, "{case}: chains post fewer CQEs: {io:?}");
                }
                if workload == Workload::Echo && depth == 1 {
                    assert!(
                        io.cqes <= io.sqes / 2 + 8,
                        "{case}: one CQE per round trip: {io:?}"
                    );
                }
            } else {
                assert!(io.cqes >= io.sqes, "{case}: every SQE completes: {io:?}");
            }
            assert!(record.client.cqes_per_reap.unwrap() >= 1.0, "{case}");
            // Regression: a CQ head published late made every other wait return at once,
            // empty. Now nearly every enter reaps (the idle 100 ms timer ticks aside).
            for (side, io) in [
                ("client", io),
                ("server", &record.server.as_ref().unwrap().stats.io),
            ] {
                if io.enters > 0 {
                    assert!(
                        io.enters <= io.reaps + io.reaps / 10 + 20 + ticks,
                        "{case}: {side} woke empty: {io:?}"
                    );
                }
            }
            assert!(!setup.flags.0.is_empty(), "{case}");
            // zc-fixed's chains of messages under a segment share segments (MSG_MORE);
            // a chain of one has nothing to share with.
            if mode == Mode::ZcFixed && depth > 1 && workload == Workload::Stream {
                assert!(io.more_sends > 0, "{case}: {io:?}");
            }
            if depth == 1 && workload == Workload::Stream {
                assert_eq!(io.more_sends, 0, "{case}: {io:?}");
            }
            assert_eq!(setup.fixed_buffers, mode == Mode::ZcFixed, "{case}");
        }
    }
    let server_io = &record.server.as_ref().unwrap().stats.io;
    assert!(
        server_io.kernel_calls() > 0,
        "{case}: server calls counted: {server_io:?}"
    );
    if mode.is_zero_copy() {
        assert_zc_loopback(&record.client, &case);
        if workload == Workload::Echo {
            assert_zc_loopback(record.server.as_ref().unwrap(), &format!("{case} (server)"));
        }
    } else {
        assert_eq!(record.client.stats.zc.sends, 0, "{case}");
    }
}

macro_rules! matrix {
    ($($name:ident: $backend:ident $mode:ident $workload:ident $depth:literal;)+) => {$(
        #[test]
        fn $name() {
            run_case(Backend::$backend, Mode::$mode, Workload::$workload, $depth);
        }
    )+};
}

matrix! {
    syscall_two_copy_echo_d1: Syscall TwoCopy Echo 1;
    syscall_two_copy_echo_d4: Syscall TwoCopy Echo 4;
    syscall_two_copy_stream_d1: Syscall TwoCopy Stream 1;
    syscall_two_copy_stream_d4: Syscall TwoCopy Stream 4;
    syscall_one_copy_echo_d1: Syscall OneCopy Echo 1;
    syscall_one_copy_echo_d4: Syscall OneCopy Echo 4;
    syscall_one_copy_stream_d1: Syscall OneCopy Stream 1;
    syscall_one_copy_stream_d4: Syscall OneCopy Stream 4;
    syscall_zc_echo_d1: Syscall Zc Echo 1;
    syscall_zc_echo_d4: Syscall Zc Echo 4;
    syscall_zc_stream_d1: Syscall Zc Stream 1;
    syscall_zc_stream_d4: Syscall Zc Stream 4;
    uring_two_copy_echo_d1: Uring TwoCopy Echo 1;
    uring_two_copy_echo_d8: Uring TwoCopy Echo 8;
    uring_two_copy_stream_d1: Uring TwoCopy Stream 1;
    uring_two_copy_stream_d8: Uring TwoCopy Stream 8;
    uring_one_copy_echo_d1: Uring OneCopy Echo 1;
    uring_one_copy_echo_d8: Uring OneCopy Echo 8;
    uring_one_copy_stream_d1: Uring OneCopy Stream 1;
    uring_one_copy_stream_d8: Uring OneCopy Stream 8;
    uring_zc_echo_d1: Uring Zc Echo 1;
    uring_zc_echo_d8: Uring Zc Echo 8;
    uring_zc_stream_d1: Uring Zc Stream 1;
    uring_zc_stream_d8: Uring Zc Stream 8;
    uring_zc_fixed_echo_d1: Uring ZcFixed Echo 1;
    uring_zc_fixed_echo_d8: Uring ZcFixed Echo 8;
    uring_zc_fixed_stream_d1: Uring ZcFixed Stream 1;
    uring_zc_fixed_stream_d8: Uring ZcFixed Stream 8;
}

/// The engines speak the same wire: each client engine against the other server engine.
#[test]
fn engines_interoperate() {
    for mode in [Mode::TwoCopy, Mode::OneCopy, Mode::Zc] {
        for workload in [Workload::Echo, Workload::Stream] {
            run_pair(Backend::Uring, Backend::Syscall, mode, workload, 4);
            run_pair(Backend::Syscall, Backend::Uring, mode, workload, 4);
        }
    }
}

/// A uring server's workers each serve many connections: 8 clients on 2 rings, and a
/// uring client with several connections per ring.
#[test]
fn many_connections_share_few_rings() {
    let server = TestServer::with_backend(Backend::Uring);
    let mut config = server.client(Backend::Uring, Mode::OneCopy, Workload::Echo);
    config.threads = 2;
    config.conns = 4;
    config.depth = 2;
    let record = run_client(&config, &|_| {}).expect("8 connections on 2 + 2 rings");
    assert_clean_run(&record, "2 threads x 4 conns");
    assert_eq!(record.summary.connections, 8);
    assert_eq!(
        record.threads.iter().map(|t| t.connections).sum::<usize>(),
        8
    );
    assert!(
        server
            .events()
            .iter()
            .filter(|e| e.starts_with("disconnected"))
            .count()
            == 8
    );
}

/// Large messages with deep pipelines on both directions must not deadlock: each side
/// fills the other's socket buffers.
#[test]
fn deep_echo_of_large_messages_does_not_deadlock() {
    for (backend, mode) in [
        (Backend::Syscall, Mode::TwoCopy),
        (Backend::Syscall, Mode::OneCopy),
        (Backend::Syscall, Mode::Zc),
        (Backend::Uring, Mode::TwoCopy),
        (Backend::Uring, Mode::ZcFixed),
    ] {
        let server = TestServer::with_backend(backend);
        let mut config = server.client(backend, mode, Workload::Echo);
        config.size = 1 << 20;
        config.depth = 16;
        let case = format!("{mode} 1M depth 16");
        let record = server.run(&config, &case);
        assert_clean_run(&record, &case);
    }
}

/// Two-copy over uring with multishot receives into provided buffers, on either side or
/// both, echo and stream, shallow and deep: the same bytes, the same checks.
#[test]
fn two_copy_multishot_receive() {
    use engine::{ServerConfig, UringRecv};
    for (server_recv, client_recv) in [
        (UringRecv::Multishot, UringRecv::Multishot),
        (UringRecv::Single, UringRecv::Multishot),
        (UringRecv::Multishot, UringRecv::Single),
    ] {
        let server = TestServer::start(ServerConfig {
            backend: Backend::Uring,
            workers: Some(2),
            uring_recv: server_recv,
            idle_timeout: std::time::Duration::from_secs(2),
            ..Default::default()
        });
        for workload in [Workload::Echo, Workload::Stream] {
            for (depth, size) in [(1, 4096), (8, 100_000)] {
                let case = format!(
                    "server {server_recv}, client {client_recv}: {workload} d{depth} {size}"
                );
                let mut config = server.client(Backend::Uring, Mode::TwoCopy, workload);
                config.uring_recv = client_recv;
                config.depth = depth;
                config.size = size;
                config.threads = 2;
                let record = server.run(&config, &case);
                assert_clean_run(&record, &case);
                assert_eq!(
                    record.client.uring.as_ref().unwrap().recv,
                    client_recv,
                    "{case}"
                );
                assert_eq!(
                    record.server.as_ref().unwrap().uring.as_ref().unwrap().recv,
                    server_recv,
                    "{case}"
                );
            }
        }
    }
}
