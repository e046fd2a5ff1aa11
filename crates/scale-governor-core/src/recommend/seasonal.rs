//! The seasonal strategy: scale ahead of demand that comes back every day
//! and every week.
//!
//! What provisioning needs is the *highest* demand before new pods could
//! be ready (the lead: start-up, plus the loop period and the metric's
//! delay), not its mean. The forecast is seasonal-naive (Hyndman &
//! Athanasopoulos, *Forecasting: Principles and Practice*, 3rd ed., §5.2,
//! and §12.1 on multiple seasonality) on that quantity, anchored on the
//! last sample: demand now, plus the rise the season expects between now
//! and its highest point within the lead, scaled to the current level. The
//! season is the same stretch a day ago and a week ago (averaged when both
//! are known); the level is the median, over the last half hour, of each
//! 5-minute bin's mean against its seasonal counterpart (a median, so a
//! spike does not inflate it). Over a lead of minutes the last sample
//! predicts better than any season (§5.2's naive method); the season
//! predicts the *change* a daily ramp or a recurring step brings.
//!
//! Headroom is *additive*: an observed high quantile (`errorQuantile`) of
//! the forecast's own past errors at the same time of day (±1 h) over the
//! last week — the empirical, one-sided prediction interval of FPP §5.5,
//! from the residuals. Multiplicative headroom fails at night, when
//! relative errors are huge on small numbers; Holt-Winters (FPP §8.3)
//! forecasts the mean, and the misses are in the peaks. One forecast per
//! bin, the one made as the bin begins, is scored once its lead has passed.
//!
//! History is kept in 5-minute bins (highest and mean demand, and that
//! error) for two weeks: 4,033 bins, which is what [`summary`] persists.
//! "A day ago" is 288 bins back in UTC, or, with a `timeZone`, the same
//! wall-clock time the day before (276 or 300 bins across a DST change).
//!
//! What a season cannot know is kept out of it:
//! - **Outages.** A run of bins under 10 % of what the season expected for
//!   15 minutes is an outage, not the new normal. Its bins are left out of
//!   the level, of later seasonal look-ups (the day before is used instead)
//!   and of the errors, and while it lasts the forecast is the season's
//!   highest point at the level before it, so pods are there when demand
//!   comes back. Only when no normal bin is left to compare with (two days
//!   of it) does the low demand become the reference.
//! - **Bursts.** A bin whose highest demand is twice what the season
//!   expected is a burst (news, a flash crowd): it is not echoed the next
//!   day or week, and its error does not inflate the headroom. The HPA
//!   answers bursts; a floor paid for around the clock would not. A burst
//!   of about the same size at the same time a day or a week later is a
//!   pattern and is learned from then on.

mod candidate;
mod forecast;
pub mod summary;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;

use chrono::{DateTime, TimeZone as _, Utc};
use chrono_tz::Tz;

/// Width of a history bin.
pub const BIN_SECONDS: i64 = 300;
/// Bins per day.
pub const DAY_BINS: i64 = 86_400 / BIN_SECONDS;
/// Bins per week.
pub const WEEK_BINS: i64 = 7 * DAY_BINS;
/// Bins of history kept: two weeks.
pub const KEEP_BINS: usize = 2 * WEEK_BINS as usize;
/// Bins whose ratio to the season gives the current level: half an hour.
const LEVEL_BINS: usize = 6;
/// How far back the level may look for normal bins (across an outage).
const LEVEL_REACH: i64 = DAY_BINS;
/// A bin is low when its mean is below this share of what the season
/// expected.
const OUTAGE_FRACTION: f64 = 0.1;
/// Consecutive low bins that make an outage: 15 minutes.
const OUTAGE_BINS: u32 = 3;
/// Days of errors the headroom is taken from.
const ERROR_DAYS: i64 = 7;
/// Bins on either side of the same time of day whose errors count: ±1 h.
const ERROR_SPREAD: i64 = 12;
/// Fewer errors than this at the time of day: use every error of the week.
const ERROR_MIN_SAMPLES: usize = 24;
/// The level never scales the season by more than this factor, either way.
const LEVEL_LIMIT: f64 = 5.0;
/// A bin whose highest demand is above this multiple of the season's is a
/// burst (unless the season had one there too).
const BURST_FACTOR: f64 = 2.0;

