//! The benchmark's directory: the preloaded users and groups, and the writers that change
//! them (the catch-up's mixed changes, the live phase's paced ones).

use std::ops::Range;
use std::time::{Duration, Instant};

use ldap3::{Ldap, LdapConnAsync, Mod, Scope};
use tests::rng::Lcg;

/// Containers under the base.
pub const PEOPLE: &str = "ou=people";
pub const GROUPS: &str = "ou=groups";
pub const MOVED: &str = "ou=moved";
/// The object whose change marks the end of a batch of changes.
pub const MARKER: &str = "cn=bench-marker";

/// How the preloaded directory is laid out: every tenth object is a group.
pub struct Layout {
    pub base: String,
    pub users: usize,
    pub groups: usize,
    /// Users `u0…u<reserved-1>` are left to the live phase (which modifies each once);
    /// the catch-up changes only the others.
    pub reserved: usize,
}

impl Layout {
    /// `objects` users and groups (plus four containers and the marker).
    pub fn new(base: &str, objects: usize, reserved: usize) -> Layout {
        let groups = objects / 10;
        Layout {
            base: base.to_owned(),
            users: objects - groups,
            groups,
            reserved,
        }
    }

    /// The preloaded users the catch-ups may rename or delete, in three parts that none
    /// shares: half for the mixed changes, a quarter each for the renames and deletes
    /// shapes (`shapes.rs`).
    pub fn catchup_users(&self) -> [Range<usize>; 3] {
        let free = self.users - self.reserved;
        let mixed = self.reserved + free / 2;
        let renames = mixed + free / 4;
        [self.reserved..mixed, mixed..renames, renames..self.users]
    }

    pub fn user_dn(&self, i: usize) -> String {
        format!("uid=u{i},{PEOPLE},{}", self.base)
    }

    /// The preloaded entries as LDIF content records, for `slapadd`.
    pub fn ldif(&self) -> String {
        let base = &self.base;
        let mut ldif = String::with_capacity((self.users + self.groups) * 330);
        for ou in [PEOPLE, GROUPS, MOVED] {
            let name = &ou[3..];
            ldif += &format!("dn: {ou},{base}\nobjectClass: organizationalUnit\nou: {name}\n\n");
        }
        ldif +=
            &format!("dn: {MARKER},{base}\nobjectClass: organizationalRole\ncn: bench-marker\n\n");
        for i in 0..self.users {
            ldif += &format!(
                "dn: {dn}\nobjectClass: inetOrgPerson\nuid: u{i}\ncn: User {i}\nsn: {i}\n\
                 givenName: User\nmail: u{i}@example.com\ntelephoneNumber: +49 421 {i}\n\
                 description: preloaded user number {i}\n\n",
                dn = self.user_dn(i)
            );
        }
        for i in 0..self.groups {
            ldif += &format!("dn: cn=g{i},{GROUPS},{base}\nobjectClass: groupOfNames\ncn: g{i}\n");
            for k in 0..5 {
                ldif += &format!("member: {}\n", self.user_dn((i * 7 + k * 131) % self.users));
            }
            ldif.push('\n');
        }
        ldif
    }
}

/// A bound connection as the rootDN.
pub async fn connect(url: &str, bind_dn: &str, password: &str) -> Result<Ldap, String> {
    let (conn, mut ldap) = LdapConnAsync::new(url)
        .await
        .map_err(|e| format!("cannot connect to {url}: {e}"))?;
    ldap3::drive!(conn);
    ldap.simple_bind(bind_dn, password)
        .await
        .and_then(|r| r.success())
        .map_err(|e| format!("cannot bind as {bind_dn}: {e}"))?;
    Ok(ldap)
}

/// What a batch of changes did: the DN of every transaction it makes (a rename or move
/// is two), in order.
pub struct Changes {
    pub transaction_dns: Vec<String>,
}

