//! Does the apiserver trust the certificate being served? The apiserver
//! verifies the webhook against the `caBundle` of its webhook
//! configuration; if they part (a new CA made by `certs --force`, a Secret
//! rotated by hand), every call fails, and with `failurePolicy: Ignore`
//! every request then passes ungoverned, silently. So `serve` watches its
//! own two configurations and checks its chain against their bundles: on a
//! mismatch `/readyz` fails, an ERROR is logged, an Event is written on the
//! configuration and `scale_governor_tls_ca_bundle_mismatch` is 1.

use std::{sync::Arc, time::Duration};

use arc_swap::ArcSwapOption;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use kube::{
    Api, Client, Resource,
    runtime::{WatchStreamExt, watcher},
};
use rustls::{
    RootCertStore,
    client::{WebPkiServerVerifier, danger::ServerCertVerifier},
    pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject},
};
use tokio_util::sync::CancellationToken;

use super::CertStore;
use crate::metrics::Metrics;

/// Why the served certificate does not verify against a caBundle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BundleMismatch {
    /// Nothing is served yet.
    #[error("no certificate is being served")]
    NothingServed,
    /// The caBundle is not PEM.
    #[error("the caBundle is not PEM: {0}")]
    NotPem(String),
    /// A certificate in the caBundle cannot be a root.
    #[error("the caBundle holds an unusable certificate: {0}")]
    Unusable(String),
    /// No certificate at all.
    #[error("the caBundle is empty")]
    Empty,
    /// The host the apiserver calls is not a server name.
    #[error("{server:?} is not a server name: {reason}")]
    ServerName { server: String, reason: String },
    /// The chain does not verify: another CA, expired, or the wrong name.
    #[error("the serving certificate does not verify for {server}: {reason}")]
    Verify {
        server: String,
        /// rustls's reason.
        reason: String,
    },
}

/// Checks that `chain` (leaf first) verifies for `server` (a DNS name or an
/// IP) against the CA certificates in `ca_pem`, as the apiserver does.
pub(crate) fn verify(
    chain: &[CertificateDer<'static>],
    ca_pem: &[u8],
    server: &str,
) -> Result<(), BundleMismatch> {
    let (leaf, intermediates) = chain.split_first().ok_or(BundleMismatch::NothingServed)?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|e| BundleMismatch::NotPem(e.to_string()))?;
        roots
            .add(cert)
            .map_err(|e| BundleMismatch::Unusable(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(BundleMismatch::Empty);
    }
    let name = ServerName::try_from(server.to_owned()).map_err(|e| BundleMismatch::ServerName {
        server: server.to_owned(),
        reason: e.to_string(),
    })?;
    let failed = |reason: String| BundleMismatch::Verify {
        server: server.to_owned(),
        reason,
    };
    let verifier = WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .map_err(|e| failed(e.to_string()))?;
    verifier
        .verify_server_cert(leaf, intermediates, &name, &[], UnixTime::now())
        .map(drop)
        .map_err(|e| failed(e.to_string()))
}

/// The server name the apiserver checks for a client config: the URL's
/// host, or `<service>.<namespace>.svc`.
fn server_name(config: &WebhookClientConfig) -> Option<String> {
    if let Some(url) = &config.url {
        let rest = url.strip_prefix("https://")?;
        let authority = rest.split('/').next()?;
        let host = match authority.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => authority,
        };
        return Some(
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
        );
    }
    let service = config.service.as_ref()?;
    Some(format!("{}.{}.svc", service.name, service.namespace))
}

/// The outcome of the latest check: `None` while it matches or cannot be
/// checked (no configuration registered under that name).
#[derive(Debug, Default)]
pub(crate) struct BundleStatus {
    problem: ArcSwapOption<String>,
}

impl BundleStatus {
    /// What is wrong, for `/readyz`.
    pub(crate) fn problem(&self) -> Option<Arc<String>> {
        self.problem.load_full()
    }
}

/// Watches the webhook configurations called `name` and checks the served
/// chain against them on every change and every `recheck`, until
/// `shutdown`.
pub(crate) async fn run(
    client: Client,
    name: String,
    certs: Arc<CertStore>,
    status: Arc<BundleStatus>,
    metrics: Arc<Metrics>,
    recheck: Duration,
    shutdown: CancellationToken,
) {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mutating: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let validating: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let bundles = Arc::new(std::sync::Mutex::new(Bundles::default()));
    let m = watcher(mutating, config.clone())
        .default_backoff()
        .touched_objects()
        .map_ok(|c| {
            let hooks = c
                .webhooks
                .into_iter()
                .flatten()
                .map(|w| (w.name, w.client_config));
            (Kind::Mutating, hooks.collect::<Vec<_>>())
        })
        .boxed();
    let v = watcher(validating, config)
        .default_backoff()
        .touched_objects()
        .map_ok(|c| {
            let hooks = c
                .webhooks
                .into_iter()
                .flatten()
                .map(|w| (w.name, w.client_config));
            (Kind::Validating, hooks.collect::<Vec<_>>())
        })
        .boxed();
    let mut changes = futures::stream::select(m, v);
    let mut tick = tokio::time::interval(recheck);
    let events = kube::runtime::events::Recorder::new(
        client,
        kube::runtime::events::Reporter {
            controller: "scale-governor".into(),
            instance: None,
        },
    );
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            change = changes.next() => match change {
                Some(Ok((kind, hooks))) => {
                    let mut b = bundles.lock().unwrap_or_else(|p| p.into_inner());
                    match kind {
                        Kind::Mutating => b.mutating = Some(hooks),
                        Kind::Validating => b.validating = Some(hooks),
                    }
                }
                Some(Err(err)) => tracing::debug!(error = %err, "webhook configuration watch failed; retrying"),
                None => return,
            },
            _ = tick.tick() => {}
        }
        let problem = {
            let b = bundles.lock().unwrap_or_else(|p| p.into_inner());
            b.check(&name, &certs.current_chain())
        };
        let before = status.problem.load_full();
        metrics
            .tls
            .ca_bundle_mismatch
            .set(i64::from(problem.is_some()));
        if problem.as_deref() != before.as_deref().map(String::as_str) {
            match &problem {
                Some(p) => {
                    tracing::error!(configuration = %name, problem = %p, "the apiserver cannot verify this webhook; requests fail or pass ungoverned");
                    let reference = MutatingWebhookConfiguration::default();
                    let mut object = reference.object_ref(&());
                    object.name = Some(name.clone());
                    object.namespace = Some("default".into());
                    let _ = events
                        .publish(
                            &kube::runtime::events::Event {
                                type_: kube::runtime::events::EventType::Warning,
                                reason: "CABundleMismatch".into(),
                                note: Some(p.chars().take(1000).collect()),
                                action: "VerifyServingCertificate".into(),
                                secondary: None,
                            },
                            &object,
                        )
                        .await;
                }
                None if before.is_some() => {
                    tracing::info!(configuration = %name, "the serving certificate verifies against the caBundle again")
                }
                None => {}
            }
            status.problem.store(problem.map(Arc::new));
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Mutating,
    Validating,
}

