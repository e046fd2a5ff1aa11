//! `scale-governor status` (also `kubectl governor status` when the binary
//! is installed as `kubectl-governor`): every governed workload with its
//! mode, the bounds in force now, the active window, current and
//! recommended replicas, the recommendation's age, the source's state, with
//! `risk` the stated and achieved shares short and the headroom, the warm
//! pool's counts and the last changes in its ledger.

use std::{fmt::Write as _, process::ExitCode};

use anyhow::Context;
use chrono::{DateTime, Utc};
use k8s_openapi::api::{
    apps::v1::{Deployment, StatefulSet},
    autoscaling::v2::HorizontalPodAutoscaler,
    coordination::v1::Lease,
    core::v1::{ConfigMap, Pod},
};
use kube::{Api, Client, Resource, api::ListParams};
use serde::Serialize;

use super::Output;
use crate::{
    cache::{hpa::HpaIndex, pods::PodIndex},
    engine::{Bounds, Ledger},
    ledgers::{LEDGER_LABEL, from_object},
    policy::{GOVERNED_LABEL, MAX_REPLICA_COUNT, POOL_LABEL, Recommendation, keys},
    recommend::{
        risk::RiskStatus,
        state::{LoopState, SourceState},
    },
    workload::{WorkloadKind, policy_of},
};

/// `status` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Only this namespace (default: the kubeconfig's).
    #[arg(short, long)]
    pub namespace: Option<String>,
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    /// Every namespace.
    pub(crate) all_namespaces: bool,
    /// Kubeconfig (several files may be listed with `:`).
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<std::ffi::OsString>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: Output,
    /// The governor's namespace, where its ledger objects are; without the
    /// right to read them, the last changes are left out.
    #[arg(long, default_value = "scale-governor")]
    pub(crate) governor_namespace: String,
}

/// One workload's status.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Row {
    /// `Deployment` or `StatefulSet`.
    pub(crate) kind: &'static str,
    /// Namespace.
    pub(crate) namespace: String,
    /// Name.
    pub(crate) name: String,
    /// The policy's mode, or `invalid`.
    pub(crate) mode: String,
    /// `spec.replicas`.
    pub(crate) replicas: u32,
    /// The bounds in force now, `lower..upper`.
    pub(crate) bounds: String,
    /// The windows active now.
    pub(crate) windows: Vec<String>,
    /// The recommendation, if any.
    pub(crate) recommendation: Option<RecommendationStatus>,
    /// The source's state, from the loop's state annotation.
    pub(crate) source: Option<String>,
    /// With `risk`: the stated risk, the share of the trailing window short
    /// and the headroom, as of the loop's last write.
    pub(crate) risk: Option<RiskStatus>,
    /// Warm pool: reserved, idle, warming.
    pub(crate) pool: Option<[u32; 3]>,
    /// The HPAs that target it.
    pub(crate) hpas: Vec<String>,
    /// The last changes in its ledger, newest first.
    pub(crate) last_changes: Vec<String>,
    /// What looks wrong.
    pub(crate) warnings: Vec<String>,
}

/// A recommendation as `status` shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RecommendationStatus {
    /// Replicas.
    pub(crate) replicas: u32,
    /// `floor` or `target`.
    pub(crate) kind: String,
    /// The strategy that set it.
    pub(crate) strategy: String,
    /// Why.
    pub(crate) reason: String,
    /// Seconds since it was computed.
    pub(crate) age_seconds: i64,
    /// Whether it still binds.
    pub(crate) fresh: bool,
}

/// What `status` reads about one workload.
pub(crate) struct Seen<'a> {
    /// Kind.
    pub kind: WorkloadKind,
    /// Its metadata.
    pub meta: &'a kube::core::ObjectMeta,
    /// `spec.replicas`.
    pub replicas: u32,
    /// Its ledger object's changes, if readable.
    pub ledger: Option<&'a Ledger>,
}

