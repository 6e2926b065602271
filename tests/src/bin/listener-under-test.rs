//! The binary the integration tests run as separate processes: the runtime's command line
//! with the example modules linked in, plus `halting_on_demand`, a blocking module for
//! tests of halted processing.

use examples as _;
use listener_runtime::prelude::*;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A `blocking` module (like replication) that fails every create and modify of an
/// organizational role described as `halt`: processing then halts at that transaction
/// and retries it (semantics §5 rule 4) until the description changes. Kept out of the
/// examples: a module that stops the whole listener is no example to copy.
#[listener_module(
    name = "halting_on_demand",
    description = "blocking; fails on organizational roles with description=halt (tests of halted processing)",
    ldap_filter = "(&(objectClass=organizationalRole)(description=halt))",
    blocking
)]
#[derive(Default)]
pub struct HaltingOnDemand;

impl Handler for HaltingOnDemand {
    fn create(&mut self, _ctx: &mut Context, dn: &Dn, _new: &Entry) -> HandlerResult {
        Err(HandlerError::msg(format!(
            "{dn} asked to halt (description=halt)"
        )))
    }

    fn modify(
        &mut self,
        _ctx: &mut Context,
        dn: &Dn,
        _old: &Entry,
        _new: &Entry,
        _old_dn: Option<&Dn>,
    ) -> HandlerResult {
        Err(HandlerError::msg(format!(
            "{dn} asked to halt (description=halt)"
        )))
    }

    fn remove(&mut self, _ctx: &mut Context, _dn: &Dn, _old: &Entry) -> HandlerResult {
        Ok(())
    }
}

fn main() -> std::process::ExitCode {
    listener_runtime::main()
}

/// An asynchronous module that counts the creates of organizational roles described as
/// `count` in the shared variable `creates`, under the lock `counter` (tests of shared
/// state in a running listener, with and without `--memcached`).
#[listener_module(
    name = "counting_on_demand",
    description = "counts creates of organizational roles with description=count in a shared variable",
    ldap_filter = "(&(objectClass=organizationalRole)(description=count))",
    run_asynchronously,
    parallelism = 2
)]
#[derive(Default)]
pub struct CountingOnDemand;

impl AsyncHandler for CountingOnDemand {
    async fn create(&mut self, ctx: &mut Context, _dn: &Dn, _new: &Entry) -> HandlerResult {
        let guard = ctx.lock("counter").await?;
        let n: u64 = ctx.get_shared_var("creates").await?.unwrap_or(0);
        ctx.set_shared_var("creates", &(n + 1)).await?;
        guard.unlock().await?;
        Ok(())
    }
}

/// An asynchronous module with four workers for the tests of worker processes: each call
/// of an organizational role described as `slow` or `racy` waits 20 ms (the module's
/// "work"), then counts itself in the shared variable `calls` (for `slow` under the lock
/// `counter`; for `racy` without a lock, waiting 10 ms between reading and writing, so
/// that concurrent calls lose updates), and appends a JSON line with the worker's pid,
/// the object's entryUUID and `l` (its version), the call and its start and end (µs
/// since the epoch), and whether `ctx.search` finds the object (for creates and
/// modifies), to `async-calls.jsonl` beside the cache directory; `pre_run` and
/// `post_run` append a line with the pid too, and `clean` and `initialize` (30 ms each)
/// one with their start and end. A role described `crash` makes the worker
/// that calls it exit while it holds the lock `counter`.
#[listener_module(
    name = "recording_slowly",
    description = "waits 20 ms a call in four workers and records each call (tests of worker processes)",
    ldap_filter = "(&(objectClass=organizationalRole)(|(description=slow)(description=racy)(description=crash)))",
    run_asynchronously,
    parallelism = 4
)]
#[derive(Default)]
pub struct RecordingSlowly;

impl RecordingSlowly {
    async fn record(ctx: &Context, call: &str, dn: &Dn, entry: &Entry) -> HandlerResult {
        if entry.first_str("description") == Some("crash") {
            // A call that kills its worker, every time (without a core dump), holding the
            // lock the other calls need.
            let _guard = ctx.lock("counter").await?;
            std::process::exit(70);
        }
        let start = micros();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        if entry.first_str("description") == Some("racy") {
            let n: u64 = ctx.get_shared_var("calls").await?.unwrap_or(0);
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            ctx.set_shared_var("calls", &(n + 1)).await?;
        } else {
            let guard = ctx.lock("counter").await?;
            let n: u64 = ctx.get_shared_var("calls").await?.unwrap_or(0);
            ctx.set_shared_var("calls", &(n + 1)).await?;
            guard.unlock().await?;
        }
        // The worker's own LDAP connection: the object as LDAP has it now.
        let found = match call {
            "remove" => None,
            _ => Some(
                ctx.search(dn.as_str(), ldap3::Scope::Base, "(objectClass=*)")
                    .map_or(0, |entries| entries.len()),
            ),
        };
        Self::append(
            ctx,
            serde_json::json!({
                "pid": std::process::id(),
                "found": found,
                "call": call,
                "dn": dn.to_string(),
                "uuid": entry.first_str("entryUUID"),
                "version": entry.first_str("l"),
                "start": start,
                "end": micros(),
            }),
        )
    }

    fn append(ctx: &Context, line: serde_json::Value) -> HandlerResult {
        let Some(dir) = ctx.settings().and_then(|s| s.cache_dir.parent()) else {
            return Err(HandlerError::msg("no cache directory in the settings"));
        };
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("async-calls.jsonl"))?;
        std::io::Write::write_all(&mut file, format!("{line}\n").as_bytes())?;
        Ok(())
    }

    fn lifecycle(ctx: &Context, call: &str, start: u128) -> HandlerResult {
        Self::append(
            ctx,
            serde_json::json!({"pid": std::process::id(), "call": call, "start": start, "end": micros()}),
        )
    }
}

fn micros() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros())
}

impl AsyncHandler for RecordingSlowly {
    async fn create(&mut self, ctx: &mut Context, dn: &Dn, new: &Entry) -> HandlerResult {
        Self::record(ctx, "create", dn, new).await
    }

    async fn modify(
        &mut self,
        ctx: &mut Context,
        dn: &Dn,
        _old: &Entry,
        new: &Entry,
        _old_dn: Option<&Dn>,
    ) -> HandlerResult {
        Self::record(ctx, "modify", dn, new).await
    }

    async fn remove(&mut self, ctx: &mut Context, dn: &Dn, old: &Entry) -> HandlerResult {
        Self::record(ctx, "remove", dn, old).await
    }

    async fn pre_run(&mut self, ctx: &mut Context) -> HandlerResult {
        Self::lifecycle(ctx, "pre_run", micros())
    }

    async fn post_run(&mut self, ctx: &mut Context) -> HandlerResult {
        Self::lifecycle(ctx, "post_run", micros())
    }

    async fn clean(&mut self, ctx: &mut Context) -> HandlerResult {
        let start = micros();
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        Self::lifecycle(ctx, "clean_run", start)
    }

    async fn initialize(&mut self, ctx: &mut Context) -> HandlerResult {
        let start = micros();
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        Self::lifecycle(ctx, "initialize_run", start)
    }
}
