//! Semantics §10 with the listener running: each change is made after the listener has
//! delivered the previous one. The example `printer` module (filter `(objectClass=*)`,
//! classic API with `modrdn`) records the calls; [`readable`] writes them as §10 does,
//! `rdn(old entryUUID, new entryUUID, command)` with the entryUUIDs named a, b, … in order
//! of appearance and DNs relative to the row's own container.
//!
//! One domain serves every row: each row works in its own container, so the rows do not
//! see each other's calls.

use tests::Slapd;
use tests::domain::{Domain, assert_in_order, readable};
use tests::ldif;

/// A row's container under the base, and the changes made in it.
struct Row<'d> {
    domain: &'d mut Domain,
    scope: String,
}

impl Row<'_> {
    fn new<'d>(domain: &'d mut Domain, name: &str) -> Row<'d> {
        let scope = format!("cn={name},{}", domain.slapd.base());
        domain.slapd.ldapmodify(&ldif::role(&scope)).unwrap();
        Row { domain, scope }
    }

    /// The full DN of `relative` (e.g. `cn=test`) in this row.
    fn dn(&self, relative: &str) -> String {
        format!("{relative},{}", self.scope)
    }

    /// Makes a change and waits until the printer has delivered `call` (once more than
    /// before). Waiting matters: a change the listener sees only after a later change of
    /// the same object is delivered with that one (e.g. a modify before a delete is the
    /// delete, §10 row 16).
    fn change(&mut self, ldif: &str, call: &str) -> Vec<String> {
        let count = |calls: &[String]| calls.iter().filter(|c| *c == call).count();
        let before = count(&readable(&self.domain.calls(), &self.scope));
        self.domain.slapd.ldapmodify(ldif).unwrap();
        self.domain
            .wait_for_scope(&self.scope, |calls| count(calls) > before)
    }

    /// Every call of this row, after everything written so far has been processed.
    fn settled(&mut self) -> Vec<String> {
        self.domain.barrier();
        readable(&self.domain.calls(), &self.scope)
    }
}

#[test]
fn scenarios_with_the_listener_running() {
    let mut domain = Domain::start(tests::listener_binary!(), Slapd::builder()).unwrap();
    domain.start_listener().unwrap();
    domain.barrier();

    row_1_create_then_delete(&mut domain);
    row_3_modify_an_attribute(&mut domain);
    row_5_rename(&mut domain);
    row_8_move_out_of_a_container(&mut domain);
    row_27_rename_to_a_non_ascii_rdn(&mut domain);
    delete_and_recreate_at_the_same_dn(&mut domain);
    case_only_rename_keeps_the_object(&mut domain);
    rename_to_an_rdn_with_escaped_characters(&mut domain);
    rename_to_a_multi_valued_rdn(&mut domain);
    move_and_rename_at_once(&mut domain);

    assert!(domain.stop_listener(), "SIGTERM stops the listener cleanly");
}

/// §10 row 1: `test(-,a,a)`; `test(a,-,d)`.
fn row_1_create_then_delete(domain: &mut Domain) {
    let mut row = Row::new(domain, "row1");
    let test = row.dn("cn=test");
    row.change(&ldif::role(&test), "cn=test(-,a,a)");
    row.change(&ldif::delete(&test), "cn=test(a,-,d)");
    assert_eq!(row.settled(), ["cn=test(-,a,a)", "cn=test(a,-,d)"]);
}

/// §10 row 3: `test(a,a,m)`.
fn row_3_modify_an_attribute(domain: &mut Domain) {
    let mut row = Row::new(domain, "row3");
    let test = row.dn("cn=test");
    row.change(&ldif::role(&test), "cn=test(-,a,a)");
    row.change(
        &ldif::replace(&test, "description", "changed"),
        "cn=test(a,a,m)",
    );
    // One modification, one call.
    assert_eq!(row.settled(), ["cn=test(-,a,a)", "cn=test(a,a,m)"]);
}

