//! The server as sender: `--reverse` (the server sends, the client receives and checks)
//! and `--bidir` (both at once on every connection), for every mode, on every pairing of
//! the two engines, at each verification level; and what a server that cannot send with
//! the asked mode says.

use engine::{export, run_client, Backend, Direction, Mode, Record, Verify, Workload};

use crate::harness::{assert_zc_loopback, TestServer};

/// A `client` engine against a `server` engine, streaming `direction`.
fn run_pair(
    client: Backend,
    server: Backend,
    mode: Mode,
    direction: Direction,
    verify: Verify,
) -> Record {
    let case = format!("{client} client, {server} server: {mode} {direction} verify {verify}");
    let srv = TestServer::with_backend(server);
    let mut config = srv.client(client, mode, Workload::Stream);
    config.direction = direction;
    config.verify = verify;
    config.depth = 4;
    config.threads = 2;
    config.size = 16 * 1024 + 8; // uneven: the last field takes the remainder
    let r = srv.run(&config, &case);
    assert_directed_run(&r, &case);
    let text = export::human(&r);
    assert!(
        text.contains(&format!("Direction: {direction}")),
        "{case}: {text}"
    );
    assert!(
        text.contains("Total Bytes Received:"),
        "{case}: the seed's summary"
    );
    r
}

/// What every healthy reverse or bidir run must show on both sides.
fn assert_directed_run(r: &Record, case: &str) {
    let server = r
        .server
        .as_ref()
        .unwrap_or_else(|| panic!("{case}: no server report"));
    let (c, s) = (&r.client.stats, &server.stats);
    let size = r.config.size as u64;
    assert_eq!(
        r.summary.verify_errors, 0,
        "{case}: {:?} / {:?}",
        c.first_verify_error, s.first_verify_error
    );
    // The server's stream: every byte it sent reached the client, whole messages only.
    assert!(s.msgs_sent > 0, "{case}: the server sent nothing");
    assert_eq!(s.bytes_sent, s.msgs_sent * size, "{case}");
    assert_eq!(
        c.bytes_received, s.bytes_sent,
        "{case}: client got every byte"
    );
    assert_eq!(c.msgs_received, s.msgs_sent, "{case}");
    match r.config.direction {
        Direction::Reverse => {
            assert_eq!((c.bytes_sent, s.bytes_received), (0, 0), "{case}");
            assert_eq!(r.summary.messages, c.msgs_received, "{case}");
        }
        Direction::Bidir => {
            assert!(c.msgs_sent > 0, "{case}: the client sent nothing");
            assert_eq!(
                s.bytes_received, c.bytes_sent,
                "{case}: server got every byte"
            );
            assert_eq!(s.msgs_received, c.msgs_sent, "{case}");
            assert_eq!(r.summary.messages, c.msgs_sent + c.msgs_received, "{case}");
        }
        Direction::Forward => panic!("{case}: not a directed run"),
    }
    crate::harness::assert_send_flags(r, case);
    assert!(r.latency.is_none(), "{case}: stream has no round trip");
    let secs = r.summary.duration_s;
    let gbps = |b: u64| b as f64 * 8.0 / secs / 1e9;
    assert!(
        (r.summary.throughput_gbps - gbps(c.bytes_sent + c.bytes_received)).abs() < 1e-9,
        "{case}: both directions count"
    );
    let one_way = r.summary.one_way_gbps.expect("one-way figure");
    assert!(
        (one_way - gbps(c.bytes_sent.max(c.bytes_received))).abs() < 1e-9,
        "{case}: the busier direction"
    );
    // The client's measured interval ends after the server's last message arrived: within
    // a loaded machine's slack of the planned one, never before it.
    assert!(secs >= r.config.duration.as_secs_f64(), "{case}: {secs}");
    if r.config.mode.is_zero_copy() {
        // The server's zero-copy sends are accounted as the client's are: its messages
        // and each connection's end-of-stream record.
        assert_zc_loopback(server, &format!("{case} (server)"));
        let ends = r.summary.connections as u64;
        assert_eq!(server.stats.zc.sends, s.msgs_sent + ends, "{case}");
        if r.config.direction == Direction::Bidir {
            assert_zc_loopback(&r.client, case);
        } else {
            assert_eq!(c.zc.sends, 0, "{case}: a reverse client sends nothing");
        }
    } else {
        assert_eq!((c.zc.sends, s.zc.sends), (0, 0), "{case}");
    }
}

macro_rules! pairs {
    ($($name:ident: $client:ident $server:ident $mode:ident $dir:ident $verify:ident;)+) => {$(
        #[test]
        fn $name() {
            run_pair(
                Backend::$client,
                Backend::$server,
                Mode::$mode,
                Direction::$dir,
                Verify::$verify,
            );
        }
    )+};
}

