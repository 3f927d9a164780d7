//! Readings around each connection: of the thread that served it (its own, or a uring
//! worker's it shares) — its calls, its counters, its own CPU time — and of the server's
//! CPUs. Both ends are read on the serving thread, which alone can read its CPU time.

use super::*;

/// What a thread that serves many connections keeps running across them (a uring
/// worker): its ring's cumulative calls, and its counter set when counting per thread.
pub(crate) struct Running<'x> {
    pub io: IoStats,
    pub set: Option<&'x mut CounterSet>,
}

/// Readings around one connection: of the serving thread (its own counters, or the
/// figures of a thread it shares) and of the server's CPUs.
pub(crate) struct ConnMeter {
    pub(super) thread: String,
    /// A set opened for this connection's own thread (syscall).
    pub(super) own: Option<CounterSet>,
    pub(super) start: Totals,
    pub(super) core_start: Option<RawCounts>,
}

impl ConnMeter {
    /// Starts metering a connection served by `thread`: a thread of its own (`running`
    /// is `None`: a per-thread set is opened and enabled now) or a shared one.
    pub fn start(shared: &Shared<'_>, thread: &str, running: Option<Running<'_>>) -> ConnMeter {
        let (own, start) = match running {
            Some(r) => (
                None,
                Totals {
                    io: r.io,
                    counters: r.set.map(|s| s.read()),
                    cpu: ThreadClock::now(),
                },
            ),
            None => {
                let mut own = shared.metering.thread_set();
                let counters = own.as_mut().map(|s| {
                    let r = s.read();
                    s.enable();
                    r
                });
                (
                    own,
                    Totals {
                        io: IoStats::default(),
                        counters,
                        cpu: ThreadClock::now(),
                    },
                )
            }
        };
        ConnMeter {
            thread: thread.to_owned(),
            own,
            start,
            core_start: shared.metering.core_reading(),
        }
    }

    /// Starts metering again from now (the flow left its warm-up, `--omit`): the serving
    /// thread's counters, calls and CPU time, and the server's CPUs, are read afresh.
    pub fn restart(&mut self, shared: &Shared<'_>, running: Option<Running<'_>>) {
        self.start = self.reading(running, false);
        self.core_start = shared.metering.core_reading();
    }

    /// The serving thread's figures now: the shared thread's (`running`), or this
    /// connection's own set's, which stops counting first when `last`.
    fn reading(&mut self, running: Option<Running<'_>>, last: bool) -> Totals {
        match running {
            Some(r) => Totals {
                io: r.io,
                counters: r.set.map(|s| s.read()),
                cpu: ThreadClock::now(),
            },
            None => Totals {
                io: IoStats::default(),
                counters: self.own.as_mut().map(|s| {
                    if last {
                        s.disable();
                    }
                    s.read()
                }),
                cpu: ThreadClock::now(),
            },
        }
    }

    /// Ends metering and returns the samples for the connection's report.
    pub fn finish(&mut self, shared: &Shared<'_>, running: Option<Running<'_>>) -> Vec<Sample> {
        let end = self.reading(running, true);
        let start = std::mem::take(&mut self.start);
        let mut samples = Vec::new();
        if start.counters.is_some() || start.cpu.is_some() || start.io != end.io {
            samples.push(Sample {
                key: self.thread.clone(),
                start,
                end,
            });
        }
        if let (Some(a), Some(b)) = (self.core_start.take(), shared.metering.core_reading()) {
            let totals = |counters| Totals {
                io: IoStats::default(),
                counters: Some(counters),
                cpu: None,
            };
            samples.push(Sample {
                key: CORE_KEY.into(),
                start: totals(a),
                end: totals(b),
            });
        }
        samples
    }
}
