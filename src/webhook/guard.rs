//! Who may change a policy, and how far. Anyone who can patch a workload
//! can edit its policy; an edit never governs the request that makes it
//! (the engine decides by the stored policy too), and an edit that loosens
//! the policy is reported, or refused when policy admins are configured. A
//! `suspend-until` is capped, so the break-glass switch cannot become a
//! permanent off switch. `docs/policy.md` ("Who may change a policy").

use std::{fmt, str::FromStr, sync::Arc};

use chrono::{DateTime, Duration, Utc};

use super::review::UserInfo;
use crate::{
    cache::hpa::HpaIndex,
    engine::loosenings,
    policy::{POD_SOURCE, Policy, RecommendationKind},
    sources::{ConfigError, Sources},
    workload::WorkloadKind,
};

/// What `serve`'s flags set for the admission path.
#[derive(Debug, Clone)]
pub struct AdmitConfig {
    /// Who may loosen a policy; open to anyone when empty.
    pub(crate) policy_admins: PolicyAdmins,
    /// The furthest ahead `suspend-until` may be set.
    pub(crate) max_suspend: Duration,
    /// The recommender's sources: a `recommend` annotation must name one the
    /// workload's namespace may use.
    pub sources: Arc<Sources>,
    /// HPAs, to warn when a target recommendation would fight one.
    pub hpas: Arc<HpaIndex>,
}

impl Default for AdmitConfig {
    fn default() -> Self {
        AdmitConfig {
            policy_admins: PolicyAdmins::default(),
            max_suspend: Duration::hours(24),
            sources: Arc::new(Sources::none()),
            hpas: Arc::new(HpaIndex::new()),
        }
    }
}

/// Users and groups allowed to loosen a policy (`--policy-admins`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PolicyAdmins {
    users: Vec<String>,
    groups: Vec<String>,
}

/// Why `--policy-admins` does not parse.
#[derive(Debug, thiserror::Error)]
#[error("\"{0}\" is not an admin, expected user=NAME or group=NAME (comma-separated)")]
pub(crate) struct AdminsError(String);

impl FromStr for PolicyAdmins {
    type Err = AdminsError;

    /// `user=alice,group=system:masters`; empty means anyone.
    fn from_str(s: &str) -> Result<Self, AdminsError> {
        let mut admins = PolicyAdmins::default();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            match item.split_once('=') {
                Some(("user", name)) if !name.trim().is_empty() => {
                    admins.users.push(name.trim().to_owned())
                }
                Some(("group", name)) if !name.trim().is_empty() => {
                    admins.groups.push(name.trim().to_owned())
                }
                _ => return Err(AdminsError(item.to_owned())),
            }
        }
        Ok(admins)
    }
}

impl fmt::Display for PolicyAdmins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let items: Vec<String> = self
            .users
            .iter()
            .map(|u| format!("user {u}"))
            .chain(self.groups.iter().map(|g| format!("group {g}")))
            .collect();
        f.write_str(&items.join(", "))
    }
}

impl PolicyAdmins {
    /// Whether no list is configured (anyone may loosen, and is reported).
    pub(crate) fn is_open(&self) -> bool {
        self.users.is_empty() && self.groups.is_empty()
    }

    /// Whether `user` may loosen a policy.
    pub(crate) fn admits(&self, user: &UserInfo) -> bool {
        self.is_open()
            || user
                .username
                .as_ref()
                .is_some_and(|u| self.users.iter().any(|a| a == u))
            || user
                .groups
                .iter()
                .any(|g| self.groups.iter().any(|a| a == g))
    }
}

/// Why a policy's `recommend` is refused at admission.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RecommendRefused {
    /// The source it names does not exist, admit the namespace, or fit.
    #[error("scale-governor: invalid policy: scale-governor.io/recommend: {0}")]
    Source(#[from] ConfigError),
    /// A warm pool on a kind whose scale-down removes the highest ordinal.
    #[error(
        "scale-governor: invalid policy: scale-governor.io/recommend: a warm pool needs a Deployment (a {0} always removes its highest ordinal, not an idle pod)"
    )]
    PoolKind(&'static str),
}

/// Checks a written policy's `recommend` against what the governor runs:
/// the source exists and the namespace may use it, a warm pool is on a
/// Deployment. `Err` is the refusal; `Ok` carries warnings.
pub(crate) fn check_recommend(
    config: &AdmitConfig,
    policy: &Policy,
    kind: WorkloadKind,
    namespace: &str,
    name: &str,
) -> Result<Vec<String>, RecommendRefused> {
    let Some(recommend) = &policy.recommend else {
        return Ok(Vec::new());
    };
    config.sources.check(recommend, namespace)?;
    if recommend.source.as_deref() == Some(POD_SOURCE) && kind != WorkloadKind::Deployment {
        return Err(RecommendRefused::PoolKind(kind.as_str()));
    }
    let mut warnings = Vec::new();
    if recommend.kind == RecommendationKind::Target {
        let hpas = config.hpas.targeting(kind, namespace, name);
        if let Some(hpa) = hpas.first() {
            warnings.push(format!(
                "scale-governor: HorizontalPodAutoscaler {} also scales this {}; a target recommendation and the HPA will fight. Use \"kind\":\"floor\" under an HPA",
                hpa.name,
                kind.as_str()
            ));
        }
    }
    Ok(warnings)
}

