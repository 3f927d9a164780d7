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
    // And runs a closed loop: `rate` makes an open-loop test point.
    r.config.rate = None;
    r.rate = None;
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
        // Both sides send in the example's echo, each the mode's flags on its engine.
        side.send_flags = mode.send_flags(side.backend);
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

/// `r` run open loop at `rate` messages a second, of which it sent `achieved` a second,
/// with `held_back` messages held back and round trips of `p50` and `p99` µs.
pub fn at_rate(mut r: Record, rate: u64, achieved: f64, p50: f64, p99: f64) -> Record {
    r.config.rate = Some(rate as f64);
    r.config.depth = engine::config::RATE_DEPTH;
    let mut lag = engine::Latency::default();
    lag.record(std::time::Duration::from_micros(2));
    r.rate = Some(engine::RateReport::new(
        rate as f64,
        r.config.total_connections(),
        achieved,
        0,
        &lag,
    ));
    if let Some(l) = r.latency.as_mut() {
        l.p50_us = p50;
        l.p99_us = p99;
    }
    r
}
