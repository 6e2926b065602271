//! The catch-up's workload shapes besides the mixed one
//! ([`crate::directory::mixed_changes`]). Each is made while the listener is stopped and
//! reported on its own, beside the fastest sequential client fetching the objects of
//! the same transactions. What a shape needs beforehand (containers with users, groups of
//! 1,000 members) is made by [`Shape::prepare`] while the listener runs.

use std::collections::HashSet;
use std::ops::Range;

use ldap3::{Ldap, LdapError, LdapResult, Mod};
use tests::rng::Lcg;

use crate::directory::{Changes, GROUPS, Layout, MOVED, PEOPLE};

/// Containers the renames shape moves with their users, and the users in each.
const SUBTREES: usize = 10;
const SUBTREE_USERS: usize = 20;
/// Members of each large group.
pub const GROUP_MEMBERS: usize = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shape {
    /// Adds of new users, every tenth a new group of five members.
    Adds,
    /// Renames in place and moves of users; every twentieth change moves a container
    /// with its users (a subtree move).
    Renames,
    /// Deletes of users, every other one re-created at the same DN.
    Deletes,
    /// One member more or less of a group of 1,000 members.
    Groups,
}

/// All shapes, in the order the benchmark runs them.
pub const ALL: [Shape; 4] = [Shape::Adds, Shape::Renames, Shape::Deletes, Shape::Groups];

impl Shape {
    pub fn name(self) -> &'static str {
        match self {
            Shape::Adds => "adds",
            Shape::Renames => "renames",
            Shape::Deletes => "deletes",
            Shape::Groups => "groups",
        }
    }

    /// What the shape's changes are, for the table.
    pub fn describe(self) -> &'static str {
        match self {
            Shape::Adds => "adds of users and groups",
            Shape::Renames => "renames and moves, incl. subtree moves",
            Shape::Deletes => "deletes, half re-created",
            Shape::Groups => "1,000-member groups, one member each",
        }
    }

    /// Makes what the shape's changes need, with the listener running: `groups` large
    /// groups for [`Shape::Groups`], the containers for [`Shape::Renames`].
    pub async fn prepare(self, ldap: &mut Ldap, layout: &Layout, groups: usize) -> Result<()> {
        let base = &layout.base;
        match self {
            Shape::Renames => {
                for k in 0..SUBTREES {
                    let ou = format!("d{k}");
                    let container = format!("ou={ou},{MOVED},{base}");
                    add(
                        ldap,
                        &container,
                        vec![
                            ("objectClass", ["organizationalUnit"].into()),
                            ("ou", [ou.as_str()].into()),
                        ],
                    )
                    .await?;
                    for j in 0..SUBTREE_USERS {
                        let uid = format!("s{k}-{j}");
                        add(ldap, &format!("uid={uid},{container}"), user(&uid)).await?;
                    }
                }
            }
            Shape::Groups => {
                for g in 0..groups {
                    let members: Vec<String> = (0..GROUP_MEMBERS)
                        .map(|j| layout.user_dn((g * GROUP_MEMBERS + j) % layout.users))
                        .collect();
                    add_group(ldap, &format!("big{g}"), base, &members).await?;
                }
            }
            Shape::Adds | Shape::Deletes => {}
        }
        Ok(())
    }

    /// `count` changes of the shape over one connection; `users` are the preloaded users
    /// the shape may rename or delete, `groups` the large groups [`Shape::prepare`] made.
    pub async fn changes(
        self,
        ldap: &mut Ldap,
        layout: &Layout,
        users: Range<usize>,
        groups: usize,
        count: usize,
        seed: u64,
    ) -> Result<Changes> {
        let mut rng = Lcg::new(seed);
        let transaction_dns = match self {
            Shape::Adds => adds(ldap, layout, count).await?,
            Shape::Renames => renames(ldap, layout, users, count, &mut rng).await?,
            Shape::Deletes => deletes(ldap, layout, users, count, &mut rng).await?,
            Shape::Groups => members(ldap, layout, groups, count, &mut rng).await?,
        };
        Ok(Changes { transaction_dns })
    }
}

type Result<T> = std::result::Result<T, String>;

async fn adds(ldap: &mut Ldap, layout: &Layout, count: usize) -> Result<Vec<String>> {
    let base = &layout.base;
    let mut dns = Vec::with_capacity(count);
    for n in 0..count {
        let dn = if n % 10 == 9 {
            let members: Vec<String> = (0..5)
                .map(|k| layout.user_dn((n * 7 + k * 131) % layout.users))
                .collect();
            add_group(ldap, &format!("addg{n}"), base, &members).await?
        } else {
            let uid = format!("add{n}");
            let dn = format!("uid={uid},{PEOPLE},{base}");
            add(ldap, &dn, user(&uid)).await?;
            dn
        };
        dns.push(dn);
    }
    Ok(dns)
}

