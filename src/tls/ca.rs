//! A throwaway certificate authority: what `scale-governor certs` writes,
//! and what tests use to mint serving certificates in memory.

use std::{
    fmt,
    net::IpAddr,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;

/// Common name of the generated CA.
pub(crate) const CA_COMMON_NAME: &str = "scale-governor-ca";

/// Certificates are back-dated this much so a peer whose clock runs a
/// little behind does not reject them as not yet valid.
const BACKDATE: Duration = Duration::from_secs(5 * 60);

/// Why a certificate could not be generated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// A DNS SAN is not a valid DNS name; TLS clients would never match it.
    #[error("{name:?} is not a valid DNS name")]
    InvalidDnsName {
        /// The offending name.
        name: String,
    },
    /// rcgen failed to build or sign a certificate.
    #[error("generating the {what}: {source}")]
    Rcgen {
        /// Which certificate or key.
        what: &'static str,
        /// rcgen's error.
        source: rcgen::Error,
    },
}

/// What a serving certificate is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServingSpec {
    /// Subject common name; informational only, clients match the SANs.
    pub(crate) common_name: String,
    pub(crate) dns_names: Vec<String>,
    /// IP SANs. Go ignores the CN, so `clientConfig.url: https://127.0.0.1:PORT`
    /// needs 127.0.0.1 here.
    pub(crate) ips: Vec<IpAddr>,
    /// Validity in days, capped at the CA's.
    pub days: u32,
}

impl ServingSpec {
    /// For a webhook behind the Service `service` in `namespace`: CN
    /// `<service>.<namespace>.svc`, DNS SANs for every name the Service
    /// answers to inside the cluster, `localhost`, then `extra_dns` without
    /// duplicates.
    pub(crate) fn for_service(
        service: &str,
        namespace: &str,
        extra_dns: &[String],
        ips: Vec<IpAddr>,
        days: u32,
    ) -> ServingSpec {
        let mut dns_names = vec![
            service.to_owned(),
            format!("{service}.{namespace}"),
            format!("{service}.{namespace}.svc"),
            format!("{service}.{namespace}.svc.cluster.local"),
            "localhost".to_owned(),
        ];
        for name in extra_dns {
            if !dns_names.contains(name) {
                dns_names.push(name.clone());
            }
        }
        ServingSpec {
            common_name: format!("{service}.{namespace}.svc"),
            dns_names,
            ips,
            days,
        }
    }

    /// For a server on this machine that the apiserver calls by
    /// `https://127.0.0.1:PORT` (a local control plane, tests): `localhost`,
    /// IP SAN 127.0.0.1, and `extra_dns` (e.g. `<svc>.<ns>.svc` for an
    /// aggregated APIService, whose ServerName is that name).
    #[cfg(any(test, feature = "test-support"))]
    pub fn loopback(extra_dns: &[&str], days: u32) -> ServingSpec {
        let mut dns_names = vec!["localhost".to_owned()];
        dns_names.extend(extra_dns.iter().map(|s| (*s).to_owned()));
        ServingSpec {
            common_name: "localhost".to_owned(),
            dns_names,
            ips: vec![IpAddr::from([127, 0, 0, 1])],
            days,
        }
    }
}

/// A serving certificate and its key, PEM.
#[derive(Clone)]
pub struct ServingCert {
    /// Certificate (`tls.crt`).
    pub cert_pem: String,
    /// Private key (`tls.key`), PKCS#8.
    pub key_pem: String,
}

