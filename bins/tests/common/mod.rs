//! Test support for multi-host tests on one machine: network namespaces stand in for
//! hosts, joined by a bridge in the root namespace (where the controller runs), and
//! [`Sshd`] puts a real OpenSSH server inside one of them. Everything made here is
//! removed on drop, also when the test panics.
//!
//! Use from an integration test with `mod common;`. These helpers need root and
//! iproute2; they fail (never skip) without them, saying what is missing.

// Each test crate that says `mod common;` uses only part of this module, and the rest
// would warn as dead code (or an unused re-export) in that crate.
#![allow(dead_code, unused_imports)]

mod sshd;

pub use sshd::Sshd;

use std::path::{Path, PathBuf};
use std::time::Instant;

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The second octet of every test network: `scripts/sweep.sh` uses 10.213.
const OCTET: u8 = 214;

/// Counts the host sets this process made, so concurrent tests get distinct names.
static SETS: AtomicUsize = AtomicUsize::new(0);

/// `n` network namespaces, each a host with one address, all on one bridge in the root
/// namespace that also has an address, so the root namespace reaches every host by IP.
///
/// Host `i` is namespace [`ns(i)`](Hosts::ns) with address `10.214.N.(i+2)/24` on its
/// `eth0`; the bridge has `10.214.N.1/24`. N is the first subnet from a pid-derived start
/// that no address or route of the root namespace uses yet.
pub struct Hosts {
    namespaces: Vec<String>,
    addrs: Vec<Ipv4Addr>,
    /// The root-namespace ends of the veth pairs (the other end is `eth0` in the host).
    veths: Vec<String>,
    bridge: Option<String>,
    bridge_addr: Ipv4Addr,
}

impl Hosts {
    /// Makes `n` hosts on a bridge. On failure, removes whatever it made before failing.
    pub fn bridged(n: usize) -> Result<Hosts> {
        require_root()?;
        if !(1..=250).contains(&n) {
            bail!("Hosts::bridged({n}): between 1 and 250 hosts fit a /24");
        }
        let pid = std::process::id();
        let set = SETS.fetch_add(1, Ordering::Relaxed);
        // Interface names hold 15 bytes: fixed-width hex keeps pid and set apart in 14.
        let tag = format!("{pid:06x}{:03x}", set % 0x1000);
        // Serializes choosing a subnet and making it (also with other test processes).
        let _lock = lock()?;
        let net = free_subnet(pid as usize + set)?;
        let mut hosts = Hosts {
            namespaces: Vec::new(),
            addrs: Vec::new(),
            veths: Vec::new(),
            bridge: None,
            bridge_addr: Ipv4Addr::new(10, OCTET, net, 1),
        };
        // From here on, an early return drops `hosts`, which removes what it lists.
        let bridge = format!("cpb{tag}");
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        hosts.bridge = Some(bridge.clone());
        ip(&[
            "addr",
            "add",
            &format!("{}/24", hosts.bridge_addr),
            "dev",
            &bridge,
        ])?;
        ip(&["link", "set", &bridge, "up"])?;
        for i in 0..n {
            let ns = format!("cph{pid}-{set}-{i}");
            ip(&["netns", "add", &ns])?;
            hosts.namespaces.push(ns.clone());
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            let veth = format!("cpv{tag}{i:02x}");
            ip(&[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ])?;
            hosts.veths.push(veth.clone());
            ip(&["link", "set", &veth, "master", &bridge, "up"])?;
            let addr = Ipv4Addr::new(10, OCTET, net, i as u8 + 2);
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            hosts.addrs.push(addr);
        }
        Ok(hosts)
    }

    pub fn len(&self) -> usize {
        self.namespaces.len()
    }

    /// The namespace of host `i`, for `ip netns exec`.
    pub fn ns(&self, i: usize) -> &str {
        &self.namespaces[i]
    }

    pub fn addr(&self, i: usize) -> IpAddr {
        IpAddr::V4(self.addrs[i])
    }

    /// The bridge's address: where the root namespace's connections come from.
    pub fn bridge_addr(&self) -> IpAddr {
        IpAddr::V4(self.bridge_addr)
    }

    pub fn bridge(&self) -> &str {
        self.bridge.as_deref().unwrap_or_default()
    }

    /// `ip netns exec NS program`: a command that runs `program` on host `i`.
    pub fn exec(&self, i: usize, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", self.ns(i), program]);
        c
    }

