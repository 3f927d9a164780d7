//! The other tools compare.sh runs: how each is started, pinned, asked and read.
//! iperf3 (`-J`), sockperf ping-pong (`--full-rtt`), qperf `tcp_lat` (one-way latency,
//! doubled here to a round trip), and copyperf's own `baseline` loops.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

/// The largest message sockperf sends over TCP.
pub const SOCKPERF_MAX_SIZE: usize = 65506;

/// The packaged tools compare.sh needs, with the Debian package that has each.
pub const PACKAGED: [(&str, &str); 4] = [
    ("iperf3", "iperf3"),
    ("sockperf", "sockperf"),
    ("qperf", "qperf"),
    ("taskset", "util-linux"),
];

/// iperf3's `-J` output: the receiver's throughput in Gbit/s.
pub fn parse_iperf3(json: &str) -> Result<f64> {
    let v: serde_json::Value = serde_json::from_str(json).context("iperf3 output is not JSON")?;
    if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
        bail!("iperf3: {e}");
    }
    v.pointer("/end/sum_received/bits_per_second")
        .and_then(|b| b.as_f64())
        .map(|bps| bps / 1e9)
        .ok_or_else(|| anyhow!("iperf3 output has no end.sum_received.bits_per_second"))
}

/// sockperf ping-pong (`--full-rtt`) output: the median and mean round trip in µs.
pub fn parse_sockperf(text: &str) -> Result<(f64, f64)> {
    if !text.contains("RTT") && !text.contains("rtt") {
        bail!("sockperf output does not report round-trip times (was --full-rtt given?)");
    }
    let p50 = text
        .lines()
        .find_map(|l| {
            let rest = l.split("percentile 50.000").nth(1)?;
            rest.trim_start_matches([' ', '=']).trim().parse().ok()
        })
        .ok_or_else(|| anyhow!("sockperf output has no 50th percentile line"))?;
    let mean = text
        .lines()
        .find_map(|l| number_after(l, "avg-rtt="))
        .ok_or_else(|| anyhow!("sockperf output has no avg-rtt"))?;
    Ok((p50, mean))
}

/// qperf `tcp_lat` output (`latency  =  40.2 us`): qperf reports half a round trip; this
/// returns the mean round trip in µs (twice the figure).
pub fn parse_qperf(text: &str) -> Result<f64> {
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("latency"))
        .ok_or_else(|| anyhow!("qperf output has no latency line: {}", text.trim()))?;
    let mut words = line.split('=').nth(1).unwrap_or("").split_whitespace();
    let value: f64 = words
        .next()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow!("qperf latency line has no number: {line}"))?;
    let scale = match words.next() {
        Some("ns") => 1e-3,
        Some("us") => 1.0,
        Some("ms") => 1e3,
        Some("sec") | Some("s") => 1e6,
        other => bail!("qperf latency in an unknown unit {other:?}: {line}"),
    };
    Ok(2.0 * value * scale)
}

/// The baseline sender's JSON line: Gbit/s.
pub fn parse_baseline(json: &str) -> Result<f64> {
    let v: serde_json::Value = serde_json::from_str(json.trim())
        .with_context(|| format!("baseline output is not JSON: {}", json.trim()))?;
    v.get("gbps")
        .and_then(|g| g.as_f64())
        .ok_or_else(|| anyhow!("baseline output has no gbps"))
}

