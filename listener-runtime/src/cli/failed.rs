//! `failed`: the changes modules could not take (semantics §5 rule 4): list them, show
//! one in full, replay them through the running listener, or drop them.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::common::fail;
use super::table;
use crate::api::registry::ModuleRegistration;
use crate::listener::cache::Cache;
use crate::listener::control::protocol::{DropReport, FailedView, HeldChange, Query, ReplayReport};
use crate::listener::control::{Client, actions, report};

/// How replay works, for `failed --help`.
pub(super) const HELP: &str = "\
Replay delivers the object's CURRENT cached state, not the recorded one (which later
transactions may have overtaken): if the object is cached and matches the module's
filter, the module gets it as a new object (create; classic `a`) and is registered on
it when the call succeeds; if the event removed the object from the module's view (a
delete, or the first half of a move) and the object is gone or outside the filter, the
module gets that remove with the recorded old state; otherwise the event is superseded
and dropped (the listener logs it). An event that fails again stays, its attempts
counted up. Replay runs in the running listener, between transactions, so the module
is called exactly as for a change; with the listener stopped it is refused: start the
listener, then replay. list, show and drop work either way.";

/// `failed`: list, show, replay or drop failed events.
#[derive(Debug, Args)]
pub(super) struct FailedArgs {
    /// The listener's cache directory.
    #[arg(long, env = "LISTENER_CACHE_DIR")]
    cache_dir: PathBuf,
    #[command(subcommand)]
    action: Option<FailedAction>,
}

#[derive(Debug, Subcommand)]
enum FailedAction {
    /// Failed events per module (the default): sequence number, transaction, command,
    /// attempts, time, DN and error, then the count per module.
    List {
        /// Only this module's.
        module: Option<String>,
        /// Print a JSON array instead.
        #[arg(long)]
        json: bool,
    },
    /// One failed event in full, old and new state as LDIF (all of the module's without
    /// SEQ).
    Show {
        /// The module.
        module: String,
        /// The event's sequence number (from `list`).
        seq: Option<u64>,
    },
    /// Deliver the module's failed events again (see below), through the running
    /// listener.
    Replay {
        /// The module.
        module: String,
        /// Only this event.
        seq: Option<u64>,
    },
    /// Delete the module's failed events (or one) without delivering them.
    Drop {
        /// The module.
        module: String,
        /// Only this event.
        seq: Option<u64>,
    },
    /// Processing is halted by a blocking module (`status` says `halted`): record the
    /// held change as that module's failed event (to `replay` later) and go on.
    Skip,
    /// Processing is halted: try the held change again now, without waiting for the
    /// next retry.
    Retry,
}

pub(super) fn run_failed(
    mut args: FailedArgs,
    modules: &[&'static ModuleRegistration],
) -> ExitCode {
    let action = args.action.take().unwrap_or(FailedAction::List {
        module: None,
        json: false,
    });
    let module = match &action {
        FailedAction::List { module, .. } => module.as_deref(),
        FailedAction::Show { module, .. }
        | FailedAction::Replay { module, .. }
        | FailedAction::Drop { module, .. } => Some(module.as_str()),
        FailedAction::Skip | FailedAction::Retry => None,
    };
    if let Some(name) = module
        && !modules.iter().any(|m| m.name == name)
    {
        let known: Vec<&str> = modules.iter().map(|m| m.name).collect();
        return fail(&format!(
            "no module named {name:?} in this binary (it has: {})",
            known.join(", ")
        ));
    }
    let client = Client::connect(&args.cache_dir);
    let result = match action {
        FailedAction::List { module, json } => {
            list(client, &args, modules, module).map(|views| print_list(&views, json))
        }
        FailedAction::Show { module, seq } => show(client, &args, modules, &module, seq),
        FailedAction::Replay { module, seq } => replay(client, &module, seq),
        FailedAction::Drop { module, seq } => drop_events(client, &args, &module, seq),
        FailedAction::Skip => act_on_halt(client, true),
        FailedAction::Retry => act_on_halt(client, false),
    };
    match result {
        Ok(code) => code,
        Err(e) => fail(&e),
    }
}

fn open(args: &FailedArgs) -> Result<crate::listener::cache::ReadOnlyCache, String> {
    Cache::open_read_only(&args.cache_dir)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("there is no listener cache in {}", args.cache_dir.display()))
}

