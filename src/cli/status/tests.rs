use super::*;

#[test]
fn a_row_shows_bounds_windows_recommendation_source_and_ledger() {
    let meta: kube::core::ObjectMeta = serde_json::from_value(serde_json::json!({
        "name": "web", "namespace": "shop",
        "annotations": {
            "scale-governor.io/min-replicas": "2",
            "scale-governor.io/windows": "Mon-Fri 08:00-20:00 UTC min=4",
            "scale-governor.io/recommendation": r#"{"v":1,"replicas":6,"reason":"velocity: ...","computedAt":"2026-11-23T09:59:00Z","expiresAt":"2026-11-23T10:29:00Z","strategy":"velocity"}"#,
            "scale-governor.io/state": r#"{"v":1,"source":{"ok":false,"error":"no answer within 5s","since":"2026-11-23T09:58:00Z"}}"#
        }
    }))
    .unwrap();
    let now: DateTime<Utc> = "2026-11-23T10:00:00Z".parse().unwrap();
    let ledger = Ledger::from_compact(
        r#"[[1795427950,2,4,4,"system:kube-controller-manager"],[1795427960,4,6,6,"scale-governor (scale)"]]"#,
    )
    .unwrap();
    let seen = Seen {
        kind: WorkloadKind::Deployment,
        meta: &meta,
        replicas: 6,
        ledger: Some(&ledger),
    };
    let hpas = HpaIndex::new();
    hpas.apply(&serde_json::from_value(serde_json::json!({
        "metadata": {"name": "keda-hpa-web", "namespace": "shop"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "maxReplicas": 10}
    })).unwrap());
    let r = row(&seen, &PodIndex::new(), &hpas, now);
    assert_eq!(
        (r.mode.as_str(), r.bounds.as_str()),
        ("enforce", "6..unbounded")
    );
    assert_eq!(r.windows, ["Mon-Fri 08:00-20:00 UTC min=4"]);
    let rec = r.recommendation.clone().unwrap();
    assert_eq!(
        (
            rec.replicas,
            rec.strategy.as_str(),
            rec.age_seconds,
            rec.fresh
        ),
        (6, "velocity", 60, true)
    );
    assert_eq!(
        r.source.as_deref(),
        Some("failing since 09:58:00: no answer within 5s")
    );
    assert_eq!(
        r.last_changes,
        [
            "09:59:20 scale-governor (scale) 4->6",
            "09:59:10 hpa/keda-hpa-web (system:kube-controller-manager) 2->4"
        ]
    );
    let table = render(std::slice::from_ref(&r), Output::Text);
    assert!(table.starts_with("WORKLOAD"), "{table}");
    assert!(table.contains("6 floor by velocity (60s ago)"), "{table}");
    let json: serde_json::Value = serde_json::from_str(&render(&[r], Output::Json)).unwrap();
    assert_eq!(json[0]["recommendation"]["replicas"], 6);
}

#[test]
fn with_risk_a_row_shows_the_stated_and_achieved_shares_and_the_headroom() {
    let meta = |state: &str| -> kube::core::ObjectMeta {
        serde_json::from_value(serde_json::json!({
            "name": "web", "namespace": "shop",
            "annotations": {
                "scale-governor.io/recommend": r#"{"targetPerPod":10,"trend":"seasonal","risk":"1%"}"#,
                "scale-governor.io/state": state
            }
        }))
        .unwrap()
    };
    let now: DateTime<Utc> = "2026-11-23T10:00:00Z".parse().unwrap();
    let shown = |meta: &kube::core::ObjectMeta| {
        let seen = Seen {
            kind: WorkloadKind::Deployment,
            meta,
            replicas: 46,
            ledger: None,
        };
        row(&seen, &PodIndex::new(), &HpaIndex::new(), now)
    };
    let r = shown(&meta(
        r#"{"v":1,"risk":{"stated":0.01,"achieved":0.008,"windowSeconds":86400,"headroom":38.0}}"#,
    ));
    assert_eq!(
        r.risk.map(|s| (s.stated, s.achieved, s.headroom)),
        Some((0.01, Some(0.008), Some(38.0)))
    );
    let table = render(std::slice::from_ref(&r), Output::Text);
    assert!(table.lines().next().unwrap().contains("RISK"), "{table}");
    assert!(
        table.contains("risk 1 %, achieved 0.8 % over 24 h, headroom 38"),
        "{table}"
    );
    let json: serde_json::Value = serde_json::from_str(&render(&[r], Output::Json)).unwrap();
    assert_eq!(
        json[0]["risk"],
        serde_json::json!({"stated": 0.01, "achieved": 0.008, "windowSeconds": 86400, "headroom": 38.0})
    );
    // Before the loop has scored anything, the stated risk alone.
    let r = shown(&meta(r#"{"v":1,"risk":{"stated":0.01,"windowSeconds":0}}"#));
    let table = render(std::slice::from_ref(&r), Output::Text);
    assert!(table.contains("risk 1 %, nothing scored yet"), "{table}");
    // Without risk: nothing shown, null in JSON.
    let r = shown(&meta(r#"{"v":1}"#));
    assert_eq!(r.risk, None);
    let json: serde_json::Value = serde_json::from_str(&render(&[r], Output::Json)).unwrap();
    assert_eq!(json[0]["risk"], serde_json::Value::Null);
}
