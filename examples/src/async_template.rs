//! UCS's asynchronous listener module template (Python), ported.
//!
//! Two deliberate differences from the UCS template: its `ldap_filter = ''` is not a valid RFC 4515
//! filter (UDL's matcher happened to let it through; we reject what we cannot evaluate),
//! so this module selects `(objectClass=inetOrgPerson)`; and its name
//! `'listener module template'` contains spaces, which module names may not (they name
//! the module's state and log), so it is `listener_module_template_async`.

use listener_runtime::prelude::*;

/// The asynchronous template: logs creates, moves and removals of people.
#[listener_module(
    name = "listener_module_template_async",
    description = "a listener module template",
    ldap_filter = "(objectClass=inetOrgPerson)",
    run_asynchronously
)]
#[derive(Default)]
pub struct AsyncListenerModuleTemplate;

impl AsyncHandler for AsyncListenerModuleTemplate {
    async fn create(&mut self, ctx: &mut Context, dn: &Dn, _new: &Entry) -> HandlerResult {
        ctx.logger().debug(format_args!("dn: {dn:?}"));
        Ok(())
    }

    async fn modify(
        &mut self,
        ctx: &mut Context,
        dn: &Dn,
        _old: &Entry,
        _new: &Entry,
        old_dn: Option<&Dn>,
    ) -> HandlerResult {
        ctx.logger()
            .debug(format_args!("dn: {dn:?} old_dn: {old_dn:?}"));
        if old_dn.is_some() {
            ctx.logger().info("it is (also) a move");
        }
        Ok(())
    }

    async fn remove(&mut self, ctx: &mut Context, dn: &Dn, _old: &Entry) -> HandlerResult {
        ctx.logger().debug(format_args!("dn: {dn:?}"));
        Ok(())
    }
}
