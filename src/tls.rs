//! TLS for the admission listener: rustls with a certificate that reloads
//! without a restart.
//!
//! [`CertStore`] holds the serving certificate behind an `ArcSwap` and is the
//! rustls [`ResolvesServerCert`] (stackable operator-rs pattern), so a reload
//! swaps the certificate for every new handshake without rebuilding the
//! [`ServerConfig`] or touching open connections. The reloader
//! ([`CertStore::spawn_reloader`]) polls the files by path and compares their
//! content, because Kubernetes rotates Secret volumes by swapping a `..data`
//! symlink, which file watches on the certificate itself miss.

pub(crate) mod bundle;
pub(crate) mod ca;
mod reload;
pub(crate) mod selfsigned;
#[cfg(test)]
mod tests;

use std::{
    hash::{DefaultHasher, Hash, Hasher},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use arc_swap::ArcSwapOption;
use rustls::{
    InconsistentKeys, ServerConfig,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};

/// ALPN protocols offered, in preference order: kube-apiserver speaks HTTP/2
/// to webhooks when offered, other clients fall back to HTTP/1.1.
pub(crate) const ALPN_PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Why a certificate or key could not be loaded. Every variant names the
/// file, so the log line alone tells an operator what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The file does not exist (or a symlink on its path dangles).
    #[error("{}: file not found", path.display())]
    Missing {
        /// The path that was read.
        path: PathBuf,
    },
    /// The file exists but could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The path that was read.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The file is not well-formed PEM.
    #[error("{}: malformed PEM: {source}", path.display())]
    Pem {
        /// The path that was read.
        path: PathBuf,
        /// What the PEM parser objected to.
        source: rustls::pki_types::pem::Error,
    },
    /// The file holds no `CERTIFICATE` block.
    #[error("{}: no PEM CERTIFICATE block found", path.display())]
    NoCertificate {
        /// The path that was read.
        path: PathBuf,
    },
    /// The file holds no private key block (PKCS#8, PKCS#1 or SEC1).
    #[error("{}: no PEM private key block found", path.display())]
    NoKey {
        /// The path that was read.
        path: PathBuf,
    },
    /// The key block is there but the crypto provider cannot use it.
    #[error("{}: unusable private key: {source}", path.display())]
    BadKey {
        /// The path that was read.
        path: PathBuf,
        /// Why the provider rejected it.
        source: rustls::Error,
    },
    /// The first certificate is not valid X.509.
    #[error("{}: invalid certificate: {reason}", path.display())]
    BadCertificate {
        /// The path that was read.
        path: PathBuf,
        /// What the X.509 parser objected to.
        reason: String,
    },
    /// The key does not belong to the first certificate of the chain.
    #[error("{} does not match the certificate in {}", key.display(), cert.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// A new certificate is not valid now (expired, or not yet valid): the
    /// apiserver would refuse every handshake, so the served one stays.
    #[error("{}: certificate is valid only from {not_before} to {not_after}, not now; keeping the served one", path.display())]
    OutsideValidity {
        /// The certificate file.
        path: PathBuf,
        /// Its notBefore, RFC 3339.
        not_before: String,
        /// Its notAfter, RFC 3339.
        not_after: String,
    },
    /// rustls refused the configuration (e.g. the provider lacks TLS 1.2).
    #[error("building the rustls server configuration: {0}")]
    Config(#[source] rustls::Error),
}

/// Where the serving certificate chain and its private key live, e.g. the
/// `tls.crt` and `tls.key` of a mounted `kubernetes.io/tls` Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPaths {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl CertPaths {
    /// `dir/tls.crt` and `dir/tls.key`, the layout of a mounted TLS Secret.
    #[cfg(any(test, feature = "test-support"))]
    pub fn in_dir(dir: impl AsRef<Path>) -> Self {
        let dir = dir.as_ref();
        Self {
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
        }
    }
}

/// What [`CertStore::reload`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReloadOutcome {
    /// The files hold the bytes already being served; nothing was parsed.
    Unchanged,
    /// A new certificate was parsed, checked and swapped in.
    Reloaded,
}

/// The certificate being served and what the caller may want to know about it.
#[derive(Debug)]
struct Served {
    key: Arc<CertifiedKey>,
    not_after_unix: i64,
    /// Hash of the raw file bytes, so an unchanged poll skips parsing.
    fingerprint: u64,
}

