//! The bare loops compare.sh measures copyperf against: both sends reach a discarding and
//! a copying receiver and report what they sent.

use std::process::{Command, Stdio};

const BASELINE: &str = env!("CARGO_BIN_EXE_baseline");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn both_loops_send_to_both_receivers() {
    let bin = BASELINE;
    for rx in ["discard", "copy"] {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut recv = Command::new(bin)
            .args(["recv", "--rx", rx, "--listen", &addr])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the receiver never listened"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        for send in ["plain", "zc-fixed"] {
            let out = Command::new(bin)
                .args([
                    "send", "--to", &addr, "-s", "4K", "-d", "0.2", "--flows", "2",
                ])
                .args(["--send", send])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert!(v["bytes"].as_u64().unwrap() > 0, "{v}");
            assert!(v["gbps"].as_f64().unwrap() > 0.0, "{v}");
            assert_eq!(v["send"], send);
            assert_eq!(v["flows"], 2);
        }
        recv.kill().unwrap();
        recv.wait().unwrap();
    }
}

#[test]
fn a_missing_receiver_is_a_clear_error() {
    let port = free_port();
    let out = Command::new(BASELINE)
        .args(["send", "--to", &format!("127.0.0.1:{port}"), "-d", "0.1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("connecting to 127.0.0.1") && err.contains("refused"),
        "{err}"
    );
}
