//! Proves the local control plane behaves like a real cluster on every path
//! scale-governor relies on: Deployments, `/scale`, the deployment and
//! replicaset controllers, and mutating webhooks called on a loopback URL.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Json, Router, extract::State, routing::post};
use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use k8s_openapi::api::{
    admissionregistration::v1::MutatingWebhookConfiguration,
    apps::v1::{Deployment, ReplicaSet},
    core::v1::Pod,
};
use kube::{
    Api,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use serial_test::parallel;

use crate::support::{self, Cluster, HttpsServer, TestNamespace, eventually};

const TIMEOUT: Duration = Duration::from_secs(30);

#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn apiserver_reports_the_pinned_version() {
    let cluster = support::require_cluster!();
    let pinned = include_str!("../controlplane/k8s/go.mod")
        .lines()
        .find_map(|l| l.strip_prefix("require k8s.io/kubernetes "))
        .expect("go.mod requires k8s.io/kubernetes")
        .trim();
    assert_eq!(
        pinned, "v1.35.4",
        "update this test and docs/testing.md when bumping"
    );

    let info = cluster.client().apiserver_version().await.unwrap();
    // Without the build's -ldflags this would be v0.0.0-master.
    assert_eq!(info.git_version, pinned);
    assert_eq!((info.major.as_str(), info.minor.as_str()), ("1", "35"));
}

#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn creates_a_deployment_in_a_fresh_namespace() {
    let cluster = support::require_cluster!();
    let ns = cluster.namespace("create").await;
    let deployments: Api<Deployment> = ns.api(cluster.client());

    deployments
        .create(&PostParams::default(), &support::deployment("web", 2))
        .await
        .unwrap();

    let got = deployments.get("web").await.unwrap();
    assert_eq!(got.metadata.namespace.as_deref(), Some(ns.name()));
    assert_eq!(got.spec.unwrap().replicas, Some(2));
}

#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn kubectl_scale_and_patch_scale_update_spec_replicas() {
    let cluster = support::require_cluster!();
    let ns = cluster.namespace("scale").await;
    let deployments: Api<Deployment> = ns.api(cluster.client());
    deployments
        .create(&PostParams::default(), &support::deployment("web", 1))
        .await
        .unwrap();

    cluster
        .kubectl_ok(["scale", "deployment/web", "--replicas=3", "-n", ns.name()])
        .await;
    assert_eq!(replicas(&deployments, "web").await, 3);
    assert_eq!(
        deployments
            .get_scale("web")
            .await
            .unwrap()
            .spec
            .unwrap()
            .replicas,
        Some(3)
    );

    let patch = Patch::Merge(json!({"spec": {"replicas": 5}}));
    deployments
        .patch_scale("web", &PatchParams::default(), &patch)
        .await
        .unwrap();
    assert_eq!(replicas(&deployments, "web").await, 5);
}

#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn deployment_controller_creates_a_replicaset_and_its_pods() {
    let cluster = support::require_cluster!();
    let ns = cluster.namespace("rs").await;
    let client = cluster.client();
    let deployments: Api<Deployment> = ns.api(client.clone());
    let replicasets: Api<ReplicaSet> = ns.api(client.clone());
    let pods: Api<Pod> = ns.api(client);
    deployments
        .create(&PostParams::default(), &support::deployment("web", 1))
        .await
        .unwrap();

    let rs = eventually("a ReplicaSet owned by deployment/web", TIMEOUT, || async {
        let list = replicasets
            .list(&ListParams::default().labels("app=web"))
            .await
            .ok()?;
        list.items.into_iter().find(|rs| {
            rs.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.kind == "Deployment" && o.name == "web")
        })
    })
    .await;
    let rs_name = rs.metadata.name.unwrap();

    // The controllers keep following: scale up and watch the ReplicaSet and
    // its pods (started by kwok on the fake Node) catch up. Pods existing at all
    // shows ServiceAccount admission is off.
    cluster
        .kubectl_ok(["scale", "deployment/web", "--replicas=3", "-n", ns.name()])
        .await;
    eventually(
        "the ReplicaSet to follow to 3 replicas",
        TIMEOUT,
        || async {
            let rs = replicasets.get(&rs_name).await.ok()?;
            (rs.spec?.replicas == Some(3)).then_some(())
        },
    )
    .await;
    eventually("3 pods", TIMEOUT, || async {
        let list = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .ok()?;
        (list.items.len() == 3).then_some(())
    })
    .await;
}

