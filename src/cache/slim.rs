//! A Deployment or StatefulSet as the cache reads it off the watch: its
//! metadata, `spec.replicas` and `status.readyReplicas` (what a stated
//! risk is scored against), nothing else. The pod template and the rest of
//! the status are skipped while the JSON is read instead of being built and
//! dropped, and each `managedFields` entry keeps only what `managed` looks
//! at (who wrote `spec.replicas`, which annotations a manager owns) instead
//! of its whole field set as nested maps. On the initial list of a large
//! fleet that was most of the decoding garbage the process kept afterwards.

use std::{borrow::Cow, collections::BTreeMap, marker::PhantomData};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    FieldsV1, ManagedFieldsEntry, ObjectMeta, Time,
};
use kube::Resource;
use serde::{Deserialize, Deserializer, de::IgnoredAny};
use serde_json::{Map, Value};

/// `K`, read slim.
#[derive(Debug, Clone)]
pub(crate) struct Slim<K> {
    metadata: ObjectMeta,
    /// `spec.replicas` as stored.
    pub(crate) replicas: Option<i32>,
    /// `status.readyReplicas`: pods ready now, as the workload's controller
    /// counts them.
    pub(crate) ready: Option<i32>,
    kind: PhantomData<fn() -> K>,
}

impl<K: Resource<DynamicType = ()>> Resource for Slim<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl<'de, K> Deserialize<'de> for Slim<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Object {
            #[serde(default)]
            metadata: Meta,
            #[serde(default)]
            spec: Option<Spec>,
            #[serde(default)]
            status: Option<Status>,
        }
        #[derive(Deserialize)]
        struct Spec {
            #[serde(default)]
            replicas: Option<i32>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Status {
            #[serde(default)]
            ready_replicas: Option<i32>,
        }
        let o = Object::deserialize(d)?;
        Ok(Slim {
            metadata: o.metadata.into(),
            replicas: o.spec.and_then(|s| s.replicas),
            ready: o.status.and_then(|s| s.ready_replicas),
            kind: PhantomData,
        })
    }
}

/// The metadata fields anything in the governor reads.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    generation: Option<i64>,
    creation_timestamp: Option<Time>,
    deletion_timestamp: Option<Time>,
    labels: Option<BTreeMap<String, String>>,
    annotations: Option<BTreeMap<String, String>>,
    managed_fields: Option<Vec<Managed>>,
}

