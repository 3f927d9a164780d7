//! Fan-in: one record for a point that several client hosts ran at the same time against
//! one server, from each host's own record.
//!
//! Counts add up; rates are recomputed from the sums over the longest host's interval;
//! latency percentiles are read from the merged histograms (`latency_histogram`), never
//! averaged — a record whose percentiles came without their histogram is refused. A
//! figure that would be counted twice, or that describes one machine only, is left null
//! rather than summed into something no machine measured.

use std::collections::HashMap;

use crate::cputime::OwnCpu;
use crate::placement::Placement;
use crate::record::{
    pinned_cpus, Part, RateReport, Record, SideReport, Summary, ThreadReport, Warning,
};
use crate::stats::{FlowStats, HistogramError, Latency};
use crate::vocab::CounterScope;

/// Why records could not be merged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    #[error("no records to merge")]
    Empty,
    #[error("a host label is empty: each part needs the name of its host")]
    EmptyLabel,
    #[error("host {0} is named twice: each part must come from a different host")]
    DuplicateHost(String),
    #[error("host {0}'s record is itself a merge: merge the hosts' own records")]
    AlreadyMerged(String),
    /// The parts ran different points.
    #[error(
        "hosts {first} and {host} ran different points: {what} {first_value} on {first} but \
         {value} on {host}"
    )]
    Mismatch {
        what: &'static str,
        first: String,
        first_value: String,
        host: String,
        value: String,
    },
    #[error(
        "host {0}'s record has latency percentiles but no latency_histogram (a record from \
         before it was carried?): percentiles are merged from histograms, never averaged"
    )]
    MissingHistogram(String),
    #[error("host {host}'s latency_histogram: {source}")]
    BadHistogram {
        host: String,
        source: HistogramError,
    },
    #[error(
        "host {host}'s latency_histogram holds {histogram} round trips but its latency \
         summary counts {summary}: the record is inconsistent"
    )]
    HistogramDisagrees {
        host: String,
        histogram: u64,
        summary: u64,
    },
}

impl Record {
    /// Merges the records of one point that several client hosts ran at the same time
    /// against one server: `parts` holds each host's label and its record, in the order
    /// the merged record lists them.
    ///
    /// Refused: no parts, an empty or repeated label, a part that is itself a merge,
    /// parts of different points (workload, mode, size, backend, depth, schema version;
    /// the error names both hosts), and a part whose latency cannot be merged
    /// (percentiles without a histogram, or a histogram that is unreadable or disagrees
    /// with its summary). One part comes back unchanged but for `parts`.
    ///
    /// The merged record:
    /// - `summary`: counts, threads and connections summed; `duration_s` the longest
    ///   part's; the rates recomputed from those, as a run's are.
    /// - `latency`, `latency_histogram`: from the merged histograms.
    /// - `client`: `stats` summed, `duration_s` the longest, the derived figures
    ///   recomputed from the sums; `counters` summed where every part counted in one
    ///   scope (a counter missing from any part stays missing: a partial sum would pass
    ///   for the whole; parts counting in different scopes give none, scope `off`),
    ///   `counters_missing` their union; `own_cpu` summed (user, system, threads; the
    ///   longest interval; CPUs summed), null unless every part measured it; `cpus` and
    ///   `placement` concatenated, threads named `LABEL: client N`; `host` null (each
    ///   part's is in `parts`).
    /// - `server`: where every part kept its server's per-connection reports
    ///   (`server_reports`), computed from all of them as `Record::new` does for one host,
    ///   so that a server thread or CPU that served several hosts counts once, over its
    ///   earliest start to latest end. Otherwise the parts' server sides merged the same
    ///   way as the clients', as one host's: `cpus`
    ///   and `placement` once each, `host` the first part's. A server thread or CPU that
    ///   served several parts' connections (a uring worker; any CPU in core scope) is in
    ///   each part's own CPU time and counters over the same interval, so those are null
    ///   rather than counted twice, and so are the calls per message and completions per
    ///   reap (a shared ring's calls are in each part's `stats.io`, which stays summed).
    ///   Null unless every part has a server side: a partial sum would cover only some
    ///   of the connections.
    /// - `threads`: every part's, in part order, renumbered from 0.
    /// - `warnings`: every part's, prefixed `host LABEL: `; `interrupted` if any part
    ///   was.
    /// - `system`: null — one machine's figure; a controller cannot add machines.
    /// - `config`: the first part's, which every host ran (the point's threads are per
    ///   host, as the sweep's matrix counts them; `summary.threads` is the total);
    ///   `started_at` the earliest part's;
    ///   `kernel`, `server_addr` and `copyperf_version` the first part's.
    pub fn merge(parts: &[(String, Record)]) -> Result<Record, MergeError> {
        merge(parts)
    }
}

