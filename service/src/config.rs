//! One rule set for the configuration of every binary. Each binary declares its settings
//! once, as a `#[derive(clap::Parser)]` struct whose fields name their environment
//! variable (`env = NAME`), default and value parser ([`checked`]); `--help` then lists
//! every variable with its default, and each one may also be given as a flag named after
//! it (`LB_AVOID_MS` is `--lb-avoid-ms`, made by [`flag!`](crate::flag) from the same
//! const), which wins over the variable. The rules:
//!
//! - a value is trimmed; an empty one means unset, so the default applies;
//! - a bad one stops the binary with exit code 2 and `<binary>: NAME="value": why`, NAME
//!   the variable (or the flag) it came from.

use clap::builder::TypedValueParser;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, Command, Parser};
use std::ffi::OsStr;
use std::fmt::Display;
use std::process::exit;
use std::time::Duration;

/// The flag of the variable `NAME`: the name in kebab case (`LB_AVOID_MS` is
/// `lb-avoid-ms`), made at compile time from the const that holds the name, so each
/// setting's name is written once:
/// `#[arg(long = service::flag!(LB_AVOID_MS), env = LB_AVOID_MS, ...)]`.
#[macro_export]
macro_rules! flag {
    ($variable:expr) => {{
        const VARIABLE: &str = $variable;
        const BYTES: [u8; VARIABLE.len()] = $crate::config::kebab(VARIABLE);
        const FLAG: &str = match ::std::str::from_utf8(&BYTES) {
            Ok(flag) => flag,
            Err(_) => panic!("a variable's name is ASCII"),
        };
        FLAG
    }};
}

/// `variable` in kebab case, as the `N` bytes [`flag!`](crate::flag) makes a `&str` of:
/// `_` becomes `-`, capitals lowercase.
pub const fn kebab<const N: usize>(variable: &str) -> [u8; N] {
    let bytes = variable.as_bytes();
    assert!(bytes.len() == N, "N is the variable's length");
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = match bytes[i] {
            b'_' => b'-',
            b => b.to_ascii_lowercase(),
        };
        i += 1;
    }
    out
}

/// The exit code of a binary whose configuration is bad.
pub const BAD_CONFIGURATION: i32 = 2;

/// The configuration of `binary` from its command line and environment; on `--help` the
/// help is printed and the process exits 0, on a bad value the message and exit 2.
pub fn config<C: Parser>(binary: &'static str) -> C {
    match parse(binary, std::env::args_os()) {
        Ok(config) => config,
        Err(Refused::Help(help)) => {
            print!("{help}");
            exit(0)
        }
        Err(Refused::Bad(message)) => {
            eprintln!("{message}");
            exit(BAD_CONFIGURATION)
        }
    }
}

/// Why [`parse`] returned no configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// `--help` was asked for: the text to print.
    #[error("{0}")]
    Help(String),
    /// A bad value or argument, as `<binary>: ...`.
    #[error("{0}")]
    Bad(String),
}

/// [`config`] without the exit, for tests: `args` start with the program name.
pub fn parse<C: Parser>(
    binary: &'static str,
    args: impl IntoIterator<Item = impl Into<std::ffi::OsString> + Clone>,
) -> Result<C, Refused> {
    // The help shows each variable's name and default, not its current value (a token),
    // and the variable's name as the flag's value (`--lb-avoid-ms <LB_AVOID_MS>`).
    let command = C::command().name(binary).mut_args(|a| {
        let variable = a.get_env().map(|v| v.to_string_lossy().into_owned());
        match variable {
            Some(variable) => a.hide_env_values(true).value_name(variable),
            None => a.hide_env_values(true),
        }
    });
    let refused = |e: clap::Error| match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => Refused::Help(e.render().to_string()),
        _ => Refused::Bad(format!("{binary}: {}", message(&e))),
    };
    let matches = command.try_get_matches_from(args).map_err(refused)?;
    C::from_arg_matches(&matches).map_err(refused)
}

/// [`parse`] of `flags` (no program name) and the environment, for tests.
pub fn from_flags<C: Parser>(binary: &'static str, flags: &[&str]) -> Result<C, Refused> {
    parse(binary, std::iter::once(binary).chain(flags.iter().copied()))
}

/// Our own `NAME="value": why` when a [`checked`] parser refused the value, else clap's.
fn message(error: &clap::Error) -> String {
    match error.get(ContextKind::Custom) {
        Some(ContextValue::String(ours)) => ours.clone(),
        _ => error
            .render()
            .to_string()
            .trim_start_matches("error: ")
            .trim_end()
            .to_string(),
    }
}

/// A clap value parser from `parse`, under the rules of this module (see there).
pub fn checked<T, E>(parse: fn(&str) -> Result<T, E>) -> Checked<T, E> {
    Checked(parse)
}