pairs! {
    reverse_syscall_syscall_two_copy: Syscall Syscall TwoCopy Reverse Full;
    reverse_syscall_syscall_one_copy: Syscall Syscall OneCopy Reverse Sample;
    reverse_syscall_syscall_zc: Syscall Syscall Zc Reverse Full;
    reverse_uring_uring_two_copy: Uring Uring TwoCopy Reverse Full;
    reverse_uring_uring_one_copy: Uring Uring OneCopy Reverse Off;
    reverse_uring_uring_zc: Uring Uring Zc Reverse Full;
    reverse_uring_uring_zc_fixed: Uring Uring ZcFixed Reverse Full;
    reverse_syscall_uring_two_copy: Syscall Uring TwoCopy Reverse Full;
    reverse_syscall_uring_one_copy: Syscall Uring OneCopy Reverse Full;
    reverse_syscall_uring_zc: Syscall Uring Zc Reverse Sample;
    reverse_uring_syscall_two_copy: Uring Syscall TwoCopy Reverse Full;
    reverse_uring_syscall_one_copy: Uring Syscall OneCopy Reverse Full;
    reverse_uring_syscall_zc: Uring Syscall Zc Reverse Full;
    bidir_syscall_syscall_two_copy: Syscall Syscall TwoCopy Bidir Full;
    bidir_syscall_syscall_one_copy: Syscall Syscall OneCopy Bidir Off;
    bidir_syscall_syscall_zc: Syscall Syscall Zc Bidir Full;
    bidir_uring_uring_two_copy: Uring Uring TwoCopy Bidir Sample;
    bidir_uring_uring_one_copy: Uring Uring OneCopy Bidir Full;
    bidir_uring_uring_zc: Uring Uring Zc Bidir Full;
    bidir_uring_uring_zc_fixed: Uring Uring ZcFixed Bidir Full;
    bidir_syscall_uring_two_copy: Syscall Uring TwoCopy Bidir Full;
    bidir_syscall_uring_one_copy: Syscall Uring OneCopy Bidir Full;
    bidir_syscall_uring_zc: Syscall Uring Zc Bidir Full;
    bidir_uring_syscall_two_copy: Uring Syscall TwoCopy Bidir Full;
    bidir_uring_syscall_one_copy: Uring Syscall OneCopy Bidir Sample;
    bidir_uring_syscall_zc: Uring Syscall Zc Bidir Full;
}

/// zc-fixed needs a uring sender: a syscall server cannot send it in reverse or bidir,
/// and says so.
#[test]
fn a_syscall_server_refuses_to_send_zc_fixed_with_the_reason() {
    for direction in [Direction::Reverse, Direction::Bidir] {
        let srv = TestServer::with_backend(Backend::Syscall);
        let mut config = srv.client(Backend::Uring, Mode::ZcFixed, Workload::Stream);
        config.direction = direction;
        let e = run_client(&config, &|_| {}).unwrap_err();
        assert_eq!(e.exit_code(), engine::exit::REFUSED, "{e}");
        let e = e.to_string();
        assert!(
            e.contains("needs a uring server") && e.contains("the server sends"),
            "{direction}: {e}"
        );
    }
}

/// Depth 1 on uring: a send chain of one must not wait on a receive linked behind it
/// (which, in a stream, waits for the other direction or the end of file).
#[test]
fn depth_one_streams_both_ways_on_uring() {
    for direction in [Direction::Reverse, Direction::Bidir] {
        let srv = TestServer::with_backend(Backend::Uring);
        let mut config = srv.client(Backend::Uring, Mode::OneCopy, Workload::Stream);
        config.direction = direction;
        config.depth = 1;
        let case = format!("uring depth 1 {direction}");
        let r = srv.run(&config, &case);
        assert_directed_run(&r, &case);
    }
}

/// A record says which direction ran, and an older record (no direction) reads as forward.
#[test]
fn records_carry_the_direction() {
    let srv = TestServer::with_backend(Backend::Syscall);
    let mut config = srv.client(Backend::Syscall, Mode::OneCopy, Workload::Stream);
    config.direction = Direction::Reverse;
    let r = run_client(&config, &|_| {}).unwrap();
    let json = export::json(&r);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["config"]["direction"], "reverse");
    let csv = export::csv(&r);
    assert!(
        csv.lines().next().unwrap().contains("config_direction"),
        "{csv}"
    );
    let mut old = v.clone();
    old["config"].as_object_mut().unwrap().remove("direction");
    let back: Record = serde_json::from_value(old).unwrap();
    assert_eq!(back.config.direction, Direction::Forward);
}
