//! TCP_INFO at the end of the run: read by every connection on both sides, on both
//! engines, and carried through the wire into the record.

use engine::{Backend, Direction, Mode, Workload};

use crate::harness::TestServer;

/// A forward stream (the client sends) and an echo, `client` engine against `server`.
fn check(client: Backend, server: Backend, workload: Workload) {
    let case = format!("{client} client, {server} server, {workload}");
    let srv = TestServer::with_backend(server);
    let mut config = srv.client(client, Mode::TwoCopy, workload);
    config.direction = Direction::Forward;
    config.threads = 2;
    let r = srv.run(&config, &case);
    let server_side = r.server.as_ref().expect("a server side");
    let c = r
        .client
        .tcp_info
        .as_ref()
        .unwrap_or_else(|| panic!("{case}: client"));
    let s = server_side
        .tcp_info
        .as_ref()
        .unwrap_or_else(|| panic!("{case}: server"));
    let conns = r.summary.connections as u64;
    assert_eq!(c.connections, conns, "{case}");
    assert_eq!(s.connections, conns, "{case}");
    for (who, t) in [("client", c), ("server", s)] {
        // Every field this module reads exists since Linux 4.10; the test machines run
        // newer kernels, so each must be filled.
        assert!(t.retransmits.is_some(), "{case}: {who} {t:?}");
        assert!(t.total_retrans.is_some(), "{case}: {who} {t:?}");
        assert!(t.busy_us.is_some(), "{case}: {who} {t:?}");
        assert!(t.delivery_rate.is_some(), "{case}: {who} {t:?}");
        assert!(t.srtt_us.unwrap().min > 0, "{case}: {who} srtt {t:?}");
        assert!(t.cwnd.unwrap().min > 0, "{case}: {who} cwnd {t:?}");
        assert!(t.snd_mss.unwrap().min > 0, "{case}: {who} {t:?}");
    }
    // The client sent: the server acknowledged its bytes, and received them.
    assert!(c.bytes_acked.unwrap() > 0, "{case}: {c:?}");
    assert!(s.bytes_received.unwrap() >= r.server.as_ref().unwrap().stats.bytes_received);
    if workload == Workload::Echo {
        assert!(
            s.bytes_acked.unwrap() > 0,
            "{case}: the server echoed: {s:?}"
        );
    }
    // Each connection's own reading is kept: per client thread, and in each server report.
    let per_conn: usize = r.threads.iter().map(|t| t.tcp_info.len()).sum();
    assert_eq!(per_conn as u64, conns, "{case}");
    assert!(
        r.server_reports.iter().all(|p| p.tcp_info.is_some()),
        "{case}"
    );
    // The JSON record carries both sides' readings back whole.
    let back: engine::Record =
        serde_json::from_str(&engine::export::json(&r)).expect("the record reads back");
    assert_eq!(back.client.tcp_info, r.client.tcp_info, "{case}");
    assert_eq!(
        back.server.unwrap().tcp_info,
        server_side.tcp_info,
        "{case}"
    );
    assert_eq!(back.threads, r.threads, "{case}");
}

#[test]
fn syscall_both_sides_read_tcp_info() {
    check(Backend::Syscall, Backend::Syscall, Workload::Stream);
    check(Backend::Syscall, Backend::Syscall, Workload::Echo);
}

#[test]
fn uring_both_sides_read_tcp_info() {
    check(Backend::Uring, Backend::Uring, Workload::Stream);
    check(Backend::Uring, Backend::Uring, Workload::Echo);
}
