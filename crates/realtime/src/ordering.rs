//! Puts each call's (or message's) events back in `version` order.
//!
//! The API publishes after commit, from whichever request made the change,
//! so two changes of one call can reach Redis in the opposite order. Every
//! `call.*` / `message.*` event carries the entity's gapless `version`
//! (1 = created, +1 per change). An event that continues its stream is
//! delivered at once; one that leaves a gap is held for a short window
//! waiting for the missing versions, then the held events are flushed in
//! order anyway (an event that never comes must not block the stream).
//! A version that was passed over that way — or that precedes the first
//! event seen of a record — and arrives after all is delivered late rather
//! than lost: a job enqueued in its record's transaction can run, and
//! publish version 2, before the request that created the record has
//! published version 1. Consumers see the `version` and can tell. Only
//! duplicates (a version already delivered) are dropped.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    time::{Duration, Instant},
};

/// Streams idle for this long are forgotten; a later event of the same
/// entity then starts a new stream (delivered at once).
const IDLE_EVICTION: Duration = Duration::from_secs(600);
/// How many passed-over versions a stream remembers (so a late one can
/// still be delivered); older ones are forgotten first.
const MISSED_MAX: usize = 32;

/// The reorder buffer. `T` is whatever is being delivered.
#[derive(Debug)]
pub struct Orderer<T> {
    /// How long a gap may hold events back.
    window: Duration,
    streams: HashMap<String, Stream<T>>,
    /// The streams holding events back (the only ones with a deadline):
    /// deadlines are looked up among these, not among every stream seen in
    /// the last ten minutes (tens of thousands under a callback storm, which
    /// made each event cost a scan of all of them).
    waiting: HashSet<String>,
    /// When idle streams were last evicted.
    last_eviction: Instant,
}

#[derive(Debug)]
struct Stream<T> {
    /// The last version delivered.
    last: i64,
    /// Events waiting for a gap to fill, by version.
    pending: BTreeMap<i64, T>,
    /// When the held events are flushed regardless.
    deadline: Option<Instant>,
    touched: Instant,
    /// Versions below `last` that were never delivered.
    missed: BTreeSet<i64>,
}

impl<T> Stream<T> {
    fn miss(&mut self, versions: impl Iterator<Item = i64>) {
        self.missed.extend(versions);
        while self.missed.len() > MISSED_MAX {
            self.missed.pop_first();
        }
    }
}

