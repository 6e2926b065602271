//! The cache's write path as the listener drives it while catching up: per transaction it
//! loads the old state of the object, stores the new one (a modify, a move, or a delete
//! and re-create) with its registrations, and records the transaction ID; a commit group's
//! transactions share one non-durable write transaction.
//!
//! The cache is prefilled with 20,000 user objects (25 attributes incl. entryUUID,
//! entryCSN and memberOf), each registered with 3–5 of 11 modules. One iteration is one
//! group of [`GROUP`] transactions: 70% modifies, 15% moves, 15% delete + re-create;
//! every tenth changes the object's registrations.

use std::collections::BTreeSet;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use listener_runtime::testing::Cache;
use listener_runtime::{Dn, Entry};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USERS: usize = 20_000;
/// Transactions per write transaction (a commit group).
const GROUP: usize = 100;
/// Non-durable commits between durable ones (so redb can reuse freed pages).
const SYNC_EVERY: u64 = 50;

const MODULES: [&str; 11] = [
    "replication",
    "nscd",
    "samba4-idmap",
    "s4-connector",
    "ad-connector",
    "portal",
    "mail",
    "home-dirs",
    "printer",
    "groups-cache",
    "self-service",
];

/// A small deterministic generator (xorshift64*), so every run does the same work.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn modules(rng: &mut Rng) -> BTreeSet<&'static str> {
    let n = 3 + rng.below(3);
    let mut set = BTreeSet::new();
    while set.len() < n {
        set.insert(MODULES[rng.below(MODULES.len())]);
    }
    set
}

fn dn(i: usize, moved: bool) -> Dn {
    let container = if moved { "ou=moved" } else { "cn=users" };
    Dn::parse(&format!("uid=user{i:05},{container},dc=example,dc=com")).unwrap()
}

/// A typical UCS user object: 25 attributes.
fn user(i: usize, moved: bool, csn: u64) -> Entry {
    let mut e = Entry::new(dn(i, moved));
    let uid = format!("user{i:05}");
    let name = format!("User {i:05}");
    let attrs: [(&str, Vec<String>); 24] = [
        (
            "objectClass",
            [
                "top",
                "person",
                "organizationalPerson",
                "inetOrgPerson",
                "posixAccount",
                "sambaSamAccount",
                "univentionPerson",
                "univentionMail",
            ]
            .map(str::to_owned)
            .to_vec(),
        ),
        ("uid", vec![uid.clone()]),
        ("cn", vec![name.clone()]),
        ("sn", vec![format!("{i:05}")]),
        ("givenName", vec!["User".into()]),
        ("displayName", vec![name]),
        ("mail", vec![format!("{uid}@example.com")]),
        ("mailPrimaryAddress", vec![format!("{uid}@example.com")]),
        ("uidNumber", vec![(2000 + i).to_string()]),
        ("gidNumber", vec!["5001".into()]),
        ("homeDirectory", vec![format!("/home/{uid}")]),
        ("loginShell", vec!["/bin/bash".into()]),
        (
            "sambaSID",
            vec![format!(
                "S-1-5-21-1290176872-3541151870-1783641248-{}",
                5000 + i
            )],
        ),
        ("sambaAcctFlags", vec!["[U          ]".into()]),
        ("krb5PrincipalName", vec![format!("{uid}@EXAMPLE.COM")]),
        (
            "userPassword",
            vec![format!(
                "{{crypt}}$6$abcdefghijklmnop${uid}{}",
                "x".repeat(60)
            )],
        ),
        ("telephoneNumber", vec!["+49 421 22232-0".into()]),
        ("description", vec!["A user of the benchmark".into()]),
        (
            "entryUUID",
            vec![format!("9f1ac6d2-4d0a-103c-9b6e-{i:012x}")],
        ),
        (
            "entryCSN",
            vec![format!("20261128{csn:06}.000000Z#000000#000#000000")],
        ),
        (
            "memberOf",
            (0..5)
                .map(|g| format!("cn=group{},cn=groups,dc=example,dc=com", (i + g * 7) % 50))
                .collect(),
        ),
        ("createTimestamp", vec!["20261128070000Z".into()]),
        (
            "modifyTimestamp",
            vec![format!("2026112807{:04}Z", csn % 10_000)],
        ),
        ("creatorsName", vec!["cn=admin,dc=example,dc=com".into()]),
    ];
    for (name, values) in attrs {
        e.insert(name, values).unwrap();
    }
    e.insert("univentionObjectType", ["users/user"]).unwrap();
    e
}

