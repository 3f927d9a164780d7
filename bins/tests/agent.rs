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
    use cli::agent::auth::Prover;
    use cli::agent::proto::{read_frame, write_frame, FrameError, Reply, Request, MAX_REPLY};
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
    // Authenticated, then garbage: the session ends, saying why.
    let mut s = std::net::TcpStream::connect(d.addr).unwrap();
    let nonce = opening(&mut s);
    write_frame(
        &mut s,
        &Request::Auth {
            mac: right.answer(Prover::Controller, &nonce),
            nonce: cli::agent::auth::nonce(),
        },
    )
    .unwrap();
    assert!(matches!(
        read_frame::<_, Reply>(&mut s, MAX_REPLY),
        Ok(Reply::Authenticated { .. })
    ));
    write_frame(&mut s, &serde_json::json!({"op": "exec", "cmd": "sh"})).unwrap();
    let e = failed(&mut s);
    assert!(
        e.contains("ending the session") && e.contains("exec"),
        "{e}"
    );
    assert!(matches!(
        read_frame::<_, Reply>(&mut s, MAX_REPLY),
        Err(FrameError::Closed)
    ));
    // None of it cost the daemon anything: a proper controller is served.
    let mut link = Link::daemon(&d.addr.to_string(), Some(&right)).unwrap();
    link.describe(None).unwrap();
    link.close();
    std::fs::remove_dir_all(&dir).unwrap();
}
