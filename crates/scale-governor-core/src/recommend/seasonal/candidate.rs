//! The seasonal strategy's candidate, as the recommender offers it.

use chrono::{DateTime, Utc};

use super::{BIN_SECONDS, OUTAGE_BINS, OUTAGE_FRACTION};
use crate::recommend::{Candidate, Recommender, num};

impl Recommender {
    /// The seasonal candidate, once the forecast has a day of history:
    /// the forecast plus headroom, or demand now when that is higher (a
    /// burst no season announced); `None` before (the velocity strategy
    /// answers then).
    pub(in crate::recommend) fn seasonal_candidate(
        &mut self,
        demand: f64,
        current: u32,
        now: DateTime<Utc>,
    ) -> Option<Candidate> {
        let calibrated = self.calibration.is_some();
        let seasonal = self.seasonal.as_mut()?;
        // With `risk`, the calibrated headroom replaces the quantile of past
        // errors, on top of the forecast or of demand now when that is
        // higher (a burst no season announced).
        let (forecast, base) = if calibrated {
            let forecast = seasonal.forecast_peak(now)?;
            (forecast, forecast.peak.max(demand))
        } else {
            let forecast = seasonal.forecast(now, self.config.error_quantile())?;
            (forecast, forecast.peak + forecast.headroom)
        };
        let headroom = self.calibrated(base);
        let predicted = match headroom {
            Some(h) => base + h,
            None => base.max(demand),
        };
        let c = &self.config;
        let per_pod = c.target_per_pod();
        let plus = match (&self.calibration, headroom) {
            (Some(calibration), Some(h)) => calibration.describe(h),
            _ => format!(
                "{} headroom (p{} of past errors)",
                num(forecast.headroom),
                num(c.error_quantile() * 100.0)
            ),
        };
        let raw = (predicted / per_pod)
            .ceil()
            .min(f64::from(crate::policy::MAX_REPLICA_COUNT)) as u32;
        // The tolerance only keeps a small scale-down from happening: the
        // forecast and its headroom already say what is needed, so a count
        // below it is never kept.
        let within =
            raw < current && predicted / (f64::from(current) * per_pod) >= 1.0 - c.tolerance;
        let replicas = if within { current } else { raw };
        let basis = if forecast.weekly {
            "a day and a week ago"
        } else {
            "a day ago"
        };
        let mut reason = if forecast.outage {
            format!(
                "seasonal: demand {} is an outage (under {}% of the season for {} min); keeping the season's {} + {plus}, {} per pod -> {replicas}",
                num(demand),
                num(OUTAGE_FRACTION * 100.0),
                i64::from(OUTAGE_BINS) * BIN_SECONDS / 60,
                num(forecast.peak),
                num(per_pod)
            )
        } else {
            format!(
                "seasonal: highest demand within {}s expected {} ({basis}, level ×{:.2}) + {plus}; demand now {}, {} per pod -> {replicas}",
                c.lead_seconds,
                num(forecast.peak),
                forecast.level,
                num(demand),
                num(per_pod)
            )
        };
        if within && raw != current {
            reason.push_str(&format!(
                " (within the {}% tolerance of {current})",
                num(c.tolerance * 100.0)
            ));
        }
        let inputs = std::collections::BTreeMap::from([
            ("demand".to_owned(), num(demand)),
            ("forecast".to_owned(), num(forecast.peak)),
            (
                "headroom".to_owned(),
                num(headroom.unwrap_or(forecast.headroom)),
            ),
            ("level".to_owned(), format!("{:.3}", forecast.level)),
        ]);
        Some(Candidate {
            strategy: "seasonal",
            replicas,
            reason,
            inputs,
        })
    }
}
