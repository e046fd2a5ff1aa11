//! The benchmark's fleet of governed Deployments and the AdmissionReviews sent
//! about them. `seed` and `run` both derive every name, namespace, starting
//! replica count and request from the index alone, so the two commands agree
//! without sharing any state but `--deployments` and `--namespaces`.

use std::sync::atomic::{AtomicU32, Ordering};

use base64::Engine as _;
use scale_governor::{
    policy::{GOVERNED_LABEL, Policy, keys},
    testing::webhook::review::AdmissionResponse,
};
use serde::Deserialize;

/// The policy every Deployment carries. It is the README's shape: a floor and
/// a ceiling, a weekday floor, a night ceiling across midnight and a holiday
/// ceiling (three windows the engine checks on every request), two scale-up
/// rates and a scale-down rate with the HPA's default 300 s stabilization.
/// Only bursts, which a rate limit clamps anyway, ever reach the night
/// ceiling, so which reviews are clamped does not depend on the hour, only
/// the rule named (except on 24–26 December: the holiday ceiling is 30).
pub const POLICY: [(&str, &str); 5] = [
    (keys::MIN_REPLICAS, "2"),
    (keys::MAX_REPLICAS, "400"),
    (
        keys::WINDOWS,
        "Mon-Fri 08:00-20:00 Europe/Berlin min=4\nMon-Sun 23:00-05:00 Europe/Berlin max=300\n2026-12-24/2026-12-26 Europe/Berlin max=30",
    ),
    (keys::SCALE_UP, "4 pods/60s, 100%/60s"),
    (keys::SCALE_DOWN, "10%/60s, stabilization=300s"),
];

/// The `recommend` annotation of the fleet's last `--recommend` Deployments
/// (the recommender benchmark): demand per Deployment from the governor's
/// `bench` source, an HTTP JSON endpoint, with the velocity strategy.
pub const RECOMMEND: &str = r#"{"source":"bench","pointer":"/orders","targetPerPod":10,"trend":"velocity","leadSeconds":60}"#;

/// Who asks for an ordinary step: the HPA controller's service account.
const HPA: &str = "system:serviceaccount:kube-system:horizontal-pod-autoscaler";
/// Who asks for a burst: a person with `kubectl scale`.
const PERSON: &str = "alice@example.com";
/// One Deployment in this many gets bursts instead of HPA steps.
const BURST_EVERY: usize = 10;

/// The fleet: `count` Deployments spread evenly over `namespaces` namespaces,
/// and the replica count the load generator believes each one has.
#[derive(Debug)]
pub struct Fleet {
    count: usize,
    per_namespace: usize,
    stride: usize,
    replicas: Vec<AtomicU32>,
    /// The last this many carry [`RECOMMEND`].
    recommend: usize,
}

/// What one review asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ask {
    /// Index of the Deployment.
    pub index: usize,
    /// `oldObject.spec.replicas`.
    pub current: u32,
    /// `object.spec.replicas`.
    pub requested: u32,
}

/// How the webhook answered a review.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Allowed with no patch.
    Unchanged,
    /// Allowed with a JSON Patch on `/spec/replicas`.
    Clamped(u32),
}

impl Fleet {
    /// A fleet of `count` Deployments in `namespaces` namespaces.
    pub fn new(count: usize, namespaces: usize) -> Fleet {
        assert!(count > 0 && namespaces > 0, "an empty fleet");
        // Visiting index k * stride (mod count) spreads consecutive requests
        // over namespaces and cohorts; a stride coprime with count still
        // visits every Deployment once per `count` requests.
        let mut stride = 7919 % count.max(2);
        while gcd(stride.max(1), count) != 1 {
            stride += 1;
        }
        Fleet {
            count,
            per_namespace: count.div_ceil(namespaces),
            stride: stride.max(1),
            replicas: (0..count)
                .map(|i| AtomicU32::new(initial_replicas(i)))
                .collect(),
            recommend: 0,
        }
    }