/// What the checks of one policy edit found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum EditCheck {
    /// Nothing to say.
    Fine,
    /// The edit loosens the policy and is allowed: report it.
    Loosened(String),
    /// Refused, with the message for the user (and the Event).
    Refused(String),
}

/// Checks an edit from `stored` to `new` (`None`: the governed label is
/// removed) by `user`.
pub(crate) fn check_edit(
    config: &AdmitConfig,
    stored: Option<&Policy>,
    new: Option<&Policy>,
    user: &UserInfo,
    now: DateTime<Utc>,
) -> EditCheck {
    let actor = user.username.as_deref().unwrap_or("unknown");
    if let Some(until) = new.and_then(|p| p.suspend_until)
        && stored.and_then(|p| p.suspend_until) != Some(until)
        && until > now + config.max_suspend
    {
        return EditCheck::Refused(format!(
            "scale-governor: suspend-until {} is more than {}h ahead; the break-glass pause is capped at {}h (serve --max-suspend)",
            until.to_rfc3339(),
            config.max_suspend.num_hours(),
            config.max_suspend.num_hours()
        ));
    }
    let Some(stored) = stored else {
        return EditCheck::Fine;
    };
    let found = loosenings(stored, new, now);
    if found.is_empty() {
        return EditCheck::Fine;
    }
    let what = found.join("; ");
    let actor = crate::report::shown_actor(actor);
    if config.policy_admins.admits(user) {
        EditCheck::Loosened(format!("{actor} loosened the policy: {what}"))
    } else {
        EditCheck::Refused(format!(
            "scale-governor: only policy admins ({}) may loosen this policy; {actor} asked for: {what}",
            config.policy_admins
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::keys;

    fn policy(pairs: &[(&str, &str)]) -> Policy {
        Policy::from_annotations(pairs.iter().copied()).unwrap()
    }

    fn user<'a>(name: &'a str, groups: &[&'a str]) -> UserInfo<'a> {
        UserInfo {
            username: Some(name.into()),
            groups: groups.iter().map(|g| (*g).into()).collect(),
        }
    }

    fn now() -> DateTime<Utc> {
        "2026-11-23T10:00:00Z".parse().unwrap()
    }

    #[test]
    fn admins_parse_and_admit_by_user_or_group() {
        let admins: PolicyAdmins =
            "user=alice, group=system:masters,group=scale-governor:policy-admins"
                .parse()
                .unwrap();
        assert!(admins.admits(&user("alice", &[])));
        assert!(admins.admits(&user("bob", &["system:masters"])));
        assert!(!admins.admits(&user("mallory", &["system:authenticated"])));
        assert!("".parse::<PolicyAdmins>().unwrap().is_open());
        let err = "alice".parse::<PolicyAdmins>().unwrap_err();
        assert!(err.to_string().contains("expected user=NAME or group=NAME"));
        assert!("user=".parse::<PolicyAdmins>().is_err());
    }

    #[test]
    fn loosening_is_reported_or_refused_and_tightening_is_fine() {
        let stored = policy(&[(keys::MAX_REPLICAS, "20")]);
        let wider = policy(&[(keys::MAX_REPLICAS, "1000")]);
        let tighter = policy(&[(keys::MAX_REPLICAS, "10")]);
        let open = AdmitConfig::default();
        let bob = user("bob", &[]);
        assert_eq!(
            check_edit(&open, Some(&stored), Some(&tighter), &bob, now()),
            EditCheck::Fine
        );
        assert_eq!(
            check_edit(&open, Some(&stored), Some(&wider), &bob, now()),
            EditCheck::Loosened("bob loosened the policy: bounds now 0..20 -> 0..1000".into())
        );
        let strict = AdmitConfig {
            policy_admins: "group=system:masters".parse().unwrap(),
            ..AdmitConfig::default()
        };
        let EditCheck::Refused(message) = check_edit(&strict, Some(&stored), None, &bob, now())
        else {
            panic!("unlabelling by a non-admin must be refused");
        };
        assert_eq!(
            message,
            "scale-governor: only policy admins (group system:masters) may loosen this policy; bob asked for: removed the scale-governor.io/governed label"
        );
        let root = user("root", &["system:masters"]);
        assert!(matches!(
            check_edit(&strict, Some(&stored), None, &root, now()),
            EditCheck::Loosened(_)
        ));
    }

    #[test]
    fn suspend_until_is_capped_even_for_admins_and_on_create() {
        let far = policy(&[(keys::SUSPEND_UNTIL, "2099-01-01T00:00:00Z")]);
        let soon = policy(&[(keys::SUSPEND_UNTIL, "2026-11-23T12:00:00Z")]);
        let config = AdmitConfig::default();
        let root = user("root", &["system:masters"]);
        let EditCheck::Refused(message) = check_edit(&config, None, Some(&far), &root, now())
        else {
            panic!("a pause until 2099 must be refused");
        };
        assert!(message.contains("capped at 24h"), "{message}");
        assert_eq!(
            check_edit(&config, None, Some(&soon), &root, now()),
            EditCheck::Fine
        );
        // An unchanged, already stored value is not re-checked (ratchet).
        assert_eq!(
            check_edit(&config, Some(&far), Some(&far), &root, now()),
            EditCheck::Fine
        );
    }
}
