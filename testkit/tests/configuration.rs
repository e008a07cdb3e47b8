//! The configuration rules every service binary shares (`service::config`), checked on the
//! real binaries: the README's `## Configuration` table says what each one's `--help` says
//! (both ways) and nothing else, every flag is its variable's name, a bad value exits 2
//! naming its variable, an empty variable means the default and values are trimmed.
//!
//! Binaries of other crates are not built by `cargo test -p testkit`: run
//! `cargo build --workspace --bins` first (`make check` does), or `cargo test --workspace`.

use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::time::Duration;
use testkit::Service;

/// The binaries whose variables the README's table lists (its "used by" column).
const BINARIES: [&str; 4] = ["api", "lb", "sim", "floor"];

/// Variable name → default, of one binary.
type Defaults = BTreeMap<String, String>;

fn run(bin: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(testkit::binary(bin))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"))
}

/// The `## Configuration` section of the README, up to the next `## ` heading.
fn configuration_section() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
    let readme = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let start = readme
        .find("\n## Configuration\n")
        .expect("README.md has a `## Configuration` section");
    let section = &readme[start + 1..];
    let end = section[3..].find("\n## ").map_or(section.len(), |i| i + 3);
    section[..end].to_string()
}

/// The cells of a table row, split on `|` but not on an escaped `\|`.
fn cells(row: &str) -> Vec<String> {
    const ESCAPED_BAR: &str = "\u{0}";
    let row = row.replace("\\|", ESCAPED_BAR);
    row.trim()
        .trim_matches('|')
        .split('|')
        .map(|cell| cell.trim().replace(ESCAPED_BAR, "|"))
        .collect()
}

/// The README's rows for `bin`: `| `NAME` | bin | `default` | meaning |`.
fn readme_defaults(section: &str, bin: &str) -> Defaults {
    section
        .lines()
        .filter(|line| line.starts_with('|'))
        .map(cells)
        .filter(|row| row.len() >= 3 && row[1] == bin)
        .map(|row| {
            (
                row[0].trim_matches('`').into(),
                row[2].trim_matches('`').into(),
            )
        })
        .collect()
}

/// The options of `bin --help`, one block each: from a line starting with `-` to the next.
fn help_blocks(bin: &str) -> Vec<String> {
    let help = run(bin, &["--help"], &[]);
    assert_eq!(help.status.code(), Some(0), "{bin} --help");
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let mut blocks: Vec<String> = Vec::new();
    for line in help.lines() {
        if line.trim_start().starts_with('-') {
            blocks.push(String::new());
        }
        if let Some(block) = blocks.last_mut() {
            block.push_str(line);
            block.push('\n');
        }
    }
    blocks
}

/// What follows `key` in `block`, up to the next `]` (`[env: NAME]` gives `NAME`).
fn bracket(block: &str, key: &str) -> Option<String> {
    let start = block.find(key)? + key.len();
    Some(block[start..].split(']').next()?.to_string())
}

/// What `bin --help` lists: each option's `[env: NAME]` and `[default: value]`.
fn help_defaults(bin: &str) -> Defaults {
    help_blocks(bin)
        .iter()
        .filter_map(|block| {
            let name = bracket(block, "[env: ")?;
            // A setting with no default (optional) is "unset" in the README.
            let default = bracket(block, "[default: ").unwrap_or_else(|| "unset".into());
            Some((name, default))
        })
        .collect()
}

#[test]
fn the_readme_table_and_every_binarys_help_agree() {
    let section = configuration_section();
    // The table holds the binaries' variables only (make's, the scripts' and k6's are in
    // docs/operations.md, checked by scripts/check/test_operations_table.py).
    for row in section.lines().filter(|l| l.starts_with("| `")).map(cells) {
        assert!(
            row.len() >= 4 && BINARIES.contains(&row[1].as_str()),
            "README.md `## Configuration`: {row:?} is no variable of {BINARIES:?}"
        );
    }
    for bin in BINARIES {
        let help = help_defaults(bin);
        assert!(!help.is_empty(), "{bin} --help lists no variable");
        assert_eq!(
            readme_defaults(&section, bin),
            help,
            "README.md `## Configuration` rows for {bin} (left) and `{bin} --help` (right) disagree"
        );
    }
}