/// The bench's view of where each user is cached and with which modules.
struct State {
    moved: Vec<bool>,
    modules: Vec<BTreeSet<&'static str>>,
    csn: u64,
    rng: Rng,
}

fn prefill(cache: &Cache) -> State {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut w = cache.write().unwrap();
    let mut state = State {
        moved: vec![false; USERS],
        modules: Vec::with_capacity(USERS),
        csn: 0,
        rng: Rng(0x1234_5678_9abc_def1),
    };
    for i in 0..USERS {
        let mods = modules(&mut rng);
        w.put_entry(&user(i, false, 0), &mods).unwrap();
        state.modules.push(mods);
    }
    w.set_last_id(1).unwrap();
    w.commit().unwrap();
    state
}

/// One transaction's cache work, prepared outside the measured time.
enum Op {
    Modify(Entry),
    Move(Dn, Entry),
    Recreate(Entry),
}

/// The next commit group: [`GROUP`] transactions, each with the modules it leaves
/// registered.
fn plan(s: &mut State) -> Vec<(Dn, Op, BTreeSet<&'static str>)> {
    (0..GROUP)
        .map(|_| {
            s.csn += 1;
            let i = s.rng.below(USERS);
            let kind = s.rng.below(100);
            if s.rng.below(10) == 0 {
                s.modules[i] = modules(&mut s.rng);
            }
            let old_dn = dn(i, s.moved[i]);
            let op = if kind < 70 {
                Op::Modify(user(i, s.moved[i], s.csn))
            } else if kind < 85 {
                s.moved[i] = !s.moved[i];
                Op::Move(old_dn.clone(), user(i, s.moved[i], s.csn))
            } else {
                Op::Recreate(user(i, s.moved[i], s.csn))
            };
            (old_dn, op, s.modules[i].clone())
        })
        .collect()
}

/// Applies a commit group as the listener does: one non-durable write transaction.
fn apply(cache: &Cache, group: &[(Dn, Op, BTreeSet<&'static str>)], first_id: u64) {
    let mut w = cache.write().unwrap();
    w.set_durable(false).unwrap();
    for (n, (old_dn, op, mods)) in group.iter().enumerate() {
        black_box(w.entry(old_dn).unwrap().unwrap());
        match op {
            Op::Modify(entry) => w.put_entry(entry, mods).unwrap(),
            Op::Move(old, entry) => w.move_entry(old, entry, mods).unwrap(),
            Op::Recreate(entry) => {
                w.remove_entry(old_dn).unwrap();
                w.put_entry(entry, mods).unwrap();
            }
        }
        w.set_last_id(first_id + n as u64).unwrap();
    }
    w.commit().unwrap();
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let mut state = prefill(&cache);
    let mut group_ = c.benchmark_group("cache_write");
    group_.throughput(Throughput::Elements(GROUP as u64));
    group_.bench_function("group_of_100_transactions", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for n in 0..iters {
                let first_id = state.csn + 1;
                let ops = plan(&mut state);
                let started = Instant::now();
                apply(&cache, &ops, first_id);
                spent += started.elapsed();
                if n % SYNC_EVERY == SYNC_EVERY - 1 {
                    cache.sync().unwrap();
                }
            }
            cache.sync().unwrap();
            spent
        })
    });
    group_.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
