use std::collections::BTreeMap;

use super::*;

const FILE: &str = r#"
sources:
  - name: prometheus
    namespaces: ["*"]
    prometheus:
      url: http://prometheus.monitoring.svc:9090
      queries:
        orders: 'sum(rate(orders_total{namespace="{{namespace}}",app="{{name}}",tier="{{tier}}"}[2m]))'
  - name: orders-api
    namespaces: [shop]
    timeout: 2s
    http:
      url: http://{{name}}.{{namespace}}.svc:8080/stats
"#;

fn config(json: &str) -> RecommendConfig {
    RecommendConfig::parse(json).unwrap()
}

#[test]
fn admission_checks_the_source_the_namespace_and_the_parameters() {
    let sources = Sources::parse(FILE).unwrap();
    let ok = config(r#"{"source":"orders-api","pointer":"/orders","targetPerPod":5}"#);
    assert_eq!(sources.check(&ok, "shop"), Ok(()));
    for (json, namespace, expected) in [
        (
            r#"{"source":"orders-api","pointer":"/orders","targetPerPod":5}"#,
            "billing",
            "may not be used from namespace billing; it allows shop",
        ),
        (
            r#"{"source":"nope","pointer":"/x","targetPerPod":5}"#,
            "shop",
            "source \"nope\" is not defined by the governor (serve --sources); known: orders-api, prometheus, pods",
        ),
        (
            r#"{"source":"prometheus","query":"orders","targetPerPod":5}"#,
            "shop",
            "needs params.tier",
        ),
        (
            r#"{"source":"prometheus","query":"latency","params":{"tier":"web"},"targetPerPod":5}"#,
            "shop",
            "has no query \"latency\"; it has orders",
        ),
        (
            r#"{"source":"prometheus","pointer":"/x","targetPerPod":5}"#,
            "shop",
            "is Prometheus: name one of its queries",
        ),
        (
            r#"{"source":"orders-api","query":"orders","targetPerPod":5}"#,
            "shop",
            "give a pointer to the demand",
        ),
        (
            r#"{"source":"orders-api","pointer":"/o","params":{"x":"y"},"targetPerPod":5}"#,
            "shop",
            "takes no params.x",
        ),
    ] {
        let err = sources.check(&config(json), namespace).unwrap_err();
        assert!(err.to_string().contains(expected), "{json}: {err}");
    }
    // Warm pools and source-less configs need no governor-side source.
    let pool = config(r#"{"source":"pods","warmPool":{"reserved":"r","targetReady":1}}"#);
    assert_eq!(Sources::none().check(&pool, "any"), Ok(()));
}

#[test]
fn a_bad_sources_file_is_refused_with_the_reason() {
    for (text, expected) in [
        (
            "sources:\n  - {name: x, namespaces: [], graphite: {url: u}}\n",
            "graphite",
        ),
        (
            "sources:\n  - {name: x, namespaces: []}\n",
            "exactly one of prometheus: or http:",
        ),
        (
            "sources:\n  - {name: pods, namespaces: [], http: {url: 'http://x'}}\n",
            "built in",
        ),
        (
            "sources:\n  - {name: p, namespaces: [], prometheus: {url: 'prom:9090', queries: {a: up}}}\n",
            "not http(s)",
        ),
        (
            "sources:\n  - {name: p, namespaces: [], timeout: soon, http: {url: 'http://x'}}\n",
            "timeout",
        ),
        (
            "sources:\n  - {name: a, namespaces: [], http: {url: 'http://x'}}\n  - {name: a, namespaces: [], http: {url: 'http://y'}}\n",
            "defined twice",
        ),
    ] {
        let err = Sources::parse(text).unwrap_err();
        assert!(err.to_string().contains(expected), "{text}: {err}");
    }
}

#[test]
fn templates_fill_only_plain_words_and_name_what_is_missing() {
    let target = Target {
        namespace: "shop",
        name: "web",
    };
    let params = BTreeMap::from([("tier".to_owned(), "front".to_owned())]);
    assert_eq!(
        fill(
            "up{namespace=\"{{namespace}}\",app=\"{{ name }}\",tier=\"{{tier}}\"}",
            target,
            &params,
            |v| v.to_owned()
        ),
        Ok("up{namespace=\"shop\",app=\"web\",tier=\"front\"}".to_owned())
    );
    assert_eq!(
        fill("{{region}}", target, &params, |v| v.to_owned()),
        Err(ConfigError::Unfilled("region".to_owned()))
    );
    assert_eq!(
        fill("{{oops", target, &params, |v| v.to_owned())
            .unwrap_err()
            .to_string(),
        "unclosed {{ in \"{{oops\""
    );
}

#[test]
fn prometheus_answers_are_one_number_or_a_named_error() {
    let scalar = serde_json::json!({"status":"success","data":{"resultType":"scalar","result":[1.7e9,"42.5"]}});
    assert_eq!(prometheus::parse(scalar), Ok(42.5));
    let one = serde_json::json!({"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1.7e9,"7"]}]}});
    assert_eq!(prometheus::parse(one), Ok(7.0));
    let empty = serde_json::json!({"status":"success","data":{"resultType":"vector","result":[]}});
    assert_eq!(prometheus::parse(empty), Err(SourceError::Empty));
    let two = serde_json::json!({"status":"success","data":{"resultType":"vector","result":[{"value":[1,"1"]},{"value":[1,"2"]}]}});
    assert_eq!(prometheus::parse(two), Err(SourceError::Several(2)));
    let nan =
        serde_json::json!({"status":"success","data":{"resultType":"scalar","result":[1,"NaN"]}});
    assert!(matches!(
        prometheus::parse(nan),
        Err(SourceError::NotANumber(_))
    ));
    let bad = serde_json::json!({"status":"error","errorType":"bad_data","error":"parse error at char 4"});
    assert_eq!(
        prometheus::parse(bad),
        Err(SourceError::Prometheus(
            "bad_data: parse error at char 4".into()
        ))
    );
    let matrix = serde_json::json!({"status":"success","data":{"resultType":"matrix","result":[]}});
    assert!(matches!(
        prometheus::parse(matrix),
        Err(SourceError::Decode(_))
    ));
    assert_eq!(SourceError::Several(2).kind(), "several");
}

#[test]
fn a_range_answer_is_one_series_of_points_and_gaps_stay_gaps() {
    let t = |s: i64| DateTime::from_timestamp(s, 0).unwrap();
    let one = serde_json::json!({"status":"success","data":{"resultType":"matrix","result":[
        {"metric":{},"values":[[1.7e9,"10"],[1700000060,"NaN"],[1700000120,"-3"],[1700000180,"12.5"]]}]}});
    assert_eq!(
        prometheus::parse_range(one),
        Ok(vec![(t(1_700_000_000), 10.0), (t(1_700_000_180), 12.5)]),
        "NaN and negative points are gaps, not zeros"
    );
    let none = serde_json::json!({"status":"success","data":{"resultType":"matrix","result":[]}});
    assert_eq!(prometheus::parse_range(none), Ok(vec![]));
    let two = serde_json::json!({"status":"success","data":{"resultType":"matrix","result":[{"values":[]},{"values":[]}]}});
    assert_eq!(prometheus::parse_range(two), Err(SourceError::Several(2)));
    let vector = serde_json::json!({"status":"success","data":{"resultType":"vector","result":[]}});
    assert!(matches!(
        prometheus::parse_range(vector),
        Err(SourceError::Decode(_))
    ));
    // A counter's range is its rate between points; a reset gives none.
    let counter = [
        (t(0), 100.0),
        (t(60), 160.0),
        (t(120), 10.0),
        (t(180), 70.0),
    ];
    assert_eq!(rates(&counter), vec![(t(60), 1.0), (t(180), 1.0)]);
}

#[test]
fn json_values_are_demands_only_when_finite_and_not_negative() {
    assert_eq!(demand(&serde_json::json!(42)), Ok(42.0));
    assert_eq!(demand(&serde_json::json!("3.5")), Ok(3.5));
    for bad in [
        serde_json::json!(-1),
        serde_json::json!("lots"),
        serde_json::json!(null),
        serde_json::json!([1]),
    ] {
        assert!(
            matches!(demand(&bad), Err(SourceError::NotANumber(_))),
            "{bad}"
        );
    }
}
