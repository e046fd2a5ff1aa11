//! The guard's promise as a property, over the real admission handler and
//! a small model of the apiserver's storage: whatever several actors do
//! (scales through `/scale` and object patches, scale to zero, policy edits
//! in the same request, creates that fail with AlreadyExists, conflict
//! retries, a lagging watch), the replica counts that *land* never leave
//! the stored policy's bounds, and no rate rule is exceeded over any
//! sliding period. Both are computed from the stored states, not from the
//! governor's own ledger.

use std::collections::BTreeMap;

use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use scale_governor::{
    policy::Policy,
    testing::cache::{Cache, Update},
    testing::webhook::{
        admit::{Endpoint, review},
        guard::AdmitConfig,
    },
    workload::WorkloadKind,
};
use serde_json::{Value, json};

const UP: u32 = 4;
const DOWN: u32 = 2;
const PERIOD: i64 = 60;

/// The policy annotations the model stores; the rates never change, the
/// rest is edited by the actions.
#[derive(Debug, Clone, PartialEq)]
struct Stored {
    replicas: u32,
    governed: bool,
    mode: &'static str,
    min: u32,
    max: u32,
}

impl Stored {
    fn annotations(&self) -> Value {
        json!({
            "scale-governor.io/mode": self.mode,
            "scale-governor.io/min-replicas": self.min.to_string(),
            "scale-governor.io/max-replicas": self.max.to_string(),
            "scale-governor.io/scale-up": format!("{UP} pods/{PERIOD}s"),
            "scale-governor.io/scale-down": format!("{DOWN} pods/{PERIOD}s"),
        })
    }

    fn object(&self) -> Value {
        let labels = if self.governed {
            json!({"scale-governor.io/governed": "true"})
        } else {
            json!({})
        };
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "namespace": "shop", "uid": "w-1",
                            "labels": labels, "annotations": self.annotations()},
               "spec": {"replicas": self.replicas}})
    }

    /// Whether this stored state governs the next change (the engine
    /// enforces in enforce and deny mode).
    fn enforcing(&self) -> bool {
        self.governed && matches!(self.mode, "enforce" | "deny")
    }
}

fn scale(replicas: u32) -> Value {
    // `replicas` is omitempty: a scale to 0 has an empty spec.
    let spec = if replicas == 0 {
        json!({})
    } else {
        json!({"replicas": replicas})
    };
    json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
           "metadata": {"name": "web", "namespace": "shop"}, "spec": spec})
}

#[derive(Debug, Clone)]
enum Action {
    /// `kubectl scale` / the HPA through `/scale`.
    Scale { actor: u8, to: u32 },
    /// A patch of the Deployment's replicas, optionally editing the policy
    /// in the same request.
    Patch { actor: u8, to: u32, edit: Edit },
    /// `kubectl create` of the existing name: admitted, never stored.
    CreateExisting { to: u32 },
    /// A scale admitted twice (a storage conflict), the second one stored.
    Conflict { actor: u8, to: u32 },
    /// Time passes.
    Wait { seconds: i64 },
}

#[derive(Debug, Clone, Copy)]
enum Edit {
    None,
    RaiseMax,
    ModeOff,
    Unlabel,
    Relabel,
}

fn action() -> impl Strategy<Value = Action> {
    let to = prop_oneof![Just(0u32), 0u32..30];
    let edit = prop_oneof![
        4 => Just(Edit::None),
        1 => Just(Edit::RaiseMax),
        1 => Just(Edit::ModeOff),
        1 => Just(Edit::Unlabel),
        1 => Just(Edit::Relabel),
    ];
    prop_oneof![
        4 => (0u8..3, to.clone()).prop_map(|(actor, to)| Action::Scale { actor, to }),
        3 => (0u8..3, to.clone(), edit).prop_map(|(actor, to, edit)| Action::Patch { actor, to, edit }),
        1 => to.clone().prop_map(|to| Action::CreateExisting { to }),
        1 => (0u8..3, to).prop_map(|(actor, to)| Action::Conflict { actor, to }),
        2 => (1i64..40).prop_map(|seconds| Action::Wait { seconds }),
    ]
}

