//! The receive paths (`--rx`) × engine × workload × depth on loopback, each with the
//! strongest check it allows: copy and zerocopy verify every byte (zerocopy where the
//! kernel left it: mapped pages or the copy buffer), discard only byte and message counts;
//! both sides' counts are checked against each other in every case, and what each side
//! records about how it received.

use engine::{run_client, Backend, Error, Mode, Record, RxMode, Workload};

use crate::harness::{assert_clean_run, TestServer};

/// One run; `None` where the receive path is refused (zerocopy on uring), with the
/// refusal checked.
fn run_rx(
    client: Backend,
    server: Backend,
    mode: Mode,
    rx: RxMode,
    workload: Workload,
    depth: usize,
    size: usize,
) -> Option<Record> {
    let case =
        format!("{client} client, {server} server: --rx {rx} {mode} {workload} d{depth} {size}");
    let srv = TestServer::with_backend(server);
    let mut config = srv.client(client, mode, workload);
    config.rx = rx;
    config.depth = depth;
    config.size = size;
    config.threads = 2;
    let result = run_client(&config, &|_| {});
    // zerocopy is a getsockopt: refused on a receiving uring side, by name.
    let client_refuses =
        rx == RxMode::Zerocopy && client == Backend::Uring && workload == Workload::Echo;
    let server_refuses = rx == RxMode::Zerocopy && server == Backend::Uring;
    if client_refuses || server_refuses {
        let e = result.err().unwrap_or_else(|| panic!("{case}: ran"));
        let text = e.to_string();
        assert!(
            text.contains("zerocopy receive is syscall-only"),
            "{case}: {text}"
        );
        assert!(text.contains("needs NIC header split"), "{case}: {text}");
        if client_refuses {
            assert!(matches!(e, Error::Config(_)), "{case}: {e:?}");
        } else {
            assert!(matches!(e, Error::Refused { .. }), "{case}: {e:?}");
        }
        return None;
    }
    let record = result.unwrap_or_else(|e| panic!("{case}: {e}"));
    assert_clean_run(&record, &case);
    let server_side = record.server.as_ref().expect("server figures");
    let receivers: Vec<(&str, &engine::SideReport)> = match workload {
        Workload::Echo => vec![("client", &record.client), ("server", server_side)],
        Workload::Stream => {
            assert_eq!(
                record.client.rx, None,
                "{case}: a stream client receives nothing"
            );
            assert_eq!(record.client.rx_content_checked, None, "{case}");
            vec![("server", server_side)]
        }
    };
    for (who, side) in receivers {
        let case = format!("{case} ({who})");
        assert_eq!(side.rx, Some(rx), "{case}");
        assert_eq!(
            side.rx_content_checked,
            Some(rx != RxMode::Discard),
            "{case}"
        );
        let r = &side.stats.rx;
        match rx {
            RxMode::Zerocopy => {
                // Every byte went one way or the other, and was seen where it lay.
                assert_eq!(
                    r.mapped + r.copied,
                    side.stats.bytes_received,
                    "{case}: {r:?}"
                );
                let fraction = side.rx_mapped_fraction.expect("a mapped fraction");
                assert!((0.0..=1.0).contains(&fraction), "{case}");
                eprintln!("{case}: {:.1}% mapped ({r:?})", fraction * 100.0);
            }
            _ => {
                assert_eq!((r.mapped, r.copied), (0, 0), "{case}");
                assert_eq!(side.rx_mapped_fraction, None, "{case}");
            }
        }
    }
    Some(record)
}

macro_rules! rx_matrix {
    ($($name:ident: $backend:ident $rx:ident $workload:ident $depth:literal;)+) => {$(
        #[test]
        fn $name() {
            // Uneven (the last field takes the remainder, messages straddle pages), and
            // whole pages.
            for size in [16 * 1024 + 8, 64 * 1024] {
                run_rx(
                    Backend::$backend,
                    Backend::$backend,
                    Mode::OneCopy,
                    RxMode::$rx,
                    Workload::$workload,
                    $depth,
                    size,
                );
            }
        }
    )+};
}

