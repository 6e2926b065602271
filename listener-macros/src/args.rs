//! Parsing `#[listener_module(...)]`'s arguments: every key by hand with
//! `custom_keyword!`, every problem collected (not only the first).

use proc_macro2::{Span, TokenStream, TokenTree};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::{Ident, LitBool, LitStr, Token};

// The keys as the user writes them; the only place these strings are spelled.
pub(crate) const NAME: &str = "name";
pub(crate) const DESCRIPTION: &str = "description";
pub(crate) const LDAP_FILTER: &str = "ldap_filter";
pub(crate) const ATTRIBUTES: &str = "attributes";
pub(crate) const PRIORITY: &str = "priority";
pub(crate) const HANDLE_EVERY_DELETE: &str = "handle_every_delete";
pub(crate) const BLOCKING: &str = "blocking";
pub(crate) const MODRDN: &str = "modrdn";
pub(crate) const RUN_ASYNCHRONOUSLY: &str = "run_asynchronously";
pub(crate) const PARALLELISM: &str = "parallelism";

/// Every key, in the order the documentation lists them.
pub(crate) const KEYS: &[&str] = &[
    NAME,
    DESCRIPTION,
    LDAP_FILTER,
    ATTRIBUTES,
    PRIORITY,
    HANDLE_EVERY_DELETE,
    BLOCKING,
    MODRDN,
    RUN_ASYNCHRONOUSLY,
    PARALLELISM,
];

mod kw {
    syn::custom_keyword!(name);
    syn::custom_keyword!(description);
    syn::custom_keyword!(ldap_filter);
    syn::custom_keyword!(attributes);
    syn::custom_keyword!(priority);
    syn::custom_keyword!(handle_every_delete);
    syn::custom_keyword!(blocking);
    syn::custom_keyword!(modrdn);
    syn::custom_keyword!(run_asynchronously);
    syn::custom_keyword!(parallelism);
}

/// A key's value with where the key and the value were written.
#[derive(Debug, Clone)]
pub(crate) struct Value<T> {
    pub value: T,
    pub key_span: Span,
    pub value_span: Span,
}

/// `attributes = ["sn", "givenName"]`: each element with its own span.
#[derive(Debug, Clone)]
pub(crate) struct AttributeList {
    pub key_span: Span,
    pub items: Vec<(String, Span)>,
}

/// The parsed arguments, and every problem found while parsing them.
#[derive(Default)]
pub(crate) struct Args {
    pub name: Option<Value<String>>,
    pub description: Option<Value<String>>,
    pub ldap_filter: Option<Value<String>>,
    pub attributes: Option<AttributeList>,
    pub priority: Option<Value<f64>>,
    pub handle_every_delete: Option<Value<bool>>,
    pub blocking: Option<Value<bool>>,
    pub modrdn: Option<Value<bool>>,
    pub run_asynchronously: Option<Value<bool>>,
    pub parallelism: Option<Value<u32>>,
    /// Every known key written, valid value or not (so a bad value is not also reported
    /// as a missing key).
    pub seen: Vec<&'static str>,
    /// Keys suggested for misspelled ones (so `ldapfilter` is not also reported as
    /// `ldap_filter` missing).
    pub suggested: Vec<&'static str>,
    pub errors: Vec<syn::Error>,
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = Args::default();
        while !input.is_empty() {
            args.parse_key_value(input)?;
            if input.is_empty() {
                break;
            }
            if input.peek(Token![,]) {
                input.parse::<Token![,]>()?;
            } else {
                let rest = skip_value(input)?;
                args.errors.push(syn::Error::new_spanned(
                    rest,
                    "expected `,` between keys, e.g. `name = \"x\", description = \"y\"`",
                ));
                if input.peek(Token![,]) {
                    input.parse::<Token![,]>()?;
                }
            }
        }
        Ok(args)
    }
}

