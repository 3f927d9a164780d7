//! Broken and hostile clients against a live server: each costs one log line and its own
//! connection, never the server or a well-behaved client running at the same time.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;

use engine::wire::{self, Frame, Hello, RefuseCode, HEADER_LEN, MAGIC, VERSION};
use engine::{run_client, Backend, Error, Mode, ServerConfig, Verify, Workload};

use crate::harness::{assert_clean_run, TestServer};

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
    assert!(line.contains("over its 24-byte limit"), "{line}");
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

fn silent_client_times_out(backend: Backend) {
    let server = TestServer::with_backend(backend); // idle timeout 2 s bounds the hello wait
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
    // No stats frame for a broken run: the server just closes.
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(rest.is_empty(), "got {} bytes", rest.len());
    still_serves(&server);
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
        workers: 2,
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
    oversize_frame_length_is_refused_before_reading,
    silent_client_times_out,
    truncated_message_is_reported_and_dropped,
    garbage_payload_is_counted_as_verify_errors,
    reset_mid_run_is_dropped_and_others_are_undisturbed,
    clients_beyond_max_are_refused_with_the_reason,
);
