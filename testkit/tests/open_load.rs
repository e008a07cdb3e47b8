//! The `open-load` generator against the real `floor` responder: it sends what it was
//! asked to, on schedule, and says so; a target that is not there is an error.

use std::process::Command;
use std::time::Duration;
use testkit::{free_addr, wait_listening, Service, SilentAddr};

fn open_load(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_open-load"))
        .args(args)
        .output()
        .expect("open-load runs")
}

#[test]
fn sends_every_due_payment_over_the_connections_asked_for() {
    let addr = free_addr();
    let _floor = Service::start("floor", &[], &[("FLOOR_LISTEN", &addr)]);
    wait_listening(&addr, Duration::from_secs(10));
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("result.json");
    let target = format!("http://{addr}");
    let run = open_load(&[
        "--target",
        &target,
        "--rate",
        "500",
        "--secs",
        "1",
        "--connections",
        "20",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        run.status.success(),
        "open-load failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(String::from_utf8_lossy(&run.stdout).contains("500 due, 500 sent, 500 2xx"));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(
        (r["due"].as_u64(), r["sent"].as_u64(), r["ok"].as_u64()),
        (Some(500), Some(500), Some(500))
    );
    assert_eq!(
        (r["failed"].as_u64(), r["dropped"].as_u64()),
        (Some(0), Some(0))
    );
    let p99 = r["p99_ms"].as_f64().unwrap();
    assert!(
        p99 > 0.0 && p99 <= r["max_ms"].as_f64().unwrap(),
        "p99 {p99} out of order: {r}"
    );
    // The 20 asked for are opened up front (more only if all 20 were ever busy at once).
    assert!(r["connections"].as_u64().unwrap() >= 20, "{r}");
}

#[test]
fn a_target_nobody_listens_on_is_an_error() {
    let addr = SilentAddr::bind();
    let run = open_load(&["--target", &format!("http://{addr}"), "--secs", "1"]);
    assert_eq!(run.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&run.stderr).contains("cannot connect"));
}

#[test]
fn a_bad_flag_is_a_usage_error() {
    for args in [
        &["--rat", "5"][..],
        &["--rate", "0"],
        &["--rate"],
        &["--target", "https://x:1"],
    ] {
        let run = open_load(args);
        assert_eq!(run.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&run.stderr).contains("usage: open-load"),
            "{args:?}"
        );
    }
}