impl fmt::Debug for ServingCert {
    // Keys stay out of logs and test failure output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServingCert")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

/// A CA that can issue several serving certificates: a fresh one, or one
/// loaded back from its files so a leaf can be renewed without changing the
/// `caBundle` the apiserver trusts.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    not_after: SystemTime,
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("cert_pem", &self.cert_pem())
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// A fresh self-signed CA (CN `scale-governor-ca`) valid for `days`.
    pub fn new(days: u32) -> Result<Self, CaError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, CA_COMMON_NAME);
        // Path length 0: it signs serving certificates, never other CAs.
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = SystemTime::now();
        let not_after = now + Duration::from_secs(u64::from(days) * 24 * 60 * 60);
        set_validity(&mut params, now - BACKDATE, not_after);
        let key = KeyPair::generate().map_err(rcgen_err("CA key"))?;
        let cert = params
            .self_signed(&key)
            .map_err(rcgen_err("CA certificate"))?;
        Ok(Self {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
            not_after,
        })
    }

    /// The CA whose certificate and key are these PEM files' contents, e.g.
    /// the `ca.crt` and `ca.key` that `scale-governor certs` wrote.
    pub(crate) fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, CaError> {
        let key = KeyPair::from_pem(key_pem).map_err(rcgen_err("CA key"))?;
        let der = rustls::pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(
            |_| CaError::Rcgen {
                what: "CA certificate",
                source: rcgen::Error::CouldNotParseCertificate,
            },
        )?;
        let not_after = x509_parser::parse_x509_certificate(&der)
            .map(|(_, cert)| cert.validity().not_after.timestamp())
            .map_err(|_| CaError::Rcgen {
                what: "CA certificate",
                source: rcgen::Error::CouldNotParseCertificate,
            })?;
        let issuer = Issuer::from_ca_cert_der(&der, key).map_err(rcgen_err("CA certificate"))?;
        Ok(Self {
            issuer,
            cert_pem: cert_pem.to_owned(),
            not_after: UNIX_EPOCH + Duration::from_secs(u64::try_from(not_after).unwrap_or(0)),
        })
    }

    /// When the CA itself expires: every leaf it issued stops verifying then.
    pub(crate) fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> String {
        self.cert_pem.clone()
    }

    /// The CA private key, PEM (PKCS#8).
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// The `caBundle` value: base64 of [`cert_pem`](Self::cert_pem).
    pub fn ca_bundle(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.cert_pem())
    }

    /// Issues a server-auth certificate with a fresh key, hence a fresh
    /// serial (rcgen derives it from the key), valid for `spec.days` but
    /// never beyond the CA.
    pub fn issue(&self, spec: &ServingSpec) -> Result<ServingCert, CaError> {
        self.issue_valid_for(
            spec,
            Duration::from_secs(u64::from(spec.days) * 24 * 60 * 60),
        )
    }

    /// [`issue`](Self::issue) valid for `validity` from now instead of
    /// `spec.days` (the self-signed mode's leaves), never beyond the CA.
    pub(crate) fn issue_valid_for(
        &self,
        spec: &ServingSpec,
        validity: Duration,
    ) -> Result<ServingCert, CaError> {
        // A leaf that outlives its CA fails to verify from then on.
        let now = SystemTime::now();
        self.issue_between(spec, now - BACKDATE, (now + validity).min(self.not_after))
    }

    /// [`issue`](Self::issue) with explicit validity dates, e.g. to check
    /// what happens to a certificate that has expired.
    pub fn issue_between(
        &self,
        spec: &ServingSpec,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<ServingCert, CaError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, spec.common_name.as_str());
        for name in &spec.dns_names {
            let invalid = || CaError::InvalidDnsName { name: name.clone() };
            // rcgen checks only for ASCII; rustls's check is the one clients apply.
            rustls::pki_types::DnsName::try_from(name.as_str()).map_err(|_| invalid())?;
            let ia5 = name.clone().try_into().map_err(|_| invalid())?;
            params.subject_alt_names.push(SanType::DnsName(ia5));
        }
        params
            .subject_alt_names
            .extend(spec.ips.iter().copied().map(SanType::IpAddress));
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params, not_before, not_after);
        let key = KeyPair::generate().map_err(rcgen_err("serving key"))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(rcgen_err("serving certificate"))?;
        Ok(ServingCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

fn set_validity(params: &mut CertificateParams, not_before: SystemTime, not_after: SystemTime) {
    params.not_before = not_before.into();
    params.not_after = not_after.into();
}

fn rcgen_err(what: &'static str) -> impl FnOnce(rcgen::Error) -> CaError {
    move |source| CaError::Rcgen { what, source }
}

#[cfg(test)]
mod tests {
    use std::{net::Ipv4Addr, sync::Arc};

    use rustls::{
        client::{WebPkiServerVerifier, danger::ServerCertVerifier},
        pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject},
    };
    use x509_parser::{extensions::GeneralName, prelude::X509Certificate};

    use super::*;

    fn der(pem: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(pem.as_bytes()).expect("PEM certificate")
    }

    fn with_x509<T>(pem: &str, f: impl FnOnce(&X509Certificate<'_>) -> T) -> T {
        let der = der(pem);
        let (_, cert) = x509_parser::parse_x509_certificate(&der).expect("X.509");
        f(&cert)
    }

    fn spec(dns: &[&str]) -> ServingSpec {
        ServingSpec {
            common_name: "svc.ns.svc".into(),
            dns_names: dns.iter().map(|s| s.to_string()).collect(),
            ips: vec![Ipv4Addr::LOCALHOST.into()],
            days: 30,
        }
    }

    #[test]
    fn issues_a_server_auth_leaf_with_exactly_the_requested_sans() {
        let ca = CertificateAuthority::new(365).unwrap();
        let leaf = ca.issue(&spec(&["svc.ns.svc", "localhost"])).unwrap();
        let (dns, ips, server_auth, is_ca, not_after) = with_x509(&leaf.cert_pem, |cert| {
            let san = cert.subject_alternative_name().unwrap().unwrap().value;
            let (mut dns, mut ips) = (vec![], vec![]);
            for name in &san.general_names {
                match name {
                    GeneralName::DNSName(n) => dns.push(n.to_string()),
                    GeneralName::IPAddress(ip) => ips.push(ip.to_vec()),
                    other => panic!("unexpected SAN {other:?}"),
                }
            }
            let eku = cert.extended_key_usage().unwrap().unwrap().value;
            let not_after = cert.validity().not_after.timestamp();
            (dns, ips, eku.server_auth, cert.is_ca(), not_after)
        });
        assert_eq!(dns, ["svc.ns.svc", "localhost"]);
        assert_eq!(ips, [vec![127, 0, 0, 1]]);
        assert!(server_auth && !is_ca);
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let days = (not_after - now) as f64 / 86_400.0;
        assert!((29.9..=30.1).contains(&days), "{days} days");

        let ca_is_ca = with_x509(&ca.cert_pem(), |c| {
            assert!(c.subject().to_string().contains(CA_COMMON_NAME));
            c.is_ca()
        });
        assert!(ca_is_ca);
    }

    #[test]
    fn the_leaf_verifies_against_the_ca_for_its_names_only() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let ca = CertificateAuthority::new(1).unwrap();
        let leaf = der(&ca.issue(&spec(&["svc.ns.svc"])).unwrap().cert_pem);
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der(&ca.cert_pem())).unwrap();
        let verifier = WebPkiServerVerifier::builder(Arc::new(roots))
            .build()
            .unwrap();
        let verify = |name: ServerName<'static>| {
            verifier.verify_server_cert(&leaf, &[], &name, &[], UnixTime::now())
        };
        assert!(verify(ServerName::IpAddress(Ipv4Addr::LOCALHOST.into())).is_ok());
        assert!(verify(ServerName::try_from("svc.ns.svc").unwrap()).is_ok());
        assert!(verify(ServerName::try_from("other.example").unwrap()).is_err());
        assert!(verify(ServerName::IpAddress(Ipv4Addr::new(10, 0, 0, 1).into())).is_err());
    }

    #[test]
    fn rejects_an_invalid_dns_name() {
        let ca = CertificateAuthority::new(1).unwrap();
        let err = ca.issue(&spec(&["not a name"])).unwrap_err();
        assert!(matches!(err, CaError::InvalidDnsName { ref name } if name == "not a name"));
    }
}
