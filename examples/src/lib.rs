//! Example listener modules: UCS's two listener module templates ported to Rust, a classic module
//! that prints what it receives, and a module that fails on request (failed events).
//!
//! A binary links them with `use examples as _;` (see `src/bin/demo-listener.rs`).

pub mod async_template;
pub mod failing_on_demand;
pub mod printer;
pub mod template;
