//! The `admission.k8s.io/v1` wire types, owned here: the request side borrows
//! the object JSON instead of copying it, and the response side encodes the
//! patch as base64 text, which is what the apiserver expects.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// An incoming `AdmissionReview`; only the request matters.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionReview<'a> {
    /// `admission.k8s.io/v1` from a current apiserver; `v1beta1` from an
    /// old webhook configuration.
    #[serde(default)]
    pub api_version: Option<String>,
    /// `AdmissionReview`.
    #[serde(default)]
    pub kind: Option<String>,
    /// The request; absent only in malformed reviews.
    #[serde(borrow)]
    pub request: Option<AdmissionRequest<'a>>,
}

/// `AdmissionRequest`, the fields the governor reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest<'a> {
    /// Echoed in the response.
    pub uid: String,
    /// Kind of the object sent (a `Scale` for `/scale`).
    pub kind: GroupVersionKind,
    /// Resource addressed (`deployments` even for `/scale`).
    pub resource: GroupVersionResource,
    /// `scale` for the scale subresource.
    #[serde(default)]
    pub sub_resource: Option<String>,
    /// Object name; absent on some CREATEs with generateName.
    #[serde(default)]
    pub name: Option<String>,
    /// Object namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// CREATE, UPDATE, DELETE or CONNECT.
    pub operation: String,
    /// Who asks.
    #[serde(default)]
    pub user_info: UserInfo,
    /// The object after the change.
    #[serde(default, borrow)]
    pub object: Option<&'a RawValue>,
    /// The object before the change (UPDATE).
    #[serde(default, borrow)]
    pub old_object: Option<&'a RawValue>,
    /// `--dry-run=server`: must leave no trace.
    #[serde(default)]
    pub dry_run: Option<bool>,
    /// The write's options (`CreateOptions`, `UpdateOptions`, `PatchOptions`).
    #[serde(default, borrow)]
    pub options: Option<WriteOptions<'a>>,
}

/// The one field of a write's options the governor reads, borrowed from
/// the body (every write sends one).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WriteOptions<'a> {
    /// The writer's field manager, e.g. `kubectl-client-side-apply`.
    #[serde(default, borrow)]
    pub field_manager: Option<std::borrow::Cow<'a, str>>,
}

impl AdmissionRequest<'_> {
    /// The writer's field manager, if it sent one.
    pub fn field_manager(&self) -> Option<&str> {
        self.options.as_ref()?.field_manager.as_deref()
    }
}

/// Group, version and kind.
#[derive(Debug, Default, Deserialize)]
pub struct GroupVersionKind {
    /// API group; empty for core.
    #[serde(default)]
    pub group: String,
    /// API version.
    #[serde(default)]
    pub version: String,
    /// Kind.
    #[serde(default)]
    pub kind: String,
}

/// Group, version and resource.
#[derive(Debug, Default, Deserialize)]
pub struct GroupVersionResource {
    /// API group; empty for core.
    #[serde(default)]
    pub group: String,
    /// API version.
    #[serde(default)]
    pub version: String,
    /// Plural resource name.
    #[serde(default)]
    pub resource: String,
}

/// The requesting user.
#[derive(Debug, Default, Deserialize)]
pub struct UserInfo {
    /// Username, e.g. `system:serviceaccount:kube-system:horizontal-pod-autoscaler`.
    #[serde(default)]
    pub username: Option<String>,
    /// Groups, e.g. `system:masters`.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// The AdmissionReview versions the webhook answers. The response shape is
/// the same in both; the apiserver refuses an answer in another version
/// than it asked in (`unknown conversion`), so the answer echoes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReviewVersion {
    /// `admission.k8s.io/v1`.
    #[default]
    V1,
    /// `admission.k8s.io/v1beta1`.
    V1beta1,
}

impl ReviewVersion {
    /// The version a review asks in; `None` for any other.
    pub fn of(api_version: Option<&str>) -> Option<ReviewVersion> {
        match api_version {
            Some("admission.k8s.io/v1") => Some(ReviewVersion::V1),
            Some("admission.k8s.io/v1beta1") => Some(ReviewVersion::V1beta1),
            _ => None,
        }
    }

    /// The `apiVersion` string.
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewVersion::V1 => "admission.k8s.io/v1",
            ReviewVersion::V1beta1 => "admission.k8s.io/v1beta1",
        }
    }
}

/// The outgoing review.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReviewResponse {
    api_version: &'static str,
    kind: &'static str,
    /// The answer.
    pub response: AdmissionResponse,
}

impl ReviewResponse {
    /// Wraps a response in a review of the version the request came in.
    pub fn new(version: ReviewVersion, response: AdmissionResponse) -> ReviewResponse {
        ReviewResponse {
            api_version: version.as_str(),
            kind: "AdmissionReview",
            response,
        }
    }
}

/// `AdmissionResponse`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionResponse {
    /// The request's uid.
    pub uid: String,
    /// Admit or refuse.
    pub allowed: bool,
    /// Why a request was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// Base64 of the JSON Patch bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    /// `JSONPatch` whenever `patch` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<String>,
    /// Shown by kubectl as `Warning: …`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Recorded in the audit log under `<webhook name>/<key>`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub audit_annotations: BTreeMap<String, String>,
}

impl AdmissionResponse {
    /// An allowing response with nothing to say.
    pub fn allow(uid: &str) -> AdmissionResponse {
        AdmissionResponse {
            uid: uid.to_owned(),
            allowed: true,
            status: None,
            patch: None,
            patch_type: None,
            warnings: Vec::new(),
            audit_annotations: BTreeMap::new(),
        }
    }

    /// A refusal with an HTTP-style code and a message for the user.
    pub fn deny(uid: &str, code: u16, reason: &str, message: String) -> AdmissionResponse {
        AdmissionResponse {
            allowed: false,
            status: Some(Status {
                code,
                reason: reason.to_owned(),
                message,
            }),
            ..AdmissionResponse::allow(uid)
        }
    }
}

/// `metav1.Status`, as much as a refusal needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// HTTP-style code; 403 for a policy refusal.
    pub code: u16,
    /// `Forbidden` or `Invalid`.
    pub reason: String,
    /// The user-facing explanation.
    pub message: String,
}