    /// A listener on host `i`'s address and an ephemeral port, made inside its namespace
    /// by a thread of its own (a socket stays in the namespace it was made in; this
    /// process's main thread never leaves the root namespace).
    pub fn listen(&self, i: usize) -> Result<TcpListener> {
        let path = format!("/run/netns/{}", self.ns(i));
        let addr = self.addrs[i];
        std::thread::spawn(move || -> Result<TcpListener> {
            let ns = File::open(&path).with_context(|| format!("open {path}"))?;
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .with_context(|| format!("setns {path}"))?;
            TcpListener::bind((addr, 0)).with_context(|| format!("bind {addr}:0 in {path}"))
        })
        .join()
        .map_err(|_| anyhow!("the thread entering {} panicked", self.ns(i)))?
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            kill_all_in(ns);
        }
        // Deleting either end of a veth deletes both; doing it here rather than leaving it
        // to the namespace's (asynchronous) teardown frees the names at once.
        for veth in &self.veths {
            quiet_ip(&["link", "del", veth]);
        }
        for ns in &self.namespaces {
            quiet_ip(&["netns", "del", ns]);
        }
        if let Some(bridge) = &self.bridge {
            quiet_ip(&["link", "del", bridge]);
        }
    }
}

/// Kills every process in namespace `ns` until none is left (a dying one may still fork).
fn kill_all_in(ns: &str) {
    for _ in 0..50 {
        let Ok(o) = Command::new("ip").args(["netns", "pids", ns]).output() else {
            return;
        };
        let pids: Vec<i32> = String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .filter(|&p| p as u32 != std::process::id())
            .collect();
        if pids.is_empty() {
            return;
        }
        for p in pids {
            let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("warning: processes still running in namespace {ns}");
}

pub fn require_root() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "this test makes network namespaces, a bridge and an sshd: it needs root \
             (CI runs as root; run `sudo -E cargo test` or as root)"
        );
    }
    if Command::new("ip").arg("-V").output().is_err() {
        bail!("this test needs `ip` from iproute2: apt-get install iproute2");
    }
    Ok(())
}

/// Runs `ip ARGS`, failing with its stderr.
fn ip(args: &[&str]) -> Result<String> {
    run(Command::new("ip").args(args))
}

/// Runs `ip ARGS` where failure matters to nobody (cleanup of what may be gone already).
fn quiet_ip(args: &[&str]) {
    let _ = Command::new("ip").args(args).output();
}

/// Runs a command to completion; its stdout, or an error naming it with its stderr.
pub fn run(c: &mut Command) -> Result<String> {
    let o = c.output().with_context(|| format!("could not run {c:?}"))?;
    if !o.status.success() {
        bail!(
            "{c:?} failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// An exclusive lock shared by every test process on the machine, held until dropped.
fn lock() -> Result<File> {
    let path = "/run/lock/copyperf-hosts.lock";
    let f = File::create(path).with_context(|| format!("create {path}"))?;
    // SAFETY: flock on a descriptor we own; the lock goes with the file.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(std::io::Error::last_os_error()).context(format!("flock {path}"));
    }
    Ok(f)
}

/// The third octet of a 10.214.N.0/24 no address or route of the root namespace uses,
/// trying from `seed` on (another test process's bridge holds its subnet while it runs).
fn free_subnet(seed: usize) -> Result<u8> {
    let used = ip(&["-4", "-o", "addr", "show"])? + &ip(&["-4", "route", "show", "table", "all"])?;
    (0..250)
        .map(|k| ((seed + k) % 250 + 2) as u8)
        .find(|n| !used.contains(&format!("10.{OCTET}.{n}.")))
        .ok_or_else(|| anyhow!("every 10.{OCTET}.N.0/24 is in use:\n{used}"))
}

/// The directory holding the binaries under test.
pub fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_sweep"))
        .parent()
        .expect("binaries live in a directory")
        .to_path_buf()
}

/// A fresh, empty directory of this process's own under the temporary directory.
pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("copyperf-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("a scratch directory");
    d
}

/// The single results folder a sweep made under `out`.
pub fn folder(out: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(out)
        .expect("the output directory")
        .map(|e| e.expect("a directory entry").path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0].clone()
}

/// No agent outlives its controller: an orphan ends within moments of its stdin
/// closing, so one still there after a generous wait was left behind.
pub fn assert_no_orphan_agents() {
    let agent = bin_dir().join("agent");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = cli::agent::control::orphaned_agents(&agent);
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "agents left running: {left:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
