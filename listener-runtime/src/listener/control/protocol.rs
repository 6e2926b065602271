//! The control socket's wire format. A client connects, writes one JSON request line and
//! reads one JSON answer line: `{"ok":true,"result":…}` or `{"ok":false,"error":"…"}`. A
//! `dump` answer has `"stream":true` and is followed by the LDIF text up to the end of the
//! connection (so a large cache is never held in memory as one string). JSON because the
//! answers are also what `status --json` prints, and both sides already speak serde.

use serde::{Deserialize, Serialize};

/// The longest request line the server reads; requests are small, so more is garbage.
pub(crate) const MAX_REQUEST: usize = 64 * 1024;

/// A request of an administrator's tool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum Query {
    /// IDs, lag, rate, halt, module states and failed counts ([`StatusReport`]).
    Status,
    /// The whole cache as LDIF (streamed after the answer line).
    Dump,
    /// The cache's last transaction ID and schema ID ([`Ids`]).
    Ids,
    /// The cache's own consistency ([`CheckReport`]).
    Check,
    /// One cached object as LDIF (with its `listenerModule` lines), or `null`.
    Entry {
        /// The object's DN.
        dn: String,
    },
    /// Failed events (without old/new), of one module or all ([`FailedView`] list).
    FailedList {
        /// Only this module's.
        #[serde(default)]
        module: Option<String>,
    },
    /// One failed event in full.
    FailedShow {
        /// The module.
        module: String,
        /// The event's sequence number.
        seq: u64,
    },
    /// Re-deliver failed events ([`ReplayReport`]); done by the processing loop.
    FailedReplay {
        /// The module.
        module: String,
        /// Only this event; all of the module's without.
        #[serde(default)]
        seq: Option<u64>,
    },
    /// Delete failed events (`{"dropped":n}`); done by the processing loop.
    FailedDrop {
        /// The module.
        module: String,
        /// Only this event; all of the module's without.
        #[serde(default)]
        seq: Option<u64>,
    },
    /// Re-initialize modules now ([`ResyncReport`] list); done by the processing loop.
    Resync {
        /// The modules.
        modules: Vec<String>,
    },
    /// Processing is halted by a blocking module: record the held change as the module's
    /// failed event and go on ([`HeldChange`]); done by the processing loop.
    HaltSkip,
    /// Processing is halted: try the held change again now ([`HeldChange`]).
    HaltRetry,
}

/// Parses a request line; the error says what is wrong in words for the client.
pub(crate) fn parse_query(line: &str) -> Result<Query, String> {
    let line = line.trim();
    if line.is_empty() {
        return Err("empty request: send one JSON object such as {\"request\":\"status\"}".into());
    }
    serde_json::from_str(line).map_err(|e| format!("malformed request: {e}"))
}

/// The answer line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Answer {
    /// Whether the request was carried out.
    pub ok: bool,
    /// What it produced (`null` for errors and streams).
    #[serde(default)]
    pub result: serde_json::Value,
    /// Why not, when `ok` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Text follows the answer line up to the end of the connection.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
}

impl Answer {
    /// A success carrying `result`.
    pub(crate) fn ok(result: impl Serialize) -> Answer {
        match serde_json::to_value(result) {
            Ok(result) => Answer {
                ok: true,
                result,
                error: None,
                stream: false,
            },
            Err(e) => Answer::error(format!("cannot encode the answer: {e}")),
        }
    }

    /// A success whose text follows.
    pub(crate) fn stream() -> Answer {
        Answer {
            ok: true,
            result: serde_json::Value::Null,
            error: None,
            stream: true,
        }
    }

    /// A failure.
    pub(crate) fn error(message: impl Into<String>) -> Answer {
        Answer {
            ok: false,
            result: serde_json::Value::Null,
            error: Some(message.into()),
            stream: false,
        }
    }