/// A rename or move is two transactions: the old DN's and the new one's.
async fn renames(
    ldap: &mut Ldap,
    layout: &Layout,
    users: Range<usize>,
    count: usize,
    rng: &mut Lcg,
) -> Result<Vec<String>> {
    let base = &layout.base;
    let mut live: Vec<String> = users.map(|i| layout.user_dn(i)).collect();
    let mut containers: Vec<String> = (0..SUBTREES)
        .map(|k| format!("ou=d{k},{MOVED},{base}"))
        .collect();
    let parents = [format!("{MOVED},{base}"), format!("{PEOPLE},{base}")];
    // The parent `dn` is not under.
    let other = |dn: &str| match dn.ends_with(&format!(",{}", parents[0])) {
        true => parents[1].clone(),
        false => parents[0].clone(),
    };
    let mut dns = Vec::with_capacity(count * 2);
    for n in 0..count {
        let (slot, new_rdn, superior) = if n % 20 == 19 {
            // A container with its users goes to the other parent.
            let k = rng.next(SUBTREES as u64) as usize;
            let to = other(&containers[k]);
            (&mut containers[k], format!("ou=d{k}-{n}"), Some(to))
        } else {
            if live.is_empty() {
                return Err("the renames shape ran out of users".into());
            }
            let pick = rng.next(live.len() as u64) as usize;
            // Every other one moves to the other container.
            let superior = (rng.next(2) == 1).then(|| other(&live[pick]));
            (&mut live[pick], format!("uid=ren{n}"), superior)
        };
        let parent = match &superior {
            Some(to) => to.clone(),
            None => slot.split_once(',').map_or("", |(_, p)| p).to_owned(),
        };
        let dn = std::mem::replace(slot, format!("{new_rdn},{parent}"));
        ldap.modifydn(&dn, &new_rdn, true, superior.as_deref())
            .await
            .and_then(LdapResult::success)
            .map_err(|e| failed("rename", &dn, e))?;
        dns.push(dn);
        dns.push(slot.clone());
    }
    Ok(dns)
}

async fn deletes(
    ldap: &mut Ldap,
    layout: &Layout,
    users: Range<usize>,
    count: usize,
    rng: &mut Lcg,
) -> Result<Vec<String>> {
    let mut live: Vec<usize> = users.collect();
    let mut dns = Vec::with_capacity(count * 3 / 2);
    for _ in 0..count {
        if live.is_empty() {
            return Err("the deletes shape ran out of users".into());
        }
        let pick = rng.next(live.len() as u64) as usize;
        let i = live[pick];
        let dn = layout.user_dn(i);
        ldap.delete(&dn)
            .await
            .and_then(LdapResult::success)
            .map_err(|e| failed("delete", &dn, e))?;
        dns.push(dn.clone());
        if rng.next(2) == 0 {
            add(ldap, &dn, user(&format!("u{i}"))).await?;
            dns.push(dn);
        } else {
            live.swap_remove(pick);
        }
    }
    Ok(dns)
}

/// Adds a member to a large group, or deletes one of its members.
async fn members(
    ldap: &mut Ldap,
    layout: &Layout,
    groups: usize,
    count: usize,
    rng: &mut Lcg,
) -> Result<Vec<String>> {
    if groups == 0 {
        return Err("the groups shape needs a large group".into());
    }
    let base = &layout.base;
    let mut members: Vec<(Vec<usize>, HashSet<usize>)> = (0..groups)
        .map(|g| {
            let list: Vec<usize> = (0..GROUP_MEMBERS)
                .map(|j| (g * GROUP_MEMBERS + j) % layout.users)
                .collect();
            let set = list.iter().copied().collect();
            (list, set)
        })
        .collect();
    let mut dns = Vec::with_capacity(count);
    for _ in 0..count {
        let g = rng.next(groups as u64) as usize;
        let dn = format!("cn=big{g},{GROUPS},{base}");
        let (list, set) = &mut members[g];
        let adding = rng.next(2) == 0 || list.is_empty();
        let member = if adding {
            let mut i = rng.next(layout.users as u64) as usize;
            while set.contains(&i) {
                i = (i + 1) % layout.users;
            }
            list.push(i);
            set.insert(i);
            layout.user_dn(i)
        } else {
            let i = list.swap_remove(rng.next(list.len() as u64) as usize);
            set.remove(&i);
            layout.user_dn(i)
        };
        let values = [member.as_str()].into();
        let change = match adding {
            true => Mod::Add("member", values),
            false => Mod::Delete("member", values),
        };
        ldap.modify(&dn, vec![change])
            .await
            .and_then(LdapResult::success)
            .map_err(|e| failed("modify", &dn, e))?;
        dns.push(dn);
    }
    Ok(dns)
}

/// Adds the group `cn` under `ou=groups` with `members`; its DN.
async fn add_group(ldap: &mut Ldap, cn: &str, base: &str, members: &[String]) -> Result<String> {
    let dn = format!("cn={cn},{GROUPS},{base}");
    let members: HashSet<&str> = members.iter().map(String::as_str).collect();
    add(
        ldap,
        &dn,
        vec![
            ("objectClass", ["groupOfNames"].into()),
            ("cn", [cn].into()),
            ("member", members),
        ],
    )
    .await?;
    Ok(dn)
}

/// The attributes of a user named `uid`.
fn user(uid: &str) -> Vec<(&'static str, HashSet<&str>)> {
    vec![
        ("objectClass", ["inetOrgPerson"].into()),
        ("uid", [uid].into()),
        ("cn", [uid].into()),
        ("sn", [uid].into()),
    ]
}

async fn add(ldap: &mut Ldap, dn: &str, attributes: Vec<(&str, HashSet<&str>)>) -> Result<()> {
    ldap.add(dn, attributes)
        .await
        .and_then(LdapResult::success)
        .map(drop)
        .map_err(|e| failed("add", dn, e))
}

fn failed(what: &str, dn: &str, e: LdapError) -> String {
    format!("{what} {dn}: {e}")
}