impl<T> Orderer<T> {
    /// An orderer that holds an event behind a gap for at most `window`.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            streams: HashMap::new(),
            waiting: HashSet::new(),
            last_eviction: Instant::now(),
        }
    }

    /// Accepts one event of stream `key` at `version` and returns what can
    /// be delivered now, in order.
    pub fn accept(&mut self, key: &str, version: i64, item: T, now: Instant) -> Vec<T> {
        self.evict_idle(now);
        let Some(stream) = self.streams.get_mut(key) else {
            let mut stream = Stream {
                last: version,
                pending: BTreeMap::new(),
                deadline: None,
                touched: now,
                missed: BTreeSet::new(),
            };
            stream.miss((1.max(version - MISSED_MAX as i64))..version);
            self.streams.insert(key.to_string(), stream);
            return vec![item];
        };
        stream.touched = now;
        if version <= stream.last && stream.missed.remove(&version) {
            metrics::counter!("realtime_events_late_total").increment(1);
            return vec![item];
        }
        if version <= stream.last || stream.pending.contains_key(&version) {
            metrics::counter!("realtime_events_dropped_total", "reason" => "stale").increment(1);
            return Vec::new();
        }
        if version != stream.last + 1 {
            stream.pending.insert(version, item);
            if stream.deadline.is_none() {
                stream.deadline = Some(now + self.window);
                self.waiting.insert(key.to_string());
            }
            return Vec::new();
        }
        stream.last = version;
        let mut ready = vec![item];
        while let Some(next) = stream.pending.remove(&(stream.last + 1)) {
            stream.last += 1;
            ready.push(next);
        }
        if stream.pending.is_empty() && stream.deadline.take().is_some() {
            self.waiting.remove(key);
        }
        ready
    }

    /// Releases, in order, everything held past its deadline.
    pub fn flush_due(&mut self, now: Instant) -> Vec<T> {
        let mut ready = Vec::new();
        let streams = &mut self.streams;
        self.waiting.retain(|key| {
            let Some(stream) = streams.get_mut(key) else {
                return false;
            };
            if stream.deadline.is_none_or(|d| d > now) {
                return true;
            }
            metrics::counter!("realtime_reorder_timeouts_total").increment(1);
            let pending = std::mem::take(&mut stream.pending);
            let passed: Vec<i64> = match pending.last_key_value() {
                Some((&last, _)) => (stream.last + 1..last)
                    .filter(|v| !pending.contains_key(v))
                    .collect(),
                None => Vec::new(),
            };
            if let Some((&last, _)) = pending.last_key_value() {
                stream.last = last;
            }
            stream.miss(passed.into_iter());
            ready.extend(pending.into_values());
            stream.deadline = None;
            false
        });
        ready
    }

    /// The earliest deadline, for the caller's timer.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.waiting
            .iter()
            .filter_map(|key| self.streams.get(key)?.deadline)
            .min()
    }

    fn evict_idle(&mut self, now: Instant) {
        if now.duration_since(self.last_eviction) < Duration::from_secs(10) {
            return;
        }
        self.last_eviction = now;
        self.streams
            .retain(|_, s| !s.pending.is_empty() || now.duration_since(s.touched) < IDLE_EVICTION);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_millis(250);

    /// Accepts each (stream, version) at `now`, the version being the event
    /// too, and checks what each one releases.
    fn accepts(o: &mut Orderer<i64>, now: Instant, steps: &[(&str, i64, &[i64])]) {
        for &(stream, version, released) in steps {
            assert_eq!(
                o.accept(stream, version, version, now),
                released,
                "{stream} version {version}"
            );
        }
    }

    #[test]
    fn in_order_events_are_delivered_at_once() {
        let (mut o, now) = (Orderer::new(WINDOW), Instant::now());
        accepts(&mut o, now, &[("c", 1, &[1]), ("c", 2, &[2])]);
        assert_eq!(o.next_deadline(), None);
    }

    #[test]
    fn a_gap_holds_later_events_until_it_fills() {
        let (mut o, now) = (Orderer::new(WINDOW), Instant::now());
        accepts(&mut o, now, &[("c", 1, &[1]), ("c", 4, &[]), ("c", 3, &[])]);
        assert!(o.next_deadline().is_some());
        accepts(&mut o, now, &[("c", 2, &[2, 3, 4])]);
        assert_eq!(o.next_deadline(), None);
        // Other streams are independent.
        accepts(&mut o, now, &[("d", 7, &[7])]);
    }

    #[test]
    fn a_gap_that_never_fills_is_flushed_in_order_after_the_window() {
        let (mut o, now) = (Orderer::new(WINDOW), Instant::now());
        accepts(&mut o, now, &[("c", 1, &[1]), ("c", 5, &[]), ("c", 3, &[])]);
        assert!(o.flush_due(now + Duration::from_millis(100)).is_empty());
        assert_eq!(o.flush_due(now + Duration::from_millis(300)), vec![3, 5]);
        // A passed-over version arriving after all is delivered late, once;
        // 3 was delivered.
        let late = [
            ("c", 2, &[2][..]),
            ("c", 2, &[]),
            ("c", 6, &[6]),
            ("c", 4, &[4]),
            ("c", 3, &[]),
        ];
        accepts(&mut o, now, &late);
    }

    #[test]
    fn a_creation_published_after_the_first_change_is_still_delivered() {
        // The worker's `sending` (version 2) reached Redis before the API's
        // `created` (version 1).
        let (mut o, now) = (Orderer::new(WINDOW), Instant::now());
        accepts(
            &mut o,
            now,
            &[
                ("m", 2, &[2]),
                ("m", 1, &[1]),
                ("m", 1, &[]),
                ("m", 3, &[3]),
            ],
        );
    }

    #[test]
    fn only_streams_holding_events_back_have_deadlines() {
        let mut o = Orderer::new(WINDOW);
        let now = Instant::now();
        for call in 0..10_000 {
            assert_eq!(o.accept(&format!("call:{call}"), 1, call, now), vec![call]);
        }
        assert_eq!(o.next_deadline(), None);
        let later = now + Duration::from_millis(10);
        assert!(o.accept("call:7", 3, 73, later).is_empty());
        assert_eq!(o.next_deadline(), Some(later + Duration::from_millis(250)));
        assert_eq!(o.accept("call:7", 2, 72, later), vec![72, 73]);
        assert_eq!(o.next_deadline(), None);
        assert!(o.flush_due(later + Duration::from_secs(1)).is_empty());
        // A gap left open is flushed once, then nothing waits.
        assert!(o.accept("call:8", 3, 83, later).is_empty());
        assert_eq!(o.flush_due(later + Duration::from_secs(1)), vec![83]);
        assert_eq!(o.next_deadline(), None);
        assert_eq!(o.accept("call:8", 4, 84, later), vec![84]);
    }

    #[test]
    fn duplicates_are_dropped() {
        let (mut o, now) = (Orderer::new(WINDOW), Instant::now());
        let steps = [
            ("c", 1, &[1][..]),
            ("c", 1, &[]),
            ("c", 3, &[]),
            ("c", 3, &[]),
            ("c", 2, &[2, 3]),
        ];
        accepts(&mut o, now, &steps);
    }
}
