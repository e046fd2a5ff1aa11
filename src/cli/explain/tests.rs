//! `explain` says what the webhook says: every error of a policy that does
//! not parse, and what its windows do on the days the clock changes.

use clap::Parser;

use super::*;
use crate::cli::{Cli, Command};

fn args(line: &str) -> Args {
    match Cli::try_parse_from(line.split_whitespace())
        .unwrap()
        .command
    {
        Command::Explain(args) => args,
        _ => unreachable!("an explain command line"),
    }
}

fn manifest(annotations: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\n  labels:\n    scale-governor.io/governed: \"true\"\n  annotations:\n{annotations}spec:\n  replicas: 5\n"
    )
}

fn explain_at(manifest: &str, line: &str) -> Result<String, ExplainError> {
    let args = args(line);
    let report = explain(manifest, None, &args, args.at.unwrap())?;
    Ok(render(&report, args.output))
}

#[test]
fn every_error_is_printed_with_its_key_and_position() {
    let m = manifest(
        "    scale-governor.io/mode: strict\n    scale-governor.io/max-replicas: \"2\\u202e0\"\n    scale-governor.io/windows: |\n      Mon-Fri 08:00-20:00 Europe/Berlin min=1\n      Mon-Fry 08:00-20:00 min=1\n",
    );
    let Err(ExplainError::Policy(errors)) = explain_at(
        &m,
        "scale-governor explain -f web.yaml --replicas 3 --at 2026-11-23T10:00:00Z",
    ) else {
        panic!("the policy must not parse");
    };
    assert_eq!(
        invalid(&errors),
        "error: invalid policy: 3 errors: \
         scale-governor.io/max-replicas: at \"2\\u{202e}0\" (column 1): \"2\\u{202e}0\" is not a replica count, expected an integer from 0 to 2147483647; \
         scale-governor.io/mode: at \"strict\" (column 1): unknown mode \"strict\", expected enforce, deny, audit or off; \
         scale-governor.io/windows: at \"Fry\" (line 2, column 5): unknown weekday \"Fry\", expected Mon..Sun\n"
    );
}

#[test]
fn the_days_the_clock_changes_are_explained() {
    let m = manifest("    scale-governor.io/windows: \"Sun 02:30-05:00 Europe/Berlin max=4\"\n");
    let text = explain_at(
        &m,
        "scale-governor explain -f web.yaml --replicas 8 --at 2026-11-23T10:00:00Z",
    )
    .unwrap();
    assert_eq!(
        text,
        "Deployment shop/web (mode enforce) at 2026-11-23T10:00:00+00:00\n\
         decision: allowed 8 (current 5)\n\
         bounds:   0..unbounded\n\
         warning:  window \"Sun 02:30-05:00 Europe/Berlin max=4\": on 2027-03-28 02:30 does not exist in Europe/Berlin (the clock jumps from 02:00 to 03:00); the window opens at 03:00 (2027-03-28T01:00:00Z)\n\
         warning:  window \"Sun 02:30-05:00 Europe/Berlin max=4\": on 2027-10-31 02:30 occurs twice in Europe/Berlin (the clock goes back from 03:00 to 02:00); the window opens at the first 02:30 (CEST, 2027-10-31T00:30:00Z), not again while the clock repeats 02:00-03:00\n"
    );
    // At the instant the note names, explain decides as it says.
    let text = explain_at(
        &m,
        "scale-governor explain -f web.yaml --replicas 8 --at 2027-03-28T01:00:00Z",
    )
    .unwrap();
    assert!(
        text.contains("decision: clamped to 4 (asked 8, current 5)"),
        "{text}"
    );
    let json = explain_at(
        &m,
        "scale-governor explain -f web.yaml --replicas 8 --at 2027-03-28T00:59:59Z -o json",
    )
    .unwrap();
    assert!(json.contains("\"replicas\":8"), "{json}");
    assert!(
        json.contains("on 2027-03-28 02:30 does not exist in Europe/Berlin"),
        "{json}"
    );
}
