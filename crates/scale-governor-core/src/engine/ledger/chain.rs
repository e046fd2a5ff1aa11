//! Keeping the stored changes one chain: each starts where the change
//! stored before it ended, so that a rate rule's period start (the current
//! count minus what was added plus what was removed since) is the count
//! the workload really had then.

use super::Ledger;

impl Ledger {
    /// Links the stored changes by generation. Two entries of one
    /// generation and count are one change: the one whose `from` is surer
    /// stays. A change whose `from` was only the last count known (it has
    /// a [`from_generation`](super::Change::from_generation)) starts
    /// instead where the latest change known before it ends, if that one
    /// is newer than what was known; if it then changes nothing, it goes:
    /// the changes known in between made all of it. Pending changes and
    /// wishes have no generation and are left alone. Returns whether
    /// anything changed.
    pub(super) fn link(&mut self) -> bool {
        if self.is_linked() {
            return false;
        }
        let mut order: Vec<usize> = (0..self.changes.len())
            .filter(|&i| {
                let c = &self.changes[i];
                c.generation.is_some() && !c.pending && c.from != c.to
            })
            .collect();
        if order.len() < 2 {
            return false;
        }
        order.sort_by_key(|&i| self.changes[i].generation);
        let mut drop = vec![false; self.changes.len()];
        let mut changed = self.drop_duplicates(&order, &mut drop);
        let mut before: Option<(u32, Option<i64>)> = None;
        for &i in &order {
            if drop[i] {
                continue;
            }
            let c = &mut self.changes[i];
            if let Some((to, generation)) = before
                && let (Some(known), Some(g), Some(own)) =
                    (c.from_generation(), generation, c.generation)
                && known < g
                && g < own
            {
                c.from = to;
                c.set_from_generation(generation);
                changed = true;
                if c.from == c.to {
                    drop[i] = true;
                    continue;
                }
            }
            before = Some((c.to, c.generation));
        }
        if changed {
            let mut i = 0;
            self.changes.retain(|_| {
                let keep = !drop[i];
                i += 1;
                keep
            });
        }
        changed
    }

    /// Whether there is nothing to link, the usual case, found without
    /// allocating: no sum, and the stored changes' generations rise with
    /// their times, none twice.
    fn is_linked(&self) -> bool {
        let mut last = None;
        for c in &self.changes {
            if c.generation.is_none() || c.pending || c.from == c.to {
                continue;
            }
            if c.span.is_some() || last >= c.generation {
                return false;
            }
            last = c.generation;
        }
        true
    }

    /// Marks in `drop` all but one of the stored entries that share a
    /// generation and a count (`order` is sorted by generation): the one
    /// whose `from` is surest stays, watched if any of them was.
    fn drop_duplicates(&mut self, order: &[usize], drop: &mut [bool]) -> bool {
        let mut changed = false;
        let mut kept = order[0];
        for &i in &order[1..] {
            let (k, c) = (&self.changes[kept], &self.changes[i]);
            if k.generation != c.generation || k.to != c.to {
                kept = i;
                continue;
            }
            let (stays, goes) = if c.versions_back() < k.versions_back() {
                (i, kept)
            } else {
                (kept, i)
            };
            let watched = self.changes[goes].watched;
            self.changes[stays].watched |= watched;
            drop[goes] = true;
            kept = stays;
            changed = true;
        }
        changed
    }
}

#[cfg(test)]
mod tests;
