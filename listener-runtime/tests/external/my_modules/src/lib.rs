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
/// to (worker processes are not built yet: the listener awaits its calls inline).
#[listener_module(name = "crm_sync", description = "counts creates under a lock",
                  ldap_filter = "(objectClass=inetOrgPerson)",
                  run_asynchronously, parallelism = 4)]
#[derive(Default)]
pub struct CrmSync;

impl AsyncHandler for CrmSync {
    async fn create(&mut self, ctx: &mut Context, _dn: &Dn, _new: &Entry) -> HandlerResult {
        let guard = ctx.lock("crm-token").await?; // released on drop, or guard.unlock().await
        let n: u64 = ctx.get_shared_var("calls").await?.unwrap_or(0);
        ctx.set_shared_var("calls", &(n + 1)).await?; // any serde Serialize + DeserializeOwned
        drop(guard);
        Ok(())
    }
}
