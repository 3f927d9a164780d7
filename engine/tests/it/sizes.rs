//! Every message size a client may ask for, with every verify level, depth and mode, works
//! end to end on both engines: the sizes where a field is little more than its tag (64 to
//! ~136 bytes) one by one, then landmarks and random larger sizes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use engine::{Backend, Mode, Verify, Workload};

use crate::harness::{assert_clean_run, TestServer};

/// Sizes to walk: each of the smallest, then steps, landmarks around powers of two, and a
/// few random larger ones (the seed is printed with any failure).
fn sizes(seed: u64) -> Vec<usize> {
    let mut v: Vec<usize> = (64..=80).chain((85..=140).step_by(5)).collect();
    v.extend([
        255, 256, 257, 511, 1000, 1023, 1024, 1025, 2047, 4095, 4096, 4097, 8200,
    ]);
    let mut x = seed | 1;
    for _ in 0..6 {
        // xorshift64: reproducible from the seed.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.push(64 + (x % (256 * 1024)) as usize);
    }
    v
}

fn walk(backend: Backend) {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let server = TestServer::with_backend(backend);
    let modes: Vec<Mode> = Mode::ALL
        .iter()
        .copied()
        .filter(|m| m.supported_on(backend))
        .collect();
    for (i, size) in sizes(seed).into_iter().enumerate() {
        for verify in [Verify::Full, Verify::Sample, Verify::Off] {
            let mode = modes[i % modes.len()];
            let depth = [1, 2, 8][i % 3];
            let workload = if i % 4 == 3 {
                Workload::Stream
            } else {
                Workload::Echo
            };
            let case =
                format!("{backend} {mode} {workload} size {size} depth {depth} verify {verify} (seed {seed})");
            let mut config = server.client(backend, mode, workload);
            config.size = size;
            config.depth = depth;
            config.verify = verify;
            config.duration = Duration::from_millis(20);
            let record = server.run(&config, &case);
            assert_clean_run(&record, &case);
        }
    }
    assert!(
        !server.events().iter().any(|e| e.contains("failed")),
        "{:#?}",
        server.events()
    );
}

#[test]
fn every_size_works_on_the_syscall_engine() {
    walk(Backend::Syscall);
}

#[test]
fn every_size_works_on_the_uring_engine() {
    walk(Backend::Uring);
}
