//! An HTTP endpoint returning JSON: the demand is the number at a JSON
//! Pointer (`{"orders": 42}` at `/orders`), optionally a counter whose rate
//! between samples is the demand (the loop computes the rate).

use serde::Deserialize;

use super::{
    ConfigError, Source, SourceClient, SourceError, Target, check_url, demand, fill, fits_params,
};
use crate::policy::RecommendConfig;

/// An HTTP JSON source: the URL template annotations may fill.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpJson {
    /// e.g. `http://{{name}}.{{namespace}}.svc:8080/stats`.
    pub url: String,
}

impl HttpJson {
    pub(super) fn check(&self, name: &str) -> Result<(), ConfigError> {
        check_url(name, &self.url)
    }
}

/// Percent-encodes a value for a URL path or query.
fn escape(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

impl Source for HttpJson {
    fn fits(&self, name: &str, config: &RecommendConfig) -> Result<(), ConfigError> {
        if config.pointer.is_none() {
            return Err(ConfigError::NoPointer(name.to_owned()));
        }
        fits_params(name, &self.url, config)
    }

    async fn sample(
        &self,
        client: &SourceClient,
        config: &RecommendConfig,
        target: Target<'_>,
    ) -> Result<f64, SourceError> {
        let url = fill(&self.url, target, &config.params, escape)?;
        let body = client.get_json(&url).await?;
        let pointer = config.pointer.as_deref().unwrap_or_default();
        let value = body
            .pointer(pointer)
            .ok_or_else(|| SourceError::Missing(pointer.to_owned()))?;
        demand(value)
    }
}