/// §10 row 5: `test(a,-,r)`, `test2(-,a,a)`.
fn row_5_rename(domain: &mut Domain) {
    let mut row = Row::new(domain, "row5");
    let test = row.dn("cn=test");
    row.change(&ldif::role(&test), "cn=test(-,a,a)");
    row.change(&ldif::rename(&test, "cn=test2", None), "cn=test2(-,a,a)");
    let calls = row.settled();
    assert_in_order(&calls, &["cn=test(a,-,r)", "cn=test2(-,a,a)"]);
    // §4: the `a` carries the cached state patched to the new DN; the fresh state follows
    // as `m` because it differs (modifyTimestamp, entryCSN: the printer lists no
    // `attributes`, so operational attributes count).
    assert_eq!(
        calls,
        [
            "cn=test(-,a,a)",
            "cn=test(a,-,r)",
            "cn=test2(-,a,a)",
            "cn=test2(a,a,m)"
        ]
    );
}

/// §10 row 8: `…visible(a,-,r)`, `…base(-,a,a)`. (`cn=visible` is created first, so it
/// is a and the moved object b.)
fn row_8_move_out_of_a_container(domain: &mut Domain) {
    let mut row = Row::new(domain, "row8");
    let visible = row.dn("cn=visible");
    let test = row.dn("cn=test,cn=visible");
    row.change(&ldif::role(&visible), "cn=visible(-,a,a)");
    row.change(&ldif::role(&test), "cn=test,cn=visible(-,b,a)");
    row.change(
        &ldif::rename(&test, "cn=test", Some(&row.scope.clone())),
        "cn=test(-,b,a)",
    );
    assert_in_order(
        &row.settled(),
        &["cn=test,cn=visible(b,-,r)", "cn=test(-,b,a)"],
    );
}

/// §10 row 27: `test(a,-,r)`, `Unmöglich(-,a,a)`; the object stays the same one when later
/// changes spell its DN in another (non-ASCII) case (§5.1).
fn row_27_rename_to_a_non_ascii_rdn(domain: &mut Domain) {
    let mut row = Row::new(domain, "row27");
    let test = row.dn("cn=test");
    row.change(&ldif::role(&test), "cn=test(-,a,a)");
    row.change(
        &ldif::rename(&test, "cn=Unmöglich", None),
        "cn=Unmöglich(-,a,a)",
    );
    assert_in_order(&row.settled(), &["cn=test(a,-,r)", "cn=Unmöglich(-,a,a)"]);

    let upper = row.dn("cn=UNMÖGLICH");
    row.change(
        &ldif::replace(&upper, "description", "changed"),
        "cn=Unmöglich(a,a,m)",
    );
    row.change(&ldif::delete(&upper), "cn=UNMÖGLICH(a,-,d)");
    assert_eq!(
        row.settled(),
        [
            "cn=test(-,a,a)",
            "cn=test(a,-,r)",
            "cn=Unmöglich(-,a,a)",
            "cn=Unmöglich(a,a,m)",
            // A modify and a delete of the cached object, not a create of a new one.
            "cn=Unmöglich(a,a,m)",
            "cn=UNMÖGLICH(a,-,d)",
        ]
    );
}

/// Delete, then create again at the same DN: the new object (b) is a new object.
fn delete_and_recreate_at_the_same_dn(domain: &mut Domain) {
    let mut row = Row::new(domain, "recreate");
    let test = row.dn("cn=test");
    row.change(&ldif::role(&test), "cn=test(-,a,a)");
    row.change(&ldif::delete(&test), "cn=test(a,-,d)");
    row.change(&ldif::role(&test), "cn=test(-,b,a)");
    assert_eq!(
        row.settled(),
        ["cn=test(-,a,a)", "cn=test(a,-,d)", "cn=test(-,b,a)"]
    );
}

/// `cn=test` → `cn=TEST`: the same DN for the cache (§5.1), so the object stays cached
/// and registered: later changes are modifies of a, not creates.
fn case_only_rename_keeps_the_object(domain: &mut Domain) {
    let mut row = Row::new(domain, "caserename");
    let test = row.dn("cn=test");
    let upper = row.dn("cn=TEST");
    row.change(&ldif::role(&test), "cn=test(-,a,a)");
    row.change(&ldif::rename(&test, "cn=TEST", None), "cn=TEST(-,a,a)");
    assert_in_order(&row.settled(), &["cn=test(a,-,r)", "cn=TEST(-,a,a)"]);
    row.change(
        &ldif::replace(&upper, "description", "changed"),
        "cn=TEST(a,a,m)",
    );
    row.change(&ldif::delete(&test), "cn=test(a,-,d)");
    assert_eq!(
        row.settled(),
        [
            "cn=test(-,a,a)",
            "cn=test(a,-,r)",
            "cn=TEST(-,a,a)",
            "cn=TEST(a,a,m)",
            // The modify after the rename reaches the cached object …
            "cn=TEST(a,a,m)",
            // … and so does a delete spelled in the old case.
            "cn=test(a,-,d)",
        ]
    );
}