/// `count` mixed changes over one connection, renaming and deleting only `users`: adds of users and groups, modifies,
/// renames and moves, deletes (roughly 30/40/15/15).
pub async fn mixed_changes(
    ldap: &mut Ldap,
    layout: &Layout,
    users: Range<usize>,
    count: usize,
    seed: u64,
) -> Result<Changes, String> {
    let base = &layout.base;
    let mut rng = Lcg::new(seed);
    let mut users: Vec<String> = users.map(|i| layout.user_dn(i)).collect();
    let mut groups: Vec<String> = (0..layout.groups)
        .map(|i| format!("cn=g{i},{GROUPS},{base}"))
        .collect();
    let mut dns = Vec::with_capacity(count * 6 / 5);
    let fail = |what: &str, dn: &str, e: ldap3::LdapError| format!("{what} {dn}: {e}");
    for n in 0..count {
        let op = rng.next(100);
        let group = rng.next(5) == 0 && !groups.is_empty();
        let live = if group { &mut groups } else { &mut users };
        if live.is_empty() || op < 30 {
            let dn = if group {
                let dn = format!("cn=ng{n},{GROUPS},{base}");
                let member = layout.user_dn(rng.next(layout.users as u64) as usize);
                ldap.add(
                    &dn,
                    vec![
                        ("objectClass", ["groupOfNames"].into()),
                        ("cn", [format!("ng{n}").as_str()].into()),
                        ("member", [member.as_str()].into()),
                    ],
                )
                .await
                .and_then(|r| r.success())
                .map_err(|e| fail("add", &dn, e))?;
                dn
            } else {
                let dn = format!("uid=n{n},{PEOPLE},{base}");
                let uid = format!("n{n}");
                ldap.add(
                    &dn,
                    vec![
                        ("objectClass", ["inetOrgPerson"].into()),
                        ("uid", [uid.as_str()].into()),
                        ("cn", [uid.as_str()].into()),
                        ("sn", [uid.as_str()].into()),
                        ("mail", [format!("{uid}@example.com").as_str()].into()),
                    ],
                )
                .await
                .and_then(|r| r.success())
                .map_err(|e| fail("add", &dn, e))?;
                dn
            };
            let live = if group { &mut groups } else { &mut users };
            live.push(dn.clone());
            dns.push(dn);
            continue;
        }
        let pick = rng.next(live.len() as u64) as usize;
        let dn = live[pick].clone();
        match op {
            30..70 => {
                // A group gets new members, a user a new description.
                let (one, two) = (
                    layout.user_dn(rng.next(layout.users as u64) as usize),
                    layout.user_dn(rng.next(layout.users as u64) as usize),
                );
                let description = format!("change {n}");
                let m = if group {
                    Mod::Replace("member", [one.as_str(), two.as_str()].into())
                } else {
                    Mod::Replace("description", [description.as_str()].into())
                };
                ldap.modify(&dn, vec![m])
                    .await
                    .and_then(|r| r.success())
                    .map_err(|e| fail("modify", &dn, e))?;
                dns.push(dn);
            }
            70..85 => {
                // A rename in place, or (every other one) a move to ou=moved.
                let (attr, parent) = dn
                    .split_once(',')
                    .map(|(rdn, parent)| (rdn.split('=').next().unwrap_or("cn"), parent))
                    .unwrap_or(("cn", base));
                let new_rdn = format!("{attr}=r{n}");
                let moved = rng.next(2) == 0;
                let superior = format!("{MOVED},{base}");
                let new_parent = if moved { superior.as_str() } else { parent };
                ldap.modifydn(&dn, &new_rdn, true, moved.then_some(superior.as_str()))
                    .await
                    .and_then(|r| r.success())
                    .map_err(|e| fail("rename", &dn, e))?;
                let new_dn = format!("{new_rdn},{new_parent}");
                live[pick] = new_dn.clone();
                dns.push(dn);
                dns.push(new_dn);
            }
            _ => {
                ldap.delete(&dn)
                    .await
                    .and_then(|r| r.success())
                    .map_err(|e| fail("delete", &dn, e))?;
                live.swap_remove(pick);
                dns.push(dn);
            }
        }
    }
    Ok(Changes {
        transaction_dns: dns,
    })
}

