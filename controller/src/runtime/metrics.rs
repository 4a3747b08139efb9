//! Legate's own metrics (the xDS server renders its own), as Prometheus text.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use std::borrow::Cow;
use std::collections::BTreeMap;

use legate_translator::conditions::Condition;
use legate_translator::resources::{Map, ObjKey, changed_keys};
use legate_translator::routes::RouteKey;
use legate_translator::status::{BackendStatus, RouteStatus, Statuses};

use super::state::Live;

/// Upper bounds of the translation-duration histogram, in seconds.
const BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

#[derive(Default)]
pub struct Metrics {
    translations: AtomicU64,
    file_errors: AtomicU64,
    histogram: Mutex<Histogram>,
    /// The `legate_objects` lines of the translation they were counted from (a scrape between
    /// two translations does not count every object again), and the counts of routes and
    /// Backends, brought up to date from one translation to the next by what changed.
    objects: Mutex<Option<ObjectsMemo>>,
}

struct ObjectsMemo {
    of: Weak<Live>,
    text: Arc<str>,
    /// The statuses counted in `counts` (persistent maps: shared, O(1) to keep).
    routes: Map<RouteKey, Arc<RouteStatus>>,
    backends: Map<ObjKey, Arc<BackendStatus>>,
    counts: BTreeMap<(&'static str, Cow<'static, str>, &'static str), u64>,
}

/// Adds (or takes away) one object's conditions to `counts`.
fn count(
    counts: &mut BTreeMap<(&'static str, Cow<'static, str>, &'static str), u64>,
    kind: &'static str,
    conds: &[Condition],
    add: bool,
) {
    for c in conds {
        let key = (kind, c.type_.clone(), c.status.as_str());
        if add {
            *counts.entry(key).or_default() += 1;
        } else if let Some(n) = counts.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&key);
            }
        }
    }
}

#[derive(Default)]
struct Histogram {
    counts: [u64; 11],
    sum: f64,
    count: u64,
}

impl Metrics {
    pub fn observe_translation(&self, d: Duration) {
        self.translations.fetch_add(1, Ordering::Relaxed);
        let s = d.as_secs_f64();
        let mut h = self.histogram.lock().unwrap();
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                h.counts[i] += 1;
            }
        }
        h.sum += s;
        h.count += 1;
    }

    /// Translations run so far.
    pub fn translations(&self) -> u64 {
        self.translations.load(Ordering::Relaxed)
    }

    pub fn set_file_errors(&self, n: usize) {
        self.file_errors.store(n as u64, Ordering::Relaxed);
    }

    /// Prometheus text for Legate's metrics plus objects by condition from `live`'s statuses.
    pub fn render(&self, live: &Arc<Live>) -> String {
        let mut o = String::new();
        let _ =
            writeln!(o, "# HELP legate_translations_total Translations run.\n# TYPE legate_translations_total counter");
        let _ = writeln!(o, "legate_translations_total {}", self.translations.load(Ordering::Relaxed));
        let _ = writeln!(o, "# HELP legate_translation_duration_seconds Time to translate all resources.");
        let _ = writeln!(o, "# TYPE legate_translation_duration_seconds histogram");
        let h = self.histogram.lock().unwrap();
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(o, "legate_translation_duration_seconds_bucket{{le=\"{b}\"}} {}", h.counts[i]);
        }
        let _ = writeln!(o, "legate_translation_duration_seconds_bucket{{le=\"+Inf\"}} {}", h.count);
        let _ = writeln!(o, "legate_translation_duration_seconds_sum {}", h.sum);
        let _ = writeln!(o, "legate_translation_duration_seconds_count {}", h.count);
        drop(h);
        let _ = writeln!(
            o,
            "# HELP legate_file_errors Resource files that do not parse (their last good objects stay in force)."
        );
        let _ = writeln!(
            o,
            "# TYPE legate_file_errors gauge\nlegate_file_errors {}",
            self.file_errors.load(Ordering::Relaxed)
        );
        o.push_str(&self.objects_text(live));
        o
    }

    fn objects_text(&self, live: &Arc<Live>) -> Arc<str> {
        let mut memo = self.objects.lock().unwrap();
        if let Some(m) = memo.as_ref().filter(|m| std::ptr::eq(m.of.as_ptr(), Arc::as_ptr(live))) {
            return m.text.clone();
        }
        let st = &live.output.statuses;
        let mut m = memo.take().unwrap_or_else(|| ObjectsMemo {
            of: Weak::new(),
            text: "".into(),
            routes: Map::new(),
            backends: Map::new(),
            counts: BTreeMap::new(),
        });
        for key in changed_keys(&m.routes, &st.routes) {
            for (s, add) in [(m.routes.get(key), false), (st.routes.get(key), true)] {
                for p in s.iter().flat_map(|s| &s.parents) {
                    count(&mut m.counts, key.kind.name(), &p.conditions, add);
                }
            }
        }
        for key in changed_keys(&m.backends, &st.backends) {
            for (s, add) in [(m.backends.get(key), false), (st.backends.get(key), true)] {
                if let Some(s) = s {
                    count(&mut m.counts, "Backend", &s.conditions, add);
                }
            }
        }
        (m.routes, m.backends) = (st.routes.clone(), st.backends.clone());
        m.text = objects_text(st, &m.counts).into();
        m.of = Arc::downgrade(live);
        let text = m.text.clone();
        *memo = Some(m);
        text
    }
}

/// The `legate_objects` gauge: objects by kind and by the status of a condition; routes and
/// Backends from `kept` (counted by [`Metrics`] as they change), the few others counted here.
fn objects_text(statuses: &Statuses, kept: &BTreeMap<(&'static str, Cow<'static, str>, &'static str), u64>) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# HELP legate_objects Objects by kind and by the status of a condition.");
    let _ = writeln!(o, "# TYPE legate_objects gauge");
    let st = statuses;
    let conditions = (st.gateway_classes.values().map(|s| ("GatewayClass", &s.conditions)))
        .chain(st.gateways.values().map(|s| ("Gateway", &s.conditions)));
    let mut counts: BTreeMap<(&str, &str, &str), u64> = Default::default();
    for (kind, conds) in conditions {
        for c in conds {
            *counts.entry((kind, &*c.type_, c.status.as_str())).or_default() += 1;
        }
    }
    for ((kind, ty, st), n) in kept {
        *counts.entry((kind, &**ty, st)).or_default() += n;
    }
    for ((kind, ty, st), n) in counts {
        let _ = writeln!(o, "legate_objects{{kind=\"{kind}\",condition=\"{ty}\",status=\"{st}\"}} {n}");
    }
    o
}

#[cfg(test)]
mod tests;
