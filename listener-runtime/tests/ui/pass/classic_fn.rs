use listener_runtime::prelude::*;

#[listener_module(
    name = "printer",
    description = "prints every change",
    ldap_filter = "(objectClass=*)",
    modrdn,
)]
fn handler(
    _ctx: &mut Context,
    dn: &Dn,
    new: Option<&Entry>,
    old: Option<&Entry>,
    command: Command,
) -> HandlerResult {
    fn uuid(e: Option<&Entry>) -> &str {
        e.and_then(|e| e.first_str("entryUUID")).unwrap_or("-")
    }
    println!("{dn}\t{}\t{}\t{command}", uuid(old), uuid(new));
    Ok(())
}

fn main() {
    let modules = listener_runtime::registered_modules();
    assert_eq!(modules[0].kind, listener_runtime::ApiKind::Classic);
    assert!(modules[0].modrdn);
}
