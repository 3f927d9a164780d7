//! The client: connect and handshake every connection, run the measured interval on every
//! thread at once, collect both sides' figures into one [`Record`].
//!
//! Everything that can fail before measuring — resolving, connecting, the handshake, socket
//! options — happens on the calling thread first, so a refused or unreachable server
//! costs nothing and leaves no thread behind.

use std::cell::RefCell;
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use crate::backend;
use crate::backend::uring::RingOpts;
use crate::config::{auto_nodelay, Backend, ClientConfig, CounterScope, UringRecv, Valid};
use crate::conn::{ConnSpec, STOP_GRACE};
use crate::counters::{CounterSet, Metering, RawCounts};
use crate::cputime::{tick_ns, CpuSpan, StatReading, SystemCpu, ThreadClock};
use crate::error::Error;
use crate::live::{Interval, LiveCounters, Sampler};
use crate::message::{Layout, Template};
use crate::path::path;
use crate::placement::{self, available_cpus, Placement, Side};
use crate::polling::{napi_id, set_socket_busy_poll, BusyPoll};
use crate::pool::PoolPlan;
use crate::record::{Record, RunNotes, SideCounts, ThreadResult};
use crate::stats::PeerReport;
use crate::tcpinfo::TcpInfo;
use crate::vocab::{Direction, Role, Workload};
use crate::wire::{self, Frame, Hello, ReadError, WireError};
use crate::workload::{FlowSpec, Schedule};

/// What a client reports as it runs.
#[derive(Debug)]
pub enum ClientEvent {
    /// Something the user should know that does not stop the run (counters this machine
    /// lacks, a counting scope that was refused).
    Notice(String),
    /// Every connection is up and past its handshake; the measured interval starts when
    /// the callback returns, so a caller may hold it there (an agent waits for its
    /// controller's go, so that several hosts start together).
    Connected { connections: usize },
    /// A worker thread entered the measured interval.
    ThreadStarted { thread: usize },
    /// `--interval`: what every thread did over the last interval, sent from a reporter
    /// thread while the run goes (and once more for the stretch after the last one).
    Interval(Interval),
}

/// A connection past its handshake.
struct Connection {
    stream: TcpStream,
    /// `--busy-poll` as granted on its socket (syscall engine).
    busy_poll: Option<BusyPoll>,
}

/// Runs one client measurement and returns its record.
pub fn run_client(
    config: &ClientConfig,
    on_event: &(dyn Fn(ClientEvent) + Sync),
) -> Result<Record, Error> {
    run_client_until(config, &AtomicBool::new(false), on_event)
}

/// Runs one client measurement, ending it early once `stop` is set (SIGINT/SIGTERM):
/// nothing new is sent, what is outstanding is collected, the server's figures are read,
/// and the record is marked interrupted. Set before the measured interval begins, `stop`
/// ends the run with [`Error::Interrupted`].
pub fn run_client_until(
    config: &ClientConfig,
    stop: &AtomicBool,
    on_event: &(dyn Fn(ClientEvent) + Sync),
) -> Result<Record, Error> {
    run_valid_client_until(config.clone().validate()?, stop, on_event)
}

