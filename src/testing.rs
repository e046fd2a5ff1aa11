//! What the integration tests, benches and fuzz targets reach inside the
//! crate, under the `test-support` feature (the crate's own dev-dependency
//! turns it on; the shipped binary never has it). One place, so the rest of
//! the crate stays `pub(crate)` and a reader sees exactly what the tests
//! lean on. Each module mirrors the internal one of the same name.

/// The watch-fed cache, fed by hand in router and model tests.
pub mod cache {
    pub use crate::cache::{Cache, Update};
}

/// SVG charts of recorded runs and simulations.
pub mod chart {
    pub use crate::chart::{Figure, ORANGE, Panel, RGBColor, Series, Style, View, svg};
}

/// The command line's pieces that tests drive without a process.
pub mod cli {
    pub use crate::cli::{Cli, Command};

    /// `certs`: a CA and a serving certificate for tests.
    pub mod certs {
        pub use crate::cli::certs::{Args, Generated, generate};
    }

    /// `explain`, as docs/policy.md's examples run it.
    pub mod explain {
        pub use crate::cli::explain::{ExplainError, explain, render};
    }
}

/// The Event sink, for a handler that reports.
pub mod events {
    pub use crate::events::EventSink;
}

/// The Lease the leader holds.
pub mod leader {
    pub use crate::leader::LEASE_NAME;
}

/// The ledger objects, read back by tests that check what was persisted.
pub mod ledgers {
    pub use crate::ledgers::{LEDGER_LABEL, SEASONAL_KEY, from_object, object_name};
}

/// Prometheus metrics.
pub mod metrics {
    pub use crate::metrics::Metrics;
}

/// The HTTPS listener.
pub mod server {
    pub use crate::server::{HttpsOptions, ServerError, serve_https};
}

/// Metric sources.
pub mod sources {
    pub use crate::sources::{Sources, Target, client::HttpClient};
}

/// Certificates and the serving TLS config.
pub mod tls {
    pub use crate::tls::{CertPaths, CertStore, certified_key_from_pem, server_config};

    /// The governor's own CA.
    pub mod ca {
        pub use crate::tls::ca::{CertificateAuthority, ServingCert, ServingSpec};
    }
}

/// The admission handler and its router.
pub mod webhook {
    pub use crate::webhook::{MAX_BODY_BYTES, Webhook, router};

    /// One review, decided in process.
    pub mod admit {
        pub use crate::webhook::admit::{Endpoint, Reviewed, review};
    }

    /// The handler's settings.
    pub mod guard {
        pub use crate::webhook::guard::AdmitConfig;
    }

    /// The AdmissionReview wire types.
    pub mod review {
        pub use crate::webhook::review::{AdmissionResponse, ReviewResponse};
    }
}