impl Args {
    fn parse_key_value(&mut self, input: ParseStream<'_>) -> syn::Result<()> {
        let lookahead = input.lookahead1();
        if lookahead.peek(kw::name) {
            let key = input.parse::<kw::name>()?.span;
            let first = self.first_time(NAME, key);
            let value = self.string(input, NAME, key, "my_module")?;
            self.set(first, |a| &mut a.name, value);
        } else if lookahead.peek(kw::description) {
            let key = input.parse::<kw::description>()?.span;
            let first = self.first_time(DESCRIPTION, key);
            let value = self.string(input, DESCRIPTION, key, "what the module does")?;
            self.set(first, |a| &mut a.description, value);
        } else if lookahead.peek(kw::ldap_filter) {
            let key = input.parse::<kw::ldap_filter>()?.span;
            let first = self.first_time(LDAP_FILTER, key);
            let value = self.string(input, LDAP_FILTER, key, "(objectClass=inetOrgPerson)")?;
            self.set(first, |a| &mut a.ldap_filter, value);
        } else if lookahead.peek(kw::attributes) {
            let key = input.parse::<kw::attributes>()?.span;
            let first = self.first_time(ATTRIBUTES, key);
            let value = self.attribute_list(input, key)?;
            self.set(first, |a| &mut a.attributes, value);
        } else if lookahead.peek(kw::priority) {
            let key = input.parse::<kw::priority>()?.span;
            let first = self.first_time(PRIORITY, key);
            let value = self.priority(input, key)?;
            self.set(first, |a| &mut a.priority, value);
        } else if lookahead.peek(kw::handle_every_delete) {
            let key = input.parse::<kw::handle_every_delete>()?.span;
            let first = self.first_time(HANDLE_EVERY_DELETE, key);
            let value = self.flag(input, HANDLE_EVERY_DELETE, key)?;
            self.set(first, |a| &mut a.handle_every_delete, value);
        } else if lookahead.peek(kw::blocking) {
            let key = input.parse::<kw::blocking>()?.span;
            let first = self.first_time(BLOCKING, key);
            let value = self.flag(input, BLOCKING, key)?;
            self.set(first, |a| &mut a.blocking, value);
        } else if lookahead.peek(kw::modrdn) {
            let key = input.parse::<kw::modrdn>()?.span;
            let first = self.first_time(MODRDN, key);
            let value = self.flag(input, MODRDN, key)?;
            self.set(first, |a| &mut a.modrdn, value);
        } else if lookahead.peek(kw::run_asynchronously) {
            let key = input.parse::<kw::run_asynchronously>()?.span;
            let first = self.first_time(RUN_ASYNCHRONOUSLY, key);
            let value = self.flag(input, RUN_ASYNCHRONOUSLY, key)?;
            self.set(first, |a| &mut a.run_asynchronously, value);
        } else if lookahead.peek(kw::parallelism) {
            let key = input.parse::<kw::parallelism>()?.span;
            let first = self.first_time(PARALLELISM, key);
            let value = self.parallelism(input, key)?;
            self.set(first, |a| &mut a.parallelism, value);
        } else if input.peek(Ident::peek_any) {
            let ident = input.call(Ident::parse_any)?;
            let (error, suggestion) = unknown_key(&ident);
            self.errors.push(error);
            self.suggested.extend(suggestion);
            skip_value(input)?;
        } else {
            self.errors.push(lookahead.error());
            skip_value(input)?;
        }
        Ok(())
    }

    /// Records that `key` was written, reporting it when it was written before.
    fn first_time(&mut self, key: &'static str, key_span: Span) -> bool {
        if self.seen.contains(&key) {
            self.errors.push(syn::Error::new(
                key_span,
                format!("duplicate key `{key}`: each key may be given only once"),
            ));
            false
        } else {
            self.seen.push(key);
            true
        }
    }

    /// Stores the value of a key written for the first time.
    fn set<T>(
        &mut self,
        first: bool,
        slot: impl FnOnce(&mut Args) -> &mut Option<T>,
        value: Option<T>,
    ) {
        if first {
            *slot(self) = value;
        }
    }

    /// `= "text"`; `None` (with the error recorded) when the value is not a string.
    fn string(
        &mut self,
        input: ParseStream<'_>,
        key: &str,
        key_span: Span,
        example: &str,
    ) -> syn::Result<Option<Value<String>>> {
        let expected = || format!("`{key}` expects a string literal, e.g. `{key} = {example:?}`");
        if !self.equals(input, key_span, &expected)? {
            return Ok(None);
        }
        if input.peek(LitStr) {
            let lit: LitStr = input.parse()?;
            return Ok(Some(Value {
                value: lit.value(),
                key_span,
                value_span: lit.span(),
            }));
        }
        let rest = skip_value(input)?;
        self.errors.push(syn::Error::new_spanned(rest, expected()));
        Ok(None)
    }

