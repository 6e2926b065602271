//! A new-API module that fails on request, to show (and test) what happens to a change a
//! module cannot take (semantics §5 rule 4): the runtime calls the module's
//! `error_handler`, retries, and finally records the change in the module's failed-events
//! store (`failed list`), leaving the module unregistered on the object so its next
//! change arrives as a create.
//!
//! It selects the organizational roles whose `description` is `fail`; every create and
//! modify of one fails. Its `error_handler` logs and declines (returns the error), as the
//! UCS template's default re-raise does; returning `Ok(())` there would count the change as
//! delivered.

use listener_runtime::prelude::*;

/// Fails every create and modify of an organizational role described as `fail`.
#[listener_module(
    name = "failing_on_demand",
    description = "fails on organizational roles with description=fail (an example of failed events)",
    ldap_filter = "(&(objectClass=organizationalRole)(description=fail))"
)]
#[derive(Default)]
pub struct FailingOnDemand;

impl Handler for FailingOnDemand {
    fn create(&mut self, ctx: &mut Context, dn: &Dn, _new: &Entry) -> HandlerResult {
        ctx.logger()
            .debug(format_args!("create dn: {dn:?}: failing"));
        Err(HandlerError::msg(format!(
            "{dn} asked to fail (description=fail)"
        )))
    }

    fn modify(
        &mut self,
        ctx: &mut Context,
        dn: &Dn,
        _old: &Entry,
        _new: &Entry,
        _old_dn: Option<&Dn>,
    ) -> HandlerResult {
        ctx.logger()
            .debug(format_args!("modify dn: {dn:?}: failing"));
        Err(HandlerError::msg(format!(
            "{dn} asked to fail (description=fail)"
        )))
    }

    fn remove(&mut self, ctx: &mut Context, dn: &Dn, _old: &Entry) -> HandlerResult {
        ctx.logger().debug(format_args!("remove dn: {dn:?}"));
        Ok(())
    }

    fn error_handler(
        &mut self,
        ctx: &mut Context,
        dn: &Dn,
        _old: Option<&Entry>,
        _new: Option<&Entry>,
        command: Command,
        error: HandlerError,
    ) -> HandlerResult {
        ctx.logger().debug(format_args!(
            "error_handler called: {command} {dn:?}: {error}"
        ));
        Err(error)
    }
}
