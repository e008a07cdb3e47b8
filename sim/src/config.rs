//! Configuration of the `sim` and `floor` binaries: every environment variable name is
//! defined here once, so tests, scripts and the README use the same names.
//!
//! `sim` also takes command-line flags (`--listen`, `--fee`, `--token`,
//! `--health-window-secs`, `--store-after-disconnect`) so two simulators are easy to start
//! by hand; a flag wins over its environment variable.

use std::net::SocketAddr;

/// Address `sim` listens on.
pub const SIM_LISTEN: &str = "SIM_LISTEN";
/// Fee per transaction as a fraction (0.05 = 5 %), reported by the admin summary.
pub const SIM_FEE: &str = "SIM_FEE";
/// Initial `X-Rinha-Token` of the admin endpoints.
pub const SIM_TOKEN: &str = "SIM_TOKEN";
/// Length in seconds of one health-check window (one call per window).
pub const SIM_HEALTH_WINDOW_SECS: &str = "SIM_HEALTH_WINDOW_SECS";
/// Tokio worker threads; 1 runs everything on the calling thread.
pub const SIM_THREADS: &str = "SIM_THREADS";
/// How many `POST /payments` may run at once (the processors allow 800).
pub const SIM_MAX_RUNNING: &str = "SIM_MAX_RUNNING";
/// How many more `POST /payments` may wait for a running slot before 429 (the processors allow 500).
pub const SIM_MAX_WAITING: &str = "SIM_MAX_WAITING";
/// `1` (the default): a `POST /payments` whose client hangs up during the delay still runs
/// to the end and stores the payment, as a server that ignores its client's give-up does
/// (the call's outcome is unknown to the client). `0`: the request is dropped with its
/// connection, so a client that gave up before the delay ended was not charged.
pub const SIM_STORE_AFTER_DISCONNECT: &str = "SIM_STORE_AFTER_DISCONNECT";
/// Address `floor` listens on.
pub const FLOOR_LISTEN: &str = "FLOOR_LISTEN";
/// Tokio worker threads of `floor`.
pub const FLOOR_THREADS: &str = "FLOOR_THREADS";

const DEFAULT_SIM_LISTEN: &str = "127.0.0.1:8001";
const DEFAULT_FEE: &str = "0.05";
const DEFAULT_TOKEN: &str = "123";
const DEFAULT_HEALTH_WINDOW_SECS: &str = "5";
const DEFAULT_MAX_RUNNING: &str = "800";
const DEFAULT_MAX_WAITING: &str = "500";
const DEFAULT_STORE_AFTER_DISCONNECT: &str = "1";
const DEFAULT_FLOOR_LISTEN: &str = "127.0.0.1:9999";
const DEFAULT_THREADS: &str = "1";

pub const SIM_USAGE: &str =
    "usage: sim [--listen ADDR] [--fee F] [--token T] [--health-window-secs N]
           [--store-after-disconnect 1|0]
  each flag may also be given as an environment variable (the flag wins):
  SIM_LISTEN (127.0.0.1:8001), SIM_FEE (0.05), SIM_TOKEN (123), SIM_HEALTH_WINDOW_SECS (5),
  SIM_STORE_AFTER_DISCONNECT (1: a payment whose client hung up mid-delay is still stored);
  environment only: SIM_THREADS (1), SIM_MAX_RUNNING (800), SIM_MAX_WAITING (500)";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{name}=`{value}` is not valid: {why}")]
    BadValue {
        name: String,
        value: String,
        why: String,
    },
    #[error("unknown argument `{0}`\n{SIM_USAGE}")]
    UnknownArgument(String),
    #[error("flag {0} needs a value\n{SIM_USAGE}")]
    MissingValue(String),
    #[error("{0} is not valid unicode")]
    NotUnicode(String),
}

/// A fee as parts per million, so fee totals can be computed exactly from cents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeePpm(pub i64);

