//! Per-module log files, as UCS administrators know them: every line a module logs through
//! its context (inside its `module{module=…}` span) is also appended to
//! `<log-dir>/<module>.log`.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// The `tracing` layer writing module lines to their files.
pub(crate) struct ModuleFiles {
    dir: PathBuf,
    files: Mutex<HashMap<String, File>>,
}

impl ModuleFiles {
    /// Writes to files in `dir` (created when needed).
    pub(crate) fn new(dir: PathBuf) -> ModuleFiles {
        ModuleFiles {
            dir,
            files: Mutex::new(HashMap::new()),
        }
    }

    fn write(&self, module: &str, line: &str) {
        let Ok(mut files) = self.files.lock() else {
            return;
        };
        if !files.contains_key(module) {
            // A module name is `[A-Za-z0-9,._-]` (checked at compile time), so it is a
            // safe file name.
            let opened = std::fs::create_dir_all(&self.dir).and_then(|()| {
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.join(format!("{module}.log")))
            });
            match opened {
                Ok(file) => {
                    files.insert(module.to_owned(), file);
                }
                // Logging must not stop the listener; stderr still has the line.
                Err(_) => return,
            }
        }
        if let Some(file) = files.get_mut(module) {
            let _ = file.write_all(line.as_bytes());
        }
    }
}

/// The name of the module a span belongs to, noted on the span when it is created so that
/// the filters and [`ModuleFiles`] can tell whose line an event is.
pub(crate) struct ModuleName(pub(crate) String);

/// Whether `meta` is a module's span: [`crate::api::context::Logger`] logs every line of the
/// module inside it.
pub(crate) fn is_module_span(meta: &tracing::Metadata<'_>) -> bool {
    meta.is_span() && meta.target() == crate::api::context::LOG_TARGET && meta.name() == "module"
}

/// Notes the module's name on a module span (once, whichever layer or filter comes first).
pub(crate) fn note_module_span<S>(attrs: &Attributes<'_>, id: &Id, ctx: &Context<'_, S>)
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    if !is_module_span(attrs.metadata()) {
        return;
    }
    let Some(span) = ctx.span(id) else {
        return;
    };
    let mut extensions = span.extensions_mut();
    if extensions.get_mut::<ModuleName>().is_some() {
        return;
    }
    let mut field = ModuleField::default();
    attrs.record(&mut field);
    if let Some(name) = field.0 {
        extensions.replace(ModuleName(name));
    }
}

/// The module whose span `event` is logged in, if any: the module's own lines.
pub(crate) fn span_module<S>(event: &Event<'_>, ctx: &Context<'_, S>) -> Option<String>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    ctx.event_scope(event)?
        .find_map(|span| span.extensions().get::<ModuleName>().map(|m| m.0.clone()))
}

/// The module `event` is about: its `module` field (the runtime's lines about a module,
/// such as each call at trace level or a failed call), or else the module span it is
/// logged in.
pub(crate) fn event_module<S>(event: &Event<'_>, ctx: &Context<'_, S>) -> Option<String>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let mut field = ModuleField::default();
    event.record(&mut field);
    field.0.or_else(|| span_module(event, ctx))
}

/// Picks the `module` field out of a span's or an event's fields.
#[derive(Default)]
struct ModuleField(Option<String>);

impl Visit for ModuleField {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == MODULE_FIELD {
            self.0 = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == MODULE_FIELD {
            // `module = %name` records a Display wrapper (no quotes), `?name` a quoted str.
            self.0 = Some(format!("{value:?}").trim_matches('"').to_owned());
        }
    }
}

/// The field naming a module, on its span and on the runtime's events about it.
pub(crate) const MODULE_FIELD: &str = "module";

/// An event's message and its other fields as ` key=value`.
#[derive(Default)]
struct Fields {
    message: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message.push_str(value),
            other => {
                let _ =
                    std::fmt::Write::write_fmt(&mut self.message, format_args!(" {other}={value}"));
            }
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => {
                let _ = std::fmt::Write::write_fmt(&mut self.message, format_args!("{value:?}"));
            }
            other => {
                let _ = std::fmt::Write::write_fmt(
                    &mut self.message,
                    format_args!(" {other}={value:?}"),
                );
            }
        }
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for ModuleFiles {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        note_module_span(attrs, id, &ctx);
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(module) = span_module(event, &ctx) else {
            return;
        };
        let mut fields = Fields::default();
        event.record(&mut fields);
        let line = format!(
            "{} {:>5} {}\n",
            crate::utc::now(),
            event.metadata().level(),
            fields.message
        );
        self.write(&module, &line);
    }
}