    /// The answer as one line, newline included.
    pub(crate) fn to_line(&self) -> String {
        let mut line = serde_json::to_string(self)
            .unwrap_or_else(|_| r#"{"ok":false,"error":"cannot encode the answer"}"#.into());
        line.push('\n');
        line
    }

    /// The result as `T`, or the error.
    pub(crate) fn into_result<T: for<'de> Deserialize<'de>>(self) -> Result<T, String> {
        if !self.ok {
            return Err(self.error.unwrap_or_else(|| "the listener refused".into()));
        }
        serde_json::from_value(self.result)
            .map_err(|e| format!("unexpected answer from the listener: {e}"))
    }
}

/// `status`: the stable object `status --json` prints (documented in its `--help`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StatusReport {
    /// Whether a listener answered on the control socket.
    pub running: bool,
    /// The last transaction ID processed durably (a crash never goes back behind it).
    pub last_id: u64,
    /// The notifier's current ID; `null` when unknown.
    pub notifier_id: Option<u64>,
    /// `notifier_id - last_id`; `null` when the notifier ID is unknown.
    pub lag_ids: Option<u64>,
    /// Seconds between now and the change last applied while behind (0 when caught up);
    /// `null` when the listener is not running.
    pub lag_seconds: Option<f64>,
    /// Transactions per second since the listener started; `null` when not running.
    pub rate: Option<f64>,
    /// Seconds since the listener started; `null` when not running.
    pub uptime_seconds: Option<f64>,
    /// Seconds since `last_id` last moved; `null` when not running.
    pub seconds_since_progress: Option<f64>,
    /// The schema ID the cache holds.
    pub schema_id: u64,
    /// Objects in the cache.
    pub entries: u64,
    /// Why processing is halted by a blocking module, if it is.
    pub halted: Option<HaltReport>,
    /// The store of modules' shared variables and locks; `null` when not running or
    /// when no module is asynchronous.
    #[serde(default)]
    pub shared: Option<SharedReport>,
    /// Every module linked in, in call order.
    pub modules: Vec<ModuleStatus>,
}

/// The store of shared state in [`StatusReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SharedReport {
    /// `memcached at HOST:PORT` or `the embedded store`.
    pub backend: String,
    /// Its last error while it fails (calls that need it fail); `null` when it answers.
    pub error: Option<String>,
    /// Since when it fails (UTC).
    pub since: Option<String>,
}

/// A blocking module halting processing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct HaltReport {
    /// The transaction processing waits at.
    pub id: u64,
    /// The blocking module.
    pub module: String,
    /// Its last error.
    pub error: String,
    /// Since when (UTC).
    pub since: String,
}

/// One module in [`StatusReport`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ModuleStatus {
    /// The module's name.
    pub name: String,
    /// `NEW`, `INITIALIZING (<n> done)`, `READY` or `FAILED: <error>` (as `modules`).
    pub state: String,
    /// Its failed events.
    pub failed: u64,
    /// Cached objects it is registered on.
    pub registered: u64,
    /// An asynchronous module's queue and workers; `null` for the other modules.
    #[serde(default)]
    pub queue: Option<QueueReport>,
}

/// An asynchronous module's queue in [`ModuleStatus`]: from the cache when the listener
/// is not running (then only `depth`), else from its pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct QueueReport {
    /// Calls queued and not yet done (running ones included).
    pub depth: u64,
    /// Calls running in workers.
    pub in_flight: Option<u64>,
    /// Seconds since the oldest queued call was queued; `null` when none is.
    pub oldest_seconds: Option<f64>,
    /// Worker processes ready for calls.
    pub workers: Option<u64>,
    /// Worker processes started again after one ended.
    pub restarts: Option<u64>,
}

/// `dump --ids`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Ids {
    /// The last transaction ID processed durably.
    pub last_id: u64,
    /// The schema ID.
    pub schema_id: u64,
}

/// The cache's own consistency (its derived tables against its entries).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CheckReport {
    /// Cached objects.
    pub entries: u64,
    /// Inconsistencies, one sentence each.
    pub problems: Vec<String>,
    /// entryUUIDs several cached objects claim (stale entries, not damage).
    pub shared_uuids: Vec<(String, Vec<String>)>,
}

impl From<crate::listener::cache::VerifyReport> for CheckReport {
    fn from(r: crate::listener::cache::VerifyReport) -> Self {
        CheckReport {
            entries: r.entries,
            problems: r.problems,
            shared_uuids: r.shared_uuids,
        }
    }
}

/// A failed event as `failed list`/`show` print it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FailedView {
    /// The module.
    pub module: String,
    /// Its sequence number (the name `show`, `replay` and `drop` take).
    pub seq: u64,
    /// The transaction that carried the change (0: the module's initialization).
    pub transaction_id: u64,
    /// The object's DN.
    pub dn: String,
    /// Its entryUUID (empty when unknown).
    pub entry_uuid: String,
    /// The failed call's command letter.
    pub command: String,
    /// How often it was tried.
    pub attempts: u32,
    /// The module's last error.
    pub error: String,
    /// When it was given up on (UTC).
    pub time: String,
    /// The state before, as LDIF (`show` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<String>,
    /// The state after, as LDIF (`show` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new: Option<String>,
}

