//! The client: connect and handshake every connection, run the measured interval on every
//! thread at once, collect both sides' figures into one [`Record`].
//!
//! Everything that can fail before measuring — resolving, connecting, the handshake, socket
//! options — happens on the calling thread first, so a refused or unreachable server
//! costs nothing and leaves no thread behind.

use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Instant, SystemTime};

use crate::backend;
use crate::config::{Backend, ClientConfig, Mode};
use crate::error::Error;
use crate::message::{Layout, Template};
use crate::pool::{pool_size, Pool};
use crate::record::{Record, ThreadResult};
use crate::stats::PeerReport;
use crate::wire::{self, Frame, Hello, ReadError, WireError};
use crate::workload::{Flow, FlowSpec, Role};

/// What a client reports as it runs.
#[derive(Debug)]
pub enum ClientEvent {
    /// Every connection is up; the measured interval is about to start.
    Connected { connections: usize },
    /// A worker thread entered the measured interval.
    ThreadStarted { thread: usize },
}

/// A connection past its handshake.
pub(crate) struct Connection {
    pub stream: TcpStream,
}

/// Runs one client measurement and returns its record.
pub fn run_client(
    config: &ClientConfig,
    on_event: &(dyn Fn(ClientEvent) + Sync),
) -> Result<Record, Error> {
    let config = config.clone().validate()?;
    if config.backend == Backend::Uring {
        backend::uring::check_kernel(Some(config.mode))?;
    }
    let addr = resolve(&config)?;
    let mut threads: Vec<Vec<Connection>> = Vec::with_capacity(config.threads);
    for t in 0..config.threads {
        let mut conns = Vec::with_capacity(config.conns);
        for c in 0..config.conns {
            conns.push(connect(&config, addr, (t * config.conns + c) as u32)?);
        }
        threads.push(conns);
    }
    on_event(ClientEvent::Connected {
        connections: config.total_connections(),
    });

    let template = Template::new(Layout::new(config.size));
    let barrier = Barrier::new(config.threads);
    let abort = AtomicBool::new(false);
    let started = SystemTime::now();
    let results: Vec<Result<ThreadResult, Error>> = std::thread::scope(|scope| {
        let handles: Vec<_> = threads
            .into_iter()
            .enumerate()
            .map(|(thread, conns)| {
                let (config, template, barrier, abort) = (&config, &template, &barrier, &abort);
                scope.spawn(move || {
                    run_thread(thread, conns, config, template, barrier, abort, on_event)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let results = results.into_iter().collect::<Result<Vec<_>, _>>()?;
    Ok(Record::new(config, addr.to_string(), started, &results))
}

fn resolve(config: &ClientConfig) -> Result<SocketAddr, Error> {
    let name = format!("{}:{}", config.host, config.port);
    (config.host.as_str(), config.port)
        .to_socket_addrs()
        .map_err(|source| Error::Connect {
            addr: name.clone(),
            source,
        })?
        .next()
        .ok_or_else(|| Error::Connect {
            addr: name,
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no address found"),
        })
}

/// Connects, handshakes and prepares one connection's socket.
fn connect(config: &ClientConfig, addr: SocketAddr, flow: u32) -> Result<Connection, Error> {
    let mut stream =
        TcpStream::connect_timeout(&addr, config.connect_timeout).map_err(|source| {
            Error::Connect {
                addr: addr.to_string(),
                source,
            }
        })?;
    let io = |what: &'static str| move |e| Error::io(what, e);
    stream
        .set_read_timeout(Some(config.connect_timeout))
        .map_err(io("socket timeouts"))?;
    stream
        .set_write_timeout(Some(config.connect_timeout))
        .map_err(io("socket timeouts"))?;
    let hello = Frame::Hello(Hello {
        workload: config.workload,
        mode: config.mode,
        verify: config.verify,
        backend: config.backend,
        size: config.size as u32,
        depth: config.depth as u32,
        duration_ms: config.duration.as_millis().min(u32::MAX as u128) as u32,
        flow,
    });
    wire::write_frame(&mut stream, &hello).map_err(io("sending the hello"))?;
    match wire::read_frame(&mut stream, config.connect_timeout) {
        Ok(Frame::Accept(_)) => {}
        Ok(Frame::Refuse(r)) => {
            return Err(Error::Refused {
                addr: addr.to_string(),
                reason: r.reason,
            })
        }
        Ok(other) => {
            return Err(WireError::Unexpected {
                expected: "accept",
                got: other.name(),
            }
            .into())
        }
        Err(e) => return Err(read_error(e, "the server's answer to the hello")),
    }
    stream.set_nodelay(true).map_err(io("TCP_NODELAY"))?;
    backend::syscall::set_timeouts(stream.as_fd(), config.io_timeout)
        .map_err(io("socket timeouts"))?;
    if config.mode == Mode::Zc && config.backend == Backend::Syscall {
        backend::syscall::enable_zerocopy(stream.as_fd())?;
    }
    Ok(Connection { stream })
}

fn read_error(e: ReadError, what: &str) -> Error {
    match e {
        ReadError::Wire(w) => Error::Wire(w),
        ReadError::Closed => Error::Peer(format!("server closed the connection before {what}")),
        ReadError::Timeout(d) => Error::Timeout(format!(
            "server sent nothing for {:.1} s while waiting for {what}",
            d.as_secs_f64()
        )),
        ReadError::Io(e) => Error::io(format!("reading {what}"), e),
    }
}

/// The client side of one connection's workload.
pub(crate) fn client_flow(config: &ClientConfig, template: &Arc<Template>, pool: Pool) -> Flow {
    let spec = FlowSpec {
        role: Role::Client,
        workload: config.workload,
        mode: config.mode,
        verify: config.verify,
        depth: config.depth,
        duration: config.duration,
    };
    Flow::new(spec, template.clone(), pool)
}

#[allow(clippy::too_many_arguments)]
fn run_thread(
    thread: usize,
    conns: Vec<Connection>,
    config: &ClientConfig,
    template: &Arc<Template>,
    barrier: &Barrier,
    abort: &AtomicBool,
    on_event: &(dyn Fn(ClientEvent) + Sync),
) -> Result<ThreadResult, Error> {
    let mut result = ThreadResult {
        thread,
        connections: conns.len(),
        ..Default::default()
    };
    let run = match config.backend {
        Backend::Syscall => {
            let conn = conns.first().expect("one connection per syscall thread");
            let pool = Pool::heap(template, config.mode, pool_size(config.depth));
            let mut flow = client_flow(config, template, pool);
            start(barrier, abort, thread, on_event, Ok(()))?;
            let now = Instant::now();
            flow.begin(now);
            let run = backend::syscall::drive(conn.stream.as_fd(), &mut flow, config.io_timeout);
            flow.finish(Instant::now());
            result.duration = flow.duration();
            result.stats = flow.stats;
            result.latency = flow.latency;
            run
        }
        Backend::Uring => {
            backend::uring::run_client_thread(&conns, config, template, &mut result, |ready| {
                start(barrier, abort, thread, on_event, ready)
            })
        }
    };
    if let Err(e) = run {
        abort.store(true, Ordering::Relaxed);
        return Err(e);
    }
    for conn in &conns {
        result.server.push(server_report(conn, config)?);
    }
    Ok(result)
}

/// Meets the other threads at the start line. A thread whose setup failed still comes, so
/// nobody waits for it forever, and then everybody goes home.
fn start(
    barrier: &Barrier,
    abort: &AtomicBool,
    thread: usize,
    on_event: &(dyn Fn(ClientEvent) + Sync),
    ready: Result<(), Error>,
) -> Result<(), Error> {
    if ready.is_err() {
        abort.store(true, Ordering::Relaxed);
    }
    barrier.wait();
    ready?;
    if abort.load(Ordering::Relaxed) {
        return Err(Error::Peer("another client thread failed to start".into()));
    }
    on_event(ClientEvent::ThreadStarted { thread });
    Ok(())
}

/// Half-closes the connection and reads the server's figures for it.
fn server_report(conn: &Connection, config: &ClientConfig) -> Result<PeerReport, Error> {
    conn.stream
        .shutdown(Shutdown::Write)
        .map_err(|e| Error::io("closing the sending side", e))?;
    let mut stream = &conn.stream;
    match wire::read_frame(&mut stream, config.io_timeout) {
        Ok(Frame::Stats(report)) => Ok(*report),
        Ok(other) => Err(WireError::Unexpected {
            expected: "stats",
            got: other.name(),
        }
        .into()),
        Err(e) => Err(read_error(e, "the server's end-of-run stats")),
    }
}
