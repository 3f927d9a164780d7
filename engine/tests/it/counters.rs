//! Kernel counters, CPU time and placement, as recorded: present figures are real, missing
//! ones are null and named, never 0; off means off; each side's own CPU time is its own
//! and within what its CPUs could give; pinned where asked.

use engine::placement::{available_cpus, CpuSpec};
use engine::{
    run_client, Backend, CounterScope, Mode, Record, ServerConfig, SideReport, WarningKind,
    Workload,
};

use crate::harness::{assert_clean_run, workers, TestServer};

const HARDWARE: [&str; 4] = [
    "cycles",
    "instructions",
    "l1d_load_misses",
    "llc_load_misses",
];

fn server(backend: Backend, counters: CounterScope, cpus: CpuSpec) -> TestServer {
    TestServer::start(ServerConfig {
        backend,
        workers: workers(backend, 2),
        counters,
        cpus,
        ..Default::default()
    })
}

fn run(server: &TestServer, backend: Backend, counters: CounterScope, cpus: CpuSpec) -> Record {
    let mut config = server.client(backend, Mode::OneCopy, Workload::Echo);
    config.counters = counters;
    config.cpus = cpus;
    let record = run_client(&config, &|_| {}).expect("run");
    assert_clean_run(&record, "counters");
    record
}

/// What a side must show when counting per thread or per CPU on any machine: the
/// software counters are there and > 0; a counter is null exactly when it is named
/// missing.
fn assert_counted(side: &SideReport, who: &str) {
    let c = side
        .counters
        .as_ref()
        .unwrap_or_else(|| panic!("{who}: no counters"));
    let v = serde_json::to_value(c).unwrap();
    assert!(v["context_switches"].as_u64().unwrap() > 0, "{who}: {c:?}");
    match side.counter_scope {
        CounterScope::Thread => assert!(c.task_clock_ns.unwrap() > 0, "{who}: {c:?}"),
        CounterScope::Core => assert_eq!(c.task_clock_ns, None, "{who}"),
        CounterScope::Off => panic!("{who}: counted but scope off"),
    }
    assert!(side.cpu_ns_per_byte.unwrap() > 0.0, "{who}");
    assert!(side.context_switches_per_msg.unwrap() > 0.0, "{who}");
    let missing: Vec<&str> = side
        .counters_missing
        .as_ref()
        .unwrap_or_else(|| panic!("{who}: missing list absent"))
        .0
        .iter()
        .map(|c| c.as_str())
        .collect();
    for name in HARDWARE {
        assert_eq!(
            v[name].is_null(),
            missing.contains(&name),
            "{who}: {name} null iff named missing ({missing:?})"
        );
    }
    assert_eq!(side.cycles_per_byte.is_none(), c.cycles.is_none(), "{who}");
}

#[test]
fn both_sides_count_per_thread_and_name_what_is_missing() {
    for backend in [Backend::Syscall, Backend::Uring] {
        let server = server(backend, CounterScope::Thread, CpuSpec::Auto);
        let r = run(&server, backend, CounterScope::Thread, CpuSpec::Auto);
        assert_counted(&r.client, &format!("{backend} client"));
        assert_counted(r.server.as_ref().unwrap(), &format!("{backend} server"));
    }
}