    /// `= ["a", "b"]`.
    fn attribute_list(
        &mut self,
        input: ParseStream<'_>,
        key_span: Span,
    ) -> syn::Result<Option<AttributeList>> {
        let expected = || {
            format!(
                "`{ATTRIBUTES}` expects a list of attribute names, \
                 e.g. `{ATTRIBUTES} = [\"sn\", \"givenName\"]`"
            )
        };
        if !self.equals(input, key_span, &expected)? {
            return Ok(None);
        }
        if !input.peek(syn::token::Bracket) {
            let rest = skip_value(input)?;
            self.errors.push(syn::Error::new_spanned(rest, expected()));
            return Ok(None);
        }
        let content;
        syn::bracketed!(content in input);
        let mut items = Vec::new();
        let mut ok = true;
        while !content.is_empty() {
            if content.peek(LitStr) {
                let lit: LitStr = content.parse()?;
                items.push((lit.value(), lit.span()));
            } else {
                let rest = skip_value(&content)?;
                self.errors.push(syn::Error::new_spanned(
                    rest,
                    "an attribute name must be a string literal, e.g. \"givenName\"",
                ));
                ok = false;
            }
            if content.is_empty() {
                break;
            }
            content.parse::<Token![,]>()?;
        }
        Ok(ok.then_some(AttributeList { key_span, items }))
    }

    /// `= 10.0`, `= 10` or `= -5.5`.
    fn priority(
        &mut self,
        input: ParseStream<'_>,
        key_span: Span,
    ) -> syn::Result<Option<Value<f64>>> {
        let expected =
            || format!("`{PRIORITY}` expects a number, e.g. `{PRIORITY} = 10.0` (default 50.0)");
        if !self.equals(input, key_span, &expected)? {
            return Ok(None);
        }
        let negative = input.peek(Token![-]) && {
            input.parse::<Token![-]>()?;
            true
        };
        let parsed = if input.peek(syn::LitFloat) {
            let lit: syn::LitFloat = input.parse()?;
            Some((lit.base10_parse::<f64>(), lit.span()))
        } else if input.peek(syn::LitInt) {
            let lit: syn::LitInt = input.parse()?;
            Some((lit.base10_parse::<f64>(), lit.span()))
        } else {
            None
        };
        match parsed {
            Some((Ok(value), value_span)) => Ok(Some(Value {
                value: if negative { -value } else { value },
                key_span,
                value_span,
            })),
            Some((Err(e), _)) => {
                self.errors.push(e);
                Ok(None)
            }
            None => {
                let rest = skip_value(input)?;
                self.errors.push(syn::Error::new_spanned(rest, expected()));
                Ok(None)
            }
        }
    }

    /// `= 4`.
    fn parallelism(
        &mut self,
        input: ParseStream<'_>,
        key_span: Span,
    ) -> syn::Result<Option<Value<u32>>> {
        let expected = || {
            format!("`{PARALLELISM}` expects a whole number of workers, e.g. `{PARALLELISM} = 4`")
        };
        if !self.equals(input, key_span, &expected)? {
            return Ok(None);
        }
        if input.peek(syn::LitInt) {
            let lit: syn::LitInt = input.parse()?;
            return match lit.base10_parse::<u32>() {
                Ok(value) => Ok(Some(Value {
                    value,
                    key_span,
                    value_span: lit.span(),
                })),
                Err(_) => {
                    self.errors.push(syn::Error::new(
                        lit.span(),
                        format!(
                            "`{PARALLELISM}` expects a whole number of workers from 1 to {}, \
                             not `{lit}`",
                            u32::MAX
                        ),
                    ));
                    Ok(None)
                }
            };
        }
        let rest = skip_value(input)?;
        self.errors.push(syn::Error::new_spanned(rest, expected()));
        Ok(None)
    }

    /// A flag: `key` alone means true; `key = true` / `key = false` also work.
    fn flag(
        &mut self,
        input: ParseStream<'_>,
        key: &str,
        key_span: Span,
    ) -> syn::Result<Option<Value<bool>>> {
        if !input.peek(Token![=]) {
            return Ok(Some(Value {
                value: true,
                key_span,
                value_span: key_span,
            }));
        }
        input.parse::<Token![=]>()?;
        if input.peek(LitBool) {
            let lit: LitBool = input.parse()?;
            return Ok(Some(Value {
                value: lit.value,
                key_span,
                value_span: lit.span(),
            }));
        }
        let rest = skip_value(input)?;
        self.errors.push(syn::Error::new_spanned(
            rest,
            format!("`{key}` is a flag: write `{key}`, `{key} = true` or `{key} = false`"),
        ));
        Ok(None)
    }

