use std::{
    fs,
    path::Path,
    time::{Duration, SystemTime},
};

use rustls::sign::SingleCertAndKey;

use super::ca::{CertificateAuthority, ServingCert, ServingSpec};
use super::*;

fn issue(ca: &CertificateAuthority) -> ServingCert {
    ca.issue(&ServingSpec::loopback(&[], 365)).unwrap()
}

fn write(dir: &Path, cert: &str, key: &str) -> CertPaths {
    let paths = CertPaths::in_dir(dir);
    fs::write(&paths.cert, cert).unwrap();
    fs::write(&paths.key, key).unwrap();
    paths
}

fn der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

#[test]
fn loads_a_matching_pair_and_reports_its_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::new(10).unwrap();
    let serving = issue(&ca);
    let store = CertStore::load(write(dir.path(), &serving.cert_pem, &serving.key_pem)).unwrap();

    assert!(store.is_loaded());
    assert_eq!(store.current_cert(), Some(der(&serving.cert_pem)));
    let not_after = store.not_after_unix().unwrap();
    let at = |secs: i64| SystemTime::UNIX_EPOCH + Duration::from_secs(secs as u64);
    assert_eq!(store.expiry_seconds(at(not_after - 100)), Some(100));
    assert_eq!(store.expiry_seconds(at(not_after + 7)), Some(-7));
    let left = store.expiry_seconds(SystemTime::now()).unwrap();
    assert!((9 * 86_400..=10 * 86_400).contains(&left), "{left}");
    assert_eq!((store.reloads(), store.failures()), (0, 0));
}

#[test]
fn each_broken_input_names_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::new(1).unwrap();
    let (a, b) = (issue(&ca), issue(&ca));
    let load = |cert: &str, key: &str| CertStore::load(write(dir.path(), cert, key)).unwrap_err();
    let cert_path = dir.path().join("tls.crt");
    let key_path = dir.path().join("tls.key");

    let err = CertStore::load(CertPaths::in_dir(dir.path().join("absent"))).unwrap_err();
    assert!(matches!(&err, TlsError::Missing { path } if path.ends_with("absent/tls.crt")));

    let err = load(&a.key_pem, &a.key_pem);
    assert!(matches!(&err, TlsError::NoCertificate { path } if *path == cert_path));

    let err = load(&a.cert_pem, &a.cert_pem);
    assert!(matches!(&err, TlsError::NoKey { path } if *path == key_path));
    assert!(err.to_string().contains("tls.key"), "{err}");

    let junk_key = "-----BEGIN PRIVATE KEY-----\nAAECAwQ=\n-----END PRIVATE KEY-----\n";
    let err = load(&a.cert_pem, junk_key);
    assert!(matches!(&err, TlsError::BadKey { path, .. } if *path == key_path));

    let junk_cert = "-----BEGIN CERTIFICATE-----\nAAECAwQ=\n-----END CERTIFICATE-----\n";
    let err = load(junk_cert, &a.key_pem);
    assert!(matches!(&err, TlsError::BadCertificate { path, .. } if *path == cert_path));

    let err = load(&a.cert_pem, &b.key_pem);
    assert!(
        matches!(&err, TlsError::KeyMismatch { cert, key } if *cert == cert_path && *key == key_path)
    );
}

#[test]
fn reload_swaps_only_changed_and_valid_content() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::new(1).unwrap();
    let (first, second) = (issue(&ca), issue(&ca));
    let paths = write(dir.path(), &first.cert_pem, &first.key_pem);
    let store = CertStore::load(paths.clone()).unwrap();

    assert_eq!(store.reload().unwrap(), ReloadOutcome::Unchanged);
    assert_eq!(store.reloads(), 0);

    write(dir.path(), &second.cert_pem, &second.key_pem);
    assert_eq!(store.reload().unwrap(), ReloadOutcome::Reloaded);
    assert_eq!(store.current_cert(), Some(der(&second.cert_pem)));
    assert_eq!(store.reloads(), 1);

    // A new certificate whose key has not arrived yet must not be served.
    fs::write(&paths.cert, &first.cert_pem).unwrap();
    assert!(matches!(store.reload(), Err(TlsError::KeyMismatch { .. })));
    assert_eq!(store.current_cert(), Some(der(&second.cert_pem)));
    assert_eq!(store.reloads(), 1);
}

#[test]
fn an_empty_store_serves_nothing_until_the_files_appear() {
    let dir = tempfile::tempdir().unwrap();
    let store = CertStore::new(CertPaths::in_dir(dir.path()));
    assert!(!store.is_loaded());
    assert_eq!(store.current_cert(), None);
    assert_eq!(store.expiry_seconds(SystemTime::now()), None);
    assert!(matches!(store.reload(), Err(TlsError::Missing { .. })));

    let serving = issue(&CertificateAuthority::new(1).unwrap());
    write(dir.path(), &serving.cert_pem, &serving.key_pem);
    assert_eq!(store.reload().unwrap(), ReloadOutcome::Reloaded);
    assert!(store.is_loaded());
    // The first load is not a re-load.
    assert_eq!(store.reloads(), 0);
}

#[test]
fn a_failure_that_persists_is_counted_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = CertStore::new(CertPaths::in_dir(dir.path()));
    let failure = || store.reload().unwrap_err();

    store.record(Err(failure()));
    store.record(Err(failure()));
    assert_eq!(store.failures(), 1);
    assert!(store.last_error().unwrap().contains("tls.crt"));

    store.record(Ok(ReloadOutcome::Unchanged));
    assert_eq!(store.last_error(), None);
    store.record(Err(failure()));
    assert_eq!(store.failures(), 2);
}

#[test]
fn in_memory_config_offers_h2_then_http1() {
    let serving = issue(&CertificateAuthority::new(1).unwrap());
    let key =
        certified_key_from_pem(serving.cert_pem.as_bytes(), serving.key_pem.as_bytes()).unwrap();
    let config = server_config(Arc::new(SingleCertAndKey::from(key))).unwrap();
    assert_eq!(
        config.alpn_protocols,
        [b"h2".to_vec(), b"http/1.1".to_vec()]
    );

    let other = issue(&CertificateAuthority::new(1).unwrap());
    let err = certified_key_from_pem(serving.cert_pem.as_bytes(), other.key_pem.as_bytes());
    assert!(matches!(err, Err(TlsError::KeyMismatch { .. })));
}

#[test]
fn a_certificate_outside_its_validity_never_replaces_a_good_one() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::new(10).unwrap();
    let good = issue(&ca);
    let store = CertStore::load(write(dir.path(), &good.cert_pem, &good.key_pem)).unwrap();
    let spec = ServingSpec::loopback(&[], 1);
    let now = SystemTime::now();
    let day = Duration::from_secs(86_400);
    let expired = ca.issue_between(&spec, now - 2 * day, now - day).unwrap();
    let future = ca.issue_between(&spec, now + day, now + 2 * day).unwrap();
    for bad in [expired.clone(), future] {
        write(dir.path(), &bad.cert_pem, &bad.key_pem);
        let err = store.reload().unwrap_err();
        assert!(matches!(err, TlsError::OutsideValidity { .. }), "{err}");
        assert!(err.to_string().contains("keeping the served one"), "{err}");
        assert_eq!(store.current_cert(), Some(der(&good.cert_pem)));
    }
    assert!(!store.is_expired());
    // At start-up there is nothing better: it is loaded, and reported expired.
    let fresh = CertStore::load(write(dir.path(), &expired.cert_pem, &expired.key_pem)).unwrap();
    assert!(fresh.is_loaded() && fresh.is_expired());
}