/// Hardware counters the machine lacks (the VM this project is developed on exposes no
/// PMU) are null and named missing, an empty CSV cell, never 0; those it has are counted.
#[test]
fn hardware_counters_are_counted_or_named_missing() {
    let probe = engine::counters::CounterSet::this_thread();
    let lacks = |name: &str| {
        probe
            .unavailable()
            .iter()
            .any(|u| u.counter.as_str() == name)
    };
    let server = server(Backend::Syscall, CounterScope::Thread, CpuSpec::Auto);
    let r = run(
        &server,
        Backend::Syscall,
        CounterScope::Thread,
        CpuSpec::Auto,
    );
    let row = engine::export::csv_row(&r);
    let cols = engine::export::csv_columns();
    let cell = |name: &str| row[cols.iter().position(|c| c == name).unwrap()].clone();
    for (who, side) in [
        ("client", &r.client),
        ("server", r.server.as_ref().unwrap()),
    ] {
        let v = serde_json::to_value(side.counters.as_ref().unwrap()).unwrap();
        let missing = side.counters_missing.as_ref().unwrap().to_string();
        for name in HARDWARE {
            if lacks(name) {
                assert!(v[name].is_null(), "{who}: {name} missing, so null");
                assert!(
                    missing.split('+').any(|m| m == name),
                    "{who}: {name} named in {missing:?}"
                );
            } else {
                assert!(v[name].as_u64().unwrap() > 0, "{who}: {name} counted");
            }
        }
        assert_eq!(side.cycles_per_byte.is_none(), lacks("cycles"), "{who}");
    }
    assert_eq!(
        cell("client_counters_cycles").is_empty(),
        lacks("cycles"),
        "missing is an empty cell, not 0"
    );
    assert_ne!(cell("client_counters_context_switches"), "");
}

#[test]
fn counters_off_leaves_every_counter_figure_missing() {
    for backend in [Backend::Syscall, Backend::Uring] {
        let server = server(backend, CounterScope::Off, CpuSpec::Auto);
        let r = run(&server, backend, CounterScope::Off, CpuSpec::Auto);
        for side in [&r.client, r.server.as_ref().unwrap()] {
            assert_eq!(side.counter_scope, CounterScope::Off);
            assert_eq!(side.counters, None);
            assert_eq!(side.counters_missing, None);
            assert_eq!(side.cycles_per_byte, None);
            assert_eq!(side.context_switches_per_msg, None);
            // Own CPU time is not a perf counter: it is measured all the same.
            assert!(side.own_cpu.is_some(), "{backend}");
        }
    }
}

/// What a side's own CPU time must show on any machine: some, no more than its threads'
/// CPUs could give over their interval, and the CPU-ns per byte made from it.
fn assert_own_cpu(side: &SideReport, who: &str) {
    let own = side
        .own_cpu
        .unwrap_or_else(|| panic!("{who}: no own CPU time"));
    assert!(own.total_ns() > 0, "{who}: {own:?}");
    assert!(own.threads > 0, "{who}: {own:?}");
    let cpus = own.cpus.unwrap_or_else(|| panic!("{who}: CPUs unknown"));
    assert!(
        (1..=available_cpus().len()).contains(&cpus) && cpus <= own.threads,
        "{who}: {own:?}"
    );
    let capacity = own.capacity_ns().unwrap();
    assert!(
        own.total_ns() <= capacity + own.slack_ns(),
        "{who}: {own:?} beyond {capacity} ns"
    );
    // The threads' readings enclose the flows they ran.
    assert!(
        own.interval_s >= side.duration_s,
        "{who}: {own:?} vs {}",
        side.duration_s
    );
    let bytes = (side.stats.bytes_sent + side.stats.bytes_received) as f64;
    let per_byte = side.cpu_ns_per_byte.unwrap();
    assert!(
        (per_byte - own.total_ns() as f64 / bytes).abs() <= 1e-9 * per_byte,
        "{who}: {per_byte} is not own time / bytes"
    );
}