/// [`run_client_until`] for a configuration the caller has already validated (the client
/// binary does, so that it prints its banner only for flags the run will take).
pub fn run_valid_client_until(
    config: Valid<ClientConfig>,
    stop: &AtomicBool,
    on_event: &(dyn Fn(ClientEvent) + Sync),
) -> Result<Record, Error> {
    if config.backend == Backend::Uring {
        backend::uring::check_kernel(Some(config.mode))?;
    }
    let addr = resolve(&config)?;
    let plan = placement::plan(&config.cpus, Side::Client, config.threads, available_cpus())?;
    let threads = connect_all(&config, addr, stop)?;
    let local = threads
        .first()
        .and_then(|t| t.first())
        .and_then(|c| c.stream.local_addr().ok())
        .map(|a| a.ip());
    let mut config = config;
    let nodelay = config.nodelay.unwrap_or_else(|| {
        let mss = max_segment(&threads[0][0].stream).unwrap_or(usize::MAX);
        auto_nodelay(config.workload, config.mode, config.size, mss)
    });
    config.resolve_nodelay(nodelay);
    for conn in threads.iter().flatten() {
        conn.stream
            .set_nodelay(nodelay)
            .map_err(|e| Error::io("TCP_NODELAY", e))?;
    }
    if stop.load(Ordering::Relaxed) {
        return Err(Error::Interrupted);
    }
    on_event(ClientEvent::Connected {
        connections: config.total_connections(),
    });
    // The callback may hold the start (an agent waits there for its controller's go), and
    // a stop may come while it does.
    if stop.load(Ordering::Relaxed) {
        return Err(Error::Interrupted);
    }
    let metering = Metering::new(config.counters, &plan.distinct());
    for notice in plan.note.iter().chain(&metering.notices) {
        on_event(ClientEvent::Notice(notice.clone()));
    }

    let template = Template::new(Layout::new(config.size));
    // The workers and this thread, which takes the per-CPU and the machine's readings
    // around the run: the start once all are at the start line and before any is let go,
    // the machine's end by the last worker to finish its flows (the end of the measured
    // interval, before the server's reports are awaited).
    let line = StartLine::new(config.threads + 1);
    let abort = AtomicBool::new(false);
    let measuring = AtomicUsize::new(config.threads);
    let system_end = OnceLock::new();
    let flows_end = OnceLock::new();
    // `--interval`: each thread's live counts, for the reporter.
    let live: Vec<Arc<LiveCounters>> = if config.interval.is_zero() {
        Vec::new()
    } else {
        (0..config.threads).map(|_| Arc::default()).collect()
    };
    // The reporter's own handle on every connection, for their TCP_INFO at each look:
    // open until it is done, whenever the threads close theirs.
    let sockets: Vec<Vec<TcpStream>> = if live.is_empty() {
        Vec::new()
    } else {
        threads
            .iter()
            .map(|conns| conns.iter().map(|c| c.stream.try_clone()).collect())
            .collect::<Result<_, _>>()
            .map_err(|e| Error::io("duplicating a socket for the interval reporter", e))?
    };
    let started = SystemTime::now();
    let (results, core, system_start, intervals) = std::thread::scope(|scope| {
        let handles: Vec<_> = threads
            .into_iter()
            .enumerate()
            .map(|(thread, conns)| {
                let ctx = ThreadContext {
                    thread,
                    cpu: plan.cpu(thread),
                    config: &config,
                    template: &template,
                    line: &line,
                    abort: &abort,
                    stop,
                    metering: &metering,
                    measuring: &measuring,
                    system_end: &system_end,
                    flows_end: &flows_end,
                    live: live.get(thread).cloned(),
                    on_event,
                };
                scope.spawn(move || run_thread(ctx, conns))
            })
            .collect();
        line.ready.wait();
        let omit = config.omit;
        let mut system_start = omit.is_zero().then(StatReading::now).flatten();
        let mut core_start = omit.is_zero().then(|| metering.core_reading()).flatten();
        line.go.wait();
        let go = Instant::now();
        let (done, finished) = mpsc::channel::<()>();
        let reporter = (!live.is_empty()).then(|| {
            let (live, flows_end) = (&live, &flows_end);
            let clock = IntervalClock::new(go, config.interval, omit);
            scope.spawn(move || {
                report_intervals(live, sockets, clock, finished, flows_end, on_event)
            })
        });
        if !omit.is_zero() {
            // The machine's readings start where the measured interval does, after the
            // warm-up (unless every worker is done before it ends).
            while go.elapsed() < omit && measuring.load(Ordering::Acquire) > 0 {
                std::thread::sleep((omit - go.elapsed().min(omit)).min(WARM_UP_POLL));
            }
            system_start = StatReading::now();
            core_start = metering.core_reading();
        }
        let results: Vec<Result<ThreadResult, Error>> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect();
        let core = core_start
            .zip(metering.core_reading())
            .map(|(start, end)| end.since(&start));
        drop(done);
        let intervals = reporter
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .unwrap_or_default();
        (results, core, system_start, intervals)
    });
    let results = results.into_iter().collect::<Result<Vec<_>, _>>()?;
    let system = match (system_start, system_end.into_inner().flatten()) {
        (Some(start), Some(end)) => Some(SystemCpu::between(&start, &end, tick_ns())),
        _ => None,
    };
    let incomplete: Vec<String> = results
        .iter()
        .filter_map(|t| t.incomplete.clone())
        .collect();
    let counters = match metering.scope {
        CounterScope::Off => None,
        CounterScope::Core => core,
        CounterScope::Thread => results
            .iter()
            .map(|t| t.counters.clone().unwrap_or_default())
            .reduce(|mut a, b| {
                a.merge(&b);
                a
            }),
    };
    let client = SideCounts {
        scope: metering.scope,
        counters,
        missing: metering.missing.clone(),
        placement: results
            .iter()
            .map(|t| Placement {
                thread: format!("client {}", t.thread),
                cpu: t.cpu,
            })
            .collect(),
        own_cpu: CpuSpan::sum(results.iter().filter_map(|t| t.own_cpu)),
        cpus_available: Some(available_cpus().len()).filter(|&n| n > 0),
    };
    let notes = RunNotes {
        interrupted: stop.load(Ordering::Relaxed),
        planned: config.duration,
        count: config.message_count(),
        fallbacks: plan
            .note
            .iter()
            .chain(&metering.fallbacks)
            .cloned()
            .chain(omit_caveats(&config))
            .collect(),
        incomplete,
        pace: config
            .rate
            .map(|r| Duration::from_secs_f64(config.total_connections() as f64 / r)),
    };
    let mut record = Record::new(
        config.into_inner(),
        addr.to_string(),
        started,
        &results,
        client,
        notes,
        system,
    );
    record.intervals = intervals;
    // Described after the run, so the measured interval never pays for it.
    record.client.host = local.map(crate::host::HostInfo::for_address);
    Ok(record)
}

