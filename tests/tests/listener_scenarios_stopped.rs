//! Semantics §10's "listener stopped" rows: the objects exist and the listener has seen
//! them; the listener is stopped (SIGTERM), the changes are made, and the listener is
//! started again and processes them as a batch, fetching each object's *current* state.
//! The example `printer` module records the calls ([`readable`]: `rdn(old,new,cmd)`,
//! entryUUIDs named a, b, … in order of appearance, DNs relative to the row's container).
//!
//! One domain serves every row, each in its own container.

use tests::Slapd;
use tests::domain::{Domain, assert_in_order, readable};
use tests::ldif;

/// A row: its container, and how many calls it had before the listener stopped.
struct Row {
    scope: String,
    before: usize,
}

impl Row {
    fn dn(&self, relative: &str) -> String {
        format!("{relative},{}", self.scope)
    }

    /// The row's calls made after the listener restarted.
    fn after(&self, domain: &Domain) -> Vec<String> {
        readable(&domain.calls(), &self.scope)[self.before..].to_vec()
    }
}

/// Creates a row's container and `objects` (relative DNs, parents first) while the
/// listener runs.
fn row(domain: &mut Domain, name: &str, objects: &[&str]) -> Row {
    let scope = format!("cn={name},{}", domain.slapd.base());
    domain.slapd.ldapmodify(&ldif::role(&scope)).unwrap();
    for object in objects {
        domain
            .slapd
            .ldapmodify(&ldif::role(&format!("{object},{scope}")))
            .unwrap();
    }
    Row { scope, before: 0 }
}

