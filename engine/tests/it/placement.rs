//! Placement policies, end to end: `split` keeps the two sides on disjoint CPUs at every
//! thread count, `paired` puts a client thread and the server thread serving it on one
//! CPU, whatever order the connections arrived in.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use engine::placement::{available_cpus, CpuSpec, PlacementPolicy};
use engine::{run_client, Backend, ClientEvent, Mode, Record, ServerConfig, Workload};

use crate::harness::{assert_clean_run, workers, TestServer};

fn server(backend: Backend, policy: PlacementPolicy, threads: usize) -> TestServer {
    TestServer::start(ServerConfig {
        backend,
        workers: workers(backend, threads),
        max_clients: 8,
        cpus: policy.into(),
        idle_timeout: Duration::from_secs(5),
        ..Default::default()
    })
}

fn cpus(placement: &[engine::placement::Placement]) -> Vec<Option<usize>> {
    placement.iter().map(|p| p.cpu).collect()
}

fn two_cpus() -> Vec<usize> {
    let cpus = available_cpus().to_vec();
    assert!(
        cpus.len() >= 2,
        "placement tests need two CPUs to tell policies apart; this process may use {cpus:?}"
    );
    cpus
}

fn run(server: &TestServer, backend: Backend, policy: PlacementPolicy, threads: usize) -> Record {
    let mut config = server.client(backend, Mode::OneCopy, Workload::Echo);
    config.threads = threads;
    config.cpus = policy.into();
    let r = run_client(&config, &|_| {}).expect("run");
    assert_clean_run(&r, "placement");
    r
}

#[test]
fn split_keeps_the_sides_apart_at_every_thread_count() {
    let all = two_cpus();
    let (server_half, client_half) = all.split_at(all.len() / 2);
    for backend in Backend::ALL.iter().copied() {
        for threads in [1, 3] {
            let s = server(backend, PlacementPolicy::Split, threads);
            let r = run(&s, backend, PlacementPolicy::Split, threads);
            assert_eq!(r.config.cpus, CpuSpec::Policy(PlacementPolicy::Split));
            let server_cpus = cpus(&r.server.as_ref().expect("server figures").placement);
            let client_cpus = cpus(&r.client.placement);
            assert_eq!(client_cpus.len(), threads, "{backend}");
            assert!(
                !server_cpus.is_empty(),
                "{backend}: the server says where it ran"
            );
            for c in &client_cpus {
                assert!(
                    client_half.contains(&c.expect("pinned")),
                    "{backend}: {client_cpus:?}"
                );
            }
            for c in &server_cpus {
                assert!(
                    server_half.contains(&c.expect("pinned")),
                    "{backend}: {server_cpus:?}"
                );
            }
        }
    }
}

/// Client A holds the server's first place (syscall) or first worker (uring) while client
/// B runs: by arrival order B's thread 0 would get the second place, on another CPU than
/// its own; paired gives it the place of its thread index, on its own CPU.
#[test]
fn paired_puts_each_client_thread_with_its_server_thread() {
    two_cpus();
    for backend in Backend::ALL.iter().copied() {
        let s = server(backend, PlacementPolicy::Paired, 2);
        let (connected_tx, connected_rx) = mpsc::channel();
        let stop_a = AtomicBool::new(false);
        std::thread::scope(|scope| {
            let holder = scope.spawn(|| {
                let mut config = s.client(backend, Mode::OneCopy, Workload::Echo);
                config.cpus = PlacementPolicy::Paired.into();
                config.duration = Duration::from_secs(30);
                let tx = std::sync::Mutex::new(connected_tx);
                // Stopped once B is done: nothing here depends on how long B takes.
                engine::run_client_until(&config, &stop_a, &|e| {
                    if let ClientEvent::Connected { .. } = e {
                        let _ = tx.lock().unwrap().send(());
                    }
                })
            });
            connected_rx
                .recv_timeout(Duration::from_secs(30))
                .expect("client A connected");
            let b = run(&s, backend, PlacementPolicy::Paired, 2);
            stop_a.store(true, Ordering::Relaxed);
            let _ = holder.join();
            let client = cpus(&b.client.placement);
            let server = cpus(&b.server.as_ref().expect("server figures").placement);
            assert_eq!(client.len(), 2, "{backend}");
            assert_ne!(client[0], client[1], "{backend}: two CPUs, two threads");
            assert_eq!(
                server, client,
                "{backend}: thread i's server thread on its CPU"
            );
        });
    }
}

/// Each side names where it ran: on loopback both sides' data is on `lo`, described by the
/// side itself (the server's arrives in its report).
#[test]
fn each_side_names_its_host_and_interface() {
    for backend in Backend::ALL.iter().copied() {
        let s = server(backend, PlacementPolicy::Split, 1);
        let r = run(&s, backend, PlacementPolicy::Split, 1);
        let client = r.client.host.as_ref().expect("client host");
        let server = r
            .server
            .as_ref()
            .and_then(|s| s.host.as_ref())
            .expect("server host");
        for (who, h) in [("client", client), ("server", server)] {
            assert!(!h.hostname.is_empty() && !h.kernel.is_empty(), "{who}");
            let i = h.interface.as_ref().expect("the data's interface");
            assert_eq!(
                (i.name.as_str(), i.kind),
                ("lo", engine::host::LinkKind::Loopback),
                "{backend} {who}"
            );
            assert!(h.optmem_max.is_some(), "{who}");
        }
    }
}
