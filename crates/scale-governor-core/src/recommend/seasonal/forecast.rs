//! The forecast from the bins: the season, the level, the headroom.

use chrono::{DateTime, Utc};

use super::{
    Bin, DAY_BINS, ERROR_DAYS, ERROR_MIN_SAMPLES, ERROR_SPREAD, Forecast, LEVEL_BINS, LEVEL_LIMIT,
    LEVEL_REACH, OUTAGE_BINS, Seasonal, index_of,
};

impl Seasonal {
    /// `value` of the same bin a day ago (or two, past an outage or a
    /// burst) and a week ago, averaged when both are there; and whether the
    /// week took part.
    pub(super) fn season(&self, index: i64, value: impl Fn(&Bin) -> f64) -> Option<(f64, bool)> {
        let day = [self.days_before(index, 1), self.days_before(index, 2)]
            .into_iter()
            .filter_map(|i| self.get(i))
            .find(|b| b.normal())
            .map(&value);
        let week = self
            .get(self.days_before(index, 7))
            .filter(|b| b.normal())
            .map(&value);
        match (day, week) {
            (Some(d), Some(w)) => Some(((d + w) / 2.0, true)),
            (Some(d), None) => Some((d, false)),
            (None, Some(w)) => Some((w, true)),
            (None, None) => None,
        }
    }

    /// Demand now against the season: the median ratio of the last
    /// [`LEVEL_BINS`] normal, not low bins before `index` to their seasonal
    /// means. Low bins are passed over, so an outage freezes the level at
    /// what it was before. 1 when nothing can be compared.
    pub(super) fn level(&self, index: i64) -> f64 {
        let mut ratios: Vec<f64> = Vec::with_capacity(LEVEL_BINS);
        let mut i = index - 1;
        while ratios.len() < LEVEL_BINS && i >= index - LEVEL_REACH && i >= self.first {
            if let Some(bin) = self.get(i).filter(|b| b.normal() && !b.low)
                && let Some((season, _)) = self.season(i, Bin::mean)
                && season > 0.0
            {
                ratios.push((bin.mean() / season).clamp(1.0 / LEVEL_LIMIT, LEVEL_LIMIT));
            }
            i -= 1;
        }
        if ratios.is_empty() {
            return 1.0;
        }
        ratios.sort_by(f64::total_cmp);
        let n = ratios.len();
        if n % 2 == 1 {
            ratios[n / 2]
        } else {
            (ratios[n / 2 - 1] + ratios[n / 2]) / 2.0
        }
    }

    fn cached_level(&mut self, open: i64) -> f64 {
        match self.level_cache {
            Some((i, level)) if i == open => level,
            _ => {
                let level = self.level(open);
                self.level_cache = Some((open, level));
                level
            }
        }
    }

    /// The `quantile` of past errors at this time of day (±1 h over the last
    /// week), or of every error that week when there are too few; 0 with
    /// none, and never below 0: headroom is never taken away.
    fn headroom(&self, index: i64, quantile: f64) -> f64 {
        let error = |i: i64| self.get(i).map(|b| b.error).filter(|e| !e.is_nan());
        let mut near: Vec<f32> = (1..=ERROR_DAYS)
            .flat_map(|d| {
                let center = self.days_before(index, d);
                (center - ERROR_SPREAD..=center + ERROR_SPREAD).filter_map(error)
            })
            .collect();
        if near.len() < ERROR_MIN_SAMPLES {
            near = (index - ERROR_DAYS * DAY_BINS..index)
                .filter_map(error)
                .collect();
        }
        if near.is_empty() {
            return 0.0;
        }
        let rank = ((quantile * near.len() as f64).ceil() as usize).clamp(1, near.len()) - 1;
        let (_, q, _) = near.select_nth_unstable_by(rank, f32::total_cmp);
        f64::from(*q).max(0.0)
    }

    /// The forecast without headroom: from the last sample, the rise the
    /// season expects between now and the highest point within the lead,
    /// scaled to the current level; in an outage, the season's highest
    /// point at the level before it. `None` until a day of history lies
    /// behind the window.
    pub(super) fn forecast_peak(&mut self, now: DateTime<Utc>) -> Option<Forecast> {
        let open = self.open()?;
        let (_, demand) = self.last?;
        let now_index = index_of(now).max(open);
        let last = index_of(now + chrono::Duration::seconds(i64::from(self.lead_seconds)));
        let level = self.cached_level(open);
        let mut peak: Option<f64> = None;
        let mut weekly = false;
        for index in now_index..=last.max(now_index) {
            if let Some((season, week)) = self.season(index, |b| f64::from(b.max)) {
                peak = Some(peak.map_or(season, |p: f64| p.max(season)));
                weekly |= week;
            }
        }
        let peak = peak? * level;
        let outage = self.low_run >= OUTAGE_BINS;
        let expected = if outage {
            peak
        } else {
            let now_season = self.season(now_index, Bin::mean).map_or(0.0, |(m, _)| m) * level;
            demand + (peak - now_season).max(0.0)
        };
        Some(Forecast {
            peak: expected,
            headroom: 0.0,
            level,
            weekly,
            outage,
        })
    }

    /// The forecast at `now` of the highest demand within the lead, with
    /// the `quantile` of past errors as headroom; `None` until a day of
    /// history lies behind the window.
    pub fn forecast(&mut self, now: DateTime<Utc>, quantile: f64) -> Option<Forecast> {
        let mut forecast = self.forecast_peak(now)?;
        let open = self.open()?;
        let key = quantile.to_bits();
        forecast.headroom = match self.headroom_cache {
            Some((i, k, h)) if i == open && k == key => h,
            _ => {
                let h = self.headroom(open, quantile);
                self.headroom_cache = Some((open, key, h));
                h
            }
        };
        Some(forecast)
    }
}
