//! Starting `sim` and `floor`: flags win over the environment, bad values exit with 2 and
//! say what is wrong (the rules every binary shares are tested in testkit/tests/configuration.rs).

use sim::config::{FLOOR_LISTEN, SIM_FEE, SIM_HEALTH_WINDOW_SECS, SIM_LISTEN, SIM_THREADS};
use std::process::{Command, Output};
use std::time::Duration;
use testkit::Service;

fn run(bin: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(testkit::binary(bin));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"))
}

fn assert_refused(output: &Output, says: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(says),
        "stderr should mention `{says}`: {stderr}"
    );
}

#[test]
fn bad_configuration_exits_with_2_and_names_the_value() {
    assert_refused(
        &run("sim", &[], &[(SIM_FEE, "five")]),
        "sim: SIM_FEE=\"five\"",
    );
    assert_refused(&run("sim", &["--sim-fee", "2"], &[]), "--sim-fee=\"2\"");
    assert_refused(&run("sim", &[], &[(SIM_LISTEN, "nowhere")]), "SIM_LISTEN");
    assert_refused(
        &run("sim", &[], &[(SIM_HEALTH_WINDOW_SECS, "0")]),
        "SIM_HEALTH_WINDOW_SECS",
    );
    assert_refused(&run("sim", &[], &[(SIM_THREADS, "many")]), "SIM_THREADS");
    assert_refused(
        &run("sim", &["--colour"], &[]),
        "unexpected argument '--colour'",
    );
    assert_refused(
        &run("sim", &["--sim-token"], &[]),
        "a value is required for '--sim-token",
    );
    assert_refused(
        &run("sim", &["--sim-store-after-disconnect", "maybe"], &[]),
        "--sim-store-after-disconnect=\"maybe\"",
    );
    assert_refused(
        &run("floor", &[], &[(FLOOR_LISTEN, "nowhere")]),
        "FLOOR_LISTEN",
    );
    let help = run("sim", &["--help"], &[]);
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("--sim-health-window-secs"));
}

#[test]
fn a_flag_wins_over_its_environment_variable() {
    let (env_addr, flag_addr) = (testkit::free_addr(), testkit::free_addr());
    let _sim = Service::start(
        "sim",
        &["--sim-listen", &flag_addr, "--sim-token", "from-flag"],
        &[
            (SIM_LISTEN, &env_addr),
            (sim::config::SIM_TOKEN, "from-env"),
            (SIM_THREADS, "2"),
        ],
    );
    testkit::wait_listening(&flag_addr, Duration::from_secs(10));
    let stats = |token: &str| {
        testkit::http::request(
            &flag_addr,
            "GET",
            "/admin/stats",
            &[("X-Rinha-Token", token)],
            b"",
        )
        .expect("stats")
        .status
    };
    assert_eq!(stats("from-flag"), 200);
    assert_eq!(stats("from-env"), 401);
    assert!(
        std::net::TcpStream::connect(&env_addr).is_err(),
        "nothing should listen on the env address"
    );
}

#[test]
fn sigterm_stops_sim_and_floor_cleanly() {
    for (bin, listen) in [("sim", SIM_LISTEN), ("floor", FLOOR_LISTEN)] {
        let addr = testkit::free_addr();
        let mut service = Service::start(bin, &[], &[(listen, &addr)]);
        testkit::wait_listening(&addr, Duration::from_secs(10));
        service.signal(libc::SIGTERM);
        assert_eq!(service.wait_exit(Duration::from_secs(10)), Some(0), "{bin}");
    }
}
