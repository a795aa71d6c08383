//! The series cap of one instrument. Series are admitted first come, first served up to the
//! cap; the rest are summed into one overflow series (`otel.metric.overflow=true`) and
//! counted. A series that disappears from the observer (evicted) frees its slot. Counters
//! never go backwards: a series reports the highest value it has reported.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use opentelemetry::KeyValue;

use super::names::OVERFLOW;

/// Distinct refused series remembered, so one series is counted once (bounded memory).
const MAX_REMEMBERED_REFUSALS: usize = 100_000;

#[derive(Debug, Default)]
struct State {
    /// Admitted series → (last value reported, collection it was last seen in).
    admitted: HashMap<String, (f64, u64)>,
    /// Series refused so far (by hash).
    refused: HashSet<u64>,
    /// Last overflow value (kept monotonic for counters).
    overflow: f64,
    /// Collections so far.
    generation: u64,
}

/// The cap and its state for one instrument.
#[derive(Debug)]
pub struct SeriesCap {
    name: &'static str,
    max: usize,
    monotonic: bool,
    state: Mutex<State>,
    /// Distinct series folded into the overflow series so far.
    pub refused: AtomicU64,
}

fn key_of(attrs: &[KeyValue]) -> String {
    let mut k = String::new();
    for a in attrs {
        k.push_str(a.key.as_str());
        k.push('\u{1f}');
        k.push_str(&a.value.as_str());
        k.push('\u{1e}');
    }
    k
}

fn hash_of(s: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

impl SeriesCap {
    /// A cap of `max` series for instrument `name`; `monotonic` for counters.
    pub fn new(name: &'static str, max: usize, monotonic: bool) -> SeriesCap {
        SeriesCap {
            name,
            max,
            monotonic,
            state: Mutex::new(State::default()),
            refused: AtomicU64::new(0),
        }
    }

    /// The instrument's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Passes one collection's points through the cap to `emit`.
    pub fn collect(
        &self,
        points: impl IntoIterator<Item = (Vec<KeyValue>, f64)>,
        mut emit: impl FnMut(f64, &[KeyValue]),
    ) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.generation += 1;
        let generation = st.generation;
        let mut overflow = 0.0;
        let mut overflowed = false;
        // Series gone since the last collection free their slots first.
        let points: Vec<(String, Vec<KeyValue>, f64)> = points
            .into_iter()
            .map(|(attrs, v)| (key_of(&attrs), attrs, v))
            .collect();
        for (key, _, _) in &points {
            if let Some(e) = st.admitted.get_mut(key) {
                e.1 = generation;
            }
        }
        st.admitted.retain(|_, (_, g)| *g == generation);
        for (key, attrs, value) in points {
            let room = st.admitted.len() < self.max;
            let out = match st.admitted.get_mut(&key) {
                Some(e) => {
                    e.0 = if self.monotonic {
                        e.0.max(value)
                    } else {
                        value
                    };
                    e.1 = generation;
                    Some(e.0)
                }
                None if room => {
                    st.admitted.insert(key.clone(), (value, generation));
                    Some(value)
                }
                None => None,
            };
            match out {
                Some(v) => emit(v, &attrs),
                None => {
                    overflow += value;
                    overflowed = true;
                    let h = hash_of(&key);
                    let fresh = if st.refused.len() < MAX_REMEMBERED_REFUSALS {
                        st.refused.insert(h)
                    } else {
                        !st.refused.contains(&h)
                    };
                    if fresh {
                        self.refused.fetch_add(1, Relaxed);
                    }
                }
            }
        }
        if overflowed || st.overflow > 0.0 {
            st.overflow = if self.monotonic {
                st.overflow.max(overflow)
            } else {
                overflow
            };
            emit(st.overflow, &[KeyValue::new(OVERFLOW, true)]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(cap: &SeriesCap, points: &[(&str, f64)]) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        cap.collect(
            points
                .iter()
                .map(|(k, v)| (vec![KeyValue::new("client", k.to_string())], *v)),
            |v, attrs| out.push((attrs[0].value.as_str().into_owned(), v)),
        );
        out
    }

    #[test]
    fn series_beyond_the_cap_fold_into_one_counted_overflow_series() {
        let cap = SeriesCap::new("t", 2, true);
        let out = run(&cap, &[("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 4.0)]);
        assert_eq!(
            out,
            vec![("a".into(), 1.0), ("b".into(), 2.0), ("true".into(), 7.0)]
        );
        assert_eq!(cap.refused.load(Relaxed), 2);
        // The same refused series again are not counted twice.
        run(&cap, &[("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 4.0)]);
        assert_eq!(cap.refused.load(Relaxed), 2);
    }

    #[test]
    fn an_evicted_series_frees_its_slot() {
        let cap = SeriesCap::new("t", 2, true);
        run(&cap, &[("a", 1.0), ("b", 2.0)]);
        let out = run(&cap, &[("b", 2.0), ("c", 5.0)]);
        assert_eq!(out, vec![("b".into(), 2.0), ("c".into(), 5.0)]);
    }

    #[test]
    fn counters_never_go_backwards_but_gauges_do() {
        let counter = SeriesCap::new("c", 10, true);
        run(&counter, &[("a", 10.0)]);
        assert_eq!(run(&counter, &[("a", 7.0)]), vec![("a".into(), 10.0)]);
        let gauge = SeriesCap::new("g", 10, false);
        run(&gauge, &[("a", 10.0)]);
        assert_eq!(run(&gauge, &[("a", 7.0)]), vec![("a".into(), 7.0)]);
    }

    #[test]
    fn a_flood_of_random_series_stays_bounded() {
        let cap = SeriesCap::new("t", 100, true);
        let mut emitted = 0;
        let points: Vec<_> = (0..50_000)
            .map(|i| (vec![KeyValue::new("client", format!("random-{i}"))], 1.0))
            .collect();
        cap.collect(points, |_, _| emitted += 1);
        assert_eq!(emitted, 101, "100 series and the overflow series");
        assert_eq!(cap.refused.load(Relaxed), 49_900);
        assert_eq!(cap.state.lock().unwrap().admitted.len(), 100);
    }
}