/// A rename to an RDN with characters RFC 4514 escapes; later changes spell the DN with
/// other escapes (`\2C` for `\,`, `\23` for `#`) and case, and still reach the same
/// object (§5.1): a modify and a delete of a, not a create.
fn rename_to_an_rdn_with_escaped_characters(domain: &mut Domain) {
    let mut row = Row::new(domain, "escaped");
    let test = row.dn("cn=test");
    row.change(&ldif::role(&test), "cn=test(-,a,a)");
    // slapd spells DNs its own way: `\,` and `\+` as `\2C` and `\2B`, `#` inside a value
    // unescaped.
    let renamed = r"cn=Smith\2C John \2B #1";
    row.change(
        &ldif::rename(&test, r"cn=Smith\, John \+ \#1", None),
        &format!("{renamed}(-,a,a)"),
    );
    let other_spelling = row.dn(r"cn=smith\2C john \2B \231");
    row.change(
        &ldif::replace(&other_spelling, "description", "changed"),
        &format!("{renamed}(a,a,m)"),
    );
    row.change(
        &ldif::delete(&other_spelling),
        r"cn=smith\2C john \2B #1(a,-,d)",
    );
    assert_eq!(
        row.settled(),
        [
            "cn=test(-,a,a)".to_owned(),
            "cn=test(a,-,r)".to_owned(),
            format!("{renamed}(-,a,a)"),
            format!("{renamed}(a,a,m)"),
            // The modify, delivered with the server's spelling of the DN …
            format!("{renamed}(a,a,m)"),
            // … the delete with the DN as the client wrote it (as slapd logs it).
            r"cn=smith\2C john \2B #1(a,-,d)".to_owned(),
        ]
    );
}

/// A rename to a multi-valued RDN; later changes name its values in the other order and
/// still reach the same object (RDNs compare as sets, §5.1).
fn rename_to_a_multi_valued_rdn(domain: &mut Domain) {
    let mut row = Row::new(domain, "multivalued");
    let test = row.dn("cn=test");
    row.change(&ldif::role(&test), "cn=test(-,a,a)");
    let calls = row.change(
        &ldif::rename(&test, "cn=multi+description=two", None),
        "cn=multi+description=two(a,a,m)",
    );
    assert_in_order(
        &calls,
        &["cn=test(a,-,r)", "cn=multi+description=two(-,a,a)"],
    );
    let reordered = row.dn("description=two+cn=MULTI");
    row.change(
        &ldif::replace(&reordered, "ou", "changed"),
        "cn=multi+description=two(a,a,m)",
    );
    row.change(&ldif::delete(&reordered), "cn=MULTI+description=two(a,-,d)");
    assert_eq!(
        row.settled(),
        [
            "cn=test(-,a,a)",
            "cn=test(a,-,r)",
            "cn=multi+description=two(-,a,a)",
            "cn=multi+description=two(a,a,m)",
            "cn=multi+description=two(a,a,m)",
            // slapd logs the delete's DN with the RDN's values in its own order.
            "cn=MULTI+description=two(a,-,d)",
        ]
    );
}

/// A new RDN and a new superior in one modrdn: one r/a pair, old DN to new DN.
fn move_and_rename_at_once(domain: &mut Domain) {
    let mut row = Row::new(domain, "moverename");
    let visible = row.dn("cn=visible");
    let test = row.dn("cn=test,cn=visible");
    row.change(&ldif::role(&visible), "cn=visible(-,a,a)");
    row.change(&ldif::role(&test), "cn=test,cn=visible(-,b,a)");
    row.change(
        &ldif::rename(&test, "cn=moved", Some(&row.scope.clone())),
        "cn=moved(b,b,m)",
    );
    assert_eq!(
        row.settled(),
        [
            "cn=visible(-,a,a)",
            "cn=test,cn=visible(-,b,a)",
            "cn=test,cn=visible(b,-,r)",
            "cn=moved(-,b,a)",
            "cn=moved(b,b,m)",
        ]
    );
}