/// One bin of history.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Bin {
    /// Highest sample.
    pub max: f32,
    /// Sum of the samples.
    pub sum: f32,
    /// Samples seen; 0 means no data.
    pub count: u16,
    /// Far below the season (see [`OUTAGE_FRACTION`]).
    low: bool,
    /// Part of a run of low bins long enough to be an outage.
    outage: bool,
    /// Far above the season, and not at a time that was far above a day or
    /// a week before: a burst no season announced.
    burst: bool,
    /// The highest demand within the lead after the bin began, minus what
    /// was forecast for it then; NaN when nothing was forecast.
    pub error: f32,
}

impl Default for Bin {
    fn default() -> Bin {
        Bin {
            max: 0.0,
            sum: 0.0,
            count: 0,
            low: false,
            outage: false,
            burst: false,
            error: f32::NAN,
        }
    }
}

impl Bin {
    fn mean(&self) -> f64 {
        f64::from(self.sum) / f64::from(self.count.max(1))
    }

    /// Usable as a seasonal reference or for the level.
    fn normal(&self) -> bool {
        self.count > 0 && !self.outage && !self.burst
    }

    /// Whether its forecast error says something about the next ones.
    fn scored(&self) -> bool {
        !(self.low || self.outage || self.burst)
    }
}

/// What the forecast says at an instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Forecast {
    /// The highest demand expected within the lead, before headroom.
    pub peak: f64,
    /// The error quantile added to it.
    pub headroom: f64,
    /// The current level relative to the season (1 = as before).
    pub level: f64,
    /// Whether the week-ago season took part (else the day-ago one alone).
    pub weekly: bool,
    /// Whether demand is in an outage (the level is the one before it).
    pub outage: bool,
}

/// A forecast made when a bin began, waiting for its lead to pass.
#[derive(Debug, Clone, Copy)]
struct Pending {
    bin: i64,
    deadline: DateTime<Utc>,
    forecast: f64,
    highest: f64,
}

/// Two weeks of demand in 5-minute bins, and the forecast from them.
#[derive(Debug, Clone)]
pub struct Seasonal {
    bins: VecDeque<Bin>,
    /// Absolute index (unix seconds / [`BIN_SECONDS`]) of `bins[0]`.
    first: i64,
    /// Consecutive low bins up to the last closed one.
    low_run: u32,
    /// How far ahead the forecast looks.
    lead_seconds: u32,
    /// The wall clock the seasons follow: a day ago is the same local time
    /// yesterday, across a DST change too.
    zone: Tz,
    /// The last sample, which the forecast starts from.
    last: Option<(DateTime<Utc>, f64)>,
    pending: VecDeque<Pending>,
    /// The level for the open bin, computed once per bin.
    level_cache: Option<(i64, f64)>,
    /// The headroom for the open bin and a quantile, once per bin.
    headroom_cache: Option<(i64, u64, f64)>,
}

fn index_of(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(BIN_SECONDS)
}

impl Seasonal {
    /// No history; forecasts look `lead_seconds` ahead.
    pub fn new(lead_seconds: u32) -> Seasonal {
        Seasonal {
            bins: VecDeque::new(),
            first: 0,
            low_run: 0,
            lead_seconds,
            zone: Tz::UTC,
            last: None,
            pending: VecDeque::new(),
            level_cache: None,
            headroom_cache: None,
        }
    }

    /// A history built from past samples in time order, as if they had been
    /// observed (a backfill from the source).
    pub fn from_samples(lead_seconds: u32, samples: &[(DateTime<Utc>, f64)]) -> Seasonal {
        let mut seasonal = Seasonal::new(lead_seconds);
        for (at, value) in samples {
            seasonal.observe(*at, *value);
        }
        seasonal
    }