/// One workload's row at `now`. Pure: the adapter does the reading.
pub(crate) fn row(seen: &Seen<'_>, pods: &PodIndex, hpas: &HpaIndex, now: DateTime<Utc>) -> Row {
    let namespace = seen.meta.namespace.clone().unwrap_or_default();
    let name = seen.meta.name.clone().unwrap_or_default();
    let annotations = seen.meta.annotations.as_ref();
    let mut row = Row {
        kind: seen.kind.as_str(),
        namespace: namespace.clone(),
        name: name.clone(),
        mode: String::new(),
        replicas: seen.replicas,
        bounds: String::new(),
        windows: Vec::new(),
        recommendation: None,
        source: None,
        risk: None,
        pool: None,
        hpas: hpas
            .targeting(seen.kind, &namespace, &name)
            .into_iter()
            .map(|h| h.name)
            .collect(),
        last_changes: Vec::new(),
        warnings: Vec::new(),
    };
    let policy = match policy_of(annotations) {
        Ok(policy) => policy,
        Err(e) => {
            row.mode = "invalid".into();
            row.warnings.push(e.to_string());
            return row;
        }
    };
    row.mode = if policy.is_paused(now) && policy.mode != crate::policy::Mode::Off {
        format!("{} (suspended)", policy.mode)
    } else {
        policy.mode.to_string()
    };
    let mut warnings = Vec::new();
    let bounds = Bounds::at(&policy, now, &mut warnings);
    let upper = match bounds.upper() {
        MAX_REPLICA_COUNT => "unbounded".to_owned(),
        n => n.to_string(),
    };
    row.bounds = format!("{}..{upper}", bounds.lower());
    row.windows = policy.windows.active(now).map(|w| w.text.clone()).collect();
    row.warnings.extend(warnings);
    row.recommendation = policy
        .recommendation
        .as_ref()
        .map(|rec| recommendation_status(rec, now));
    if let Some(state) = annotations.and_then(|a| a.get(keys::STATE)) {
        match LoopState::parse(state) {
            Ok(state) => {
                row.source = state.source.map(source_health);
                row.risk = state.risk;
            }
            Err(e) => row.warnings.push(format!("state annotation ignored: {e}")),
        }
    }
    if let Some(pool) = policy.recommend.as_ref().and_then(|r| r.warm_pool.as_ref()) {
        let c = pods.counts(&namespace, &name, &pool.reserved);
        row.pool = Some([c.reserved, c.idle, c.warming]);
    }
    if let Some(r) = &policy.recommend
        && r.kind == crate::policy::RecommendationKind::Target
        && !row.hpas.is_empty()
    {
        row.warnings.push(format!(
            "a target recommendation and the HPA {} will fight; use kind floor",
            row.hpas.join(", ")
        ));
    }
    if let Some(ledger) = seen.ledger {
        row.last_changes = last_changes(ledger, &row.hpas);
    }
    row
}

/// The recommendation as `status` shows it: its age and whether it is
/// still in force.
fn recommendation_status(rec: &Recommendation, now: DateTime<Utc>) -> RecommendationStatus {
    RecommendationStatus {
        replicas: rec.replicas,
        kind: format!("{:?}", rec.kind).to_lowercase(),
        strategy: rec.strategy.clone(),
        reason: rec.reason.clone(),
        age_seconds: (now - rec.computed_at).num_seconds(),
        fresh: rec.is_fresh(now),
    }
}

/// The source's health from the loop's state.
fn source_health(s: SourceState) -> String {
    match (s.ok, s.error) {
        (true, _) => format!("ok since {}", s.since.format("%H:%M:%S")),
        (false, e) => format!(
            "failing since {}: {}",
            s.since.format("%H:%M:%S"),
            e.unwrap_or_default()
        ),
    }
}

