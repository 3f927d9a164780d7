//! The multi-host harness (tests/common) itself: namespaces on a bridge reach each other
//! and are reached from the root namespace, an sshd in one of them runs commands there,
//! and dropping either leaves nothing behind, also after a panic.
//!
//! These tests need root (CI runs as root) and fail without it, saying so.

mod common;

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use common::{run, Hosts, Sshd};

/// The one connection waiting on `listener`: who made it and what it sent.
fn accept_one(listener: &TcpListener) -> Result<(std::net::IpAddr, String)> {
    let (mut s, peer) = listener.accept()?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    Ok((peer.ip(), text.trim().to_string()))
}

#[test]
fn two_client_hosts_reach_the_server_host_over_the_bridge() -> Result<()> {
    let hosts = Hosts::bridged(3)?;
    let listener = hosts.listen(0)?;
    let port = listener.local_addr()?.port();
    for i in [1, 2] {
        // Returns once connected and written, so the connection waits in the backlog.
        run(hosts.exec(i, "bash").args([
            "-c",
            &format!(
                "exec 3<>/dev/tcp/{}/{port} && echo {} >&3",
                hosts.addr(0),
                hosts.ns(i)
            ),
        ]))
        .with_context(|| {
            let nf = std::fs::read_to_string("/proc/sys/net/bridge/bridge-nf-call-iptables");
            format!(
                "host {i} could not reach host 0 (bridge-nf-call-iptables: {:?}: a firewall's \
                 FORWARD rules then apply to bridged traffic)",
                nf.unwrap_or_default().trim()
            )
        })?;
        let (peer, said) = accept_one(&listener)?;
        assert_eq!(peer, hosts.addr(i), "the connection came from host {i}");
        assert_eq!(said, hosts.ns(i));
    }
    // The controller, in the root namespace, reaches the host through the bridge.
    drop(TcpStream::connect_timeout(
        &(hosts.addr(0), port).into(),
        Duration::from_secs(10),
    )?);
    let (peer, _) = accept_one(&listener)?;
    assert_eq!(peer, hosts.bridge_addr());
    Ok(())
}

#[test]
fn ssh_reaches_a_command_in_the_server_namespace() -> Result<()> {
    let hosts = Hosts::bridged(3)?;
    let sshd = Sshd::start(&hosts, 0)?;
    let o = sshd
        .ssh()
        .arg("ip -o -4 addr show; readlink /proc/self/ns/net")
        .stdin(Stdio::null())
        .output()?;
    let out = String::from_utf8_lossy(&o.stdout);
    ensure!(
        o.status.success(),
        "ssh {} failed ({}): {}\nsshd log:\n{}",
        sshd.destination(),
        o.status,
        String::from_utf8_lossy(&o.stderr),
        sshd.log()
    );
    // The command saw the server host's address and nobody else's...
    assert!(out.contains(&format!("inet {}/24", hosts.addr(0))), "{out}");
    for other in [hosts.addr(1), hosts.addr(2), hosts.bridge_addr()] {
        assert!(!out.contains(&format!("inet {other}/")), "{out}");
    }
    // ...and ran in that very namespace.
    let ino = std::fs::metadata(format!("/run/netns/{}", hosts.ns(0)))?.ino();
    assert!(out.contains(&format!("net:[{ino}]")), "{out}");
    Ok(())
}

/// Whether `pid` runs (a zombie does not).
fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}

/// Waits up to 10 s for `pid` to stop running.
fn gone(pid: i32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while running(pid) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// What a set of hosts and its sshd made, to look for after they are dropped.
#[derive(Default)]
struct Made {
    namespaces: Vec<String>,
    bridge: String,
    config: String,
    dir: std::path::PathBuf,
    pids: Vec<i32>,
}

/// Hosts and an sshd with processes in their namespaces: one a session left in the
/// background, one a session still open, one the controller started with `ip netns exec`.
fn make(made: &Mutex<Made>) -> Result<(Hosts, Sshd)> {
    let hosts = Hosts::bridged(2)?;
    let sshd = Sshd::start(&hosts, 0)?;
    let mut m = made.lock().unwrap();
    m.namespaces = (0..hosts.len()).map(|i| hosts.ns(i).to_string()).collect();
    m.bridge = hosts.bridge().to_string();
    m.config = sshd.config().to_string_lossy().into_owned();
    m.dir = sshd.dir().to_path_buf();
    let out = run(sshd
        .ssh()
        .arg("setsid sleep 600 </dev/null >/dev/null 2>&1 & echo $!")
        .stdin(Stdio::null()))
    .with_context(|| sshd.log())?;
    m.pids
        .push(out.trim().parse().context("the background pid")?);
    let open = sshd
        .ssh()
        .args(["exec", "sleep", "600"])
        .stdin(Stdio::null())
        // "closed by remote host", when the drop ends it.
        .stderr(Stdio::null())
        .spawn()?;
    m.pids.push(open.id() as i32);
    let controller = hosts.exec(1, "sleep").arg("600").spawn()?;
    m.pids.push(controller.id() as i32);
    // Reaped by threads of their own once killed.
    for mut child in [open, controller] {
        std::thread::spawn(move || child.wait());
    }
    // Both remote sleeps (the background one and the open session's) run.
    let deadline = Instant::now() + Duration::from_secs(20);
    let sleeps = || {
        sshd.processes()
            .into_iter()
            .filter(|p| {
                std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| c == b"sleep\x00600\x00")
            })
            .count()
    };
    while sleeps() < 2 {
        ensure!(
            Instant::now() < deadline,
            "the open session did not start:\n{}",
            sshd.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for &p in &m.pids {
        ensure!(running(p), "process {p} is not running");
    }
    Ok((hosts, sshd))
}

fn assert_nothing_left(m: &Made) {
    for &p in &m.pids {
        assert!(gone(p), "process {p} still runs");
    }
    let list = run(Command::new("ip").args(["netns", "list"])).unwrap();
    for ns in &m.namespaces {
        assert!(
            !list
                .lines()
                .any(|l| l.split_whitespace().next() == Some(ns)),
            "namespace {ns} left: {list}"
        );
    }
    assert!(
        run(Command::new("ip").args(["link", "show", &m.bridge])).is_err(),
        "bridge {} left",
        m.bridge
    );
    let pgrep = Command::new("pgrep")
        .args(["-f", &m.config])
        .output()
        .unwrap();
    assert!(
        pgrep.stdout.is_empty(),
        "sshd left: {}",
        String::from_utf8_lossy(&pgrep.stdout)
    );
    assert!(!m.dir.exists(), "{} left", m.dir.display());
}

#[test]
fn dropping_hosts_and_sshd_leaves_no_namespace_bridge_or_process() -> Result<()> {
    let made = Mutex::new(Made::default());
    let (hosts, sshd) = make(&made)?;
    drop(sshd);
    let m = made.lock().unwrap();
    // The sshd's own, sessions and what they left, are gone before the hosts are.
    assert!(gone(m.pids[0]), "a session's background process survived");
    assert!(gone(m.pids[1]), "the open ssh session did not end");
    assert!(
        running(m.pids[2]),
        "dropping sshd killed a process not its own"
    );
    drop(hosts);
    assert_nothing_left(&m);
    Ok(())
}

#[test]
fn a_panicking_test_leaves_nothing_behind() {
    let made = Mutex::new(Made::default());
    let result = std::panic::catch_unwind(|| {
        let _kept = make(&made).unwrap();
        panic!("a test fails while its hosts and sshd are up (this panic is expected)");
    });
    assert!(result.is_err());
    assert_nothing_left(&made.lock().unwrap());
}
