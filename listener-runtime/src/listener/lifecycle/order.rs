//! Parents before children (semantics §6) for objects that arrive in the server's order
//! rather than sorted: an initialization streams them instead of holding them all.
//!
//! slapd returns a subtree search mostly parents first (in the order the entries were
//! added), but an object moved under a newer container comes before it. So an object is
//! passed on at once unless its parent is an object the initialization will deliver and
//! has not delivered yet; then it waits for that parent. Whether a parent will be
//! delivered (it matches the module's filter) is asked of the caller once per parent —
//! most objects share a few containers, so that is a few base searches per
//! initialization.
//!
//! Memory: one 64-bit hash per delivered object (about 1.5 MB for 100,000), plus the
//! objects waiting for their parent. A hash collision can only pass an object on before
//! its parent, never lose one.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

use listener_core::{Dn, Entry};

/// The key of a normalized DN in the sets below.
pub(crate) fn key(normalized: &str) -> u64 {
    let mut h = DefaultHasher::new();
    normalized.hash(&mut h);
    h.finish()
}

/// The normalized DN of `dn`'s parent (`None` for the root).
fn parent_normalized(dn: &Dn) -> Option<&str> {
    let leaf = dn.rdn()?.normalized().len();
    Some(dn.normalized().get(leaf + 1..).unwrap_or(""))
}

/// What [`ParentsFirst::offer`] needs to know before it can place an object.
#[derive(Debug)]
pub(crate) struct AskParent {
    /// The object, handed back.
    pub entry: Entry,
    /// Its parent, to be looked up with the module's filter.
    pub parent: Dn,
}

/// Reorders a stream of objects so that every object comes after its parent whenever the
/// parent is one of them. See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct ParentsFirst {
    /// Objects at or above this depth (the search base) need no parent.
    base_len: usize,
    delivered: HashSet<u64>,
    /// Keys of the objects now waiting.
    waiting: HashSet<u64>,
    /// Waiting objects by their parent's key.
    children: HashMap<u64, Vec<Entry>>,
    /// Parents asked about: whether they match the filter (will be delivered).
    parents: HashMap<u64, bool>,
}

impl ParentsFirst {
    /// For a search under `base`.
    pub(crate) fn new(base: &Dn) -> ParentsFirst {
        ParentsFirst {
            base_len: base.len(),
            ..ParentsFirst::default()
        }
    }

    /// Places `entry`: pushes it (and whatever waited for it) onto `out` in delivery
    /// order, keeps it waiting for its parent, or — when it is unknown whether the parent
    /// will come — hands it back with the parent to ask about ([`ParentsFirst::answer`]).
    pub(crate) fn offer(&mut self, entry: Entry, out: &mut Vec<Entry>) -> Option<AskParent> {
        let parent = match parent_normalized(entry.dn()) {
            Some(parent) if entry.dn().len() > self.base_len => key(parent),
            _ => {
                self.deliver(entry, out);
                return None;
            }
        };
        if self.delivered.contains(&parent) {
            self.deliver(entry, out);
            return None;
        }
        if self.waiting.contains(&parent) {
            self.wait(parent, entry);
            return None;
        }
        match self.parents.get(&parent) {
            Some(true) => self.wait(parent, entry),
            Some(false) => self.deliver(entry, out),
            None => {
                let parent_dn = entry.dn().parent().unwrap_or_else(Dn::root);
                return Some(AskParent {
                    entry,
                    parent: parent_dn,
                });
            }
        }
        None
    }

    /// The answer to an [`AskParent`]: whether the parent matches the filter.
    pub(crate) fn answer(&mut self, asked: AskParent, matches: bool, out: &mut Vec<Entry>) {
        self.parents.insert(key(asked.parent.normalized()), matches);
        // Cannot ask again: the parent is now known.
        let _ = self.offer(asked.entry, out);
    }

    /// The end of the stream: the objects still waiting (their parent matched when asked
    /// but did not come — deleted or moved meanwhile), parents first among themselves.
    pub(crate) fn finish(self, out: &mut Vec<Entry>) {
        let mut rest: Vec<Entry> = self.children.into_values().flatten().collect();
        rest.sort_by(|a, b| {
            a.dn()
                .len()
                .cmp(&b.dn().len())
                .then_with(|| a.dn().normalized().cmp(b.dn().normalized()))
        });
        out.extend(rest);
    }

    fn wait(&mut self, parent: u64, entry: Entry) {
        self.waiting.insert(key(entry.dn().normalized()));
        self.children.entry(parent).or_default().push(entry);
    }

    fn deliver(&mut self, entry: Entry, out: &mut Vec<Entry>) {
        let mut ready = vec![entry];
        while let Some(entry) = ready.pop() {
            let k = key(entry.dn().normalized());
            self.waiting.remove(&k);
            self.delivered.insert(k);
            out.push(entry);
            if let Some(children) = self.children.remove(&k) {
                ready.extend(children);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(dn: &str) -> Entry {
        Entry::new(Dn::parse(dn).unwrap())
    }

    fn dns(out: &[Entry]) -> Vec<&str> {
        out.iter().map(|e| e.dn().as_str()).collect()
    }

    #[test]
    fn a_child_before_its_matching_parent_waits_for_it() {
        let mut order = ParentsFirst::new(&Dn::parse("dc=x").unwrap());
        let mut out = Vec::new();
        assert!(order.offer(entry("dc=x"), &mut out).is_none());
        // The child of a container not yet seen: ask; it matches, so the child waits,
        // and so does the grandchild that follows.
        let asked = order.offer(entry("cn=a,ou=moved,dc=x"), &mut out).unwrap();
        assert_eq!(asked.parent.as_str(), "ou=moved,dc=x");
        order.answer(asked, true, &mut out);
        assert!(
            order
                .offer(entry("cn=b,cn=a,ou=moved,dc=x"), &mut out)
                .is_none()
        );
        assert_eq!(dns(&out), ["dc=x"]);
        assert!(order.offer(entry("ou=moved,dc=x"), &mut out).is_none());
        assert_eq!(
            dns(&out),
            [
                "dc=x",
                "ou=moved,dc=x",
                "cn=a,ou=moved,dc=x",
                "cn=b,cn=a,ou=moved,dc=x"
            ]
        );
    }

    #[test]
    fn children_of_a_parent_outside_the_filter_pass_at_once() {
        let mut order = ParentsFirst::new(&Dn::parse("dc=x").unwrap());
        let mut out = Vec::new();
        let asked = order
            .offer(entry("uid=a,ou=people,dc=x"), &mut out)
            .unwrap();
        order.answer(asked, false, &mut out);
        // The same parent is not asked about again.
        assert!(
            order
                .offer(entry("uid=b,ou=people,dc=x"), &mut out)
                .is_none()
        );
        assert_eq!(dns(&out), ["uid=a,ou=people,dc=x", "uid=b,ou=people,dc=x"]);
    }

    #[test]
    fn waiting_objects_whose_parent_never_comes_end_parents_first() {
        let mut order = ParentsFirst::new(&Dn::parse("dc=x").unwrap());
        let mut out = Vec::new();
        let asked = order
            .offer(entry("cn=c,cn=b,ou=gone,dc=x"), &mut out)
            .unwrap();
        order.answer(asked, true, &mut out);
        let asked = order.offer(entry("cn=b,ou=gone,dc=x"), &mut out).unwrap();
        order.answer(asked, true, &mut out);
        assert!(out.is_empty());
        order.finish(&mut out);
        assert_eq!(dns(&out), ["cn=b,ou=gone,dc=x", "cn=c,cn=b,ou=gone,dc=x"]);
    }
}