    /// Looks `lead_seconds` ahead from now on.
    pub fn set_lead(&mut self, lead_seconds: u32) {
        self.lead_seconds = lead_seconds;
    }

    /// Follows `zone`'s wall clock from now on.
    pub fn set_zone(&mut self, zone: Tz) {
        self.zone = zone;
    }

    /// The bin `days` days before `index` on the zone's wall clock: 288
    /// bins in UTC, 276 or 300 across a DST change. A local time the clock
    /// skipped, or an instant out of range, falls back to whole days.
    pub(crate) fn days_before(&self, index: i64, days: i64) -> i64 {
        let plain = index - days * DAY_BINS;
        if self.zone == Tz::UTC {
            return plain;
        }
        DateTime::from_timestamp(index * BIN_SECONDS, 0)
            .map(|t| t.with_timezone(&self.zone).naive_local() - chrono::Duration::days(days))
            .and_then(|local| self.zone.from_local_datetime(&local).earliest())
            .map_or(plain, |t| index_of(t.with_timezone(&Utc)))
    }

    /// Index of the open (last) bin; `None` with no history.
    fn open(&self) -> Option<i64> {
        (!self.bins.is_empty()).then(|| self.first + self.bins.len() as i64 - 1)
    }

    fn get(&self, index: i64) -> Option<&Bin> {
        let offset = index - self.first;
        if offset < 0 {
            return None;
        }
        self.bins.get(offset as usize)
    }

    fn get_mut(&mut self, index: i64) -> Option<&mut Bin> {
        let offset = index - self.first;
        if offset < 0 {
            return None;
        }
        self.bins.get_mut(offset as usize)
    }

    /// Bins of history, the open one included.
    pub fn span_bins(&self) -> i64 {
        self.bins.len() as i64
    }

    /// Bins that hold data.
    pub fn filled_bins(&self) -> usize {
        self.bins.iter().filter(|b| b.count > 0).count()
    }

    /// The highest demand seen in the bin that holds `at`, if it holds any.
    pub fn highest_at(&self, at: DateTime<Utc>) -> Option<f64> {
        self.get(index_of(at))
            .filter(|b| b.count > 0)
            .map(|b| f64::from(b.max))
    }

    /// The first instant the history covers, if any.
    pub fn start(&self) -> Option<DateTime<Utc>> {
        (!self.bins.is_empty())
            .then(|| DateTime::from_timestamp(self.first * BIN_SECONDS, 0))
            .flatten()
    }

    fn restart(&mut self, index: i64) {
        let zone = self.zone;
        *self = Seasonal::new(self.lead_seconds);
        self.zone = zone;
        self.first = index;
        self.bins.push_back(Bin::default());
    }

    /// Takes one demand sample. Samples must come in time order: an older
    /// one in the open bin is ignored, and one in an earlier bin means the
    /// clock went back, so the history "from the future" is dropped and
    /// collection starts again (the velocity strategy covers until a day
    /// has passed).
    pub fn observe(&mut self, at: DateTime<Utc>, demand: f64) {
        if !demand.is_finite() {
            return;
        }
        let demand = demand.max(0.0);
        let index = index_of(at);
        match self.open() {
            None => self.restart(index),
            Some(open) if index < open => self.restart(index),
            Some(open) if index > open => self.advance(index),
            Some(_) => {
                if self.last.is_some_and(|(t, _)| at <= t) {
                    return;
                }
            }
        }
        self.settle(at, demand);
        let bin = self.bins.back_mut().expect("an open bin");
        bin.max = bin.max.max(demand as f32);
        bin.sum += demand as f32;
        bin.count = bin.count.saturating_add(1);
        let first_in_bin = bin.count == 1;
        self.last = Some((at, demand));
        // One forecast per bin is scored, the one made as it began.
        if first_in_bin && let Some(f) = self.forecast_peak(at) {
            self.pending.push_back(Pending {
                bin: index,
                deadline: at + chrono::Duration::seconds(i64::from(self.lead_seconds)),
                forecast: f.peak,
                highest: demand,
            });
        }
    }

