//! `--sqpoll` and `--busy-poll` on loopback: every option × engine × workload runs and
//! verifies, the records show what the kernel granted, the SQ thread's CPU time is counted
//! into the side's own, and what the kernel refuses is named.

use std::time::Duration;

use engine::config::SqPoll;
use engine::{run_client, Backend, Error, Mode, Record, ServerConfig, WarningKind, Workload};

use crate::harness::{assert_clean_run, workers, TestServer};

const WORKLOADS: [Workload; 2] = [Workload::Echo, Workload::Stream];

fn server(backend: Backend, sqpoll: Option<SqPoll>, busy_poll_us: Option<u32>) -> TestServer {
    TestServer::start(ServerConfig {
        backend,
        workers: workers(backend, 1),
        idle_timeout: Duration::from_secs(5),
        sqpoll,
        busy_poll_us,
        ..Default::default()
    })
}

fn run(
    srv: &TestServer,
    backend: Backend,
    mode: Mode,
    workload: Workload,
    sqpoll: Option<SqPoll>,
    busy_poll_us: Option<u32>,
) -> Result<Record, Error> {
    let mut config = srv.client(backend, mode, workload);
    config.depth = 4;
    config.sqpoll = sqpoll;
    config.busy_poll_us = busy_poll_us;
    run_client(&config, &|_| {})
}

#[test]
fn sqpoll_runs_verifies_and_counts_its_threads_cpu_time() {
    // The server's SQ thread unbound, the client's bound to CPU 0 (IORING_SETUP_SQ_AFF).
    let srv = server(Backend::Uring, Some(SqPoll { cpu: None }), None);
    let client_sq = Some(SqPoll { cpu: Some(0) });
    for workload in WORKLOADS {
        for mode in [Mode::TwoCopy, Mode::Zc, Mode::ZcFixed] {
            let case = format!("uring {mode} {workload} --sqpoll");
            let r = run(&srv, Backend::Uring, mode, workload, client_sq, None)
                .unwrap_or_else(|e| panic!("{case}: {e}"));
            assert_clean_run(&r, &case);
            let server = r.server.as_ref().unwrap();
            for (who, side, cpu) in [("client", &r.client, Some(0)), ("server", server, None)] {
                let ring = side.uring.as_ref().expect("a uring side");
                let flags = ring.flags.to_string();
                assert!(flags.contains("sqpoll"), "{case}: {who} flags {flags}");
                assert_eq!(
                    flags.contains("sq_aff"),
                    cpu.is_some(),
                    "{case}: {who} {flags}"
                );
                assert!(
                    !flags.contains("defer_taskrun") && !flags.contains("coop_taskrun"),
                    "{case}: {who}: the kernel refuses those beside SQPOLL: {flags}"
                );
                let grant = ring.sqpoll.expect("the SQ thread's grant");
                assert_eq!(grant.cpu, cpu, "{case}: {who}");
                assert!(grant.idle_ms > 0, "{case}: {who}");
                let own = side.own_cpu.expect("own CPU time");
                let sq = own.sqpoll_ns.expect("the SQ thread's CPU time");
                // The SQ thread spins while the run moves data: it cannot have used
                // nothing over a 0.3 s run, and its time is inside the side's own.
                assert!(sq > 0, "{case}: {who}: {own:?}");
                assert!(own.system_ns >= sq, "{case}: {who}: {own:?}");
                assert_eq!(own.sqpoll_threads, Some(1), "{case}: {who}");
                // Submissions went to the SQ thread; the enters left are waits.
                let io = &side.stats.io;
                assert!(io.sqes > 0 && io.enters > 0, "{case}: {who}: {io:?}");
                assert!(io.sq_wakeups <= io.enters, "{case}: {who}: {io:?}");
            }
            assert!(
                !r.warnings.iter().any(|w| w.text.contains("DEFER_TASKRUN")),
                "{case}: DEFER_TASKRUN was not asked for, so not refused: {:?}",
                r.warnings
            );
            assert!(
                !r.warnings
                    .iter()
                    .any(|w| w.kind == WarningKind::ImpossibleCpu),
                "{case}: {:?}",
                r.warnings
            );
        }
    }
}

#[test]
fn without_sqpoll_no_sq_thread_is_counted() {
    let srv = server(Backend::Uring, None, None);
    let r = run(
        &srv,
        Backend::Uring,
        Mode::OneCopy,
        Workload::Echo,
        None,
        None,
    )
    .unwrap();
    assert_clean_run(&r, "uring plain");
    for side in [&r.client, r.server.as_ref().unwrap()] {
        assert_eq!(side.own_cpu.unwrap().sqpoll_ns, None, "null, not 0");
        assert_eq!(side.uring.as_ref().unwrap().sqpoll, None);
        assert_eq!(side.stats.io.sq_wakeups, 0);
        assert_eq!(side.busy_poll, None);
    }
}