    /// The same fleet, with [`RECOMMEND`] on its last `n` Deployments.
    pub fn with_recommend(mut self, n: usize) -> Fleet {
        self.recommend = n.min(self.count);
        self
    }

    /// Number of Deployments.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Namespace of Deployment `i`.
    pub fn namespace(&self, i: usize) -> String {
        format!("bench-{:03}", i / self.per_namespace)
    }

    /// Namespaces in use.
    pub fn namespaces(&self) -> Vec<String> {
        let mut all: Vec<String> = (0..self.count).map(|i| self.namespace(i)).collect();
        all.dedup();
        all
    }

    /// Name of Deployment `i`.
    pub fn name(i: usize) -> String {
        format!("web-{i:05}")
    }

    /// The Deployment as created by `seed`.
    pub fn deployment(&self, i: usize) -> serde_json::Value {
        let name = Fleet::name(i);
        let mut annotations: serde_json::Map<String, serde_json::Value> = POLICY
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).into()))
            .collect();
        if i >= self.count - self.recommend {
            annotations.insert(keys::RECOMMEND.to_owned(), RECOMMEND.into());
        }
        serde_json::json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": name,
                "namespace": self.namespace(i),
                "labels": {"app": name, GOVERNED_LABEL: "true"},
                "annotations": annotations,
            },
            "spec": {
                "replicas": initial_replicas(i),
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]},
                },
            },
        })
    }

    /// The `k`-th review's ask: most Deployments get an HPA step of one
    /// replica, which the 100%/60s budget allows at the benchmark's rates; one
    /// in [`BURST_EVERY`] gets a person asking for three times the count,
    /// which the rate limit (or `max-replicas`) clamps.
    pub fn ask(&self, k: u64) -> Ask {
        let index = (k as usize % self.count) * self.stride % self.count;
        let current = self.replicas[index].load(Ordering::Relaxed);
        let requested = if is_burst(index) {
            current.saturating_mul(3).max(current + 1)
        } else {
            current + 1
        };
        Ask {
            index,
            current,
            requested,
        }
    }

    /// The `k`-th review of a clamp storm: far above `max-replicas` from
    /// the seeded count, which the governor (and each peer) clamps.
    pub fn clamp_ask(&self, k: u64) -> Ask {
        let index = (k as usize % self.count) * self.stride % self.count;
        let current = initial_replicas(index);
        Ask {
            index,
            current,
            requested: 10_000,
        }
    }

    /// Applies an answer, as the apiserver would: the Deployment now has the
    /// requested or the patched count, and the next ask starts from there.
    pub fn settle(&self, ask: Ask, answer: Answer) {
        let now = match answer {
            Answer::Unchanged => ask.requested,
            Answer::Clamped(to) => to,
        };
        self.replicas[ask.index].store(now, Ordering::Relaxed);
    }

    /// Every Deployment's replica count as the generator believes it.
    pub fn replicas(&self) -> Vec<u32> {
        self.replicas
            .iter()
            .map(|r| r.load(Ordering::Relaxed))
            .collect()
    }

    /// Continues from counts saved by [`Fleet::replicas`].
    pub fn restore(&self, saved: &[u32]) -> anyhow::Result<()> {
        anyhow::ensure!(
            saved.len() == self.count,
            "saved state has {} Deployments, not {}",
            saved.len(),
            self.count
        );
        for (r, &v) in self.replicas.iter().zip(saved) {
            r.store(v, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The AdmissionReview body for an ask, in the shape the apiserver sends
    /// for `kubectl scale` or the HPA (`fuzz/seeds/review/scale-web-100.json`).
    pub fn review(&self, uid: &str, ask: Ask) -> String {
        let name = Fleet::name(ask.index);
        let ns = self.namespace(ask.index);
        let (user, manager) = if is_burst(ask.index) {
            (PERSON, "kubectl-scale")
        } else {
            (HPA, "kube-controller-manager")
        };
        let scale = |replicas: u32| {
            format!(
                r#"{{"kind":"Scale","apiVersion":"autoscaling/v1","metadata":{{"name":"{name}","namespace":"{ns}","uid":"0b5e0000-0000-4000-8000-{index:012}","resourceVersion":"1187","creationTimestamp":"2026-11-23T09:00:00Z"}},"spec":{{"replicas":{replicas}}},"status":{{"replicas":{current},"selector":"app={name}"}}}}"#,
                index = ask.index,
                current = ask.current,
            )
        };
        format!(
            r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"{uid}","kind":{{"group":"autoscaling","version":"v1","kind":"Scale"}},"resource":{{"group":"apps","version":"v1","resource":"deployments"}},"subResource":"scale","requestKind":{{"group":"autoscaling","version":"v1","kind":"Scale"}},"requestResource":{{"group":"apps","version":"v1","resource":"deployments"}},"requestSubResource":"scale","name":"{name}","namespace":"{ns}","operation":"UPDATE","userInfo":{{"username":"{user}","groups":["system:authenticated"]}},"object":{object},"oldObject":{old},"dryRun":false,"options":{{"kind":"UpdateOptions","apiVersion":"meta.k8s.io/v1","fieldManager":"{manager}"}}}}}}"#,
            object = scale(ask.requested),
            old = scale(ask.current),
        )
    }
}

