use super::*;
use crate::engine::Change;

fn now() -> DateTime<Utc> {
    "2026-11-23T10:00:00Z".parse().unwrap()
}

fn change(secs: i64, from: u32, to: u32) -> Change {
    Change {
        at: now() + chrono::Duration::seconds(secs),
        from,
        to,
        requested: to,
        actor: "kubectl".into(),
        pending: false,
        watched: false,
        generation: None,
        span: None,
    }
}

#[test]
fn a_ledger_object_reads_back_what_was_written() {
    let mut ledger = Ledger::new();
    ledger.record(change(-20, 10, 14));
    ledger.record(change(-5, 14, 12));
    let key = "shop/web";
    let object = to_object(
        WorkloadKind::StatefulSet,
        key,
        Some("uid-1"),
        &ledger,
        Some("42".into()),
        Summaries {
            seasonal: Some("{\"v\":1}"),
            risk: Some("{\"v\":1,\"fraction\":0.1}"),
        },
    );
    let name = object.metadata.name.clone().unwrap();
    assert_eq!(name, object_name(WorkloadKind::StatefulSet, key));
    assert!(name.len() <= 63, "{name}");
    let (kind, read_key, persisted) = from_object(&object, now()).unwrap();
    assert_eq!((kind, read_key.as_str()), (WorkloadKind::StatefulSet, key));
    assert_eq!(persisted.ledger, ledger);
    assert_eq!(persisted.uid.as_deref(), Some("uid-1"));
    assert_eq!(persisted.resource_version.as_deref(), Some("42"));
    // The seasonal history rides along, as text, for every writer to carry.
    assert_eq!(persisted.seasonal.as_deref(), Some("{\"v\":1}"));
    // So does a stated risk's calibration.
    assert_eq!(
        persisted.risk.as_deref(),
        Some("{\"v\":1,\"fraction\":0.1}")
    );
    assert_eq!(persisted.summaries().risk, persisted.risk.as_deref());
}

#[test]
fn names_are_stable_and_tell_kinds_and_workloads_apart() {
    let d = object_name(WorkloadKind::Deployment, "shop/web");
    assert_eq!(d, object_name(WorkloadKind::Deployment, "shop/web"));
    assert_ne!(d, object_name(WorkloadKind::StatefulSet, "shop/web"));
    assert_ne!(d, object_name(WorkloadKind::Deployment, "shop/web2"));
    // Fixed across versions: a renamed object would orphan every ledger.
    assert_eq!(d, "scale-governor-ledger-09f65bb27ca158d6");
    let long = format!("{}/{}", "n".repeat(63), "w".repeat(253));
    assert!(object_name(WorkloadKind::Deployment, &long).len() <= 63);
}

fn empty_object() -> ConfigMap {
    to_object(
        WorkloadKind::Deployment,
        "shop/web",
        None,
        &Ledger::new(),
        None,
        Summaries::default(),
    )
}

#[test]
fn an_object_that_names_no_workload_or_an_unknown_format_is_not_used() {
    let mut object = empty_object();
    let data = object.data.as_mut().unwrap();
    data.insert("ledger".into(), r#"[[1795428000,1,9,9,"x"]]"#.into());
    data.insert("format".into(), "2".into());
    let (_, _, persisted) = from_object(&object, now()).unwrap();
    assert!(persisted.ledger.changes().is_empty(), "a newer format");
    object.data.as_mut().unwrap().remove("kind");
    assert!(from_object(&object, now()).is_none());
    object.data = None;
    assert!(from_object(&object, now()).is_none());
}

#[test]
fn a_forged_entry_is_dropped_on_read_and_the_rest_is_kept() {
    let mut object = empty_object();
    let ok = now().timestamp() - 10;
    let year = now().timestamp() + 365 * 86_400;
    object.data.as_mut().unwrap().insert(
        "ledger".into(),
        format!(r#"[[{ok},4,8,8,"hpa"],[{year},8,9,9,"forger"],[{ok},-1,3,3,"x"]]"#),
    );
    let (_, _, persisted) = from_object(&object, now()).unwrap();
    let kept: Vec<(u32, u32)> = persisted
        .ledger
        .changes()
        .iter()
        .map(|c| (c.from, c.to))
        .collect();
    assert_eq!(kept, [(4, 8)]);
}