#[test]
fn busy_poll_runs_verifies_and_records_what_was_granted() {
    for backend in [Backend::Syscall, Backend::Uring] {
        let srv = server(backend, None, Some(40));
        let via = match backend {
            Backend::Syscall => "SO_BUSY_POLL",
            Backend::Uring => "IORING_REGISTER_NAPI",
        };
        for workload in WORKLOADS {
            let case = format!("{backend} {workload} --busy-poll");
            let r = run(&srv, backend, Mode::OneCopy, workload, None, Some(30))
                .unwrap_or_else(|e| panic!("{case}: {e}"));
            assert_clean_run(&r, &case);
            for (who, side, us) in [
                ("client", &r.client, 30),
                ("server", r.server.as_ref().unwrap(), 40),
            ] {
                let b = side
                    .busy_poll
                    .as_ref()
                    .unwrap_or_else(|| panic!("{case}: {who}: no busy-poll grant"));
                assert_eq!(b.via, via, "{case}: {who}");
                assert_eq!((b.requested_us, b.granted_us), (us, us), "{case}: {who}");
                assert_eq!(
                    b.prefer,
                    b.prefer_refused.is_none(),
                    "{case}: {who}: preferring granted or refused by name: {b:?}"
                );
                // Loopback has no NAPI context: the socket says so, and so does the record.
                let napi = b.napi_id.expect("the socket's NAPI id was read");
                let warned = r.warnings.iter().any(|w| {
                    w.kind == WarningKind::NoNapi
                        && w.text.contains(&format!("--busy-poll on the {who}"))
                        && w.text.contains("SO_INCOMING_NAPI_ID is 0")
                });
                assert_eq!(warned, napi == 0, "{case}: {who}: {:?}", r.warnings);
            }
        }
    }
}

#[test]
fn sqpoll_with_busy_poll_runs_on_one_ring() {
    let both = Some(SqPoll { cpu: None });
    let srv = server(Backend::Uring, both, Some(20));
    let r = run(
        &srv,
        Backend::Uring,
        Mode::TwoCopy,
        Workload::Echo,
        both,
        Some(20),
    )
    .unwrap();
    assert_clean_run(&r, "uring --sqpoll --busy-poll");
    let ring = r.client.uring.as_ref().unwrap();
    assert!(ring.sqpoll.is_some() && ring.busy_poll.is_some());
    assert!(r.client.own_cpu.unwrap().sqpoll_ns.unwrap() > 0);
}

#[test]
fn an_sq_thread_cpu_the_kernel_refuses_is_named() {
    let srv = server(Backend::Uring, None, None);
    let cpu = Some(SqPoll { cpu: Some(100_000) });
    let e = run(
        &srv,
        Backend::Uring,
        Mode::TwoCopy,
        Workload::Echo,
        cpu,
        None,
    )
    .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("IORING_SETUP_SQPOLL") && text.contains("100000"),
        "{text}"
    );
    assert_eq!(e.exit_code(), engine::exit::UNSUPPORTED, "{text}");
}

#[test]
fn polling_options_outside_their_engine_or_range_are_refused() {
    let srv = server(Backend::Syscall, None, None);
    let sq = Some(SqPoll::default());
    let e = run(
        &srv,
        Backend::Syscall,
        Mode::TwoCopy,
        Workload::Echo,
        sq,
        None,
    )
    .unwrap_err();
    assert!(e.to_string().contains("--sqpoll"), "{e}");
    let e = run(
        &srv,
        Backend::Syscall,
        Mode::TwoCopy,
        Workload::Echo,
        None,
        Some(0),
    )
    .unwrap_err();
    assert!(e.to_string().contains("--busy-poll"), "{e}");
    let config = ServerConfig {
        sqpoll: sq,
        ..Default::default()
    };
    assert!(config
        .validate()
        .unwrap_err()
        .to_string()
        .contains("--sqpoll"));
}

/// The capability sets of the calling thread (capget/capset, version 3).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Drops CAP_NET_ADMIN from the calling thread's effective set (capabilities are per
/// thread; threads it starts inherit the reduced set).
fn drop_net_admin() {
    const VERSION_3: u32 = 0x2008_0522;
    const CAP_NET_ADMIN: u32 = 12;
    let mut header = CapHeader {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget/capset read and write one header and two data structs, laid out as
    // the kernel's.
    unsafe {
        assert_eq!(
            libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()),
            0
        );
        data[0].effective &= !(1 << CAP_NET_ADMIN);
        assert_eq!(
            libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()),
            0
        );
    }
}

#[test]
fn a_refused_prefer_busy_poll_is_named_and_the_run_goes_on() {
    let srv = server(Backend::Syscall, None, None);
    let (addr_ip, port) = (srv.addr.ip(), srv.addr.port());
    // Without CAP_NET_ADMIN, SO_PREFER_BUSY_POLL is refused (EPERM) while SO_BUSY_POLL is
    // taken: the client runs, and says so.
    let r = std::thread::spawn(move || {
        drop_net_admin();
        let config = engine::ClientConfig {
            host: addr_ip.to_string(),
            port,
            duration: Duration::from_millis(300),
            busy_poll_us: Some(25),
            ..Default::default()
        };
        run_client(&config, &|_| {})
    })
    .join()
    .unwrap()
    .unwrap();
    assert_clean_run(&r, "syscall --busy-poll without CAP_NET_ADMIN");
    let b = r.client.busy_poll.as_ref().unwrap();
    assert_eq!(b.granted_us, 25);
    assert!(!b.prefer, "{b:?}");
    let why = b.prefer_refused.as_deref().expect("the refusal, named");
    assert!(
        why.contains("SO_PREFER_BUSY_POLL")
            && why.contains("EPERM")
            && why.contains("CAP_NET_ADMIN"),
        "{why}"
    );
    assert!(
        r.warnings
            .iter()
            .any(|w| w.kind == WarningKind::Fallback && w.text.contains("SO_PREFER_BUSY_POLL")),
        "{:?}",
        r.warnings
    );
}
