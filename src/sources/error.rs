//! What can go wrong with a source: its definition or an annotation's use
//! of it ([`ConfigError`], refused at start or at admission), and a sample
//! ([`SourceError`], which the loop reports and backs off on).

use std::time::Duration;

use crate::policy::POD_SOURCE;

/// Why the sources file, or an annotation's use of a source, is refused.
/// The message is what `serve` stops with or admission refuses with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file is not the YAML expected.
    #[error("{0}")]
    Syntax(String),
    /// `pods` names the warm pools' built-in source.
    #[error("source name {POD_SOURCE:?} is built in (warm pools)")]
    BuiltIn,
    /// Two sources share a name.
    #[error("source {0} is defined twice")]
    Twice(String),
    /// A source with neither or both of `prometheus:` and `http:`.
    #[error("source {0}: give exactly one of prometheus: or http:")]
    Kind(String),
    /// A `timeout` that is not a duration.
    #[error("source {source_name}: timeout: {reason}")]
    Timeout {
        source_name: String,
        /// The parser's message.
        reason: String,
    },
    /// A URL that is not `http://` or `https://`.
    #[error("source {source_name}: url {url:?} is not http(s)")]
    Url {
        source_name: String,
        /// The URL as written.
        url: String,
    },
    /// A Prometheus source without queries.
    #[error("source {0}: a prometheus source needs at least one query")]
    NoQueries(String),
    /// The annotation names a source the governor does not define.
    #[error("source \"{name}\" is not defined by the governor (serve --sources); known: {known}")]
    Unknown {
        /// The name in the annotation.
        name: String,
        /// The sources there are.
        known: String,
    },
    /// The source does not admit the workload's namespace.
    #[error("source \"{name}\" may not be used from namespace {namespace}; it allows {allowed}")]
    Namespace {
        name: String,
        /// The workload's namespace.
        namespace: String,
        /// The namespaces it admits.
        allowed: String,
    },
    /// An HTTP JSON source used without a `pointer`.
    #[error(
        "source \"{0}\" is an HTTP JSON endpoint: give a pointer to the demand, like \"/orders\""
    )]
    NoPointer(String),
    /// A Prometheus source used without a `query`.
    #[error("source \"{name}\" is Prometheus: name one of its queries ({queries})")]
    NoQuery { name: String, queries: String },
    /// A `query` the source does not have.
    #[error("source \"{name}\" has no query \"{query}\"; it has {queries}")]
    UnknownQuery {
        name: String,
        /// The query asked for.
        query: String,
        queries: String,
    },
    /// A placeholder of the source's template without its `params` value.
    #[error("source \"{name}\" needs params.{param}")]
    MissingParam { name: String, param: String },
    /// A `params` value no placeholder takes.
    #[error("source \"{name}\" takes no params.{param}")]
    ExtraParam {
        name: String,
        /// The value's key.
        param: String,
    },
    /// A template with `{{` and no `}}`.
    #[error("unclosed {{{{ in {0:?}")]
    Unclosed(String),
    /// A placeholder with no value when the template is filled.
    #[error("the source needs params.{0}")]
    Unfilled(String),
    /// A `caFile` or `bearerTokenFile` that cannot be read or parsed.
    #[error("{field} {path}: {reason}")]
    File {
        /// `caFile` or `bearerTokenFile`.
        field: &'static str,
        path: String,
        reason: String,
    },
    /// The HTTP client cannot be built (TLS set-up).
    #[error("the HTTP client: {0}")]
    Client(String),
    /// A request that cannot be formed from the filled URL.
    #[error("{url}: {reason}")]
    Request { url: String, reason: String },
}

/// Why a sample could not be taken. Each is a named state, never a zero:
/// missing data must never read as "no demand".
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// No answer within the source's timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The connection failed.
    #[error("cannot reach the source: {0}")]
    Transport(String),
    /// The loop does not ask a source that failed until its back-off ends.
    #[error("backing off after failures")]
    BackingOff,
    /// An HTTP status other than 200.
    #[error("HTTP {status}: {body}")]
    Status {
        /// The status code.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// The body is not the JSON expected.
    #[error("the response does not parse: {0}")]
    Decode(String),
    /// Prometheus answered with an error.
    #[error("Prometheus: {0}")]
    Prometheus(String),
    /// The query matched no series.
    #[error("the query returned no series")]
    Empty,
    /// The query matched several series; demand must be one number.
    #[error("the query returned {0} series; aggregate it to one (sum, max)")]
    Several(usize),
    /// The value is NaN, infinite, negative or not a number.
    #[error("the value {0:?} is not a demand (a finite number of at least 0)")]
    NotANumber(String),
    /// The JSON Pointer points at nothing.
    #[error("nothing at {0} in the response")]
    Missing(String),
    /// The annotation and the source do not fit (checked at admission too).
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl SourceError {
    /// The metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceError::Timeout(_) => "timeout",
            SourceError::Transport(_) | SourceError::BackingOff => "transport",
            SourceError::Status { .. } => "status",
            SourceError::Decode(_) => "decode",
            SourceError::Prometheus(_) => "prometheus",
            SourceError::Empty => "empty",
            SourceError::Several(_) => "several",
            SourceError::NotANumber(_) => "nan",
            SourceError::Missing(_) => "missing",
            SourceError::Config(_) => "config",
        }
    }
}
