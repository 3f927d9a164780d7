//! A throwaway OpenSSH server inside one host's namespace, reachable from the root
//! namespace with its own client key, so a test can run `ssh … root@ADDR cmd` as a
//! controller would. Nothing of the machine's ssh setup is read or changed: no
//! /etc/ssh/sshd_config, no ~/.ssh, no system host keys; only /run/sshd is created
//! if missing, as every sshd needs it.

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::{run, Hosts};

const SSHD: &str = "/usr/sbin/sshd";

/// Names the processes of one [`Sshd`]: set in the environment of the server (which its
/// per-connection processes inherit) and by `SetEnv` in every session it starts, so
/// drop finds them all, also those a session left running in the background.
const MARKER: &str = "COPYPERF_SSHD";

/// How long sshd gets to accept connections: a loaded machine running a second copy of
/// the test suite can take seconds.
const READY: Duration = Duration::from_secs(20);

static SERVERS: AtomicUsize = AtomicUsize::new(0);

/// An sshd in a host's namespace, with throwaway host and client keys in a temporary
/// directory. Dropping it kills the server and everything its sessions started, and
/// removes the directory.
pub struct Sshd {
    child: Option<Child>,
    dir: PathBuf,
    addr: IpAddr,
    port: u16,
    /// The host key's public half, `ssh-ed25519 AAAA…`, for the client's known_hosts.
    host_key: String,
    /// `MARKER=dir`, as it appears in /proc/PID/environ.
    marker: String,
}

