//! Logging: the format of stderr (human text or JSON lines) and which lines are logged,
//! with levels per listener module.
//!
//! `--log-level` (or `LISTENER_LOG`, else `RUST_LOG`) takes comma-separated directives:
//! a bare level (`info`, the default), `target=level` as in `RUST_LOG`
//! (`listener_runtime::listener::fetch=debug`, `listener_module=debug` for every
//! module's own lines), and `module=level` where `module` is the name of a listener module
//! linked into the binary (`printer=trace`). A module's level covers every line about
//! that module: what it logs through its context (inside its `module{module=…}` span,
//! see [`crate::api::context::Logger`]) and the runtime's lines carrying a `module` field
//! (each call at trace level, retries, failures). It decides alone for those lines, in
//! both directions: `debug,printer=warn` quiets `printer` while everything else logs
//! debug. Per-module log files (`run --log-dir`) follow the same directives.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;

use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context, Filter};
use tracing_subscriber::registry::LookupSpan;

use crate::ops::module_log::{event_module, is_module_span, note_module_span};

/// The format of log lines on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// Text (the default; reserved for choosing by where stderr goes).
    #[default]
    Auto,
    /// Human-readable lines, coloured on a terminal.
    Text,
    /// One JSON object per line (`timestamp`, `level`, `target`, `message` and the
    /// event's fields at the top level, `spans` with the enclosing spans' fields), for log
    /// collectors.
    Json,
}

/// A `--log-level` value that does not parse.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LogFilterError {
    /// A module directive with a level that is not one.
    #[error(
        "invalid log level {level:?} for module {module} in {directive:?}: use off, error, \
         warn, info, debug or trace"
    )]
    ModuleLevel {
        /// The whole directive.
        directive: String,
        /// The module it names.
        module: String,
        /// The level given.
        level: String,
    },
    /// A target directive `RUST_LOG` syntax rejects.
    #[error("invalid log directive in {directives:?}: {message}")]
    Directive {
        /// The directives handed to the target filter.
        directives: String,
        /// The parser's complaint.
        message: String,
    },
}

/// The filter of `--log-level`: levels per listener module on top of `RUST_LOG`-style
/// target directives (see the module documentation).
#[derive(Debug)]
pub(crate) struct LogFilter {
    targets: EnvFilter,
    modules: HashMap<String, LevelFilter>,
    /// The most verbose module level, if any module has one.
    loosest_module: Option<LevelFilter>,
}

impl LogFilter {
    /// Parses `directives`; a name in `modules` is a listener module, anything else a
    /// target. Without a bare level, other lines log at `info`.
    pub(crate) fn parse(directives: &str, modules: &[&str]) -> Result<LogFilter, LogFilterError> {
        let mut levels = HashMap::new();
        let mut targets = Vec::new();
        let mut has_default = false;
        for directive in directives.split(',').map(str::trim) {
            if directive.is_empty() {
                continue;
            }
            if directive.parse::<LevelFilter>().is_ok() {
                has_default = true;
                targets.push(directive);
                continue;
            }
            let (name, level) = match directive.split_once('=') {
                Some((name, level)) => (name.trim(), Some(level.trim())),
                None => (directive, None),
            };
            if !modules.contains(&name) {
                targets.push(directive);
                continue;
            }
            // As in `RUST_LOG`, a name without a level means everything.
            let level = match level {
                None => LevelFilter::TRACE,
                Some(level) => {
                    level
                        .parse::<LevelFilter>()
                        .map_err(|_| LogFilterError::ModuleLevel {
                            directive: directive.to_owned(),
                            module: name.to_owned(),
                            level: level.to_owned(),
                        })?
                }
            };
            levels.insert(name.to_owned(), level);
        }
        let mut target_directives = targets.join(",");
        if !has_default {
            target_directives = if target_directives.is_empty() {
                "info".to_owned()
            } else {
                format!("info,{target_directives}")
            };
        }
        let targets = EnvFilter::builder()
            .parse(&target_directives)
            .map_err(|e| LogFilterError::Directive {
                directives: target_directives.clone(),
                message: e.to_string(),
            })?;
        Ok(LogFilter {
            targets,
            loosest_module: levels.values().copied().max(),
            modules: levels,
        })
    }

    /// The level given for module `name`, if one was.
    pub(crate) fn module_level(&self, name: &str) -> Option<LevelFilter> {
        self.modules.get(name).copied()
    }