impl FeePpm {
    /// Accepts a fraction between 0 and 1 with at most six decimal places (`0.05`).
    fn parse(text: &str) -> Result<FeePpm, String> {
        let value: f64 = text
            .trim()
            .parse()
            .map_err(|_| "expected a fraction like 0.05".to_string())?;
        if !(0.0..=1.0).contains(&value) {
            return Err("expected a fraction between 0 and 1".into());
        }
        let ppm = (value * 1e6).round();
        if (ppm / 1e6 - value).abs() > 1e-12 {
            return Err("at most six decimal places".into());
        }
        Ok(FeePpm(ppm as i64))
    }
}

/// Everything `sim` needs to start.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    pub listen: SocketAddr,
    pub fee: FeePpm,
    pub token: String,
    pub health_window_secs: u64,
    pub threads: usize,
    pub max_running: usize,
    pub max_waiting: usize,
    pub store_after_disconnect: bool,
}

/// Everything `floor` needs to start.
#[derive(Debug, Clone, PartialEq)]
pub struct FloorConfig {
    pub listen: SocketAddr,
    pub threads: usize,
}

/// Where values come from: flags first, then the environment, then defaults.
struct Source<'a> {
    /// (environment name it overrides, flag as typed, value)
    flags: Vec<(&'static str, String, String)>,
    env: &'a dyn Fn(&str) -> Result<Option<String>, ConfigError>,
}

impl Source<'_> {
    /// The value and where it came from (the flag or the variable name), for messages.
    fn get(&self, name: &'static str, default: &str) -> Result<(String, String), ConfigError> {
        if let Some((_, flag, v)) = self.flags.iter().rev().find(|(n, _, _)| *n == name) {
            return Ok((flag.clone(), v.clone()));
        }
        Ok((
            name.to_string(),
            (self.env)(name)?.unwrap_or_else(|| default.to_string()),
        ))
    }

    fn parsed<T>(
        &self,
        name: &'static str,
        default: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        let (origin, value) = self.get(name, default)?;
        parse(&value).map_err(|why| ConfigError::BadValue {
            name: origin,
            value,
            why,
        })
    }
}

fn process_env(name: &str) -> Result<Option<String>, ConfigError> {
    match std::env::var(name) {
        Ok(v) => Ok(Some(v)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::NotUnicode(name.to_string())),
    }
}

fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    text.trim()
        .parse()
        .map_err(|_| "expected ip:port like 127.0.0.1:8001".to_string())
}

fn parse_count(min: usize) -> impl Fn(&str) -> Result<usize, String> {
    move |text| match text.trim().parse::<usize>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(format!("expected a whole number >= {min}")),
    }
}

fn parse_switch(text: &str) -> Result<bool, String> {
    match text.trim() {
        "1" | "true" | "on" => Ok(true),
        "0" | "false" | "off" => Ok(false),
        _ => Err("expected 1 or 0".to_string()),
    }
}

/// Maps a command-line flag to the environment variable it overrides.
fn flag_name(flag: &str) -> Option<&'static str> {
    match flag {
        "--listen" => Some(SIM_LISTEN),
        "--fee" => Some(SIM_FEE),
        "--token" => Some(SIM_TOKEN),
        "--health-window-secs" => Some(SIM_HEALTH_WINDOW_SECS),
        "--store-after-disconnect" => Some(SIM_STORE_AFTER_DISCONNECT),
        _ => None,
    }
}

/// Splits `--flag value` and `--flag=value` pairs; anything else is an error.
fn parse_flags(args: &[String]) -> Result<Vec<(&'static str, String, String)>, ConfigError> {
    let mut flags = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f, Some(v.to_string())),
            None => (arg.as_str(), None),
        };
        let name = flag_name(flag).ok_or_else(|| ConfigError::UnknownArgument(arg.clone()))?;
        let value = match inline {
            Some(v) => v,
            None => rest
                .next()
                .cloned()
                .ok_or_else(|| ConfigError::MissingValue(flag.to_string()))?,
        };
        flags.push((name, flag.to_string(), value));
    }
    Ok(flags)
}

impl SimConfig {
    /// Reads the process's arguments (without the program name) and environment.
    pub fn from_args_and_env(args: &[String]) -> Result<SimConfig, ConfigError> {
        SimConfig::load(args, &process_env)
    }