fn merge(parts: &[(String, Record)]) -> Result<Record, MergeError> {
    let ((first_host, first), _) = parts.split_first().ok_or(MergeError::Empty)?;
    let mut seen: Vec<&str> = Vec::new();
    for (host, r) in parts {
        if host.is_empty() {
            return Err(MergeError::EmptyLabel);
        }
        if seen.contains(&host.as_str()) {
            return Err(MergeError::DuplicateHost(host.clone()));
        }
        seen.push(host);
        if r.parts.is_some() {
            return Err(MergeError::AlreadyMerged(host.clone()));
        }
        let (x, y) = (&first.config, &r.config);
        let same = [
            (
                "schema version",
                first.schema_version.to_string(),
                r.schema_version.to_string(),
            ),
            ("workload", x.workload.to_string(), y.workload.to_string()),
            ("mode", x.mode.to_string(), y.mode.to_string()),
            ("size", x.size.to_string(), y.size.to_string()),
            ("backend", x.backend.to_string(), y.backend.to_string()),
            ("depth", x.depth.to_string(), y.depth.to_string()),
            ("threads", x.threads.to_string(), y.threads.to_string()),
            ("placement", x.cpus.to_string(), y.cpus.to_string()),
            ("receive path (rx)", x.rx.to_string(), y.rx.to_string()),
            ("rate", format!("{:?}", x.rate), format!("{:?}", y.rate)),
        ];
        if let Some((what, first_value, value)) = same.into_iter().find(|(_, a, b)| a != b) {
            return Err(MergeError::Mismatch {
                what,
                first: first_host.clone(),
                first_value,
                host: host.clone(),
                value,
            });
        }
    }
    let mut latency = Latency::default();
    for (host, r) in parts {
        latency += &histogram(host, r)?;
    }
    let list: Vec<Part> = parts
        .iter()
        .map(|(host, r)| Part {
            host: host.clone(),
            summary: r.summary,
            latency: r.latency,
            client_host: r.client.host.clone(),
            client_tcp_info: r.client.tcp_info,
        })
        .collect();
    if parts.len() == 1 {
        return Ok(Record {
            parts: Some(list),
            ..first.clone()
        });
    }

    let records = || parts.iter().map(|(_, r)| r);
    let sum = |f: fn(&Summary) -> u64| records().map(|r| f(&r.summary)).sum::<u64>();
    let summary = Summary {
        threads: records().map(|r| r.summary.threads).sum(),
        connections: records().map(|r| r.summary.connections).sum(),
        duration_s: records().map(|r| r.summary.duration_s).fold(0.0, f64::max),
        bytes_sent: sum(|s| s.bytes_sent),
        bytes_received: sum(|s| s.bytes_received),
        messages: sum(|s| s.messages),
        throughput_gbps: 0.0,
        one_way_gbps: None,
        msgs_per_s: 0.0,
        verify_errors: sum(|s| s.verify_errors),
    }
    .with_rates();

    let clients: Vec<(&str, &SideReport)> = parts
        .iter()
        .map(|(host, r)| (host.as_str(), &r.client))
        .collect();
    let servers: Option<Vec<(&str, &SideReport)>> = parts
        .iter()
        .map(|(host, r)| Some((host.as_str(), r.server.as_ref()?)))
        .collect();

    // With every connection's own report, the server side is computed as for one host:
    // a thread or CPU that served several hosts is read once, from its earliest start to
    // its latest end.
    let every_report = records().all(|r| !r.server_reports.is_empty());
    let reports: Vec<&crate::stats::PeerReport> = if every_report {
        records().flat_map(|r| &r.server_reports).collect()
    } else {
        Vec::new()
    };
    let threads = records()
        .flat_map(|r| &r.threads)
        .enumerate()
        .map(|(i, t)| ThreadReport {
            thread: i,
            ..t.clone()
        })
        .collect();
    let warnings = parts
        .iter()
        .flat_map(|(host, r)| {
            r.warnings.iter().map(move |w| Warning {
                kind: w.kind,
                text: format!("host {host}: {}", w.text),
            })
        })
        .collect();
    let config = first.config.clone();
    Ok(Record {
        schema_version: first.schema_version,
        copyperf_version: first.copyperf_version.clone(),
        // RFC 3339 UTC to the second: the earliest sorts first.
        started_at: records()
            .map(|r| &r.started_at)
            .min()
            .expect("at least one part")
            .clone(),
        kernel: first.kernel.clone(),
        config,
        server_addr: first.server_addr.clone(),
        summary,
        latency: latency.summary(),
        latency_histogram: (latency.count() > 0).then(|| latency.to_serialized()),
        client: merge_sides(&clients, Hosts::Several),
        server: if every_report {
            crate::record::server_side(&reports).map(|mut side| {
                let rx = reports.iter().find_map(|p| p.rx);
                side.set_rx(rx, first.config.verify);
                side
            })
        } else {
            servers.map(|s| merge_sides(&s, Hosts::One))
        },
        server_reports: reports.into_iter().cloned().collect(),
        threads,
        interrupted: records().any(|r| r.interrupted),
        warnings,
        system: None,
        parts: Some(list),
        // Each host's intervals run on its own clock; a merged record keeps none.
        intervals: Vec::new(),
        rate: merge_rate(parts, &summary),
    })
}

