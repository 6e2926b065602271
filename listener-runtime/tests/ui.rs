//! Compile-time behaviour of `#[listener_module]`: what compiles, and the exact message
//! for each mistake (one file per mistake, expected output in the `.stderr` next to it).
//!
//! Regenerate expected output after an intended change with
//! `TRYBUILD=overwrite cargo test -p listener-runtime --test ui`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}

/// Filter syntax errors: the message comes from listener-core's RFC 4515 parser (byte
/// offset, the filter, a caret line).
#[test]
fn ui_filter_errors() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/filter/*.rs");
}
