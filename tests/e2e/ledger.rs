//! The ledger and the governor's own privileges on the real apiserver: what
//! the governor's identity may and may not do, state nobody else may forge,
//! a forged ledger entry dropped on read, the granted permissions diffed
//! against a committed list, and a start with the apiserver away.

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ConfigMap, Pod},
};
use kube::{
    Api,
    api::{ListParams, Patch, PatchParams},
};
use serde_json::json;
use serial_test::parallel;

use crate::support::{
    self,
    e2e::{WAIT, create, grant_scaler, patch, replicas, setup, workload},
    eventually,
};

/// A client authenticated as the governor's ServiceAccount.
async fn governor_client(s: &support::e2e::Setup) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(s.governor.identity_kubeconfig()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// A merge patch; the apiserver's message when refused.
async fn try_patch<K>(api: &Api<K>, name: &str, patch: serde_json::Value) -> Result<(), String>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Writes the `state` annotation as the governor does.
async fn set_state(deployments: &Api<Deployment>, state: &str) {
    let patch = json!({"metadata": {"annotations": {"scale-governor.io/state": state}}});
    try_patch(deployments, "web", patch).await.unwrap();
}

/// What RBAC grants the governor (`patch` on every workload and pod) is
/// narrowed at admission to its own annotations, pod deletion costs and
/// `/scale`: a compromised governor cannot rewrite a pod template.
#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn the_governors_identity_may_change_only_what_it_owns() {
    let Some(s) = setup("confine").await else {
        return;
    };
    create(
        &s,
        &workload("Deployment", "web", 2, &[("max-replicas", "10")]),
    )
    .await;
    s.cluster
        .kubectl_ok([
            "run",
            "lone",
            "-n",
            s.ns.name(),
            "--image=registry.k8s.io/pause:3.10",
            "--restart=Never",
        ])
        .await;
    let client = governor_client(&s).await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), s.ns.name());
    let pods: Api<Pod> = Api::namespaced(client.clone(), s.ns.name());
    // The admission policy loads asynchronously: wait until it refuses,
    // with a new image each try (a patch that changes nothing passes).
    let tries = std::sync::atomic::AtomicU32::new(0);
    let refused = eventually("the confinement policy", WAIT, || async {
        let n = tries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let template = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": format!("evil:{n}")}]}}}});
        try_patch(&deployments, "web", template).await.err()
    })
    .await;
    assert!(
        refused.contains("the governor may not change a spec; replicas move through /scale"),
        "{refused}"
    );
    let annotate = |k: &str, v: serde_json::Value| json!({"metadata": {"annotations": {k: v}}});
    for (what, result, message) in [
        (
            "a policy annotation",
            try_patch(
                &deployments,
                "web",
                annotate("scale-governor.io/max-replicas", json!("500")),
            )
            .await,
            "the governor may change only scale-governor.io/recommendation",
        ),
        (
            "a label",
            try_patch(
                &deployments,
                "web",
                json!({"metadata": {"labels": {"scale-governor.io/governed": null}}}),
            )
            .await,
            "may not change labels",
        ),
        (
            "a pod's labels",
            try_patch(
                &pods,
                "lone",
                json!({"metadata": {"labels": {"stolen": "yes"}}}),
            )
            .await,
            "may not change labels",
        ),
        (
            "another annotation on a pod",
            try_patch(&pods, "lone", annotate("note", json!("x"))).await,
            "may change only controller.kubernetes.io/pod-deletion-cost",
        ),
    ] {
        let e = result.expect_err(what);
        assert!(e.contains(message), "{what}: {e}");
    }
    // RBAC alone already refuses what it can narrow.
    let e = deployments
        .delete("web", &Default::default())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("forbidden"), "{e}");
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), s.ns.name());
    let e = secrets.list(&Default::default()).await.unwrap_err();
    assert!(e.to_string().contains("forbidden"), "{e}");
    // What the governor does do passes.
    set_state(&deployments, "{\"v\":1}").await;
    let cost = annotate("controller.kubernetes.io/pod-deletion-cost", json!("-5"));
    try_patch(&pods, "lone", cost).await.unwrap();
    deployments
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": 4}})),
        )
        .await
        .unwrap();
    assert_eq!(replicas(s.cluster, &s.ns, "deploy/web").await, 4);
}

