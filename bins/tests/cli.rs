//! The binaries as a user meets them: flags, help, exit codes, log lines, output formats.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const SERVER: &str = env!("CARGO_BIN_EXE_server");
const CLIENT: &str = env!("CARGO_BIN_EXE_client");

fn run(bin: &str, args: &[&str]) -> Output {
    Command::new(bin).args(args).output().expect("binary runs")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A server process on a free port, its stdout lines forwarded to a channel.
struct ServerProc {
    child: Child,
    port: u16,
    lines: mpsc::Receiver<String>,
}

impl ServerProc {
    fn start(extra: &[&str]) -> ServerProc {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(SERVER)
            .args(["--bind", "127.0.0.1", "-p", &port.to_string()])
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .expect("server starts");
        let (tx, lines) = mpsc::channel();
        let out = BufReader::new(child.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut s = ServerProc { child, port, lines };
        s.expect("Listening on");
        s
    }

    /// The next line containing `needle`, skipping others; panics after 10 s.
    fn expect(&mut self, needle: &str) -> String {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(10)) {
                Ok(l) if l.contains(needle) => return l,
                Ok(_) => {}
                Err(e) => panic!("no server line containing {needle:?}: {e}"),
            }
        }
    }

    fn client(&self, args: &[&str]) -> Output {
        let port = self.port.to_string();
        let mut all = vec!["-h", "127.0.0.1", "-p", &port, "-d", "0.3"];
        all.extend_from_slice(args);
        run(CLIENT, &all)
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn help_lists_every_flag_with_its_default() {
    let (out, _) = text(&run(CLIENT, &["--help"]));
    for flag in [
        "-h, --host",
        "-p, --port",
        "-s, --size",
        "-t, --threads",
        "-d, --duration",
        "--backend",
        "--mode",
        "--workload",
        "--depth",
        "--conns",
        "--verify",
        "--format",
        "--connect-timeout",
        "--io-timeout",
        "--help",
        "--version",
    ] {
        assert!(out.contains(flag), "client --help lacks {flag}:\n{out}");
    }
    for default in [
        "[default: 127.0.0.1]",
        "[default: 4K]",
        "[default: 3]",
        "[default: two-copy]",
        "[default: sample]",
    ] {
        assert!(out.contains(default), "client --help lacks {default}");
    }
    assert!(out.contains("Exit codes"), "exit codes documented");
    let (out, _) = text(&run(SERVER, &["--help"]));
    for flag in [
        "-p, --port",
        "-s, --max-size",
        "-t, --max-clients",
        "--bind",
        "--backend",
        "--mode",
        "--workers",
        "--idle-timeout",
    ] {
        assert!(out.contains(flag), "server --help lacks {flag}:\n{out}");
    }
    assert!(out.contains("[default: 0.0.0.0]") && out.contains("[default: 1M]"));
}

#[test]
fn version_prints_the_version() {
    for bin in [CLIENT, SERVER] {
        let o = run(bin, &["--version"]);
        assert!(o.status.success());
        assert!(text(&o).0.contains(env!("CARGO_PKG_VERSION")));
    }
}

#[test]
fn bad_flags_exit_2_with_one_line() {
    let o = run(CLIENT, &["--mode", "three-copy"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("two-copy"), "lists the valid modes");
    let o = run(CLIENT, &["-s", "12"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o)
            .1
            .starts_with("error: message size 12 is out of range"),
        "{}",
        text(&o).1
    );
    let o = run(CLIENT, &["-s", "4X"]);
    assert_eq!(o.status.code(), Some(2));
    let o = run(SERVER, &["--workers", "2"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn connection_refused_exits_1() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let o = run(CLIENT, &["-p", &port.to_string(), "-d", "0.1"]);
    assert_eq!(o.status.code(), Some(1));
    let (_, err) = text(&o);
    assert!(
        err.starts_with("error: could not connect to 127.0.0.1:"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one line: {err}");
}

#[test]
fn address_in_use_exits_1() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let o = run(SERVER, &["--bind", "127.0.0.1", "-p", &port]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).1.contains("could not bind") && text(&o).1.contains("in use"));
}

#[test]
fn server_logs_like_the_seed_and_stops_on_sigterm() {
    let mut server = ServerProc::start(&["-s", "8K", "-t", "4"]);
    let o = server.client(&["-t", "2", "-s", "4K"]);
    assert!(o.status.success(), "{:?}", text(&o));
    let (out, _) = text(&o);
    for line in [
        "Message Size: 4096 bytes",
        "Threads: 2",
        "[Client 0] Thread started",
        "[Client 1] Completed. Duration:",
        "SUMMARY",
        "Throughput:",
        "Avg Latency:",
    ] {
        assert!(out.contains(line), "client output lacks {line:?}:\n{out}");
    }
    server.expect("Client 0 connected");
    let bye = server.expect("disconnected. Sent:");
    assert!(bye.contains("Received:"), "{bye}");

    let o = server.client(&["-s", "16K"]);
    assert_eq!(o.status.code(), Some(3), "refused");
    assert!(text(&o).1.contains("outside what this server takes"));

    // SAFETY: signals our own child.
    unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) };
    server.expect("Stopped.");
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn json_and_csv_carry_the_whole_record() {
    let server = ServerProc::start(&[]);
    let o = server.client(&["--format", "json", "--mode", "zc", "--verify", "full"]);
    assert!(o.status.success(), "{:?}", text(&o));
    let v: serde_json::Value =
        serde_json::from_slice(&o.stdout).expect("stdout is one JSON record");
    assert_eq!(v["schema_version"], engine::SCHEMA_VERSION);
    assert_eq!(v["config"]["mode"], "zc");
    assert_eq!(v["config"]["verify"], "full");
    let zc = &v["client"]["stats"]["zc"];
    assert!(zc["sends"].as_u64().unwrap() > 0);
    assert_eq!(zc["completions"], zc["sends"]);
    assert!(v["server"]["stats"]["bytes_received"].as_u64().unwrap() > 0);

    let o = server.client(&["--format", "csv", "--workload", "stream"]);
    assert!(o.status.success(), "{:?}", text(&o));
    let mut rd = csv::Reader::from_reader(&o.stdout[..]);
    let headers = rd.headers().unwrap().clone();
    let row = rd.records().next().unwrap().unwrap();
    let cell = |name: &str| {
        row.get(headers.iter().position(|h| h == name).unwrap())
            .unwrap()
            .to_owned()
    };
    assert_eq!(cell("config_workload"), "stream");
    assert_eq!(
        cell("latency_p50_us"),
        "",
        "stream has no latency: empty, not 0"
    );
    assert!(cell("summary_throughput_gbps").parse::<f64>().unwrap() > 0.0);
}

/// Registered buffers beyond RLIMIT_MEMLOCK (without CAP_IPC_LOCK) are an error that says
/// how much is needed: run the client with a 64 KiB limit and the capability dropped.
#[test]
fn memlock_shortfall_says_how_much_is_needed() {
    let have = |tool: &str| Command::new(tool).arg("--version").output().is_ok();
    if !(have("prlimit") && have("setpriv")) {
        eprintln!("SKIPPED memlock_shortfall_says_how_much_is_needed: needs prlimit and setpriv (util-linux)");
        return;
    }
    let server = ServerProc::start(&["--backend", "uring"]);
    let port = server.port.to_string();
    let o = Command::new("prlimit")
        .args([
            "--memlock=65536",
            "setpriv",
            "--bounding-set",
            "-ipc_lock",
            "--inh-caps",
            "-ipc_lock",
        ])
        .arg(CLIENT)
        .args([
            "-p",
            &port,
            "--backend",
            "uring",
            "--mode",
            "zc-fixed",
            "-s",
            "64K",
            "-d",
            "0.2",
        ])
        .output()
        .expect("prlimit runs");
    let (_, err) = text(&o);
    if err.contains("setpriv:") || err.contains("prlimit:") {
        eprintln!("SKIPPED memlock_shortfall_says_how_much_is_needed: cannot drop CAP_IPC_LOCK here: {err}");
        return;
    }
    assert_eq!(o.status.code(), Some(5), "{err}");
    assert!(
        err.contains("need 196608 bytes of locked memory") && err.contains("allows 65536"),
        "{err}"
    );
}

/// Without the right to count (paranoid 2, no CAP_PERFMON/CAP_SYS_ADMIN), per-core
/// counting falls back to per thread with a notice, every refused counter is named with
/// the fix, and the run itself succeeds.
#[test]
fn refused_counters_name_the_fix_and_the_run_goes_on() {
    let paranoid =
        std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid").unwrap_or_default();
    let have = Command::new("setpriv").arg("--version").output().is_ok();
    if !have || paranoid.trim().parse::<i32>().unwrap_or(0) < 2 {
        eprintln!("SKIPPED refused_counters_name_the_fix_and_the_run_goes_on: needs setpriv and perf_event_paranoid >= 2");
        return;
    }
    let server = ServerProc::start(&[]);
    let port = server.port.to_string();
    let o = Command::new("setpriv")
        .args([
            "--bounding-set",
            "-perfmon,-sys_admin",
            "--inh-caps",
            "-perfmon,-sys_admin",
        ])
        .arg(CLIENT)
        .args([
            "-p",
            &port,
            "-d",
            "0.3",
            "--counters",
            "core",
            "--format",
            "json",
        ])
        .output()
        .expect("setpriv runs");
    let (out, err) = text(&o);
    if err.contains("setpriv:") {
        eprintln!("SKIPPED refused_counters_name_the_fix_and_the_run_goes_on: {err}");
        return;
    }
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("per-core counting refused") && err.contains("counting per thread instead"),
        "{err}"
    );
    assert!(
        err.contains("perf_event_paranoid") && err.contains("CAP_PERFMON"),
        "{err}"
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["client"]["counter_scope"], "thread");
    assert!(
        v["client"]["counters"]["context_switches"].is_null(),
        "refused, so missing, not 0"
    );
    assert!(v["client"]["counters_missing"]
        .as_str()
        .unwrap()
        .contains("task_clock_ns"));
}
