use listener_runtime::prelude::*;

#[listener_module(name = "first", description = "d", ldap_filter = "(uid=*)", priority = 2)]
fn first(_: &mut Context, _: &Dn, _: Option<&Entry>, _: Option<&Entry>, _: Command) -> HandlerResult {
    Ok(())
}

#[listener_module(name = "second", description = "d", ldap_filter = "(uid=*)", priority = 1)]
fn second(_: &mut Context, _: &Dn, _: Option<&Entry>, _: Option<&Entry>, _: Command) -> HandlerResult {
    Ok(())
}

#[listener_module(name = "third", description = "d", ldap_filter = "(uid=*)", priority = 1)]
#[derive(Default)]
struct Third;

impl Handler for Third {}

mod nested {
    use listener_runtime::prelude::*;

    #[listener_module(name = "fourth", description = "d", ldap_filter = "(uid=*)", run_asynchronously)]
    #[derive(Default)]
    pub(crate) struct Fourth;

    impl AsyncHandler for Fourth {}
}

fn main() {
    let modules = listener_runtime::registered_modules();
    let names: Vec<_> = modules.iter().map(|m| m.name).collect();
    assert_eq!(names, ["second", "third", "first", "fourth"]);
    assert!(modules[3].source.item.ends_with("::nested::Fourth"), "{}", modules[3].source.item);
    listener_runtime::check_unique_names(&modules).unwrap();
}