impl Sshd {
    /// Starts sshd on host `i`'s address and a free high port, and waits until it accepts
    /// connections from the root namespace.
    pub fn start(hosts: &Hosts, i: usize) -> Result<Sshd> {
        if !Path::new(SSHD).exists() {
            bail!("{SSHD} is missing: install openssh-server (apt-get install openssh-server)");
        }
        for tool in ["ssh", "ssh-keygen"] {
            // Only whether it runs at all (ssh-keygen has no -V and says so).
            if Command::new(tool).arg("-V").output().is_err() {
                bail!(
                    "`{tool}` is missing: install openssh-client (apt-get install openssh-client)"
                );
            }
        }
        root_not_locked()?;
        let pid = std::process::id();
        let k = SERVERS.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("copyperf-sshd-{pid}-{k}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).with_context(|| format!("create {}", dir.display()))?;
        let mut sshd = Sshd {
            child: None,
            marker: format!("{MARKER}={}", dir.display()),
            dir,
            addr: hosts.addr(i),
            port: 0,
            host_key: String::new(),
        };
        // From here on, an early return drops `sshd`, which removes the directory.
        sshd.host_key = sshd.make_keys()?;
        // The privilege separation directory: sshd refuses to start without it, and
        // nothing creates it on a machine whose sshd service never ran.
        std::fs::create_dir_all("/run/sshd").context("create /run/sshd")?;
        // Ports are per namespace, so only another Sshd on this host can hold ours; still
        // derived from the pid so that two servers rarely try the same one.
        let first = pid as usize * 7919 + k * 131;
        for attempt in 0..10 {
            sshd.port = (20000 + (first + attempt * 977) % 40000) as u16;
            match sshd.launch(hosts.ns(i))? {
                Launch::Ready => return Ok(sshd),
                Launch::PortBusy => continue,
            }
        }
        bail!("sshd found no free port on {}: {}", sshd.addr, sshd.log())
    }

    /// `ssh` options reaching this server with its key, trusting only its host key,
    /// ignoring the user's and the system's ssh configuration; add [`destination`] and a
    /// command.
    ///
    /// [`destination`]: Sshd::destination
    pub fn ssh_args(&self) -> Vec<String> {
        let known = self.dir.join("known_hosts");
        let key = self.dir.join("client_key");
        [
            "-F",
            "/dev/null",
            "-i",
            &key.to_string_lossy(),
            "-p",
            &self.port.to_string(),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            &format!("UserKnownHostsFile={}", known.display()),
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=10",
            "-o",
            "LogLevel=ERROR",
        ]
        .map(String::from)
        .to_vec()
    }

    /// `root@ADDR`.
    pub fn destination(&self) -> String {
        format!("root@{}", self.addr)
    }

    /// `ssh ARGS root@ADDR`: add the remote command.
    pub fn ssh(&self) -> Command {
        let mut c = Command::new("ssh");
        c.args(self.ssh_args()).arg(self.destination());
        c
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The sshd_config this server runs with.
    pub fn config(&self) -> PathBuf {
        self.dir.join("sshd_config")
    }

    /// The directory holding keys, config, log; removed on drop.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// sshd's log so far (`-E`), to show when something fails.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }

    /// Processes this server started that still run: the server, its per-connection
    /// processes and whatever its sessions left, found by the marker in their environment.
    pub fn processes(&self) -> Vec<i32> {
        marked(&self.marker)
    }

    /// Makes the host and client keys and authorizes the client's; returns the host's
    /// public key.
    fn make_keys(&self) -> Result<String> {
        for key in ["host_key", "client_key"] {
            run(Command::new("ssh-keygen")
                .args(["-q", "-N", "", "-t", "ed25519", "-C"])
                .arg(format!("copyperf-test-{key}"))
                .arg("-f")
                .arg(self.dir.join(key)))?;
        }
        let read = |name: &str| -> Result<String> {
            let p = self.dir.join(name);
            std::fs::read_to_string(&p).with_context(|| format!("read {}", p.display()))
        };
        std::fs::write(self.dir.join("authorized_keys"), read("client_key.pub")?)?;
        let host_key = read("host_key.pub")?;
        let fields: Vec<&str> = host_key.split_whitespace().take(2).collect();
        Ok(fields.join(" "))
    }

    fn write_config(&self) -> Result<()> {
        let d = self.dir.display();
        let config = format!(
            "\
Port {port}
ListenAddress {addr}
HostKey {d}/host_key
AuthorizedKeysFile {d}/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
# PAM's session modules (loginuid, systemd, motd) expect a real login; a test needs none.
UsePAM no
# Our keys live in a temporary directory whose owner and modes sshd would reject.
StrictModes no
PidFile {d}/sshd.pid
LogLevel VERBOSE
UseDNS no
PrintMotd no
X11Forwarding no
SetEnv \"{marker}\"
",
            port = self.port,
            addr = self.addr,
            marker = self.marker,
        );
        std::fs::write(self.config(), config)?;
        // The client trusts this server's key, on this address and port, and no other.
        std::fs::write(
            self.dir.join("known_hosts"),
            format!("[{}]:{} {}\n", self.addr, self.port, self.host_key),
        )?;
        Ok(())
    }

    /// Starts sshd on `self.port` in `ns` and waits for it to accept a connection.
    fn launch(&mut self, ns: &str) -> Result<Launch> {
        self.write_config()?;
        let log = self.dir.join("sshd.log");
        let _ = std::fs::remove_file(&log);
        // `ip netns exec` execs sshd in place, so the child is the server itself.
        let child = Command::new("ip")
            .args(["netns", "exec", ns, SSHD, "-D", "-f"])
            .arg(self.config())
            .arg("-E")
            .arg(&log)
            .env(MARKER, &self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("could not start {SSHD} in {ns}"))?;
        let child = self.child.insert(child);
        let to = SocketAddr::new(self.addr, self.port);
        let deadline = Instant::now() + READY;
        loop {
            if let Some(status) = child.try_wait()? {
                let mut stderr = String::new();
                if let Some(mut e) = child.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut stderr);
                }
                self.child = None;
                let log = self.log();
                if log.contains("Address already in use") {
                    return Ok(Launch::PortBusy);
                }
                bail!("sshd in {ns} exited ({status}) before accepting a connection: {stderr}\nlog:\n{log}");
            }
            // Connecting from the root namespace checks the path a controller will use.
            if TcpStream::connect_timeout(&to, Duration::from_millis(500)).is_ok() {
                return Ok(Launch::Ready);
            }
            if Instant::now() > deadline {
                bail!(
                    "sshd in {ns} did not accept on {to} within {READY:?}\nlog:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

enum Launch {
    Ready,
    PortBusy,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        // Kill until none is left: a process may fork between one look and the kill.
        for _ in 0..100 {
            let pids = marked(&self.marker);
            if pids.is_empty() {
                break;
            }
            for p in pids {
                let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let left = marked(&self.marker);
        if !left.is_empty() {
            eprintln!(
                "warning: processes of {} still running: {left:?}",
                self.dir.display()
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Without PAM, sshd refuses every login, keys included, to an account whose password
/// field starts with `!` ("account is locked"); `*` (no password) is fine.
fn root_not_locked() -> Result<()> {
    let shadow = std::fs::read_to_string("/etc/shadow").context("read /etc/shadow")?;
    let field = shadow
        .lines()
        .find_map(|l| l.strip_prefix("root:"))
        .and_then(|rest| rest.split(':').next());
    if field.is_some_and(|f| f.starts_with('!')) {
        bail!(
            "root's password is locked ('!' in /etc/shadow), and sshd without PAM refuses \
             key logins to a locked account; `usermod -p '*' root` unlocks it without \
             allowing password logins"
        );
    }
    Ok(())
}

/// Running processes whose environment holds `entry` (`NAME=value`). A zombie shows an
/// empty environment, so it is not counted: it runs no more.
fn marked(entry: &str) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == entry.as_bytes()))
        })
        .collect()
}
