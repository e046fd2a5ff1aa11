//! A Prometheus server: an instant query (`/api/v1/query`) whose scalar or
//! single-sample vector is the total demand, and the same query over a
//! range (`/api/v1/query_range`) to backfill the seasonal strategy's
//! history.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{
    ConfigError, Source, SourceClient, SourceError, Target, check_url, demand, fill, fits_params,
};
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
    pub(super) fn check(&self, name: &str) -> Result<(), ConfigError> {
        check_url(name, &self.url)?;
        if self.queries.is_empty() {
            return Err(ConfigError::NoQueries(name.to_owned()));
        }
        Ok(())
    }

    fn query_names(&self) -> String {
        self.queries.keys().cloned().collect::<Vec<_>>().join(", ")
    }
}

impl Source for Prometheus {
    fn fits(&self, name: &str, config: &RecommendConfig) -> Result<(), ConfigError> {
        let Some(query) = config.query.as_deref() else {
            return Err(ConfigError::NoQuery {
                name: name.to_owned(),
                queries: self.query_names(),
            });
        };
        let Some(template) = self.queries.get(query) else {
            return Err(ConfigError::UnknownQuery {
                name: name.to_owned(),
                query: query.to_owned(),
                queries: self.query_names(),
            });
        };
        fits_params(name, template, config)
    }

    async fn sample(
        &self,
        client: &SourceClient,
        config: &RecommendConfig,
        target: Target<'_>,
    ) -> Result<f64, SourceError> {
        let url = format!(
            "{}/api/v1/query?query={}",
            self.url.trim_end_matches('/'),
            self.promql(config, target)?
        );
        parse(client.get_json(&url).await?)
    }
}

/// The most points Prometheus returns for one series of a range query.
const MAX_POINTS: i64 = 11_000;

impl Prometheus {
    /// The query `config` names, filled in for `target`, URL-encoded.
    fn promql(&self, config: &RecommendConfig, target: Target<'_>) -> Result<String, ConfigError> {
        let query = config.query.as_deref().unwrap_or_default();
        let template = self
            .queries
            .get(query)
            .ok_or_else(|| ConfigError::UnknownQuery {
                name: config.source.clone().unwrap_or_default(),
                query: query.to_owned(),
                queries: self.query_names(),
            })?;
        let promql = fill(template, target, &config.params, |v| v.to_owned())?;
        Ok(form_urlencoded::byte_serialize(promql.as_bytes()).collect())
    }

    /// The query's values every `step_seconds` from `start` to `end`, in
    /// time order, in as many requests as Prometheus's limit of points per
    /// series needs. Points with no sample are left out.
    pub(super) async fn range(
        &self,
        client: &SourceClient,
        config: &RecommendConfig,
        target: Target<'_>,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step_seconds: i64,
    ) -> Result<Vec<(DateTime<Utc>, f64)>, SourceError> {
        let query = self.promql(config, target)?;
        let step = step_seconds.max(1);
        let mut out = Vec::new();
        let mut from = start.timestamp();
        while from <= end.timestamp() {
            let to = (from + step * (MAX_POINTS - 1)).min(end.timestamp());
            let url = format!(
                "{}/api/v1/query_range?query={query}&start={from}&end={to}&step={step}",
                self.url.trim_end_matches('/'),
            );
            out.extend(parse_range(client.get_json(&url).await?)?);
            from = to + step;
        }
        Ok(out)
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

/// The data of a successful answer.
fn data(body: serde_json::Value) -> Result<Data, SourceError> {
    let answer: Answer =
        serde_json::from_value(body).map_err(|e| SourceError::Decode(e.to_string()))?;
    if answer.status != "success" {
        return Err(SourceError::Prometheus(format!(
            "{}: {}",
            answer.error_type.unwrap_or_default(),
            answer.error.unwrap_or_default()
        )));
    }
    answer
        .data
        .ok_or_else(|| SourceError::Decode("no data".to_owned()))
}

/// The points of an `/api/v1/query_range` answer: one series (none gives
/// no points), values that are not a demand left out (a gap, not a zero).
pub(super) fn parse_range(
    body: serde_json::Value,
) -> Result<Vec<(DateTime<Utc>, f64)>, SourceError> {
    let data = data(body)?;
    if data.result_type != "matrix" {
        return Err(SourceError::Decode(format!(
            "result type {}; a range query gives a matrix",
            data.result_type
        )));
    }
    let series = data.result.as_array().cloned().unwrap_or_default();
    let values = match series.len() {
        0 => return Ok(Vec::new()),
        1 => series[0]
            .get("values")
            .and_then(|v| v.as_array())
            .cloned()
            .unwrap_or_default(),
        n => return Err(SourceError::Several(n)),
    };
    Ok(values
        .iter()
        .filter_map(|point| {
            let at = point.get(0)?.as_f64()?;
            let at = DateTime::from_timestamp_millis((at * 1000.0).round() as i64)?;
            let value = demand(point.get(1)?).ok()?;
            Some((at, value))
        })
        .collect())
}

/// The demand in an `/api/v1/query` answer.
pub(super) fn parse(body: serde_json::Value) -> Result<f64, SourceError> {
    let data = data(body)?;
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
