//! `serve --certificates=self-signed`: certificates with no step to paste.
//!
//! Every replica reads a CA from one Secret in its namespace (the first to
//! find none creates it; a create that loses the race reads the winner's
//! next time), issues its own serving certificate from it in memory and
//! issues a new one after two thirds of its validity. The leader keeps the
//! `caBundle` of the governor's two webhook configurations equal to the
//! Secret's `ca.crt`, so the apiserver trusts every replica. Kyverno and
//! KEDA manage their webhooks' certificates the same way.
//!
//! The CA's key never leaves that Secret and memory. A CA that no longer
//! parses or is within [`CA_RENEW_BEFORE`] of expiring is replaced by the
//! leader; `ca.crt` then holds the new CA and the old one while it is
//! valid, so replicas still serving a leaf of the old CA keep verifying
//! until they issue a new one.

use std::{
    net::{IpAddr, Ipv4Addr},
    sync::Arc,
    time::{Duration, SystemTime},
};

use k8s_openapi::{
    ByteString,
    api::{
        admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration},
        core::v1::Secret,
    },
};
use kube::{
    Api, Client,
    api::{ObjectMeta, Patch, PatchParams, PostParams},
};
use tokio_util::sync::CancellationToken;

use super::{
    CertStore, TlsError,
    ca::{CaError, CertificateAuthority, ServingSpec},
};
use crate::leader::{FIELD_MANAGER, Leadership};

/// Validity of a CA the governor makes.
pub(crate) const CA_DAYS: u32 = 3650;
/// A CA this close to expiring is replaced by the leader.
pub(crate) const CA_RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// The Secret's keys: the CA (as cert-manager's CA issuer reads them), and
/// the trust bundle injected as `caBundle`.
const CERT_KEY: &str = "tls.crt";
const KEY_KEY: &str = "tls.key";
const BUNDLE_KEY: &str = "ca.crt";

/// What the self-signed mode needs to know.
#[derive(Debug, Clone)]
pub(crate) struct SelfSignedConfig {
    /// The governor's namespace: the CA Secret's and the Service's.
    pub(crate) namespace: String,
    /// Name of the Secret holding the CA.
    pub(crate) ca_secret: String,
    /// The Service the apiserver calls; the leaf's DNS names derive from it
    /// (it also carries IP 127.0.0.1, for `clientConfig.url` on this host).
    pub(crate) service: String,
    /// The Mutating- and ValidatingWebhookConfiguration whose `caBundle`
    /// the leader keeps current.
    pub(crate) webhook_configuration: String,
    /// How long a leaf is valid; a new one is issued after two thirds.
    pub(crate) leaf_validity: Duration,
    /// How often the CA, the leaf and the `caBundle` are checked.
    pub(crate) check_every: Duration,
}

/// Why one check failed; the next one tries again.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum SelfSignedError {
    /// The apiserver refused or could not be reached.
    #[error("{what}: {source}")]
    Api {
        /// What was being done.
        what: String,
        /// kube's error.
        source: kube::Error,
    },
    /// The CA could not be made or used.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// The issued leaf could not be served.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

fn api_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> SelfSignedError {
    let what = what.into();
    move |source| SelfSignedError::Api { what, source }
}

/// The CA in use and the bundle the apiserver should trust.
struct Authority {
    ca: CertificateAuthority,
    bundle_pem: String,
}

/// What the last successful check left behind.
#[derive(Default)]
struct Issued {
    /// The CA certificate the served leaf chains to.
    ca_pem: Option<String>,
    /// When to issue the next leaf.
    renew_at: Option<SystemTime>,
}

/// Keeps a leaf issued and the `caBundle` injected until `shutdown`.
pub(crate) async fn run(
    client: Client,
    config: SelfSignedConfig,
    certs: Arc<CertStore>,
    leadership: Leadership,
    shutdown: CancellationToken,
) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &config.namespace);
    let mut issued = Issued::default();
    let mut tick = tokio::time::interval(config.check_every);
    let mut failing = false;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let leading = leadership.is_leading();
        match check(&client, &secrets, &config, &certs, &mut issued, leading).await {
            Ok(()) if failing => {
                failing = false;
                tracing::info!(secret = %config.ca_secret, "self-signed certificates work again");
            }
            Ok(()) => {}
            Err(e) => {
                // A certificate still served keeps the replica useful; only
                // the first failure of a run is worth an ERROR.
                if !failing {
                    tracing::error!(secret = %config.ca_secret, error = %e, "self-signed certificates: check failed; retrying");
                } else {
                    tracing::debug!(secret = %config.ca_secret, error = %e, "self-signed certificates: still failing");
                }
                failing = true;
            }
        }
    }
}