/// Checks that the benchmark's own policy parses, so a typo fails `seed`
/// instead of silently benchmarking an ungoverned fleet.
pub fn check_policy() -> anyhow::Result<()> {
    let with_recommend = POLICY.iter().copied().chain([(keys::RECOMMEND, RECOMMEND)]);
    Policy::from_annotations(POLICY.iter().copied())
        .and_then(|_| Policy::from_annotations(with_recommend))
        .map(drop)
        .map_err(|e| anyhow::anyhow!("benchmark policy does not parse: {e}"))
}

/// Reads only the uid a response echoes: it must be `uid`.
pub fn read_uid(body: &[u8], uid: &str) -> Result<(), String> {
    #[derive(Deserialize)]
    struct Review {
        response: Echo,
    }
    #[derive(Deserialize)]
    struct Echo {
        uid: String,
    }
    let review: Review =
        serde_json::from_slice(body).map_err(|e| format!("response is not a review: {e}"))?;
    if review.response.uid != uid {
        return Err(format!("uid {} echoed for {uid}", review.response.uid));
    }
    Ok(())
}

/// Reads a response body: it must be an allowing AdmissionReview that echoes
/// `uid`; a patch must set `/spec/replicas`.
pub fn read_answer(body: &[u8], uid: &str) -> Result<Answer, String> {
    #[derive(Deserialize)]
    struct Review {
        response: AdmissionResponse,
    }
    #[derive(Deserialize)]
    struct Op {
        path: String,
        value: u32,
    }
    let review: Review =
        serde_json::from_slice(body).map_err(|e| format!("response is not a review: {e}"))?;
    let response = review.response;
    if response.uid != uid {
        return Err(format!("uid {} echoed for {uid}", response.uid));
    }
    if !response.allowed {
        return Err(format!("denied: {:?}", response.status));
    }
    let Some(patch) = response.patch else {
        return Ok(Answer::Unchanged);
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(patch)
        .map_err(|e| format!("patch is not base64: {e}"))?;
    let ops: Vec<Op> =
        serde_json::from_slice(&bytes).map_err(|e| format!("patch is not a JSON Patch: {e}"))?;
    match ops.as_slice() {
        [op] if op.path == "/spec/replicas" => Ok(Answer::Clamped(op.value)),
        _ => Err(format!(
            "unexpected patch {}",
            String::from_utf8_lossy(&bytes)
        )),
    }
}

/// 40..=80 replicas: large enough that a one-replica step every couple of
/// seconds stays inside the 100%/60s budget.
fn initial_replicas(i: usize) -> u32 {
    40 + (i % 41) as u32
}

fn is_burst(i: usize) -> bool {
    i.is_multiple_of(BURST_EVERY)
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}
