//! A connection's run: its thread on the syscall engine, or its hand-over to a uring
//! worker and what the server does around it there ([`ServeHost`]); the one place a
//! [`PeerReport`] is built and sent.

use super::*;
use crate::polling::BusyPoll;

/// The server sends echoes, each awaited by the client: TCP_NODELAY for echo. A stream
/// it sends (reverse, bidir) gets what `--nodelay auto` gives a client's stream
/// ([`auto_nodelay`]). A sendfile or splice stream's receiver sends read receipts, each
/// awaited by a sender out of buffers: one must not wait behind Nagle for the
/// acknowledgement of the last. A stream it only receives otherwise, Nagle (it never
/// sends anyway).
pub(super) fn nodelay_for(hello: &Hello, stream: &TcpStream) -> bool {
    match hello.workload {
        Workload::Echo => true,
        Workload::Stream if hello.direction.server_sends() => {
            let mss = crate::client::max_segment(stream).unwrap_or(usize::MAX);
            auto_nodelay(hello.workload, hello.mode, hello.size as usize, mss)
        }
        Workload::Stream => crate::path::path(hello.mode).file,
    }
}

/// Under the `paired` placement, the client thread whose CPU this connection's server
/// thread takes (from the hello); `None` under any other placement, where a connection
/// takes the lowest free place (syscall) or the next worker (uring).
fn paired_thread(shared: &Shared<'_>, hello: &Hello) -> Option<usize> {
    (shared.config.cpus.policy() == Some(PlacementPolicy::Paired)).then_some(hello.thread as usize)
}

/// Under `paired`, the CPU of the client thread a syscall connection serves.
pub(super) fn paired_cpu(shared: &Shared<'_>, hello: &Hello) -> Option<Option<usize>> {
    paired_thread(shared, hello).map(|t| placement::paired_cpu(t, available_cpus()))
}

/// Under `paired`, the uring worker on the CPU of the client thread a connection serves.
pub(super) fn paired_worker(shared: &Shared<'_>, hello: &Hello) -> Option<usize> {
    let t = paired_thread(shared, hello)?;
    let workers: Vec<Option<usize>> = (0..shared.config.workers())
        .map(|w| shared.plan.cpu(w))
        .collect();
    Some(placement::paired_worker(t, available_cpus(), &workers))
}

/// The server side of a connection's workload, from its hello.
pub(super) fn server_flow_spec(hello: &Hello) -> FlowSpec {
    FlowSpec {
        role: Role::Server,
        workload: hello.workload,
        mode: hello.mode,
        verify: hello.verify,
        depth: hello.depth as usize,
        duration: Duration::ZERO,
        omit: Duration::from_millis(hello.omit_ms.into()),
        rx: hello.rx,
        direction: hello.direction,
        schedule: None,
        messages: None,
    }
}

/// The server's figures for one connection, whichever engine served it: the one place a
/// [`PeerReport`] is built.
#[allow(clippy::too_many_arguments)]
pub(super) fn peer_report(
    shared: &Shared<'_>,
    backend: Backend,
    id: u64,
    stream: &TcpStream,
    flow: &Flow,
    ring: Option<RingSetup>,
    samples: Vec<Sample>,
    placement: Placement,
    busy_poll: Option<BusyPoll>,
) -> PeerReport {
    // Busy polling as granted on the socket (syscall) or the ring (uring), with the NAPI
    // context the socket's packets came through, now that they have.
    let busy_poll = busy_poll
        .or_else(|| ring.as_ref().and_then(|r| r.busy_poll.clone()))
        .map(|b| BusyPoll {
            napi_id: crate::polling::napi_id(stream.as_raw_fd()),
            ..b
        });
    PeerReport {
        // Read just before the report is sent: the connection's state at the end.
        tcp_info: crate::tcpinfo::TcpInfo::read_or_none(stream.as_raw_fd()),
        busy_poll,
        host: shared.host_for(stream),
        backend,
        connection: id,
        duration_s: flow.duration().as_secs_f64(),
        stats: flow.stats.clone(),
        ring,
        samples,
        counter_scope: shared.metering.scope,
        counters_missing: shared.metering.missing.clone(),
        placement: Some(placement),
        cpus_available: Some(available_cpus().len()).filter(|&n| n > 0),
        rx: flow.spec().receives().then_some(flow.spec().rx),
        send_flags: flow
            .spec()
            .sends()
            .then(|| flow.spec().mode.send_flags(backend))
            .flatten(),
    }
}

