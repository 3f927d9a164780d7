//! `agent --listen`: the agent as a daemon for hosts without ssh, like `iperf3 -s`. Off
//! loopback it needs the shared secret, proven by challenge and response before any
//! request is read; a connection that fails it costs one log line and is closed.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::auth::{self, Prover, Secret};
use super::proto::{self, Reply, Request, MAGIC};
use super::session::{self, Reach};

/// Sessions served at once; the next connection is told so and closed.
pub const MAX_SESSIONS: usize = 8;

/// How long a connection has to authenticate.
const AUTH_WAIT: Duration = Duration::from_secs(10);

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
    let active = Arc::new(AtomicUsize::new(0));
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
            if active.fetch_add(1, Ordering::SeqCst) >= MAX_SESSIONS {
                active.fetch_sub(1, Ordering::SeqCst);
                log(&format!("{peer}: refused, {MAX_SESSIONS} sessions already"));
                let mut s = stream;
                let _ = s.write_all(&MAGIC);
                let _ = proto::write_frame(
                    &mut s,
                    &Reply::Failed {
                        error: format!("busy: {MAX_SESSIONS} sessions already"),
                        exit_code: engine::exit::REFUSED,
                    },
                );
                continue;
            }
            let active = active.clone();
            let secret = secret.clone();
            scope.spawn(move || {
                match accept(stream, secret) {
                    Ok((stream, secret)) => {
                        log(&format!("{peer}: session started"));
                        match (stream.try_clone(), stream.try_clone()) {
                            (Ok(input), Ok(keeper)) => {
                                session::run(input, stream, Reach::Daemon { secret }, stop, log);
                                // Wakes the session's reader, which a peer that keeps the
                                // connection open after its session would otherwise hold.
                                let _ = keeper.shutdown(std::net::Shutdown::Both);
                            }
                            (Err(e), _) | (_, Err(e)) => log(&format!("{peer}: {e}")),
                        }
                        log(&format!("{peer}: session ended"));
                    }
                    Err(e) => log(&format!("{peer}: {e:#}")),
                }
                active.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    Ok(())
}

/// The hello, and the secret proven both ways when there is one.
fn accept(mut stream: TcpStream, secret: Option<Secret>) -> Result<(TcpStream, Option<Secret>)> {
    let _ = stream.set_nodelay(true);
    stream.set_read_timeout(Some(AUTH_WAIT))?;
    stream.write_all(&MAGIC)?;
    let nonce = secret.as_ref().map(|_| auth::nonce());
    proto::write_frame(&mut stream, &session::hello(nonce.clone()))?;
    if let (Some(secret), Some(nonce)) = (&secret, nonce) {
        let request = proto::read_frame::<_, Request>(&mut stream, 4096)
            .context("authentication failed: no answer to the challenge")?;
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
    }
    stream.set_read_timeout(None)?;
    Ok((stream, secret))
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
