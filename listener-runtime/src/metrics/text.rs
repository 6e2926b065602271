//! The Prometheus text exposition format, version 0.0.4: `# HELP` and `# TYPE` per
//! family, then one `name{label="value"} number` line per sample.
//!
//! Hand-written rather than taken from a client library: the daemons already keep their
//! counters in atomics, so all that is needed is the encoding, and these few rules
//! (escaping, number spelling, histogram suffixes) are easier to audit here than an
//! adapter between our counters and a library's registry.

use std::fmt::Write as _;

/// The `Content-Type` of the format.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A metric family's type, as `# TYPE` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Only goes up (resets at restart); the name ends in `_total`.
    Counter,
    /// Goes up and down.
    Gauge,
    /// `_bucket{le=…}`, `_sum` and `_count` samples.
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A sample's value: counters and IDs are integers (printed exactly, not through a
/// float, so IDs above 2^53 stay exact), the rest floats.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Value {
    /// An integer.
    Int(u64),
    /// A float (`+Inf`, `-Inf` and `NaN` spelled as Prometheus wants them).
    Float(f64),
}

impl From<u64> for Value {
    fn from(v: u64) -> Value {
        Value::Int(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Float(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Int(u64::from(v))
    }
}

/// Builds an exposition: families in the order they are started.
///
/// ```text
/// use listener_runtime::metrics::{Exposition, Kind};
/// let mut e = Exposition::new();
/// e.family("demo_calls_total", Kind::Counter, "Calls made.");
/// e.sample("demo_calls_total", &[("module", "printer")], 3u64);
/// assert_eq!(
///     e.finish(),
///     "# HELP demo_calls_total Calls made.\n# TYPE demo_calls_total counter\n\
///      demo_calls_total{module=\"printer\"} 3\n"
/// );
/// ```
#[derive(Debug, Default)]
pub(crate) struct Exposition {
    out: String,
}

impl Exposition {
    /// An empty exposition.
    pub(crate) fn new() -> Exposition {
        Exposition::default()
    }

    /// Starts the family `name` (its `# HELP` and `# TYPE` lines).
    pub(crate) fn family(&mut self, name: &str, kind: Kind, help: &str) {
        debug_assert!(valid_name(name), "bad metric name {name:?}");
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
    }

    /// One sample of the current family (`name` with a suffix for a histogram's parts).
    pub(crate) fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Into<Value>) {
        debug_assert!(valid_name(name), "bad metric name {name:?}");
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                debug_assert!(valid_name(label), "bad label name {label:?}");
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{label}=\"{}\"", escape_label(value));
            }
            self.out.push('}');
        }
        self.out.push(' ');
        match value.into() {
            Value::Int(v) => {
                let _ = write!(self.out, "{v}");
            }
            Value::Float(v) => self.out.push_str(&float(v)),
        }
        self.out.push('\n');
    }

    /// The samples of one histogram series: `buckets` are cumulative `(le, count)` pairs
    /// in increasing order; `count` (all observations, including those above the last
    /// bound) becomes the `+Inf` bucket and `_count`.
    pub(crate) fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        buckets: &[(f64, u64)],
        count: u64,
        sum: f64,
    ) {
        // The parts are read one after the other while calls go on: keep the series
        // consistent (buckets never above +Inf) whatever the interleaving.
        let count = buckets.last().map_or(count, |&(_, last)| count.max(last));
        let bucket = format!("{name}_bucket");
        for &(le, cumulative) in buckets {
            let le = float(le);
            let mut with_le = labels.to_vec();
            with_le.push(("le", &le));
            self.sample(&bucket, &with_le, cumulative);
        }
        let mut with_le = labels.to_vec();
        with_le.push(("le", "+Inf"));
        self.sample(&bucket, &with_le, count);
        self.sample(&format!("{name}_sum"), labels, sum);
        self.sample(&format!("{name}_count"), labels, count);
    }

    /// The text.
    pub(crate) fn finish(self) -> String {
        self.out
    }
}

/// A float as Go's `strconv.ParseFloat` (Prometheus's parser) reads it. Rust's `Display`
/// is the shortest exact form and never uses an exponent, which Go accepts.
fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v == f64::INFINITY {
        "+Inf".to_owned()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        format!("{v}")
    }
}

/// Label values escape `\`, `"` and the line feed.
fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// `# HELP` text escapes `\` and the line feed (a `"` stays as it is).
fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_and_help_are_escaped() {
        let mut e = Exposition::new();
        e.family("x", Kind::Gauge, "a \"quoted\" back\\slash\nsecond line");
        e.sample("x", &[("module", "a\"b\\c\nd"), ("other", "plain")], 1u64);
        assert_eq!(
            e.finish(),
            "# HELP x a \"quoted\" back\\\\slash\\nsecond line\n\
             # TYPE x gauge\n\
             x{module=\"a\\\"b\\\\c\\nd\",other=\"plain\"} 1\n"
        );
    }

    #[test]
    fn numbers_are_spelled_for_prometheus() {
        assert_eq!(float(0.00025), "0.00025");
        assert_eq!(float(10.0), "10");
        assert_eq!(float(1.5), "1.5");
        assert_eq!(float(f64::INFINITY), "+Inf");
        assert_eq!(float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(float(f64::NAN), "NaN");
        let mut e = Exposition::new();
        e.sample("id", &[], u64::MAX);
        e.sample("up", &[], true);
        assert_eq!(e.finish(), "id 18446744073709551615\nup 1\n");
    }

    #[test]
    fn histograms_have_cumulative_buckets_inf_sum_and_count() {
        let mut e = Exposition::new();
        e.family("lat_seconds", Kind::Histogram, "Latency.");
        e.histogram("lat_seconds", &[("m", "a")], &[(0.1, 1), (1.0, 3)], 4, 2.5);
        assert_eq!(
            e.finish(),
            "# HELP lat_seconds Latency.\n\
             # TYPE lat_seconds histogram\n\
             lat_seconds_bucket{m=\"a\",le=\"0.1\"} 1\n\
             lat_seconds_bucket{m=\"a\",le=\"1\"} 3\n\
             lat_seconds_bucket{m=\"a\",le=\"+Inf\"} 4\n\
             lat_seconds_sum{m=\"a\"} 2.5\n\
             lat_seconds_count{m=\"a\"} 4\n"
        );
    }

    #[test]
    fn a_racing_count_never_falls_below_the_buckets() {
        let mut e = Exposition::new();
        e.histogram("h", &[], &[(1.0, 5)], 4, 0.0);
        let text = e.finish();
        assert!(text.contains("h_bucket{le=\"+Inf\"} 5\n"), "{text}");
        assert!(text.contains("h_count 5\n"), "{text}");
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_name("listener_lag_ids"));
        assert!(valid_name("a:b_1"));
        assert!(!valid_name("1abc"));
        assert!(!valid_name("a-b"));
        assert!(!valid_name(""));
    }
}