/// The serving certificate, reloadable from disk; also the rustls resolver.
///
/// Share it as `Arc<CertStore>`: pass one clone to [`server_config`] and keep
/// another for readiness and metrics.
#[derive(Debug)]
pub struct CertStore {
    paths: CertPaths,
    provider: Arc<CryptoProvider>,
    current: ArcSwapOption<Served>,
    reloads: AtomicU64,
    failures: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl CertStore {
    /// A store that serves nothing until [`reload`](Self::reload) succeeds;
    /// handshakes fail meanwhile. Use it when the files may appear after start.
    pub fn new(paths: CertPaths) -> Arc<Self> {
        Arc::new(Self {
            paths,
            provider: provider(),
            current: ArcSwapOption::empty(),
            reloads: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            last_error: Mutex::new(None),
        })
    }

    /// A store loaded from `paths`, failing fast when they are unusable:
    /// the usual start-up path.
    pub fn load(paths: CertPaths) -> Result<Arc<Self>, TlsError> {
        let store = Self::new(paths);
        store.reload()?;
        Ok(store)
    }

    /// The files this store reads.
    #[cfg(any(test, feature = "test-support"))]
    pub fn paths(&self) -> &CertPaths {
        &self.paths
    }

    /// Re-reads both files and swaps the served certificate only if their
    /// content changed and the new chain and key parse and match. On error
    /// the previous certificate stays in service.
    ///
    /// Blocking file I/O: call it from `spawn_blocking` inside a runtime.
    pub fn reload(&self) -> Result<ReloadOutcome, TlsError> {
        let cert_pem = read(&self.paths.cert)?;
        let key_pem = read(&self.paths.key)?;
        let (cert_path, key_path) = (self.paths.cert.clone(), self.paths.key.clone());
        self.swap_in((&cert_pem, &cert_path), (&key_pem, &key_path))
    }

    /// Serves an in-memory chain and key from now on, with the checks of
    /// [`reload`](Self::reload): the self-signed mode issues its leaf itself
    /// and never writes it to a file.
    pub(crate) fn install_pem(
        &self,
        cert_pem: &[u8],
        key_pem: &[u8],
    ) -> Result<ReloadOutcome, TlsError> {
        self.swap_in(
            (cert_pem, Path::new("<memory:cert>")),
            (key_pem, Path::new("<memory:key>")),
        )
    }

    fn swap_in(
        &self,
        (cert_pem, cert_path): (&[u8], &Path),
        (key_pem, key_path): (&[u8], &Path),
    ) -> Result<ReloadOutcome, TlsError> {
        let fingerprint = fingerprint(cert_pem, key_pem);
        if self
            .current
            .load()
            .as_ref()
            .is_some_and(|s| s.fingerprint == fingerprint)
        {
            return Ok(ReloadOutcome::Unchanged);
        }
        let key = parse_pem(&self.provider, (cert_pem, cert_path), (key_pem, key_path))?;
        let (not_before_unix, not_after_unix) = validity(&key.cert[0], cert_path)?;
        let now = unix_now();
        // On a reload, a certificate the apiserver cannot accept now never
        // replaces one it can. At start-up there is nothing better to serve,
        // so it is loaded and readiness says it is expired.
        if self.current.load().is_some() && !(not_before_unix..=not_after_unix).contains(&now) {
            let time = |t: i64| {
                chrono::DateTime::from_timestamp(t, 0).map_or(t.to_string(), |t| t.to_rfc3339())
            };
            return Err(TlsError::OutsideValidity {
                path: cert_path.to_owned(),
                not_before: time(not_before_unix),
                not_after: time(not_after_unix),
            });
        }
        let previous = self.current.swap(Some(Arc::new(Served {
            key: Arc::new(key),
            not_after_unix,
            fingerprint,
        })));
        if previous.is_some() {
            self.reloads.fetch_add(1, Ordering::Relaxed);
        }
        Ok(ReloadOutcome::Reloaded)
    }

    /// Whether a certificate is being served: the TLS half of readiness.
    pub fn is_loaded(&self) -> bool {
        self.current.load().is_some()
    }

    /// The served chain, leaf first, DER-encoded.
    pub(crate) fn current_chain(&self) -> Vec<CertificateDer<'static>> {
        let served = self.current.load();
        served
            .as_ref()
            .map(|s| s.key.cert.clone())
            .unwrap_or_default()
    }

