//! Broken and hostile clients against a live server: each costs one log line and its own
//! connection, never the server or a well-behaved client running at the same time.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;

use engine::wire::{self, End, EndCode, Frame, Hello, RefuseCode, HEADER_LEN, MAGIC, VERSION};
use engine::{run_client, Backend, Error, Mode, RxMode, ServerConfig, Verify, Workload};

use crate::harness::{assert_clean_run, workers, TestServer};

const WAIT: Duration = Duration::from_secs(5);

fn hello(size: u32) -> Hello {
    Hello {
        workload: Workload::Stream,
        mode: Mode::OneCopy,
        verify: Verify::Full,
        backend: Backend::Syscall,
        size,
        depth: 1,
        duration_ms: 1000,
        flow: 0,
        thread: 0,
        rx: RxMode::Copy,
        direction: engine::Direction::Forward,
        omit_ms: 0,
    }
}

fn connect(server: &TestServer) -> TcpStream {
    let s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s
}

/// Connects and passes the handshake, as a client that means harm would.
fn handshaken(server: &TestServer, size: u32) -> TcpStream {
    let mut s = connect(server);
    wire::write_frame(&mut s, &Frame::Hello(hello(size))).unwrap();
    match wire::read_frame(&mut s, WAIT).unwrap() {
        Frame::Accept(_) => s,
        other => panic!("expected accept, got {other:?}"),
    }
}

/// Closes with a reset instead of a FIN.
fn reset(s: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: valid socket and option value.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as u32,
        );
    }
    drop(s);
}

/// Sends the same hello on `n` connections; the accepted ones (held open) and the
/// refusals.
fn offer(server: &TestServer, h: Hello, n: usize) -> (Vec<TcpStream>, Vec<wire::Refuse>) {
    let mut held = Vec::new();
    let mut refused = Vec::new();
    for _ in 0..n {
        let mut s = connect(server);
        wire::write_frame(&mut s, &Frame::Hello(h)).unwrap();
        match wire::read_frame(&mut s, WAIT).unwrap() {
            Frame::Accept(_) => held.push(s),
            Frame::Refuse(r) => refused.push(r),
            other => panic!("{other:?}"),
        }
    }
    (held, refused)
}

/// After the hostile clients, a good one is served in full.
fn still_serves(server: &TestServer) {
    let config = server.client(Backend::Syscall, Mode::OneCopy, Workload::Echo);
    let record = run_client(&config, &|_| {}).expect("a good client after hostile ones");
    assert_clean_run(&record, "good client after hostile ones");
}

