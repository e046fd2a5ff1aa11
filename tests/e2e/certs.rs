//! Certificates the apiserver cannot use are never served without alarm:
//! against the real apiserver, an expired certificate dropped into the
//! Secret's directory is refused, an expired one being served fails
//! `/readyz`, and a caBundle that no longer matches is found and reported.

use std::{
    path::Path,
    time::{Duration, SystemTime},
};

use scale_governor::testing::tls::ca::{CertificateAuthority, ServingCert, ServingSpec};
use serial_test::parallel;

use crate::support::{
    self,
    e2e::{WAIT, create, replicas, scale, workload},
    eventually,
    governor::{self, Governor},
};

fn write(dir: &Path, cert: &ServingCert) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("tls.crt"), &cert.cert_pem).unwrap();
    std::fs::write(dir.join("tls.key"), &cert.key_pem).unwrap();
}

#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn an_expired_certificate_is_refused_and_an_expiring_one_fails_readiness() {
    let cluster = support::require_cluster!();
    let ns = cluster.namespace("certexpiry").await;
    let ca = CertificateAuthority::new(1).unwrap();
    let spec = ServingSpec::loopback(&[], 1);
    let now = SystemTime::now();
    // Valid for a few seconds more: long enough to register and scale once.
    let short = ca
        .issue_between(
            &spec,
            now - Duration::from_secs(60),
            now + Duration::from_secs(8),
        )
        .unwrap();
    let dir =
        std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("certs-{}", ns.name()));
    write(&dir, &short);
    let g = Governor::start_in(cluster, ns.name(), "a", &[], &dir).await;
    let _hooks = governor::register_with_ca(cluster, &ns, &g.url(), &ca.ca_bundle()).await;
    let s = support::e2e::Setup::adopt(cluster, ns, g);
    create(
        &s,
        &workload("Deployment", "web", 2, &[("max-replicas", "5")]),
    )
    .await;

    // An expired certificate lands in the directory (a broken rotation).
    let expired = ca
        .issue_between(
            &spec,
            now - Duration::from_secs(7200),
            now - Duration::from_secs(3600),
        )
        .unwrap();
    write(&dir, &expired);
    let log = eventually("the refusal to be logged", WAIT, || async {
        let log = s.governor.log();
        log.contains("valid only from").then_some(log)
    })
    .await;
    assert!(
        log.contains("TLS reload failed; keeping the current certificate"),
        "{log}"
    );
    // Counted (the metric is mirrored every few seconds).
    eventually("the failed reload to be counted", WAIT, || async {
        let metrics = s.governor.metrics().await;
        let failed = metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix("scale_governor_tls_cert_reloads_total{result=\"error\"} ")
            })
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0);
        (failed >= 1).then_some(())
    })
    .await;
    // Still served: the apiserver still gets answers.
    let (ok, e) = scale(s.cluster, &s.ns, "deploy/web", 50, &[]).await;
    assert!(ok && e.contains("allowed 5"), "{e}");
    assert_eq!(replicas(s.cluster, &s.ns, "deploy/web").await, 5);

    // Once the served one expires, the replica is not ready.
    let (code, body) = eventually("readiness to fail", Duration::from_secs(30), || async {
        let (code, body) = s.governor.readyz().await;
        (code == 503).then_some((code, body))
    })
    .await;
    assert_eq!((code, body.as_str()), (503, "serving certificate expired"));
}

#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn a_ca_bundle_that_does_not_verify_the_serving_certificate_fails_readiness() {
    let cluster = support::require_cluster!();
    let ns = cluster.namespace("cabundle").await;
    let g = Governor::start(cluster, ns.name(), "a").await;
    // Registered with another CA's bundle, as after `certs --force`.
    let other = CertificateAuthority::new(1).unwrap();
    let _hooks = governor::register_with_ca(cluster, &ns, &g.url(), &other.ca_bundle()).await;
    let (code, body) = eventually("readiness to fail", WAIT, || async {
        let (code, body) = g.readyz().await;
        (code == 503).then_some((code, body))
    })
    .await;
    assert_eq!(code, 503);
    // The two configurations are watched apart: either may be named first.
    let named = ["Mutating", "Validating"].iter().any(|kind| {
        body.starts_with(&format!(
            "caBundle mismatch: {kind}WebhookConfiguration scale-governor-{}",
            ns.name()
        ))
    });
    assert!(
        named && body.contains("does not verify for 127.0.0.1"),
        "{body}"
    );
    assert!(g.log().contains("the apiserver cannot verify this webhook"));
    assert!(
        g.metrics()
            .await
            .contains("scale_governor_tls_ca_bundle_mismatch 1")
    );
    let name = format!("scale-governor-{}", ns.name());
    eventually("the CABundleMismatch Event", WAIT, || async {
        let out = cluster
            .kubectl_ok([
                "get",
                "events",
                "-n",
                "default",
                "--field-selector=reason=CABundleMismatch",
                "-o",
                "name",
            ])
            .await;
        (!out.trim().is_empty()).then_some(())
    })
    .await;
    // Put the right bundle back: ready again.
    let _hooks = governor::register(cluster, &ns, &g.url()).await;
    eventually("readiness to recover", WAIT, || async {
        (g.readyz().await.0 == 200).then_some(())
    })
    .await;
    assert!(
        g.metrics()
            .await
            .contains("scale_governor_tls_ca_bundle_mismatch 0"),
        "{name}"
    );
}