struct Model {
    cache: Cache,
    config: AdmitConfig,
    now: DateTime<Utc>,
    stored: Stored,
    /// Every stored state change: (time, replicas, the state before it).
    landed: Vec<(DateTime<Utc>, u32, Stored)>,
    /// Every stored state, with its time.
    states: Vec<(DateTime<Utc>, Stored)>,
    /// Watch events not delivered yet (the watch lags).
    lagging: Vec<Stored>,
    uid: u64,
}

impl Model {
    fn new() -> Model {
        let stored = Stored {
            replicas: 5,
            governed: true,
            mode: "enforce",
            min: 1,
            max: 20,
        };
        let model = Model {
            cache: Cache::new(),
            config: AdmitConfig::default(),
            now: "2026-11-23T10:00:00Z".parse().unwrap(),
            stored,
            landed: Vec::new(),
            states: Vec::new(),
            lagging: Vec::new(),
            uid: 0,
        };
        model.deliver(&model.stored.clone());
        model
    }

    fn deliver(&self, state: &Stored) {
        let annotations = state.annotations();
        let pairs: BTreeMap<String, String> = serde_json::from_value(annotations).unwrap();
        if !state.governed {
            self.cache.remove(WorkloadKind::Deployment, "shop/web");
            return;
        }
        self.cache.apply(
            Update {
                kind: WorkloadKind::Deployment,
                key: "shop/web",
                uid: Some("w-1".into()),
                policy: Policy::from_annotations(
                    pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                ),
                replicas: state.replicas,
                ready: None,
                history: None,
                written_at: None,
                generation: None,
                actor: Some("watch"),
                state: None,
            },
            self.now,
        );
    }