    /// Consumes `=`; if it is missing, records an error at the key and returns false.
    fn equals(
        &mut self,
        input: ParseStream<'_>,
        key_span: Span,
        expected: &dyn Fn() -> String,
    ) -> syn::Result<bool> {
        if input.peek(Token![=]) {
            input.parse::<Token![=]>()?;
            Ok(true)
        } else {
            self.errors.push(syn::Error::new(key_span, expected()));
            skip_value(input)?;
            Ok(false)
        }
    }
}

/// Skips to the next top-level `,` (not consuming it) and returns what was skipped, so an
/// error can point at it and parsing can go on with the next key.
fn skip_value(input: ParseStream<'_>) -> syn::Result<TokenStream> {
    input.step(|cursor| {
        let mut rest = *cursor;
        let mut skipped = TokenStream::new();
        while let Some((tt, next)) = rest.token_tree() {
            if matches!(&tt, TokenTree::Punct(p) if p.as_char() == ',') {
                break;
            }
            skipped.extend([tt]);
            rest = next;
        }
        Ok((skipped, rest))
    })
}

fn unknown_key(ident: &Ident) -> (syn::Error, Option<&'static str>) {
    let given = ident.unraw().to_string();
    let list = KEYS
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let suggestion = KEYS
        .iter()
        .map(|&k| (edit_distance(&given.to_lowercase(), k), k))
        .filter(|&(d, k)| d <= 2.max(k.len() / 4))
        .min()
        .map(|(_, k)| k);
    let did_you_mean = suggestion
        .map(|k| format!("; did you mean `{k}`?"))
        .unwrap_or_default();
    let error = syn::Error::new(
        ident.span(),
        format!("unknown key `{given}`{did_you_mean}\nexpected one of: {list}"),
    );
    (error, suggestion)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(tokens: TokenStream) -> Args {
        syn::parse2(tokens).expect("recovers from every key error")
    }

    fn messages(args: &Args) -> Vec<String> {
        args.errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn every_key() {
        let args = parse(quote::quote!(
            name = "n",
            description = "d",
            ldap_filter = "(a=b)",
            attributes = ["sn", "cn"],
            priority = -2,
            handle_every_delete,
            modrdn = false,
            run_asynchronously = true,
            parallelism = 3,
        ));
        assert!(args.errors.is_empty(), "{:?}", messages(&args));
        assert_eq!(args.name.unwrap().value, "n");
        assert_eq!(args.attributes.unwrap().items.len(), 2);
        assert_eq!(args.priority.unwrap().value, -2.0);
        assert!(args.handle_every_delete.unwrap().value);
        assert!(!args.modrdn.unwrap().value);
        assert!(args.run_asynchronously.unwrap().value);
        assert_eq!(args.parallelism.unwrap().value, 3);
    }

    #[test]
    fn collects_every_error_and_goes_on() {
        let args = parse(quote::quote!(
            nmae = "n",
            name = 5,
            name = "a",
            name = "b",
            priority = "high",
            parallelism = -1,
            modrdn = 1,
            description = "d"
        ));
        let m = messages(&args);
        assert_eq!(m.len(), 7, "{m:?}");
        assert!(
            m[0].starts_with("unknown key `nmae`; did you mean `name`?"),
            "{m:?}"
        );
        assert!(m[1].contains("`name` expects a string literal"), "{m:?}");
        assert!(m[2].contains("duplicate key `name`"), "{m:?}");
        assert!(m[3].contains("duplicate key `name`"), "{m:?}");
        assert!(m[4].contains("`priority` expects a number"), "{m:?}");
        assert!(
            m[5].contains("`parallelism` expects a whole number"),
            "{m:?}"
        );
        assert!(m[6].contains("`modrdn` is a flag"), "{m:?}");
        assert_eq!(args.suggested, ["name"]);
        assert!(args.name.is_none());
        assert!(args.seen.contains(&NAME));
        assert_eq!(args.description.unwrap().value, "d");
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("nmae", "name"), 2);
        assert_eq!(edit_distance("modrdn", "modrdn"), 0);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