/// `--rate`: every host ran the same schedule, so the hosts' requests add up, as do
/// their sends; the send lags merge as histograms (null if any host's is missing).
fn merge_rate(parts: &[(String, Record)], summary: &Summary) -> Option<RateReport> {
    let reports: Vec<&RateReport> = parts
        .iter()
        .map(|(_, r)| r.rate.as_ref())
        .collect::<Option<_>>()?;
    let mut lag = Latency::default();
    let mut whole = true;
    for r in &reports {
        match r
            .send_lag_histogram
            .as_deref()
            .map(Latency::from_serialized)
        {
            Some(Ok(h)) => lag += &h,
            _ => whole &= r.send_lag.is_none(),
        }
    }
    let requested = reports.iter().map(|r| r.requested_per_s).sum();
    let held_back = reports.iter().map(|r| r.held_back).sum();
    let mut merged = RateReport::new(
        requested,
        summary.connections,
        summary.msgs_per_s,
        held_back,
        &lag,
    );
    if !whole {
        merged.send_lag = None;
        merged.send_lag_histogram = None;
    }
    Some(merged)
}

/// A part's round trips: its histogram, checked against its summary.
fn histogram(host: &str, r: &Record) -> Result<Latency, MergeError> {
    let Some(text) = &r.latency_histogram else {
        return match r.latency {
            Some(_) => Err(MergeError::MissingHistogram(host.into())),
            // No round trip completed, or stream: nothing to merge.
            None => Ok(Latency::default()),
        };
    };
    let latency = Latency::from_serialized(text).map_err(|source| MergeError::BadHistogram {
        host: host.into(),
        source,
    })?;
    let summary = r.latency.map_or(0, |l| l.count);
    if latency.count() != summary {
        return Err(MergeError::HistogramDisagrees {
            host: host.into(),
            histogram: latency.count(),
            summary,
        });
    }
    Ok(latency)
}

/// Whose sides are merged: the clients of several hosts, or the one server's reports to
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hosts {
    Several,
    One,
}

/// Merges one side of several parts.
///
/// - `stats` summed; `duration_s` the longest; the derived figures recomputed from the
///   sums ([`SideReport::derive`]); `backend` and `uring` the first part's.
/// - `counters` summed field by field, a counter missing from any part missing from the
///   sum (a partial sum over part of the bytes would pass for the whole); null unless
///   every part counted, in one scope. Parts counting in different scopes (one host's
///   per-core counting refused) count different things: the merged side has no counters
///   and scope `off`; each part's record keeps its own. `counters_missing` is the union.
/// - `own_cpu`: see [`merge_own_cpu`]; null unless every part measured it.
/// - Several hosts: `cpus` every part's, concatenated (CPU numbers of different
///   machines; null if any part was unpinned); `placement` concatenated, each thread
///   named `LABEL: thread`; `host` null.
/// - `tcp_info`: counters summed, gauges merged (means weighted by connections, ranges
///   widened): the connections of the parts are disjoint. Null unless every part has one.
/// - One host (the server): `cpus` and `placement` each once; `host` the first part's.
///   A thread or CPU that served several parts' connections (a uring worker serving
///   connections from two hosts; any CPU in core scope) is in each part's own CPU time
///   and counters, over the same interval: summing would count it twice, so the merged
///   side leaves those null, and the calls per message and completions per reap (a
///   shared ring's calls are in each part's `stats.io`) too.
fn merge_sides(sides: &[(&str, &SideReport)], hosts: Hosts) -> SideReport {
    let (_, first) = sides[0];
    let mut stats = FlowStats::default();
    for (_, s) in sides {
        stats += &s.stats;
    }
    let scope = first.counter_scope;
    let one_scope = sides.iter().all(|(_, s)| s.counter_scope == scope);
    let counters = sides
        .iter()
        .map(|(_, s)| s.counters.clone())
        .reduce(|a, b| {
            let (mut a, b) = (a?, b?);
            a.merge(&b);
            Some(a)
        })
        .flatten()
        .filter(|_| one_scope);
    let mut missing = None;
    for m in sides
        .iter()
        .filter_map(|(_, s)| s.counters_missing.as_ref())
    {
        let union = missing.get_or_insert_with(crate::counters::MissingCounters::default);
        for id in &m.0 {
            if !union.contains(*id) {
                union.0.push(*id);
            }
        }
    }
    let placement: Vec<Placement> = match hosts {
        Hosts::Several => sides
            .iter()
            .flat_map(|(host, s)| {
                s.placement.iter().map(move |p| Placement {
                    thread: format!("{host}: {}", p.thread),
                    cpu: p.cpu,
                })
            })
            .collect(),
        Hosts::One => {
            let mut once: Vec<Placement> = Vec::new();
            for p in sides.iter().flat_map(|(_, s)| &s.placement) {
                if !once.iter().any(|x| x.thread == p.thread) {
                    once.push(p.clone());
                }
            }
            once
        }
    };
    let cpus = match hosts {
        Hosts::Several => sides
            .iter()
            .map(|(_, s)| s.cpus.clone())
            .collect::<Option<Vec<String>>>()
            .map(|all| all.join(",")),
        Hosts::One => {
            let cpus = pinned_cpus(&placement);
            (!cpus.is_empty()).then(|| crate::placement::join(&cpus))
        }
    };
    let (shared_threads, shared_cpus) = match hosts {
        Hosts::Several => (false, false),
        Hosts::One => shared(sides),
    };
    let mut side = SideReport {
        backend: first.backend,
        stats,
        duration_s: sides.iter().map(|(_, s)| s.duration_s).fold(0.0, f64::max),
        zc_copied_fraction: None,
        kernel_calls_per_msg: None,
        cqes_per_reap: None,
        uring: first.uring.clone(),
        counter_scope: if one_scope { scope } else { CounterScope::Off },
        counters: counters.filter(|_| match scope {
            CounterScope::Core => !shared_cpus,
            _ => !shared_threads,
        }),
        counters_missing: missing.filter(|_| one_scope),
        cycles_per_byte: None,
        instructions_per_byte: None,
        own_cpu: merge_own_cpu(sides, hosts, &placement).filter(|_| !shared_threads),
        cpu_ns_per_byte: None,
        context_switches_per_msg: None,
        cpus,
        placement,
        host: match hosts {
            Hosts::Several => None,
            Hosts::One => first.host.clone(),
        },
        // Every host ran the same configuration (checked above), so received the same way.
        rx: first.rx,
        rx_content_checked: first.rx_content_checked,
        rx_mapped_fraction: None,
        send_flags: crate::record::agreed(sides.iter().map(|(_, s)| s.send_flags.as_ref()))
            .cloned(),
        busy_poll: first.busy_poll.clone(),
        // Each part's connections are its own: counters add, gauges merge weighted by
        // connections; null unless every part has one.
        tcp_info: sides
            .iter()
            .map(|(_, s)| s.tcp_info)
            .reduce(|a, b| Some(a?.merge(&b?)))
            .flatten(),
    };
    side.derive();
    if shared_threads {
        side.kernel_calls_per_msg = None;
        side.cqes_per_reap = None;
    }
    side
}

