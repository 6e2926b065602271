//! From the parsed arguments and the item to the registration: checks (via listener-core's
//! validation) and code generation.

use listener_core::{ConfigKey, ModuleConfig, ModuleForm};
use proc_macro2::{Ident, Span, TokenStream, TokenTree};
use quote::{ToTokens, quote, quote_spanned};

use crate::args::{self, Args, Value};
use crate::fallback;

/// The item `#[listener_module]` is on.
enum Module {
    /// New API (or async with `run_asynchronously`).
    Struct(Ident),
    /// Classic API.
    Function(Ident),
}

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let args: Args = match syn::parse2(args) {
        Ok(args) => args,
        Err(e) => return fallback::expand(item, vec![e]),
    };
    let parsed: syn::Item = match syn::parse2(item.clone()) {
        Ok(parsed) => parsed,
        // rustc reports the item's own syntax error; do not add a second message.
        Err(_) => return item,
    };
    let mut errors = args.errors.clone();
    let module = check_item(&parsed, &mut errors);
    let config = check_config(&args, module.as_ref(), &mut errors);
    match (module, config) {
        (Some(module), Some(config)) if errors.is_empty() => {
            let registration = registration(&config, &module);
            quote! {
                #item
                const _: () = { #registration };
            }
        }
        _ => fallback::expand(item, errors),
    }
}

fn check_item(item: &syn::Item, errors: &mut Vec<syn::Error>) -> Option<Module> {
    match item {
        syn::Item::Struct(s) => {
            if !s.generics.params.is_empty() {
                errors.push(syn::Error::new_spanned(
                    &s.generics,
                    "a listener module struct cannot be generic: the runtime creates it \
                     with `Default::default()` and needs one concrete type",
                ));
                return None;
            }
            Some(Module::Struct(s.ident.clone()))
        }
        syn::Item::Fn(f) => {
            let sig = &f.sig;
            if let Some(asyncness) = sig.asyncness {
                errors.push(syn::Error::new_spanned(
                    asyncness,
                    "a classic module function cannot be `async`; for an asynchronous \
                     module put `#[listener_module(run_asynchronously, ...)]` on a struct \
                     implementing `AsyncHandler`",
                ));
                return None;
            }
            if !sig.generics.params.is_empty() {
                errors.push(syn::Error::new_spanned(
                    &sig.generics,
                    "a classic module function cannot be generic",
                ));
                return None;
            }
            Some(Module::Function(sig.ident.clone()))
        }
        other => {
            errors.push(syn::Error::new_spanned(
                item_keyword(other),
                "`#[listener_module]` goes on a struct (implementing `Handler`, or \
                 `AsyncHandler` with `run_asynchronously`) or on a classic handler function",
            ));
            None
        }
    }
}

/// The item's keyword and name (`enum Foo`, `impl`, …): the span to blame for a wrong
/// kind of item without underlining its whole body.
fn item_keyword(item: &syn::Item) -> TokenStream {
    item.to_token_stream()
        .into_iter()
        .skip_while(|tt| !matches!(tt, TokenTree::Ident(i) if i != "pub"))
        .take(2)
        .collect()
}

fn check_config(
    args: &Args,
    module: Option<&Module>,
    errors: &mut Vec<syn::Error>,
) -> Option<ModuleConfig> {
    let form = match module {
        Some(Module::Function(_)) => ModuleForm::Function,
        _ => ModuleForm::Struct,
    };
    let required = [
        (args::NAME, "\"my_module\""),
        (args::DESCRIPTION, "\"what the module does\""),
        (args::LDAP_FILTER, "\"(objectClass=inetOrgPerson)\""),
    ];
    let complete = args.name.is_some() && args.description.is_some() && args.ldap_filter.is_some();
    // A key written with a bad value, or misspelled, was reported already.
    let missing: Vec<_> = required
        .iter()
        .filter(|(key, _)| !args.seen.contains(key) && !args.suggested.contains(key))
        .collect();
    // One message for all missing keys: forgetting them is one mistake.
    match missing.as_slice() {
        [] => {}
        [(key, example)] => errors.push(syn::Error::new(
            Span::call_site(),
            format!(
                "missing key `{key}`: every listener module needs one, e.g. `{key} = {example}`"
            ),
        )),
        several => {
            let keys: Vec<_> = several.iter().map(|(key, _)| format!("`{key}`")).collect();
            let example: Vec<_> = several
                .iter()
                .map(|(key, example)| format!("{key} = {example}"))
                .collect();
            errors.push(syn::Error::new(
                Span::call_site(),
                format!(
                    "missing keys {}: every listener module needs them, \
                     e.g. `#[listener_module({})]`",
                    keys.join(", "),
                    example.join(", ")
                ),
            ));
        }
    }

    let text = |v: &Option<Value<String>>| v.as_ref().map(|v| v.value.clone()).unwrap_or_default();
    let mut config = ModuleConfig::new(
        &text(&args.name),
        &text(&args.description),
        &text(&args.ldap_filter),
        form,
    );
    if let Some(list) = &args.attributes {
        config.attributes = list.items.iter().map(|(a, _)| a.clone()).collect();
    }
    let flag = |v: &Option<Value<bool>>| v.as_ref().is_some_and(|v| v.value);
    if let Some(p) = &args.priority {
        config.priority = p.value;
    }
    config.handle_every_delete = flag(&args.handle_every_delete);
    config.blocking = flag(&args.blocking);
    config.modrdn = flag(&args.modrdn);
    config.run_asynchronously = flag(&args.run_asynchronously);
    config.parallelism = args.parallelism.as_ref().map(|p| p.value);

    if let Err(problems) = config.validate() {
        for problem in problems {
            // A key that was not given was already reported as missing.
            if let Some(error) = locate(args, problem.key, &problem.message, config.parallelism) {
                errors.push(error);
            }
        }
    }
    (complete && module.is_some()).then_some(config)
}