/// Reads the refusal a server sent, and its reason.
fn refusal(s: &mut TcpStream) -> (RefuseCode, String) {
    match wire::read_frame(s, WAIT) {
        Ok(Frame::Refuse(r)) => (r.code, r.reason),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn garbage_hello_is_refused_with_the_reason(backend: Backend) {
    let server = TestServer::with_backend(backend);
    let mut s = connect(&server);
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let line = server.wait_for("refused 0", WAIT);
    assert!(line.contains("not a copyperf peer"), "{line}");
    let (code, reason) = refusal(&mut s);
    assert_eq!(code, RefuseCode::Malformed);
    assert!(reason.contains("not a copyperf peer"), "{reason}");
    let mut buf = [0u8; 16];
    assert!(
        matches!(s.read(&mut buf), Ok(0) | Err(_)),
        "connection closed on it"
    );
    still_serves(&server);
}

fn oversize_frame_length_is_refused_before_reading(backend: Backend) {
    let server = TestServer::with_backend(backend);
    let mut s = connect(&server);
    let mut h = [0u8; HEADER_LEN];
    h[..4].copy_from_slice(&MAGIC);
    h[4..6].copy_from_slice(&VERSION.to_le_bytes());
    h[6] = 1; // hello
    h[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    s.write_all(&h).unwrap();
    let line = server.wait_for("refused 0", WAIT);
    assert!(line.contains("over its 32-byte limit"), "{line}");
    let (code, _) = refusal(&mut s);
    assert_eq!(code, RefuseCode::Malformed);
    still_serves(&server);
}

fn unknown_mode_code_is_refused_with_the_reason(backend: Backend) {
    let server = TestServer::with_backend(backend);
    let mut s = connect(&server);
    let mut bytes = Frame::Hello(hello(4096)).encode();
    bytes[HEADER_LEN + 1] = 99; // the mode byte
    s.write_all(&bytes).unwrap();
    let (code, reason) = refusal(&mut s);
    assert_eq!(code, RefuseCode::Malformed);
    assert!(reason.contains("unknown mode code 99"), "{reason}");
    server.wait_for("refused 0", WAIT);
    still_serves(&server);
}

fn unknown_rx_code_is_refused_with_the_reason(backend: Backend) {
    let server = TestServer::with_backend(backend);
    let mut s = connect(&server);
    let mut bytes = Frame::Hello(hello(4096)).encode();
    bytes[HEADER_LEN + 24] = 77; // the receive path's byte (protocol version 3)
    s.write_all(&bytes).unwrap();
    let (code, reason) = refusal(&mut s);
    assert_eq!(code, RefuseCode::Malformed);
    assert!(reason.contains("rx) code 77"), "{reason}");
    server.wait_for("refused 0", WAIT);
    still_serves(&server);
}

/// A peer asks for a receive path this server cannot run: a uring server cannot issue
/// TCP_ZEROCOPY_RECEIVE. Refused with the reason; a syscall server serves it.
fn an_rx_mode_the_server_lacks_is_refused_with_the_reason(backend: Backend) {
    let server = TestServer::with_backend(backend);
    let h = Hello {
        rx: RxMode::Zerocopy,
        ..hello(4096)
    };
    let (held, refused) = offer(&server, h, 1);
    match backend {
        Backend::Uring => {
            assert!(held.is_empty());
            let r = &refused[0];
            assert_eq!(r.code, RefuseCode::Rx);
            for says in [
                "--rx zerocopy",
                "syscall-only",
                "IORING_OP_RECV_ZC",
                "needs NIC header split",
            ] {
                assert!(r.reason.contains(says), "{says:?} not in {}", r.reason);
            }
            let line = server.wait_for("refused 0", WAIT);
            assert!(line.contains("syscall-only"), "{line}");
        }
        Backend::Syscall => {
            assert!(refused.is_empty(), "{refused:?}");
            server.wait_for("connected 0", WAIT);
        }
    }
    drop(held);
    still_serves(&server);
}

/// Garbage in whole messages: under zerocopy receive (syscall server) every message fails
/// verification where it lies; under discard nothing but the count can be checked, so the
/// same garbage passes as 3 messages — the limit the record states.
fn garbage_under_non_copying_receives(backend: Backend) {
    let server = TestServer::with_backend(backend);
    let rxs: &[RxMode] = match backend {
        Backend::Syscall => &[RxMode::Zerocopy, RxMode::Discard],
        Backend::Uring => &[RxMode::Discard],
    };
    for &rx in rxs {
        let mut s = connect(&server);
        let h = Hello { rx, ..hello(8192) };
        wire::write_frame(&mut s, &Frame::Hello(h)).unwrap();
        assert!(matches!(
            wire::read_frame(&mut s, WAIT).unwrap(),
            Frame::Accept(_)
        ));
        s.write_all(&[0xa5u8; 8192 * 3]).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let frame = wire::read_frame(&mut s, WAIT).expect("stats after a whole-message stream");
        let Frame::Stats(report) = frame else {
            panic!("expected stats, got {frame:?}")
        };
        assert_eq!(report.rx, Some(rx));
        assert_eq!(report.stats.msgs_received, 3, "{rx}");
        match rx {
            RxMode::Zerocopy => {
                assert_eq!(report.stats.verify_errors, 3, "{rx}");
                assert!(report
                    .stats
                    .first_verify_error
                    .unwrap()
                    .contains("message 0"));
                assert_eq!(report.stats.rx.mapped + report.stats.rx.copied, 8192 * 3);
            }
            _ => assert_eq!(
                report.stats.verify_errors, 0,
                "{rx}: content is not checked"
            ),
        }
    }
    still_serves(&server);
}

fn silent_client_times_out(backend: Backend) {
    // An idle timeout of 2 s bounds the hello wait, well inside `WAIT`.
    let server = TestServer::start(ServerConfig {
        backend,
        workers: workers(backend, 2),
        idle_timeout: Duration::from_secs(2),
        ..Default::default()
    });
    let _silent = connect(&server);
    let line = server.wait_for("failed 0", WAIT);
    assert!(line.contains("sent nothing"), "{line}");
    still_serves(&server);
}

fn truncated_message_is_reported_and_dropped(backend: Backend) {
    let server = TestServer::with_backend(backend);
    let mut s = handshaken(&server, 4096);
    s.write_all(&[0u8; 1000]).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let line = server.wait_for("failed 0", WAIT);
    assert!(
        line.contains("closed mid-message: 1000 of 4096 bytes"),
        "{line}"
    );
    // No stats frame for a broken run: the server's end notice says why (issue 16), one
    // message's size, and nothing follows it.
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert_eq!(rest.len(), 4096, "the end notice fills one message");
    let end = End::from_notice(&rest).expect("an end notice");
    assert_eq!(end.code, EndCode::Failed);
    assert!(
        end.reason
            .contains("closed mid-message: 1000 of 4096 bytes"),
        "{}",
        end.reason
    );
    still_serves(&server);
}

/// Issue 16: an echo server that fails a connection mid-run, with every echo it owed sent,
/// puts its end notice where the next echo would start, so a client reading messages
/// finds it at a message boundary.
fn a_failed_echo_ends_with_the_notice_where_the_next_echo_starts(backend: Backend) {
    let server = TestServer::with_backend(backend);
    let mut s = connect(&server);
    let h = Hello {
        workload: Workload::Echo,
        ..hello(4096)
    };
    wire::write_frame(&mut s, &Frame::Hello(h)).unwrap();
    assert!(matches!(
        wire::read_frame(&mut s, WAIT).unwrap(),
        Frame::Accept(_)
    ));
    s.write_all(&[0u8; 4096]).unwrap();
    let mut echo = vec![0u8; 4096];
    s.read_exact(&mut echo).unwrap();
    assert!(!wire::opens_frame(&echo), "the echo is a message");
    s.write_all(&[0u8; 1000]).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert_eq!(rest.len(), 4096, "the end notice fills one message");
    let end = End::from_notice(&rest).expect("an end notice");
    assert_eq!(end.code, EndCode::Failed);
    assert!(end.reason.contains("closed mid-message"), "{}", end.reason);
    server.wait_for("failed 0", WAIT);
    still_serves(&server);
}

/// Issue 16: a server that stops (SIGTERM) mid-run tells every client why, whatever it
/// was reading: an echo client and a reverse stream's read the notice in place of a
/// message, a forward stream's (which reads nothing until the end) when its run fails.
/// Clients of the same engine as the server, so that both engines' clients are shown.
fn a_stopped_server_tells_each_client_why(backend: Backend) {
    let server = TestServer::start(ServerConfig {
        backend,
        workers: workers(backend, 2),
        max_clients: 8,
        idle_timeout: Duration::from_secs(5),
        ..Default::default()
    });
    let cases = [
        (Workload::Echo, engine::Direction::Forward),
        (Workload::Stream, engine::Direction::Forward),
        (Workload::Stream, engine::Direction::Reverse),
        (Workload::Stream, engine::Direction::Bidir),
    ];
    let clients: Vec<_> = cases
        .iter()
        .map(|&(workload, direction)| {
            let mut config = server.client(backend, Mode::OneCopy, workload);
            config.direction = direction;
            config.duration = Duration::from_secs(20);
            std::thread::spawn(move || run_client(&config, &|_| {}))
        })
        .collect();
    let deadline = std::time::Instant::now() + WAIT;
    while server
        .events()
        .iter()
        .filter(|e| e.starts_with("connected"))
        .count()
        < cases.len()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{:#?}",
            server.events()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(200));
    server.stop();
    for (c, case) in clients.into_iter().zip(cases) {
        match c.join().unwrap() {
            Err(Error::ServerEnded(why)) => assert_eq!(
                why, "the server is shutting down: SIGINT or SIGTERM",
                "{case:?}"
            ),
            other => panic!("{case:?}: {other:?}"),
        }
    }
}

/// Issue 16: a bidir client that reads the server's stream slowly has megabytes of it
/// queued ahead of the end notice when the server stops, and keeps sending meanwhile. The
/// server holds the socket while the client goes on taking what was queued (closing it
/// would answer the client's sends with a reset, which discards the notice not yet
/// delivered), so the client still finds the notice where the next message would start.
/// On the syscall server only: a uring server ends a connection whose sends in flight do
/// not come in within half its stop grace without a notice (README, "Server"), which is
/// what a reader this slow makes of them; the holding itself is the same code for both.
#[test]
fn a_slow_bidir_reader_still_gets_the_notice_from_a_syscall_server() {
    let server = TestServer::start(ServerConfig {
        backend: Backend::Syscall,
        idle_timeout: Duration::from_secs(5),
        ..Default::default()
    });
    const SIZE: usize = 64 << 10;
    let mut s = connect(&server);
    let h = Hello {
        direction: engine::Direction::Bidir,
        size: SIZE as u32,
        duration_ms: 20_000,
        ..hello(0)
    };
    wire::write_frame(&mut s, &Frame::Hello(h)).unwrap();
    assert!(matches!(
        wire::read_frame(&mut s, WAIT).unwrap(),
        Frame::Accept(_)
    ));
    // The client's own stream, whole messages (of zeros: verify errors, no failure), until
    // the socket breaks or is shut below.
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let zeros = vec![0u8; SIZE];
        while w.write_all(&zeros).is_ok() {}
    });
    // The client reads a message each 40 ms throughout, slower than the server sends: its
    // stream fills both sides' buffers ahead of whatever comes last.
    let mut msg = vec![0u8; SIZE];
    let mut messages = 0;
    let mut stopped: Option<std::time::Instant> = None;
    let started = std::time::Instant::now();
    let end = loop {
        if stopped.is_none() && started.elapsed() > Duration::from_millis(500) {
            server.stop();
            stopped = Some(std::time::Instant::now());
        }
        s.read_exact(&mut msg).unwrap_or_else(|e| {
            panic!(
                "after {messages} messages, {:?} after the stop: {e}",
                stopped.map(|t| t.elapsed())
            )
        });
        if wire::opens_frame(&msg) {
            break End::from_notice(&msg).expect("an end notice");
        }
        messages += 1;
        std::thread::sleep(Duration::from_millis(40));
    };
    assert_eq!(end.code, EndCode::ShuttingDown, "{end:?}");
    let _ = s.shutdown(Shutdown::Both);
    writer.join().unwrap();
    // The case this guards: the notice came more than REFUSAL_LINGER (1 s) after the
    // stop, behind what was queued ahead of it.
    let after = stopped.expect("stopped").elapsed();
    assert!(
        after > Duration::from_secs(1),
        "{after:?}: nothing was queued"
    );
}

fn garbage_payload_is_counted_as_verify_errors(backend: Backend) {
    let server = TestServer::with_backend(backend);
    let mut s = handshaken(&server, 4096);
    s.write_all(&[0xa5u8; 4096 * 3]).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let frame = wire::read_frame(&mut s, WAIT).expect("stats after a whole-message stream");
    let Frame::Stats(report) = frame else {
        panic!("expected stats, got {frame:?}")
    };
    assert_eq!(report.stats.msgs_received, 3);
    assert_eq!(report.stats.verify_errors, 3);
    assert!(report
        .stats
        .first_verify_error
        .unwrap()
        .contains("message 0"));
    server.wait_for("verify_errors=3", WAIT);
    still_serves(&server);
}

fn reset_mid_run_is_dropped_and_others_are_undisturbed(backend: Backend) {
    let server = TestServer::with_backend(backend);
    let good = {
        let mut config = server.client(backend, Mode::TwoCopy, Workload::Echo);
        config.duration = Duration::from_millis(1500);
        std::thread::spawn(move || run_client(&config, &|_| {}))
    };
    std::thread::sleep(Duration::from_millis(200));
    let mut s = handshaken(&server, 4096);
    s.write_all(&[0u8; 6000]).unwrap();
    reset(s);
    let mut g = connect(&server);
    g.write_all(&[0xffu8; 64]).unwrap();
    drop(g);
    let line = server.wait_for("failed 1", WAIT);
    assert!(
        line.contains("reset") || line.contains("mid-message"),
        "{line}"
    );
    server.wait_for("refused 2", WAIT);
    let record = good.join().unwrap().expect("the good client's run");
    assert_clean_run(&record, "good client beside hostile ones");
}

fn clients_beyond_max_are_refused_with_the_reason(backend: Backend) {
    let server = TestServer::start(ServerConfig {
        backend,
        workers: workers(backend, 2),
        max_clients: 1,
        idle_timeout: Duration::from_secs(5),
        ..Default::default()
    });
    let holder = handshaken(&server, 4096);
    let config = server.client(Backend::Syscall, Mode::OneCopy, Workload::Echo);
    match run_client(&config, &|_| {}) {
        Err(Error::Refused { reason, .. }) => {
            assert!(
                reason.contains("server is full") && reason.contains("-t 1"),
                "{reason}"
            )
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    server.wait_for("refused 1: server is full", WAIT);
    // Once the holder leaves cleanly, its place is free again.
    holder.shutdown(Shutdown::Write).unwrap();
    server.wait_for("disconnected 0", WAIT);
    still_serves(&server);
}

/// Every boundary a hello can probe, each followed by what a broken peer might do next:
/// nothing can panic a server thread, and afterwards good clients are served on every
/// worker.
fn boundary_hellos_cannot_hurt_the_server(backend: Backend) {
    let server = TestServer::start(ServerConfig {
        backend,
        workers: workers(backend, 2),
        max_size: 1 << 20,
        idle_timeout: Duration::from_secs(2),
        ..Default::default()
    });
    let sizes = [
        0,
        1,
        8,
        63,
        64,
        65,
        71,
        72,
        73,
        100,
        127,
        128,
        1 << 20,
        (1 << 20) + 1,
        u32::MAX,
    ];
    let depths = [0, 1, 2, 1024, 1025, u32::MAX];
    let mut streams = Vec::new();
    let mut n = 0u32;
    for &size in &sizes {
        for &depth in &depths {
            for verify in [Verify::Full, Verify::Sample, Verify::Off] {
                n += 1;
                let mode = Mode::ALL[n as usize % Mode::ALL.len()];
                let workload = [Workload::Echo, Workload::Stream][n as usize % 2];
                let h = Hello {
                    workload,
                    mode,
                    verify,
                    size,
                    depth,
                    ..hello(size)
                };
                let mut s = connect(&server);
                wire::write_frame(&mut s, &Frame::Hello(h)).unwrap();
                let Ok(Frame::Accept(_)) = wire::read_frame(&mut s, WAIT) else {
                    continue; // refused: fine, as long as nothing broke
                };
                // Accepted: send what a broken peer would — a whole garbage message, a
                // part of one, or nothing — then go.
                let body = vec![0x5au8; (size as usize).min(1 << 16)];
                match n % 3 {
                    0 => {
                        let _ = s.write_all(&body);
                        let _ = s.shutdown(Shutdown::Write);
                    }
                    1 => {
                        let _ = s.write_all(&body[..body.len() / 2]);
                        reset(s);
                        continue;
                    }
                    _ => {}
                }
                streams.push(s);
            }
        }
    }
    drop(streams);
    // Good clients, both engines, enough of them to land on both workers.
    for client in [
        Backend::Syscall,
        Backend::Uring,
        Backend::Syscall,
        Backend::Uring,
    ] {
        let config = server.client(client, Mode::OneCopy, Workload::Echo);
        let record = run_client(&config, &|_| {}).expect("a good client after boundary hellos");
        assert_clean_run(&record, "good client after boundary hellos");
    }
    let events = server.events();
    assert!(
        !events.iter().any(|e| e.contains("internal error")),
        "a server thread panicked: {events:#?}"
    );
}

/// A bug that panics while serving one connection (injected in debug builds) costs that
/// connection and nothing else: its slot comes back, the workers go on, and the server
/// still stops cleanly (the harness joins it and expects Ok).
fn a_panic_serving_one_connection_costs_only_that_connection(backend: Backend) {
    const FAULTY: usize = 4099;
    std::env::set_var("COPYPERF_FAULT_PANIC_SIZE", FAULTY.to_string());
    let server = TestServer::start(ServerConfig {
        backend,
        workers: workers(backend, 2),
        max_clients: 2,
        idle_timeout: Duration::from_secs(5),
        ..Default::default()
    });
    for i in 0..4 {
        // Either client engine reads the server's end notice in place of the echo.
        let client = [Backend::Syscall, Backend::Uring][i % 2];
        let mut config = server.client(client, Mode::TwoCopy, Workload::Echo);
        config.size = FAULTY;
        match run_client(&config, &|_| {}) {
            Err(Error::ServerEnded(why)) => assert!(
                why.starts_with("the server caught a bug: injected fault"),
                "{why}"
            ),
            other => panic!("the faulty connection fails with the server's reason: {other:?}"),
        }
    }
    let line = server.wait_for("internal error", WAIT);
    assert!(line.contains("only this connection"), "{line}");
    server.wait_for("failed 3", WAIT);
    // Both slots are free again: two clients at once, on both workers.
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let config = server.client(backend, Mode::OneCopy, Workload::Echo);
            std::thread::spawn(move || run_client(&config, &|_| {}))
        })
        .collect();
    for c in clients {
        let record = c
            .join()
            .unwrap()
            .expect("a good client beside a panicked one");
        assert_clean_run(&record, "good client after a panic");
    }
}

/// A peer that stops reading its echoes while the server's sends are in flight, then
/// resets or goes silent: its connection retires (no request is awaited that the kernel
/// will never complete), and its `-t` slot serves the next client.
fn stop_reading_then(backend: Backend, mode: Mode, depth: u32, then_reset: bool) {
    let server = TestServer::start(ServerConfig {
        backend,
        workers: workers(backend, 1),
        max_clients: 1,
        idle_timeout: Duration::from_secs(1),
        ..Default::default()
    });
    let size = 64 * 1024;
    let mut s = connect(&server);
    let h = Hello {
        workload: Workload::Echo,
        mode,
        depth,
        ..hello(size)
    };
    wire::write_frame(&mut s, &Frame::Hello(h)).unwrap();
    assert!(matches!(
        wire::read_frame(&mut s, WAIT),
        Ok(Frame::Accept(_))
    ));
    // Send until the pipes are full both ways: the server's echoes stall in the kernel.
    s.set_nonblocking(true).unwrap();
    let chunk = vec![0u8; size as usize];
    let mut stalled_since = None;
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        match s.write(&chunk) {
            Ok(_) => stalled_since = None,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let since = *stalled_since.get_or_insert(std::time::Instant::now());
                if since.elapsed() > Duration::from_millis(300) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("writing: {e}"),
        }
    }
    let held = if then_reset {
        reset(s);
        None
    } else {
        Some(s) // silent from here on
    };
    let line = server.wait_for("failed 0", Duration::from_secs(15));
    // A reset reaches the socket once, as sk_err: whichever operation reads it first
    // reports it (the send: reset or broken pipe), and the other then sees a plain close.
    // Which one wins depends on scheduling, so a receive that found the connection closed
    // mid-message is the same reset seen from the other side.
    assert!(
        line.contains("reset")
            || line.contains("too slow")
            || line.contains("Broken pipe")
            || line.contains("broke mid-send")
            || (then_reset && line.contains("closed mid-message")),
        "{line}"
    );
    still_serves(&server);
    drop(held);
    let events = server.events();
    assert!(
        !events.iter().any(|e| e.contains("gave up")),
        "retired by the give-up net, not by its own completions: {events:#?}"
    );
}