rx_matrix! {
    syscall_copy_echo_d1: Syscall Copy Echo 1;
    syscall_copy_stream_d4: Syscall Copy Stream 4;
    syscall_discard_echo_d1: Syscall Discard Echo 1;
    syscall_discard_echo_d4: Syscall Discard Echo 4;
    syscall_discard_stream_d1: Syscall Discard Stream 1;
    syscall_discard_stream_d4: Syscall Discard Stream 4;
    syscall_zerocopy_echo_d1: Syscall Zerocopy Echo 1;
    syscall_zerocopy_echo_d4: Syscall Zerocopy Echo 4;
    syscall_zerocopy_stream_d1: Syscall Zerocopy Stream 1;
    syscall_zerocopy_stream_d4: Syscall Zerocopy Stream 4;
    uring_copy_echo_d1: Uring Copy Echo 1;
    uring_copy_stream_d8: Uring Copy Stream 8;
    uring_discard_echo_d1: Uring Discard Echo 1;
    uring_discard_echo_d8: Uring Discard Echo 8;
    uring_discard_stream_d1: Uring Discard Stream 1;
    uring_discard_stream_d8: Uring Discard Stream 8;
    uring_zerocopy_echo_refused: Uring Zerocopy Echo 1;
    uring_zerocopy_stream_refused: Uring Zerocopy Stream 1;
}

/// Every send mode under the non-copying receive paths, including two-copy's wire buffer
/// and the echo server's reply rebuilt from a buffer nothing wrote into.
#[test]
fn every_send_mode_under_discard_and_zerocopy() {
    for (backend, mode) in [
        (Backend::Syscall, Mode::TwoCopy),
        (Backend::Syscall, Mode::Zc),
        (Backend::Uring, Mode::TwoCopy),
        (Backend::Uring, Mode::Zc),
        (Backend::Uring, Mode::ZcFixed),
    ] {
        for rx in [RxMode::Discard, RxMode::Zerocopy] {
            for workload in [Workload::Echo, Workload::Stream] {
                run_rx(backend, backend, mode, rx, workload, 4, 64 * 1024);
            }
        }
    }
}

/// The page-cache modes under the non-copying receives: their senders reuse a region only
/// once the receiver proves it read it, and a discarded or mapped message is read as much
/// as a copied one (before the fix the stream stalled on read receipts never sent).
#[test]
fn page_cache_modes_under_discard_and_zerocopy() {
    for backend in [Backend::Syscall, Backend::Uring] {
        for mode in [Mode::Sendfile, Mode::Splice] {
            for rx in [RxMode::Discard, RxMode::Zerocopy] {
                for workload in [Workload::Echo, Workload::Stream] {
                    for depth in [1, 4] {
                        run_rx(backend, backend, mode, rx, workload, depth, 64 * 1024);
                    }
                }
            }
        }
    }
}

/// A server discarding a stream of small messages takes many per call (up to
/// DISCARD_SPAN), and still counts every message the client sent, on both engines.
#[test]
fn a_discarding_stream_server_counts_every_message_of_a_bulk_receive() {
    for backend in [Backend::Syscall, Backend::Uring] {
        for size in [1000, 4096] {
            let r = run_rx(
                backend,
                backend,
                Mode::TwoCopy,
                RxMode::Discard,
                Workload::Stream,
                16,
                size,
            )
            .expect("discard runs on both engines");
            let server = r.server.as_ref().expect("server figures");
            assert_eq!(server.stats.msgs_received, r.client.stats.msgs_sent);
            assert_eq!(
                server.stats.bytes_received,
                r.client.stats.msgs_sent * size as u64
            );
        }
    }
}

/// A uring client streams to a syscall server that receives by zero-copy: the receiving
/// side is the one that must run it.
#[test]
fn a_uring_client_streams_to_a_zerocopy_receiving_syscall_server() {
    let r = run_rx(
        Backend::Uring,
        Backend::Syscall,
        Mode::OneCopy,
        RxMode::Zerocopy,
        Workload::Stream,
        8,
        64 * 1024,
    );
    assert!(r.is_some());
    run_rx(
        Backend::Syscall,
        Backend::Uring,
        Mode::OneCopy,
        RxMode::Discard,
        Workload::Echo,
        4,
        64 * 1024,
    )
    .expect("discard on both engines");
}

/// `--uring-recv multishot` copies out of provided buffers: it goes with `--rx copy` only.
#[test]
fn multishot_with_a_non_copying_receive_is_a_config_error() {
    let srv = TestServer::with_backend(Backend::Uring);
    let mut config = srv.client(Backend::Uring, Mode::TwoCopy, Workload::Echo);
    config.uring_recv = engine::UringRecv::Multishot;
    config.rx = RxMode::Discard;
    let e = run_client(&config, &|_| {}).unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e:?}");
    assert!(e.to_string().contains("--rx copy"), "{e}");
}
