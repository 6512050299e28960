//! Heartbeat deadlines for the offline watchdog: each device has one deadline; a heartbeat
//! moves it (O(log n)); the watchdog sleeps until the earliest and pops the expired ones — no
//! scan over all devices per tick, whatever their number.

use std::collections::{BTreeSet, HashMap};

#[derive(Debug, Default)]
pub struct Deadlines {
    by_time: BTreeSet<(i64, i64)>,
    by_id: HashMap<i64, i64>,
}

impl Deadlines {
    /// Sets device `id`'s deadline (milliseconds since the epoch).
    pub fn set(&mut self, id: i64, at_ms: i64) {
        if let Some(old) = self.by_id.insert(id, at_ms) {
            self.by_time.remove(&(old, id));
        }
        self.by_time.insert((at_ms, id));
    }

    pub fn remove(&mut self, id: i64) {
        if let Some(old) = self.by_id.remove(&id) {
            self.by_time.remove(&(old, id));
        }
    }

    /// The deadline of one device, if it has one.
    pub fn next_for(&self, id: i64) -> Option<i64> {
        self.by_id.get(&id).copied()
    }

    pub fn next(&self) -> Option<i64> {
        self.by_time.first().map(|(t, _)| *t)
    }

    /// Removes and returns every device whose deadline is at or before `now_ms`.
    pub fn pop_expired(&mut self, now_ms: i64) -> Vec<i64> {
        let mut out = Vec::new();
        while let Some(&(t, id)) = self.by_time.first() {
            if t > now_ms {
                break;
            }
            self.by_time.pop_first();
            self.by_id.remove(&id);
            out.push(id);
        }
        out
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_and_expires_in_deadline_order() {
        let mut d = Deadlines::default();
        d.set(1, 100);
        d.set(2, 50);
        d.set(3, 300);
        d.set(2, 200); // a heartbeat moved it
        assert_eq!(d.next(), Some(100));
        assert_eq!(d.pop_expired(99), Vec::<i64>::new());
        assert_eq!(d.pop_expired(200), vec![1, 2]);
        d.remove(3);
        assert!(d.is_empty());
        assert_eq!(d.next(), None);
    }
}
