//! Per-module log files, as UCS administrators know them: every line a module logs through
//! its context (inside its `module{name=…}` span) is also appended to
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
pub struct ModuleFiles {
    dir: PathBuf,
    files: Mutex<HashMap<String, File>>,
}

impl ModuleFiles {
    /// Writes to files in `dir` (created when needed).
    pub fn new(dir: PathBuf) -> ModuleFiles {
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

/// The module name stored on its span.
struct ModuleName(String);

#[derive(Default)]
struct Fields {
    name: Option<String>,
    message: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "name" => self.name = Some(value.to_owned()),
            "message" => self.message.push_str(value),
            other => {
                let _ =
                    std::fmt::Write::write_fmt(&mut self.message, format_args!(" {other}={value}"));
            }
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "name" => self.name = Some(format!("{value:?}").trim_matches('"').to_owned()),
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
        if attrs.metadata().target() != crate::context::LOG_TARGET
            || attrs.metadata().name() != "module"
        {
            return;
        }
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let (Some(name), Some(span)) = (fields.name, ctx.span(id)) {
            span.extensions_mut().insert(ModuleName(name));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        let Some(module) = scope
            .from_root()
            .find_map(|span| span.extensions().get::<ModuleName>().map(|m| m.0.clone()))
        else {
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