type Hooks = Vec<(String, WebhookClientConfig)>;

#[derive(Debug, Default)]
struct Bundles {
    mutating: Option<Hooks>,
    validating: Option<Hooks>,
}

impl Bundles {
    /// The first webhook whose bundle does not verify the served chain.
    fn check(&self, name: &str, chain: &[CertificateDer<'static>]) -> Option<String> {
        for (kind, hooks) in [
            ("MutatingWebhookConfiguration", &self.mutating),
            ("ValidatingWebhookConfiguration", &self.validating),
        ] {
            for (hook, config) in hooks.iter().flatten() {
                let Some(server) = server_name(config) else {
                    continue;
                };
                let bundle = config
                    .ca_bundle
                    .as_ref()
                    .map(|b| b.0.as_slice())
                    .unwrap_or_default();
                if let Err(e) = verify(chain, bundle, &server) {
                    return Some(format!("{kind} {name}, webhook {hook}: {e}"));
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::ca::{CertificateAuthority, ServingSpec};

    fn chain(ca: &CertificateAuthority) -> Vec<CertificateDer<'static>> {
        let leaf = ca
            .issue(&ServingSpec::loopback(&["svc.ns.svc"], 1))
            .unwrap();
        vec![CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).unwrap()]
    }

    #[test]
    fn a_chain_verifies_only_against_its_own_ca_and_names() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let ca = CertificateAuthority::new(1).unwrap();
        let other = CertificateAuthority::new(1).unwrap();
        let served = chain(&ca);
        assert_eq!(
            verify(&served, ca.cert_pem().as_bytes(), "127.0.0.1"),
            Ok(())
        );
        assert_eq!(
            verify(&served, ca.cert_pem().as_bytes(), "svc.ns.svc"),
            Ok(())
        );
        let err = verify(&served, other.cert_pem().as_bytes(), "127.0.0.1").unwrap_err();
        assert!(
            err.to_string().contains("does not verify for 127.0.0.1"),
            "{err}"
        );
        assert!(verify(&served, ca.cert_pem().as_bytes(), "other.example").is_err());
        assert_eq!(
            verify(&served, b"", "127.0.0.1"),
            Err(BundleMismatch::Empty)
        );
        assert!(verify(&[], ca.cert_pem().as_bytes(), "127.0.0.1").is_err());
    }

    #[test]
    fn the_server_name_is_what_the_apiserver_dials() {
        let url = |u: &str| WebhookClientConfig {
            url: Some(u.into()),
            ..WebhookClientConfig::default()
        };
        assert_eq!(
            server_name(&url("https://127.0.0.1:8443/mutate")).as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(
            server_name(&url("https://[::1]:8443/x")).as_deref(),
            Some("::1")
        );
        assert_eq!(
            server_name(&url("https://gov.example.com/x")).as_deref(),
            Some("gov.example.com")
        );
        let service: WebhookClientConfig = serde_json::from_value(
            serde_json::json!({"service": {"name": "scale-governor", "namespace": "sg"}}),
        )
        .unwrap();
        assert_eq!(
            server_name(&service).as_deref(),
            Some("scale-governor.sg.svc")
        );
    }

    #[test]
    fn bundles_report_the_first_mismatching_webhook() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let ca = CertificateAuthority::new(1).unwrap();
        let other = CertificateAuthority::new(1).unwrap();
        let hook = |ca: &CertificateAuthority| {
            let mut config = WebhookClientConfig {
                url: Some("https://127.0.0.1:1/validate".into()),
                ..WebhookClientConfig::default()
            };
            config.ca_bundle = Some(k8s_openapi::ByteString(ca.cert_pem().into_bytes()));
            vec![("validate.scale-governor.io".to_owned(), config)]
        };
        let mut bundles = Bundles {
            mutating: Some(hook(&ca)),
            validating: Some(hook(&ca)),
        };
        assert_eq!(bundles.check("sg", &chain(&ca)), None);
        bundles.validating = Some(hook(&other));
        let problem = bundles.check("sg", &chain(&ca)).unwrap();
        assert!(
            problem.starts_with(
                "ValidatingWebhookConfiguration sg, webhook validate.scale-governor.io:"
            ),
            "{problem}"
        );
        assert_eq!(Bundles::default().check("sg", &chain(&ca)), None);
    }
}