/// How often the run's main thread looks whether the warm-up is over or every worker done.
const WARM_UP_POLL: Duration = Duration::from_millis(20);

/// What `--omit` still counts: the figures read where the warm-up cannot be cut out.
/// Everything else is cut: the client's counts, CPU time, counters (per thread, read
/// again when its flows leave the warm-up; per core, read after it) and ring calls, and
/// the server's, which the hello tells of the warm-up.
fn omit_caveats(config: &ClientConfig) -> Vec<String> {
    if config.omit.is_zero() {
        return Vec::new();
    }
    vec![
        "--omit: TCP_INFO's counters (retransmits, bytes acked and received, busy and \
         limited times) are the kernel's for each connection's life, the warm-up included"
            .to_string(),
    ]
}

/// When the reporter looks: every interval from the start, through the warm-up, with
/// one look where it ends; then every interval from there (as iperf3 does).
struct IntervalClock {
    go: Instant,
    every: Duration,
    omit_end: Instant,
    next: Instant,
}

impl IntervalClock {
    fn new(go: Instant, every: Duration, omit: Duration) -> IntervalClock {
        let omit_end = go + omit;
        let next = if omit.is_zero() {
            go + every
        } else {
            (go + every).min(omit_end)
        };
        IntervalClock {
            go,
            every,
            omit_end,
            next,
        }
    }

    /// The next look, and whether the interval it ends lies in the warm-up.
    fn next(&self) -> (Instant, bool) {
        (
            self.next,
            self.next <= self.omit_end && self.omit_end > self.go,
        )
    }

    fn advance(&mut self) {
        self.next = if self.next < self.omit_end {
            (self.next + self.every).min(self.omit_end)
        } else {
            self.next + self.every
        };
    }

    /// Seconds from the start to `t`.
    fn secs(&self, t: Instant) -> f64 {
        t.saturating_duration_since(self.go).as_secs_f64()
    }
}

