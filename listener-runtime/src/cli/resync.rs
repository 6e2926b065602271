//! `resync`: re-initialize modules (semantics §6) — now, in the running listener, or at
//! its next start when it is not running.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::common::fail;
use crate::api::registry::ModuleRegistration;
use crate::listener::control::Client;
use crate::listener::control::protocol::{Query, ResyncReport};

/// `resync`: re-initialize modules.
#[derive(Debug, Args)]
pub(super) struct ResyncArgs {
    /// The listener's cache directory.
    #[arg(long, env = "LISTENER_CACHE_DIR")]
    cache_dir: PathBuf,
    /// The modules to re-initialize.
    #[arg(required = true)]
    modules: Vec<String>,
}

pub(super) fn run_resync(args: ResyncArgs, modules: &[&'static ModuleRegistration]) -> ExitCode {
    if let Some(unknown) = args
        .modules
        .iter()
        .find(|name| !modules.iter().any(|m| m.name == name.as_str()))
    {
        let known: Vec<&str> = modules.iter().map(|m| m.name).collect();
        return fail(&format!(
            "no module named {unknown:?} in this binary (it has: {})",
            known.join(", ")
        ));
    }
    if let Some(mut client) = Client::connect(&args.cache_dir) {
        let reports: Result<Vec<ResyncReport>, String> = client.call(&Query::Resync {
            modules: args.modules.clone(),
        });
        return match reports {
            Ok(reports) => {
                for r in reports {
                    let drained = match r.drained {
                        Some(n) if n > 0 => format!(" (its {n} queued calls were run first)"),
                        _ => String::new(),
                    };
                    println!(
                        "{} re-initialized: {} objects delivered, {} failed{drained}",
                        r.module, r.delivered, r.failed
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        };
    }
    let result = (|| {
        let cache = crate::listener::cache::Cache::open(&args.cache_dir)?;
        let mut w = cache.write()?;
        let mut queued = Vec::new();
        for name in &args.modules {
            w.remove_module_state(name)?;
            queued.push((name, w.queue_len(name)?));
        }
        w.commit()?;
        Ok::<_, crate::listener::cache::CacheError>(queued)
    })();
    match result {
        Ok(queued) => {
            println!(
                "{} will be initialized again when the listener starts",
                args.modules.join(", ")
            );
            for (name, n) in queued.into_iter().filter(|(_, n)| *n > 0) {
                println!("{name}: its {n} queued calls run first, then it is initialized");
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e.to_string()),
    }
}