/// The value of a counter or gauge line `name` in a metrics text.
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// `serve --certificates=self-signed`: nothing is pasted anywhere. A CA
/// Secret left unusable is replaced, the caBundle is injected into
/// configurations registered without one, the apiserver trusts the
/// replicas (a clamp lands through it), the short-lived leaf is renewed
/// while serving, and a second replica serves a leaf of the same CA.
#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn the_self_signed_mode_issues_injects_and_rotates_with_nothing_pasted() {
    let cluster = support::require_cluster!();
    let ns = cluster.namespace("selfsigned").await;
    cluster
        .kubectl_ok([
            "create",
            "secret",
            "generic",
            "scale-governor-ca",
            "-n",
            ns.name(),
            "--from-literal=tls.crt=not a certificate",
            "--from-literal=tls.key=not a key",
        ])
        .await;
    let flags = ["--certificates=self-signed", "--certificate-validity=9s"];
    let unused = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("no-certs");
    let g = Governor::start_in(cluster, ns.name(), "a", &flags, &unused).await;
    let _hooks = governor::register_with_ca(cluster, &ns, &g.url(), "").await;
    let name = format!("scale-governor-{}", ns.name());
    let secret_ca = || async {
        cluster
            .kubectl_ok([
                "get",
                "secret",
                "scale-governor-ca",
                "-n",
                ns.name(),
                "-o",
                "jsonpath={.data.ca\\.crt}",
            ])
            .await
    };
    for kind in [
        "mutatingwebhookconfiguration",
        "validatingwebhookconfiguration",
    ] {
        eventually(
            &format!("the caBundle injected into {kind}"),
            WAIT,
            || async {
                let bundle = cluster
                    .kubectl_ok([
                        "get",
                        kind,
                        &name,
                        "-o",
                        "jsonpath={.webhooks[0].clientConfig.caBundle}",
                    ])
                    .await;
                (!bundle.is_empty() && bundle == secret_ca().await).then_some(())
            },
        )
        .await;
    }
    let log = g.log();
    assert!(log.contains("replaced the CA"), "{log}");
    let s = support::e2e::Setup::adopt(cluster, ns, g);
    eventually("readiness with the injected bundle", WAIT, || async {
        (s.governor.readyz().await.0 == 200).then_some(())
    })
    .await;
    create(
        &s,
        &workload("Deployment", "web", 2, &[("max-replicas", "5")]),
    )
    .await;
    let (ok, e) = scale(s.cluster, &s.ns, "deploy/web", 9, &[]).await;
    assert!(ok && e.contains("allowed 5"), "{e}");

    // Renewed after two thirds of 9 s, while the apiserver keeps calling.
    eventually("two renewals", Duration::from_secs(40), || async {
        let metrics = s.governor.metrics().await;
        (sample(
            &metrics,
            "scale_governor_tls_cert_reloads_total{result=\"ok\"}",
        )? >= 2.0)
            .then_some(())
    })
    .await;
    let expiry = sample(
        &s.governor.metrics().await,
        "scale_governor_tls_cert_expiry_seconds",
    )
    .unwrap();
    assert!((0.0..=9.0).contains(&expiry), "{expiry}");
    let (ok, e) = scale(s.cluster, &s.ns, "deploy/web", 1, &[]).await;
    assert!(ok, "{e}");
    assert_eq!(replicas(s.cluster, &s.ns, "deploy/web").await, 1);

    // Another replica reads the same CA; the apiserver trusts it as well.
    let b = Governor::start_in(s.cluster, s.ns.name(), "b", &flags, &unused).await;
    assert_eq!(b.readyz().await, (200, "ok".to_owned()));
    assert!(!b.log().contains("replaced the CA"));
}