/// Every option of every binary but `--help` is a variable's, and its flag is the
/// variable's name in kebab case with the name as its value: `--lb-avoid-ms <LB_AVOID_MS>`.
#[test]
fn every_flag_is_its_variables_name() {
    for bin in BINARIES {
        for block in help_blocks(bin) {
            // The flag and its value, before any help on the same line.
            let line = block.lines().next().unwrap_or_default().trim();
            let first = line.split("  ").next().unwrap_or_default();
            if first == "-h, --help" {
                continue;
            }
            let variable = bracket(&block, "[env: ")
                .unwrap_or_else(|| panic!("{bin}: `{first}` has no variable"));
            let flag = format!("--{}", variable.to_lowercase().replace('_', "-"));
            assert_eq!(
                first,
                format!("{flag} <{variable}>"),
                "{bin}: the flag of {variable}"
            );
        }
    }
}

#[test]
fn a_bad_value_exits_2_naming_its_variable() {
    for (bin, variable) in [
        ("api", "API_THREADS"),
        ("lb", "LB_THREADS"),
        ("sim", "SIM_THREADS"),
        ("floor", "FLOOR_THREADS"),
    ] {
        let output = run(bin, &[], &[(variable, " many ")]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{bin}: {stderr}");
        let says = format!("{bin}: {variable}=\"many\": ");
        assert!(
            stderr.starts_with(&says),
            "{bin} should say `{says}...`: {stderr}"
        );
    }
    let output = run("lb", &[], &[("API_ADDRS", "127.0.0.1")]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).starts_with("lb: API_ADDRS=\"127.0.0.1\": "));
}

/// A binary to start, the variable of its listening address, and the rest of its variables.
type Start<'a> = (&'a str, &'a str, Vec<(&'a str, String)>);

#[test]
fn an_empty_variable_means_its_default_and_values_are_trimmed() {
    let database = tempfile::tempdir().expect("a temporary directory");
    let journal = database.path().join("lb.journal");
    let database = database.path().join("payments.db");
    let api_addr = testkit::free_addr();
    let starts: [Start; 4] = [
        (
            "api",
            "API_LISTEN",
            vec![
                ("API_THREADS", String::new()),
                ("PROCESSOR_TIMEOUT_MS", " ".into()),
                ("WRITE_LINGER_US", String::new()),
                ("DATABASE_PATH", format!(" {} ", database.display())),
            ],
        ),
        (
            "lb",
            "LB_LISTEN",
            vec![
                ("LB_THREADS", String::new()),
                ("LB_BATCH_LINGER_MS", String::new()),
                ("API_ADDRS", format!(" {api_addr} , ")),
                ("LB_JOURNAL_PATH", format!(" {} ", journal.display())),
                ("LB_METRICS_LISTEN", "off".into()),
            ],
        ),
        (
            "sim",
            "SIM_LISTEN",
            vec![("SIM_THREADS", String::new()), ("SIM_FEE", String::new())],
        ),
        (
            "floor",
            "FLOOR_LISTEN",
            vec![("FLOOR_THREADS", " 2 ".into())],
        ),
    ];
    for (bin, listen, mut env) in starts {
        let addr = if bin == "api" {
            api_addr.clone()
        } else {
            testkit::free_addr()
        };
        env.push((listen, format!("  {addr}\t")));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut service = Service::start(bin, &[], &env);
        testkit::wait_listening(&addr, Duration::from_secs(10));
        service.signal(libc::SIGTERM);
        assert_eq!(service.wait_exit(Duration::from_secs(10)), Some(0), "{bin}");
    }
}
