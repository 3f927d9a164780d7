//! A relay between client and server that damages or delays the bytes it carries, to
//! show that verification catches what the network could do, exactly once, and that a
//! stalled run says so.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use engine::wire::{ACCEPT_LEN, HEADER_LEN, HELLO_LEN};
use engine::{run_client, Backend, Mode, Verify, WarningKind, Workload};

use crate::harness::TestServer;

/// What the relay does to one direction's byte stream.
#[derive(Debug, Clone, Copy, Default)]
struct Tamper {
    /// Flip every bit of the byte at this offset.
    flip_at: Option<u64>,
    /// Hold everything from this offset on for this long.
    pause_at: Option<(u64, Duration)>,
}

/// Listens on 127.0.0.1:0 and forwards one connection to `to`, tampering as told.
struct Relay {
    addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl Relay {
    fn start(to: SocketAddr, up: Tamper, down: Tamper) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let thread = std::thread::spawn(move || {
            let (client, _) = listener.accept().unwrap();
            let server = TcpStream::connect(to).unwrap();
            for s in [&client, &server] {
                s.set_nodelay(true).unwrap();
            }
            let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let a = std::thread::spawn(move || pump(client, server, up));
            let b = std::thread::spawn(move || pump(s2, c2, down));
            a.join().unwrap();
            b.join().unwrap();
        });
        Relay {
            addr,
            thread: Some(thread),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Copies `from` into `to` until the end, tampering on the way; passes the end on.
fn pump(mut from: TcpStream, mut to: TcpStream, tamper: Tamper) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut at = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &mut buf[..n];
        let range = at..at + n as u64;
        if let Some(off) = tamper.flip_at.filter(|o| range.contains(o)) {
            chunk[(off - at) as usize] ^= 0xff;
        }
        if let Some((off, hold)) = tamper.pause_at.filter(|(o, _)| range.contains(o)) {
            let split = (off - at) as usize;
            if to.write_all(&chunk[..split]).is_err() {
                break;
            }
            std::thread::sleep(hold);
            if to.write_all(&chunk[split..]).is_err() {
                break;
            }
        } else if to.write_all(chunk).is_err() {
            break;
        }
        at += n as u64;
    }
    let _ = to.shutdown(Shutdown::Write);
}

const SIZE: u64 = 4096;
/// Byte 100 of message 3, past the handshake, in each direction.
const UP_FLIP: u64 = (HEADER_LEN + HELLO_LEN) as u64 + 3 * SIZE + 100;
const DOWN_FLIP: u64 = (HEADER_LEN + ACCEPT_LEN) as u64 + 3 * SIZE + 100;

fn one_flipped_byte(backend: Backend, mode: Mode, workload: Workload, upstream: bool) {
    let case = format!(
        "{backend} {mode} {workload}, flipped {}",
        if upstream {
            "client→server"
        } else {
            "server→client"
        }
    );
    let server = Arc::new(TestServer::with_backend(backend));
    let (up, down) = if upstream {
        (
            Tamper {
                flip_at: Some(UP_FLIP),
                ..Default::default()
            },
            Tamper::default(),
        )
    } else {
        (
            Tamper::default(),
            Tamper {
                flip_at: Some(DOWN_FLIP),
                ..Default::default()
            },
        )
    };
    let relay = Relay::start(server.addr, up, down);
    let mut config = server.client(backend, mode, workload);
    config.port = relay.addr.port();
    config.size = SIZE as usize;
    config.verify = Verify::Full;
    // A count, not a duration: the flip lands in message 3 only if the run gets that far
    // before its stats frame, which a short timed run on a loaded machine did not always
    // (the flip then hit the stats frame: "malformed stats frame"). The duration is the
    // count's cap.
    config.messages = Some(40);
    config.duration = Duration::from_secs(30);
    let r = server.run(&config, &case);
    drop(relay);
    let server_side = r.server.as_ref().expect("server figures");
    assert!(
        r.summary.messages > 10,
        "{case}: the run went on past the damage"
    );
    assert_eq!(
        r.summary.verify_errors, 1,
        "{case}: exactly one failed message"
    );
    let (damaged, clean) = if upstream {
        (&server_side.stats, &r.client.stats)
    } else {
        (&r.client.stats, &server_side.stats)
    };
    assert_eq!(
        (damaged.verify_errors, clean.verify_errors),
        (1, 0),
        "{case}"
    );
    let first = damaged.first_verify_error.as_deref().unwrap_or_default();
    assert!(
        first.starts_with("message 3: field 0 byte 100"),
        "{case}: {first}"
    );
    let w = r
        .warnings
        .iter()
        .find(|w| w.kind == WarningKind::VerifyErrors)
        .unwrap_or_else(|| panic!("{case}: no verify warning in {:?}", r.warnings));
    assert!(w.text.contains("message 3"), "{case}: {}", w.text);
}

fn every_path(backend: Backend) {
    for &mode in Mode::ALL.iter().filter(|m| m.supported_on(backend)) {
        one_flipped_byte(backend, mode, Workload::Echo, true);
        one_flipped_byte(backend, mode, Workload::Echo, false);
        one_flipped_byte(backend, mode, Workload::Stream, true);
    }
}

#[test]
fn one_flipped_byte_is_one_failed_message_on_the_syscall_engine() {
    every_path(Backend::Syscall);
}

#[test]
fn one_flipped_byte_is_one_failed_message_on_the_uring_engine() {
    every_path(Backend::Uring);
}

/// A run held up for much of its time says so in its warnings.
#[test]
fn a_stalled_run_is_flagged() {
    for backend in [Backend::Syscall, Backend::Uring] {
        let server = TestServer::with_backend(backend);
        let hold = Duration::from_millis(600);
        let up = Tamper {
            pause_at: Some(((HEADER_LEN + HELLO_LEN) as u64 + 20 * SIZE, hold)),
            ..Default::default()
        };
        let relay = Relay::start(server.addr, up, Tamper::default());
        let mut config = server.client(backend, Mode::OneCopy, Workload::Echo);
        config.port = relay.addr.port();
        config.size = SIZE as usize;
        config.duration = Duration::from_millis(1000);
        let r = run_client(&config, &|_| {}).expect("a stalled run still ends");
        drop(relay);
        let stall = r
            .warnings
            .iter()
            .find(|w| w.kind == WarningKind::Stall)
            .unwrap_or_else(|| panic!("{backend}: no stall warning in {:?}", r.warnings));
        assert!(
            stall.text.contains("no message completed for 0."),
            "{}",
            stall.text
        );
        assert_eq!(r.summary.verify_errors, 0);
    }
}

/// Round trips of `r` that took at least `d`.
fn slower_than(r: &engine::Record, d: Duration) -> u64 {
    let text = r.latency_histogram.as_deref().expect("a latency histogram");
    engine::Latency::from_serialized(text)
        .expect("the record's own histogram")
        .count_at_least(d)
}

/// `--rate` is free of coordinated omission: a stall of the path delays every message
/// that falls due during it, and each counts its wait from its due time — where a closed
/// loop, which sends nothing while it waits, records one slow round trip.
#[test]
fn under_a_rate_a_stall_counts_in_every_message_it_delays() {
    for backend in [Backend::Syscall, Backend::Uring] {
        let hold = Duration::from_millis(400);
        let run = |rate: Option<f64>| {
            let server = TestServer::with_backend(backend);
            let up = Tamper {
                pause_at: Some(((HEADER_LEN + HELLO_LEN) as u64 + 50 * SIZE, hold)),
                ..Default::default()
            };
            let relay = Relay::start(server.addr, up, Tamper::default());
            let mut config = server.client(backend, Mode::OneCopy, Workload::Echo);
            config.port = relay.addr.port();
            config.size = SIZE as usize;
            config.duration = Duration::from_millis(1200);
            config.rate = rate;
            config.depth = if rate.is_some() { 64 } else { 1 };
            let r = run_client(&config, &|_| {}).expect("a stalled run still ends");
            drop(relay);
            assert_eq!(r.summary.verify_errors, 0);
            r
        };
        // 1000 a second: about 400 messages fall due during the hold, half of them
        // more than 200 ms before it ends.
        let open = run(Some(1000.0));
        let slow = slower_than(&open, Duration::from_millis(150));
        assert!(
            slow >= 100,
            "{backend}: only {slow} round trips over 150 ms under --rate: {:?}",
            open.latency
        );
        let rate = open.rate.as_ref().expect("a rate report");
        assert!(rate.held_back > 0, "{backend}: {rate:?}");
        let closed = run(None);
        let slow = slower_than(&closed, Duration::from_millis(150));
        assert!(
            slow <= 3,
            "{backend}: a closed loop waits out a stall in one round trip, not {slow}: {:?}",
            closed.latency
        );
    }
}