async fn check(
    client: &Client,
    secrets: &Api<Secret>,
    config: &SelfSignedConfig,
    certs: &CertStore,
    issued: &mut Issued,
    leading: bool,
) -> Result<(), SelfSignedError> {
    let Some(authority) = authority(secrets, config, leading).await? else {
        return Ok(());
    };
    let now = SystemTime::now();
    let ca_pem = authority.ca.cert_pem();
    if issued.ca_pem.as_deref() != Some(ca_pem.as_str()) || issued.renew_at.is_none_or(|t| now >= t)
    {
        let spec = ServingSpec::for_service(
            &config.service,
            &config.namespace,
            &[],
            vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            0,
        );
        let leaf = authority.ca.issue_valid_for(&spec, config.leaf_validity)?;
        certs.install_pem(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes())?;
        let not_after = authority.ca.not_after().min(now + config.leaf_validity);
        let life = not_after.duration_since(now).unwrap_or_default();
        issued.renew_at = Some(now + life * 2 / 3);
        issued.ca_pem = Some(ca_pem);
        tracing::info!(
            secret = %config.ca_secret,
            valid_for = ?life,
            "issued a serving certificate from the CA"
        );
    }
    if leading {
        inject(client, &config.webhook_configuration, &authority.bundle_pem).await?;
    }
    Ok(())
}

/// The CA in the Secret, made when there is none. `None` when this replica
/// has to wait: another one created it first, or it needs replacing and
/// only the leader does that.
async fn authority(
    secrets: &Api<Secret>,
    config: &SelfSignedConfig,
    leading: bool,
) -> Result<Option<Authority>, SelfSignedError> {
    let name = &config.ca_secret;
    let existing = secrets
        .get_opt(name)
        .await
        .map_err(api_err(format!("reading Secret {name}")))?;
    let Some(existing) = existing else {
        let ca = CertificateAuthority::new(CA_DAYS)?;
        let bundle_pem = ca.cert_pem();
        let secret = ca_secret(name, &ca, &bundle_pem, None);
        return match secrets.create(&PostParams::default(), &secret).await {
            Ok(_) => {
                tracing::info!(secret = %name, "created the CA");
                Ok(Some(Authority { ca, bundle_pem }))
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(None),
            Err(e) => Err(api_err(format!("creating Secret {name}"))(e)),
        };
    };
    let data = |key: &str| {
        existing
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .and_then(|v| String::from_utf8(v.0.clone()).ok())
            .unwrap_or_default()
    };
    let stored = CertificateAuthority::from_pem(&data(CERT_KEY), &data(KEY_KEY));
    let healthy = |ca: &CertificateAuthority| ca.not_after() > SystemTime::now() + CA_RENEW_BEFORE;
    let why = match stored {
        Ok(ca) if healthy(&ca) => {
            let bundle = data(BUNDLE_KEY);
            let bundle_pem = if bundle.contains(ca.cert_pem().trim()) {
                bundle
            } else {
                ca.cert_pem()
            };
            return Ok(Some(Authority { ca, bundle_pem }));
        }
        Ok(_) => "expires within 30 days".to_owned(),
        Err(e) => e.to_string(),
    };
    if !leading {
        tracing::debug!(secret = %name, why, "the CA needs replacing; waiting for the leader");
        return Ok(None);
    }
    // The old CA stays trusted while it is valid, so replicas still serving
    // a leaf it signed keep verifying until they issue a new one.
    let ca = CertificateAuthority::new(CA_DAYS)?;
    let old = data(CERT_KEY);
    let old_valid = CertificateAuthority::from_pem(&old, &data(KEY_KEY))
        .is_ok_and(|old| old.not_after() > SystemTime::now());
    let bundle_pem = if old_valid {
        format!("{}{old}", ca.cert_pem())
    } else {
        ca.cert_pem()
    };
    let mut secret = ca_secret(
        name,
        &ca,
        &bundle_pem,
        existing.metadata.resource_version.clone(),
    );
    // A Secret's type cannot change: one made by hand (Opaque) stays so.
    secret.type_ = existing.type_.clone();
    match secrets.replace(name, &PostParams::default(), &secret).await {
        Ok(_) => {
            tracing::warn!(secret = %name, why, "replaced the CA");
            Ok(Some(Authority { ca, bundle_pem }))
        }
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(None),
        Err(e) => Err(api_err(format!("replacing Secret {name}"))(e)),
    }
}

fn ca_secret(
    name: &str,
    ca: &CertificateAuthority,
    bundle_pem: &str,
    resource_version: Option<String>,
) -> Secret {
    let bytes = |s: String| ByteString(s.into_bytes());
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            resource_version,
            labels: Some(
                [(
                    "app.kubernetes.io/managed-by".to_owned(),
                    "scale-governor".to_owned(),
                )]
                .into(),
            ),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/tls".to_owned()),
        data: Some(
            [
                (CERT_KEY.to_owned(), bytes(ca.cert_pem())),
                (KEY_KEY.to_owned(), bytes(ca.key_pem())),
                (BUNDLE_KEY.to_owned(), bytes(bundle_pem.to_owned())),
            ]
            .into(),
        ),
        ..Secret::default()
    }
}