/// Whether one host's threads, or CPUs, served several parts (or may have: a part that
/// names no thread, or is unpinned, is taken to share).
fn shared(sides: &[(&str, &SideReport)]) -> (bool, bool) {
    let mut threads: HashMap<&str, usize> = HashMap::new();
    let mut cpus: HashMap<usize, usize> = HashMap::new();
    let (mut unnamed, mut unpinned) = (false, false);
    for (_, s) in sides {
        unnamed |= s.placement.is_empty();
        unpinned |= s.placement.is_empty() || s.placement.iter().any(|p| p.cpu.is_none());
        let mut names: Vec<&str> = s.placement.iter().map(|p| p.thread.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        for name in names {
            *threads.entry(name).or_default() += 1;
        }
        for cpu in pinned_cpus(&s.placement) {
            *cpus.entry(cpu).or_default() += 1;
        }
    }
    (
        unnamed || threads.values().any(|&n| n > 1),
        unpinned || cpus.values().any(|&n| n > 1),
    )
}

/// The parts' own CPU time: user and system time and threads summed, over the longest
/// part's interval (each part's interval is on its own host's clock, so they cannot be
/// joined, only compared; the parts ran at the same time). `cpus`, the most CPUs the
/// threads could occupy at once: on several hosts the parts' sum (null if any part's is);
/// on one host also at most its pinned CPUs (when every thread is pinned) and its online
/// CPUs (when known), so an upper bound — the impossible-CPU check stays on the safe
/// side. Null unless every part measured it.
fn merge_own_cpu(
    sides: &[(&str, &SideReport)],
    hosts: Hosts,
    placement: &[Placement],
) -> Option<OwnCpu> {
    let all: Vec<OwnCpu> = sides
        .iter()
        .map(|(_, s)| s.own_cpu)
        .collect::<Option<_>>()?;
    let mut cpus: Option<usize> = all.iter().map(|o| o.cpus).sum();
    // SQ polling threads are not pinned with the workers: each may take a CPU of its own.
    let sq: usize = all.iter().filter_map(|o| o.sqpoll_threads).sum();
    if hosts == Hosts::One {
        let pinned = pinned_cpus(placement);
        if !pinned.is_empty() && placement.iter().all(|p| p.cpu.is_some()) {
            cpus = cpus.map(|n| n.min(pinned.len() + sq));
        }
        if let Some(cores) = sides[0].1.host.as_ref().and_then(|h| h.cores) {
            cpus = cpus.map(|n| n.min(cores));
        }
    }
    Some(OwnCpu {
        user_ns: all.iter().map(|o| o.user_ns).sum(),
        system_ns: all.iter().map(|o| o.system_ns).sum(),
        threads: all.iter().map(|o| o.threads).sum(),
        interval_s: all.iter().map(|o| o.interval_s).fold(0.0, f64::max),
        cpus,
        sqpoll_ns: sum_some(all.iter().map(|o| o.sqpoll_ns)),
        sqpoll_threads: sum_some(all.iter().map(|o| o.sqpoll_threads)),
    })
}

/// The sum of the values present; `None` when none is.
fn sum_some<T: std::iter::Sum<T>>(values: impl Iterator<Item = Option<T>>) -> Option<T> {
    let present: Vec<T> = values.flatten().collect();
    (!present.is_empty()).then(|| present.into_iter().sum())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Mode;
    use crate::counters::{CounterId, MissingCounters};
    use crate::stats::ZeroCopyStats;
    use std::time::Duration;

    fn latency(micros: impl IntoIterator<Item = u64>) -> Latency {
        let mut l = Latency::default();
        for us in micros {
            l.record(Duration::from_micros(us));
        }
        l
    }

    /// `Record::example()` with `l` as its round trips.
    fn part(host: &str, l: &Latency) -> (String, Record) {
        let mut r = Record::example();
        r.latency = l.summary();
        r.latency_histogram = Some(l.to_serialized());
        (host.into(), r)
    }

    /// Two hosts: `a` as the example, `b` with more of everything and a longer run.
    fn two() -> Vec<(String, Record)> {
        let a = part("a", &latency(1..=100));
        let mut b = part("b", &latency((1..=300).map(|i| 1000 + i)));
        let r = &mut b.1;
        r.summary.duration_s = 2.0;
        r.summary.bytes_sent = 30_000;
        r.summary.bytes_received = 20_000;
        r.summary.messages = 7;
        r.summary.verify_errors = 2;
        r.client.stats.bytes_sent = 30_000;
        r.client.stats.bytes_received = 20_000;
        r.client.stats.zc = ZeroCopyStats {
            sends: 3,
            completions: 3,
            copied: 3,
        };
        r.client.duration_s = 2.0;
        let own = r.client.own_cpu.as_mut().unwrap();
        own.user_ns = 5_000_000;
        own.interval_s = 2.0;
        r.warnings[0].text = "b's own".into();
        r.interrupted = true;
        vec![a, b]
    }

    #[test]
    fn percentiles_come_from_the_merged_histogram() {
        let parts = two();
        let m = Record::merge(&parts).unwrap();
        let mut both = latency(1..=100);
        both += &latency((1..=300).map(|i| 1000 + i));
        assert_eq!(m.latency, both.summary());
        let l = m.latency.unwrap();
        assert_eq!(l.count, 400);
        // Averaging the hosts' p50s (~50 µs and ~1150 µs) would say ~600 µs; a quarter
        // of the round trips are below 100 µs and the rest above 1000 µs.
        assert!((1000.0..1200.0).contains(&l.p50_us), "{l:?}");
        assert!(l.p90_us > 1200.0, "{l:?}");
        let back = Latency::from_serialized(m.latency_histogram.as_deref().unwrap()).unwrap();
        assert_eq!(back.summary(), m.latency);
    }

    #[test]
    fn totals_are_the_parts_sums_and_rates_follow_them() {
        let parts = two();
        let (a, b) = (&parts[0].1, &parts[1].1);
        let m = Record::merge(&parts).unwrap();
        let s = &m.summary;
        assert_eq!(s.bytes_sent, 4096 + 30_000);
        assert_eq!(s.bytes_received, 4096 + 20_000);
        assert_eq!(s.messages, 1 + 7);
        assert_eq!(s.verify_errors, 2);
        assert_eq!((s.threads, s.connections), (2, 2));
        assert_eq!(s.duration_s, 2.0);
        assert!((s.throughput_gbps - (34_096.0 + 24_096.0) * 8.0 / 2.0 / 1e9).abs() < 1e-15);
        assert!((s.one_way_gbps.unwrap() - 34_096.0 * 8.0 / 2.0 / 1e9).abs() < 1e-15);
        assert_eq!(s.msgs_per_s, 4.0);
        // Each host's own figures, which add up to the merged ones.
        let list = m.parts.as_ref().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!((list[0].host.as_str(), list[1].host.as_str()), ("a", "b"));
        assert_eq!((list[0].summary, list[1].summary), (a.summary, b.summary));
        assert_eq!((list[0].latency, list[1].latency), (a.latency, b.latency));
        assert_eq!(list[1].client_host, b.client.host);
        let total: u64 = list.iter().map(|p| p.summary.bytes_sent).sum();
        assert_eq!(total, s.bytes_sent);
        // The client side: summed, derived figures recomputed from the sums.
        let c = &m.client;
        assert_eq!(c.stats.bytes_sent, 34_096);
        assert_eq!(c.stats.msgs_sent, 2);
        assert_eq!(c.duration_s, 2.0);
        assert_eq!(
            c.zc_copied_fraction,
            Some(0.75),
            "3 of 4 completions copied"
        );
        let own = c.own_cpu.unwrap();
        assert_eq!(
            (own.user_ns, own.system_ns, own.threads),
            (6_000_000, 5_000_000, 2)
        );
        assert_eq!(
            (own.sqpoll_ns, own.sqpoll_threads),
            (Some(1_000_000), Some(2)),
            "each host's SQ thread, summed"
        );
        // Per host one pinned worker and its SQ thread, which may take a CPU of its own.
        assert_eq!((own.interval_s, own.cpus), (2.0, Some(4)));
        assert_eq!(c.cpu_ns_per_byte, Some(11e6 / (34_096.0 + 24_096.0)));
        let counters = c.counters.as_ref().unwrap();
        assert_eq!(counters.context_switches, Some(2 * 4096));
        assert_eq!(c.context_switches_per_msg, Some(2.0 * 4096.0 / 4.0));
        assert_eq!(c.cpus.as_deref(), Some("0,0"));
        let names: Vec<&str> = c.placement.iter().map(|p| p.thread.as_str()).collect();
        assert_eq!(names, ["a: client 0", "b: client 0"]);
        assert_eq!(c.host, None);
        // Threads renumbered, warnings by host, the machine figure gone.
        let numbers: Vec<usize> = m.threads.iter().map(|t| t.thread).collect();
        assert_eq!(numbers, [0, 1]);
        let texts: Vec<&str> = m.warnings.iter().map(|w| w.text.as_str()).collect();
        assert!(texts.iter().all(|t| t.starts_with("host ")), "{texts:?}");
        // The example's own busy-poll warnings aside.
        let texts: Vec<&str> = texts
            .into_iter()
            .filter(|t| !t.contains("--busy-poll"))
            .collect();
        assert_eq!(texts, ["host a: an example fallback", "host b: b's own"]);
        assert!(m.interrupted);
        assert_eq!(m.system, None);
        assert_eq!(m.config.threads, 1, "each host's own");
        assert_eq!(m.summary.threads, 2, "all hosts'");
        assert_eq!(m.config.mode, a.config.mode);
    }

    #[test]
    fn tcp_info_counters_add_gauges_merge_and_each_part_keeps_its_own() {
        let mut parts = two();
        let b = parts[1].1.client.tcp_info.as_mut().unwrap();
        b.total_retrans = Some(5);
        b.cwnd = Some(crate::tcpinfo::Gauge {
            mean: 30.0,
            min: 30,
            max: 30,
        });
        let (a, b) = (
            parts[0].1.client.tcp_info.unwrap(),
            parts[1].1.client.tcp_info.unwrap(),
        );
        let m = Record::merge(&parts).unwrap();
        let t = m.client.tcp_info.unwrap();
        assert_eq!(t.connections, a.connections + b.connections);
        assert_eq!(t.total_retrans, Some(a.total_retrans.unwrap() + 5));
        assert_eq!(t.bytes_acked, Some(a.bytes_acked.unwrap() * 2));
        let cwnd = t.cwnd.unwrap();
        assert_eq!((cwnd.mean, cwnd.min, cwnd.max), (20.0, 10, 30));
        let list = m.parts.unwrap();
        assert_eq!(list[0].client_tcp_info, Some(a));
        assert_eq!(list[1].client_tcp_info, Some(b));
        // The server's side, computed from every connection's report, holds all of them.
        assert_eq!(m.server.unwrap().tcp_info.unwrap().connections, 2);
        // A part without TCP_INFO (an older record): the merged summary would cover only
        // some connections, so it is missing.
        parts[1].1.client.tcp_info = None;
        assert_eq!(Record::merge(&parts).unwrap().client.tcp_info, None);
    }

    #[test]
    fn a_missing_counter_stays_missing_and_missing_lists_join() {
        let mut parts = two();
        let b = &mut parts[1].1.client;
        b.counters.as_mut().unwrap().cycles = None;
        b.counters_missing = Some(MissingCounters(vec![CounterId::Instructions]));
        let m = Record::merge(&parts).unwrap();
        let c = m.client.counters.as_ref().unwrap();
        assert_eq!(c.cycles, None, "not a partial sum");
        assert_eq!(m.client.cycles_per_byte, None);
        assert_eq!(c.instructions, Some(2 * 4096));
        assert_eq!(
            m.client.counters_missing,
            Some(MissingCounters(vec![
                CounterId::Cycles,
                CounterId::Instructions
            ]))
        );
        // A part that read no counters at all: no partial sum either.
        let mut without = parts.clone();
        without[1].1.client.counters = None;
        let m = Record::merge(&without).unwrap();
        assert_eq!(
            (m.client.counters, m.client.context_switches_per_msg),
            (None, None)
        );
        // Counted in different scopes: different things, no sum.
        parts[1].1.client.counter_scope = CounterScope::Core;
        let m = Record::merge(&parts).unwrap();
        assert_eq!(m.client.counter_scope, CounterScope::Off);
        assert_eq!((m.client.counters, m.client.counters_missing), (None, None));
        // A part without its own CPU time: the sum would be partial.
        parts[0].1.client.own_cpu = None;
        let m = Record::merge(&parts).unwrap();
        assert_eq!((m.client.own_cpu, m.client.cpu_ns_per_byte), (None, None));
    }

    #[test]
    fn with_every_connections_report_the_server_is_computed_as_one_hosts() {
        // The example's server thread, "worker 0" on CPU 0, served both hosts over the
        // same interval: read once, not once per host.
        let mut parts = two();
        let one = parts[0].1.server.clone().unwrap();
        let m = Record::merge(&parts).unwrap();
        let server = m.server.as_ref().unwrap();
        assert_eq!(server.stats.bytes_sent, 2 * one.stats.bytes_sent);
        assert_eq!(server.own_cpu, one.own_cpu, "the shared worker, once");
        assert_eq!(server.counters, one.counters);
        assert_eq!(m.server_reports.len(), 2);
        // A second worker for the second host: both count.
        let r = &mut parts[1].1.server_reports[0];
        for s in &mut r.samples {
            s.key = s.key.replace("worker 0", "worker 1");
        }
        let m = Record::merge(&parts).unwrap();
        let own = m.server.as_ref().unwrap().own_cpu.unwrap();
        let single = one.own_cpu.unwrap();
        assert_eq!(own.user_ns, 2 * single.user_ns, "two workers: {own:?}");
    }

    #[test]
    fn send_flags_survive_a_merge_only_where_every_part_agrees() {
        let mut parts = two();
        let flags = |m: &Record| {
            (
                m.client.send_flags.clone(),
                m.server.as_ref().unwrap().send_flags.clone(),
            )
        };
        let nosignal = Some("MSG_NOSIGNAL".to_string());
        let m = Record::merge(&parts).unwrap();
        assert_eq!(flags(&m), (nosignal.clone(), nosignal.clone()));
        // A part from a host that did not record them: unknown for the whole.
        parts[1].1.client.send_flags = None;
        parts[1].1.server_reports[0].send_flags = None;
        assert_eq!(flags(&Record::merge(&parts).unwrap()), (None, None));
        // Without the reports the server sides merge the same way.
        for (_, r) in &mut parts {
            r.server_reports.clear();
        }
        parts[1].1.server.as_mut().unwrap().send_flags = Some("MSG_EOR".into());
        assert_eq!(flags(&Record::merge(&parts).unwrap()).1, None, "disagree");
        parts[1].1.server.as_mut().unwrap().send_flags = nosignal.clone();
        assert_eq!(flags(&Record::merge(&parts).unwrap()).1, nosignal);
    }

    #[test]
    fn without_the_reports_the_servers_shared_threads_are_not_counted_twice() {
        // Records from before the reports were kept: the server sides are all there is.
        let mut parts = two();
        for (_, r) in &mut parts {
            r.server_reports.clear();
        }
        let m = Record::merge(&parts).unwrap();
        let server = m.server.as_ref().unwrap();
        assert_eq!(
            server.stats.bytes_sent,
            2 * 4096,
            "per-connection counts add up"
        );
        assert_eq!(server.own_cpu, None);
        assert_eq!(server.counters, None);
        assert_eq!(server.kernel_calls_per_msg, None);
        assert_eq!(server.placement.len(), 1);
        assert_eq!(server.host, parts[0].1.server.as_ref().unwrap().host);
        // Distinct threads on distinct CPUs: everything adds up.
        let b = parts[1].1.server.as_mut().unwrap();
        b.placement[0].thread = "worker 1".into();
        b.placement[0].cpu = Some(1);
        b.cpus = Some("1".into());
        let m = Record::merge(&parts).unwrap();
        let server = m.server.as_ref().unwrap();
        let own = server.own_cpu.unwrap();
        assert_eq!(
            (own.user_ns, own.threads, own.cpus),
            (2_000_000, 2, Some(2))
        );
        assert_eq!(server.counters.as_ref().unwrap().cycles, Some(2 * 4096));
        assert_eq!(server.cpus.as_deref(), Some("0,1"));
        assert_eq!(server.kernel_calls_per_msg, Some(4.0 / 4.0));
        // Per-core counting on overlapping CPUs would count them twice.
        for (_, r) in &mut parts {
            r.server.as_mut().unwrap().counter_scope = CounterScope::Core;
        }
        parts[1].1.server.as_mut().unwrap().placement[0].cpu = Some(0);
        let m = Record::merge(&parts).unwrap();
        let server = m.server.as_ref().unwrap();
        assert_eq!(server.counters, None);
        assert!(server.own_cpu.is_some(), "the threads are still distinct");
        // One part without the server's figures: no partial server side.
        parts[1].1.server = None;
        assert_eq!(Record::merge(&parts).unwrap().server, None);
    }

    #[test]
    fn different_points_are_refused_naming_the_hosts() {
        let mut parts = two();
        parts[1].1.config.mode = Mode::OneCopy;
        let e = Record::merge(&parts).unwrap_err();
        assert_eq!(
            e.to_string(),
            "hosts a and b ran different points: mode two-copy on a but one-copy on b"
        );
        let mut parts = two();
        parts[1].1.config.size = 1024;
        assert!(matches!(
            Record::merge(&parts),
            Err(MergeError::Mismatch { what: "size", .. })
        ));
        let mut parts = two();
        parts[1].1.config.threads = 2;
        assert!(matches!(
            Record::merge(&parts),
            Err(MergeError::Mismatch {
                what: "threads",
                ..
            })
        ));
        let mut parts = two();
        parts[0].1.schema_version = 1;
        assert!(matches!(
            Record::merge(&parts),
            Err(MergeError::Mismatch {
                what: "schema version",
                ..
            })
        ));
    }

    #[test]
    fn what_cannot_be_merged_is_refused() {
        assert_eq!(Record::merge(&[]), Err(MergeError::Empty));
        let mut parts = two();
        parts[1].0 = "a".into();
        assert_eq!(
            Record::merge(&parts),
            Err(MergeError::DuplicateHost("a".into()))
        );
        parts[1].0 = String::new();
        assert_eq!(Record::merge(&parts), Err(MergeError::EmptyLabel));
        // Percentiles without their histogram are never averaged.
        let mut parts = two();
        parts[1].1.latency_histogram = None;
        assert_eq!(
            Record::merge(&parts),
            Err(MergeError::MissingHistogram("b".into()))
        );
        parts[1].1.latency_histogram = Some("garbage".into());
        assert!(matches!(
            Record::merge(&parts),
            Err(MergeError::BadHistogram { ref host, .. }) if host == "b"
        ));
        parts[1].1.latency_histogram = Some(latency([5, 6]).to_serialized());
        assert_eq!(
            Record::merge(&parts),
            Err(MergeError::HistogramDisagrees {
                host: "b".into(),
                histogram: 2,
                summary: 300
            })
        );
        let merged = Record::merge(&two()).unwrap();
        assert_eq!(
            Record::merge(&[("m".into(), merged)]),
            Err(MergeError::AlreadyMerged("m".into()))
        );
    }

    #[test]
    fn one_part_comes_back_unchanged_but_for_its_part() {
        let parts = vec![part("only", &latency([7, 8, 9]))];
        let m = Record::merge(&parts).unwrap();
        let list = m.parts.clone().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].host, "only");
        assert_eq!(list[0].summary, parts[0].1.summary);
        assert_eq!(Record { parts: None, ..m }, parts[0].1);
    }

    #[test]
    fn a_stream_point_merges_without_latency() {
        let mut parts = two();
        for (_, r) in &mut parts {
            r.latency = None;
            r.latency_histogram = None;
        }
        let m = Record::merge(&parts).unwrap();
        assert_eq!((m.latency, m.latency_histogram), (None, None));
    }

    #[test]
    fn a_merged_record_round_trips_and_keeps_the_csv_columns() {
        let m = Record::merge(&two()).unwrap();
        let text = serde_json::to_string(&m).unwrap();
        let back: Record = serde_json::from_str(&text).unwrap();
        // (serde_json may read a float back one ulp off: compare what is exact.)
        let hosts = |r: &Record| -> Vec<String> {
            r.parts.iter().flatten().map(|p| p.host.clone()).collect()
        };
        assert_eq!(hosts(&back), ["a", "b"]);
        assert_eq!(back.latency_histogram, m.latency_histogram);
        assert_eq!(back.client, m.client);
        assert!(!crate::export::json_line(&Record::example()).contains("\"parts\""));
        let row = crate::export::csv_row(&m);
        assert_eq!(row.len(), crate::export::csv_columns().len());
    }

    #[test]
    fn rates_add_up_over_hosts_and_their_send_lags_merge() {
        let mut parts = two();
        for (i, (_, r)) in parts.iter_mut().enumerate() {
            let lag = latency([10 * (i as u64 + 1); 4]);
            r.rate = Some(RateReport::new(1000.0, 1, 900.0, i as u64 + 1, &lag));
        }
        let m = Record::merge(&parts).unwrap();
        let rate = m.rate.expect("a merged rate");
        assert_eq!(rate.requested_per_s, 2000.0);
        assert_eq!(rate.held_back, 3);
        assert_eq!(rate.achieved_per_s, m.summary.msgs_per_s);
        let lag = rate.send_lag.unwrap();
        assert_eq!(lag.count, 8);
        assert!((lag.mean_us - 15.0).abs() < 0.1, "{lag:?}");
        // Hosts that ran different schedules are not one point.
        parts[1].1.config.rate = Some(500.0);
        let e = Record::merge(&parts).unwrap_err();
        assert!(e.to_string().contains("rate"), "{e}");
        // Closed loop: no rate section.
        for (_, r) in parts.iter_mut() {
            r.config.rate = None;
            r.rate = None;
        }
        assert_eq!(Record::merge(&parts).unwrap().rate, None);
    }
}