    /// Whether some module's level would let this event through. Lines about a module
    /// come from its logger or from the runtime, never from a dependency (`ldap3`,
    /// `redb`, …), whose trace lines are not even looked at because of `printer=trace`.
    fn a_module_may_want(&self, meta: &Metadata<'_>) -> bool {
        let target = meta.target();
        meta.is_event()
            && (target == crate::api::context::LOG_TARGET || target.starts_with("listener_runtime"))
            && self
                .loosest_module
                .is_some_and(|loosest| *meta.level() <= loosest)
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Filter<S> for LogFilter {
    fn enabled(&self, meta: &Metadata<'_>, cx: &Context<'_, S>) -> bool {
        // Module spans always exist, so that every line can be attributed to its module.
        is_module_span(meta)
            || self.a_module_may_want(meta)
            || Filter::<S>::enabled(&self.targets, meta, cx)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if is_module_span(meta) {
            return Interest::always();
        }
        let targets = Filter::<S>::callsite_enabled(&self.targets, meta);
        if meta.is_event() && !self.modules.is_empty() {
            // Whose line an event is shows only at run time (its span, its fields).
            if self.a_module_may_want(meta) || !targets.is_never() {
                return Interest::sometimes();
            }
        }
        targets
    }

    fn event_enabled(&self, event: &Event<'_>, cx: &Context<'_, S>) -> bool {
        if self.modules.is_empty() {
            return true;
        }
        let level = match event_module(event, cx).and_then(|m| self.module_level(&m)) {
            Some(level) => level,
            // `enabled` may have let it through for a module's sake: ask the targets.
            None => return Filter::<S>::enabled(&self.targets, event.metadata(), cx),
        };
        *event.metadata().level() <= level
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        // Module spans are at info and must not be skipped by the global level check.
        let targets = Filter::<S>::max_level_hint(&self.targets).unwrap_or(LevelFilter::TRACE);
        Some(
            targets
                .max(self.loosest_module.unwrap_or(LevelFilter::OFF))
                .max(LevelFilter::INFO),
        )
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        note_module_span(attrs, id, &ctx);
        Filter::<S>::on_new_span(&self.targets, attrs, id, ctx);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        Filter::<S>::on_record(&self.targets, id, values, ctx);
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        Filter::<S>::on_enter(&self.targets, id, ctx);
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        Filter::<S>::on_exit(&self.targets, id, ctx);
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        Filter::<S>::on_close(&self.targets, id, ctx);
    }
}

/// How to log: from the command line.
#[derive(Debug, Clone, Default)]
pub(crate) struct LogConfig {
    /// The stderr format.
    pub format: LogFormat,
    /// `--log-level` directives; `None`: `RUST_LOG`, else `info`.
    pub directives: Option<String>,
    /// Where per-module log files go (`run --log-dir`).
    pub module_logs: Option<PathBuf>,
}

/// Installs the global subscriber: stderr in `config.format`, plus the per-module files;
/// both filtered by the directives. A second call (a test calling `main` twice) keeps the
/// first subscriber.
pub(crate) fn init(config: &LogConfig, modules: &[&str]) -> Result<(), LogFilterError> {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let directives = match &config.directives {
        Some(directives) => {
            LogFilter::parse(directives, modules)?;
            directives.clone()
        }
        // RUST_LOG may be meant for another program: a bad one is no reason not to start.
        None => match std::env::var("RUST_LOG") {
            Ok(directives) => match LogFilter::parse(&directives, modules) {
                Ok(_) => directives,
                Err(e) => {
                    eprintln!("warning: ignoring RUST_LOG: {e}");
                    String::new()
                }
            },
            Err(_) => String::new(),
        },
    };
    let filter = || LogFilter::parse(&directives, modules);
    let stderr = match config.format {
        LogFormat::Auto | LogFormat::Text => {
            let colour = std::io::stderr().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(colour)
                .with_filter(filter()?)
                .boxed()
        }
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .with_writer(std::io::stderr)
            .with_filter(filter()?)
            .boxed(),
    };
    let files = match &config.module_logs {
        Some(dir) => {
            Some(crate::ops::module_log::ModuleFiles::new(dir.clone()).with_filter(filter()?))
        }
        None => None,
    };
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(files)
        .try_init();
    let _ = STARTED_WITH.set(LogConfig {
        format: config.format,
        directives: Some(directives),
        module_logs: config.module_logs.clone(),
    });
    Ok(())
}

/// How this process logs, for the worker processes it starts.
static STARTED_WITH: std::sync::OnceLock<LogConfig> = std::sync::OnceLock::new();

/// The command line that makes a worker process log as this process does: the global
/// options, then (after `worker`) its per-module log directory.
pub(crate) fn worker_args() -> (Vec<std::ffi::OsString>, Option<PathBuf>) {
    let Some(config) = STARTED_WITH.get() else {
        return (Vec::new(), None);
    };
    let mut args = Vec::new();
    if let Some(format) = clap::ValueEnum::to_possible_value(&config.format) {
        args.push("--log-format".into());
        args.push(format.get_name().into());
    }
    if let Some(directives) = config.directives.as_ref().filter(|d| !d.is_empty()) {
        args.push("--log-level".into());
        args.push(directives.into());
    }
    (args, config.module_logs.clone())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_module_level_parses_and_a_bad_level_is_an_error() {
        let filter = LogFilter::parse("warn,printer=debug,ldap3=info", &["printer"]).unwrap();
        assert_eq!(
            filter.module_level("printer"),
            Some(tracing::level_filters::LevelFilter::DEBUG)
        );
        assert!(LogFilter::parse("printer=loud", &["printer"]).is_err());
    }

    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;
    use crate::api::context::{Context, Logger};

    fn logger(module: &str) -> Logger {
        Context::new(module).logger().clone()
    }

    /// A writer collecting what a test subscriber logs.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn lines(&self) -> Vec<String> {
            let bytes = self.0.lock().unwrap().clone();
            String::from_utf8(bytes)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect()
        }
    }

