//! `agent --listen`: the agent as a daemon for hosts without ssh, like `iperf3 -s`. Off
//! loopback it needs the shared secret, proven by challenge and response before any
//! request is read, and every frame after that is sealed; a connection that fails costs
//! one log line and is closed. Handshakes and sessions have pools of their own, and a
//! handshake has one deadline for the whole of it.

use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::auth::{self, Prover, Seal, Seals, Secret};
use super::proto::{self, Reply, Request, MAGIC};
use super::session::{self, Reach};

/// Sessions served at once; the next authenticated connection is told so and closed.
pub const MAX_SESSIONS: usize = 8;

/// Connections still proving the secret, at once: they have their own pool, so peers
/// that never authenticate cannot take a session's place.
pub const MAX_PENDING: usize = 16;

/// Of those, from one address: one host cannot fill the pool.
pub const MAX_PENDING_PER_ADDR: usize = 4;

/// How long a connection has for the whole handshake, however it trickles.
const AUTH_WAIT: Duration = Duration::from_secs(10);

/// How long a reply may wait for a controller that does not read.
const WRITE_WAIT: Duration = Duration::from_secs(30);

/// Refuses to listen off loopback without a secret.
pub fn check(addr: SocketAddr, secret: Option<&Secret>) -> Result<()> {
    if secret.is_none() && !addr.ip().is_loopback() {
        bail!(
            "--listen {addr} is reachable from other hosts: give --secret-file FILE (a daemon \
             off loopback must authenticate its controllers)"
        );
    }
    Ok(())
}

/// Serves sessions on `listener` until `stop` is set.
pub fn serve(
    listener: TcpListener,
    secret: Option<Secret>,
    stop: &AtomicBool,
    log: &(dyn Fn(&str) + Sync),
) -> Result<()> {
    listener.set_nonblocking(true).context("listening socket")?;
    let pending = AtomicUsize::new(0);
    let per_addr: Mutex<HashMap<IpAddr, usize>> = Mutex::new(HashMap::new());
    let active = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        while !stop.load(Ordering::Relaxed) {
            let (stream, peer) = match listener.accept() {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
                Err(e) => {
                    log(&format!("accept failed: {e}"));
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            };
            let _ = stream.set_nonblocking(false);
            {
                let mut from = per_addr.lock().expect("pending lock");
                let n = from.entry(peer.ip()).or_default();
                if *n >= MAX_PENDING_PER_ADDR || pending.load(Ordering::SeqCst) >= MAX_PENDING {
                    log(&format!("{peer}: closed, too many handshakes under way"));
                    continue;
                }
                *n += 1;
                pending.fetch_add(1, Ordering::SeqCst);
            }
            let (pending, per_addr, active, secret) =
                (&pending, &per_addr, &active, secret.clone());
            scope.spawn(move || {
                let accepted = handshake(stream, secret);
                pending.fetch_sub(1, Ordering::SeqCst);
                {
                    let mut from = per_addr.lock().expect("pending lock");
                    if let Some(n) = from.get_mut(&peer.ip()) {
                        *n -= 1;
                        if *n == 0 {
                            from.remove(&peer.ip());
                        }
                    }
                }
                let (stream, secret, seals) = match accepted {
                    Ok(a) => a,
                    Err(e) => return log(&format!("{peer}: {e:#}")),
                };
                if active.fetch_add(1, Ordering::SeqCst) >= MAX_SESSIONS {
                    active.fetch_sub(1, Ordering::SeqCst);
                    log(&format!("{peer}: refused, {MAX_SESSIONS} sessions already"));
                    let mut s = stream;
                    let mut seals = seals;
                    let _ = proto::write_sealed(
                        &mut s,
                        &Reply::Failed {
                            error: format!("busy: {MAX_SESSIONS} sessions already"),
                            exit_code: engine::exit::REFUSED,
                        },
                        seals.as_mut().map(|s| &mut s.outgoing),
                    );
                    return;
                }
                log(&format!("{peer}: session started"));
                match (stream.try_clone(), stream.try_clone()) {
                    (Ok(input), Ok(keeper)) => {
                        let reach = Reach::Daemon { secret };
                        session::run(input, stream, reach, seals, stop, log);
                        // Wakes the session's reader, which a peer that keeps the
                        // connection open after its session would otherwise hold.
                        let _ = keeper.shutdown(std::net::Shutdown::Both);
                    }
                    (Err(e), _) | (_, Err(e)) => log(&format!("{peer}: {e}")),
                }
                log(&format!("{peer}: session ended"));
                active.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    Ok(())
}

/// The hello and, with a secret, its proof both ways, all within [`AUTH_WAIT`]: a watchdog
/// shuts the connection at the deadline however slowly the peer trickles.
fn handshake(
    stream: TcpStream,
    secret: Option<Secret>,
) -> Result<(TcpStream, Option<Secret>, Option<Seals>)> {
    let (done, watchdog) = mpsc::channel::<()>();
    let guard = stream.try_clone()?;
    std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = watchdog.recv_timeout(AUTH_WAIT) {
            let _ = guard.shutdown(std::net::Shutdown::Both);
        }
    });
    let result = prove(stream, secret);
    let _ = done.send(());
    let (mut stream, secret, seals) = result?;
    stream.set_write_timeout(Some(WRITE_WAIT))?;
    // A session may idle between points for as long as its controller likes; a peer
    // that vanished is found by keepalive.
    let _ = nix::sys::socket::setsockopt(&stream, nix::sys::socket::sockopt::KeepAlive, &true);
    stream.flush()?;
    Ok((stream, secret, seals))
}

fn prove(
    mut stream: TcpStream,
    secret: Option<Secret>,
) -> Result<(TcpStream, Option<Secret>, Option<Seals>)> {
    let _ = stream.set_nodelay(true);
    stream.set_write_timeout(Some(AUTH_WAIT))?;
    stream.write_all(&MAGIC)?;
    let nonce = secret.as_ref().map(|_| auth::nonce());
    proto::write_frame(&mut stream, &session::hello(nonce.clone()))?;
    let (Some(secret), Some(nonce)) = (secret, nonce) else {
        return Ok((stream, None, None));
    };
    let request = match proto::read_frame::<_, Request>(&mut stream, 4096) {
        Ok(r) => r,
        Err(e) => {
            refuse(&mut stream, &format!("authentication failed: {e}"));
            bail!("authentication failed: no answer to the challenge ({e})");
        }
    };
    let Request::Auth { mac, nonce: theirs } = request else {
        refuse(&mut stream, "authentication failed: expected Auth first");
        bail!("authentication failed: a request before Auth");
    };
    if !secret.check(Prover::Controller, &nonce, &mac) {
        refuse(&mut stream, "authentication failed: wrong secret");
        bail!("authentication failed: wrong secret");
    }
    if theirs.len() < 32 || theirs.len() > 128 {
        refuse(
            &mut stream,
            "authentication failed: a nonce of 32 to 128 characters",
        );
        bail!("authentication failed: a bad nonce");
    }
    proto::write_frame(
        &mut stream,
        &Reply::Authenticated {
            mac: secret.answer(Prover::Agent, &theirs),
        },
    )?;
    let key = secret.session_key(&nonce, &theirs);
    let seals = Seals {
        incoming: Seal::new(key, Prover::Controller),
        outgoing: Seal::new(key, Prover::Agent),
    };
    Ok((stream, Some(secret), Some(seals)))
}

fn refuse(stream: &mut TcpStream, why: &str) {
    let _ = proto::write_frame(
        stream,
        &Reply::Failed {
            error: why.into(),
            exit_code: engine::exit::REFUSED,
        },
    );
}
