//! Configuration of the `sim` and `floor` binaries, under the rules of `service::config`:
//! every environment variable name is defined here once, so tests, scripts and the README
//! use the same names.
//!
//! Each variable may also be given as a flag of the same name in kebab case (`--sim-listen`,
//! `--sim-fee`, `--sim-token`, ...), so two simulators are easy to start by hand; a flag
//! wins over its environment variable.

use service::config::{checked, positive, socket_addr, switch, whole};
use service::flag;
use std::net::SocketAddr;

/// The variable of [`SimConfig::listen`].
pub const SIM_LISTEN: &str = "SIM_LISTEN";
/// The variable of [`SimConfig::fee`].
pub const SIM_FEE: &str = "SIM_FEE";
/// The variable of [`SimConfig::token`].
pub const SIM_TOKEN: &str = "SIM_TOKEN";
/// The variable of [`SimConfig::health_window_secs`].
pub const SIM_HEALTH_WINDOW_SECS: &str = "SIM_HEALTH_WINDOW_SECS";
/// The variable of [`SimConfig::threads`].
pub const SIM_THREADS: &str = "SIM_THREADS";
/// The variable of [`SimConfig::max_running`].
pub const SIM_MAX_RUNNING: &str = "SIM_MAX_RUNNING";
/// The variable of [`SimConfig::max_waiting`].
pub const SIM_MAX_WAITING: &str = "SIM_MAX_WAITING";
/// The variable of [`SimConfig::store_after_disconnect`].
pub const SIM_STORE_AFTER_DISCONNECT: &str = "SIM_STORE_AFTER_DISCONNECT";
/// The variable of [`FloorConfig::listen`].
pub const FLOOR_LISTEN: &str = "FLOOR_LISTEN";
/// The variable of [`FloorConfig::threads`].
pub const FLOOR_THREADS: &str = "FLOOR_THREADS";

/// A fee as parts per million, so fee totals can be computed exactly from cents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeePpm(pub i64);

impl FeePpm {
    /// Accepts a fraction between 0 and 1 with at most six decimal places (`0.05`).
    fn parse(text: &str) -> Result<FeePpm, &'static str> {
        let value: f64 = text.parse().map_err(|_| "not a fraction like 0.05")?;
        if !(0.0..=1.0).contains(&value) {
            return Err("not a fraction between 0 and 1");
        }
        let ppm = (value * 1e6).round();
        if (ppm / 1e6 - value).abs() > 1e-12 {
            return Err("more than six decimal places");
        }
        Ok(FeePpm(ppm as i64))
    }
}

/// Everything `sim` needs to start.
#[derive(Debug, Clone, PartialEq, clap::Parser)]
#[command(about = "A payment processor as the contest runs them, for local runs and tests")]
pub struct SimConfig {
    /// Address (ip:port) the simulator listens on.
    #[arg(long = flag!(SIM_LISTEN), env = SIM_LISTEN, default_value = "127.0.0.1:8001", value_parser = checked(socket_addr))]
    pub listen: SocketAddr,
    /// Fee per transaction as a fraction (0.05 = 5 %), reported by the admin summary.
    #[arg(long = flag!(SIM_FEE), env = SIM_FEE, default_value = "0.05", value_parser = checked(FeePpm::parse))]
    pub fee: FeePpm,
    /// Initial X-Rinha-Token of the admin endpoints.
    #[arg(long = flag!(SIM_TOKEN), env = SIM_TOKEN, default_value = "123", value_parser = checked(service::config::text))]
    pub token: String,
    /// Length in seconds of one health-check window (one call per window).
    #[arg(long = flag!(SIM_HEALTH_WINDOW_SECS), env = SIM_HEALTH_WINDOW_SECS, default_value = "5", value_parser = checked(positive))]
    pub health_window_secs: usize,
    /// Tokio worker threads; 1 runs everything on the calling thread.
    #[arg(long = flag!(SIM_THREADS), env = SIM_THREADS, default_value = "1", value_parser = checked(positive))]
    pub threads: usize,
    /// POST /payments running at once (the processors allow 800).
    #[arg(long = flag!(SIM_MAX_RUNNING), env = SIM_MAX_RUNNING, default_value = "800", value_parser = checked(positive))]
    pub max_running: usize,
    /// More POST /payments that may wait for a running slot before 429 (the processors allow 500).
    #[arg(long = flag!(SIM_MAX_WAITING), env = SIM_MAX_WAITING, default_value = "500", value_parser = checked(whole))]
    pub max_waiting: usize,
    /// 1: a payment whose client hung up during the delay is still stored; 0: it is dropped.
    ///
    /// 1 (the default): a POST /payments whose client hangs up during the delay still runs
    /// to the end and stores the payment, as a server that ignores its client's give-up
    /// does (the call's outcome is unknown to the client). 0: the request is dropped with
    /// its connection, so a client that gave up before the delay ended was not charged.
    #[arg(long = flag!(SIM_STORE_AFTER_DISCONNECT), env = SIM_STORE_AFTER_DISCONNECT, default_value = "1", value_parser = checked(switch), action = clap::ArgAction::Set)]
    pub store_after_disconnect: bool,
}

/// Everything `floor` needs to start.
#[derive(Debug, Clone, PartialEq, clap::Parser)]
#[command(about = "The bare responder the benchmarks compare the real stack against")]
pub struct FloorConfig {
    /// Address (ip:port) floor listens on.
    #[arg(long = flag!(FLOOR_LISTEN), env = FLOOR_LISTEN, default_value = "127.0.0.1:9999", value_parser = checked(socket_addr))]
    pub listen: SocketAddr,
    /// Tokio worker threads of floor.
    #[arg(long = flag!(FLOOR_THREADS), env = FLOOR_THREADS, default_value = "1", value_parser = checked(positive))]
    pub threads: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use service::config::{from_flags, Refused};

    fn load(args: &[&str]) -> Result<SimConfig, Refused> {
        from_flags("sim", args)
    }

    #[test]
    fn defaults_match_the_contest() {
        let c = load(&[]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8001");
        assert_eq!(c.fee, FeePpm(50_000));
        assert_eq!(c.token, "123");
        assert_eq!(
            (
                c.health_window_secs,
                c.threads,
                c.max_running,
                c.max_waiting
            ),
            (5, 1, 800, 500)
        );
        assert!(
            c.store_after_disconnect,
            "a client's give-up cancels nothing"
        );
    }

    #[test]
    fn names_the_bad_value() {
        let Err(Refused::Bad(said)) = load(&["--sim-fee", "1.5"]) else {
            panic!("a fee of 1.5 should be refused");
        };
        assert!(said.contains("--sim-fee=\"1.5\""), "{said}");
        assert!(load(&["--sim-fee", "0.0000001"]).is_err());
        assert!(load(&["--sim-health-window-secs", "0"]).is_err());
        assert!(load(&["--bogus"]).is_err());
        assert!(load(&["--sim-token"]).is_err());
        assert!(load(&["--sim-listen", "localhost"]).is_err());
        let Err(Refused::Bad(said)) = load(&["--sim-store-after-disconnect", "maybe"]) else {
            panic!("maybe is no switch");
        };
        assert!(said.contains("not 1 or 0"), "{said}");
    }

    #[test]
    fn store_after_disconnect_can_be_switched_off() {
        assert!(
            !load(&["--sim-store-after-disconnect", "0"])
                .unwrap()
                .store_after_disconnect
        );
        assert_eq!(load(&["--sim-fee", "0.15"]).unwrap().fee, FeePpm(150_000));
    }
}
