//! The HTTP client the sources share: hyper over rustls (the TLS stack kube
//! already uses), system roots or a source's own CA, a bounded body.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use rustls::pki_types::{CertificateDer, pem::PemObject};

use super::{ConfigError, SourceDef, SourceError};

/// The largest response body read from a source.
const MAX_BODY: usize = 1024 * 1024;

type Inner = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// A pooled client, plus one per source that brings its own CA.
#[derive(Clone)]
pub struct HttpClient {
    default: Inner,
    custom: Arc<Mutex<HashMap<String, Inner>>>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient").finish_non_exhaustive()
    }
}

fn build(roots: Option<rustls::RootCertStore>) -> Result<Inner, ConfigError> {
    let connector = match roots {
        Some(roots) => {
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| ConfigError::Client(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
            HttpsConnectorBuilder::new()
                .with_tls_config(config)
                .https_or_http()
                .enable_http1()
                .build()
        }
        None => HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| ConfigError::Client(format!("loading the system's CA certificates: {e}")))?
            .https_or_http()
            .enable_http1()
            .build(),
    };
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

impl HttpClient {
    /// A client with the system's CA certificates.
    pub fn new() -> Result<HttpClient, ConfigError> {
        Ok(HttpClient {
            default: build(None)?,
            custom: Arc::default(),
        })
    }

    /// The client and credentials for one source.
    pub(crate) fn for_source(&self, def: &SourceDef) -> Result<SourceClient, ConfigError> {
        let client = match &def.ca_file {
            None => self.default.clone(),
            Some(path) => {
                let mut custom = self.custom.lock().unwrap_or_else(|p| p.into_inner());
                match custom.get(&def.name) {
                    Some(client) => client.clone(),
                    None => {
                        let bad = |e: &dyn std::fmt::Display| ConfigError::File {
                            field: "caFile",
                            path: path.clone(),
                            reason: e.to_string(),
                        };
                        let pem = std::fs::read(path).map_err(|e| bad(&e))?;
                        let mut roots = rustls::RootCertStore::empty();
                        for cert in CertificateDer::pem_slice_iter(&pem) {
                            let cert = cert.map_err(|e| bad(&e))?;
                            roots.add(cert).map_err(|e| bad(&e))?;
                        }
                        let client = build(Some(roots))?;
                        custom.insert(def.name.clone(), client.clone());
                        client
                    }
                }
            }
        };
        // Read on every sample, so a rotated token (a Secret volume) is used
        // at once.
        let token = match &def.bearer_token_file {
            None => None,
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| ConfigError::File {
                        field: "bearerTokenFile",
                        path: path.clone(),
                        reason: e.to_string(),
                    })?
                    .trim()
                    .to_owned(),
            ),
        };
        Ok(SourceClient { client, token })
    }
}

/// What one sample talks through.
pub(crate) struct SourceClient {
    client: Inner,
    token: Option<String>,
}

impl SourceClient {
    /// GETs `url` and parses the body as JSON.
    pub(crate) async fn get_json(&self, url: &str) -> Result<serde_json::Value, SourceError> {
        let mut request = hyper::Request::get(url).header("accept", "application/json");
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = request
            .body(Empty::new())
            .map_err(|e| ConfigError::Request {
                url: url.to_owned(),
                reason: e.to_string(),
            })?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| SourceError::Transport(error_chain(&e)))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| SourceError::Transport(format!("reading the body: {e}")))?
            .to_bytes();
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            return Err(SourceError::Status {
                status: status.as_u16(),
                body: text.chars().take(200).collect(),
            });
        }
        serde_json::from_slice(&body).map_err(|e| SourceError::Decode(e.to_string()))
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