    /// One admission round: mutate, patch, validate, as the apiserver runs
    /// them. Returns the object that would be stored, or `None` if refused.
    fn admit(
        &mut self,
        sub: Option<&str>,
        operation: &str,
        object: Value,
        old: Option<Value>,
        actor: u8,
    ) -> Option<Value> {
        let mut object = object;
        for endpoint in [Endpoint::Mutate, Endpoint::Validate] {
            self.uid += 1;
            let kind = if sub.is_some() {
                json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})
            } else {
                json!({"group": "apps", "version": "v1", "kind": "Deployment"})
            };
            let body = serde_json::to_vec(&json!({
                "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "request": {"uid": format!("u{}", self.uid), "kind": kind,
                    "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
                    "subResource": sub, "name": "web", "namespace": "shop", "operation": operation,
                    "userInfo": {"username": format!("actor-{actor}")},
                    "object": object, "oldObject": old}
            }))
            .unwrap();
            let reviewed = review(endpoint, &body, &self.cache, &self.config, self.now)
                .expect("a well-formed review is answered");
            if !reviewed.response.allowed {
                return None;
            }
            if let Some(patch) = reviewed.response.patch {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(patch)
                    .unwrap();
                let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
                json_patch::patch(&mut object, &patch).expect("the patch applies");
            }
        }
        Some(object)
    }

    fn store(&mut self, next: Stored) {
        if next.replicas != self.stored.replicas {
            self.landed
                .push((self.now, next.replicas, self.stored.clone()));
        }
        self.stored = next.clone();
        self.states.push((self.now, next.clone()));
        // Half the time the watch event arrives only with the next action.
        if self.uid.is_multiple_of(2) {
            self.deliver(&next);
        } else {
            self.lagging.push(next);
        }
    }

    fn step(&mut self, action: &Action) {
        for state in std::mem::take(&mut self.lagging) {
            self.deliver(&state);
        }
        match *action {
            Action::Wait { seconds } => self.now += Duration::seconds(seconds),
            Action::Scale { actor, to } => {
                let old = scale(self.stored.replicas);
                if let Some(object) =
                    self.admit(Some("scale"), "UPDATE", scale(to), Some(old), actor)
                {
                    let replicas = object["spec"]["replicas"].as_u64().unwrap_or(0) as u32;
                    let next = Stored {
                        replicas,
                        ..self.stored.clone()
                    };
                    self.store(next);
                }
            }
            Action::Conflict { actor, to } => {
                // Admitted, then the storage write conflicts; the retry is
                // admitted again and stored.
                let old = scale(self.stored.replicas);
                let _ = self.admit(Some("scale"), "UPDATE", scale(to), Some(old.clone()), actor);
                if let Some(object) =
                    self.admit(Some("scale"), "UPDATE", scale(to), Some(old), actor)
                {
                    let replicas = object["spec"]["replicas"].as_u64().unwrap_or(0) as u32;
                    let next = Stored {
                        replicas,
                        ..self.stored.clone()
                    };
                    self.store(next);
                }
            }
            Action::CreateExisting { to } => {
                let object = Stored {
                    replicas: to,
                    ..self.stored.clone()
                }
                .object();
                let _ = self.admit(None, "CREATE", object, None, 0);
            }
            Action::Patch { actor, to, edit } => {
                let mut next = Stored {
                    replicas: to,
                    ..self.stored.clone()
                };
                match edit {
                    Edit::None => {}
                    Edit::RaiseMax => next.max = 1000,
                    Edit::ModeOff => next.mode = "off",
                    Edit::Unlabel => next.governed = false,
                    Edit::Relabel => {
                        next.governed = true;
                        next.mode = "enforce";
                        next.max = 20;
                    }
                }
                let old = self.stored.object();
                if let Some(object) = self.admit(None, "UPDATE", next.object(), Some(old), actor) {
                    next.replicas = object["spec"]["replicas"].as_u64().unwrap_or(1) as u32;
                    self.store(next);
                }
            }
        }
    }

    /// The stored count just before any change strictly after `t`.
    fn stored_at(&self, t: DateTime<Utc>) -> u32 {
        self.landed
            .iter()
            .take_while(|(at, _, _)| *at <= t)
            .last()
            .map_or(5, |(_, r, _)| *r)
    }

    fn check(&self) -> Result<(), TestCaseError> {
        for (i, (at, replicas, before)) in self.landed.iter().enumerate() {
            if !before.enforcing() {
                continue;
            }
            let from = if i == 0 { 5 } else { self.landed[i - 1].1 };
            let window_start = self.stored_at(*at - Duration::seconds(PERIOD));
            let within = (before.min..=before.max).contains(replicas);
            // A move into the bounds from outside them may exceed a rate, as
            // in the HPA; otherwise the rates hold over the sliding period.
            let into_bounds = !(before.min..=before.max).contains(&from);
            // The label-selected watch cannot see a workload while it is not
            // governed, and forgets it (the model persists no history), so a
            // period in which it was not governed is not held to the rates.
            let window = *at - Duration::seconds(PERIOD);
            let blind = self
                .states
                .iter()
                .any(|(t, s)| *t > window && *t <= *at && !s.governed)
                || self.landed[..i]
                    .iter()
                    .any(|(t, _, b)| *t > window && !b.governed);
            prop_assert!(
                within,
                "{replicas} landed outside {}..{} at {at}: {:?}",
                before.min,
                before.max,
                self.landed
            );
            if !into_bounds && !blind && *replicas > from {
                prop_assert!(
                    *replicas <= window_start + UP,
                    "{replicas} at {at} is more than {UP} above {window_start}, 60s earlier: {:?}",
                    self.landed
                );
            }
            if !into_bounds && !blind && *replicas < from {
                prop_assert!(
                    window_start.saturating_sub(*replicas) <= DOWN,
                    "{replicas} at {at} is more than {DOWN} below {window_start}, 60s earlier: {:?}",
                    self.landed
                );
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    #[test]
    fn what_lands_stays_inside_the_stored_policy(actions in prop::collection::vec(action(), 1..40)) {
        let mut model = Model::new();
        for action in &actions {
            model.step(action);
        }
        model.check()?;
    }
}