/// The webhooks, by name, whose `caBundle` is not `want`.
fn stale<'a>(
    hooks: impl Iterator<Item = (&'a str, Option<&'a ByteString>)>,
    want: &ByteString,
) -> Vec<&'a str> {
    hooks
        .filter(|(_, bundle)| *bundle != Some(want))
        .map(|(name, _)| name)
        .collect()
}

/// Sets `caBundle` on every webhook of both configurations that lacks it,
/// with a strategic merge patch keyed by webhook name, so nothing else in
/// them is touched. A configuration that does not exist is skipped.
async fn inject(client: &Client, name: &str, bundle_pem: &str) -> Result<(), SelfSignedError> {
    let want = ByteString(bundle_pem.as_bytes().to_vec());
    let mutating: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let validating: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let read = |kind: &str| api_err(format!("reading {kind} {name}"));
    let m = mutating
        .get_opt(name)
        .await
        .map_err(read("MutatingWebhookConfiguration"))?;
    let v = validating
        .get_opt(name)
        .await
        .map_err(read("ValidatingWebhookConfiguration"))?;
    let m_hooks = m.iter().flat_map(|c| c.webhooks.iter().flatten());
    let m_stale = stale(
        m_hooks.map(|w| (w.name.as_str(), w.client_config.ca_bundle.as_ref())),
        &want,
    );
    let v_hooks = v.iter().flat_map(|c| c.webhooks.iter().flatten());
    let v_stale = stale(
        v_hooks.map(|w| (w.name.as_str(), w.client_config.ca_bundle.as_ref())),
        &want,
    );
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    let patch = |hooks: &[&str]| {
        Patch::Strategic(serde_json::json!({
            "webhooks": hooks.iter().map(|h| serde_json::json!({
                "name": h,
                "clientConfig": {"caBundle": &want},
            })).collect::<Vec<_>>(),
        }))
    };
    if !m_stale.is_empty() {
        mutating
            .patch(name, &params, &patch(&m_stale))
            .await
            .map_err(api_err(format!(
                "patching MutatingWebhookConfiguration {name}"
            )))?;
        tracing::info!(configuration = %name, webhooks = ?m_stale, "injected the caBundle");
    }
    if !v_stale.is_empty() {
        validating
            .patch(name, &params, &patch(&v_stale))
            .await
            .map_err(api_err(format!(
                "patching ValidatingWebhookConfiguration {name}"
            )))?;
        tracing::info!(configuration = %name, webhooks = ?v_stale, "injected the caBundle");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_webhooks_without_the_bundle_are_patched() {
        let want = ByteString(b"new".to_vec());
        let old = ByteString(b"old".to_vec());
        let hooks = [("a", Some(&want)), ("b", Some(&old)), ("c", None)];
        assert_eq!(stale(hooks.into_iter(), &want), ["b", "c"]);
    }

    #[test]
    fn the_ca_secret_reads_back_as_the_same_ca() {
        let ca = CertificateAuthority::new(1).unwrap();
        let secret = ca_secret("sg-ca", &ca, &ca.cert_pem(), Some("7".into()));
        let data = secret.data.unwrap();
        let text = |k: &str| String::from_utf8(data[k].0.clone()).unwrap();
        let back = CertificateAuthority::from_pem(&text(CERT_KEY), &text(KEY_KEY)).unwrap();
        assert_eq!(back.cert_pem(), ca.cert_pem());
        assert_eq!(text(BUNDLE_KEY), ca.cert_pem());
        assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
        assert_eq!(secret.metadata.resource_version.as_deref(), Some("7"));
    }
}
