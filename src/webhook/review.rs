//! The `admission.k8s.io/v1` wire types, owned here: the request side borrows
//! the object JSON instead of copying it, and the response side encodes the
//! patch as base64 text, which is what the apiserver expects.

use std::{borrow::Cow, collections::BTreeMap};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// An incoming `AdmissionReview`; only the request matters.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AdmissionReview<'a> {
    /// `admission.k8s.io/v1` from a current apiserver; `v1beta1` from an
    /// old webhook configuration.
    #[serde(default)]
    pub(crate) api_version: Option<String>,
    #[serde(default)]
    pub(crate) kind: Option<String>,
    /// The request; absent only in malformed reviews.
    #[serde(borrow)]
    pub(crate) request: Option<AdmissionRequest<'a>>,
}

/// `AdmissionRequest`, the fields the governor reads. Strings are borrowed
/// from the body (a JSON string with an escape in it is the rare one
/// copied), and the object and old object are kept raw until read.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AdmissionRequest<'a> {
    /// Echoed in the response.
    #[serde(borrow)]
    pub(crate) uid: Cow<'a, str>,
    /// Resource addressed (`deployments` even for `/scale`).
    #[serde(borrow)]
    pub(crate) resource: GroupVersionResource<'a>,
    /// `scale` for the scale subresource.
    #[serde(default, borrow, deserialize_with = "optional_str")]
    pub(crate) sub_resource: Option<Cow<'a, str>>,
    /// Object name; absent on some CREATEs with generateName.
    #[serde(default, borrow, deserialize_with = "optional_str")]
    pub(crate) name: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "optional_str")]
    pub(crate) namespace: Option<Cow<'a, str>>,
    /// CREATE, UPDATE, DELETE or CONNECT.
    #[serde(borrow)]
    pub(crate) operation: Cow<'a, str>,
    #[serde(default, borrow)]
    pub(crate) user_info: UserInfo<'a>,
    /// The object after the change.
    #[serde(default, borrow)]
    pub(crate) object: Option<&'a RawValue>,
    /// The object before the change (UPDATE).
    #[serde(default, borrow)]
    pub(crate) old_object: Option<&'a RawValue>,
    /// `--dry-run=server`: must leave no trace.
    #[serde(default)]
    pub(crate) dry_run: Option<bool>,
    /// The write's options (`CreateOptions`, `UpdateOptions`, `PatchOptions`).
    #[serde(default, borrow)]
    pub(crate) options: Option<WriteOptions<'a>>,
}

/// The one field of a write's options the governor reads, borrowed from
/// the body (every write sends one).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WriteOptions<'a> {
    /// The writer's field manager, e.g. `kubectl-client-side-apply`.
    #[serde(default, borrow, deserialize_with = "optional_str")]
    pub(crate) field_manager: Option<Cow<'a, str>>,
}

impl AdmissionRequest<'_> {
    /// The writer's field manager, if it sent one.
    pub(crate) fn field_manager(&self) -> Option<&str> {
        self.options.as_ref()?.field_manager.as_deref()
    }
}

/// Group, version and resource.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct GroupVersionResource<'a> {
    /// API group; empty for core.
    #[serde(default, borrow)]
    pub(crate) group: Cow<'a, str>,
    /// Plural resource name.
    #[serde(default, borrow)]
    pub(crate) resource: Cow<'a, str>,
}

/// The requesting user.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct UserInfo<'a> {
    /// Username, e.g. `system:serviceaccount:kube-system:horizontal-pod-autoscaler`.
    #[serde(default, borrow, deserialize_with = "optional_str")]
    pub(crate) username: Option<Cow<'a, str>>,
    /// Groups, e.g. `system:masters`.
    #[serde(default, borrow, deserialize_with = "strings")]
    pub(crate) groups: Vec<Cow<'a, str>>,
}

/// Deserializes a string borrowed from the body when it has no escapes,
/// copied when it has. serde borrows a bare `Cow<str>` field marked
/// `borrow`, but not one inside an `Option` or a `Vec`: these go through
/// here.
struct BorrowedStr<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for BorrowedStr<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Cow<'de, str>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Cow::Borrowed(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v))
            }
        }
        d.deserialize_str(Visitor).map(BorrowedStr)
    }
}

/// `Option<Cow<str>>`, borrowed when it can be.
pub(crate) fn optional_str<'de: 'a, 'a, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Cow<'a, str>>, D::Error> {
    Ok(Option::<BorrowedStr<'a>>::deserialize(d)?.map(|s| s.0))
}

/// `Vec<Cow<str>>`, each borrowed when it can be.
fn strings<'de: 'a, 'a, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Cow<'a, str>>, D::Error> {
    Ok(Vec::<BorrowedStr<'a>>::deserialize(d)?
        .into_iter()
        .map(|s| s.0)
        .collect())
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
    pub(crate) audit_annotations: BTreeMap<String, String>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_borrowed_from_the_body_unless_escaped() {
        let body = r#"{"request":{"uid":"u1","kind":{"kind":"Scale"},"resource":{"group":"apps","resource":"deployments"},
            "subResource":"scale","name":"web","namespace":"shop","operation":"UPDATE",
            "userInfo":{"username":"a\u0026b","groups":["plain","q\"uote"]},
            "options":{"fieldManager":"kubectl"}}}"#;
        let review: AdmissionReview<'_> = serde_json::from_str(body).unwrap();
        let req = review.request.unwrap();
        assert!(matches!(req.name, Some(Cow::Borrowed("web"))));
        assert!(matches!(req.sub_resource, Some(Cow::Borrowed("scale"))));
        assert!(matches!(req.uid, Cow::Borrowed("u1")));
        // Go's encoder escapes `&` as \u0026: read, as a copy.
        assert_eq!(req.user_info.username.as_deref(), Some("a&b"));
        assert!(matches!(req.user_info.groups[0], Cow::Borrowed("plain")));
        assert_eq!(req.user_info.groups[1], "q\"uote");
        assert_eq!(req.field_manager(), Some("kubectl"));
        // Absent optional strings stay absent; a wrong type is an error.
        let bare = r#"{"request":{"uid":"u","kind":{},"resource":{},"operation":"CREATE"}}"#;
        let req = serde_json::from_str::<AdmissionReview<'_>>(bare)
            .unwrap()
            .request
            .unwrap();
        assert!(req.name.is_none() && req.user_info.username.is_none());
        let wrong =
            r#"{"request":{"uid":"u","kind":{},"resource":{},"operation":"CREATE","name":7}}"#;
        assert!(serde_json::from_str::<AdmissionReview<'_>>(wrong).is_err());
    }
}