/// Puts a validation error at the value it is about (or at `key = value` where the key is
/// the problem).
fn locate(
    args: &Args,
    key: ConfigKey,
    message: &str,
    parallelism: Option<u32>,
) -> Option<syn::Error> {
    let at = |span: Span| Some(syn::Error::new(span, message));
    let whole = |key_span: Span, value_span: Span| {
        let range: TokenStream = [key_span, value_span]
            .into_iter()
            .map(|span| TokenTree::Ident(Ident::new("x", span)))
            .collect();
        Some(syn::Error::new_spanned(range, message))
    };
    match key {
        ConfigKey::Name => at(args.name.as_ref()?.value_span),
        ConfigKey::Description => at(args.description.as_ref()?.value_span),
        ConfigKey::LdapFilter => at(args.ldap_filter.as_ref()?.value_span),
        ConfigKey::Attribute(i) => {
            let list = args.attributes.as_ref()?;
            at(list.items.get(i).map_or(list.key_span, |(_, span)| *span))
        }
        ConfigKey::Priority => at(args.priority.as_ref()?.value_span),
        ConfigKey::HandleEveryDelete => {
            let v = args.handle_every_delete.as_ref()?;
            whole(v.key_span, v.value_span)
        }
        ConfigKey::Modrdn => {
            let v = args.modrdn.as_ref()?;
            whole(v.key_span, v.value_span)
        }
        ConfigKey::RunAsynchronously => {
            let v = args.run_asynchronously.as_ref()?;
            whole(v.key_span, v.value_span)
        }
        ConfigKey::Parallelism => {
            let v = args.parallelism.as_ref()?;
            if parallelism == Some(0) {
                at(v.value_span)
            } else {
                whole(v.key_span, v.value_span)
            }
        }
    }
}

fn registration(config: &ModuleConfig, module: &Module) -> TokenStream {
    let private = quote!(::listener_runtime::__private);
    let ModuleConfig {
        name,
        description,
        ldap_filter,
        attributes,
        priority,
        handle_every_delete,
        blocking,
        modrdn,
        parallelism,
        ..
    } = config;
    let priority = if priority.is_sign_negative() {
        let magnitude = proc_macro2::Literal::f64_unsuffixed(-priority);
        quote!(-#magnitude)
    } else {
        proc_macro2::Literal::f64_unsuffixed(*priority).into_token_stream()
    };
    let parallelism = match parallelism {
        Some(n) => quote!(::core::option::Option::Some(#n)),
        None => quote!(::core::option::Option::None),
    };
    let (ident, kind, constructor, support) = match module {
        Module::Struct(ident) => {
            let (kind, new) = if config.run_asynchronously {
                (quote!(Async), quote!(new_async))
            } else {
                (quote!(New), quote!(new_sync))
            };
            // Spanned at the struct's name: a missing `Handler`/`AsyncHandler`/`Default`
            // impl is reported there, naming the trait.
            let constructor = quote_spanned!(ident.span()=> #private::#new::<#ident>);
            (ident, kind, constructor, TokenStream::new())
        }
        Module::Function(ident) => {
            // Spanned at the function's name: a wrong signature is reported there as a
            // mismatch with `ClassicHandler`.
            let handler = quote_spanned! {ident.span()=>
                const __LISTENER_MODULE_HANDLER: #private::ClassicHandler = #ident;
            };
            let support = quote! {
                #handler
                fn __listener_module_construct() -> #private::ModuleInstance {
                    #private::ModuleInstance::Classic(__LISTENER_MODULE_HANDLER)
                }
            };
            (
                ident,
                quote!(Classic),
                quote!(__listener_module_construct),
                support,
            )
        }
    };
    let item = ident.to_string();
    quote! {
        #support
        #private::inventory::submit! {
            #private::ModuleRegistration {
                name: #name,
                description: #description,
                ldap_filter: #ldap_filter,
                attributes: &[#(#attributes),*],
                priority: #priority,
                handle_every_delete: #handle_every_delete,
                blocking: #blocking,
                modrdn: #modrdn,
                parallelism: #parallelism,
                kind: #private::ApiKind::#kind,
                constructor: #constructor,
                source: #private::SourceLocation {
                    item: ::core::concat!(::core::module_path!(), "::", #item),
                    file: ::core::file!(),
                    line: ::core::line!(),
                },
            }
        }
    }
}