/// The value parser [`checked`] makes.
pub struct Checked<T, E>(fn(&str) -> Result<T, E>);

impl<T, E> Clone for Checked<T, E> {
    fn clone(&self) -> Self {
        Checked(self.0)
    }
}

impl<T, E> TypedValueParser for Checked<T, E>
where
    T: Clone + Send + Sync + 'static,
    E: Display + 'static,
{
    type Value = T;

    fn parse_ref(&self, cmd: &Command, arg: Option<&Arg>, raw: &OsStr) -> Result<T, clap::Error> {
        let text = raw.to_string_lossy();
        let value = match text.trim() {
            "" => default_of(arg),
            given => given.to_string(),
        };
        (self.0)(&value).map_err(|why| {
            let said = format!("{}=\"{}\": {why}", source(arg, raw), shown(text.trim()));
            let mut error = clap::Error::new(ErrorKind::ValueValidation).with_cmd(cmd);
            error.insert(ContextKind::Custom, ContextValue::String(said));
            error
        })
    }
}

/// The default of `arg`, which an empty value stands for.
fn default_of(arg: Option<&Arg>) -> String {
    arg.and_then(|a| a.get_default_values().first())
        .map(|d| d.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A refused value as a message repeats it: not at all when it is a URL with credentials
/// (`scheme://user:password@host`), which logs must not keep.
fn shown(value: &str) -> &str {
    match value.split_once("://") {
        Some((_, rest))
            if rest
                .split(['/', '?'])
                .next()
                .is_some_and(|a| a.contains('@')) =>
        {
            "(a URL with credentials, not repeated)"
        }
        _ => value,
    }
}

/// What a message calls the value's origin: its environment variable if the value came
/// from there, else its flag.
fn source(arg: Option<&Arg>, raw: &OsStr) -> String {
    let Some(arg) = arg else {
        return "value".to_string();
    };
    match arg.get_env() {
        Some(name) if std::env::var_os(name).as_deref() == Some(raw) => {
            name.to_string_lossy().into_owned()
        }
        _ => arg
            .get_long()
            .map_or_else(|| arg.get_id().to_string(), |long| format!("--{long}")),
    }
}

/// A count that must be at least 1 (0 makes no sense for any of our sizes).
pub fn positive(text: &str) -> Result<usize, String> {
    at_least(text, 1)
}

/// A count that may be 0.
pub fn whole(text: &str) -> Result<usize, String> {
    at_least(text, 0)
}

fn at_least(text: &str, min: usize) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(format!("not a whole number >= {min}")),
    }
}

/// A period in milliseconds, at least 1.
pub fn millis(text: &str) -> Result<Duration, String> {
    positive(text).map(|ms| Duration::from_millis(ms as u64))
}

/// A wait in milliseconds where 0 means none.
pub fn millis_or_zero(text: &str) -> Result<Duration, String> {
    whole(text).map(|ms| Duration::from_millis(ms as u64))
}

/// A wait in microseconds where 0 means none.
pub fn micros_or_zero(text: &str) -> Result<Duration, String> {
    whole(text).map(|us| Duration::from_micros(us as u64))
}

/// A socket address (an IP and a port; names are not resolved).
pub fn socket_addr(text: &str) -> Result<std::net::SocketAddr, String> {
    text.parse()
        .map_err(|_| "not ip:port like 127.0.0.1:8001".to_string())
}

/// Any text (already trimmed and, if it was empty, replaced by the default).
pub fn text(text: &str) -> Result<String, std::convert::Infallible> {
    Ok(text.to_string())
}

/// A file path.
pub fn path(text: &str) -> Result<std::path::PathBuf, std::convert::Infallible> {
    Ok(text.into())
}

/// An `http://host:port` base URL, returned without a trailing slash.
pub fn http_url(text: &str) -> Result<String, String> {
    if !text.starts_with("http://") || text.parse::<hyper::Uri>().is_err() {
        return Err("not http://host:port".to_string());
    }
    Ok(text.trim_end_matches('/').to_string())
}

/// `1`/`true`/`on` or `0`/`false`/`off`.
pub fn switch(text: &str) -> Result<bool, String> {
    match text {
        "1" | "true" | "on" => Ok(true),
        "0" | "false" | "off" => Ok(false),
        _ => Err("not 1 or 0".to_string()),
    }
}

#[cfg(test)]
mod tests {
    const LB_AVOID_MS: &str = "LB_AVOID_MS";

    #[test]
    fn a_flag_is_its_variable_in_kebab_case() {
        assert_eq!(crate::flag!(LB_AVOID_MS), "lb-avoid-ms");
        assert_eq!(crate::flag!("WRITE_LINGER_US"), "write-linger-us");
        assert_eq!(crate::flag!("API_ADDRS"), "api-addrs");
    }
}