/// Changes the marker object (the last transaction of a batch); returns its value.
pub async fn touch_marker(ldap: &mut Ldap, base: &str, value: &str) -> Result<(), String> {
    let dn = format!("{MARKER},{base}");
    ldap.modify(&dn, vec![Mod::Replace("description", [value].into())])
        .await
        .and_then(|r| r.success())
        .map(|_| ())
        .map_err(|e| format!("modify {dn}: {e}"))
}

/// The baseline of the catch-up: a base-scope fetch (`*`, `+`) of each DN in turn over one
/// connection, as a sequential listener does per transaction. Returns the time taken.
pub async fn sequential_fetches(ldap: &mut Ldap, dns: &[String]) -> Result<Duration, String> {
    let started = Instant::now();
    for dn in dns {
        // noSuchObject (a deleted or moved object) is an answer too.
        ldap.search(dn, Scope::Base, "(objectClass=*)", vec!["*", "+"])
            .await
            .map_err(|e| format!("fetch {dn}: {e}"))?;
    }
    Ok(started.elapsed())
}

/// One ldap3 streaming search of the whole base (`*`, `+`), counting the entries: what
/// a single-connection initialization cannot beat. Returns (entries, time).
pub async fn streaming_search(ldap: &mut Ldap, base: &str) -> Result<(usize, Duration), String> {
    use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
    let started = Instant::now();
    let adapters: Vec<Box<dyn Adapter<_, _>>> = vec![
        Box::new(EntriesOnly::new()),
        Box::new(PagedResults::new(1000)),
    ];
    let mut stream = ldap
        .streaming_search_with(
            adapters,
            base,
            Scope::Subtree,
            "(objectClass=*)",
            vec!["*", "+"],
        )
        .await
        .map_err(|e| format!("search {base}: {e}"))?;
    let mut count = 0;
    while stream
        .next()
        .await
        .map_err(|e| format!("search {base}: {e}"))?
        .is_some()
    {
        count += 1;
    }
    let _ = stream.finish().await;
    Ok((count, started.elapsed()))
}

/// The live phase's writer: `count` changes at `rate` per second (0: as fast as the
/// server answers; an add of a new user, then a modify of a reserved one, alternately),
/// each timed when the server answered.
/// Returns `(dn, command, ns since the epoch)` per change and the achieved rate.
pub async fn paced_changes(
    ldap: &mut Ldap,
    layout: &Layout,
    rate: u32,
    count: usize,
    first_reserved: usize,
) -> Result<(Vec<(String, char, u128)>, f64), String> {
    let base = &layout.base;
    let mut done = Vec::with_capacity(count);
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let started = tokio::time::Instant::now();
    for i in 0..count {
        // Rate 0: as fast as the server answers.
        if rate > 0 {
            tokio::time::sleep_until(started + interval * i as u32).await;
        }
        if i % 2 == 0 {
            let uid = format!("live{rate}-{i}");
            let dn = format!("uid={uid},{PEOPLE},{base}");
            ldap.add(
                &dn,
                vec![
                    ("objectClass", ["inetOrgPerson"].into()),
                    ("uid", [uid.as_str()].into()),
                    ("cn", [uid.as_str()].into()),
                    ("sn", [uid.as_str()].into()),
                ],
            )
            .await
            .and_then(|r| r.success())
            .map_err(|e| format!("add {dn}: {e}"))?;
            done.push((dn, 'a', crate::measure::now_ns()));
        } else {
            let dn = layout.user_dn(first_reserved + i / 2);
            let value = format!("live {rate} {i}");
            ldap.modify(
                &dn,
                vec![Mod::Replace("description", [value.as_str()].into())],
            )
            .await
            .and_then(|r| r.success())
            .map_err(|e| format!("modify {dn}: {e}"))?;
            done.push((dn, 'm', crate::measure::now_ns()));
        }
    }
    let achieved = count as f64 / started.elapsed().as_secs_f64();
    Ok((done, achieved))
}
