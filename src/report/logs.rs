//! Decisions logged, not narrated. Each distinct decision (a clamp or a
//! denial whose numbers differ from the last one for that workload and
//! rule, a notice that says something new) is one line at INFO; a repeat is
//! a DEBUG line and is counted, and the count is reported with the next
//! INFO line for that rule, or on its own once [`LogGate::sweep`] finds it
//! a summary interval old. A workload gets at most a few INFO lines a
//! minute however many distinct decisions it draws; the rest are counted
//! the same way. An HPA re-asking every second, or a clamp storm, costs a
//! lookup per review instead of a line.

use std::time::{Duration, Instant};

use super::{
    Report,
    fold::{Folds, workload_key},
};

/// Workloads not heard of for this long are forgotten.
const IDLE: Duration = Duration::from_secs(120);

/// What to do with a decision's line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Log it at INFO, saying the previous decision for this rule was
    /// repeated `folded` times since its own line.
    Say {
        /// Repeats not yet reported.
        folded: u64,
    },
    /// A repeat, or over the workload's line budget: DEBUG, counted.
    Fold,
}

/// Repeats reported on their own: the rule went quiet, or kept repeating
/// for a whole interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// `Deployment shop/web`.
    pub workload: String,
    /// The rule or notice.
    pub rule: &'static str,
    /// How many times since the last line.
    pub repeats: u64,
    /// Over how long.
    pub seconds: u64,
    /// The last decision said at INFO for this rule.
    pub last: String,
}

#[derive(Debug)]
struct Workload {
    label: String,
    window: Instant,
    lines: u32,
    seen: Instant,
    rules: Vec<Rule>,
}

#[derive(Debug)]
struct Rule {
    rule: &'static str,
    signature: u64,
    repeats: u64,
    since: Instant,
    last: String,
}

/// The per-workload memory of what was last said.
#[derive(Debug)]
pub struct LogGate {
    folds: Folds<Workload>,
    summary_every: Duration,
    per_minute: u32,
}

impl Default for LogGate {
    fn default() -> Self {
        LogGate::new(Duration::from_secs(60), 10)
    }
}

impl LogGate {
    /// Repeats are summarized after `summary_every`; a workload gets at most
    /// `per_minute` INFO lines a minute.
    pub fn new(summary_every: Duration, per_minute: u32) -> LogGate {
        LogGate {
            folds: Folds::default(),
            summary_every,
            per_minute: per_minute.max(1),
        }
    }

    /// Whether the decision (`rule`, with numbers hashed into `signature`)
    /// of `report` is said at INFO. `message` is kept to summarize its
    /// repeats; it is called only when the line is said.
    pub fn check(
        &self,
        report: &Report,
        rule: &'static str,
        signature: u64,
        now: Instant,
        message: impl FnOnce() -> String,
    ) -> Verdict {
        let key = workload_key(report);
        self.folds.with(key, |map| {
            let w = map.entry(key).or_insert_with(|| Workload {
                label: format!(
                    "{} {}/{}",
                    report.kind.as_str(),
                    report.namespace,
                    report.name
                ),
                window: now,
                lines: 0,
                seen: now,
                rules: Vec::new(),
            });
            w.seen = now;
            if now.duration_since(w.window) >= Duration::from_secs(60) {
                w.window = now;
                w.lines = 0;
            }
            let index = match w.rules.iter().position(|r| r.rule == rule) {
                Some(i) => i,
                None => {
                    w.rules.push(Rule {
                        rule,
                        // Never equal to a real signature's first sight.
                        signature: signature.wrapping_add(1),
                        repeats: 0,
                        since: now,
                        last: String::new(),
                    });
                    w.rules.len() - 1
                }
            };
            let r = &mut w.rules[index];
            let new = r.signature != signature;
            let due = r.repeats > 0 && now.duration_since(r.since) >= self.summary_every;
            if (new || due) && w.lines < self.per_minute {
                w.lines += 1;
                let folded = std::mem::take(&mut r.repeats);
                r.signature = signature;
                r.since = now;
                r.last = message();
                Verdict::Say { folded }
            } else {
                r.signature = signature;
                r.repeats += 1;
                Verdict::Fold
            }
        })
    }

    /// Summaries of repeats that have waited a whole interval for a line,
    /// and forgets workloads idle for two minutes.
    pub fn sweep(&self, now: Instant) -> Vec<Summary> {
        let mut out = Vec::new();
        self.folds.retain(|_, w| {
            for r in &mut w.rules {
                let waited = now.duration_since(r.since);
                if r.repeats > 0 && waited >= self.summary_every {
                    out.push(Summary {
                        workload: w.label.clone(),
                        rule: r.rule,
                        repeats: std::mem::take(&mut r.repeats),
                        seconds: waited.as_secs(),
                        last: r.last.clone(),
                    });
                    r.since = now;
                }
            }
            now.duration_since(w.seen) < IDLE
        });
        out
    }

    /// Workloads remembered.
    #[cfg(any(test, feature = "test-support"))]
    pub fn len(&self) -> usize {
        self.folds.len()
    }

    /// Whether none is remembered.
    #[cfg(any(test, feature = "test-support"))]
    pub fn is_empty(&self) -> bool {
        self.folds.is_empty()
    }
}

#[cfg(test)]
mod tests;
