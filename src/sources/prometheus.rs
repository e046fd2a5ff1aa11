//! A Prometheus server: an instant query (`/api/v1/query`) whose scalar or
//! single-sample vector is the total demand.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Source, SourceClient, SourceError, Target, demand, fill, fits_params};
use crate::policy::RecommendConfig;

/// A Prometheus source: its address and the queries annotations may name.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prometheus {
    /// e.g. `http://prometheus.monitoring.svc:9090`.
    pub url: String,
    /// PromQL by name, with `{{namespace}}`, `{{name}}` and `{{param}}`
    /// placeholders; values are plain words, so they cannot break out of a
    /// label matcher.
    pub queries: BTreeMap<String, String>,
}

impl Prometheus {
    pub(super) fn check(&self) -> Result<(), String> {
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(format!("url {:?} is not http(s)", self.url));
        }
        if self.queries.is_empty() {
            return Err("a prometheus source needs at least one query".to_owned());
        }
        Ok(())
    }
}

impl Source for Prometheus {
    fn kind(&self) -> &'static str {
        "prometheus"
    }

    fn fits(&self, name: &str, config: &RecommendConfig) -> Result<(), String> {
        let Some(query) = config.query.as_deref() else {
            return Err(format!(
                "source \"{name}\" is Prometheus: name one of its queries ({})",
                self.queries.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        };
        let Some(template) = self.queries.get(query) else {
            return Err(format!(
                "source \"{name}\" has no query \"{query}\"; it has {}",
                self.queries.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        };
        fits_params(name, template, config)
    }

    async fn sample(
        &self,
        client: &SourceClient,
        config: &RecommendConfig,
        target: Target<'_>,
    ) -> Result<f64, SourceError> {
        let template = config
            .query
            .as_deref()
            .and_then(|q| self.queries.get(q))
            .ok_or_else(|| SourceError::Config("no such query".to_owned()))?;
        let promql = fill(template, target, &config.params, |v| v.to_owned())
            .map_err(SourceError::Config)?;
        let url = format!(
            "{}/api/v1/query?query={}",
            self.url.trim_end_matches('/'),
            form_urlencoded::byte_serialize(promql.as_bytes()).collect::<String>()
        );
        parse(client.get_json(&url).await?)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default)]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    result_type: String,
    result: serde_json::Value,
}

/// The demand in an `/api/v1/query` answer.
pub(super) fn parse(body: serde_json::Value) -> Result<f64, SourceError> {
    let answer: Answer =
        serde_json::from_value(body).map_err(|e| SourceError::Decode(e.to_string()))?;
    if answer.status != "success" {
        return Err(SourceError::Prometheus(format!(
            "{}: {}",
            answer.error_type.unwrap_or_default(),
            answer.error.unwrap_or_default()
        )));
    }
    let data = answer
        .data
        .ok_or_else(|| SourceError::Decode("no data".to_owned()))?;
    let value = match data.result_type.as_str() {
        "scalar" => data.result.get(1).cloned(),
        "vector" => {
            let series = data.result.as_array().cloned().unwrap_or_default();
            match series.len() {
                0 => return Err(SourceError::Empty),
                1 => series[0].get("value").and_then(|v| v.get(1)).cloned(),
                n => return Err(SourceError::Several(n)),
            }
        }
        other => {
            return Err(SourceError::Decode(format!(
                "result type {other}; the query must give a scalar or one series"
            )));
        }
    };
    demand(&value.ok_or_else(|| SourceError::Decode("no value".to_owned()))?)
}