/// Sends the end-of-run report; returns the event to log once the connection's slot is
/// given back (so that whoever sees the event may take the slot).
pub(super) fn finish_connection(
    stream: &mut TcpStream,
    peer: SocketAddr,
    report: PeerReport,
) -> ServerEvent {
    let id = report.connection;
    let report = Box::new(report);
    let frame = Frame::Stats(report.clone());
    match stream.write_all(&frame.encode()) {
        Ok(()) => {
            let _ = stream.shutdown(Shutdown::Write);
            ServerEvent::Disconnected { id, peer, report }
        }
        Err(e) => ServerEvent::Failed {
            id,
            peer,
            error: format!("sending the end-of-run stats: {e}"),
        },
    }
}

/// Ends a connection the server could not run to its end, and tells the client why where
/// it can: an end notice (see `wire`) in place of the next message, when this side's byte
/// stream ends at a message boundary (`at_boundary`) and carries nothing else the client
/// parses (read receipts, which a sendfile or splice stream's receiver sends, do not keep
/// to message boundaries). The notice goes out from the lingering thread, never blocking
/// the caller, after which the socket closes; with no notice it closes at once, and the
/// client reports what it saw.
pub(super) fn end_abnormally(
    shared: &Shared<'_>,
    stream: &TcpStream,
    hello: &Hello,
    at_boundary: bool,
    error: &Error,
) {
    let spec = server_flow_spec(hello);
    let receipts = path(hello.mode).file && spec.receives_stream();
    if !at_boundary || receipts {
        return;
    }
    let end = if shared.stop.load(Ordering::Relaxed) {
        wire::End {
            code: wire::EndCode::ShuttingDown,
            reason: "SIGINT or SIGTERM".into(),
        }
    } else {
        match error {
            Error::Internal(what) => wire::End {
                code: wire::EndCode::Bug,
                reason: what.clone(),
            },
            Error::Peer(what) if what == WORKER_STOPPED => wire::End {
                code: wire::EndCode::WorkerStopped,
                reason: String::new(),
            },
            e => wire::End {
                code: wire::EndCode::Failed,
                reason: e.to_string(),
            },
        }
    };
    let size = hello.size as usize;
    let notice = end.notice(size.min(wire::HEADER_LEN + 2 + wire::MAX_REASON));
    let pad = size.saturating_sub(notice.len());
    if let Ok(copy) = stream.try_clone() {
        let _ = shared
            .lingering
            .lock()
            .expect("lingering lock")
            .send(Lingering::new(copy, notice, pad));
    }
}

/// The error of a connection whose uring worker stopped before it could take it.
const WORKER_STOPPED: &str = "its uring worker has stopped";

/// The socket options a connection's hello calls for, on either engine, and the server's
/// own `--busy-poll` on the syscall engine (uring's is on its rings): what the kernel
/// granted.
pub(super) fn prepare_socket(
    stream: &TcpStream,
    hello: &Hello,
    backend: Backend,
    busy_poll_us: Option<u32>,
) -> Result<Option<BusyPoll>, Error> {
    stream
        .set_nodelay(nodelay_for(hello, stream))
        .map_err(|e| Error::io("TCP_NODELAY", e))?;
    // The server sends in echo, and in a stream that flows its way.
    let sends = hello.workload == Workload::Echo || hello.direction.server_sends();
    if backend == Backend::Syscall && sends {
        backend::syscall::prepare(stream.as_fd(), hello.mode)?;
    }
    match (backend, busy_poll_us) {
        (Backend::Syscall, Some(us)) => {
            crate::polling::set_socket_busy_poll(stream.as_raw_fd(), us).map(Some)
        }
        _ => Ok(None),
    }
}