    /// Scores the forecasts whose lead has passed by `at`, and counts
    /// `demand` into the others.
    fn settle(&mut self, at: DateTime<Utc>, demand: f64) {
        while let Some(p) = self.pending.front().copied() {
            if p.deadline >= at {
                break;
            }
            self.pending.pop_front();
            if let Some(bin) = self.get_mut(p.bin)
                && bin.scored()
            {
                bin.error = (p.highest - p.forecast) as f32;
            }
        }
        for p in &mut self.pending {
            p.highest = p.highest.max(demand);
        }
    }

    /// Closes bins up to `index` (exclusive) and opens `index`.
    fn advance(&mut self, index: i64) {
        let Some(open) = self.open() else {
            return;
        };
        // A jump beyond the history leaves nothing worth closing.
        if index - open > KEEP_BINS as i64 {
            self.restart(index);
            return;
        }
        self.close(open);
        for gap in open + 1..index {
            self.bins.push_back(Bin::default());
            self.close(gap);
        }
        self.bins.push_back(Bin::default());
        while self.bins.len() > KEEP_BINS + 1 {
            self.bins.pop_front();
            self.first += 1;
        }
    }

    /// Settles a bin that takes no more samples: whether it is low (and
    /// part of an outage) or a burst. Neither is a reference for later
    /// forecasts, and neither's error counts.
    fn close(&mut self, index: i64) {
        let Some(bin) = self.get(index).copied() else {
            return;
        };
        if bin.count == 0 {
            self.low_run = 0;
            return;
        }
        let level = self.level(index);
        let expected_mean = self.season(index, Bin::mean).map(|(m, _)| m * level);
        let expected_max = self
            .season(index, |b| f64::from(b.max))
            .map(|(m, _)| m * level);
        let low = expected_mean.is_some_and(|e| e > 0.0 && bin.mean() < OUTAGE_FRACTION * e);
        // A burst of about this size at this time a day or a week before
        // makes it a pattern, learned from its second time on.
        let recurring = [self.days_before(index, 1), self.days_before(index, 7)]
            .into_iter()
            .any(|i| {
                self.get(i)
                    .is_some_and(|b| b.burst && 2.0 * b.max >= bin.max)
            });
        let burst = !low
            && !recurring
            && expected_max.is_some_and(|e| f64::from(bin.max) > BURST_FACTOR * e);
        let offset = (index - self.first) as usize;
        let b = &mut self.bins[offset];
        b.low = low;
        b.burst = burst;
        if !b.scored() {
            b.error = f32::NAN;
        }
        if !low {
            self.low_run = 0;
            return;
        }
        self.low_run += 1;
        if self.low_run >= OUTAGE_BINS {
            let run = (self.low_run as usize).min(offset + 1);
            for b in self.bins.range_mut(offset + 1 - run..=offset) {
                b.outage = true;
                b.error = f32::NAN;
            }
        }
    }

    /// Replaces the history with `bins` from `first` on (the last one open),
    /// keeping their errors, and settles each closed bin again in order.
    pub(crate) fn rebuild(&mut self, first: i64, bins: Vec<Bin>) {
        let (lead, zone) = (self.lead_seconds, self.zone);
        *self = Seasonal::new(lead);
        self.zone = zone;
        self.first = first;
        let n = bins.len();
        for (i, bin) in bins.into_iter().enumerate() {
            self.bins.push_back(Bin {
                low: false,
                outage: false,
                burst: false,
                ..bin
            });
            if i + 1 < n {
                self.close(first + i as i64);
            }
        }
        while self.bins.len() > KEEP_BINS + 1 {
            self.bins.pop_front();
            self.first += 1;
        }
    }

    /// The bins, oldest first, with the index of the first.
    pub(crate) fn bins(&self) -> (i64, impl Iterator<Item = &Bin>) {
        (self.first, self.bins.iter())
    }
}
