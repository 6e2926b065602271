use listener_runtime::prelude::*;

#[listener_module(
    name = "unique_name",
    description = "listener module description",
    ldap_filter = "(&(objectClass=inetOrgPerson)(uid=example))",
    attributes = ["sn", "givenName"],
    priority = 10.0,
    handle_every_delete,
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
        ctx.logger().debug(format_args!("dn: {dn:?} old_dn: {old_dn:?}"));
        ctx.logger().debug(format_args!("changed attributes: {:?}", ctx.diff(old, new)));
        Ok(())
    }

    fn remove(&mut self, ctx: &mut Context, dn: &Dn, _old: &Entry) -> HandlerResult {
        std::fs::metadata("/")?;
        ctx.logger().debug(format_args!("dn: {dn:?}"));
        Ok(())
    }
}

fn main() {
    let modules = listener_runtime::registered_modules();
    assert_eq!(modules.len(), 1);
    assert_eq!(modules[0].name, "unique_name");
    assert_eq!(modules[0].priority, 10.0);
    assert!(modules[0].handle_every_delete);
}
