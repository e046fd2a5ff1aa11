//! The command line as a user meets it: exit codes, refusals with a reason,
//! and `explain` saying what the webhook would say about a live object.

use std::process::Command;

fn governor(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_scale-governor"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("running scale-governor");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(name: &str, text: &str) -> String {
    let path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn exit_codes_tell_a_usage_error_from_an_invalid_policy() {
    let (code, _, stderr) = governor(&["explain", "--no-such-flag"]);
    assert_eq!(code, 2, "{stderr}");
    let bad = write(
        "cli-bad.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  annotations:\n    scale-governor.io/max-replicas: twenty\nspec:\n  replicas: 2\n",
    );
    let (code, _, stderr) = governor(&["explain", "-f", &bad, "--replicas", "5"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("error: invalid policy: scale-governor.io/max-replicas"),
        "{stderr}"
    );
    let (code, _, stderr) = governor(&["explain", "-f", "/does/not/exist.yaml", "--replicas", "5"]);
    assert_eq!(code, 1, "{stderr}");
}

#[test]
fn a_chart_that_is_not_svg_is_refused_before_anything_is_written() {
    let png = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli-week.png");
    let _ = std::fs::remove_file(&png);
    let (code, _, stderr) = governor(&[
        "simulate",
        "-f",
        "examples/web.yaml",
        "--trace",
        "examples/traces/synthetic-day-spike.csv",
        "--capacity",
        "50",
        "--chart",
        png.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("the chart is SVG; name the file .svg"),
        "{stderr}"
    );
    assert!(!png.exists(), "a .png file holding SVG was written");
}

/// A live object carries its persisted `history`; without `--history`,
/// `explain` reads it, as the webhook does.
#[test]
fn explain_reads_a_live_objects_history_annotation() {
    let live = write(
        "cli-live.yaml",
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {scale-governor.io/governed: "true"}
  annotations:
    scale-governor.io/scale-up: "4 pods/60s"
    scale-governor.io/history: '[[1795428000,4,8,8,"kube-controller-manager (scale)"]]'
spec:
  replicas: 8
"#,
    );
    // 30 s after a +4: the budget is spent.
    let (code, stdout, stderr) = governor(&[
        "explain",
        "-f",
        &live,
        "--replicas",
        "20",
        "--at",
        "2026-11-23T10:00:30Z",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout
            .contains("scale-up 4 pods/60s: asked 20, allowed 8 (budget spent: 4 at period start)"),
        "{stdout}"
    );
}
