//! What `managedFields` say about who wrote a field: the ledger names the
//! actor of a replica change seen on the watch, and a `recommendation`
//! counts only when the governor's own field manager wrote it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use kube::Resource;

use crate::policy::keys;

/// Field manager of the governor's own writes.
pub(crate) const FIELD_MANAGER: &str = "scale-governor";

/// The field manager that most recently wrote `spec.replicas`, from
/// `managedFields`, e.g. `kubectl (scale)` or `kube-controller-manager (scale)`.
pub(crate) fn replicas_writer<K: Resource>(obj: &K) -> Option<String> {
    last_replicas_write(obj).and_then(|m| {
        let manager = m.manager.as_deref()?;
        Some(match m.subresource.as_deref() {
            Some(sub) if !sub.is_empty() => format!("{manager} ({sub})"),
            _ => manager.to_owned(),
        })
    })
}

/// When `spec.replicas` was last changed, to the second, from
/// `managedFields`; `None` when that was the object's creation, which is
/// no scaling event.
pub(crate) fn replicas_written_at<K: Resource>(obj: &K) -> Option<chrono::DateTime<chrono::Utc>> {
    let time = last_replicas_write(obj)?.time.as_ref()?.0;
    if let Some(created) = &obj.meta().creation_timestamp
        && time <= created.0
    {
        return None;
    }
    chrono::DateTime::from_timestamp(time.as_second(), 0)
}

fn last_replicas_write<K: Resource>(obj: &K) -> Option<&ManagedFieldsEntry> {
    obj.meta()
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| {
            m.fields_v1
                .as_ref()
                .and_then(|f| f.0.get("f:spec"))
                .and_then(|s| s.get("f:replicas"))
                .is_some()
        })
        .max_by_key(|m| m.time.as_ref().map(|t| t.0))
}

/// Whether the governor's field manager is among the owners of the
/// `recommendation` annotation. An `Update` by anyone else takes sole
/// ownership, so a hand-written value is never the governor's; a server-side
/// apply of the very same value shares it, which is harmless.
pub(crate) fn recommendation_by_governor(entries: &[ManagedFieldsEntry]) -> bool {
    annotation_by_governor(entries, keys::RECOMMENDATION)
}

/// [`recommendation_by_governor`] for any annotation the governor writes,
/// e.g. `state`: a copy carried into a CREATE, or written by hand, is not
/// the governor's.
pub(crate) fn annotation_by_governor(entries: &[ManagedFieldsEntry], annotation: &str) -> bool {
    let key = format!("f:{annotation}");
    entries.iter().any(|m| {
        m.manager.as_deref() == Some(FIELD_MANAGER)
            && m.fields_v1
                .as_ref()
                .and_then(|f| f.0.get("f:metadata"))
                .and_then(|m| m.get("f:annotations"))
                .and_then(|a| a.get(&key))
                .is_some()
    })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::Deployment;

    use super::*;

    #[test]
    fn replicas_writer_picks_the_latest_manager_of_spec_replicas() {
        let obj: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "managedFields": [
                {"manager": "kubectl-client-side-apply", "operation": "Update", "time": "2026-11-23T09:00:00Z",
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {}}}},
                {"manager": "kube-controller-manager", "operation": "Update", "subresource": "scale",
                 "time": "2026-11-23T09:30:00Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}},
                {"manager": "kube-controller-manager", "operation": "Update", "subresource": "status",
                 "time": "2026-11-23T09:45:00Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {"f:replicas": {}}}}
            ]},
            "spec": {"replicas": 3, "selector": {}, "template": {}}
        }))
        .unwrap();
        assert_eq!(
            replicas_writer(&obj).as_deref(),
            Some("kube-controller-manager (scale)")
        );
    }

    #[test]
    fn only_the_governors_field_manager_makes_a_recommendation_count() {
        let entries = |manager: &str| -> Vec<ManagedFieldsEntry> {
            serde_json::from_value(serde_json::json!([
                {"manager": manager, "operation": "Apply", "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:metadata": {"f:annotations": {"f:scale-governor.io/recommendation": {}}}}},
                {"manager": "kubectl", "operation": "Update", "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:metadata": {"f:annotations": {"f:other": {}}}}}
            ]))
            .unwrap()
        };
        assert!(recommendation_by_governor(&entries("scale-governor")));
        assert!(!recommendation_by_governor(&entries("kubectl")));
        assert!(!recommendation_by_governor(&[]));
    }
}