/// The number right after `key` in `line` (`avg-rtt=19.5 (…)` → 19.5).
fn number_after(line: &str, key: &str) -> Option<f64> {
    let rest = line.split(key).nth(1)?;
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// A tool's server, pinned with taskset; killed and reaped when dropped.
pub struct PeerServer {
    child: Child,
}

impl PeerServer {
    /// Starts `argv` on `cpu` and waits until `port` accepts a connection.
    pub fn start(cpu: usize, argv: &[String], port: u16) -> Result<PeerServer> {
        let child = Command::new("taskset")
            .args(["-c", &cpu.to_string()])
            .args(argv)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", argv[0]))?;
        let server = PeerServer { child };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if Instant::now() > deadline {
                bail!("{} did not start listening on {addr}", argv[0]);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // sockperf and iperf3 take a moment after the probe connection.
        std::thread::sleep(Duration::from_millis(200));
        Ok(server)
    }
}

impl Drop for PeerServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `argv` pinned to `cpu`; its stdout and stderr, or an error quoting its last words.
pub fn output(cpu: usize, argv: &[String]) -> Result<String> {
    let out = Command::new("taskset")
        .args(["-c", &cpu.to_string()])
        .args(argv)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", argv[0]))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "{} failed ({}): {}{}",
            argv[0],
            out.status,
            text.lines().last().unwrap_or(""),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(text + &String::from_utf8_lossy(&out.stderr))
}

/// The version line a tool prints, for the record ("not installed" when it cannot run).
pub fn tool_version(tool: &str) -> String {
    Command::new(tool)
        .arg("--version")
        .output()
        .ok()
        .map(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned()
                + &String::from_utf8_lossy(&o.stderr);
            text.lines().next().unwrap_or("").trim().to_owned()
        })
        .unwrap_or_else(|| "not installed".into())
}

/// Whether `bin` exists (copyperf's own baseline, next to compare).
pub fn present(bin: &Path) -> bool {
    bin.is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iperf3_json_gives_receiver_throughput() {
        let json = r#"{"end": {"sum_sent": {"bits_per_second": 2e10}, "sum_received": {"bits_per_second": 1.5e10}}}"#;
        assert_eq!(parse_iperf3(json).unwrap(), 15.0);
        assert!(parse_iperf3(r#"{"error": "unable to connect"}"#)
            .unwrap_err()
            .to_string()
            .contains("unable"));
        assert!(parse_iperf3("not json").is_err());
    }

    #[test]
    fn sockperf_output_gives_median_and_mean_round_trips() {
        let text = "sockperf: \x1b[2;35m====> avg-rtt=19.512 (std-dev=3.1)\x1b[0m\n\
                    sockperf: ---> <MAX> observation =  120.456\n\
                    sockperf: ---> percentile 99.000 =   30.001\n\
                    sockperf: ---> percentile 50.000 =   18.250\n\
                    sockperf: ---> <MIN> observation =   12.000\n";
        assert_eq!(parse_sockperf(text).unwrap(), (18.25, 19.512));
        assert!(
            parse_sockperf("sockperf: avg-latency=9.1\n---> percentile 50.000 = 9.0").is_err(),
            "half RTT"
        );
        assert!(parse_sockperf("rtt but no percentiles").is_err());
        assert!(
            parse_sockperf("rtt\n---> percentile 50.000 = 9.0").is_err(),
            "no mean"
        );
    }

    #[test]
    fn qperf_latency_is_doubled_to_a_round_trip_in_microseconds() {
        assert_eq!(
            parse_qperf("tcp_lat:\n    latency  =  40.5 us\n").unwrap(),
            81.0
        );
        assert_eq!(
            parse_qperf("tcp_lat:\n    latency  =  1.5 ms\n").unwrap(),
            3000.0
        );
        assert_eq!(
            parse_qperf("tcp_lat:\n    latency  =  900 ns\n").unwrap(),
            1.8
        );
        assert!(parse_qperf("tcp_lat:\n    latency  =  9 parsecs\n").is_err());
        assert!(parse_qperf("connection refused").is_err());
    }

    #[test]
    fn baseline_line_gives_gbps() {
        assert_eq!(
            parse_baseline("{\"bytes\":1,\"seconds\":1.0,\"gbps\":12.5}\n").unwrap(),
            12.5
        );
        assert!(parse_baseline("{}").is_err());
        assert!(parse_baseline("error: connecting").is_err());
    }
}