/// The state the governor owns on a workload cannot be forged by a user who
/// may edit the workload; the same value carried unchanged (an exported
/// manifest applied again) passes, and a policy admin may edit it.
#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn an_ordinary_user_cannot_forge_the_governors_state() {
    let Some(s) = setup("forge").await else {
        return;
    };
    grant_scaler(&s, "mallory").await;
    create(&s, &workload("Deployment", "web", 2, &[])).await;
    let deployments: Api<Deployment> = Api::namespaced(governor_client(&s).await, s.ns.name());
    set_state(&deployments, "{\"v\":1}").await;
    let forged = |n: u32| {
        json!({"metadata": {"annotations": {"scale-governor.io/state": format!("{{\"v\":1,\"raise\":{{\"to\":{n}}}}}")}}})
            .to_string()
    };
    // Until the policy has loaded a forgery lands, so each try forges anew.
    let tries = std::sync::atomic::AtomicU32::new(0);
    let refused = eventually("the owned-state policy", WAIT, || async {
        let n = tries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (ok, e) = patch(&s, "deploy/web", &forged(n), &["--as=mallory"]).await;
        (!ok).then_some(e)
    })
    .await;
    // What the governor wrote is back in place.
    set_state(&deployments, "{\"v\":1}").await;
    assert!(
        refused.contains(
            "only the governor writes scale-governor.io/recommendation, state and history"
        ),
        "{refused}"
    );
    for edit in [
        r#"{"metadata":{"annotations":{"scale-governor.io/state":null}}}"#,
        r#"{"metadata":{"annotations":{"scale-governor.io/recommendation":"{\"v\":1,\"replicas\":1}"}}}"#,
        r#"{"metadata":{"annotations":{"scale-governor.io/history":"[]"}}}"#,
    ] {
        let (ok, e) = patch(&s, "deploy/web", edit, &["--as=mallory"]).await;
        assert!(!ok && e.contains("only the governor writes"), "{edit}: {e}");
    }
    // The same value carried unchanged, and unrelated edits, pass.
    let same =
        r#"{"metadata":{"annotations":{"scale-governor.io/state":"{\"v\":1}","team":"shop"}}}"#;
    let (ok, e) = patch(&s, "deploy/web", same, &["--as=mallory"]).await;
    assert!(ok, "{e}");
    // The ledger objects are out of a workload editor's reach altogether.
    let out = s
        .cluster
        .kubectl([
            "auth",
            "can-i",
            "update",
            "configmaps",
            "-n",
            s.ns.name(),
            "--as=mallory",
        ])
        .await;
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "no");
    // A policy admin may.
    let (ok, e) = patch(&s, "deploy/web", &forged(999), &[]).await;
    assert!(ok, "an admin: {e}");
}

/// An admin (or a restore from backup) plants a ledger entry dated a year
/// ahead: it is dropped with a warning naming the workload, and the budget
/// is what the real entries leave.
#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn a_forged_ledger_entry_is_dropped_on_read() {
    let Some(mut s) = setup("planted").await else {
        return;
    };
    create(
        &s,
        &workload("Deployment", "web", 2, &[("scale-up", "4 pods/60s")]),
    )
    .await;
    let now = chrono::Utc::now().timestamp();
    let year = now + 365 * 86_400;
    let ledger = format!(
        r#"[[{year},2,90,90,"forger"],[{},1,2,2,"kubectl"]]"#,
        now - 10
    );
    let name = scale_governor::testing::ledgers::object_name(
        scale_governor::workload::WorkloadKind::Deployment,
        &format!("{}/web", s.ns.name()),
    );
    let manifest = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  labels: {{scale-governor.io/ledger: deployment}}\ndata:\n  format: \"1\"\n  kind: Deployment\n  namespace: {ns}\n  name: web\n  ledger: '{ledger}'\n",
        ns = s.ns.name()
    );
    let out = support::e2e::apply(s.cluster, &s.ns, &manifest).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.governor.restart().await;
    let log = eventually("the warning", WAIT, || async {
        let log = s.governor.log();
        log.contains("dropped ledger entries: 1 dated in the future")
            .then_some(log)
    })
    .await;
    assert!(
        log.contains(&format!("{}/web", s.ns.name())),
        "names the workload"
    );
    // 1 -> 2 ten seconds ago spent one of four pods: 2 -> 5 is allowed.
    let (ok, e) = support::e2e::scale(s.cluster, &s.ns, "deploy/web", 9, &[]).await;
    assert!(ok, "{e}");
    assert_eq!(replicas(s.cluster, &s.ns, "deploy/web").await, 5, "{e}");
}

