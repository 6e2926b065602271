//! The progress of a module's initialization, on a terminal or in the log.

/// A module initialization's progress: a counter on a terminal, a log line every
/// [`Progress::LOG_EVERY`] objects otherwise (journals and files get no bar noise). The
/// total is not known: the objects are delivered while the search runs.
pub(crate) struct Progress {
    name: &'static str,
    bar: Option<indicatif::ProgressBar>,
    logged: u64,
}

impl Progress {
    const LOG_EVERY: u64 = 10_000;

    pub(crate) fn new(name: &'static str) -> Progress {
        use std::io::IsTerminal;
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            if let Ok(style) =
                indicatif::ProgressStyle::with_template("{spinner} {msg}: {pos} objects, {per_sec}")
            {
                bar.set_style(style);
            }
            bar.set_message(format!("initializing {name}"));
            bar
        });
        Progress {
            name,
            bar,
            logged: 0,
        }
    }

    pub(crate) fn update(&mut self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
            return;
        }
        if done / Self::LOG_EVERY > self.logged / Self::LOG_EVERY {
            self.logged = done;
            tracing::info!(module = self.name, done, "initializing");
        }
    }

    pub(crate) fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
