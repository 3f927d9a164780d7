//! Every backend × mode × workload × depth on loopback, full verification, both sides'
//! byte counts checked.

use engine::{run_client, Backend, Mode, Workload};

use crate::harness::{assert_clean_run, assert_zc_loopback, TestServer};

fn run_case(backend: Backend, mode: Mode, workload: Workload, depth: usize) {
    let case = format!("{backend} {mode} {workload} depth {depth}");
    let server = TestServer::syscall();
    let mut config = server.client(backend, mode, workload);
    config.depth = depth;
    config.threads = 2;
    config.size = 16 * 1024 + 8; // uneven: the last field takes the remainder
    let record = run_client(&config, &|_| {}).unwrap_or_else(|e| panic!("{case}: {e}"));
    assert_clean_run(&record, &case);
    assert_eq!(record.threads.len(), 2, "{case}");
    assert!(
        record.client.stats.io.syscalls > 0,
        "{case}: syscalls counted"
    );
    if mode == Mode::Zc {
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
}

/// Large messages with deep pipelines on both directions must not deadlock: each side
/// fills the other's socket buffers.
#[test]
fn deep_echo_of_large_messages_does_not_deadlock() {
    let server = TestServer::syscall();
    for mode in [Mode::TwoCopy, Mode::OneCopy, Mode::Zc] {
        let mut config = server.client(Backend::Syscall, mode, Workload::Echo);
        config.size = 1 << 20;
        config.depth = 16;
        let record = run_client(&config, &|_| {}).unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert_clean_run(&record, &format!("{mode} 1M depth 16"));
    }
}
