//! Records built in code for the tests of the sweep and the report.

use engine::{Backend, Mode, Record};

/// A record of one point with the given throughput; everything else from
/// `Record::example()` (every counter present).
pub fn record(engine: Backend, mode: Mode, size: usize, threads: usize, gbps: f64) -> Record {
    let mut r = Record::example();
    r.config.backend = engine;
    r.config.mode = mode;
    r.config.size = size;
    r.config.threads = threads;
    r.summary.threads = threads;
    r.summary.throughput_gbps = gbps;
    r.client.backend = engine;
    r
}
