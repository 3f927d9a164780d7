//! A server on 127.0.0.1:0 in a background thread, its events captured, stopped on drop;
//! and a client config pointed at it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use engine::{Backend, ClientConfig, Mode, Server, ServerConfig, ServerEvent, Verify, Workload};

pub struct TestServer {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    events: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    pub fn start(config: ServerConfig) -> TestServer {
        let config = ServerConfig {
            bind: [127, 0, 0, 1].into(),
            port: 0,
            ..config
        };
        let server = Server::bind(config).expect("bind a test server");
        let addr = server.local_addr();
        let stop = Arc::new(AtomicBool::new(false));
        let events = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, events) = (stop.clone(), events.clone());
            std::thread::spawn(move || {
                let log = |e: ServerEvent| events.lock().unwrap().push(describe(&e));
                server.run(&stop, &log).expect("server run");
            })
        };
        TestServer {
            addr,
            stop,
            events,
            thread: Some(thread),
        }
    }

    /// A server on `backend` (uring: 2 workers) with the default idle timeout (10 s): a
    /// test client starved of CPU for seconds on a loaded machine is slow, not idle.
    pub fn with_backend(backend: Backend) -> TestServer {
        Self::start(ServerConfig {
            backend,
            workers: workers(backend, 2),
            ..Default::default()
        })
    }

    /// Runs `config` against this server; a failed run panics with `case`, the error and
    /// every server event so far, which say which side ended it and why.
    pub fn run(&self, config: &ClientConfig, case: &str) -> engine::Record {
        engine::run_client(config, &|_| {})
            .unwrap_or_else(|e| panic!("{case}: {e}\nserver events: {:#?}", self.events()))
    }

    /// Asks the server to stop, as SIGTERM does; dropping it waits for the stop.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Every event so far, one line each.
    pub fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }

    /// Waits until an event line contains `needle`; panics with the log after `within`.
    pub fn wait_for(&self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            if let Some(e) = self.events().into_iter().find(|e| e.contains(needle)) {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "no event containing {needle:?} within {within:?}; events: {:#?}",
                self.events()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A client config for this server: full verification, short run.
    pub fn client(&self, backend: Backend, mode: Mode, workload: Workload) -> ClientConfig {
        ClientConfig {
            host: self.addr.ip().to_string(),
            port: self.addr.port(),
            backend,
            mode,
            workload,
            verify: Verify::Full,
            duration: Duration::from_millis(300),
            io_timeout: Duration::from_secs(5),
            ..Default::default()
        }
    }
}

/// `--workers n` where it applies: the uring backend (the syscall one refuses it).
pub fn workers(backend: Backend, n: usize) -> Option<usize> {
    (backend == Backend::Uring).then_some(n)
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn describe(e: &ServerEvent) -> String {
    match e {
        ServerEvent::Connected { id, hello, .. } => {
            format!("connected {id} {} {}", hello.workload, hello.mode)
        }
        ServerEvent::Disconnected { id, report, .. } => format!(
            "disconnected {id} sent={} received={} verify_errors={}",
            report.stats.bytes_sent, report.stats.bytes_received, report.stats.verify_errors
        ),
        ServerEvent::Refused { id, reason, .. } => format!("refused {id}: {reason}"),
        ServerEvent::Failed { id, error, .. } => format!("failed {id}: {error}"),
        ServerEvent::AcceptError { error } => format!("accept error: {error}"),
        ServerEvent::Stopping { active } => format!("stopping {active}"),
        ServerEvent::Notice(text) => format!("notice: {text}"),
    }
}

/// Checks what every healthy run must show on both sides.
pub fn assert_clean_run(r: &engine::Record, case: &str) {
    let server = r
        .server
        .as_ref()
        .unwrap_or_else(|| panic!("{case}: no server report"));
    let (c, s) = (&r.client.stats, &server.stats);
    assert_eq!(
        r.summary.verify_errors, 0,
        "{case}: {:?} / {:?}",
        c.first_verify_error, s.first_verify_error
    );
    assert!(c.msgs_sent > 0, "{case}: nothing sent");
    assert_eq!(
        c.bytes_sent,
        c.msgs_sent * r.config.size as u64,
        "{case}: whole messages only"
    );
    assert_eq!(
        c.bytes_sent, s.bytes_received,
        "{case}: server got every byte sent"
    );
    assert_eq!(c.msgs_sent, s.msgs_received, "{case}");
    match r.config.workload {
        Workload::Echo => {
            assert_eq!(
                s.bytes_sent, s.bytes_received,
                "{case}: server echoed everything"
            );
            assert_eq!(
                c.bytes_received, s.bytes_sent,
                "{case}: client got every echo"
            );
            let lat = r
                .latency
                .as_ref()
                .unwrap_or_else(|| panic!("{case}: no latency"));
            assert_eq!(lat.count, c.msgs_received, "{case}: one RTT per echo");
            assert!(
                lat.p50_us > 0.0 && lat.max_us >= lat.p99_us,
                "{case}: {lat:?}"
            );
        }
        Workload::Stream => {
            assert_eq!(c.bytes_received, 0, "{case}");
            assert_eq!(s.bytes_sent, 0, "{case}");
            assert!(r.latency.is_none(), "{case}: stream has no round trip");
        }
    }
    assert!(r.summary.throughput_gbps > 0.0, "{case}");
    assert_send_flags(r, case);
}

/// Each side that sends records the flags its mode's sends carry on its engine, the
/// server's coming over the wire in its report; a side that sends nothing records none.
/// MSG_MORE is counted apart, on zc-fixed's sends only, and never on a chain's last.
pub fn assert_send_flags(r: &engine::Record, case: &str) {
    let echo = r.config.workload == Workload::Echo;
    let (mode, direction) = (r.config.mode, r.config.direction);
    let server = r.server.as_ref().expect("a server report");
    for (side, sends) in [
        (&r.client, echo || direction.client_sends()),
        (server, echo || direction.server_sends()),
    ] {
        let expected = sends.then(|| mode.send_flags(side.backend)).flatten();
        assert_eq!(
            side.send_flags, expected,
            "{case}: {} send flags",
            side.backend
        );
        let (more, sent) = (side.stats.io.more_sends, side.stats.msgs_sent);
        if mode == Mode::ZcFixed {
            assert!(
                more < sent.max(1),
                "{case}: {more} MSG_MORE of {sent} sends"
            );
        } else {
            assert_eq!(more, 0, "{case}: only zc-fixed takes MSG_MORE");
        }
    }
}

/// Zero-copy accounting on loopback: every send completes, and the kernel copies every
/// one at delivery to the local socket.
pub fn assert_zc_loopback(side: &engine::SideReport, case: &str) {
    let zc = &side.stats.zc;
    assert!(zc.sends > 0, "{case}: no zero-copy sends counted");
    assert_eq!(
        zc.completions, zc.sends,
        "{case}: every zero-copy send completes"
    );
    assert_eq!(
        zc.copied, zc.completions,
        "{case}: loopback copies every one"
    );
    assert_eq!(side.zc_copied_fraction, Some(1.0), "{case}");
}