#[test]
fn scenarios_with_the_listener_stopped() {
    let mut domain = Domain::start(tests::listener_binary!(), Slapd::builder()).unwrap();
    domain.start_listener().unwrap();
    // Initialized: what follows arrives as changes.
    domain.barrier();

    let mut rows = [
        row(&mut domain, "row11", &["cn=visible", "cn=test,cn=visible"]),
        row(&mut domain, "row14", &["cn=test"]),
        row(&mut domain, "row16", &["cn=test"]),
        row(&mut domain, "row24", &["cn=test1", "cn=test3"]),
        row(&mut domain, "created", &[]),
        row(&mut domain, "twice", &["cn=test"]),
        row(
            &mut domain,
            "movemodify",
            &["cn=visible", "cn=test,cn=visible"],
        ),
        row(&mut domain, "renamedaway", &["cn=test"]),
        row(&mut domain, "recreatedaway", &["cn=test"]),
        row(&mut domain, "subtree", &["cn=box", "cn=test,cn=box"]),
    ];
    domain.barrier();
    for row in &mut rows {
        row.before = readable(&domain.calls(), &row.scope).len();
    }
    let [
        row11,
        row14,
        row16,
        row24,
        created,
        twice,
        movemodify,
        renamed_away,
        recreated_away,
        subtree,
    ] = &rows;

    assert!(domain.stop_listener(), "SIGTERM stops the listener cleanly");
    let changes = [
        // §10 row 11: modify, then move to the base.
        ldif::replace(&row11.dn("cn=test,cn=visible"), "description", "11"),
        ldif::rename(
            &row11.dn("cn=test,cn=visible"),
            "cn=test",
            Some(&row11.scope),
        ),
        // §10 row 14: delete, recreate at the same DN.
        ldif::delete(&row14.dn("cn=test")),
        ldif::role(&row14.dn("cn=test")),
        // §10 row 16: modify, then delete.
        ldif::replace(&row16.dn("cn=test"), "description", "16"),
        ldif::delete(&row16.dn("cn=test")),
        // §10 row 24: swap test1 and test3 via test2.
        ldif::rename(&row24.dn("cn=test1"), "cn=test2", None),
        ldif::rename(&row24.dn("cn=test3"), "cn=test1", None),
        ldif::rename(&row24.dn("cn=test2"), "cn=test3", None),
        // Created and deleted while the listener was away.
        ldif::role(&created.dn("cn=test")),
        ldif::delete(&created.dn("cn=test")),
        // Renamed twice.
        ldif::rename(&twice.dn("cn=test"), "cn=test2", None),
        ldif::rename(&twice.dn("cn=test2"), "cn=test3", None),
        // Moved, then modified.
        ldif::rename(
            &movemodify.dn("cn=test,cn=visible"),
            "cn=test",
            Some(&movemodify.scope),
        ),
        ldif::replace(&movemodify.dn("cn=test"), "description", "moved"),
        // Renamed away, and a new object created at the old DN.
        ldif::rename(&renamed_away.dn("cn=test"), "cn=test2", None),
        ldif::role(&renamed_away.dn("cn=test")),
        // Deleted, recreated, and the new object renamed away.
        ldif::delete(&recreated_away.dn("cn=test")),
        ldif::role(&recreated_away.dn("cn=test")),
        ldif::rename(&recreated_away.dn("cn=test"), "cn=test2", None),
        // A subtree deleted, children first.
        ldif::delete(&subtree.dn("cn=test,cn=box")),
        ldif::delete(&subtree.dn("cn=box")),
    ];
    for change in &changes {
        domain.slapd.ldapmodify(change).unwrap();
    }
    domain.start_listener().unwrap();
    domain.barrier();

    // Row 11: the modify finds the object moved and waits for the move, which delivers
    // the cached state as r/a and the final state as m. (`cn=visible` is a.)
    assert_in_order(
        &row11.after(&domain),
        &[
            "cn=test,cn=visible(b,-,r)",
            "cn=test(-,b,a)",
            "cn=test(b,b,m)",
        ],
    );
    assert_eq!(
        row11.after(&domain),
        [
            "cn=test,cn=visible(b,-,r)",
            "cn=test(-,b,a)",
            "cn=test(b,b,m)",
        ],
        "the modify made before the move is in the m, not a call of its own"
    );

    // Row 14: the old object's delete, the new object's add.
    assert_in_order(&row14.after(&domain), &["cn=test(a,-,d)", "cn=test(-,b,a)"]);
    assert_eq!(row14.after(&domain), ["cn=test(a,-,d)", "cn=test(-,b,a)"]);

    // Row 16: one call. The modify finds the object gone and deletes it; the delete
    // then finds nothing cached.
    assert_eq!(row16.after(&domain), ["cn=test(a,-,d)"]);

    // Row 24: each move is delivered as r/a; the m with the fresh state comes only where
    // the object is still at the move's target.
    let swap = [
        "cn=test1(a,-,r)",
        "cn=test2(-,a,a)",
        "cn=test3(b,-,r)",
        "cn=test1(-,b,a)",
        "cn=test1(b,b,m)",
        "cn=test2(a,-,r)",
        "cn=test3(-,a,a)",
        "cn=test3(a,a,m)",
    ];
    assert_in_order(&row24.after(&domain), &swap);
    assert_eq!(row24.after(&domain), swap);

    // Created and deleted while the listener was away: no module ever saw it.
    assert_eq!(created.after(&domain), Vec::<String>::new());

    // Renamed twice: both moves, the final state once, at the final DN.
    assert_eq!(
        twice.after(&domain),
        [
            "cn=test(a,-,r)",
            "cn=test2(-,a,a)",
            "cn=test2(a,-,r)",
            "cn=test3(-,a,a)",
            "cn=test3(a,a,m)",
        ]
    );

    // Moved, then modified: the move already delivers the final state; the modify
    // after it finds nothing new (the printer is up to date) and calls nothing.
    assert_eq!(
        movemodify.after(&domain),
        [
            "cn=test,cn=visible(b,-,r)",
            "cn=test(-,b,a)",
            "cn=test(b,b,m)",
        ]
    );

    // Renamed away, recreated at the old DN: the move of a, then the add of b.
    assert_eq!(
        renamed_away.after(&domain),
        [
            "cn=test(a,-,r)",
            "cn=test2(-,a,a)",
            "cn=test2(a,a,m)",
            "cn=test(-,b,a)",
        ]
    );

    // Deleted, recreated and renamed away: a's delete; b's add finds nothing at
    // `cn=test` any more, and its move (from a DN the listener never had it at) is an add
    // at `cn=test2`.
    assert_eq!(
        recreated_away.after(&domain),
        ["cn=test(a,-,d)", "cn=test2(-,b,a)"]
    );

    // A subtree deleted: each object's delete, in the order of the writes.
    assert_eq!(
        subtree.after(&domain),
        ["cn=test,cn=box(b,-,d)", "cn=box(a,-,d)"]
    );

    assert!(domain.stop_listener(), "SIGTERM stops the listener cleanly");
}