/// The syscall backend's thread per client.
pub(super) fn serve_syscall(shared: &Shared<'_>, accepted: Accepted<'_>) {
    let Accepted { spec, client } = accepted;
    let Client {
        slot,
        mut stream,
        peer,
        id,
        hello,
    } = client;
    let cpu = paired_cpu(shared, &hello).unwrap_or_else(|| shared.plan.cpu(slot.place));
    let thread = format!("conn {id}");
    // Started at the start line, read afresh when the warm-up ends (`--omit`).
    let meter = std::cell::RefCell::new(None);
    let mut busy_poll = None;
    let result = placement::apply(cpu)
        .and_then(|()| {
            busy_poll = prepare_socket(
                &stream,
                &hello,
                Backend::Syscall,
                shared.config.busy_poll_us,
            )?;
            Ok(())
        })
        .and_then(|()| {
            backend::syscall::run(
                spec,
                shared.config.idle_timeout,
                shared.stop,
                || {
                    *meter.borrow_mut() = Some(ConnMeter::start(shared, &thread, None));
                    Ok(())
                },
                || {
                    if let Some(m) = meter.borrow_mut().as_mut() {
                        m.restart(shared, None);
                    }
                },
            )
        });
    let mut slot = slot;
    if result.as_ref().is_ok_and(|c| c.flow.leaked) {
        slot.forfeit_budget();
    }
    let event = match result {
        Ok(conn) => {
            let samples = meter
                .into_inner()
                .map_or_else(Vec::new, |mut m| m.finish(shared, None));
            match conn.error {
                Some(e) => {
                    end_abnormally(shared, &stream, &hello, conn.at_boundary, &e);
                    ServerEvent::Failed {
                        id,
                        peer,
                        error: e.to_string(),
                    }
                }
                None => {
                    let placement = Placement { thread, cpu };
                    let report = peer_report(
                        shared,
                        Backend::Syscall,
                        id,
                        &stream,
                        &conn.flow,
                        None,
                        samples,
                        placement,
                        busy_poll,
                    );
                    // sendfile and splice may have left the socket O_NONBLOCK; this
                    // connection's own thread writes its report under the socket's send
                    // timeout (the engine's last slice, or the handshake's).
                    let _ = stream.set_nonblocking(false);
                    finish_connection(&mut stream, peer, report)
                }
            }
        }
        Err(e) => {
            // Nothing of the run was sent: the connection failed before it.
            end_abnormally(shared, &stream, &hello, true, &e);
            ServerEvent::Failed {
                id,
                peer,
                error: e.to_string(),
            }
        }
    };
    drop(slot);
    (shared.on_event)(event);
}

/// The uring engine's options, from the server's configuration.
pub(super) fn uring_opts(config: &ServerConfig) -> ServeOpts {
    // A server that serves any mode gets what any may need.
    let may = |f: fn(Mode) -> bool| config.mode.map_or(true, f);
    ServeOpts {
        workers: config.workers(),
        files: config.max_clients as u32,
        fixed_buffers: may(|m| path(m).fixed),
        multishot: config.uring_recv == UringRecv::Multishot && may(|m| path(m).wire),
        idle_timeout: config.idle_timeout,
        sqpoll: config.sqpoll,
        busy_poll_us: config.busy_poll_us,
    }
}

