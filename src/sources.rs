//! Where the recommender reads demand from: named sources defined on the
//! governor's side (`serve --sources FILE`), never in a workload's
//! annotation. An annotation that could name a URL or a PromQL query would
//! let any namespace editor make the governor reach internal addresses or
//! other tenants' metrics; here it names a source and supplies only what
//! the source lets it supply: a named query, a JSON Pointer, plain-word
//! values for the source's `{{placeholders}}`.
//!
//! ```yaml
//! sources:
//!   - name: prometheus
//!     namespaces: ["*"]
//!     prometheus:
//!       url: http://prometheus.monitoring.svc:9090
//!       queries:
//!         orders: 'sum(rate(orders_total{namespace="{{namespace}}",app="{{name}}"}[2m]))'
//!   - name: orders-api
//!     namespaces: [shop]
//!     http:
//!       url: http://{{name}}.{{namespace}}.svc:8080/stats
//! ```

pub(crate) mod client;
mod error;
mod http;
mod prometheus;

use std::{collections::BTreeMap, path::Path, time::Duration};

use chrono::{DateTime, Utc};
use serde::Deserialize;

pub(crate) use self::{
    client::{HttpClient, SourceClient},
    error::{ConfigError, SourceError},
};
use crate::policy::{POD_SOURCE, RecommendConfig};

/// Which workload a sample is for.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// Its namespace.
    pub namespace: &'a str,
    /// Its name.
    pub name: &'a str,
}

/// A metric source: one number of total demand per sample.
pub(crate) trait Source {
    /// Whether `config` gives this source (called `name`) the parameters it
    /// takes; the message is what admission refuses with.
    fn fits(&self, name: &str, config: &RecommendConfig) -> Result<(), ConfigError>;

    /// Takes one sample for `target` as `config` describes it.
    fn sample(
        &self,
        client: &SourceClient,
        config: &RecommendConfig,
        target: Target<'_>,
    ) -> impl std::future::Future<Output = Result<f64, SourceError>> + Send;
}

impl Source for SourceKind {
    fn fits(&self, name: &str, config: &RecommendConfig) -> Result<(), ConfigError> {
        match self {
            SourceKind::Prometheus(p) => p.fits(name, config),
            SourceKind::Http(h) => h.fits(name, config),
        }
    }

    async fn sample(
        &self,
        client: &SourceClient,
        config: &RecommendConfig,
        target: Target<'_>,
    ) -> Result<f64, SourceError> {
        match self {
            SourceKind::Prometheus(p) => p.sample(client, config, target).await,
            SourceKind::Http(h) => h.sample(client, config, target).await,
        }
    }
}

/// The `serve --sources` file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SourcesFile {
    #[serde(default)]
    sources: Vec<RawSourceDef>,
}

/// One source as written: exactly one of `prometheus` and `http`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawSourceDef {
    name: String,
    #[serde(default)]
    prometheus: Option<prometheus::Prometheus>,
    #[serde(default)]
    http: Option<http::HttpJson>,
    namespaces: Vec<String>,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    bearer_token_file: Option<String>,
    #[serde(default)]
    ca_file: Option<String>,
}

/// One source as the operator defines it.
#[derive(Debug, Clone)]
pub struct SourceDef {
    /// What annotations call it.
    pub name: String,
    /// What it is.
    pub kind: SourceKind,
    /// Namespaces whose workloads may use it; `*` for all.
    pub namespaces: Vec<String>,
    /// How long a sample may take.
    pub timeout: Duration,
    /// A bearer token to send, read from this file (a mounted Secret), on
    /// every request, so a rotated token is used at once.
    pub(crate) bearer_token_file: Option<String>,
    /// PEM CA certificates to verify an `https` source with, instead of the
    /// system's.
    pub(crate) ca_file: Option<String>,
}

/// The kinds of source.
#[derive(Debug, Clone)]
pub enum SourceKind {
    /// A Prometheus server: an instant query whose result is one number.
    Prometheus(prometheus::Prometheus),
    /// An HTTP endpoint returning JSON: the number at a JSON Pointer.
    Http(http::HttpJson),
}

