//! Cost of [`plan`] for one change against a realistic set of modules: the dispatch part
//! of the listener's apply stage, per transaction.
//!
//! A user entry with 25 attributes (operational ones included) is modified — a changed
//! `description` plus the new `entryCSN` and `modifyTimestamp` — against 11 modules of
//! all three APIs, some with `attributes`, some whose filters do not match users. The
//! modules whose filter matches the old entry are registered on it, as after catching up.
//! Two more cases for contrast: a change of metadata alone (modules without `attributes`
//! still get a modify) and the create of the same user (no one registered, no diff).

use std::collections::BTreeSet;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use listener_core::{Dn, Entry, ModuleConfig, ModuleForm, Schema};
use listener_runtime::testing::{Change, ModuleSpec, plan};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// (name, filter, attributes, form, asynchronous)
const MODULES: [(&str, &str, &[&str], ModuleForm, bool); 11] = [
    (
        "users-classic",
        "(objectClass=posixAccount)",
        &[],
        ModuleForm::Function,
        false,
    ),
    (
        "users-mail",
        "(&(objectClass=inetOrgPerson)(mail=*))",
        &["mail", "mailAlternativeAddress"],
        ModuleForm::Struct,
        false,
    ),
    (
        "users-description",
        "(objectClass=person)",
        &["description", "displayName"],
        ModuleForm::Struct,
        true,
    ),
    ("users-all", "(uid=*)", &[], ModuleForm::Struct, false),
    (
        "users-samba",
        "(&(objectClass=sambaSamAccount)(!(uid=*$)))",
        &[],
        ModuleForm::Function,
        false,
    ),
    (
        "groups",
        "(objectClass=posixGroup)",
        &[],
        ModuleForm::Struct,
        false,
    ),
    (
        "computers",
        "(|(objectClass=univentionWindows)(objectClass=univentionMemberServer))",
        &[],
        ModuleForm::Function,
        false,
    ),
    (
        "home-share",
        "(&(objectClass=posixAccount)(loginShell=/bin/bash))",
        &["homeDirectory", "uidNumber"],
        ModuleForm::Function,
        false,
    ),
    (
        "nagios",
        "(objectClass=univentionNagiosServiceClass)",
        &[],
        ModuleForm::Struct,
        true,
    ),
    (
        "phone",
        "(&(objectClass=person)(telephoneNumber=*))",
        &["telephoneNumber"],
        ModuleForm::Struct,
        false,
    ),
    (
        "everything",
        "(objectClass=*)",
        &[],
        ModuleForm::Struct,
        true,
    ),
];

fn specs() -> Vec<ModuleSpec> {
    MODULES
        .iter()
        .enumerate()
        .map(
            |(i, (name, filter, attributes, form, run_asynchronously))| {
                let mut config = ModuleConfig::new(name, "", filter, *form);
                config.attributes = attributes.iter().map(|a| a.to_string()).collect();
                config.run_asynchronously = *run_asynchronously;
                config.priority = (i % 4) as f64;
                ModuleSpec::from_config(&config, Schema::builtin()).unwrap()
            },
        )
        .collect()
}

/// A user as UCS stores it: 25 attributes, operational ones included.
fn user() -> Entry {
    let mut e = Entry::new(Dn::parse("uid=example,cn=users,dc=example,dc=com").unwrap());
    let attrs: [(&str, &[&str]); 25] = [
        (
            "objectClass",
            &[
                "top",
                "person",
                "organizationalPerson",
                "inetOrgPerson",
                "posixAccount",
                "sambaSamAccount",
                "shadowAccount",
            ],
        ),
        ("uid", &["example"]),
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
        (
            "sambaSID",
            &["S-1-5-21-1290176872-3541151870-1783641248-5002"],
        ),
        ("entryUUID", &["9f1ac6d2-4d0a-103c-9b6e-2b1d2c8e6f10"]),
        ("entryCSN", &["20261128070000.000000Z#000000#000#000000"]),
        ("createTimestamp", &["20261128070000Z"]),
        ("modifyTimestamp", &["20261128070000Z"]),
        ("creatorsName", &["cn=admin,dc=example,dc=com"]),
        (
            "memberOf",
            &[
                "cn=Domain Users,cn=groups,dc=example,dc=com",
                "cn=staff,cn=groups,dc=example,dc=com",
            ],
        ),
    ];
    for (name, values) in attrs {
        e.insert(name, values.iter().copied()).unwrap();
    }
    e
}

fn bench(c: &mut Criterion) {
    let specs = specs();
    let old = user();
    let mut new = old.clone();
    new.insert("description", ["A modified user for the benchmark"])
        .unwrap();
    new.insert("entryCSN", ["20261128080000.000000Z#000000#000#000000"])
        .unwrap();
    new.insert("modifyTimestamp", ["20261128080000Z"]).unwrap();
    let registered: BTreeSet<String> = specs
        .iter()
        .filter(|s| s.filter.matches(&old))
        .map(|s| s.name.clone())
        .collect();
    assert_eq!(registered.len(), 8, "the user matches 8 of the 11 modules");

    let mut group = c.benchmark_group("dispatch_plan");
    group.throughput(Throughput::Elements(1));
    let modify = Change::Update {
        old: Some(&old),
        new: &new,
    };
    group.bench_function("modify_user_11_modules", |b| {
        b.iter(|| {
            plan(
                black_box(&modify),
                black_box(&registered),
                black_box(&specs),
            )
        })
    });
    let metadata_only = {
        let mut e = old.clone();
        e.insert("entryCSN", ["20261128080000.000000Z#000000#000#000000"])
            .unwrap();
        e
    };
    let touch = Change::Update {
        old: Some(&old),
        new: &metadata_only,
    };
    group.bench_function("metadata_only_11_modules", |b| {
        b.iter(|| plan(black_box(&touch), black_box(&registered), black_box(&specs)))
    });
    let create = Change::Update {
        old: None,
        new: &new,
    };
    group.bench_function("create_user_11_modules", |b| {
        b.iter(|| {
            plan(
                black_box(&create),
                black_box(&BTreeSet::new()),
                black_box(&specs),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
