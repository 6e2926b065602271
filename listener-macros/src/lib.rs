//! `#[listener_module(...)]` (placeholder: being written).
use proc_macro::TokenStream;

#[proc_macro_attribute]
pub fn listener_module(_args: TokenStream, item: TokenStream) -> TokenStream {
    item
}