/// Hands an accepted client to a uring worker.
pub(super) fn hand_to_worker<'s>(
    shared: &Shared<'s>,
    dispatch: &Dispatch<'_, Served<'s>>,
    accepted: Accepted<'s>,
) {
    let Accepted { spec, client } = accepted;
    if let Err(e) = prepare_socket(&client.stream, &client.hello, Backend::Uring, None) {
        end_abnormally(shared, &client.stream, &client.hello, true, &e);
        let (id, peer) = (client.id, client.peer);
        drop(client);
        (shared.on_event)(ServerEvent::Failed {
            id,
            peer,
            error: e.to_string(),
        });
        return;
    }
    let incoming = Incoming {
        spec,
        worker: client
            .slot
            .fixed_worker()
            .or_else(|| paired_worker(shared, &client.hello)),
        conn: Served {
            client,
            meter: None,
        },
    };
    if let Err(back) = dispatch(incoming) {
        let client = &back.conn.client;
        let error = Error::Peer(WORKER_STOPPED.into());
        end_abnormally(shared, &client.stream, &client.hello, true, &error);
        let (id, peer) = (client.id, client.peer);
        drop(back);
        (shared.on_event)(ServerEvent::Failed {
            id,
            peer,
            error: error.to_string(),
        });
    }
}

/// What the server keeps beside a connection a uring worker serves.
pub(crate) struct Served<'s> {
    pub(super) client: Client<'s>,
    /// Readings taken when the connection joined its worker.
    pub(super) meter: Option<ConnMeter>,
}

/// What the server keeps per uring worker thread.
pub(crate) struct WorkerState {
    pub(super) name: String,
    pub(super) cpu: Option<usize>,
    /// This worker's counters (per-thread scope): they run for its whole life; each
    /// connection reads them when it joins and when it leaves.
    pub(super) set: Option<CounterSet>,
}

impl<'s> ServeHost for Shared<'s> {
    type Conn = Served<'s>;
    type Worker = WorkerState;

    fn worker_started(&self, worker: usize) -> Result<WorkerState, Error> {
        let cpu = self.plan.cpu(worker);
        placement::apply(cpu)?;
        let mut set = self.metering.thread_set();
        if let Some(s) = set.as_mut() {
            s.enable();
        }
        Ok(WorkerState {
            name: format!("worker {worker}"),
            cpu,
            set,
        })
    }

    fn joined(&self, worker: &mut WorkerState, conn: &mut Served<'s>, ring: IoStats) {
        let running = Running {
            io: ring,
            set: worker.set.as_mut(),
        };
        conn.meter = Some(ConnMeter::start(self, &worker.name, Some(running)));
    }

    fn warmed(&self, worker: &mut WorkerState, conn: &mut Served<'s>, ring: IoStats) {
        let running = Running {
            io: ring,
            set: worker.set.as_mut(),
        };
        if let Some(m) = conn.meter.as_mut() {
            m.restart(self, Some(running));
        }
    }

    fn retired(
        &self,
        worker: &mut WorkerState,
        conn: Served<'s>,
        report: ConnReport,
        ring: IoStats,
        setup: &RingSetup,
    ) {
        let Served { mut client, meter } = conn;
        let (id, peer) = (client.id, client.peer);
        if report.flow.leaked {
            client.slot.forfeit_budget();
        }
        let event = match report.error {
            Some(e) => {
                end_abnormally(self, &client.stream, &client.hello, report.at_boundary, &e);
                ServerEvent::Failed {
                    id,
                    peer,
                    error: e.to_string(),
                }
            }
            None => {
                let running = Running {
                    io: ring,
                    set: worker.set.as_mut(),
                };
                let samples = meter.map_or_else(Vec::new, |mut m| m.finish(self, Some(running)));
                let placement = Placement {
                    thread: worker.name.clone(),
                    cpu: worker.cpu,
                };
                let peer_report = peer_report(
                    self,
                    Backend::Uring,
                    id,
                    &client.stream,
                    &report.flow,
                    Some(setup.clone()),
                    samples,
                    placement,
                    None,
                );
                // Never block the worker on one client: a client that does not read
                // loses its report, not everybody's progress.
                let _ = client.stream.set_nonblocking(true);
                finish_connection(&mut client.stream, peer, peer_report)
            }
        };
        // Buffers first, then the slot and the socket; only then the log line, so
        // whoever reads it may take the slot.
        drop(report.flow);
        drop(client);
        (self.on_event)(event);
    }

    fn notice(&self, text: String) {
        (self.on_event)(ServerEvent::Notice(text));
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}
