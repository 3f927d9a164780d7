//! sendfile and splice (the fields in a memfd's page cache, sent by reference) on both
//! engines, echo and stream, on loopback with full verification. On loopback the peer
//! reads from the very pages sent, so a region written before the peer read it shows up
//! as a verification error: these runs are the proof of the region-reuse rule.

use engine::{Backend, Mode, Workload};

use crate::harness::{assert_clean_run, TestServer};

/// Runs `mode` on `backend` (both ends) and checks the run, the page-cache figures and,
/// in stream, that the receiver's read receipts flowed.
fn run_case(backend: Backend, mode: Mode, workload: Workload, depth: usize, size: usize) {
    let case = format!("{backend}: {mode} {workload} depth {depth} size {size}");
    let server = TestServer::with_backend(backend);
    let mut config = server.client(backend, mode, workload);
    config.depth = depth;
    config.threads = 2;
    config.size = size;
    // Long enough for small messages to wrap their ring of regions several times even on
    // a loaded machine (the receipt counts below hold whatever the rate).
    config.duration = std::time::Duration::from_secs(1);
    let record = server.run(&config, &case);
    assert_clean_run(&record, &case);
    let (c, s) = (&record.client.stats, &record.server.as_ref().unwrap().stats);
    assert_eq!(c.zc.sends, 0, "{case}: no MSG_ZEROCOPY involved");
    assert_eq!(
        c.by_ref.sends, c.msgs_sent,
        "{case}: every send from the page cache"
    );
    assert!(
        c.by_ref.held_max >= 1,
        "{case}: sent regions waited for the read"
    );
    let pipe = c.by_ref.pipe_bytes.expect("the pipe the kernel granted");
    assert!(
        pipe >= size as u64,
        "{case}: a pipe holds a message: {pipe}"
    );
    match workload {
        Workload::Echo => {
            assert_eq!(
                s.by_ref.sends, s.msgs_sent,
                "{case}: echoes from the page cache"
            );
            assert_eq!(c.by_ref.receipts + s.by_ref.receipts, 0, "{case}");
        }
        Workload::Stream => {
            // One receipt per `every` messages read, on every connection, each one read.
            let every = c
                .by_ref
                .receipt_every
                .expect("stream records its receipt interval");
            for t in &record.threads {
                let (sent, got) = (t.stats.msgs_sent, t.stats.by_ref.receipts);
                assert_eq!(
                    got,
                    sent / every,
                    "{case}: thread {}: {sent} sent",
                    t.thread
                );
            }
            assert_eq!(
                c.by_ref.receipts, s.by_ref.receipts,
                "{case}: every receipt read"
            );
        }
    }
    if backend == Backend::Syscall {
        assert!(c.by_ref.extra_calls <= c.io.syscalls, "{case}: counted in");
    }
}

macro_rules! cases {
    ($($name:ident: $backend:ident $mode:ident $workload:ident $depth:literal $size:expr;)+) => {$(
        #[test]
        fn $name() {
            run_case(Backend::$backend, Mode::$mode, Workload::$workload, $depth, $size);
        }
    )+};
}

// Small messages (many of them: the ring wraps thousands of times), uneven mid sizes
// (the last field takes the remainder; regions share pages), and large ones.
cases! {
    syscall_sendfile_echo_d1: Syscall Sendfile Echo 1 16 * 1024 + 8;
    syscall_sendfile_echo_d8: Syscall Sendfile Echo 8 1000;
    syscall_sendfile_stream_d1: Syscall Sendfile Stream 1 16 * 1024 + 8;
    syscall_sendfile_stream_d8: Syscall Sendfile Stream 8 1000;
    syscall_sendfile_stream_large: Syscall Sendfile Stream 4 (1 << 20) - 5000;
    syscall_splice_echo_d1: Syscall Splice Echo 1 16 * 1024 + 8;
    syscall_splice_echo_d8: Syscall Splice Echo 8 1000;
    syscall_splice_stream_d1: Syscall Splice Stream 1 16 * 1024 + 8;
    syscall_splice_stream_d8: Syscall Splice Stream 8 1000;
    syscall_splice_echo_large: Syscall Splice Echo 4 (1 << 20) - 5000;
    uring_sendfile_echo_d1: Uring Sendfile Echo 1 16 * 1024 + 8;
    uring_sendfile_echo_d8: Uring Sendfile Echo 8 1000;
    uring_sendfile_stream_d1: Uring Sendfile Stream 1 16 * 1024 + 8;
    uring_sendfile_stream_d8: Uring Sendfile Stream 8 1000;
    uring_sendfile_stream_large: Uring Sendfile Stream 4 (1 << 20) - 5000;
    uring_splice_echo_d1: Uring Splice Echo 1 16 * 1024 + 8;
    uring_splice_echo_d8: Uring Splice Echo 8 1000;
    uring_splice_stream_d1: Uring Splice Stream 1 16 * 1024 + 8;
    uring_splice_stream_d8: Uring Splice Stream 8 1000;
    uring_splice_echo_large: Uring Splice Echo 4 (1 << 20) - 5000;
}

/// The engines speak the same wire, receipts included.
#[test]
fn engines_interoperate() {
    for mode in [Mode::Sendfile, Mode::Splice] {
        for workload in [Workload::Echo, Workload::Stream] {
            for (client, server) in [
                (Backend::Uring, Backend::Syscall),
                (Backend::Syscall, Backend::Uring),
            ] {
                let case = format!("{client} client, {server} server: {mode} {workload}");
                let srv = TestServer::with_backend(server);
                let mut config = srv.client(client, mode, workload);
                config.depth = 4;
                config.size = 4096;
                let record = srv.run(&config, &case);
                assert_clean_run(&record, &case);
            }
        }
    }
}
