//! Dropping the wishes that stabilization can no longer tell apart.

use super::{Ledger, MAX_ENTRIES};

/// Which extremes of a window of requests the policies' stabilization
/// reads: scale-up stabilization the lowest, scale-down the highest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reads {
    /// Some policy stabilizes scaling up.
    pub lowest: bool,
    /// Some policy stabilizes scaling down.
    pub highest: bool,
}

impl Reads {
    /// Both extremes: what a ledger keeps when the policy is not known.
    pub const BOTH: Reads = Reads {
        lowest: true,
        highest: true,
    };
}

impl Ledger {
    /// Stabilization reads only the lowest and the highest request in a
    /// window that always ends now, so a wish that changed nothing is
    /// redundant once newer entries ask both at least as much and at most
    /// as much: every window that holds it holds them. Of the extremes
    /// that `reads` leaves out, nothing is kept (an HPA-style policy
    /// stabilizes only scaling down, so a newer, higher request is enough). Under a clamp storm
    /// the same wish arrives again and again, and this keeps a ledger from
    /// holding each copy for the whole lookback. The entry at `newest` was
    /// just recorded and may yet be retracted (the same review uid back
    /// with another body), so it stands in for nothing; pending changes may
    /// be retracted or expire, so neither do they. Changes, pending or not,
    /// are never dropped here: rate limits count them.
    pub(super) fn drop_dominated(&mut self, newest: usize, reads: Reads) {
        // One bit per entry, on the stack: this runs on the request path.
        // The ledger holds at most one entry over MAX_ENTRIES here.
        let mut dropped = [0u64; MAX_ENTRIES / 64 + 1];
        let mut any = false;
        let mut range: Option<(u32, u32)> = None;
        for (i, c) in self.changes.iter().enumerate().rev() {
            if c.from == c.to
                && !c.pending
                && range.is_some_and(|(lo, hi)| {
                    (!reads.lowest || lo <= c.requested) && (!reads.highest || c.requested <= hi)
                })
                && let Some(word) = dropped.get_mut(i / 64)
            {
                *word |= 1 << (i % 64);
                any = true;
                continue;
            }
            if i != newest && !c.pending {
                range = Some(match range {
                    Some((lo, hi)) => (lo.min(c.requested), hi.max(c.requested)),
                    None => (c.requested, c.requested),
                });
            }
        }
        if any {
            let mut i = 0;
            self.changes.retain(|_| {
                let keep = dropped.get(i / 64).is_none_or(|w| w & (1 << (i % 64)) == 0);
                i += 1;
                keep
            });
        }
    }
}

#[cfg(test)]
mod tests;
