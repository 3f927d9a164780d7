//! scripts/sweep.sh end to end: a quick sweep inside network namespaces writes every file
//! of its folder, an interrupted one keeps its finished points, and neither leaves a
//! namespace or a process behind; the scripts' help builds and installs nothing.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cli::sweep::{Meta, PERFSTATS_COLUMNS, RESULTS_COLUMNS};
use common::{bin_dir, folder, scratch};

mod common;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/sweep.sh")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(out: &Path, port: u16, extra: &[&str]) -> Child {
    let mut command = Command::new("bash");
    // A shell that starts with SIGINT ignored cannot trap it, and a test run in the
    // background of a non-interactive shell (`cargo test &`, a CI step) hands its children
    // SIGINT ignored: the script would never see the Ctrl-C the interrupt test sends. A
    // user's Ctrl-C reaches a shell that starts with the default, as this one now does.
    // SAFETY: between fork and exec this only calls signal(2), which is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGTERM, libc::SIG_DFL);
            Ok(())
        });
    }
    command
        .arg(script())
        .arg("--bin-dir")
        .arg(bin_dir())
        .arg("--out")
        .arg(out)
        .args(["--port", &port.to_string(), "--label", "test"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bash runs the script")
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn rows(p: &Path, columns: &[&str]) -> usize {
    let text = read(p);
    let mut rd = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(
        rd.headers().unwrap().iter().collect::<Vec<_>>(),
        columns,
        "{}",
        p.display()
    );
    let mut n = 0;
    for r in rd.records() {
        r.expect("a well-formed row");
        n += 1;
    }
    n
}

/// Namespaces this script run (pid) made are gone, and no agent outlives the sweep that
/// started it.
fn assert_nothing_left(script_pid: u32) {
    let list = Command::new("ip").args(["netns", "list"]).output();
    if let Ok(list) = list {
        let list = String::from_utf8_lossy(&list.stdout);
        for ns in [
            format!("copyperf-s{script_pid}"),
            format!("copyperf-c{script_pid}"),
        ] {
            assert!(!list.contains(&ns), "namespace {ns} left behind: {list}");
        }
    }
    common::assert_no_orphan_agents();
}

fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn quick_sweep_in_namespaces_writes_every_file() {
    let out = scratch("sweep-quick");
    let port = free_port();
    let child = start(
        &out,
        port,
        &[
            "--duration",
            "0.3",
            "--engines",
            "syscall,uring",
            "--modes",
            "two-copy",
            "--sizes",
            "1K",
            "--threads",
            "1,2",
            "--placement",
            "split,paired",
            "--repeats",
            "2",
        ],
    );
    let pid = child.id();
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let dir = folder(&out);
    assert!(dir
        .file_name()
        .unwrap()
        .to_string_lossy()
        .ends_with("_test"));
    // 2 engines × 2 thread counts × 2 placements, 2 rounds each.
    assert_eq!(rows(&dir.join("results.csv"), &RESULTS_COLUMNS), 8);
    assert_eq!(
        rows(&dir.join("perfstats.csv"), &PERFSTATS_COLUMNS),
        8 * 3,
        "client, server and the machine per point"
    );
    for f in ["1024B_1T.csv", "1024B_2T.csv"] {
        assert_eq!(
            rows(&dir.join(f), &RESULTS_COLUMNS),
            4,
            "{f}: both engines, both placements"
        );
    }
    let records: Vec<engine::Record> = read(&dir.join("records.jsonl"))
        .lines()
        .map(|l| serde_json::from_str(l).expect("a record per line"))
        .collect();
    assert_eq!(records.len(), 16);
    for policy in ["split", "paired"] {
        assert_eq!(
            records
                .iter()
                .filter(|r| r.config.cpus.to_string() == policy)
                .count(),
            8,
            "{policy}"
        );
    }
    assert!(records
        .iter()
        .all(|r| r.summary.verify_errors == 0 && r.summary.messages > 0));
    // Each side's own CPU time from its own process, the machine's figure once.
    assert!(records.iter().all(|r| r.client.own_cpu.is_some()
        && r.server.as_ref().is_some_and(|s| s.own_cpu.is_some())
        && r.system.is_some()));
    let meta: Meta = serde_json::from_str(&read(&dir.join("meta.json"))).unwrap();
    assert_eq!((meta.points_done, meta.points_total), (Some(16), Some(16)));
    assert!(meta.order_seed.is_some());
    assert!(!meta.interrupted() && meta.failed == Some(vec![]) && meta.finished_at.is_some());
    let netns_possible = root() && Command::new("ip").arg("-V").output().is_ok();
    if netns_possible {
        assert_eq!(
            meta.network.as_deref(),
            Some("netns"),
            "{:?}",
            meta.network_detail
        );
        assert!(records.iter().all(|r| r.server_addr.starts_with("10.213.")));
        // Each side described its own end of the veth pair, from its own namespace.
        for r in &records {
            let client = r.client.host.as_ref().and_then(|h| h.interface.clone());
            let server = r
                .server
                .as_ref()
                .and_then(|s| s.host.as_ref())
                .and_then(|h| h.interface.clone());
            let (client, server) = (
                client.expect("client interface"),
                server.expect("server interface"),
            );
            assert_eq!(client.kind, engine::host::LinkKind::Veth, "{client:?}");
            assert_eq!(server.kind, engine::host::LinkKind::Veth, "{server:?}");
            assert!(client.name.starts_with("cpc") && server.name.starts_with("cps"));
        }
        assert!(meta.server_host.is_some() && meta.client_host.is_some());
        assert!(
            read(&dir.join("report.md")).contains("- **Path of the data:** veth"),
            "report.md names the path"
        );
    } else {
        eprintln!(
            "NOTE: not root or no iproute2: the sweep ran on loopback ({:?})",
            meta.network_detail
        );
        assert_eq!(meta.network.as_deref(), Some("loopback"));
    }
    assert!(meta.uring_setup_flags.is_some());
    let report = read(&dir.join("report.md"));
    for q in [
        "### Q1.",
        "### Q2.",
        "### Q3.",
        "### Q4.",
        "### Q5.",
        "## Placement",
        "**split against paired**",
        "## Settings copyperf chose",
        "## CPU per side",
    ] {
        assert!(report.contains(q), "report.md lacks {q}");
    }
    let plots = std::fs::read_dir(dir.join("plots")).unwrap().count();
    assert!(plots >= 6, "{plots} plots");
    assert_nothing_left(pid);
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn an_interrupted_sweep_keeps_its_finished_points_and_cleans_up() {
    let out = scratch("sweep-interrupt");
    let port = free_port();
    let child = start(
        &out,
        port,
        &[
            "--duration",
            "1",
            "--engines",
            "syscall",
            "--modes",
            "two-copy,one-copy",
            "--sizes",
            "1K",
            "--threads",
            "1,2",
        ],
    );
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(60);
    let records = loop {
        let done = std::fs::read_dir(&out)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| std::fs::read_to_string(e.unwrap().path().join("records.jsonl")).ok())
            .map_or(0, |s| s.lines().count());
        if done >= 1 {
            break done;
        }
        assert!(Instant::now() < deadline, "no point finished in time");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(records < 4);
    // SAFETY: signals our own child (the script), as Ctrl-C would.
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    let o = child.wait_with_output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let dir = folder(&out);
    let meta: Meta = serde_json::from_str(&read(&dir.join("meta.json"))).unwrap();
    assert!(meta.interrupted());
    let points_done = meta.points_done.expect("points done recorded");
    assert!((1..4).contains(&points_done), "{points_done}");
    assert_eq!(
        read(&dir.join("records.jsonl")).lines().count(),
        points_done
    );
    assert_eq!(
        rows(&dir.join("results.csv"), &RESULTS_COLUMNS),
        points_done
    );
    assert_nothing_left(pid);
    std::fs::remove_dir_all(&out).unwrap();
}

/// Issue 16: `--rates` makes each rate a dimension of an echo matrix; every point runs
/// open loop at its rate (depth 64 by default), the rate columns are filled, meta.json
/// records the list, and the report draws latency against the load achieved.
#[test]
fn a_rate_sweep_runs_each_point_open_loop_and_reports_latency_under_load() {
    let out = scratch("sweep-rates");
    let port = free_port();
    let child = start(
        &out,
        port,
        &[
            "--duration",
            "0.3",
            "--engines",
            "syscall,uring",
            "--modes",
            "two-copy",
            "--sizes",
            "1K",
            "--threads",
            "1",
            "--rates",
            "2k,8k",
            "--repeats",
            "1",
        ],
    );
    let pid = child.id();
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("open loop at 2k, 8k msg/s in all (depth 64"),
        "{err}"
    );
    assert!(err.contains("8k/s"), "the point lines show the rate: {err}");
    let dir = folder(&out);
    // 2 engines × 2 rates, one round.
    assert_eq!(rows(&dir.join("results.csv"), &RESULTS_COLUMNS), 4);
    let text = read(&dir.join("results.csv"));
    let mut rd = csv::Reader::from_reader(text.as_bytes());
    let cols = rd.headers().unwrap().clone();
    let at = |name: &str| cols.iter().position(|c| c == name).unwrap();
    let mut rates: Vec<String> = Vec::new();
    for row in rd.records().map(Result::unwrap) {
        rates.push(row[at("Rate_Requested")].to_string());
        assert_eq!(&row[at("Depth")], "64");
        let achieved: f64 = row[at("Rate_Achieved")].parse().expect("an achieved rate");
        assert!(achieved > 0.0, "{achieved}");
        assert!(!row[at("Held_Back")].is_empty());
    }
    rates.sort();
    assert_eq!(rates, ["2000", "2000", "8000", "8000"]);
    let records: Vec<engine::Record> = read(&dir.join("records.jsonl"))
        .lines()
        .map(|l| serde_json::from_str(l).expect("a record per line"))
        .collect();
    assert_eq!(records.len(), 4);
    for r in &records {
        let rate = r.rate.as_ref().expect("an open-loop record");
        assert_eq!(Some(rate.requested_per_s), r.config.rate);
        assert_eq!(r.config.depth, engine::config::RATE_DEPTH);
        assert!(r.summary.verify_errors == 0 && r.summary.messages > 0);
    }
    let meta: Meta = serde_json::from_str(&read(&dir.join("meta.json"))).unwrap();
    let matrix = meta.matrix.expect("the matrix");
    assert_eq!((matrix.rates, matrix.depth), (vec![2000, 8000], 64));
    let report = read(&dir.join("report.md"));
    assert!(report.contains("## Latency under load"), "{report}");
    assert!(
        report.contains("](plots/latency_under_load.svg)"),
        "{report}"
    );
    let svg = read(&dir.join("plots").join("latency_under_load.svg"));
    assert!(svg.starts_with("<svg"));
    assert_nothing_left(pid);
    std::fs::remove_dir_all(&out).unwrap();
}

/// Issue 16: a value out of range says what range is taken, and is a bad flag (exit 2,
/// as `sweep --help` says), not a failure.
#[test]
fn out_of_range_values_exit_2_and_state_the_range() {
    let out = scratch("sweep-ranges");
    for (args, error) in [
        (
            &["--duration", "0"][..],
            "error: --duration 0 is out of range: it must be more than 0 and at most 86400 seconds",
        ),
        (
            &["--threads", "1,0"],
            "error: thread count 0 is out of range: it must be from 1 to 1024",
        ),
        (
            &["--repeats", "0"],
            "error: --repeats is 0: it must be at least 1",
        ),
        (
            &["--workload", "stream", "--rates", "5k"],
            "error: --rates applies to the echo workload (a schedule of requests, each timed to its echo); a stream sweep sends as fast as the path takes it: leave --rates out",
        ),
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_sweep"))
            .arg("--out")
            .arg(&out)
            .args(args)
            .output()
            .expect("sweep runs");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim_end(), error, "{args:?}");
    }
    assert!(
        std::fs::read_dir(&out).unwrap().next().is_none(),
        "a refused sweep writes nothing"
    );
    let _ = std::fs::remove_dir_all(&out);
}

/// The `--flags` a help text names, in order of appearance, without repeats.
fn long_flags(help: &str) -> Vec<String> {
    let mut flags = Vec::new();
    for word in help.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
        let flag = word.trim_end_matches('-');
        if flag.len() > 2 && flag.starts_with("--") && !flags.iter().any(|f| f == flag) {
            flags.push(flag.to_string());
        }
    }
    flags
}

