use listener_runtime::prelude::*;

#[listener_module(
    name = "listener_module_template_async",
    description = "a listener module template",
    ldap_filter = "(objectClass=inetOrgPerson)",
    run_asynchronously,
    parallelism = 4,
    priority = -1,
)]
#[derive(Default)]
pub struct AsyncTemplate {
    seen: usize,
}

impl AsyncHandler for AsyncTemplate {
    async fn create(&mut self, ctx: &mut Context, dn: &Dn, _new: &Entry) -> HandlerResult {
        self.seen += 1;
        ctx.logger().debug(format_args!("dn: {dn:?}"));
        Ok(())
    }

    async fn modify(
        &mut self,
        ctx: &mut Context,
        _dn: &Dn,
        _old: &Entry,
        _new: &Entry,
        old_dn: Option<&Dn>,
    ) -> HandlerResult {
        if old_dn.is_some() {
            ctx.logger().info("it is (also) a move");
        }
        Ok(())
    }
}

fn main() {
    let modules = listener_runtime::registered_modules();
    assert_eq!(modules[0].kind, listener_runtime::ApiKind::Async);
    assert_eq!(modules[0].workers(), Some(4));
    assert_eq!(modules[0].priority, -1.0);
}