/// Why the sources file is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourcesError {
    /// It cannot be read.
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// It is read and refused.
    #[error("{path}: {source}")]
    Invalid { path: String, source: ConfigError },
}

/// The sources, by name.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    defs: BTreeMap<String, SourceDef>,
}

/// How long a sample may take when the source does not say.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

impl Sources {
    /// No sources (only warm pools and windows work).
    pub fn none() -> Sources {
        Sources::default()
    }

    /// Reads and checks the `--sources` file.
    pub fn load(path: &Path) -> Result<Sources, SourcesError> {
        let shown = || path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| SourcesError::Read {
            path: shown(),
            source,
        })?;
        Sources::parse(&text).map_err(|source| SourcesError::Invalid {
            path: shown(),
            source,
        })
    }

    /// Parses the file's YAML.
    pub fn parse(text: &str) -> Result<Sources, ConfigError> {
        let file: SourcesFile =
            serde_saphyr::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
        let mut defs = BTreeMap::new();
        for raw in file.sources {
            let name = raw.name;
            if name == POD_SOURCE {
                return Err(ConfigError::BuiltIn);
            }
            let timeout = match &raw.timeout {
                None => DEFAULT_TIMEOUT,
                Some(t) => crate::units::parse_seconds(t)
                    .map(Duration::from_secs)
                    .map_err(|e| ConfigError::Timeout {
                        source_name: name.clone(),
                        reason: e.to_string(),
                    })?,
            };
            let kind = match (raw.prometheus, raw.http) {
                (Some(p), None) => {
                    p.check(&name)?;
                    SourceKind::Prometheus(p)
                }
                (None, Some(h)) => {
                    h.check(&name)?;
                    SourceKind::Http(h)
                }
                _ => return Err(ConfigError::Kind(name)),
            };
            let def = SourceDef {
                name: name.clone(),
                kind,
                namespaces: raw.namespaces,
                timeout,
                bearer_token_file: raw.bearer_token_file,
                ca_file: raw.ca_file,
            };
            if defs.insert(name.clone(), def).is_some() {
                return Err(ConfigError::Twice(name));
            }
        }
        Ok(Sources { defs })
    }

    /// The source called `name`.
    #[cfg(any(test, feature = "test-support"))]
    pub fn get(&self, name: &str) -> Option<&SourceDef> {
        self.defs.get(name)
    }

    /// Whether a workload in `namespace` may use `config` as written: the
    /// source exists, admits the namespace, and gets the parameters its kind
    /// takes. The message is what admission refuses with.
    pub fn check(&self, config: &RecommendConfig, namespace: &str) -> Result<(), ConfigError> {
        let Some(name) = config.source.as_deref() else {
            return Ok(());
        };
        if name == POD_SOURCE {
            return Ok(());
        }
        let Some(def) = self.defs.get(name) else {
            let known: Vec<&str> = self
                .defs
                .keys()
                .map(String::as_str)
                .chain([POD_SOURCE])
                .collect();
            return Err(ConfigError::Unknown {
                name: name.to_owned(),
                known: known.join(", "),
            });
        };
        if !def.namespaces.iter().any(|n| n == "*" || n == namespace) {
            return Err(ConfigError::Namespace {
                name: name.to_owned(),
                namespace: namespace.to_owned(),
                allowed: def.namespaces.join(", "),
            });
        }
        def.kind.fits(name, config)
    }

    /// Takes one sample from the source `config` names.
    pub async fn sample(
        &self,
        client: &HttpClient,
        config: &RecommendConfig,
        target: Target<'_>,
    ) -> Result<f64, SourceError> {
        let name = config.source.as_deref().unwrap_or_default();
        let def = self.defs.get(name).ok_or_else(|| ConfigError::Unknown {
            name: name.to_owned(),
            known: self.defs.keys().cloned().collect::<Vec<_>>().join(", "),
        })?;
        self.check(config, target.namespace)?;
        let timeout = def.timeout;
        let client = client.for_source(def)?;
        match tokio::time::timeout(timeout, def.kind.sample(&client, config, target)).await {
            Ok(result) => result,
            Err(_) => Err(SourceError::Timeout(timeout)),
        }
    }
}