/// Issue 16: `scripts/sweep.sh --help` built the release binaries first (minutes on a
/// fresh clone) and then showed the inner binary's help, flags the script sets itself
/// included. Its own usage needs no cargo at all, and names only flags the sweep takes
/// (or the script's own), and every one the sweep takes that a user may give.
#[test]
fn the_scripts_help_builds_nothing_and_names_the_flags_a_user_gives() {
    let t = Instant::now();
    let o = Command::new("bash")
        .arg(script())
        .arg("--help")
        // No cargo on the PATH: a build would fail the run.
        .env("PATH", "/usr/bin:/bin")
        .output()
        .expect("bash runs the script");
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
    assert!(help.starts_with("Usage: scripts/sweep.sh"), "{help}");
    assert!(
        help.contains("README.md"),
        "says where the rest is documented"
    );
    let inner = Command::new(env!("CARGO_BIN_EXE_sweep"))
        .arg("--help")
        .output()
        .expect("sweep --help");
    // The flags it defines: the lines that start with one (prose mentions others).
    let inner: String = String::from_utf8_lossy(&inner.stdout)
        .lines()
        .filter(|l| l.trim_start().starts_with('-'))
        .map(|l| l.trim_start().split("  ").next().unwrap_or("").to_string() + "\n")
        .collect();
    let inner = long_flags(&inner);
    let scripts_own = ["--bin-dir", "--help"];
    let shown = long_flags(&help);
    for flag in &shown {
        assert!(
            inner.contains(flag) || scripts_own.contains(&flag.as_str()),
            "the script's help names {flag}, which the sweep does not take"
        );
    }
    for flag in &inner {
        assert!(
            shown.contains(flag) || flag == "--version",
            "the script's help leaves out the sweep's {flag}"
        );
    }
    assert!(!shown.iter().any(|f| f == "--addr" || f == "--command-line"));
}