    /// Whether the served certificate has expired: every handshake with
    /// the apiserver fails, so the process is not ready.
    pub(crate) fn is_expired(&self) -> bool {
        self.not_after_unix().is_some_and(|t| t < unix_now())
    }

    /// The served leaf certificate, DER-encoded.
    #[cfg(any(test, feature = "test-support"))]
    pub fn current_cert(&self) -> Option<CertificateDer<'static>> {
        let served = self.current.load();
        served.as_ref().map(|s| s.key.cert[0].clone())
    }

    /// The served certificate's notAfter, in Unix seconds.
    pub(crate) fn not_after_unix(&self) -> Option<i64> {
        self.current.load().as_ref().map(|s| s.not_after_unix)
    }

    /// Seconds from `now` until the served certificate expires, negative once
    /// it has: the value of `scale_governor_tls_cert_expiry_seconds`.
    pub(crate) fn expiry_seconds(&self, now: SystemTime) -> Option<i64> {
        let now = match now.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
        };
        self.not_after_unix().map(|t| t.saturating_sub(now))
    }

    /// Certificates swapped in after the first load.
    pub fn reloads(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }

    /// Distinct reload failures seen by the reloader; a file that stays
    /// broken across polls counts once.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// The reloader's latest failure, cleared once the files are usable again.
    #[cfg(any(test, feature = "test-support"))]
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.load().as_ref().map(|s| s.key.clone())
    }
}

/// A rustls server configuration for the admission listener: TLS 1.3 and
/// 1.2, ALPN `h2` then `http/1.1`, no client authentication (the apiserver
/// authenticates us, not the reverse), certificates from `resolver`.
///
/// Pass a [`CertStore`] for reloadable files, or a
/// [`rustls::sign::SingleCertAndKey`] built from [`certified_key_from_pem`]
/// for a fixed in-memory certificate.
pub fn server_config(resolver: Arc<dyn ResolvesServerCert>) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// Parses an in-memory PEM chain and key, checking that they match. Errors
/// name the files as `<memory:cert>` / `<memory:key>`.
#[cfg(any(test, feature = "test-support"))]
pub fn certified_key_from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, TlsError> {
    parse_pem(
        &provider(),
        (cert_pem, Path::new("<memory:cert>")),
        (key_pem, Path::new("<memory:key>")),
    )
}

/// The process-wide provider `main` installs, else ring: the only one this
/// crate enables, so library users and tests need not install one first.
fn provider() -> Arc<CryptoProvider> {
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()))
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => TlsError::Missing {
            path: path.to_owned(),
        },
        _ => TlsError::Read {
            path: path.to_owned(),
            source,
        },
    })
}

fn fingerprint(cert_pem: &[u8], key_pem: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    cert_pem.hash(&mut hasher);
    key_pem.hash(&mut hasher);
    hasher.finish()
}

fn parse_pem(
    provider: &CryptoProvider,
    (cert_pem, cert_path): (&[u8], &Path),
    (key_pem, key_path): (&[u8], &Path),
) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            path: cert_path.to_owned(),
            source,
        })?;
    let Some(leaf) = chain.first() else {
        return Err(TlsError::NoCertificate {
            path: cert_path.to_owned(),
        });
    };
    // Parsed before the key so a garbled certificate is reported as such,
    // not as a key mismatch.
    validity(leaf, cert_path)?;
    let key = match PrivateKeyDer::from_pem_slice(key_pem) {
        Ok(key) => key,
        Err(rustls::pki_types::pem::Error::NoItemsFound) => {
            return Err(TlsError::NoKey {
                path: key_path.to_owned(),
            });
        }
        Err(source) => {
            return Err(TlsError::Pem {
                path: key_path.to_owned(),
                source,
            });
        }
    };
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|source| TlsError::BadKey {
            path: key_path.to_owned(),
            source,
        })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        // Unknown: the key cannot export its public half, so rustls cannot
        // compare; rustls's own `CertifiedKey::from_der` accepts that too.
        Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::KeyMismatch {
            cert: cert_path.to_owned(),
            key: key_path.to_owned(),
        }),
        Err(e) => Err(TlsError::BadCertificate {
            path: cert_path.to_owned(),
            reason: e.to_string(),
        }),
    }
}

/// notBefore and notAfter, Unix seconds.
fn validity(leaf: &CertificateDer<'_>, path: &Path) -> Result<(i64, i64), TlsError> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(leaf).map_err(|e| TlsError::BadCertificate {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    let validity = cert.validity();
    Ok((
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    ))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