impl Sources {
    /// Past demand from the source `config` names, every `step_seconds`
    /// from `start` to `end`, for the seasonal strategy's backfill;
    /// `Ok(None)` when the source keeps no history (HTTP JSON). A counter's
    /// values become its rate per second between points, as when sampled.
    pub async fn sample_range(
        &self,
        client: &HttpClient,
        config: &RecommendConfig,
        target: Target<'_>,
        (start, end): (DateTime<Utc>, DateTime<Utc>),
        step_seconds: i64,
    ) -> Result<Option<Vec<(DateTime<Utc>, f64)>>, SourceError> {
        let name = config.source.as_deref().unwrap_or_default();
        let def = self.defs.get(name).ok_or_else(|| ConfigError::Unknown {
            name: name.to_owned(),
            known: self.defs.keys().cloned().collect::<Vec<_>>().join(", "),
        })?;
        let SourceKind::Prometheus(prometheus) = &def.kind else {
            return Ok(None);
        };
        self.check(config, target.namespace)?;
        let source = client.for_source(def)?;
        // Two weeks is a few requests of thousands of points each.
        let timeout = def.timeout * 4;
        let range = prometheus.range(&source, config, target, start, end, step_seconds);
        let points = tokio::time::timeout(timeout, range)
            .await
            .map_err(|_| SourceError::Timeout(timeout))??;
        Ok(Some(if config.counter {
            rates(&points)
        } else {
            points
        }))
    }
}

/// A counter's rate per second between consecutive points; a reset (the
/// counter went down) gives no rate for that step.
fn rates(points: &[(DateTime<Utc>, f64)]) -> Vec<(DateTime<Utc>, f64)> {
    points
        .windows(2)
        .filter_map(|w| {
            let ((t0, v0), (t1, v1)) = (w[0], w[1]);
            let seconds = (t1 - t0).num_milliseconds() as f64 / 1000.0;
            (seconds > 0.0 && v1 >= v0).then(|| (t1, (v1 - v0) / seconds))
        })
        .collect()
}

/// Fills `{{namespace}}`, `{{name}}` and the annotation's params into a
/// source's template; a placeholder left unfilled is a configuration error.
fn fill(
    template: &str,
    target: Target<'_>,
    params: &BTreeMap<String, String>,
    escape: impl Fn(&str) -> String,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| ConfigError::Unclosed(template.to_owned()))?;
        let key = after[..end].trim();
        let value = match key {
            "namespace" => target.namespace,
            "name" => target.name,
            other => params
                .get(other)
                .map(String::as_str)
                .ok_or_else(|| ConfigError::Unfilled(other.to_owned()))?,
        };
        out.push_str(&escape(value));
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The placeholders a template uses, besides `namespace` and `name`.
fn placeholders(template: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let key = after[..end].trim();
        if key != "namespace" && key != "name" {
            found.push(key.to_owned());
        }
        rest = &after[end + 2..];
    }
    found
}

/// Checks the annotation's params against what a template uses.
fn fits_params(source: &str, template: &str, config: &RecommendConfig) -> Result<(), ConfigError> {
    let used = placeholders(template);
    if let Some(needed) = used.iter().find(|u| !config.params.contains_key(*u)) {
        return Err(ConfigError::MissingParam {
            name: source.to_owned(),
            param: needed.clone(),
        });
    }
    if let Some(given) = config.params.keys().find(|g| !used.contains(g)) {
        return Err(ConfigError::ExtraParam {
            name: source.to_owned(),
            param: given.clone(),
        });
    }
    Ok(())
}

/// A source's URL must be plain `http://` or `https://`.
fn check_url(name: &str, url: &str) -> Result<(), ConfigError> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(ConfigError::Url {
            source_name: name.to_owned(),
            url: url.to_owned(),
        })
    }
}

/// Reads a JSON number (or a string holding one) as a demand.
fn demand(value: &serde_json::Value) -> Result<f64, SourceError> {
    let n = match value {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match n {
        Some(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err(SourceError::NotANumber(value.to_string())),
    }
}

#[cfg(test)]
mod tests;
