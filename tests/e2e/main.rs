//! The end-to-end tests, against a real local control plane (etcd,
//! kube-apiserver, kube-controller-manager; see docs/testing.md). One
//! binary, so the crate and the helpers in [`support`] are compiled and
//! linked once; each module below was a test file of its own.
//!
//! **Ignored unless asked for.** Every test that needs the control plane
//! is `#[ignore]`d with the reason, so a plain `cargo test` lists each one
//! as ignored and counts them in its summary instead of passing in silence.
//! `make test` runs them (`cargo test -- --include-ignored`); included
//! without Go, they skip with a banner, or fail under
//! `SCALE_GOVERNOR_REQUIRE_CLUSTER=1`.
//!
//! **Serial or parallel.** The tests share one process and one control
//! plane, and libtest runs them side by side. A test whose assertions hang
//! on timing or on the cores being free is `#[serial]` (serial_test), so no
//! other test runs beside it: the clamp storm's count of Event writes in a
//! second, the real HPA's recorded steps, replicas SIGKILLed at random, the
//! install guide's `cargo build`, and KEDA on a control plane of its own.
//! Every other test is `#[parallel]`; [`every_test_is_serial_or_parallel`]
//! keeps it that way, since a test with neither would run beside the
//! serial ones.

mod support;

mod certs;
mod cluster;
mod cpu;
mod faults;
mod guard;
mod hpa;
mod hpa_recorded;
mod install;
mod install_doc;
mod keda;
mod ledger;
mod monitoring;
mod recommender;
mod replay_trace;
mod reports;
mod scoping;
mod seasonal;
mod skew;
mod webhook;

use serial_test::parallel;

/// What a cluster test's `#[ignore]` says, word for word.
const IGNORE: &str = r#"#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]"#;

/// The tests of this binary that need no control plane, as `module::name`.
const NO_CLUSTER: &[&str] = &[
    "hpa_recorded::simulate_at_the_recordings_metric_delay_gives_the_table",
    "every_test_is_serial_or_parallel",
];

/// Every test here is `#[serial]` or `#[parallel]`, and every one that
/// needs the control plane is ignored with the reason; read from the
/// sources, since neither mistake would fail a run.
#[test]
#[parallel]
fn every_test_is_serial_or_parallel() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e");
    let mut seen = 0;
    for path in sources(&dir) {
        // `recommender/leader.rs` holds `recommender::leader::*`.
        let relative = path.strip_prefix(&dir).unwrap().with_extension("");
        let module = relative.to_str().unwrap().replace('/', "::");
        if module == "support" || module.starts_with("support::") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        for (i, line) in lines.iter().enumerate() {
            if !(line.starts_with("#[test]") || line.starts_with("#[tokio::test")) {
                continue;
            }
            let Some(at) = lines[i..].iter().position(|l| l.contains("fn ")) else {
                panic!(
                    "{}: no fn after the test attribute on line {}",
                    path.display(),
                    i + 1
                );
            };
            let attributes = &lines[i..i + at];
            let name = lines[i + at]
                .split("fn ")
                .nth(1)
                .and_then(|rest| rest.split('(').next())
                .unwrap();
            let test = if module == "main" {
                name.to_owned()
            } else {
                format!("{module}::{name}")
            };
            assert!(
                attributes
                    .iter()
                    .any(|a| *a == "#[serial]" || *a == "#[parallel]"),
                "{test} is neither #[serial] nor #[parallel]"
            );
            let ignored = attributes.contains(&IGNORE);
            assert_eq!(
                ignored,
                !NO_CLUSTER.contains(&test.as_str()),
                "{test}: a test that needs the control plane carries {IGNORE}, \
                 and one in NO_CLUSTER does not"
            );
            seen += 1;
        }
    }
    assert!(seen > 60, "found only {seen} tests under {}", dir.display());
}

/// The `.rs` files under `dir`, submodules' directories included.
fn sources(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension() == Some("rs".as_ref()) {
            out.push(path);
        }
    }
    out
}
