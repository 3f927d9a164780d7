//! The sweep between hosts, with namespaces on a bridge standing in for hosts and the
//! controller in the root namespace: fan-in from two client hosts through the `netns`
//! launcher, the `ssh` launcher against a real sshd with `--deploy`, and an agent killed
//! in the middle of a point. Each run must leave no agent, no deployed copy and no
//! namespace behind.
//!
//! These tests need root (CI runs as root) and fail without it, saying so.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::Result;
use cli::sweep::Meta;
use common::{folder, scratch, Hosts, Sshd};
use engine::Record;

/// The sweep binary on a small matrix, writing under `out`.
fn sweep(out: &Path, args: &[String]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sweep"));
    c.arg("--out")
        .arg(out)
        .args(["--no-report", "--counters", "thread", "--label", "hosts"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

fn records(dir: &Path) -> Vec<Record> {
    std::fs::read_to_string(dir.join("records.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a record"))
        .collect()
}

fn meta(dir: &Path) -> Meta {
    Meta::parse(&std::fs::read_to_string(dir.join("meta.json")).unwrap()).unwrap()
}

fn succeeded(o: &Output) {
    assert!(
        o.status.success(),
        "sweep failed ({}): {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A one-mode syscall-or-both matrix at 1K, `-d SECONDS`, with host 0 serving and host
/// 1 running the clients, over the bridge.
fn two_hosts(hosts: &Hosts, engines: &str, seconds: &str, repeats: &str) -> Vec<String> {
    let mut args = strings(&[
        "--engines",
        engines,
        "--modes",
        "two-copy",
        "--sizes",
        "1K",
        "--threads",
        "1",
        "-d",
        seconds,
        "--repeats",
        repeats,
    ]);
    args.extend([
        "--server".into(),
        format!("netns:{}", hosts.ns(0)),
        "--client".into(),
        format!("netns:{}", hosts.ns(1)),
        "--data-addr".into(),
        hosts.addr(0).to_string(),
    ]);
    args
}

#[test]
fn fan_in_from_two_client_hosts_sums_their_records() -> Result<()> {
    let hosts = Hosts::bridged(3)?;
    let out = scratch("fan-in");
    let mut args = strings(&[
        "--engines",
        "syscall,uring",
        "--modes",
        "two-copy",
        "--sizes",
        "1K",
        "--threads",
        "1,2",
        "-d",
        "0.5",
        "--repeats",
        "1",
    ]);
    args.extend([
        "--server".into(),
        format!("netns:{}", hosts.ns(0)),
        "--clients".into(),
        format!("netns:{},netns:{}", hosts.ns(1), hosts.ns(2)),
        "--data-addr".into(),
        hosts.addr(0).to_string(),
    ]);
    let o = sweep(&out, &args).output()?;
    succeeded(&o);
    let dir = folder(&out);
    let rs = records(&dir);
    assert_eq!(rs.len(), 4, "2 engines × 2 thread counts");
    for r in &rs {
        let parts = r.parts.as_ref().expect("a fan-in record lists its parts");
        assert_eq!(
            parts.iter().map(|p| p.host.as_str()).collect::<Vec<_>>(),
            [
                format!("netns:{}", hosts.ns(1)),
                format!("netns:{}", hosts.ns(2))
            ]
        );
        let sum = |f: fn(&engine::Summary) -> u64| parts.iter().map(|p| f(&p.summary)).sum::<u64>();
        assert!(
            parts.iter().all(|p| p.summary.bytes_sent > 0),
            "both hosts sent"
        );
        assert_eq!(r.summary.bytes_sent, sum(|s| s.bytes_sent));
        assert_eq!(r.summary.bytes_received, sum(|s| s.bytes_received));
        assert_eq!(r.summary.messages, sum(|s| s.messages));
        assert_eq!(
            r.summary.threads,
            parts[0].summary.threads + parts[1].summary.threads
        );
        assert!(
            parts.iter().all(|p| p.summary.threads == r.config.threads),
            "the point's threads are each host's"
        );
        let latency = r.latency.as_ref().expect("echo has latency");
        assert_eq!(
            latency.count,
            parts.iter().map(|p| p.latency.unwrap().count).sum::<u64>(),
            "percentiles come from the merged histogram of every round trip"
        );
        assert_eq!(r.summary.verify_errors, 0);
        // Each client host described itself: its own veth, its own address.
        for p in parts {
            let host = p.client_host.as_ref().expect("each host describes itself");
            let nic = host.interface.as_ref().expect("the data's interface");
            assert_eq!(nic.kind, engine::host::LinkKind::Veth);
        }
        let server = r.server.as_ref().expect("the server's figures");
        assert!(
            server.own_cpu.is_some(),
            "{}: the server's own CPU time, its threads read once however many hosts they served",
            r.config.backend
        );
        assert_eq!(
            r.server_reports.len(),
            2 * r.config.threads,
            "every connection's report"
        );
        assert_eq!(
            server
                .host
                .as_ref()
                .unwrap()
                .interface
                .as_ref()
                .unwrap()
                .name,
            "eth0"
        );
    }
    let m = meta(&dir);
    assert_eq!(m.clients.as_ref().map(Vec::len), Some(2));
    assert_eq!(m.client_hosts.as_ref().map(Vec::len), Some(2));
    assert_eq!(m.network.as_deref(), Some("netns"));
    assert_eq!(m.failed.as_ref().map(Vec::len), Some(0));
    common::assert_no_orphan_agents();
    std::fs::remove_dir_all(&out)?;
    Ok(())
}

/// The deployed copies (`/tmp/copyperf-agent.*`) present now.
fn deployed() -> Vec<PathBuf> {
    std::fs::read_dir("/tmp")
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("copyperf-agent."))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_ssh_launcher_deploys_an_agent_and_leaves_nothing() -> Result<()> {
    let hosts = Hosts::bridged(2)?;
    let sshd = Sshd::start(&hosts, 0)?;
    let before = deployed();
    let out = scratch("ssh");
    let mut args = strings(&[
        "--engines",
        "syscall",
        "--modes",
        "one-copy",
        "--sizes",
        "4K",
        "--threads",
        "1",
        "-d",
        "0.5",
        "--repeats",
        "2",
        "--deploy",
    ]);
    args.extend([
        "--server".into(),
        format!("ssh://{}:{}", sshd.destination(), sshd.port()),
        "--client".into(),
        format!("netns:{}", hosts.ns(1)),
    ]);
    for a in sshd.ssh_args() {
        args.push(format!("--ssh-arg={a}"));
    }
    let o = sweep(&out, &args).output()?;
    succeeded(&o);
    let dir = folder(&out);
    let rs = records(&dir);
    assert_eq!(rs.len(), 2);
    for r in &rs {
        assert!(r.summary.bytes_sent > 0);
        assert_eq!(
            r.server_addr,
            format!("{}:{}", hosts.addr(0), r.config.port)
        );
        let server = r.server.as_ref().unwrap().host.as_ref().unwrap();
        assert_eq!(server.interface.as_ref().unwrap().name, "eth0");
    }
    let m = meta(&dir);
    assert_eq!(m.network.as_deref(), Some("ssh+netns"));
    assert_eq!(
        m.data_addr.as_deref(),
        Some(hosts.addr(0).to_string().as_str()),
        "the data address defaults to the ssh host's"
    );
    // Nothing left on the "remote" host: no session process, no deployed copy.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let procs = sshd.processes();
        let copies: Vec<_> = deployed()
            .into_iter()
            .filter(|p| !before.contains(p))
            .collect();
        if procs.is_empty() && copies.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left on the ssh host: processes {procs:?}, copies {copies:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    common::assert_no_orphan_agents();
    std::fs::remove_dir_all(&out)?;
    Ok(())
}

#[test]
fn an_agent_killed_mid_point_fails_that_point_and_the_sweep_goes_on() -> Result<()> {
    let hosts = Hosts::bridged(2)?;
    let out = scratch("kill");
    let args = two_hosts(&hosts, "syscall", "2", "3");
    let child: Child = sweep(&out, &args).spawn()?;
    // Once the first round is in, the second is running: kill the client host's agent.
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::fs::read_dir(&out)?
        .next()
        .map_or(0, |d| records(&d.unwrap().path()).len())
        < 1
    {
        assert!(Instant::now() < deadline, "no point finished in time");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let pids = common::run(Command::new("ip").args(["netns", "pids", hosts.ns(1)]))?;
    assert!(!pids.trim().is_empty(), "the client host's agent runs");
    for pid in pids.split_whitespace() {
        common::run(Command::new("kill").args(["-9", pid]))?;
    }
    let o = child.wait_with_output()?;
    assert_eq!(
        o.status.code(),
        Some(1),
        "a failed point makes exit code 1: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let dir = folder(&out);
    let m = meta(&dir);
    let failed = m.failed.unwrap_or_default();
    assert_eq!(failed.len(), 1, "{failed:?}");
    let error = &failed[0].error;
    assert!(
        error.contains(&format!("netns:{}", hosts.ns(1))) && error.contains("ended"),
        "the reason names the host and what happened: {error}"
    );
    assert_eq!(records(&dir).len(), 2, "the other rounds were measured");
    common::assert_no_orphan_agents();
    std::fs::remove_dir_all(&out)?;
    Ok(())
}

#[test]
fn a_partition_mid_point_fails_the_points_it_touches_and_the_sweep_ends() -> Result<()> {
    let hosts = Hosts::bridged(2)?;
    let out = scratch("partition");
    let args = two_hosts(&hosts, "syscall,uring", "4", "1");
    let child: Child = sweep(&out, &args).spawn()?;
    // Once the first point's connection is up, cut the client host off.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let ss = common::run(Command::new("ss").args([
            "-N",
            hosts.ns(1),
            "-tn",
            "state",
            "established",
        ]))?;
        if ss.contains(&hosts.addr(0).to_string()) {
            break;
        }
        assert!(Instant::now() < deadline, "no connection in time");
        std::thread::sleep(Duration::from_millis(50));
    }
    common::run(Command::new("ip").args(["-n", hosts.ns(1), "link", "set", "eth0", "down"]))?;
    let o = child.wait_with_output()?;
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let dir = folder(&out);
    let m = meta(&dir);
    assert!(m.finished_at.is_some(), "the sweep went to its end");
    let failed = m.failed.unwrap_or_default();
    assert_eq!(
        failed.len(),
        2,
        "the cut point and the next one: {failed:?}"
    );
    for f in &failed {
        assert!(
            f.error.starts_with(&format!("netns:{}: ", hosts.ns(1))),
            "the reason names the host: {}",
            f.error
        );
    }
    common::assert_no_orphan_agents();
    std::fs::remove_dir_all(&out)?;
    Ok(())
}
