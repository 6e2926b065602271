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