/// The granted permissions, diffed against the committed list that
/// docs/operations.md explains line by line: a change to RBAC must update
/// both.
#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn the_governors_permissions_are_the_committed_list() {
    let Some(s) = setup("cani").await else {
        return;
    };
    let user = format!("--as=system:serviceaccount:{}:scale-governor", s.ns.name());
    let listed = s
        .cluster
        .kubectl_ok(["auth", "can-i", "--list", &user, "-n", s.ns.name()])
        .await;
    // `RESOURCE  NON-RESOURCE-URLS  RESOURCE-NAMES  [VERBS]`; discovery and
    // self-review grants every authenticated user has are left out.
    let granted: Vec<String> = listed
        .lines()
        .skip(1)
        .filter_map(|l| {
            let resource = l.split_whitespace().next()?;
            let verbs = &l[l.rfind('[')?..];
            (!resource.starts_with('[') && !resource.starts_with("self"))
                .then(|| format!("{resource} {verbs}"))
        })
        .collect();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/base/permissions.txt");
    let expected: Vec<String> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    let mut granted_sorted = granted.clone();
    granted_sorted.sort();
    let mut expected_sorted = expected.clone();
    expected_sorted.sort();
    assert_eq!(
        granted_sorted,
        expected_sorted,
        "update {} (and docs/operations.md) to:\n{}",
        path.display(),
        granted.join("\n")
    );
}

/// `serve` started while the apiserver is unreachable keeps running, says
/// it is not ready, answers no review (it knows no policy and no ledger),
/// and becomes ready with no restart once it is back.
#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn serve_started_with_the_apiserver_away_becomes_ready_when_it_returns() {
    let cluster = support::require_cluster!();
    let ns = cluster.namespace("away").await;
    let identity = support::identity::governor_identity(cluster, ns.name(), "away").await;
    create_plain(cluster, &ns).await;
    // The governor's kubeconfig points at a port where nothing listens yet.
    let away = support::governor::free_port();
    let kubeconfig = std::fs::read_to_string(&identity.kubeconfig).unwrap();
    let server = kubeconfig
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: "))
        .unwrap()
        .to_owned();
    let upstream = server.trim_start_matches("https://").to_owned();
    let redirected = identity.kubeconfig.with_file_name("kubeconfig-away");
    std::fs::write(
        &redirected,
        kubeconfig.replace(&server, &format!("https://127.0.0.1:{away}")),
    )
    .unwrap();
    let admin = support::governor::free_port();
    let https = support::governor::reserve_port();
    let certs = support::governor::certs();
    let log = cluster
        .dir()
        .join(format!("governor-{}-away.log", ns.name()));
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_scale-governor"))
        .arg("serve")
        .arg(format!("--addr=127.0.0.1:{}", https.port))
        .arg(format!("--admin-addr=127.0.0.1:{admin}"))
        .arg("--tls-cert")
        .arg(certs.dir().join("tls.crt"))
        .arg("--tls-key")
        .arg(certs.dir().join("tls.key"))
        .arg("--kubeconfig")
        .arg(&redirected)
        .arg(format!("--lease-namespace={}", ns.name()))
        .arg(format!("--watch-namespace={}", ns.name()))
        .arg("--identity=away")
        .env("RUST_LOG", "info")
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::options().append(true).open(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let readyz = || async move {
        support::governor::admin_request(admin, "/readyz")
            .await
            .map(|(_, body)| body)
    };
    eventually("the admin listener", WAIT, || async { readyz().await }).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "serve exited; see {}",
        log.display()
    );
    assert_eq!(readyz().await.as_deref(), Some("cache not synced"));
    // A review sent now (a Service's endpoints lag a restarted replica)
    // waits: answered, it would have gone ungoverned.
    let review = scale_review(ns.name(), "web", 2, 40);
    let early = tokio::spawn(support::spread::review(https.port, "/mutate", review));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !early.is_finished(),
        "a review was answered before the caches synced: {:?}",
        early.await
    );

    // The apiserver comes back, on the same address.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", away))
        .await
        .unwrap();
    let forward = tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                return;
            };
            let upstream = upstream.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    let back = std::time::Instant::now();
    eventually(
        "ready after the apiserver returned",
        Duration::from_secs(45),
        || async { (readyz().await.as_deref() == Some("ok")).then_some(()) },
    )
    .await;
    let took = back.elapsed();
    assert!(child.try_wait().unwrap().is_none(), "no restart");
    let answer = tokio::time::timeout(WAIT, early)
        .await
        .expect("the waiting review is answered once synced")
        .unwrap()
        .expect("an answer");
    let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    let metrics = support::governor::admin_request(admin, "/metrics")
        .await
        .map(|(_, body)| body)
        .unwrap_or_default();
    assert!(
        metrics.contains("scale_governor_cache_workloads{kind=\"deployments\"} 1"),
        "the governed workload is in the cache:\n{metrics}"
    );
    eventually("leadership, logged", WAIT, || async {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.lines()
            .any(|l| l.contains("leadership changed") && l.contains("leading=true"))
            .then_some(())
    })
    .await;
    eprintln!("ready {took:?} after the apiserver returned");
    forward.abort();
}

