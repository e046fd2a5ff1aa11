//! The peers `make bench-load PEERS=1` measures the governor against, on
//! the same TLS stack (rustls, hyper, HTTP/2 and HTTP/1.1 by ALPN) and the
//! same certificate:
//!
//! - `kube`: a minimal webhook written the way kube-rs's own admission
//!   example is: kube's `AdmissionReview<DynamicObject>` types, axum, and
//!   one rule, a clamp of `spec.replicas` above `--max` with a JSON Patch. It
//!   decides less than the governor (no policy, no ledger, no windows, no
//!   report) and shows what the framework costs by itself.
//! - `static`: answers every POST with the same bytes, a clamp review with a
//!   fixed uid: the transport's floor, nothing parsed.
//!
//! ```text
//! cargo bench --bench peer -- kube --addr 127.0.0.1:9443 --cert tls.crt --key tls.key
//! ```

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use anyhow::Context;
use axum::{Json, Router, body::Bytes, routing::post};
use clap::{Parser, Subcommand};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
    service::TowerToHyperService,
};
use kube::core::{
    DynamicObject,
    admission::{AdmissionRequest, AdmissionResponse, AdmissionReview},
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    kind: Kind,
}

#[derive(Debug, Subcommand)]
enum Kind {
    /// kube's admission types, axum, one clamp.
    Kube(Args),
    /// The same bytes for every request.
    Static(Args),
}

#[derive(Debug, clap::Args)]
struct Args {
    /// Listen address.
    #[arg(long)]
    addr: SocketAddr,
    /// PEM certificate chain.
    #[arg(long)]
    cert: PathBuf,
    /// PEM private key.
    #[arg(long)]
    key: PathBuf,
    /// The clamp: `spec.replicas` above this is patched down to it.
    #[arg(long, default_value_t = 400)]
    max: i64,
}

fn main() -> anyhow::Result<()> {
    let args = std::env::args().filter(|a| a != "--bench");
    let cli = Cli::parse_from(args);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let (app, args) = match cli.kind {
            Kind::Kube(args) => {
                let max = args.max;
                let app = Router::new().route(
                    "/mutate",
                    post(
                        move |Json(review): Json<AdmissionReview<DynamicObject>>| async move {
                            Json(clamp(review, max))
                        },
                    ),
                );
                (app, args)
            }
            Kind::Static(args) => {
                let body = Bytes::from(static_body(args.max));
                let app = Router::new().route(
                    "/mutate",
                    // The request body is read, as any server must, and
                    // not parsed.
                    post(move |_request: Bytes| {
                        let body = body.clone();
                        async move { ([("content-type", "application/json")], body) }
                    }),
                );
                (app, args)
            }
        };
        serve(app, &args).await
    })
}

/// The rule, as kube-rs's example writes its own: read the request, answer
/// allowed, patch when the object breaks the rule.
fn clamp(review: AdmissionReview<DynamicObject>, max: i64) -> AdmissionReview<DynamicObject> {
    let request: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(request) => request,
        Err(e) => return AdmissionResponse::invalid(e.to_string()).into_review(),
    };
    let mut response = AdmissionResponse::from(&request);
    let replicas = request
        .object
        .as_ref()
        .and_then(|o| o.data["spec"]["replicas"].as_i64());
    if replicas.is_some_and(|r| r > max) {
        let patch: json_patch_v4::Patch = serde_json::from_value(serde_json::json!([
            {"op": "replace", "path": "/spec/replicas", "value": max}
        ]))
        .expect("a JSON Patch");
        response = match response.with_patch(patch) {
            Ok(patched) => patched,
            Err(e) => AdmissionResponse::invalid(e.to_string()),
        };
    }
    response.into_review()
}

/// A clamp review, fixed: what the governor answers, minus the uid echo.
fn static_body(max: i64) -> String {
    use base64::Engine as _;
    let patch = format!(r#"[{{"op":"replace","path":"/spec/replicas","value":{max}}}]"#);
    let patch = base64::engine::general_purpose::STANDARD.encode(patch);
    format!(
        r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{{"uid":"00000000-0000-4000-8000-000000000000","allowed":true,"patchType":"JSONPatch","patch":"{patch}","warnings":["max-replicas {max}: clamped"]}}}}"#
    )
}

/// TLS with ALPN h2 and http/1.1, then hyper's auto connection builder, as
/// the governor's listener does; Nagle off.
async fn serve(app: Router, args: &Args) -> anyhow::Result<()> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&args.cert)
        .context("reading --cert")?
        .collect::<Result<_, _>>()?;
    let key = PrivateKeyDer::from_pem_file(&args.key).context("reading --key")?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind(args.addr).await?;
    eprintln!("peer: listening on {}", args.addr);
    let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
    loop {
        let (tcp, _) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        let (acceptor, builder, app) = (acceptor.clone(), builder.clone(), app.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let service = TowerToHyperService::new(app);
            let _ = builder.serve_connection(TokioIo::new(tls), service).await;
        });
    }
}
