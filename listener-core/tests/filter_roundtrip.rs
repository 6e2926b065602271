//! Properties of the parser and `Display`: generated ASTs print to text that parses back
//! to the same AST, and no input makes the parser (or the compiler and matcher) panic.

use listener_core::{AttributeDescription, Dn, Entry, Filter, Schema};
use proptest::prelude::*;

fn attr() -> impl Strategy<Value = AttributeDescription> {
    prop::sample::select(vec![
        "cn",
        "CN",
        "objectClass",
        "2.5.4.3",
        "uid;x-opt",
        "cn;lang-de;binary",
        "x-custom-1",
        "name",
        "uidNumber",
        "dn",
    ])
    .prop_map(|a| AttributeDescription::parse(a).unwrap())
}

/// Values biased towards the bytes that need escaping.
fn value(min: usize) -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        3 => any::<u8>(),
        2 => prop::sample::select(vec![b'*', b'(', b')', b'\\', 0, b'a', b' ', 0xc3, 0xbc]),
    ];
    prop::collection::vec(byte, min..8)
}

fn leaf() -> impl Strategy<Value = Filter> {
    let rule = prop::sample::select(vec![
        "caseExactMatch",
        "2.5.13.5",
        "integerBitAndMatch",
        "x-rule",
        "dnQualifierMatch",
    ]);
    prop_oneof![
        (attr(), value(0)).prop_map(|(a, v)| Filter::Equality(a, v)),
        (attr(), value(0)).prop_map(|(a, v)| Filter::Approx(a, v)),
        (attr(), value(0)).prop_map(|(a, v)| Filter::GreaterOrEqual(a, v)),
        (attr(), value(0)).prop_map(|(a, v)| Filter::LessOrEqual(a, v)),
        attr().prop_map(Filter::Present),
        (
            attr(),
            prop::option::of(value(1)),
            prop::collection::vec(value(1), 0..3),
            prop::option::of(value(1)),
        )
            .prop_map(|(attr, initial, mut any, final_)| {
                // At least one piece, or it would be a presence filter.
                if initial.is_none() && any.is_empty() && final_.is_none() {
                    any.push(b"x".to_vec());
                }
                Filter::Substrings {
                    attr,
                    initial,
                    any,
                    final_,
                }
            }),
        (
            prop::option::of(attr()),
            any::<bool>(),
            prop::option::of(rule),
            value(0)
        )
            .prop_map(|(attr, dn_attributes, rule, value)| {
                // One of attr and rule is required.
                let rule = match (&attr, rule) {
                    (None, None) => Some("caseIgnoreMatch".to_owned()),
                    (_, rule) => rule.map(str::to_owned),
                };
                Filter::Extensible {
                    attr,
                    dn_attributes,
                    rule,
                    value,
                }
            }),
    ]
}

fn filter() -> impl Strategy<Value = Filter> {
    leaf().prop_recursive(5, 48, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Filter::And),
            prop::collection::vec(inner.clone(), 0..5).prop_map(Filter::Or),
            inner.prop_map(|f| Filter::Not(Box::new(f))),
        ]
    })
}

fn sample_entry() -> Entry {
    let mut e = Entry::new(Dn::parse("cn=Alice,dc=example").unwrap());
    e.insert("objectClass", ["top", "person"]).unwrap();
    e.insert("cn", ["Alice", "a*b"]).unwrap();
    e.insert("cn;lang-de", ["Alicia"]).unwrap();
    e.insert("uidNumber", ["12", "x"]).unwrap();
    e.insert("x-custom-1", [&[0xffu8, 0][..]]).unwrap();
    e
}

/// Mutations of valid filters: a character inserted, removed or replaced.
fn mutated() -> impl Strategy<Value = String> {
    (
        filter(),
        any::<prop::sample::Index>(),
        0..3u8,
        prop::sample::select(vec![
            '(', ')', '*', '\\', '=', ':', '&', '|', '!', '~', ';', ' ', 'ü', '\0',
        ]),
    )
        .prop_map(|(f, at, how, c)| {
            let mut text: Vec<char> = f.to_string().chars().collect();
            let i = at.index(text.len() + 1);
            match how {
                0 => text.insert(i, c),
                1 if i < text.len() => {
                    text.remove(i);
                }
                _ if i < text.len() => text[i] = c,
                _ => text.push(c),
            }
            text.into_iter().collect()
        })
}

/// Parsing `text` must not panic; when it succeeds the canonical form is a fixed point,
/// and when it fails the offset lies within the text.
fn check_text(text: &str) -> Result<(), TestCaseError> {
    match Filter::parse(text) {
        Ok(f) => {
            let canonical = f.to_string();
            let reparsed = Filter::parse(&canonical);
            prop_assert_eq!(reparsed.as_ref(), Ok(&f), "{}", canonical);
            if let Ok(c) = f.compile(Schema::builtin()) {
                let _ = c.evaluate(&sample_entry());
            }
        }
        Err(e) => {
            prop_assert!(e.offset <= text.len(), "{e:?}");
            prop_assert!(e.expected.starts_with("expected "), "{e:?}");
            prop_assert!(text.is_char_boundary(e.offset), "{e:?}");
            let _ = e.to_string();
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn display_parses_back_to_the_same_ast(f in filter()) {
        let text = f.to_string();
        match Filter::parse(&text) {
            Ok(parsed) => prop_assert_eq!(parsed, f, "{}", text),
            Err(e) => prop_assert!(false, "{text:?} does not parse:\n{e}"),
        }
    }

    #[test]
    fn compiling_and_evaluating_never_panics(f in filter()) {
        if let Ok(c) = f.compile(Schema::builtin()) {
            let _ = c.evaluate(&sample_entry());
        }
    }

    #[test]
    fn arbitrary_strings_never_panic(text in any::<String>()) {
        check_text(&text)?;
    }

    #[test]
    fn filter_alphabet_strings_never_panic(text in "[()&|!=*~<>:;a-zA-Z0-9.\\\\ü-]{0,40}") {
        check_text(&text)?;
    }

    #[test]
    fn mutated_filters_never_panic(text in mutated()) {
        check_text(&text)?;
    }
}
