//! Every worked example in `docs/policy.md` is re-run here: each `console`
//! block's commands against the nearest preceding `yaml` manifest (and `csv`
//! history), output compared line for line; and every row of the error table
//! is parsed and its message checked.

use clap::Parser;
use scale_governor::{
    policy::{PREFIX, Policy},
    testing::cli::{
        Cli, Command,
        explain::{self, ExplainError},
    },
};

const DOC: &str = include_str!("../docs/policy.md");

struct Block<'a> {
    info: &'a str,
    body: String,
}

fn blocks(doc: &str) -> Vec<Block<'_>> {
    let mut out = Vec::new();
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        if let Some(info) = line.strip_prefix("```") {
            let body: Vec<&str> = lines
                .by_ref()
                .take_while(|l| !l.starts_with("```"))
                .collect();
            out.push(Block {
                info: info.trim(),
                body: body.join("\n") + "\n",
            });
        }
    }
    out
}

/// Splits a console block into (command line, expected output) pairs.
fn commands(body: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in body.lines() {
        match line.strip_prefix("$ ") {
            Some(cmd) => out.push((cmd.to_owned(), String::new())),
            None => {
                let (_, expected) = out.last_mut().expect("console block starts with a command");
                expected.push_str(line);
                expected.push('\n');
            }
        }
    }
    out
}

fn run(cmd: &str, manifest: &str, history: &str) -> String {
    let cli = Cli::try_parse_from(cmd.split_whitespace()).unwrap_or_else(|e| panic!("{cmd}: {e}"));
    let Command::Explain(args) = cli.command else {
        panic!("only explain examples are supported: {cmd}")
    };
    let history = args.history.as_ref().map(|_| history);
    let now = args.at.unwrap_or_else(chrono::Utc::now);
    match explain::explain(manifest, history, &args, now) {
        Ok(report) => explain::render(&report, args.output),
        Err(ExplainError::Policy(e)) => format!("error: invalid policy: {e}\n"),
        Err(e) => panic!("{cmd}: {e}"),
    }
}

#[test]
fn every_console_example_reproduces() {
    let (mut manifest, mut history) = (String::new(), String::new());
    let mut checked = 0;
    for block in blocks(DOC) {
        match block.info {
            "yaml" => manifest = block.body,
            "csv" => history = block.body,
            "console" => {
                for (cmd, expected) in commands(&block.body) {
                    let got = run(&cmd, &manifest, &history);
                    assert_eq!(got, expected, "docs/policy.md example differs: $ {cmd}");
                    checked += 1;
                }
            }
            _ => {}
        }
    }
    assert!(checked >= 12, "only {checked} examples found");
}

#[test]
fn every_documented_error_is_the_real_error() {
    let mut checked = 0;
    for row in DOC.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.split(" | ").collect();
        let input = cells[0].trim_start_matches("| ");
        // Rows that combine two annotations are covered by unit tests.
        if !input.contains(": ") || input.contains(" with ") || cells.len() < 2 {
            continue;
        }
        let (key, value) = input
            .trim_matches('`')
            .split_once(": ")
            .expect("key: value");
        let value = value.trim_matches('"');
        let expected = cells[1].trim_end_matches(" |").trim_matches('`');
        let key = format!("{PREFIX}{key}");
        let err = Policy::from_annotations([(key.as_str(), value)])
            .expect_err(&format!("{key}: {value} should not parse"))
            .to_string();
        for part in expected.split('…') {
            assert!(
                err.contains(part),
                "{key}: {value}\n got: {err}\nwant: {expected}"
            );
        }
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} error rows found");
}
