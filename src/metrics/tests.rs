use super::*;

#[test]
fn names_follow_the_house_convention() {
    let m = Metrics::new();
    m.admission
        .reviews
        .get_or_create(&ReviewLabels {
            endpoint: "mutate",
            kind: "deployments",
            operation: "SCALE",
            outcome: "clamped",
            rule: "max-replicas",
        })
        .inc();
    m.admission
        .duration
        .get_or_create(&EndpointLabels { endpoint: "mutate" })
        .observe(0.0002);
    let text = m.encode();
    assert!(text.contains(
        "scale_governor_admission_reviews_total{endpoint=\"mutate\",kind=\"deployments\",operation=\"SCALE\",outcome=\"clamped\",rule=\"max-replicas\"} 1"
    ), "{text}");
    assert!(text.contains("scale_governor_admission_duration_seconds_bucket"));
    assert!(text.contains("# TYPE scale_governor_tls_cert_expiry_seconds gauge"));
    assert!(text.contains(&format!(
        "scale_governor_build_info{{version=\"{}\",revision=\"",
        env!("CARGO_PKG_VERSION")
    )));
    assert!(
        text.contains("# TYPE process_resident_memory_bytes gauge"),
        "{text}"
    );
    let plain = m.encode_text();
    assert!(plain.contains("# TYPE scale_governor_admission_reviews_total counter"));
    assert!(plain.contains("# TYPE process_cpu_seconds_total counter"));
    assert!(!plain.contains("# EOF"));
}

/// Every series the shipped alerts and dashboard read exists, under
/// that name, once each family has a sample.
#[test]
fn the_monitoring_kit_reads_only_series_that_exist() {
    let m = Metrics::new();
    let result = ResultLabels { result: "ok" };
    let endpoint = EndpointLabels { endpoint: "mutate" };
    let source = "s".to_owned();
    m.admission
        .reviews
        .get_or_create(&ReviewLabels {
            endpoint: "mutate",
            kind: "deployments",
            operation: "SCALE",
            outcome: "denied",
            rule: "max-replicas",
        })
        .inc();
    m.admission.bad_reviews.get_or_create(&endpoint).inc();
    m.admission.duration.get_or_create(&endpoint).observe(0.001);
    m.cache
        .workloads
        .get_or_create(&KindLabels {
            kind: "deployments",
        })
        .set(1);
    m.tls.cert_reloads.get_or_create(&result).inc();
    m.admission.events.get_or_create(&result).inc();
    m.cache.ledger_writes.get_or_create(&result).inc();
    m.admission
        .policy_edits
        .get_or_create(&EditLabels { kind: "refused" })
        .inc();
    m.recommender
        .samples
        .get_or_create(&SampleLabels {
            source: source.clone(),
            result: "ok",
        })
        .inc();
    m.recommender
        .sample_duration
        .get_or_create(&SourceLabels { source })
        .observe(0.01);
    m.recommender
        .writes
        .get_or_create(&WriteLabels {
            kind: "scale",
            result: "ok",
        })
        .inc();
    m.recommender.show_risk(
        &WorkloadLabels {
            kind: "deployments",
            namespace: "shop".into(),
            name: "web".into(),
        },
        Some(RiskStatus {
            stated: 0.01,
            achieved: Some(0.02),
            window_seconds: 86_400,
            headroom: Some(1.0),
        }),
    );
    let text = m.encode_text();
    let exported: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let kit = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/monitoring");
    let dashboard = std::fs::read_to_string(kit.join("dashboard.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    assert!(dashboard["panels"].as_array().is_some_and(|p| p.len() > 5));
    for file in ["prometheusrule.yaml", "dashboard.json"] {
        let used = std::fs::read_to_string(kit.join(file)).unwrap();
        for (at, _) in used
            .match_indices("scale_governor_")
            .chain(used.match_indices("process_"))
        {
            let name: String = used[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(&name);
            assert!(
                exported.contains(&family),
                "{file} reads {name}, which is not exported: {exported:?}"
            );
        }
    }
}

#[test]
fn a_stated_risk_is_a_series_per_workload_until_it_goes() {
    let m = Metrics::new();
    let web = WorkloadLabels {
        kind: "deployments",
        namespace: "shop".into(),
        name: "web".into(),
    };
    let status = |achieved| RiskStatus {
        stated: 0.01,
        achieved,
        window_seconds: 86_400,
        headroom: Some(38.0),
    };
    let series = "{kind=\"deployments\",namespace=\"shop\",name=\"web\"}";
    // Nothing scored yet: the stated risk, no achieved share.
    m.recommender.show_risk(&web, Some(status(None)));
    let text = m.encode_text();
    assert!(
        text.contains(&format!(
            "scale_governor_recommender_risk_stated_ratio{series} 0.01"
        )),
        "{text}"
    );
    assert!(!text.contains("scale_governor_recommender_risk_achieved_ratio{"));
    m.recommender.show_risk(&web, Some(status(Some(0.008))));
    let text = m.encode_text();
    assert!(
        text.contains(&format!(
            "scale_governor_recommender_risk_achieved_ratio{series} 0.008"
        )),
        "{text}"
    );
    // The annotation no longer states a risk: both series go.
    m.recommender.show_risk(&web, None);
    assert!(!m.encode_text().contains(series));
    m.recommender.show_risk(&web, Some(status(Some(0.02))));
    m.recommender.forget_all_risks();
    assert!(!m.encode_text().contains(series));
}