#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn mutating_webhook_on_a_loopback_url_patches_created_objects() {
    let cluster = support::require_cluster!();
    let ns = cluster.namespace("hook").await;
    let responder = Responder::start(|review| {
        // `~1` escapes the `/` of the label key in a JSON pointer.
        let op = if review.pointer("/request/object/metadata/labels").is_some() {
            json!({"op": "add", "path": "/metadata/labels/webhook.scale-governor.io~1seen", "value": "yes"})
        } else {
            json!({"op": "add", "path": "/metadata/labels", "value": {"webhook.scale-governor.io/seen": "yes"}})
        };
        Some(json!([op]))
    })
    .await;
    let rules = json!([{"apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["deployments"], "operations": ["CREATE"]}]);
    let _hook = register_webhook(cluster, &ns, &responder, rules).await;
    let deployments: Api<Deployment> = ns.api(cluster.client());

    // The apiserver loads webhook configurations asynchronously; a server-side
    // dry run shows when ours is live without leaving anything behind.
    eventually("the webhook to be live", TIMEOUT, || async {
        let dry = PostParams {
            dry_run: true,
            ..Default::default()
        };
        let probe = deployments
            .create(&dry, &support::deployment("probe", 1))
            .await
            .ok()?;
        probe
            .metadata
            .labels?
            .contains_key("webhook.scale-governor.io/seen")
            .then_some(())
    })
    .await;

    deployments
        .create(&PostParams::default(), &support::deployment("web", 1))
        .await
        .unwrap();

    let stored = deployments.get("web").await.unwrap();
    assert_eq!(
        stored
            .metadata
            .labels
            .unwrap()
            .get("webhook.scale-governor.io/seen")
            .map(String::as_str),
        Some("yes")
    );
    let seen = responder.seen();
    let review = seen
        .iter()
        .find(|r| r.pointer("/request/name") == Some(&json!("web")))
        .expect("responder saw web");
    assert_eq!(review["request"]["operation"], "CREATE");
    assert_eq!(review["request"]["dryRun"], false);
    assert_eq!(review["request"]["namespace"], ns.name());
}

/// Checks design.md's facts about `/scale` on the real apiserver: the webhook
/// gets an `autoscaling/v1` Scale without labels, and a JSONPatch on
/// `/spec/replicas` clamps what `kubectl scale` asked for.
#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn mutating_webhook_can_clamp_a_kubectl_scale() {
    let cluster = support::require_cluster!();
    let ns = cluster.namespace("clamp").await;
    let responder = Responder::start(|review| {
        let asked = review.pointer("/request/object/spec/replicas")?.as_i64()?;
        (asked > 4).then(|| json!([{"op": "replace", "path": "/spec/replicas", "value": 4}]))
    })
    .await;
    let rules = json!([{"apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["deployments/scale"], "operations": ["UPDATE"]}]);
    let _hook = register_webhook(cluster, &ns, &responder, rules).await;
    let deployments: Api<Deployment> = ns.api(cluster.client());
    deployments
        .create(&PostParams::default(), &support::deployment("web", 1))
        .await
        .unwrap();

    eventually("the webhook to be live", TIMEOUT, || async {
        let dry = PatchParams {
            dry_run: true,
            ..Default::default()
        };
        let patch = Patch::Merge(json!({"spec": {"replicas": 9}}));
        let scale = deployments.patch_scale("web", &dry, &patch).await.ok()?;
        (scale.spec?.replicas == Some(4)).then_some(())
    })
    .await;

    cluster
        .kubectl_ok(["scale", "deployment/web", "--replicas=10", "-n", ns.name()])
        .await;
    assert_eq!(replicas(&deployments, "web").await, 4);

    let seen = responder.seen();
    let review = seen
        .iter()
        .rfind(|r| r["request"]["dryRun"] == false)
        .expect("responder saw kubectl scale");
    let request = &review["request"];
    assert_eq!(
        request["kind"],
        json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})
    );
    assert_eq!(
        request["resource"],
        json!({"group": "apps", "version": "v1", "resource": "deployments"})
    );
    assert_eq!(request["subResource"], "scale");
    assert_eq!(request["operation"], "UPDATE");
    assert_eq!(request["userInfo"]["username"], "admin");
    assert_eq!(request["object"]["spec"]["replicas"], 10);
    assert_eq!(request["oldObject"]["spec"]["replicas"], 1);
    assert!(
        request["object"]["metadata"].get("labels").is_none(),
        "Scale carries no labels: {request}"
    );
}

async fn replicas(deployments: &Api<Deployment>, name: &str) -> i32 {
    deployments
        .get(name)
        .await
        .unwrap()
        .spec
        .unwrap()
        .replicas
        .unwrap()
}

/// A test-only admission webhook: records every AdmissionReview and answers
/// with the JSONPatch `patch` returns (or a plain allow for `None`).
struct Responder {
    server: HttpsServer,
    seen: Arc<Mutex<Vec<Value>>>,
}

type PatchFn = fn(&Value) -> Option<Value>;

impl Responder {
    async fn start(patch: PatchFn) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let router = Router::new()
            .route("/mutate", post(review))
            .with_state((seen.clone(), patch));
        Self {
            server: HttpsServer::start(router).await,
            seen,
        }
    }

    fn seen(&self) -> Vec<Value> {
        self.seen.lock().unwrap().clone()
    }
}

async fn review(
    State((seen, patch)): State<(Arc<Mutex<Vec<Value>>>, PatchFn)>,
    Json(review): Json<Value>,
) -> Json<Value> {
    let mut response = json!({"uid": review["request"]["uid"], "allowed": true});
    if let Some(ops) = patch(&review) {
        // The wire format is base64 of the JSON Patch bytes (not an array of
        // numbers, which is what kube-rs's AdmissionResponse produces, #1781).
        response["patchType"] = json!("JSONPatch");
        response["patch"] = json!(BASE64.encode(serde_json::to_vec(&ops).unwrap()));
    }
    seen.lock().unwrap().push(review);
    Json(
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}),
    )
}

/// Registers `responder` for `rules`, scoped to `ns` so parallel tests and a
/// shared cluster never see each other's webhooks. Deleted when the guard drops.
async fn register_webhook(
    cluster: &Cluster,
    ns: &TestNamespace,
    responder: &Responder,
    rules: Value,
) -> support::DeleteOnDrop {
    let name = format!("test-{ns}");
    let config: MutatingWebhookConfiguration = serde_json::from_value(json!({
        "metadata": {"name": name},
        "webhooks": [{
            "name": "mutate.test.scale-governor.io",
            "clientConfig": {"url": format!("{}/mutate", responder.server.url), "caBundle": responder.server.tls.ca_bundle()},
            "rules": rules,
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns.name()}},
            // Fail, so a webhook the apiserver cannot reach breaks the test
            // loudly instead of being skipped.
            "failurePolicy": "Fail",
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": 5
        }]
    }))
    .unwrap();
    let guard = cluster.delete_on_drop("mutatingwebhookconfiguration", &name);
    Api::<MutatingWebhookConfiguration>::all(cluster.client())
        .create(&PostParams::default(), &config)
        .await
        .unwrap();
    guard
}
