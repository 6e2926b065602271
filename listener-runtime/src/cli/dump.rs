//! `dump`: the listener cache as LDIF, like UCS's `univention-directory-listener-dump`
//! (each entry followed by a `listenerModule: <name>` line per module registered on it),
//! or with `--ids` the cache's `<notifier_id> <schema_id>`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::common::fail;
use crate::listener::cache::Cache;
use crate::listener::control::Client;
use crate::listener::control::protocol::{Ids, Query};
use crate::listener::control::report;

/// `dump`: the cache as LDIF.
#[derive(Debug, Args)]
pub(super) struct DumpArgs {
    /// The listener's cache directory (a running listener is asked over its control
    /// socket; otherwise the cache is read directly).
    #[arg(long, env = "LISTENER_CACHE_DIR")]
    cache_dir: PathBuf,
    /// Print only `<notifier_id> <schema_id>`: the last transaction ID processed
    /// (durably) and the schema ID.
    #[arg(long, short = 'i')]
    ids: bool,
}

pub(super) fn run_dump(args: DumpArgs) -> ExitCode {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let result = match (Client::connect(&args.cache_dir), args.ids) {
        (Some(mut client), true) => client
            .call::<Ids>(&Query::Ids)
            .and_then(|ids| print_ids(&mut out, ids)),
        (Some(mut client), false) => client.dump(&mut out),
        (None, ids) => from_cache(&args, ids, &mut out),
    };
    match result.and_then(|()| out.flush().map_err(|e| e.to_string())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn print_ids(out: &mut impl Write, ids: Ids) -> Result<(), String> {
    writeln!(out, "{} {}", ids.last_id, ids.schema_id).map_err(|e| e.to_string())
}

fn from_cache(args: &DumpArgs, ids: bool, out: &mut impl Write) -> Result<(), String> {
    let cache = Cache::open_read_only(&args.cache_dir)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("there is no listener cache in {}", args.cache_dir.display()))?;
    let r = cache.read().map_err(|e| e.to_string())?;
    if ids {
        return print_ids(out, report::ids(&r).map_err(|e| e.to_string())?);
    }
    report::write_dump(&r, |chunk| {
        out.write_all(chunk.as_bytes())
            .map_err(|e| Message(e.to_string()))
    })
    .map_err(|Message(e)| e)
}

/// An error as text, for [`report::write_dump`]'s sink.
struct Message(String);

impl From<crate::listener::cache::CacheError> for Message {
    fn from(e: crate::listener::cache::CacheError) -> Self {
        Message(e.to_string())
    }
}