/// Issue 16: `scripts/compare.sh --help` installed iperf3 and sockperf (apt-get) and built
/// the release binaries before printing anything. Stand-ins for apt-get and cargo that
/// leave a mark prove it now calls neither.
#[test]
fn the_compare_scripts_help_installs_and_builds_nothing() {
    let fake = scratch("compare-help");
    let mark = fake.join("called");
    for tool in ["apt-get", "cargo", "iperf3", "sockperf", "qperf"] {
        let p = fake.join(tool);
        std::fs::write(
            &p,
            format!("#!/bin/sh\necho {tool} >> {}\nexit 1\n", mark.display()),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let o = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/compare.sh"))
        .arg("--help")
        .env("PATH", format!("{}:/usr/bin:/bin", fake.display()))
        .current_dir(&fake)
        .output()
        .expect("bash runs the script");
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(help.contains("iperf3, sockperf and qperf"), "{help}");
    assert!(help.contains("--help"), "{help}");
    assert!(!mark.exists(), "called: {}", read(&mark));
    let _ = std::fs::remove_dir_all(&fake);
}

/// Issue 16: a sweep's folder landed as untracked files in the checkout's results/. New
/// folders there are ignored; every committed reference run stays tracked.
#[test]
fn new_results_folders_are_ignored_and_committed_ones_are_not() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    if !repo.join(".git").exists() {
        eprintln!("skipped: {} is not a git checkout", repo.display());
        return;
    }
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(args)
            .output()
            .expect("git runs")
    };
    // --no-index: the rule itself, whether or not a path is tracked.
    let ignored = |path: &str| match git(&["check-ignore", "-q", "--no-index", path])
        .status
        .code()
    {
        Some(0) => true,
        Some(1) => false,
        other => panic!("git check-ignore {path}: {other:?}"),
    };
    for fresh in [
        "results/2099-01-01-0000_host/results.csv",
        "results/2099-01-01-0000_host_quick/report.md",
        "results/peers_2099-01-01-0000_host/peers.csv",
    ] {
        assert!(ignored(fresh), "{fresh} would show in git status");
    }
    let tracked = git(&["ls-files", "results"]);
    let tracked = String::from_utf8_lossy(&tracked.stdout);
    let folders: Vec<&str> = cli::unique(tracked.lines().filter_map(|f| f.split('/').nth(1)));
    assert!(!folders.is_empty(), "the reference runs are committed");
    for folder in folders {
        let file = format!("results/{folder}/meta.json");
        assert!(!ignored(&file), "{file}: a committed run is ignored");
    }
}
