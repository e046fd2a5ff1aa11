use super::*;

const KEY: &str = "scale-governor.io/scale-up";

fn up(value: &str) -> Result<ScalingRules, PolicyErrors> {
    ScalingRules::parse(KEY, value, Direction::Up)
}

#[test]
fn compact_form_round_trips_through_display() {
    let rules = up("4 pods/60s, 100%/1m, select=Min, stabilization=5m").unwrap();
    assert_eq!(rules.policies.len(), 2);
    assert_eq!(rules.policies[1].kind, PolicyKind::Percent);
    assert_eq!(rules.policies[1].period_seconds, 60);
    assert_eq!(rules.select, SelectPolicy::Min);
    assert_eq!(rules.stabilization_seconds, 300);
    assert_eq!(
        rules.to_string(),
        "4 pods/60s, 100%/60s, select=Min, stabilization=300s"
    );
    assert_eq!(up(&rules.to_string()).unwrap(), rules);
}

#[test]
fn stabilization_only_is_allowed() {
    let rules = ScalingRules::parse(KEY, "stabilization=300s", Direction::Down).unwrap();
    assert!(rules.policies.is_empty());
    assert_eq!(rules.lookback_seconds(), 300);
}

#[test]
fn json_form_uses_hpa_defaults_for_missing_fields() {
    let rules =
        ScalingRules::parse(KEY, r#"{"selectPolicy":"Disabled"}"#, Direction::Down).unwrap();
    assert_eq!(rules.select, SelectPolicy::Disabled);
    assert_eq!(rules.stabilization_seconds, 300);
    assert_eq!(
        rules.policies,
        ScalingRules::hpa_default(Direction::Down).policies
    );
    let rules = up(r#"{"policies":[{"type":"Pods","value":4,"periodSeconds":60}],"stabilizationWindowSeconds":0}"#).unwrap();
    assert_eq!(
        rules.to_string(),
        "4 pods/60s, select=Max, stabilization=0s"
    );
}

#[test]
fn errors_name_the_token_and_expectation() {
    let cases = [
        ("4 pods/60x", "\"60x\" is not a duration"),
        ("4 widgets/60s", "unknown unit \"widgets\""),
        (
            r#"{"policies":[{"type":"Pods","value":4,"periodSeconds":60}],"tolerance":"0.05"}"#,
            "tolerance is an HPA metric setting",
        ),
        (
            r#"{"policies":[{"type":"Pods","value":4,"periodSeconds":60}],"stabilisationWindowSeconds":5}"#,
            "unknown field `stabilisationWindowSeconds`",
        ),
        ("4 pods/0s", "0s is out of range, expected 1s to 1800s"),
        ("4 pods/1h", "3600s is out of range"),
        ("0 pods/60s", "\"0\" is not a positive integer"),
        ("4/60s", "\"4\" has no unit"),
        ("4 pods", "unknown item \"4 pods\""),
        ("select=Maximum", "unknown selectPolicy \"Maximum\""),
        ("stabilization=2h", "7200s is out of range"),
        ("select=Max, select=Min", "select is given twice"),
        ("4 pods/60s,,", "empty item"),
        (
            "{\"policies\": 3}",
            "at \"3\" (column 14): invalid type: integer `3`, expected a sequence, expected HPAScalingRules JSON like",
        ),
        (
            r#"{"policies":[{"type":"Pod","value":4,"periodSeconds":60}]}"#,
            "unknown policy type \"Pod\"",
        ),
        (
            r#"{"policies":[{"type":"Pods","value":4,"periodSeconds":0}]}"#,
            "periodSeconds 0 is out of range",
        ),
    ];
    for (value, expected) in cases {
        let err = up(value).unwrap_err();
        assert!(err.to_string().contains(expected), "{value}: {err}");
        assert_eq!(err.first().annotation, KEY);
    }
}

#[test]
fn the_hpa_spellings_and_bare_seconds_mean_the_same_rules() {
    let compact = up("4 pods/60s, 50%/60s, select=Min, stabilization=300s").unwrap();
    for spelling in [
        "4 Pods/60s, 50 Percent/60s, selectPolicy=Min, stabilizationWindowSeconds=300",
        "4 PODS/60, 50 percent/1m, SELECT=min, stabilization=5m",
        "4pods/60s, 50%/60s, select=MIN, Stabilization=300",
    ] {
        assert_eq!(up(spelling).unwrap(), compact, "{spelling}");
    }
}

#[test]
fn column_points_at_the_bad_period() {
    let err = up("4 pods/60s, 10%/7x").unwrap_err();
    let err = err.first();
    assert_eq!((err.token.as_str(), err.column), ("7x", 17));
}
