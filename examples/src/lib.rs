//! Example listener modules: the seed's two templates ported to Rust, and a classic module
//! that prints what it receives.
//!
//! A binary links them with `use examples as _;` (see `src/bin/demo-listener.rs`).

pub mod async_template;
pub mod printer;
pub mod template;