/// The reporter: samples every thread's live counts at each look until `finished`
/// says the workers are done, then once more for what came after the last look (when
/// anything did), sending each interval as an event and returning them all.
fn report_intervals(
    live: &[Arc<LiveCounters>],
    sockets: Vec<Vec<TcpStream>>,
    mut clock: IntervalClock,
    finished: mpsc::Receiver<()>,
    flows_end: &OnceLock<Instant>,
    on_event: &(dyn Fn(ClientEvent) + Sync),
) -> Vec<Interval> {
    let mut sampler = Sampler::new(live.len(), clock.omit_end - clock.go, sockets);
    let mut out = Vec::new();
    let mut last = clock.go;
    loop {
        let (at, omitted) = clock.next();
        match finished.recv_timeout(at.saturating_duration_since(Instant::now())) {
            Err(RecvTimeoutError::Timeout) => {
                let now = Instant::now();
                let interval = sampler.take(live, clock.secs(now), omitted);
                on_event(ClientEvent::Interval(interval.clone()));
                out.push(interval);
                last = now;
                clock.advance();
            }
            Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    // The stretch from the last look to the end of the flows.
    let end = flows_end
        .get()
        .copied()
        .unwrap_or_else(Instant::now)
        .max(last);
    let (_, omitted) = clock.next();
    let interval = sampler.take(live, clock.secs(end), omitted && end <= clock.omit_end);
    let counted = interval.sum.msgs_sent + interval.sum.msgs_received > 0;
    if counted || end.saturating_duration_since(last) >= clock.every / 10 {
        on_event(ClientEvent::Interval(interval.clone()));
        out.push(interval);
    }
    out
}

fn resolve(config: &ClientConfig) -> Result<SocketAddr, Error> {
    let name = crate::vocab::host_port(&config.host, config.port);
    // A --spec may carry an IPv6 address in brackets, as the client's --host takes it.
    let host = config.host.trim_start_matches('[').trim_end_matches(']');
    (host, config.port)
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

/// Connects and handshakes every connection, grouped by thread. Runs on a thread of its
/// own so that a stop can end the wait at once (connecting and the hello's answer can
/// each take up to the connect timeout); the connections are closed if it comes.
fn connect_all(
    config: &ClientConfig,
    addr: SocketAddr,
    stop: &AtomicBool,
) -> Result<Vec<Vec<Connection>>, Error> {
    let (tx, rx) = std::sync::mpsc::channel();
    let config = config.clone();
    std::thread::spawn(move || {
        let mut threads: Vec<Vec<Connection>> = Vec::with_capacity(config.threads);
        let result = (|| {
            for t in 0..config.threads {
                let mut conns = Vec::with_capacity(config.conns);
                for c in 0..config.conns {
                    let flow = (t * config.conns + c) as u32;
                    conns.push(connect(&config, addr, flow, t as u32)?);
                }
                threads.push(conns);
            }
            Ok(threads)
        })();
        let _ = tx.send(result);
    });
    loop {
        match rx.recv_timeout(std::time::Duration::from_millis(50)) {
            Ok(result) => return result,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if stop.load(Ordering::Relaxed) {
                    return Err(Error::Interrupted);
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(Error::Internal("the connecting thread died".into()))
            }
        }
    }
}

/// Connects, handshakes and prepares one connection's socket; `thread` runs it.
fn connect(
    config: &ClientConfig,
    addr: SocketAddr,
    flow: u32,
    thread: u32,
) -> Result<Connection, Error> {
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
        // The server does not use it: the client ends the run. With a count
        // (`--messages`, `-n`) it is the run's cap.
        duration_ms: config.duration.as_millis().min(u32::MAX as u128) as u32,
        flow,
        thread,
        rx: config.rx,
        direction: config.direction,
        // A part of a millisecond counts as one: the server never cuts less than we do.
        omit_ms: config
            .omit
            .as_nanos()
            .div_ceil(1_000_000)
            .min(u32::MAX as u128) as u32,
    });
    wire::write_frame(&mut stream, &hello).map_err(io("sending the hello"))?;
    match wire::read_frame_by(&stream, Instant::now() + config.connect_timeout) {
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
    let mut busy_poll = None;
    if config.backend == Backend::Syscall {
        backend::syscall::prepare(stream.as_fd(), config.mode)?;
        if let Some(us) = config.busy_poll_us {
            busy_poll = Some(set_socket_busy_poll(stream.as_raw_fd(), us)?);
        }
    }
    Ok(Connection { stream, busy_poll })
}

/// The connection's maximum segment size (TCP_MAXSEG).
pub(crate) fn max_segment(stream: &impl AsRawFd) -> Option<usize> {
    let mut mss: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: a connected socket and a c_int-sized out parameter.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_MAXSEG,
            (&mut mss as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    (rc == 0 && mss > 0).then_some(mss as usize)
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

/// The client side of connection `flow`'s workload (flows numbered over every thread).
fn client_flow_spec(config: &ClientConfig, flow: usize) -> FlowSpec {
    FlowSpec {
        role: Role::Client,
        workload: config.workload,
        mode: config.mode,
        verify: config.verify,
        depth: config.depth,
        duration: config.duration,
        omit: config.omit,
        rx: config.rx,
        direction: config.direction,
        schedule: config
            .rate
            .map(|r| Schedule::new(r, config.total_connections(), flow)),
        messages: config.messages_of(flow),
    }
}

/// What one client worker thread needs.
struct ThreadContext<'a> {
    thread: usize,
    cpu: Option<usize>,
    config: &'a ClientConfig,
    template: &'a Arc<Template>,
    line: &'a StartLine,
    abort: &'a AtomicBool,
    stop: &'a AtomicBool,
    metering: &'a Metering,
    /// Workers still in their measured interval; the last one out reads the machine.
    measuring: &'a AtomicUsize,
    system_end: &'a OnceLock<Option<StatReading>>,
    /// When the last worker finished its flows.
    flows_end: &'a OnceLock<Instant>,
    /// `--interval`: where this thread's flows count for the reporter.
    live: Option<Arc<LiveCounters>>,
    on_event: &'a (dyn Fn(ClientEvent) + Sync),
}

impl ThreadContext<'_> {
    fn start(&self, ready: Result<(), Error>) -> Result<(), Error> {
        start(self.line, self.abort, self.thread, self.on_event, ready)
    }
}

fn run_thread(ctx: ThreadContext<'_>, conns: Vec<Connection>) -> Result<ThreadResult, Error> {
    let config = ctx.config;
    let mut result = ThreadResult {
        thread: ctx.thread,
        connections: conns.len(),
        cpu: ctx.cpu,
        ..Default::default()
    };
    let pinned = placement::apply(ctx.cpu);
    if config.rate.is_some() {
        // A schedule's sleeps end on time: the default 50 µs of timer slack would be in
        // every send's lag, and so in its latency.
        // SAFETY: PR_SET_TIMERSLACK takes a value and touches no memory.
        if unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) } != 0 {
            let e = std::io::Error::last_os_error();
            (ctx.on_event)(ClientEvent::Notice(format!(
                "--rate: the thread's timer slack stays at its default \
                 (prctl PR_SET_TIMERSLACK: {e}): its sleeps may end up to 50 µs late"
            )));
        }
    }
    // Per-thread counters and the thread's own CPU time run from the start line to the
    // end of the flows only; with a warm-up (`--omit`), from its end: the counters are
    // read again when the engine says the flows left it, the clock is the flows'.
    let counting: RefCell<(Option<CounterSet>, Option<RawCounts>)> =
        RefCell::new((ctx.metering.thread_set(), None));
    let mut clock_start = None;
    let begin = |ready: Result<(), Error>| -> Result<(), Error> {
        ctx.start(ready.and(pinned))?;
        let (set, before) = &mut *counting.borrow_mut();
        if let Some(s) = set.as_mut() {
            *before = Some(s.read());
            s.enable();
        }
        clock_start = ThreadClock::now();
        Ok(())
    };
    let warmed = || {
        let (set, before) = &mut *counting.borrow_mut();
        if let Some(s) = set.as_mut() {
            *before = Some(s.read());
        }
    };
    let plan = PoolPlan::new(
        config.backend,
        config.workload,
        Role::Client,
        config.mode,
        config.size,
        config.depth,
    );
    let specs: Result<Vec<ConnSpec>, Error> = conns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let fd = c.stream.as_raw_fd();
            let flow = client_flow_spec(config, ctx.thread * config.conns + i);
            let mut spec = ConnSpec::with_template(fd, flow, plan, ctx.template.clone())?;
            if let Some(live) = &ctx.live {
                spec.flow.count_live(live.clone());
            }
            Ok(spec)
        })
        .collect();
    let reports = match (specs, config.backend) {
        (Err(e), _) => Err(begin(Err(e)).expect_err("the start line passes an error on")),
        (Ok(mut specs), Backend::Syscall) => {
            let spec = specs.pop().expect("one connection per syscall thread");
            backend::syscall::run(spec, config.io_timeout, ctx.stop, || begin(Ok(())), warmed)
                .map(|report| vec![report])
        }
        (Ok(specs), Backend::Uring) => {
            let opts = RingOpts {
                multishot: config.uring_recv == UringRecv::Multishot && path(config.mode).wire,
                timeout: config.io_timeout,
                sqpoll: config.sqpoll,
                busy_poll_us: config.busy_poll_us,
            };
            backend::uring::run_ring(specs, &opts, ctx.stop, begin, warmed).map(|ring| {
                result.stats.io += ring.io;
                result.ring = Some(ring.setup);
                ring.conns
            })
        }
    };
    let clock_end = ThreadClock::now();
    // `--omit`: the thread's CPU time runs from the end of the warm-up (the first of its
    // flows to leave it).
    if let Ok(reports) = &reports {
        let warmed = reports
            .iter()
            .filter_map(|r| r.flow.warmed_clock)
            .min_by_key(|c| c.at_ns);
        if let Some(w) = warmed {
            clock_start = Some(w);
        }
    }
    let (mut set, before) = counting.into_inner();
    if let (Some(s), Some(before)) = (set.as_mut(), before) {
        s.disable();
        result.counters = Some(s.read().since(&before));
    }
    result.own_cpu = clock_start.zip(clock_end).map(|(a, b)| b.since(&a));
    // Busy polling as granted on the sockets (syscall) or the ring (uring), with the NAPI
    // context the first socket's packets came through, now that they have.
    let granted = conns
        .first()
        .and_then(|c| c.busy_poll.clone())
        .or_else(|| result.ring.as_ref().and_then(|r| r.busy_poll.clone()));
    result.busy_poll = granted.map(|b| BusyPoll {
        napi_id: conns.first().and_then(|c| napi_id(c.stream.as_raw_fd())),
        ..b
    });
    if ctx.measuring.fetch_sub(1, Ordering::AcqRel) == 1 {
        let _ = ctx.system_end.set(StatReading::now());
        let _ = ctx.flows_end.set(Instant::now());
    }
    let mut first_error = None;
    match reports {
        Ok(reports) => {
            for r in reports {
                result.absorb(&r.flow);
                match r.error {
                    // The server's reason explains whatever the other connections saw.
                    Some(e @ Error::ServerEnded(_)) => first_error = Some(e),
                    Some(e) if !matches!(first_error, Some(Error::ServerEnded(_))) => {
                        first_error.get_or_insert(e);
                    }
                    _ => {}
                }
            }
        }
        Err(e) => first_error = Some(e),
    }
    let interrupted = ctx.stop.load(Ordering::Relaxed);
    match first_error {
        // Interrupted: what this thread measured stands; the server may not answer.
        Some(e) if interrupted && result.stats.msgs_sent + result.stats.msgs_received > 0 => {
            result.incomplete = Some(format!("thread {}: {e}", ctx.thread));
            return Ok(result);
        }
        Some(e) => {
            ctx.abort.store(true, Ordering::Relaxed);
            return Err(server_said_why(config, &conns).unwrap_or(e));
        }
        None => {}
    }
    // Once interrupted, the server gets a short grace to send its figures.
    let wait = if interrupted {
        config.io_timeout.min(STOP_GRACE)
    } else {
        config.io_timeout
    };
    // In reverse and bidir the flow shut the sending side already (its end is the
    // server's cue to end its stream).
    let half_close = config.direction == Direction::Forward;
    // Every connection's TCP_INFO before the server's figures are asked for (and the
    // sending sides closed): its state at the end of the run. A refusal leaves every
    // field missing. The interval reporter's last look takes the same readings.
    let fds: Vec<_> = conns.iter().map(|c| c.stream.as_raw_fd()).collect();
    result.tcp_info = match &ctx.live {
        Some(live) => live.read_tcp_at_end(&fds),
        None => TcpInfo::read_each(fds),
    };
    for conn in &conns {
        match server_report(conn, wait, half_close) {
            Ok(report) => result.server.push(report),
            Err(e) if interrupted => {
                result.incomplete = Some(format!("the server's figures: {e}"));
                result.server.clear();
                break;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(result)
}

/// Where the workers and the coordinating thread meet before the measured interval: all
/// are `ready`, then the coordinator takes the readings that must come before any worker
/// starts, then all `go`.
struct StartLine {
    ready: Barrier,
    go: Barrier,
}

impl StartLine {
    fn new(threads: usize) -> StartLine {
        StartLine {
            ready: Barrier::new(threads),
            go: Barrier::new(threads),
        }
    }
}

/// Meets the other threads at the start line. A thread whose setup failed still comes, so
/// nobody waits for it forever, and then everybody goes home.
fn start(
    line: &StartLine,
    abort: &AtomicBool,
    thread: usize,
    on_event: &(dyn Fn(ClientEvent) + Sync),
    ready: Result<(), Error>,
) -> Result<(), Error> {
    if ready.is_err() {
        abort.store(true, Ordering::Relaxed);
    }
    line.ready.wait();
    line.go.wait();
    ready?;
    if abort.load(Ordering::Relaxed) {
        return Err(Error::Resource(
            "another client thread failed to start; its error is reported instead".into(),
        ));
    }
    on_event(ClientEvent::ThreadStarted { thread });
    Ok(())
}

/// Half-closes the connection (unless the flow did) and reads the server's figures for it.
/// How long a failed forward stream looks for the server's end notice, over all of its
/// thread's connections.
const NOTICE_WAIT: Duration = Duration::from_millis(200);

/// A forward stream's client reads nothing from the server during the run (but for read
/// receipts, in sendfile and splice, where the server sends no notice): when its run
/// fails, the server's end notice, if one came, waits at the start of what it received.
fn server_said_why(config: &ClientConfig, conns: &[Connection]) -> Option<Error> {
    let reads_nothing = config.workload == Workload::Stream
        && config.direction == Direction::Forward
        && !path(config.mode).file;
    if !reads_nothing {
        return None;
    }
    let by = Instant::now() + NOTICE_WAIT;
    conns.iter().find_map(|conn| {
        let _ = conn.stream.set_nonblocking(false);
        match wire::read_frame_by(&conn.stream, by) {
            Ok(Frame::End(end)) => Some(Error::ServerEnded(end.describe())),
            _ => None,
        }
    })
}

fn server_report(
    conn: &Connection,
    wait: std::time::Duration,
    half_close: bool,
) -> Result<PeerReport, Error> {
    if half_close {
        conn.stream
            .shutdown(Shutdown::Write)
            .map_err(|e| Error::io("closing the sending side", e))?;
    }
    // The run may have left the socket O_NONBLOCK (sendfile and splice decide blocking by
    // it); the report is read by blocking with a deadline.
    conn.stream
        .set_nonblocking(false)
        .map_err(|e| Error::io("socket flags", e))?;
    match wire::read_frame_by(&conn.stream, Instant::now() + wait) {
        Ok(Frame::Stats(report)) => Ok(*report),
        // The server ended the run instead (its end notice: the frame, then padding).
        Ok(Frame::End(end)) => Err(Error::ServerEnded(end.describe())),
        Ok(other) => Err(WireError::Unexpected {
            expected: "stats",
            got: other.name(),
        }
        .into()),
        Err(e) => Err(read_error(e, "the server's end-of-run stats")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_clock_looks_where_the_warm_up_ends_then_starts_over() {
        let go = Instant::now();
        let ms = Duration::from_millis;
        let mut clock = IntervalClock::new(go, ms(400), ms(1000));
        let mut looks = Vec::new();
        for _ in 0..5 {
            let (at, omitted) = clock.next();
            looks.push(((at - go).as_millis(), omitted));
            clock.advance();
        }
        assert_eq!(
            looks,
            [
                (400, true),
                (800, true),
                (1000, true),
                (1400, false),
                (1800, false)
            ]
        );
        let mut plain = IntervalClock::new(go, ms(500), Duration::ZERO);
        assert_eq!(plain.next(), (go + ms(500), false));
        plain.advance();
        assert_eq!(plain.next(), (go + ms(1000), false));
    }
}