/// The last three changes in the ledger, newest first; the HPA
/// controller's named after the HPAs that target the workload.
fn last_changes(ledger: &Ledger, hpas: &[String]) -> Vec<String> {
    ledger
        .changes()
        .iter()
        .rev()
        .take(3)
        .map(|c| {
            let asked = if c.requested != c.to {
                format!(" (asked {})", c.requested)
            } else {
                String::new()
            };
            let actor = crate::cache::hpa::hpa_actor(&c.actor, hpas);
            format!(
                "{} {} {}->{}{asked}",
                c.at.format("%H:%M:%S"),
                actor.as_deref().unwrap_or(&c.actor),
                c.from,
                c.to
            )
        })
        .collect()
}

/// Renders rows as a table or JSON.
pub(crate) fn render(rows: &[Row], output: Output) -> String {
    if output == Output::Json {
        return serde_json::to_string_pretty(rows).unwrap_or_default() + "\n";
    }
    let mut out = String::new();
    let table: Vec<[String; 10]> = rows
        .iter()
        .map(|r| {
            let rec = r.recommendation.as_ref().map_or("-".to_owned(), |rec| {
                let state = if rec.fresh { "" } else { ", expired" };
                format!(
                    "{} {} by {} ({}s ago{state})",
                    rec.replicas, rec.kind, rec.strategy, rec.age_seconds
                )
            });
            [
                format!("{}/{}/{}", r.kind, r.namespace, r.name),
                r.mode.clone(),
                r.replicas.to_string(),
                r.bounds.clone(),
                if r.windows.is_empty() {
                    "-".into()
                } else {
                    r.windows.join("; ")
                },
                rec,
                r.source.clone().unwrap_or_else(|| "-".into()),
                r.risk.map_or("-".into(), |risk| risk.describe()),
                r.pool.map_or("-".into(), |[a, b, c]| {
                    format!("{a} reserved, {b} idle, {c} warming")
                }),
                r.last_changes
                    .first()
                    .cloned()
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let header = [
        "WORKLOAD",
        "MODE",
        "REPLICAS",
        "BOUNDS",
        "WINDOW",
        "RECOMMENDED",
        "SOURCE",
        "RISK",
        "POOL",
        "LAST CHANGE",
    ];
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for line in &table {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<w$}  ");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for cells in &table {
        line(cells.iter().map(String::as_str).collect());
    }
    for r in rows {
        for w in &r.warnings {
            let _ = writeln!(out, "warning: {}/{}: {w}", r.namespace, r.name);
        }
    }
    out
}

/// Reads the cluster and prints the status.
pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let (rows, clock) = runtime.block_on(async {
        let client = super::serve::client(args.kubeconfig.as_ref()).await?;
        let rows = read(&client, args).await?;
        anyhow::Ok((rows, clock_line(&client, &args.governor_namespace).await))
    })?;
    print!("{}", render(&rows, args.output));
    if args.output == Output::Text {
        println!("{clock}");
    }
    Ok(ExitCode::SUCCESS)
}

/// How far this machine's clock is from the apiserver's (measured from the
/// answers just read), and how long ago the leader renewed its Lease by the
/// apiserver's clock: the governor writes `renewTime` on the apiserver's
/// clock, so an age far from a few seconds means a replica whose clock
/// correction is off, or a leader that stopped renewing.
async fn clock_line(client: &Client, governor_namespace: &str) -> String {
    let offset = crate::clock::offset().map_or("not measured".to_owned(), |o| {
        format!("{:+.1}s", o.num_milliseconds() as f64 / 1000.0)
    });
    let lease = Api::<Lease>::namespaced(client.clone(), governor_namespace)
        .get_opt(crate::leader::LEASE_NAME)
        .await;
    let leader = match lease {
        Ok(Some(lease)) => {
            let spec = lease.spec.unwrap_or_default();
            match (
                spec.holder_identity.filter(|h| !h.is_empty()),
                spec.renew_time,
            ) {
                (Some(holder), Some(renewed)) => {
                    let renewed = renewed.0.as_millisecond();
                    let age = crate::clock::now().timestamp_millis() - renewed;
                    format!("{holder}, Lease renewed {:.1}s ago", age as f64 / 1000.0)
                }
                (Some(holder), None) => holder,
                (None, _) => "none (the Lease is free)".to_owned(),
            }
        }
        Ok(None) => format!("none (no Lease in namespace {governor_namespace})"),
        Err(e) => format!("unknown ({e})"),
    };
    format!("clock: the apiserver minus this machine {offset}; leader: {leader}")
}

async fn read(client: &Client, args: &Args) -> anyhow::Result<Vec<Row>> {
    let client = client.clone();
    let namespace = if args.all_namespaces {
        None
    } else {
        Some(
            args.namespace
                .clone()
                .unwrap_or_else(|| client.default_namespace().to_owned()),
        )
    };
    fn api<K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>>(
        client: &Client,
        namespace: Option<&str>,
    ) -> Api<K> {
        match namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
    let ns = namespace.as_deref();
    let governed = ListParams::default().labels(&format!("{GOVERNED_LABEL}=true"));
    let deployments = api::<Deployment>(&client, ns)
        .list(&governed)
        .await
        .context("listing Deployments")?;
    let statefulsets = api::<StatefulSet>(&client, ns)
        .list(&governed)
        .await
        .context("listing StatefulSets")?;
    let pods = PodIndex::new();
    for pod in api::<Pod>(&client, ns)
        .list(&ListParams::default().labels(POOL_LABEL))
        .await
        .context("listing pool pods")?
    {
        pods.apply(&pod);
    }
    let hpas = HpaIndex::new();
    // Without the right to list HPAs the rest still shows.
    if let Ok(list) = api::<HorizontalPodAutoscaler>(&client, ns)
        .list(&ListParams::default())
        .await
    {
        for hpa in list {
            hpas.apply(&hpa);
        }
    }
    let now = crate::clock::now();
    let mut ledgers = std::collections::HashMap::new();
    let listed = Api::<ConfigMap>::namespaced(client.clone(), &args.governor_namespace)
        .list(&ListParams::default().labels(LEDGER_LABEL))
        .await;
    let governor_ns = &args.governor_namespace;
    match &listed {
        Ok(list) => {
            for cm in list {
                if let Some((kind, key, persisted)) = from_object(cm, now) {
                    ledgers.insert((kind, key), persisted.ledger);
                }
            }
            if ledgers.is_empty()
                && !(deployments.items.is_empty() && statefulsets.items.is_empty())
            {
                eprintln!(
                    "status: no ledger objects in namespace {governor_ns} (--governor-namespace, the governor's serve --lease-namespace): LAST CHANGE is empty"
                );
            }
        }
        Err(e) => eprintln!(
            "status: cannot list the ledger objects in namespace {governor_ns} (--governor-namespace): {e}; LAST CHANGE is empty"
        ),
    }
    let ledger_of = |kind: WorkloadKind, meta: &kube::core::ObjectMeta| {
        let key = crate::cache::key(
            meta.namespace.as_deref().unwrap_or_default(),
            meta.name.as_deref().unwrap_or_default(),
        );
        ledgers.get(&(kind, key))
    };
    let mut rows = Vec::new();
    for d in &deployments {
        let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1).max(0) as u32;
        rows.push(row(
            &Seen {
                kind: WorkloadKind::Deployment,
                meta: d.meta(),
                replicas,
                ledger: ledger_of(WorkloadKind::Deployment, d.meta()),
            },
            &pods,
            &hpas,
            now,
        ));
    }
    for s in &statefulsets {
        let replicas = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1).max(0) as u32;
        rows.push(row(
            &Seen {
                kind: WorkloadKind::StatefulSet,
                meta: s.meta(),
                replicas,
                ledger: ledger_of(WorkloadKind::StatefulSet, s.meta()),
            },
            &pods,
            &hpas,
            now,
        ));
    }
    rows.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    Ok(rows)
}

#[cfg(test)]
mod tests;