fn a_peer_that_stops_reading_then_resets_frees_its_slot(backend: Backend) {
    for mode in [Mode::TwoCopy, Mode::OneCopy, Mode::Zc] {
        for depth in [1, 8] {
            stop_reading_then(backend, mode, depth, true);
        }
    }
}

fn a_peer_that_stops_reading_and_goes_silent_frees_its_slot(backend: Backend) {
    for depth in [1, 8] {
        stop_reading_then(backend, Mode::TwoCopy, depth, false);
    }
}

/// A message trickled a byte at a time must still arrive whole within the idle timeout;
/// and so must the hello.
fn slowloris_is_cut_off(backend: Backend) {
    let server = TestServer::start(ServerConfig {
        backend,
        workers: workers(backend, 1),
        idle_timeout: Duration::from_secs(1),
        ..Default::default()
    });
    let trickle = |s: &mut TcpStream, bytes: &[u8]| {
        // 300 ms a byte: each byte well inside the timeout, the whole far beyond it.
        for b in bytes {
            if s.write_all(std::slice::from_ref(b)).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(300));
            if server.events().iter().any(|e| e.contains("failed")) {
                return;
            }
        }
    };
    let mut s = handshaken(&server, 4096);
    trickle(&mut s, &[0u8; 64]);
    let line = server.wait_for("failed 0", WAIT);
    assert!(line.contains("too slow"), "{line}");
    let mut h = connect(&server);
    let bytes = Frame::Hello(hello(4096)).encode();
    trickle(&mut h, &bytes);
    let line = server.wait_for("failed 1", WAIT);
    assert!(
        line.contains("sent nothing") || line.contains("bad hello"),
        "{line}"
    );
    still_serves(&server);
}