/// What `failed replay` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ReplayReport {
    /// Events the module took (removed from the store).
    pub delivered: u64,
    /// Events that failed again (kept, attempts updated).
    pub failed: u64,
    /// Events a later change made moot (removed, nothing called).
    pub superseded: u64,
    /// One line per event.
    pub details: Vec<String>,
}

/// The halt `failed skip` or `failed retry` acted on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct HeldChange {
    /// The held transaction.
    pub id: u64,
    /// The blocking module that failed it.
    pub module: String,
}

/// What `failed drop` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DropReport {
    /// Events deleted.
    pub dropped: u64,
}

/// One module re-initialized by `resync`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ResyncReport {
    /// The module.
    pub module: String,
    /// Objects it took.
    pub delivered: u64,
    /// Objects it failed (now failed events).
    pub failed: u64,
    /// For an asynchronous module: the queued calls it ran before (the queue is drained,
    /// never dropped).
    #[serde(default)]
    pub drained: Option<u64>,
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_query_parses_and_an_unknown_request_is_named() {
        assert_eq!(parse_query(r#"{"request":"status"}"#), Ok(Query::Status));
        assert!(
            parse_query(r#"{"request":"reboot"}"#)
                .unwrap_err()
                .contains("unknown")
        );
    }

    use super::*;

    #[test]
    fn requests_parse_from_json_lines() {
        assert_eq!(parse_query("{\"request\":\"dump\"}\n"), Ok(Query::Dump));
        assert_eq!(
            parse_query(r#"{"request":"failed_list"}"#),
            Ok(Query::FailedList { module: None })
        );
        assert_eq!(
            parse_query(r#"{"request":"failed_replay","module":"m","seq":3}"#),
            Ok(Query::FailedReplay {
                module: "m".into(),
                seq: Some(3)
            })
        );
        assert_eq!(
            parse_query(r#"{"request":"resync","modules":["a","b"]}"#),
            Ok(Query::Resync {
                modules: vec!["a".into(), "b".into()]
            })
        );
    }

    #[test]
    fn malformed_requests_get_a_reason() {
        for (line, says) in [
            ("", "empty request"),
            ("status", "malformed request"),
            (
                r#"{"request":"failed_show","module":"m"}"#,
                "missing field `seq`",
            ),
            (
                r#"{"request":"failed_show","module":"m","seq":-1}"#,
                "malformed",
            ),
            (
                r#"{"request":"failed_show","module":"m","seq":1,"x":1}"#,
                "unknown field",
            ),
            (r#"{"request":"reboot"}"#, "unknown variant"),
            ("[1,2", "malformed"),
        ] {
            let e = parse_query(line).unwrap_err();
            assert!(e.contains(says), "{line:?}: {e}");
        }
    }

    #[test]
    fn queries_round_trip() {
        let q = Query::FailedDrop {
            module: "m".into(),
            seq: None,
        };
        let line = serde_json::to_string(&q).unwrap();
        assert_eq!(line, r#"{"request":"failed_drop","module":"m","seq":null}"#);
        assert_eq!(parse_query(&line), Ok(q));
    }

    #[test]
    fn answers_are_one_line_and_carry_results_or_errors() {
        let line = Answer::ok(Ids {
            last_id: 7,
            schema_id: 2,
        })
        .to_line();
        assert_eq!(
            line,
            "{\"ok\":true,\"result\":{\"last_id\":7,\"schema_id\":2}}\n"
        );
        let answer: Answer = serde_json::from_str(&line).unwrap();
        assert_eq!(
            answer.into_result::<Ids>(),
            Ok(Ids {
                last_id: 7,
                schema_id: 2
            })
        );
        let line = Answer::error("no module named \"x\"\nsecond line").to_line();
        assert_eq!(line.matches('\n').count(), 1, "{line}");
        let answer: Answer = serde_json::from_str(&line).unwrap();
        assert_eq!(
            answer.into_result::<Ids>(),
            Err("no module named \"x\"\nsecond line".into())
        );
        assert_eq!(
            Answer::stream().to_line(),
            "{\"ok\":true,\"result\":null,\"stream\":true}\n"
        );
    }
}
