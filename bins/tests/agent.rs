//! The agent's daemon mode end to end on loopback: it refuses a wrong or missing secret,
//! refuses to point a client at anything no authenticated agent vouches for (so it
//! cannot be made a traffic generator against a third party), refuses to listen off
//! loopback without a secret, and serves and measures when everything is in order.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cli::agent::auth::Secret;
use cli::agent::control::Link;
use engine::{ClientConfig, ServerConfig, Workload};

fn agent() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_agent"))
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("copyperf-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn secret(dir: &Path, name: &str, text: &str) -> (PathBuf, Secret) {
    let f = dir.join(name);
    std::fs::write(&f, format!("{text}\n")).unwrap();
    let s = Secret::read(&f).unwrap();
    (f, s)
}

/// An `agent --listen` on a free loopback port; killed when dropped.
struct Daemon {
    child: Child,
    addr: SocketAddr,
}

impl Daemon {
    fn start(secret_file: &Path) -> Daemon {
        let mut child = Command::new(agent())
            .args(["--listen", "127.0.0.1:0", "--secret-file"])
            .arg(secret_file)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        // The log's first line names the port; generous, for a loaded machine.
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the daemon's first line");
        let addr = line
            .strip_prefix("[agent] listening on ")
            .and_then(|r| r.split(' ').next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        Daemon { child, addr }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client(port: u16) -> ClientConfig {
    ClientConfig {
        host: "127.0.0.1".into(),
        port,
        workload: Workload::Stream,
        duration: Duration::from_millis(300),
        ..ClientConfig::default()
    }
}

#[test]
fn a_daemon_refuses_a_wrong_or_missing_secret() {
    let dir = scratch("daemon-secret");
    let (file, right) = secret(&dir, "right", "0123456789abcdef-right");
    let (_, wrong) = secret(&dir, "wrong", "0123456789abcdef-wrong");
    let d = Daemon::start(&file);
    let addr = d.addr.to_string();
    let e = format!("{:#}", Link::daemon(&addr, Some(&wrong)).err().unwrap());
    assert!(e.contains("authentication failed: wrong secret"), "{e}");
    let e = format!("{:#}", Link::daemon(&addr, None).err().unwrap());
    assert!(e.contains("the daemon wants the shared secret"), "{e}");
    // The refusals cost their connections only: the right secret still gets in.
    let mut link = Link::daemon(&addr, Some(&right)).unwrap();
    let host = link.describe(Some(d.addr.ip())).unwrap();
    assert_eq!(host.interface.unwrap().name, "lo");
    link.close();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_daemon_runs_clients_only_against_servers_an_agent_vouches_for() {
    let dir = scratch("daemon-vouch");
    let (file, right) = secret(&dir, "secret", "0123456789abcdef-vouch");
    let d = Daemon::start(&file);
    let daemon = d.addr.to_string();
    // A third party: answers like a web server and counts what it is sent.
    let third = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = third.local_addr().unwrap();
    let (seen_tx, seen) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in third.incoming() {
            let Ok(mut conn) = conn else { return };
            let _ = conn.write_all(b"HTTP/1.0 200 OK\r\n\r\n");
            let _ = conn.set_read_timeout(Some(Duration::from_millis(500)));
            let mut buf = [0u8; 4096];
            let n = conn.read(&mut buf).unwrap_or(0);
            let _ = seen_tx.send(n);
        }
    });
    let mut link = Link::daemon(&daemon, Some(&right)).unwrap();
    let e = format!(
        "{:#}",
        link.connect(&client(target.port()), None).unwrap_err()
    );
    assert!(
        e.contains("refused") && e.contains("no agent was named"),
        "{e}"
    );
    let e = format!(
        "{:#}",
        link.connect(&client(target.port()), Some(target.to_string()))
            .unwrap_err()
    );
    assert!(e.contains("not a copyperf agent"), "{e}");
    let e = format!(
        "{:#}",
        link.connect(&client(target.port()), Some(daemon.clone()))
            .unwrap_err()
    );
    assert!(e.contains("no server of this agent listens"), "{e}");
    // The third party saw one connection — the daemon reading its banner — and was sent
    // nothing at all.
    assert_eq!(seen.recv_timeout(Duration::from_secs(30)), Ok(0));
    assert!(
        seen.try_recv().is_err(),
        "a second connection to the third party"
    );

    // Vouched for, it measures.
    let served = link
        .serve(&ServerConfig {
            bind: d.addr.ip(),
            port: 0,
            ..ServerConfig::default()
        })
        .unwrap();
    link.connect(&client(served.port()), Some(daemon)).unwrap();
    link.go().unwrap();
    let never = AtomicBool::new(false);
    let record = link
        .finish(Instant::now() + Duration::from_secs(60), &never)
        .unwrap()
        .expect("not stopped");
    assert!(record.summary.bytes_sent > 0);
    assert_eq!(record.summary.verify_errors, 0);
    link.stop_serving().unwrap();
    link.close();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_daemon_off_loopback_needs_a_secret() {
    let o = Command::new(agent())
        .args(["--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("give --secret-file FILE"), "{err}");
}

#[test]
fn a_stdio_agent_of_another_kind_is_named_by_what_it_printed() {
    // A launcher that reaches a shell without copyperf: the controller quotes it.
    let spec: cli::agent::control::HostSpec = "local".parse().unwrap();
    let reach = cli::agent::control::Reach {
        local_agent: PathBuf::from("/bin/echo"),
        ..Default::default()
    };
    let e = format!("{:#}", Link::open(&spec, &reach).err().unwrap());
    assert!(
        e.contains("local") && e.contains("not a copyperf agent; it said \"--stdio\""),
        "{e}"
    );
}

#[test]
fn an_agent_of_another_version_is_refused_by_name() {
    // A stand-in agent that greets like copyperf 0.0.1 would.
    let dir = scratch("old-agent");
    let hello = br#"{"reply":"hello","protocol":1,"version":"0.0.1","host":"old"}"#;
    let mut bytes = b"CPAG".to_vec();
    bytes.extend_from_slice(&(hello.len() as u32).to_be_bytes());
    bytes.extend_from_slice(hello);
    std::fs::write(dir.join("greeting"), &bytes).unwrap();
    let fake = dir.join("agent");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\ncat '{}'\nsleep 30\n",
            dir.join("greeting").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let reach = cli::agent::control::Reach {
        local_agent: fake,
        ..Default::default()
    };
    let started = Instant::now();
    let e = format!(
        "{:#}",
        Link::open(&"local".parse().unwrap(), &reach).err().unwrap()
    );
    assert!(
        e.contains("local: the agent there is copyperf 0.0.1 (control protocol 1)")
            && e.contains("--deploy"),
        "{e}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the fake was stopped, not waited out"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_unreachable_ssh_host_is_named_with_what_ssh_said() {
    // Port 1 on loopback: nothing listens, so ssh fails at once.
    let reach = cli::agent::control::Reach {
        local_agent: agent(),
        ssh_args: vec!["-F".into(), "/dev/null".into()],
        ..Default::default()
    };
    let e = format!(
        "{:#}",
        Link::open(&"ssh://nobody@127.0.0.1:1".parse().unwrap(), &reach)
            .err()
            .unwrap()
    );
    assert!(
        e.contains("ssh://nobody@127.0.0.1:1") && e.contains("Connection refused"),
        "{e}"
    );
}

/// Reads the daemon's opening: the magic and its hello's challenge.
fn opening(s: &mut std::net::TcpStream) -> String {
    use cli::agent::proto::{read_frame, read_magic, Reply, MAX_REPLY};
    read_magic(s).unwrap();
    match read_frame::<_, Reply>(s, MAX_REPLY).unwrap() {
        Reply::Hello {
            challenge: Some(c), ..
        } => c,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_hostile_controller_costs_its_own_connection_only() {
    use cli::agent::auth::{Prover, Seal};
    use cli::agent::proto::{
        parse, read_frame, read_raw, write_frame, write_sealed, FrameError, Reply, Request,
        MAX_REPLY,
    };
    let dir = scratch("daemon-hostile");
    let (file, right) = secret(&dir, "secret", "0123456789abcdef-hostile");
    let d = Daemon::start(&file);
    let failed = |s: &mut std::net::TcpStream| match read_frame::<_, Reply>(s, MAX_REPLY) {
        Ok(Reply::Failed { error, .. }) => error,
        Err(FrameError::Closed) => "closed".into(),
        other => panic!("{other:?}"),
    };
    // A 4 GiB length where the answer to the challenge belongs.
    let mut s = std::net::TcpStream::connect(d.addr).unwrap();
    opening(&mut s);
    s.write_all(&u32::MAX.to_be_bytes()).unwrap();
    let e = failed(&mut s);
    assert!(e == "closed" || e.contains("authentication failed"), "{e}");
    // A request before the answer.
    let mut s = std::net::TcpStream::connect(d.addr).unwrap();
    opening(&mut s);
    write_frame(&mut s, &Request::Go).unwrap();
    assert!(failed(&mut s).contains("expected Auth first"));
    // Authenticated, then garbage in a sealed frame: the session ends, saying why.
    let mut s = std::net::TcpStream::connect(d.addr).unwrap();
    let nonce = opening(&mut s);
    let ours = cli::agent::auth::nonce();
    write_frame(
        &mut s,
        &Request::Auth {
            mac: right.answer(Prover::Controller, &nonce),
            nonce: ours.clone(),
        },
    )
    .unwrap();
    assert!(matches!(
        read_frame::<_, Reply>(&mut s, MAX_REPLY),
        Ok(Reply::Authenticated { .. })
    ));
    let key = right.session_key(&nonce, &ours);
    let mut out = Seal::new(key, Prover::Controller);
    let mut back = Seal::new(key, Prover::Agent);
    let exec = serde_json::json!({"op": "exec", "cmd": "sh"});
    write_sealed(&mut s, &exec, Some(&mut out)).unwrap();
    let reply = parse::<Reply>(read_raw(&mut s, MAX_REPLY).unwrap(), Some(&mut back));
    let Ok(Reply::Failed { error: e, .. }) = reply else {
        panic!("{reply:?}")
    };
    assert!(
        e.contains("ending the session") && e.contains("exec"),
        "{e}"
    );
    assert!(matches!(
        read_raw(&mut s, MAX_REPLY),
        Err(FrameError::Closed)
    ));
    // None of it cost the daemon anything: a proper controller is served.
    let mut link = Link::daemon(&d.addr.to_string(), Some(&right)).unwrap();
    link.describe(None).unwrap();
    link.close();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_relay_that_knows_no_secret_cannot_speak_in_the_session_it_passed_along() {
    use cli::agent::proto::{read_magic, read_raw, write_frame, Request, MAGIC, MAX_REPLY};
    let dir = scratch("daemon-relay");
    let (file, right) = secret(&dir, "secret", "0123456789abcdef-relay");
    let d = Daemon::start(&file);
    // The relay: where a controller was pointed by mistake. It passes the daemon's hello
    // and challenge to the controller and the controller's proofs back, then tries to
    // speak for itself.
    let relay = TcpListener::bind("127.0.0.1:0").unwrap();
    let relay_addr = relay.local_addr().unwrap();
    let daemon = d.addr;
    let (verdict_tx, verdict) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut controller, _) = relay.accept().unwrap();
        let mut v = std::net::TcpStream::connect(daemon).unwrap();
        let frame = |body: &[u8]| {
            let mut b = (body.len() as u32).to_be_bytes().to_vec();
            b.extend_from_slice(body);
            b
        };
        read_magic(&mut v).unwrap();
        let hello = read_raw(&mut v, MAX_REPLY).unwrap();
        controller.write_all(&MAGIC).unwrap();
        controller.write_all(&frame(&hello)).unwrap();
        let auth = read_raw(&mut controller, MAX_REPLY).unwrap();
        v.write_all(&frame(&auth)).unwrap();
        let proof = read_raw(&mut v, MAX_REPLY).unwrap();
        controller.write_all(&frame(&proof)).unwrap();
        // Its own request, unsealed: it has no key.
        write_frame(&mut v, &Request::Describe { addr: None }).unwrap();
        let answer = read_raw(&mut v, MAX_REPLY).unwrap_or_default();
        let text = String::from_utf8_lossy(&answer).to_string();
        let closed = read_raw(&mut v, MAX_REPLY).is_err();
        let _ = verdict_tx.send((text, closed));
        drop(controller);
    });
    // The controller proves the secret to what it thinks is the daemon.
    let link = Link::daemon(&relay_addr.to_string(), Some(&right));
    let (text, closed) = verdict.recv_timeout(Duration::from_secs(60)).unwrap();
    assert!(
        text.contains("seal does not check") && !text.contains("described"),
        "the daemon answered the relay: {text}"
    );
    assert!(closed, "the daemon closed the relayed session");
    drop(link);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The daemon's open descriptors.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

#[test]
fn silent_peers_cannot_keep_a_controller_out() {
    let dir = scratch("daemon-silent");
    let (file, right) = secret(&dir, "secret", "0123456789abcdef-silent");
    let d = Daemon::start(&file);
    // One host opens more handshakes than it may and says nothing.
    let silent: Vec<std::net::TcpStream> = (0..20)
        .map(|_| socket2_from("127.0.0.2").connect(d.addr).unwrap())
        .collect();
    // A controller from another address still gets in, at once.
    let started = Instant::now();
    let mut link = Link::daemon(&d.addr.to_string(), Some(&right)).unwrap();
    link.describe(None).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "the controller waited for the silent peers' deadline"
    );
    link.close();
    drop(silent);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A TCP socket bound to `source` on loopback, not yet connected.
fn socket2_from(source: &str) -> ConnectFrom {
    ConnectFrom(source.parse().unwrap())
}

struct ConnectFrom(std::net::IpAddr);

impl ConnectFrom {
    fn connect(self, to: SocketAddr) -> std::io::Result<std::net::TcpStream> {
        use nix::sys::socket::{
            bind, connect, socket, AddressFamily, SockFlag, SockType, SockaddrIn,
        };
        use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
        let fd = socket(
            AddressFamily::Inet,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        let std::net::IpAddr::V4(ip) = self.0 else {
            unreachable!()
        };
        bind(
            fd.as_raw_fd(),
            &SockaddrIn::from(std::net::SocketAddrV4::new(ip, 0)),
        )?;
        let SocketAddr::V4(to) = to else {
            unreachable!()
        };
        connect(fd.as_raw_fd(), &SockaddrIn::from(to))?;
        // SAFETY: a connected socket we own, handed to the TcpStream.
        Ok(unsafe { std::net::TcpStream::from_raw_fd(fd.into_raw_fd()) })
    }
}

#[test]
fn closed_links_leave_no_connection_on_the_daemon() {
    let dir = scratch("daemon-close");
    let (file, right) = secret(&dir, "secret", "0123456789abcdef-close");
    let d = Daemon::start(&file);
    let pid = d.child.id();
    let mut link = Link::daemon(&d.addr.to_string(), Some(&right)).unwrap();
    link.describe(None).unwrap();
    link.close();
    let deadline = Instant::now() + Duration::from_secs(30);
    let settled = || {
        let mut last = fds(pid);
        loop {
            std::thread::sleep(Duration::from_millis(200));
            let now = fds(pid);
            if now == last {
                return now;
            }
            last = now;
        }
    };
    let before = settled();
    for _ in 0..10 {
        let mut link = Link::daemon(&d.addr.to_string(), Some(&right)).unwrap();
        link.describe(None).unwrap();
        link.close();
    }
    loop {
        let now = fds(pid);
        if now <= before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "10 closed sessions left {} descriptors open on the daemon",
            now - before
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
