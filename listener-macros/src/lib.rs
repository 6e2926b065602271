//! `#[listener_module(...)]`: registers a listener module, validating its configuration
//! when the module is compiled.
//!
//! This crate is a thin shim: the configuration's rules live in
//! `listener_core::ModuleConfig::validate` (shared with the runtime), and the generated
//! code calls only `::listener_runtime::__private`. Use the macro through
//! `listener_runtime::prelude`.

mod args;
mod expand;
mod fallback;

use proc_macro::TokenStream;

/// Registers a listener module with the runtime.
///
/// On a **struct** it registers a new-API module: the struct implements
/// `listener_runtime::Handler` — or `AsyncHandler` with `run_asynchronously` — and
/// `Default` (the runtime creates it with `Default::default()`):
///
/// ```
/// use listener_runtime::prelude::*;
///
/// #[listener_module(
///     name = "unique_name",
///     description = "listener module description",
///     ldap_filter = "(&(objectClass=inetOrgPerson)(uid=example))",
///     attributes = ["sn", "givenName"],
/// )]
/// #[derive(Default)]
/// pub struct ListenerModuleTemplate;
///
/// impl Handler for ListenerModuleTemplate {
///     fn create(&mut self, ctx: &mut Context, dn: &Dn, _new: &Entry) -> HandlerResult {
///         ctx.logger().debug(format_args!("dn: {dn}"));
///         Ok(())
///     }
/// }
/// ```
///
/// On a **function** it registers a classic module; the function has the signature of
/// `listener_runtime::ClassicHandler`:
///
/// ```
/// use listener_runtime::prelude::*;
///
/// #[listener_module(
///     name = "printer",
///     description = "prints every change",
///     ldap_filter = "(objectClass=*)",
///     modrdn,
/// )]
/// fn handler(
///     _ctx: &mut Context,
///     dn: &Dn,
///     _new: Option<&Entry>,
///     _old: Option<&Entry>,
///     command: Command,
/// ) -> HandlerResult {
///     println!("{command} {dn}");
///     Ok(())
/// }
/// ```
///
/// Every problem with the arguments is a compile error pointing at the offending key or
/// value (all of them, not only the first), and the module is then not registered.
///
/// # Keys
///
/// ## `name = "..."` (required)
///
/// The module's unique name: letters, digits and `,` `.` `_` `-`. The listener keeps the
/// module's state under it, and refuses to start when two modules share it.
///
/// ```
/// # use listener_runtime::prelude::*;
/// #[listener_module(name = "mail.forwarder", description = "d", ldap_filter = "(mail=*)")]
/// #[derive(Default)]
/// struct Forwarder;
/// # impl Handler for Forwarder {}
/// ```
///
/// ## `description = "..."` (required)
///
/// A sentence saying what the module does; not empty.
///
/// ```
/// # use listener_runtime::prelude::*;
/// #[listener_module(name = "m", description = "keeps the mail routing table", ldap_filter = "(mail=*)")]
/// #[derive(Default)]
/// struct Routing;
/// # impl Handler for Routing {}
/// ```
///
/// ## `ldap_filter = "..."` (required)
///
/// The RFC 4515 filter selecting the objects the module sees. Checked at compile time: a
/// syntax error reports the byte offset, and a filter the matcher cannot evaluate is
/// rejected rather than guessed at.
///
/// ```
/// # use listener_runtime::prelude::*;
/// #[listener_module(
///     name = "m",
///     description = "d",
///     ldap_filter = "(&(objectClass=posixAccount)(|(uid=a*)(!(loginShell=/bin/false))))",
/// )]
/// #[derive(Default)]
/// struct Accounts;
/// # impl Handler for Accounts {}
/// ```
///
/// ## `attributes = ["...", ...]`
///
/// Call the module only when one of these attributes changed (metadata such as
/// `modifyTimestamp` alone never counts). Empty or absent: any change.
///
/// ```
/// # use listener_runtime::prelude::*;
/// #[listener_module(name = "m", description = "d", ldap_filter = "(uid=*)", attributes = ["sn", "givenName"])]
/// #[derive(Default)]
/// struct Names;
/// # impl Handler for Names {}
/// ```
///
/// ## `priority = N`
///
/// Modules are called in ascending priority, ties by name; default `50.0`. An integer is
/// accepted too.
///
/// ```
/// # use listener_runtime::prelude::*;
/// #[listener_module(name = "m", description = "d", ldap_filter = "(uid=*)", priority = 10.0)]
/// #[derive(Default)]
/// struct Early;
/// # impl Handler for Early {}
/// ```
///
/// ## `blocking`
///
/// A flag: when a call of the module fails every retry, processing halts and the same
/// transaction is tried again (with backoff) until the module takes it, instead of the
/// change going to the module's failed events. For modules that must never miss or
/// reorder a change, such as replication. `blocking = true` / `false` also work.
///
/// ```
/// use listener_runtime::prelude::*;
///
/// #[listener_module(name = "replica", description = "d", ldap_filter = "(objectClass=*)",
///                   priority = 0.0, blocking)]
/// #[derive(Default)]
/// pub struct Replica;
/// impl Handler for Replica {}
/// # fn main() {}
/// ```
///
/// ## `handle_every_delete`
///
/// Also call `remove` for deleted objects the module never saw (`old` may then be empty).
/// A flag; `handle_every_delete = true` / `false` also work.
///
/// ```
/// # use listener_runtime::prelude::*;
/// #[listener_module(name = "m", description = "d", ldap_filter = "(uid=*)", handle_every_delete)]
/// #[derive(Default)]
/// struct Janitor;
/// # impl Handler for Janitor {}
/// ```
///
/// ## `modrdn` (classic modules only)
///
/// Pass moves as `r` followed by `a` (and `m`), instead of `d` + `a`. Struct modules get
/// moves as `modify` with `old_dn`, so the key is an error there.
///
/// ```
/// # use listener_runtime::prelude::*;
/// #[listener_module(name = "m", description = "d", ldap_filter = "(uid=*)", modrdn = true)]
/// fn handler(_: &mut Context, _: &Dn, _: Option<&Entry>, _: Option<&Entry>, _: Command) -> HandlerResult {
///     Ok(())
/// }
/// ```
///
/// ## `run_asynchronously` (struct modules only)
///
/// The struct implements `AsyncHandler` (the methods as `async fn`). Its calls are queued
/// with each transaction and run in worker processes, off the listener's path; calls for
/// one object one after another, in transaction order (docs/semantics.md §7.1).
///
/// ```
/// # use listener_runtime::prelude::*;
/// #[listener_module(name = "m", description = "d", ldap_filter = "(uid=*)", run_asynchronously)]
/// #[derive(Default)]
/// struct Background;
///
/// impl AsyncHandler for Background {
///     async fn create(&mut self, _: &mut Context, _: &Dn, _: &Entry) -> HandlerResult {
///         Ok(())
///     }
/// }
/// ```
///
/// ## `parallelism = N` (with `run_asynchronously`)
///
/// The number of worker processes of an asynchronous module, at least 1 (the default):
/// how many of its calls, for different objects, may run at once.
///
/// ```
/// # use listener_runtime::prelude::*;
/// #[listener_module(name = "m", description = "d", ldap_filter = "(uid=*)", run_asynchronously, parallelism = 4)]
/// #[derive(Default)]
/// struct Busy;
/// # impl AsyncHandler for Busy {}
/// ```
#[proc_macro_attribute]
pub fn listener_module(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(args.into(), item.into()).into()
}
