use super::*;
use crate::policy::{Policy, keys};

fn errors(pairs: &[(&str, &str)]) -> PolicyErrors {
    Policy::from_annotations(pairs.iter().copied()).unwrap_err()
}

#[test]
fn column_follows_the_slice_not_the_first_match() {
    let value = "Mon-Fri x; Sat x";
    let second_x = &value[15..16];
    let err = PolicyError::at("k", value, second_x, "m".into());
    assert_eq!((err.line, err.column), (1, 16));
}

#[test]
fn column_counts_characters() {
    let value = "Zürich Foo";
    let err = PolicyError::at("k", value, &value[8..], "m".into());
    assert_eq!(err.column, 8);
}

/// In a value of many lines, a position is a line and a column in it, not
/// a column counted from the start of the value.
#[test]
fn a_position_in_a_multi_line_value_is_a_line_and_a_column() {
    let mut value = "Mon-Fri 08:00-20:00 Europe/Berlin min=10\n".repeat(5000);
    value.push_str("Sat 08:00-20:00 Europe/Berln min=1\n");
    let err = errors(&[(keys::WINDOWS, &value)]);
    let first = err.first();
    assert_eq!((first.line, first.column), (5001, 17));
    assert_eq!(
        err.to_string(),
        "scale-governor.io/windows: at \"Europe/Berln\" (line 5001, column 17): unknown time zone \"Europe/Berln\", expected an IANA name like Europe/Berlin"
    );
    // One line and a trailing newline (a YAML block) is still one line.
    let err = errors(&[(keys::WINDOWS, "Mon-Fry 08:00-20:00 min=1\n")]);
    assert!(err.to_string().contains("(column 5)"), "{err}");
    // A JSON value over several lines: the line and column serde_json
    // names, as characters.
    let json = "{\n  \"targetPerPod\": 5,\n  \"trend\": \"fäst\"\n}";
    let err = errors(&[(keys::RECOMMEND, json)]);
    assert_eq!(
        err.to_string(),
        "scale-governor.io/recommend: at \"fäst\" (line 3, column 13): unknown variant `fäst`, expected one of `none`, `velocity`, `acceleration`, `seasonal`, expected JSON like {\"source\":\"prometheus\",\"query\":\"orders\",\"targetPerPod\":5,\"leadSeconds\":90}"
    );
}

#[test]
fn every_bad_annotation_is_reported_each_naming_its_key() {
    let err = errors(&[
        (keys::MODE, "strict"),
        (keys::MIN_REPLICAS, "two"),
        (keys::MAX_REPLICAS, "-3"),
        (keys::SUSPEND_UNTIL, "tomorrow"),
    ]);
    assert_eq!(err.total(), 4);
    let keys: Vec<&str> = err.iter().map(|e| e.annotation.as_str()).collect();
    assert_eq!(
        keys,
        [
            keys::MODE,
            keys::MIN_REPLICAS,
            keys::MAX_REPLICAS,
            keys::SUSPEND_UNTIL
        ]
    );
    let text = err.to_string();
    assert!(
        text.starts_with("4 errors: scale-governor.io/mode: at \"strict\""),
        "{text}"
    );
    assert!(
        text.contains("; scale-governor.io/min-replicas: at \"two\""),
        "{text}"
    );
    assert!(!text.contains("more"), "{text}");
}

#[test]
fn several_errors_in_one_value_are_each_reported() {
    let err = errors(&[(
        keys::WINDOWS,
        "Mon-Fry 08:00-20:00 min=1\nMon-Fri 8:00-20:00 min=1; Mon-Fri 08:00-20:00 UTC",
    )]);
    let positions: Vec<(usize, usize, &str)> = err
        .iter()
        .map(|e| (e.line, e.column, e.token.as_str()))
        .collect();
    assert_eq!(
        positions,
        [
            (1, 5, "Fry"),
            (2, 9, "8:00-20:00"),
            (2, 27, "Mon-Fri 08:00-20:00 UTC")
        ]
    );
    let err = errors(&[(keys::SCALE_UP, "4 widgets/60s, 50%/60x, select=Maximum")]);
    let tokens: Vec<&str> = err.iter().map(|e| e.token.as_str()).collect();
    assert_eq!(tokens, ["widgets", "60x", "Maximum"]);
}

/// Eleven bad annotations: ten named, one counted.
#[test]
fn errors_beyond_the_bound_are_counted() {
    let values: Vec<(String, String)> = (0..11)
        .map(|i| (format!("{}{i:02}", keys::MODE), format!("not-a-mode-{i}")))
        .collect();
    let mut policy_errors = PolicyErrors::new();
    for (key, value) in &values {
        policy_errors.push(PolicyError::at(key, value, value, format!("bad {value}")));
    }
    assert_eq!(policy_errors.total(), 11);
    assert_eq!(policy_errors.iter().count(), MAX_REPORTED_ERRORS);
    let text = policy_errors.to_string();
    assert!(text.starts_with("11 errors: "), "{text}");
    assert!(text.ends_with("; and 1 more"), "{text}");
    assert!(
        text.contains("scale-governor.io/mode09: at \"not-a-mode-9\""),
        "{text}"
    );
    assert!(!text.contains("mode10"), "{text}");
    // The same through the parser: a window value of 30 bad entries.
    let value = vec!["Mon-Fry 08:00-20:00 min=1"; 30].join("\n");
    let err = errors(&[(keys::WINDOWS, &value)]);
    assert_eq!((err.total(), err.iter().count()), (30, 10));
    assert!(err.to_string().ends_with("; and 20 more"), "{err}");
}

#[test]
fn a_summary_keeps_whole_errors_within_its_bytes_and_counts_the_rest() {
    let value = vec![format!("Mon-Fry 08:00-20:00 {} min=1", "é".repeat(300)); 12].join("\n");
    let err = errors(&[(keys::WINDOWS, &value)]);
    let one = err.first().to_string();
    for max in [200, 700, 1000, 3000] {
        let summary = err.summary(max);
        assert!(summary.len() <= max, "{max}: {} > {max}", summary.len());
        let shown = summary.matches("scale-governor.io/windows: at").count();
        assert!(
            summary.ends_with(&format!("; and {} more", 12 - shown)),
            "{summary}"
        );
        if max > one.len() + 40 {
            assert!(summary.contains(&one), "{max}: {summary}");
        }
    }
    // Short enough: the whole display.
    let small = errors(&[(keys::MODE, "strict")]);
    assert_eq!(small.summary(1000), small.to_string());
}

#[test]
fn a_long_token_is_quoted_short_and_kept_short() {
    let token = "x".repeat(200_000);
    let err = errors(&[(keys::MAX_REPLICAS, &token)]);
    let text = err.to_string();
    assert!(text.len() < 300, "{} characters", text.len());
    assert!(text.contains(&format!("\"{}…\"", "x".repeat(80))), "{text}");
    assert!(err.first().token.len() < 1000);
}
