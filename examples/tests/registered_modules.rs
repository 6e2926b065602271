//! The example crate registers its four modules: one per API, and one that fails on
//! request.

use listener_core::{Command, Dn, Entry};
use listener_runtime::{ApiKind, Context, ModuleInstance, registered_modules};

use examples as _;

#[test]
fn all_examples_are_registered_in_call_order() {
    let modules = registered_modules();
    let summary: Vec<_> = modules.iter().map(|m| (m.name, m.kind)).collect();
    assert_eq!(
        summary,
        [
            ("failing_on_demand", ApiKind::New),
            ("listener_module_template_async", ApiKind::Async),
            ("printer", ApiKind::Classic),
            ("unique_name", ApiKind::New),
        ]
    );
    let template = modules[3];
    assert_eq!(
        template.ldap_filter,
        "(&(objectClass=inetOrgPerson)(uid=example))"
    );
    assert_eq!(template.attributes, ["sn", "givenName"]);
    assert_eq!(template.priority, 50.0);
    assert!(template.source.item.ends_with("::ListenerModuleTemplate"));
    assert!(modules[2].modrdn);
    assert_eq!(modules[1].workers(), Some(1));
}

#[test]
fn instances_match_their_api() {
    for module in registered_modules() {
        let instance = module.instantiate();
        let matches = match module.kind {
            ApiKind::New => matches!(instance, ModuleInstance::Sync(_)),
            ApiKind::Async => matches!(instance, ModuleInstance::Async(_)),
            ApiKind::Classic => matches!(instance, ModuleInstance::Classic(_)),
        };
        assert!(matches, "{}: {:?}", module.name, instance);
    }
}

#[test]
fn template_handles_calls() -> Result<(), Box<dyn std::error::Error>> {
    let module = registered_modules()
        .into_iter()
        .find(|m| m.name == "unique_name")
        .ok_or("unique_name not registered")?;
    let ModuleInstance::Sync(mut handler) = module.instantiate() else {
        return Err("not a sync module".into());
    };
    let mut ctx = Context::new(module.name);
    let dn = Dn::parse("uid=example,dc=example,dc=org")?;
    let mut old = Entry::new(dn.clone());
    old.insert("sn", ["Old"])?;
    let mut new = Entry::new(dn.clone());
    new.insert("sn", ["New"])?;
    handler.create(&mut ctx, &dn, &new)?;
    handler.modify(&mut ctx, &dn, &old, &new, None)?;
    handler.remove(&mut ctx, &dn, &old)?;
    let err = handler
        .error_handler(
            &mut ctx,
            &dn,
            Some(&old),
            None,
            Command::Delete,
            listener_runtime::HandlerError::msg("boom"),
        )
        .expect_err("the default error handler passes the error on");
    assert_eq!(err.to_string(), "boom");
    assert_eq!(ctx.diff(&old, &new).len(), 1);
    Ok(())
}

#[test]
fn failing_on_demand_fails_and_declines_in_its_error_handler()
-> Result<(), Box<dyn std::error::Error>> {
    let module = registered_modules()
        .into_iter()
        .find(|m| m.name == "failing_on_demand")
        .ok_or("failing_on_demand not registered")?;
    let ModuleInstance::Sync(mut handler) = module.instantiate() else {
        return Err("not a sync module".into());
    };
    let mut ctx = Context::new(module.name);
    let dn = Dn::parse("cn=broken,dc=example,dc=org")?;
    let mut entry = Entry::new(dn.clone());
    entry.insert("description", ["fail"])?;
    let err = handler
        .create(&mut ctx, &dn, &entry)
        .expect_err("create fails");
    assert_eq!(
        err.to_string(),
        "cn=broken,dc=example,dc=org asked to fail (description=fail)"
    );
    assert!(handler.modify(&mut ctx, &dn, &entry, &entry, None).is_err());
    let declined = handler
        .error_handler(&mut ctx, &dn, None, Some(&entry), Command::Add, err)
        .expect_err("it declines");
    assert!(declined.to_string().contains("asked to fail"));
    handler.remove(&mut ctx, &dn, &entry)?;
    Ok(())
}
