//! What to emit when the input is wrong: the user's item unchanged, so the rest of their
//! code still type-checks, plus one `compile_error!` per problem — one mistake, one
//! message.

use proc_macro2::TokenStream;
use quote::quote;

pub(crate) fn expand(item: TokenStream, errors: Vec<syn::Error>) -> TokenStream {
    let errors = errors.iter().map(syn::Error::to_compile_error);
    quote! {
        // The module is not registered, so its item may look unused; that is not news.
        #[allow(dead_code)]
        #item
        #(#errors)*
    }
}