    fn load(
        args: &[String],
        env: &dyn Fn(&str) -> Result<Option<String>, ConfigError>,
    ) -> Result<SimConfig, ConfigError> {
        let src = Source {
            flags: parse_flags(args)?,
            env,
        };
        Ok(SimConfig {
            listen: src.parsed(SIM_LISTEN, DEFAULT_SIM_LISTEN, parse_addr)?,
            fee: src.parsed(SIM_FEE, DEFAULT_FEE, FeePpm::parse)?,
            token: src.parsed(SIM_TOKEN, DEFAULT_TOKEN, |t| {
                if t.is_empty() {
                    Err("must not be empty".to_string())
                } else {
                    Ok(t.to_string())
                }
            })?,
            health_window_secs: src.parsed(
                SIM_HEALTH_WINDOW_SECS,
                DEFAULT_HEALTH_WINDOW_SECS,
                |t| parse_count(1)(t).map(|n| n as u64),
            )?,
            threads: src.parsed(SIM_THREADS, DEFAULT_THREADS, parse_count(1))?,
            max_running: src.parsed(SIM_MAX_RUNNING, DEFAULT_MAX_RUNNING, parse_count(1))?,
            max_waiting: src.parsed(SIM_MAX_WAITING, DEFAULT_MAX_WAITING, parse_count(0))?,
            store_after_disconnect: src.parsed(
                SIM_STORE_AFTER_DISCONNECT,
                DEFAULT_STORE_AFTER_DISCONNECT,
                parse_switch,
            )?,
        })
    }
}

impl FloorConfig {
    /// Reads the environment (`floor` takes no flags).
    pub fn from_env() -> Result<FloorConfig, ConfigError> {
        let src = Source {
            flags: Vec::new(),
            env: &process_env,
        };
        Ok(FloorConfig {
            listen: src.parsed(FLOOR_LISTEN, DEFAULT_FLOOR_LISTEN, parse_addr)?,
            threads: src.parsed(FLOOR_THREADS, DEFAULT_THREADS, parse_count(1))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(args: &[&str], env: &[(&str, &str)]) -> Result<SimConfig, ConfigError> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        SimConfig::load(&args, &move |name| {
            Ok(env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
        })
    }

    #[test]
    fn defaults_match_the_contest() {
        let c = load(&[], &[]).unwrap();
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
    fn flags_win_over_environment() {
        let env = [(SIM_FEE, "0.15"), (SIM_LISTEN, "127.0.0.1:1")];
        let c = load(&["--fee", "0.2", "--listen=127.0.0.1:2"], &env).unwrap();
        assert_eq!(c.fee, FeePpm(200_000));
        assert_eq!(c.listen.to_string(), "127.0.0.1:2");
        assert_eq!(load(&[], &env).unwrap().fee, FeePpm(150_000));
    }

    #[test]
    fn names_the_bad_value() {
        let err = load(&[], &[(SIM_FEE, "five")]).unwrap_err();
        assert!(err.to_string().contains("SIM_FEE=`five`"), "{err}");
        let err = load(&["--fee", "1.5"], &[]).unwrap_err();
        assert!(err.to_string().contains("--fee=`1.5`"), "{err}");
        assert!(load(&["--fee", "0.0000001"], &[]).is_err());
        assert!(load(&["--health-window-secs", "0"], &[]).is_err());
        assert!(matches!(
            load(&["--bogus"], &[]),
            Err(ConfigError::UnknownArgument(_))
        ));
        assert!(matches!(
            load(&["--token"], &[]),
            Err(ConfigError::MissingValue(_))
        ));
        assert!(load(&[], &[(SIM_LISTEN, "localhost")]).is_err());
        let err = load(&[], &[(SIM_STORE_AFTER_DISCONNECT, "maybe")]).unwrap_err();
        assert!(err.to_string().contains("expected 1 or 0"), "{err}");
    }

    #[test]
    fn store_after_disconnect_can_be_switched_off() {
        let off = [(SIM_STORE_AFTER_DISCONNECT, "0")];
        assert!(!load(&[], &off).unwrap().store_after_disconnect);
        assert!(
            load(&["--store-after-disconnect", "1"], &off)
                .unwrap()
                .store_after_disconnect
        );
    }
}