/// An AdmissionReview of `kubectl scale --replicas=<to>` on a Deployment
/// standing at `from`.
fn scale_review(ns: &str, name: &str, from: u32, to: u32) -> axum::body::Bytes {
    let scale = |replicas: u32| {
        json!({
            "apiVersion": "autoscaling/v1", "kind": "Scale",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": replicas},
        })
    };
    let review = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "before-the-caches-synced",
            "kind": {"group": "autoscaling", "version": "v1", "kind": "Scale"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "subResource": "scale",
            "name": name,
            "namespace": ns,
            "operation": "UPDATE",
            "userInfo": {"username": "admin"},
            "object": scale(to),
            "oldObject": scale(from),
        }
    });
    serde_json::to_vec(&review).unwrap().into()
}

async fn create_plain(cluster: &support::Cluster, ns: &support::TestNamespace) {
    let out = support::e2e::apply(cluster, ns, &workload("Deployment", "web", 2, &[])).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The ledger objects of `ns`, as `name -> ledger JSON`.
async fn ledger_objects(s: &support::e2e::Setup) -> BTreeMap<String, String> {
    let api: Api<ConfigMap> = Api::namespaced(s.cluster.client(), s.ns.name());
    let list = api
        .list(&ListParams::default().labels(scale_governor::testing::ledgers::LEDGER_LABEL))
        .await
        .unwrap();
    list.items
        .into_iter()
        .filter_map(|cm| {
            let data = cm.data?;
            Some((data.get("name")?.clone(), data.get("ledger")?.clone()))
        })
        .collect()
}

/// A change lands, its ledger object appears; the workload is deleted,
/// the leader deletes the ledger; the same name created again starts over.
#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn a_ledger_is_written_when_a_change_lands_and_deleted_with_its_workload() {
    let Some(s) = setup("cleanup").await else {
        return;
    };
    let manifest = workload("Deployment", "web", 2, &[("scale-up", "4 pods/60s")]);
    create(&s, &manifest).await;
    assert!(ledger_objects(&s).await.is_empty(), "a create is no change");
    let (ok, e) = support::e2e::scale(s.cluster, &s.ns, "deploy/web", 5, &[]).await;
    assert!(ok, "{e}");
    let ledger = eventually("the ledger object", WAIT, || async {
        ledger_objects(&s).await.remove("web")
    })
    .await;
    assert!(ledger.contains(",2,5,5,"), "{ledger}");
    s.cluster
        .kubectl_ok(["delete", "deploy/web", "-n", s.ns.name()])
        .await;
    eventually("the ledger deleted with its workload", WAIT, || async {
        ledger_objects(&s).await.is_empty().then_some(())
    })
    .await;
    // Created again under the same name: a fresh budget, not the old one.
    create(&s, &manifest).await;
    let (ok, e) = support::e2e::scale(s.cluster, &s.ns, "deploy/web", 6, &[]).await;
    assert!(ok, "{e}");
    assert_eq!(replicas(s.cluster, &s.ns, "deploy/web").await, 6, "{e}");
}

/// Upgrading from a version that kept the ledger in the `history`
/// annotation: the governor counts what it finds there, and carries it
/// into a ledger object.
#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn the_history_annotation_of_an_earlier_version_is_migrated() {
    let Some(mut s) = setup("migrate").await else {
        return;
    };
    let ago = chrono::Utc::now().timestamp() - 15;
    let history = format!(r#"[[{ago},3,7,7,"horizontal-pod-autoscaler"]]"#);
    let manifest = workload(
        "Deployment",
        "web",
        7,
        &[("scale-up", "4 pods/60s"), ("history", &history)],
    );
    create(&s, &manifest).await;
    // A replica that starts finds the annotation, as after an upgrade.
    s.governor.restart().await;
    let ledger = eventually("the migrated ledger", WAIT, || async {
        ledger_objects(&s).await.remove("web")
    })
    .await;
    assert!(ledger.contains(&format!("[{ago},3,7,7,")), "{ledger}");
    // 3 -> 7 fifteen seconds ago spent the budget.
    let (ok, e) = support::e2e::scale(s.cluster, &s.ns, "deploy/web", 12, &[]).await;
    assert!(ok && e.contains("budget spent"), "{e}");
    assert_eq!(replicas(s.cluster, &s.ns, "deploy/web").await, 7);
}