impl From<Meta> for ObjectMeta {
    fn from(m: Meta) -> ObjectMeta {
        ObjectMeta {
            name: m.name,
            namespace: m.namespace,
            uid: m.uid,
            resource_version: m.resource_version,
            generation: m.generation,
            creation_timestamp: m.creation_timestamp,
            deletion_timestamp: m.deletion_timestamp,
            labels: m.labels,
            annotations: m.annotations,
            managed_fields: m
                .managed_fields
                .map(|all| all.into_iter().map(ManagedFieldsEntry::from).collect()),
            ..ObjectMeta::default()
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Managed {
    manager: Option<String>,
    operation: Option<String>,
    api_version: Option<String>,
    time: Option<Time>,
    subresource: Option<String>,
    fields_type: Option<String>,
    #[serde(rename = "fieldsV1")]
    fields: Option<Fields>,
}

/// Of a field set: whether it holds `spec.replicas`, and which annotations.
#[derive(Deserialize)]
struct Fields {
    #[serde(rename = "f:spec")]
    spec: Option<SpecFields>,
    #[serde(rename = "f:metadata")]
    metadata: Option<MetaFields>,
}

#[derive(Deserialize)]
struct SpecFields {
    #[serde(rename = "f:replicas")]
    replicas: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct MetaFields {
    #[serde(rename = "f:annotations")]
    annotations: Option<BTreeMap<String, IgnoredAny>>,
}

impl From<Managed> for ManagedFieldsEntry {
    fn from(m: Managed) -> ManagedFieldsEntry {
        // The same shape as the full field set, holding only what was kept.
        let fields_v1 = m.fields.map(|f| {
            let mut root = Map::new();
            if f.spec.is_some_and(|s| s.replicas.is_some()) {
                root.insert("f:spec".into(), json_object([("f:replicas", Map::new())]));
            }
            if let Some(annotations) = f.metadata.and_then(|m| m.annotations) {
                let keys = annotations.into_keys().map(|k| (k, Map::new()));
                let annotations = Value::Object(keys.map(|(k, v)| (k, Value::Object(v))).collect());
                root.insert(
                    "f:metadata".into(),
                    Value::Object(Map::from_iter([("f:annotations".to_owned(), annotations)])),
                );
            }
            FieldsV1(Value::Object(root))
        });
        ManagedFieldsEntry {
            manager: m.manager,
            operation: m.operation,
            api_version: m.api_version,
            time: m.time,
            subresource: m.subresource,
            fields_type: m.fields_type,
            fields_v1,
        }
    }
}

fn json_object<const N: usize>(entries: [(&str, Map<String, Value>); N]) -> Value {
    Value::Object(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Value::Object(v)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::Deployment;

    use super::*;
    use crate::managed::{annotation_by_governor, replicas_writer, replicas_written_at};

    /// A Deployment as the apiserver sends it, template and status included.
    const STORED: &str = r#"{
      "apiVersion": "apps/v1", "kind": "Deployment",
      "metadata": {
        "name": "web", "namespace": "shop", "uid": "u-1", "resourceVersion": "42", "generation": 3,
        "creationTimestamp": "2026-11-23T09:00:00Z",
        "labels": {"app": "web", "scale-governor.io/governed": "true"},
        "annotations": {"scale-governor.io/max-replicas": "20", "scale-governor.io/state": "{}"},
        "managedFields": [
          {"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "apps/v1",
           "time": "2026-11-23T09:00:00Z", "fieldsType": "FieldsV1",
           "fieldsV1": {"f:metadata": {"f:annotations": {".": {}, "f:scale-governor.io/max-replicas": {}}, "f:labels": {"f:app": {}}},
                        "f:spec": {"f:selector": {}, "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:image": {}}}}}}}},
          {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "autoscaling/v1",
           "time": "2026-11-23T09:05:00Z", "fieldsType": "FieldsV1", "subresource": "scale",
           "fieldsV1": {"f:spec": {"f:replicas": {}}}},
          {"manager": "scale-governor", "operation": "Apply", "apiVersion": "apps/v1",
           "time": "2026-11-23T09:06:00Z", "fieldsType": "FieldsV1",
           "fieldsV1": {"f:metadata": {"f:annotations": {"f:scale-governor.io/state": {}}}}}
        ]
      },
      "spec": {"replicas": 7, "selector": {"matchLabels": {"app": "web"}},
               "template": {"metadata": {"labels": {"app": "web"}},
                            "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]}}},
      "status": {"replicas": 7, "readyReplicas": 5, "conditions": [{"type": "Available", "status": "False"}]}
    }"#;

    #[test]
    fn the_slim_read_says_what_the_full_one_does() {
        let full: Deployment = serde_json::from_str(STORED).unwrap();
        let slim: Slim<Deployment> = serde_json::from_str(STORED).unwrap();
        assert_eq!((slim.replicas, slim.ready), (Some(7), Some(5)));
        let status = full.status.as_ref().unwrap();
        assert_eq!(status.ready_replicas, slim.ready);
        let (a, b) = (full.meta(), slim.meta());
        assert_eq!(
            (
                &a.name,
                &a.namespace,
                &a.uid,
                &a.generation,
                &a.labels,
                &a.annotations
            ),
            (
                &b.name,
                &b.namespace,
                &b.uid,
                &b.generation,
                &b.labels,
                &b.annotations
            )
        );
        assert_eq!(replicas_writer(&full), replicas_writer(&slim));
        assert_eq!(
            replicas_writer(&slim).as_deref(),
            Some("kube-controller-manager (scale)")
        );
        assert_eq!(replicas_written_at(&full), replicas_written_at(&slim));
        let managed = |m: &ObjectMeta| m.managed_fields.clone().unwrap();
        for key in ["scale-governor.io/state", "scale-governor.io/max-replicas"] {
            assert_eq!(
                annotation_by_governor(&managed(a), key),
                annotation_by_governor(&managed(b), key),
                "{key}"
            );
        }
        assert!(annotation_by_governor(
            &managed(b),
            "scale-governor.io/state"
        ));
        // The pod template's field set is not kept.
        let kept = serde_json::to_string(&managed(b)).unwrap();
        assert!(
            !kept.contains("f:template") && !kept.contains("f:labels"),
            "{kept}"
        );
    }

    #[test]
    fn a_workload_without_spec_or_field_sets_reads_as_defaults() {
        let slim: Slim<Deployment> = serde_json::from_str(
            r#"{"metadata": {"name": "x", "managedFields": [{"manager": "m"}]}}"#,
        )
        .unwrap();
        assert_eq!((slim.replicas, slim.ready), (None, None));
        assert_eq!(replicas_writer(&slim), None);
        assert!(
            serde_json::from_str::<Slim<Deployment>>(r#"{"spec": {"replicas": "7"}}"#).is_err()
        );
    }
}