/// A silent connection sharing a worker with a busy one is still closed on time: the
/// deadline is checked on every wake-up, not only on idle ones.
fn a_silent_connection_beside_a_busy_one_times_out(backend: Backend) {
    let server = TestServer::start(ServerConfig {
        backend,
        workers: workers(backend, 1),
        idle_timeout: Duration::from_secs(1),
        ..Default::default()
    });
    let busy = {
        let mut config = server.client(backend, Mode::OneCopy, Workload::Echo);
        config.duration = Duration::from_secs(8);
        config.verify = Verify::Off;
        std::thread::spawn(move || run_client(&config, &|_| {}))
    };
    server.wait_for("connected 0", WAIT);
    let _silent = handshaken(&server, 4096);
    let line = server.wait_for("failed 1", Duration::from_secs(6));
    assert!(line.contains("too slow"), "{line}");
    assert!(
        !busy.is_finished(),
        "the silent connection was closed only after the busy one ended"
    );
    let record = busy.join().unwrap().expect("the busy client's run");
    assert_clean_run(&record, "busy client beside a silent one");
}

/// Connections beyond `-t`, a burst of them at once, each get the refusal and its reason
/// (not a reset).
fn a_burst_beyond_max_clients_is_refused_with_the_reason(backend: Backend) {
    let server = TestServer::start(ServerConfig {
        backend,
        workers: workers(backend, 1),
        max_clients: 1,
        idle_timeout: Duration::from_secs(10),
        ..Default::default()
    });
    let _holder = handshaken(&server, 4096);
    let mut burst: Vec<TcpStream> = (0..100).map(|_| connect(&server)).collect();
    for s in &mut burst {
        wire::write_frame(s, &Frame::Hello(hello(4096))).unwrap();
    }
    for s in &mut burst {
        let (code, reason) = refusal(s);
        assert_eq!(code, RefuseCode::Full, "{reason}");
        assert!(reason.contains("-t 1"), "{reason}");
    }
}

