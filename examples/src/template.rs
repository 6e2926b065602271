//! UCS's `listener_module_template.py` (the new API), ported.

use listener_runtime::prelude::*;

/// Logs every change of `uid=example` people at debug level, and which attributes a
/// modification changed.
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