/// Each side's own CPU time, on both engines and whatever the counting scope (core, the
/// sweep's default, and off); and the machine's figure beside them, once, within the
/// capacity of the machine's CPUs.
#[test]
fn each_side_has_its_own_cpu_time_and_the_machine_its_figure() {
    for backend in [Backend::Syscall, Backend::Uring] {
        for scope in [CounterScope::Core, CounterScope::Off] {
            let case = format!("{backend}, counters {scope}");
            let server = server(backend, scope, CpuSpec::Auto);
            let r = run(&server, backend, scope, CpuSpec::Auto);
            let s = r.server.as_ref().unwrap();
            assert_own_cpu(&r.client, &format!("{case}: client"));
            assert_own_cpu(s, &format!("{case}: server"));
            let sys = r
                .system
                .as_ref()
                .unwrap_or_else(|| panic!("{case}: no system figure"));
            assert!(
                sys.per_cpu.len() >= available_cpus().len(),
                "{case}: {sys:?}"
            );
            assert!(
                sys.interval_s >= r.summary.duration_s,
                "{case}: the readings enclose the measured interval: {sys:?}"
            );
            assert!(
                sys.total.busy_ns <= sys.capacity_ns + sys.busy_slack_ns(),
                "{case}: {sys:?}"
            );
            assert_eq!(sys.client_cpus, r.client.cpus, "{case}");
            assert_eq!(sys.server_cpus, s.cpus, "{case}");
            assert!(
                !r.warnings
                    .iter()
                    .any(|w| w.kind == WarningKind::ImpossibleCpu),
                "{case}: {:?}",
                r.warnings
            );
            let v = serde_json::to_value(&r).unwrap();
            for side in ["client", "server"] {
                assert!(
                    v[side]["counters"].get("cpu_busy_ns").is_none(),
                    "{case}: no per-side busy time any more"
                );
            }
        }
    }
}

#[test]
fn per_core_counting_covers_the_pinned_cpus() {
    let server = server(Backend::Uring, CounterScope::Core, CpuSpec::Auto);
    let r = run(&server, Backend::Uring, CounterScope::Core, CpuSpec::Auto);
    for side in [&r.client, r.server.as_ref().unwrap()] {
        match side.counter_scope {
            CounterScope::Core => assert_counted(side, "core"),
            // Not permitted where this runs: it fell back, and says it counted per thread.
            CounterScope::Thread => assert_counted(side, "core fell back"),
            CounterScope::Off => panic!("scope off"),
        }
    }
}

#[test]
fn placement_recorded_matches_cpus() {
    let cpus = available_cpus();
    let (first, last) = (cpus[0], *cpus.last().unwrap());
    for backend in [Backend::Syscall, Backend::Uring] {
        let server = server(backend, CounterScope::Thread, CpuSpec::List(vec![first]));
        let mut config = server.client(backend, Mode::TwoCopy, Workload::Stream);
        config.threads = 2;
        config.cpus = CpuSpec::List(vec![last]);
        let r = run_client(&config, &|_| {}).unwrap();
        assert_eq!(
            r.client.cpus.as_deref(),
            Some(last.to_string().as_str()),
            "{backend}"
        );
        assert_eq!(r.client.placement.len(), 2);
        assert!(
            r.client.placement.iter().all(|p| p.cpu == Some(last)),
            "{:?}",
            r.client.placement
        );
        let s = r.server.as_ref().unwrap();
        assert_eq!(
            s.cpus.as_deref(),
            Some(first.to_string().as_str()),
            "{backend}: {:?}",
            s.placement
        );
        assert!(!s.placement.is_empty());

        let mut config = config.clone();
        config.cpus = CpuSpec::Policy(engine::placement::PlacementPolicy::Unpinned);
        let r = run_client(&config, &|_| {}).unwrap();
        assert_eq!(r.client.cpus, None);
        assert!(r.client.placement.iter().all(|p| p.cpu.is_none()));
    }
}

#[test]
fn a_cpu_outside_the_affinity_mask_is_an_error() {
    let server = server(Backend::Syscall, CounterScope::Off, CpuSpec::Auto);
    let mut config = server.client(Backend::Syscall, Mode::OneCopy, Workload::Echo);
    config.cpus = CpuSpec::List(vec![100_000]);
    let e = run_client(&config, &|_| {}).unwrap_err();
    assert!(e.to_string().contains("CPU 100000 is not available"), "{e}");
    assert_eq!(e.exit_code(), engine::exit::USAGE);
}