/// Hellos whose buffers would take the server past its memory budget are refused with the
/// reason before anything is allocated; those within it are served, and so is a good
/// client beside them.
fn hellos_beyond_the_memory_budget_are_refused(backend: Backend) {
    // Each hostile hello asks for 1 MiB messages at depth 4: 9 buffers of 1 MiB (plus a
    // 1 MiB wire buffer each, in two-copy) and the 2 MiB template.
    let per_conn: u64 = 9 * 2 * (1 << 20) + 2 * (1 << 20);
    let server = TestServer::start(ServerConfig {
        backend,
        workers: workers(backend, 2),
        max_memory: 3 * per_conn + (1 << 20),
        idle_timeout: Duration::from_secs(10),
        ..Default::default()
    });
    let h = Hello {
        workload: Workload::Echo,
        mode: Mode::TwoCopy,
        depth: 4,
        ..hello(1 << 20)
    };
    let (held, refused) = offer(&server, h, 6);
    assert_eq!(held.len(), 3, "three fit the budget: {refused:?}");
    for r in &refused {
        assert_eq!(r.code, RefuseCode::Memory);
        assert!(r.reason.contains("memory budget"), "{}", r.reason);
        // Charged what the buffers take: the payloads and a little per buffer.
        let needed: u64 = r
            .reason
            .split("buffers need ")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no byte count in {}", r.reason));
        assert!(
            (per_conn..per_conn + (64 << 10)).contains(&needed),
            "{needed} for {per_conn} bytes of payload"
        );
    }
    still_serves(&server);
    // Gone, they give their share back.
    drop(held);
    for id in 0..3 {
        server.wait_for(&format!("disconnected {id} "), WAIT);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut s = connect(&server);
        let h = Hello {
            depth: 4,
            ..hello(1 << 20)
        };
        wire::write_frame(&mut s, &Frame::Hello(h)).unwrap();
        match wire::read_frame(&mut s, WAIT).unwrap() {
            Frame::Accept(_) => break,
            other => assert!(
                std::time::Instant::now() < deadline,
                "budget not given back: {other:?}"
            ),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A pipeline deeper than a server ring can take in one submission still arrives in
/// order: chains are never split across submissions (found by hostile testing: depth 1024
/// reordered echoes and could panic a uring worker).
fn a_deep_pipeline_keeps_its_order(backend: Backend) {
    let server = TestServer::start(ServerConfig {
        backend,
        workers: workers(backend, 1),
        idle_timeout: Duration::from_secs(5),
        ..Default::default()
    });
    for (client, conns, depth, size) in [
        (Backend::Syscall, 1, 1024, 16 << 10),
        (Backend::Uring, 1, 1024, 16 << 10),
        (Backend::Uring, 8, 512, 4 << 10),
    ] {
        let mut config = server.client(client, Mode::OneCopy, Workload::Echo);
        config.depth = depth;
        config.conns = conns;
        config.size = size;
        config.duration = Duration::from_millis(400);
        let case = format!("{client} client, {conns} conns, depth {depth}");
        let record = server.run(&config, &case);
        assert_clean_run(&record, &case);
    }
    let events = server.events();
    assert!(
        !events
            .iter()
            .any(|e| e.contains("internal error") || e.contains("gave up")),
        "{events:#?}"
    );
}

/// A peer that floods two-copy messages without reading its echoes, then resets, cannot
/// take a multishot worker's provided buffers with it: the next two-copy clients are
/// served (found by hostile testing: one such peer stopped the worker for good).
fn a_flooding_peer_cannot_take_the_provided_buffers(backend: Backend) {
    let server = TestServer::start(ServerConfig {
        backend,
        workers: workers(backend, 1),
        uring_recv: engine::UringRecv::Multishot,
        idle_timeout: Duration::from_secs(2),
        ..Default::default()
    });
    let size = 1 << 20;
    for round in 0..2 {
        // A tiny receive buffer: the server's echoes stall at once.
        let s = connect_with_small_rcvbuf(&server);
        let mut s = s;
        let h = Hello {
            workload: Workload::Echo,
            mode: Mode::TwoCopy,
            verify: Verify::Off,
            ..hello(size)
        };
        wire::write_frame(&mut s, &Frame::Hello(h)).unwrap();
        assert!(matches!(
            wire::read_frame(&mut s, WAIT),
            Ok(Frame::Accept(_))
        ));
        s.set_nonblocking(true).unwrap();
        let chunk = vec![0u8; 64 << 10];
        let t = std::time::Instant::now();
        while t.elapsed() < Duration::from_secs(1) {
            if s.write(&chunk).is_err() {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        reset(s);
        server.wait_for(&format!("failed {}", round * 2), Duration::from_secs(10));
        let mut config = server.client(Backend::Uring, Mode::TwoCopy, Workload::Echo);
        config.uring_recv = engine::UringRecv::Multishot;
        config.io_timeout = Duration::from_secs(4);
        let record = run_client(&config, &|_| {})
            .unwrap_or_else(|e| panic!("round {round}: a good client after the flood: {e}"));
        assert_clean_run(&record, "good two-copy client after a flooding peer");
    }
}

/// zc-fixed clients beyond what a worker's registered-buffer table holds are refused
/// with the reason before they are accepted (found by hostile testing: they were
/// accepted, then closed without a word).
fn zc_fixed_beyond_the_buffer_table_is_refused_with_the_reason(backend: Backend) {
    let server = TestServer::start(ServerConfig {
        backend,
        workers: workers(backend, 1),
        idle_timeout: Duration::from_secs(10),
        ..Default::default()
    });
    // 2049 table entries each: 7 fit a worker's 16384, the 8th does not.
    let h = Hello {
        workload: Workload::Echo,
        mode: Mode::ZcFixed,
        depth: 1024,
        ..hello(64)
    };
    let (held, refusals) = offer(&server, h, 8);
    match backend {
        Backend::Uring => {
            assert_eq!(held.len(), 7, "{refusals:?}");
            assert!(refusals[0].reason.contains("table entries"), "{refusals:?}");
        }
        Backend::Syscall => {
            assert!(held.is_empty());
            assert!(
                refusals.iter().all(|r| r.code == RefuseCode::Mode),
                "{refusals:?}"
            );
        }
    }
    drop(held);
    // Their room comes back.
    for id in 0..held_count(backend) {
        server.wait_for(&format!("disconnected {id} "), WAIT);
    }
    if backend == Backend::Uring {
        let mut config = server.client(Backend::Uring, Mode::ZcFixed, Workload::Echo);
        config.depth = 1024;
        config.size = 64;
        let record = run_client(&config, &|_| {}).expect("room again once they left");
        assert_clean_run(&record, "zc-fixed after the table emptied");
    }
}

fn held_count(backend: Backend) -> u64 {
    if backend == Backend::Uring {
        7
    } else {
        0
    }
}

/// Connects with a 4 KiB receive buffer.
fn connect_with_small_rcvbuf(server: &TestServer) -> TcpStream {
    // SAFETY: a fresh socket, options set on it before connecting, then owned by the
    // TcpStream.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let small: libc::c_int = 4096;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&small as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        );
        let std::net::SocketAddr::V4(v4) = server.addr else {
            panic!("test servers are IPv4")
        };
        let sin = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: v4.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes(v4.ip().octets()),
            },
            sin_zero: [0; 8],
        };
        let rc = libc::connect(
            fd,
            (&sin as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        );
        assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
        let s = <TcpStream as std::os::fd::FromRawFd>::from_raw_fd(fd);
        s.set_read_timeout(Some(WAIT)).unwrap();
        s
    }
}

/// Under the paired placement a hello's thread index picks the server thread's CPU (and
/// the uring worker): any value, however large, lands on a planned place and the
/// connection is served like any other.
fn a_wild_thread_index_under_paired_placement_is_served(backend: Backend) {
    let server = TestServer::start(ServerConfig {
        backend,
        workers: workers(backend, 2),
        cpus: engine::placement::PlacementPolicy::Paired.into(),
        idle_timeout: Duration::from_secs(2),
        ..Default::default()
    });
    for thread in [u32::MAX, 1 << 31, 7] {
        let mut s = connect(&server);
        let h = Hello {
            thread,
            ..hello(4096)
        };
        wire::write_frame(&mut s, &Frame::Hello(h)).unwrap();
        match wire::read_frame(&mut s, WAIT).unwrap() {
            Frame::Accept(_) => {}
            other => panic!("thread {thread}: expected accept, got {other:?}"),
        }
        s.write_all(&[0xa5u8; 4096]).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        // Served: the garbage message is received, counted and reported back.
        match wire::read_frame(&mut s, WAIT) {
            Ok(Frame::Stats(report)) => {
                assert_eq!(report.stats.msgs_received, 1, "thread {thread}");
                assert_eq!(report.stats.verify_errors, 1, "thread {thread}");
            }
            other => panic!("thread {thread}: expected stats, got {other:?}"),
        }
    }
    still_serves(&server);
}

fn unknown_direction_code_is_refused_as_malformed(backend: Backend) {
    let server = TestServer::with_backend(backend);
    let mut s = connect(&server);
    let mut bytes = Frame::Hello(hello(4096)).encode();
    bytes[HEADER_LEN + 25] = 7; // the direction byte
    s.write_all(&bytes).unwrap();
    let (code, reason) = refusal(&mut s);
    assert_eq!(code, RefuseCode::Malformed);
    assert!(reason.contains("unknown direction code 7"), "{reason}");
    server.wait_for("refused 0", WAIT);
    still_serves(&server);
}

/// A reverse client that takes the server's stream and then stops reading: the server's
/// sends stall in the kernel, the idle timeout closes that connection (no wedged thread,
/// no spinning worker), and another reverse client on the same worker is served whole
/// meanwhile.
fn a_reverse_client_that_stops_reading_is_timed_out_alone(backend: Backend) {
    for mode in [Mode::TwoCopy, Mode::OneCopy, Mode::Zc] {
        for depth in [1, 8] {
            let server = TestServer::start(ServerConfig {
                backend,
                workers: workers(backend, 1),
                idle_timeout: Duration::from_secs(1),
                ..Default::default()
            });
            let case = format!("{backend} server, {mode} depth {depth}");
            let mut s = connect(&server);
            let h = Hello {
                workload: Workload::Stream,
                mode,
                depth,
                direction: engine::Direction::Reverse,
                ..hello(64 * 1024)
            };
            wire::write_frame(&mut s, &Frame::Hello(h)).unwrap();
            assert!(
                matches!(wire::read_frame(&mut s, WAIT), Ok(Frame::Accept(_))),
                "{case}"
            );
            // Never read: the server fills the socket's buffers and stalls. A good
            // reverse client runs beside it meanwhile, on the same worker.
            std::thread::sleep(Duration::from_millis(100));
            let mut config = server.client(Backend::Syscall, mode, Workload::Stream);
            config.direction = engine::Direction::Reverse;
            let record = run_client(&config, &|_| {})
                .unwrap_or_else(|e| panic!("{case}: a good client beside the stalled one: {e}"));
            let good = record.server.as_ref().expect("server figures");
            assert!(good.stats.msgs_sent > 0, "{case}");
            assert_eq!(record.summary.verify_errors, 0, "{case}");
            assert_eq!(
                record.client.stats.bytes_received, good.stats.bytes_sent,
                "{case}"
            );
            let line = server.wait_for("failed 0", Duration::from_secs(15));
            assert!(line.contains("too slow"), "{case}: {line}");
            let events = server.events();
            assert!(
                events.iter().any(|e| e.starts_with("disconnected 1")),
                "{case}: {events:#?}"
            );
            drop(s);
            still_serves(&server);
        }
    }
}

/// Each case above, against each server engine.
macro_rules! against_both {
    ($($case:ident),+ $(,)?) => {
        mod syscall_server {
            $(#[test] fn $case() { super::$case(engine::Backend::Syscall) })+
        }
        mod uring_server {
            $(#[test] fn $case() { super::$case(engine::Backend::Uring) })+
        }
    };
}

against_both!(
    garbage_hello_is_refused_with_the_reason,
    unknown_mode_code_is_refused_with_the_reason,
    unknown_rx_code_is_refused_with_the_reason,
    an_rx_mode_the_server_lacks_is_refused_with_the_reason,
    garbage_under_non_copying_receives,
    oversize_frame_length_is_refused_before_reading,
    silent_client_times_out,
    truncated_message_is_reported_and_dropped,
    a_failed_echo_ends_with_the_notice_where_the_next_echo_starts,
    a_stopped_server_tells_each_client_why,
    garbage_payload_is_counted_as_verify_errors,
    reset_mid_run_is_dropped_and_others_are_undisturbed,
    clients_beyond_max_are_refused_with_the_reason,
    boundary_hellos_cannot_hurt_the_server,
    a_panic_serving_one_connection_costs_only_that_connection,
    a_peer_that_stops_reading_then_resets_frees_its_slot,
    a_peer_that_stops_reading_and_goes_silent_frees_its_slot,
    slowloris_is_cut_off,
    a_silent_connection_beside_a_busy_one_times_out,
    a_burst_beyond_max_clients_is_refused_with_the_reason,
    hellos_beyond_the_memory_budget_are_refused,
    a_deep_pipeline_keeps_its_order,
    a_flooding_peer_cannot_take_the_provided_buffers,
    zc_fixed_beyond_the_buffer_table_is_refused_with_the_reason,
    a_wild_thread_index_under_paired_placement_is_served,
    unknown_direction_code_is_refused_as_malformed,
    a_reverse_client_that_stops_reading_is_timed_out_alone,
);
