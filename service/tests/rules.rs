//! The configuration rules of `service::config` on a made-up binary: trimmed values, an
//! empty value as unset, a flag over its variable, and messages that name the variable
//! or the flag a bad value came from. Each test uses variables of its own, since tests
//! share the process's environment.

use service::config::{checked, from_flags, positive, Refused};

#[derive(Debug, clap::Parser)]
struct Demo {
    /// Threads.
    #[arg(long = service::flag!("RULES_THREADS"), env = "RULES_THREADS", default_value = "3", value_parser = checked(positive))]
    threads: usize,
}

#[derive(Debug, clap::Parser)]
struct Other {
    /// Workers.
    #[arg(long = service::flag!("RULES_WORKERS"), env = "RULES_WORKERS", default_value = "4", value_parser = checked(positive))]
    workers: usize,
}

#[test]
fn empty_means_default_values_are_trimmed_flags_win() {
    let demo = |args: &[&str]| from_flags::<Demo>("demo", args);
    std::env::set_var("RULES_THREADS", "");
    assert_eq!(demo(&[]).unwrap().threads, 3);
    std::env::set_var("RULES_THREADS", " \t");
    assert_eq!(demo(&[]).unwrap().threads, 3);
    std::env::set_var("RULES_THREADS", " 7 ");
    assert_eq!(demo(&[]).unwrap().threads, 7);
    assert_eq!(demo(&["--rules-threads", " 9"]).unwrap().threads, 9);
    assert_eq!(demo(&["--rules-threads="]).unwrap().threads, 3);
}

#[test]
fn a_bad_value_is_named_by_its_variable_or_flag() {
    let other = |args: &[&str]| from_flags::<Other>("other", args);
    std::env::set_var("RULES_WORKERS", " 0 ");
    let said = |refused| match refused {
        Err(Refused::Bad(said)) => said,
        other => panic!("should be refused: {other:?}"),
    };
    assert_eq!(
        said(other(&[])),
        "other: RULES_WORKERS=\"0\": not a whole number >= 1"
    );
    assert_eq!(
        said(other(&["--rules-workers", "x"])),
        "other: --rules-workers=\"x\": not a whole number >= 1"
    );
    let Err(Refused::Help(help)) = other(&["--help"]) else {
        panic!("--help is no error");
    };
    assert!(help.contains("[env: RULES_WORKERS] [default: 4]"), "{help}");
}