fn list(
    client: Option<Client>,
    args: &FailedArgs,
    modules: &[&'static ModuleRegistration],
    module: Option<String>,
) -> Result<Vec<FailedView>, String> {
    match client {
        Some(mut client) => client.call(&Query::FailedList { module }),
        None => {
            let cache = open(args)?;
            let r = cache.read().map_err(|e| e.to_string())?;
            report::failed_list(modules, &r, module.as_deref()).map_err(|e| e.to_string())
        }
    }
}

fn print_list(views: &[FailedView], json: bool) -> ExitCode {
    if json {
        println!("{}", serde_json::to_string(views).unwrap_or_default());
        return ExitCode::SUCCESS;
    }
    if views.is_empty() {
        println!("no failed events");
        return ExitCode::SUCCESS;
    }
    let rows: Vec<Vec<String>> = views
        .iter()
        .map(|v| {
            vec![
                v.module.clone(),
                v.seq.to_string(),
                v.transaction_id.to_string(),
                v.command.clone(),
                v.attempts.to_string(),
                v.time.clone(),
                v.dn.clone(),
                v.error.replace('\n', " "),
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(
            &[
                "MODULE",
                "SEQ",
                "TRANSACTION",
                "COMMAND",
                "ATTEMPTS",
                "TIME",
                "DN",
                "ERROR"
            ],
            &rows
        )
    );
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for v in views {
        match counts.iter_mut().find(|(m, _)| *m == v.module) {
            Some((_, n)) => *n += 1,
            None => counts.push((&v.module, 1)),
        }
    }
    println!();
    for (module, n) in counts {
        println!(
            "{module}: {n} failed event{}",
            if n == 1 { "" } else { "s" }
        );
    }
    ExitCode::SUCCESS
}

fn show(
    client: Option<Client>,
    args: &FailedArgs,
    modules: &[&'static ModuleRegistration],
    module: &str,
    seq: Option<u64>,
) -> Result<ExitCode, String> {
    let views: Vec<FailedView> = match (client, seq) {
        (Some(mut client), Some(seq)) => vec![client.call(&Query::FailedShow {
            module: module.to_owned(),
            seq,
        })?],
        (Some(mut client), None) => {
            let listed: Vec<FailedView> = client.call(&Query::FailedList {
                module: Some(module.to_owned()),
            })?;
            let mut full = Vec::new();
            for v in listed {
                // A new connection per request; the first one is used up.
                let mut client =
                    Client::connect(&args.cache_dir).ok_or("the listener stopped answering")?;
                full.push(client.call(&Query::FailedShow {
                    module: module.to_owned(),
                    seq: v.seq,
                })?);
            }
            full
        }
        (None, seq) => {
            let cache = open(args)?;
            let r = cache.read().map_err(|e| e.to_string())?;
            let _ = modules;
            let events = r.failed_events(module).map_err(|e| e.to_string())?;
            events
                .iter()
                .filter(|(s, _)| seq.is_none_or(|want| *s == want))
                .map(|(s, e)| report::failed_view(module, *s, e, true))
                .collect()
        }
    };
    if let (Some(seq), true) = (seq, views.is_empty()) {
        return Err(format!("module {module} has no failed event #{seq}"));
    }
    for v in &views {
        print!("{}", show_text(v));
    }
    Ok(ExitCode::SUCCESS)
}

/// One event in full: the fields, then old and new as LDIF.
fn show_text(v: &FailedView) -> String {
    let mut out = format!(
        "module:      {}\nsequence:    {}\ntransaction: {}\ncommand:     {}\ndn:          {}\n\
         entryUUID:   {}\nattempts:    {}\ntime:        {}\nerror:       {}\n",
        v.module,
        v.seq,
        v.transaction_id,
        v.command,
        v.dn,
        if v.entry_uuid.is_empty() {
            "-"
        } else {
            &v.entry_uuid
        },
        v.attempts,
        v.time,
        v.error
    );
    for (label, ldif) in [("old", &v.old), ("new", &v.new)] {
        match ldif {
            Some(ldif) => out.push_str(&format!("{label}:\n{ldif}")),
            None => out.push_str(&format!("{label}:         (none)\n\n")),
        }
    }
    out
}

fn replay(client: Option<Client>, module: &str, seq: Option<u64>) -> Result<ExitCode, String> {
    let Some(mut client) = client else {
        return Err(format!(
            "the listener is not running: failed events are replayed by the running \
             listener, between transactions, so {module} is called exactly as for a \
             change; start the listener (`run`) and run `failed replay {module}` again"
        ));
    };
    let report: ReplayReport = client.call(&Query::FailedReplay {
        module: module.to_owned(),
        seq,
    })?;
    for line in &report.details {
        println!("{line}");
    }
    println!(
        "{} delivered, {} failed again, {} superseded",
        report.delivered, report.failed, report.superseded
    );
    Ok(if report.failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `failed skip` (`skip`) or `failed retry`.
fn act_on_halt(client: Option<Client>, skip: bool) -> Result<ExitCode, String> {
    let Some(mut client) = client else {
        return Err(
            "the listener is not running: a held change is skipped or retried by the \
                    running listener"
                .into(),
        );
    };
    let query = if skip {
        Query::HaltSkip
    } else {
        Query::HaltRetry
    };
    let halt: HeldChange = client.call(&query)?;
    if skip {
        println!(
            "transaction {}: the change {} failed goes to its failed events; processing goes on",
            halt.id, halt.module
        );
    } else {
        println!(
            "transaction {}: {} is called again now",
            halt.id, halt.module
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn drop_events(
    client: Option<Client>,
    args: &FailedArgs,
    module: &str,
    seq: Option<u64>,
) -> Result<ExitCode, String> {
    let dropped = match client {
        Some(mut client) => {
            client
                .call::<DropReport>(&Query::FailedDrop {
                    module: module.to_owned(),
                    seq,
                })?
                .dropped
        }
        None => {
            drop(open(args)?); // no cache there: do not create one
            let cache = Cache::open(&args.cache_dir).map_err(|e| e.to_string())?;
            actions::drop_events(&cache, module, seq).map_err(|e| e.to_string())?
        }
    };
    if let (Some(seq), 0) = (seq, dropped) {
        return Err(format!("module {module} has no failed event #{seq}"));
    }
    println!(
        "dropped {dropped} failed event{} of {module}",
        if dropped == 1 { "" } else { "s" }
    );
    Ok(ExitCode::SUCCESS)
}
