//! The matcher's hot path allocates nothing (docs/architecture.md, "Performance design"): the
//! template's filter against a typical entry, matching or not.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use listener_core::{Dn, Entry, Filter, Schema};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn user(classes: &[&str], uid: &str) -> Entry {
    let mut e = Entry::new(Dn::parse("uid=example,dc=example,dc=com").unwrap());
    e.insert("objectClass", classes.iter().copied()).unwrap();
    e.insert("cn", ["Example User"]).unwrap();
    e.insert("sn", ["Example"]).unwrap();
    e.insert("mail", ["example@example.com"]).unwrap();
    e.insert("description", ["Some Words Here"]).unwrap();
    e.insert("uid", [uid]).unwrap();
    e.insert("uidNumber", ["1000"]).unwrap();
    e
}

#[test]
fn evaluating_common_filters_does_not_allocate() {
    let user_classes = ["top", "person", "organizationalPerson", "inetOrgPerson"];
    let entries = [
        user(&user_classes, "example"),
        user(&user_classes, "Other"),
        user(&["top", "organizationalRole"], "example"),
    ];
    for text in [
        "(&(objectClass=inetOrgPerson)(uid=example))",
        "(&(uid=Ex*)(|(mail=*@EXAMPLE.com)(cn=*user))(!(description=some words here)))",
        "(|(uidNumber>=100)(uidNumber<=9))",
    ] {
        let compiled = Filter::parse(text)
            .unwrap()
            .compile(Schema::builtin())
            .unwrap();
        for entry in &entries {
            let before = ALLOCATIONS.load(Ordering::Relaxed);
            let result = compiled.evaluate(entry);
            let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
            assert_eq!(
                allocations,
                0,
                "{text} allocated on {:?} (result {result:?}); is a matching rule's \
                 normalize no longer covered by the fast path in filter/fast.rs?",
                entry.get("uid")
            );
        }
    }
}
