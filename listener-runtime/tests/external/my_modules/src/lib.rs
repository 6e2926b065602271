//! UCS's listener module template, written the way docs/architecture.md shows it.

use listener_runtime::prelude::*;

#[listener_module(
    name = "unique_name",
    description = "listener module description",
    ldap_filter = "(&(objectClass=inetOrgPerson)(uid=example))",
    attributes = ["sn", "givenName"],
)]
#[derive(Default)]
pub struct ListenerModuleTemplate;

impl Handler for ListenerModuleTemplate {
    fn create(&mut self, ctx: &mut Context, dn: &Dn, _new: &Entry) -> HandlerResult {
        ctx.logger().debug(format_args!("dn: {dn:?}"));
        Ok(())
    }

    fn modify(
        &mut self,
        ctx: &mut Context,
        dn: &Dn,
        old: &Entry,
        new: &Entry,
        old_dn: Option<&Dn>,
    ) -> HandlerResult {
        ctx.logger().debug(format_args!("dn: {dn:?}"));
        if let Some(old_dn) = old_dn {
            ctx.logger()
                .debug(format_args!("it is (also) a move! old_dn: {old_dn:?}"));
        }
        ctx.logger()
            .debug(format_args!("changed attributes: {:?}", ctx.diff(old, new)));
        Ok(())
    }

    fn remove(&mut self, ctx: &mut Context, dn: &Dn, _old: &Entry) -> HandlerResult {
        ctx.logger().debug(format_args!("dn: {dn:?}"));
        Ok(())
    }
}

/// An asynchronous module with shared state, written exactly as module authors are told
/// to. Its calls run in four worker processes. Each call also waits 10 ms (its "remote
/// service") and appends a line with its worker's pid, the object's entryUUID and
/// version (`description`), and its start and end (µs) to `crm-calls.txt` beside the
/// cache directory, so that a test can see where, when and in which order it ran.
#[listener_module(name = "crm_sync", description = "counts creates under a lock",
                  ldap_filter = "(objectClass=inetOrgPerson)",
                  run_asynchronously, parallelism = 4)]
#[derive(Default)]
pub struct CrmSync;

impl AsyncHandler for CrmSync {
    async fn create(&mut self, ctx: &mut Context, _dn: &Dn, new: &Entry) -> HandlerResult {
        let start = micros();
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        let guard = ctx.lock("crm-token").await?; // released on drop, or guard.unlock().await
        let n: u64 = ctx.get_shared_var("calls").await?.unwrap_or(0);
        ctx.set_shared_var("calls", &(n + 1)).await?; // any serde Serialize + DeserializeOwned
        drop(guard);
        record(ctx, new, start)
    }

    async fn modify(
        &mut self,
        ctx: &mut Context,
        _dn: &Dn,
        _old: &Entry,
        new: &Entry,
        _old_dn: Option<&Dn>,
    ) -> HandlerResult {
        let start = micros();
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        let guard = ctx.lock("crm-token").await?;
        let n: u64 = ctx.get_shared_var("calls").await?.unwrap_or(0);
        ctx.set_shared_var("calls", &(n + 1)).await?;
        guard.unlock().await?;
        record(ctx, new, start)
    }
}

fn micros() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros())
}

fn record(ctx: &Context, entry: &Entry, start: u128) -> HandlerResult {
    let Some(dir) = ctx.settings().and_then(|s| s.cache_dir.parent()) else {
        return Ok(());
    };
    let line = format!(
        "{} {} {} {start} {}\n",
        std::process::id(),
        entry.first_str("entryUUID").unwrap_or("-"),
        entry.first_str("description").unwrap_or("-"),
        micros()
    );
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("crm-calls.txt"))?;
    std::io::Write::write_all(&mut file, line.as_bytes())?;
    Ok(())
}