    /// Runs `f` under a subscriber filtered by `directives`, returning the messages logged.
    fn logged(directives: &str, f: impl FnOnce()) -> Vec<String> {
        let out = Captured::default();
        let writer = out.clone();
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .without_time()
            .with_level(false)
            .with_target(false)
            .with_writer(move || writer.clone())
            .with_filter(LogFilter::parse(directives, &["printer", "other"]).unwrap());
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, f);
        out.lines()
    }

    fn log_everything() {
        let printer = logger("printer");
        let other = logger("other");
        printer.debug("printer debug");
        printer.info("printer info");
        other.debug("other debug");
        other.info("other info");
        tracing::trace!(module = "printer", "printer call");
        tracing::trace!(module = %"other", "other call");
        tracing::debug!("runtime debug");
        tracing::info!("runtime info");
    }

    fn messages(lines: &[String]) -> Vec<&str> {
        lines
            .iter()
            .map(|l| l.rsplit_once(": ").map_or(l.as_str(), |(_, m)| m).trim())
            .map(|m| m.split(" module=").next().unwrap_or(m))
            .collect()
    }

    #[test]
    fn the_default_is_info() {
        let lines = logged("", log_everything);
        assert_eq!(
            messages(&lines),
            ["printer info", "other info", "runtime info"]
        );
    }

    #[test]
    fn a_module_level_covers_its_lines_and_the_runtimes_lines_about_it() {
        let lines = logged("info,printer=trace", log_everything);
        assert_eq!(
            messages(&lines),
            [
                "printer debug",
                "printer info",
                "other info",
                "printer call",
                "runtime info"
            ]
        );
    }

    #[test]
    fn a_module_level_also_quiets() {
        let lines = logged("debug,printer=warn", log_everything);
        assert_eq!(
            messages(&lines),
            ["other debug", "other info", "runtime debug", "runtime info"]
        );
    }

    #[test]
    fn without_a_bare_level_the_rest_logs_at_info() {
        let lines = logged("other=debug", log_everything);
        assert_eq!(
            messages(&lines),
            ["printer info", "other debug", "other info", "runtime info"]
        );
    }

    #[test]
    fn target_directives_work_as_in_rust_log() {
        let lines = logged("warn,listener_module=debug", log_everything);
        assert_eq!(
            messages(&lines),
            ["printer debug", "printer info", "other debug", "other info"]
        );
        let lines = logged("warn,listener_module=debug,other=off", log_everything);
        assert_eq!(messages(&lines), ["printer debug", "printer info"]);
    }

    #[test]
    fn the_module_span_names_the_module_in_text() {
        let lines = logged("info", || logger("printer").info("hello"));
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].contains("module{module=\"printer\"}: hello"),
            "{lines:?}"
        );
    }

    #[test]
    fn bad_directives_are_errors_naming_them() {
        let e = LogFilter::parse("info,printer=loud", &["printer"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid log level \"loud\" for module printer in \"printer=loud\": use off, \
             error, warn, info, debug or trace"
        );
        let e = LogFilter::parse("info,a=b=c", &["printer"]).unwrap_err();
        assert!(
            e.to_string().starts_with("invalid log directive in "),
            "{e}"
        );
        assert_eq!(
            LogFilter::parse(" printer ", &["printer"])
                .unwrap()
                .module_level("printer"),
            Some(LevelFilter::TRACE)
        );
    }

    #[test]
    fn json_lines_parse_and_carry_the_module() {
        let out = Captured::default();
        let writer = out.clone();
        let layer = tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .with_writer(move || writer.clone())
            .with_filter(LogFilter::parse("info", &["printer"]).unwrap());
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            logger("printer").info("a \"quoted\" line");
            tracing::warn!(module = "printer", id = 7, "call failed");
        });
        let lines = out.lines();
        assert_eq!(lines.len(), 2, "{lines:?}");
        // Without a JSON parser in this crate: the fields as the formatter writes them.
        assert!(
            lines[0].contains(r#""message":"a \"quoted\" line""#),
            "{}",
            lines[0]
        );
        assert!(
            lines[0].contains(r#""spans":[{"module":"printer","name":"module"}]"#),
            "{}",
            lines[0]
        );
        assert!(lines[1].contains(r#""module":"printer""#), "{}", lines[1]);
        assert!(lines[1].contains(r#""id":7"#), "{}", lines[1]);
        assert!(lines[1].contains(r#""level":"WARN""#), "{}", lines[1]);
    }
}
