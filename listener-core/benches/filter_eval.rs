//! Filter evaluation throughput (docs/architecture.md, "Performance design": no per-event
//! allocation in the matcher). Goal: ≥ 5 million evaluations/s on one core for the template's
//! filter against a 20-attribute entry.
//!
//! The baseline does the template filter's work with the generic `Entry::has_value` (which
//! normalizes every value, allocating), measured in the same run for a ratio.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use listener_core::{Dn, Entry, Filter, Schema};

const TEMPLATE: &str = "(&(objectClass=inetOrgPerson)(uid=example))";
const SIX_CLAUSES: &str = "(&(objectClass=inetOrgPerson)(uid=exa*)\
     (|(mail=*@example.com)(cn=*Exam*))(!(description=disabled))(sn=Ex*pl*e))";

/// A typical user entry: 20 attributes, objectClass with 4 values.
fn entry() -> Entry {
    let mut e = Entry::new(Dn::parse("uid=example,cn=users,dc=example,dc=com").unwrap());
    let attrs: [(&str, &[&str]); 20] = [
        (
            "objectClass",
            &["top", "person", "organizationalPerson", "inetOrgPerson"],
        ),
        ("cn", &["Example User"]),
        ("sn", &["Example"]),
        ("givenName", &["Joe"]),
        ("displayName", &["Joe Example"]),
        ("mail", &["joe.example@example.com"]),
        ("telephoneNumber", &["+49 421 22232-0"]),
        ("title", &["Engineer"]),
        ("description", &["A user for the benchmark"]),
        ("homeDirectory", &["/home/example"]),
        ("loginShell", &["/bin/bash"]),
        ("uidNumber", &["2001"]),
        ("gidNumber", &["5001"]),
        ("employeeNumber", &["4711"]),
        ("street", &["Mary-Somerville-Str. 1"]),
        ("postalCode", &["28359"]),
        ("l", &["Bremen"]),
        ("entryUUID", &["9f1ac6d2-4d0a-103c-9b6e-2b1d2c8e6f10"]),
        ("entryCSN", &["20261128070000.000000Z#000000#000#000000"]),
        ("uid", &["example"]),
    ];
    for (name, values) in attrs {
        e.insert(name, values.iter().copied()).unwrap();
    }
    e
}

fn bench(c: &mut Criterion) {
    let entry = entry();
    let mut group = c.benchmark_group("filter_eval");
    group.throughput(Throughput::Elements(1));
    for (name, text) in [
        ("template", TEMPLATE),
        ("six_clauses_substrings", SIX_CLAUSES),
    ] {
        let compiled = Filter::parse(text)
            .unwrap()
            .compile(Schema::builtin())
            .unwrap();
        assert!(compiled.matches(&entry), "{name} must match the entry");
        group.bench_function(name, |b| {
            b.iter(|| black_box(&compiled).matches(black_box(&entry)))
        });
    }
    group.bench_function("baseline_entry_has_value", |b| {
        b.iter(|| {
            let e = black_box(&entry);
            e.has_value("objectClass", b"inetOrgPerson") && e.has_value("uid", b"example")
        })
    });
    group.finish();

    c.bench_function("filter_parse_compile/template", |b| {
        b.iter(|| {
            Filter::parse(black_box(TEMPLATE))
                .unwrap()
                .compile(Schema::builtin())
                .unwrap()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
