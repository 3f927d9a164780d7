//! Records built in code for the tests of the sweep and the report.

use engine::{Backend, Mode, Record, Warning, WarningKind};

/// A record of one point with the given throughput; everything else from
/// `Record::example()` (every counter present; each side's own CPU time, 1 ms user and
/// 2 ms system; the machine's figure) but its warnings: a test record is trustworthy unless
/// the test gives it a warning ([`warn`]).
pub fn record(engine: Backend, mode: Mode, size: usize, threads: usize, gbps: f64) -> Record {
    let mut r = Record::example();
    r.warnings.clear();
    r.config.backend = engine;
    r.config.mode = mode;
    r.config.size = size;
    r.config.threads = threads;
    // The example shows a non-default receive path and polling; a test point receives by
    // copying and polls nothing.
    r.config.rx = engine::RxMode::Copy;
    r.config.sqpoll = None;
    r.config.busy_poll_us = None;
    r.summary.threads = threads;
    r.summary.throughput_gbps = gbps;
    r.summary.one_way_gbps = Some(gbps / 2.0);
    r.client.backend = engine;
    for side in [Some(&mut r.client), r.server.as_mut()]
        .into_iter()
        .flatten()
    {
        if let Some(own) = side.own_cpu.as_mut() {
            own.threads = threads;
        }
    }
    r
}

/// `r` with one more warning.
pub fn warn(mut r: Record, kind: WarningKind, text: &str) -> Record {
    r.warnings.push(Warning {
        kind,
        text: text.into(),
    });
    r
}
