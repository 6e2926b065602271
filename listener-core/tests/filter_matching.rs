//! The matcher on each operator and matching rule, with RFC 4511 three-valued logic.
//!
//! The expectations hold for any correct implementation of the rules (they avoid values
//! whose outcome depends on details such as space handling).

use listener_core::filter::Truth;
use listener_core::schema::AttributeType;
use listener_core::{Dn, Entry, Filter, MatchingRule, Schema};

fn entry(dn: &str, attrs: &[(&str, &[&str])]) -> Entry {
    let mut e = Entry::new(Dn::parse(dn).unwrap());
    for (name, values) in attrs {
        e.insert(name, values.iter().map(|v| v.as_bytes().to_vec()))
            .unwrap();
    }
    e
}

/// The built-in schema plus integer `uidNumber`/`gidNumber` and a caseExact `x-exact`.
fn schema() -> Schema {
    let base = Schema::builtin().attribute("cn").unwrap().clone();
    // Built by mutation so that fields added to AttributeType later keep compiling.
    let custom = |oid, names, equality, ordering, substr| {
        let mut t: AttributeType = base.clone();
        t.oid = oid;
        t.names = names;
        t.sup = None;
        t.equality = equality;
        t.ordering = ordering;
        t.substr = substr;
        t
    };
    let mut types = Schema::builtin().attribute_types().to_vec();
    let int = Some(MatchingRule::Integer);
    types.push(custom("1.3.6.1.1.1.1.0", &["uidNumber"], int, int, None));
    types.push(custom("1.3.6.1.1.1.1.1", &["gidNumber"], int, int, None));
    let exact = Some(MatchingRule::CaseExact);
    types.push(custom("1.2.3.4.5.6", &["x-exact"], exact, exact, exact));
    Schema::new(types)
}

fn eval_in(schema: &Schema, filter: &str, e: &Entry) -> Truth {
    let f = Filter::parse(filter).unwrap_or_else(|err| panic!("{err}"));
    let c = f.compile(schema).unwrap_or_else(|err| panic!("{err}"));
    c.evaluate(e)
}

fn eval(filter: &str, e: &Entry) -> Truth {
    eval_in(&schema(), filter, e)
}

fn alice() -> Entry {
    entry(
        "uid=alice,ou=people,dc=example,dc=com",
        &[
            ("objectClass", &["top", "person", "inetOrgPerson"]),
            ("uid", &["alice"]),
            ("cn", &["Alice Liddell", "alice"]),
            ("cn;lang-de", &["Alicia"]),
            ("sn", &["Liddell"]),
            ("uidNumber", &["1500"]),
            ("gidNumber", &["14"]),
            ("x-exact", &["MiXed"]),
            ("description", &["abcabc"]),
        ],
    )
}

use Truth::{False, True, Undefined};

#[test]
fn seed_filter() {
    let e = alice();
    assert_eq!(eval("(&(objectClass=inetOrgPerson)(uid=alice))", &e), True);
    assert_eq!(eval("(&(objectClass=inetOrgPerson)(uid=bob))", &e), False);
    assert_eq!(eval("(&(objectClass=posixAccount)(uid=alice))", &e), False);
}

#[test]
fn equality_and_approx_ignore_case_under_case_ignore() {
    let e = alice();
    assert_eq!(eval("(uid=ALICE)", &e), True);
    assert_eq!(eval("(cn=ALICE)", &e), True);
    assert_eq!(eval("(cn~=alice)", &e), True);
    assert_eq!(eval("(cn=alic)", &e), False);
    assert_eq!(eval("(mail=alice)", &e), False);
    assert_eq!(eval("(x-exact=MiXed)", &e), True);
    assert_eq!(eval("(x-exact=mixed)", &e), False);
    assert_eq!(eval("(uidNumber=1500)", &e), True);
    assert_eq!(eval("(uidNumber=1501)", &e), False);
}

#[test]
fn escaped_values_are_bytes() {
    let e = entry("cn=x", &[("description", &["a*b(c)\\"])]);
    assert_eq!(eval("(description=a\\2ab\\28c\\29\\5c)", &e), True);
    assert_eq!(eval("(description=a\\2a*)", &e), True);
    assert_eq!(eval("(description=a\\2ac*)", &e), False);
}

#[test]
fn presence_and_options() {
    let e = alice();
    assert_eq!(eval("(cn=*)", &e), True);
    assert_eq!(eval("(mail=*)", &e), False);
    // Without options the filter sees values with any options; with options, only those.
    assert_eq!(eval("(cn=alicia)", &e), True);
    assert_eq!(eval("(cn;lang-de=alicia)", &e), True);
    assert_eq!(eval("(CN;LANG-DE=alice)", &e), False);
    assert_eq!(eval("(cn;lang-fr=*)", &e), False);
    assert_eq!(eval("(cn;lang-de=*)", &e), True);
}

#[test]
fn names_aliases_oids_and_supertypes() {
    let e = alice();
    assert_eq!(eval("(commonName=alice)", &e), True);
    assert_eq!(eval("(2.5.4.3=alice)", &e), True);
    assert_eq!(eval("(OBJECTCLASS=inetOrgPerson)", &e), True);
    // `name` is the supertype of `cn`: a filter on it sees cn's values.
    assert_eq!(eval("(name=alice)", &e), True);
    assert_eq!(eval("(name=alicia)", &e), True);
    // ...but not the other way round.
    let named = entry("cn=x", &[("name", &["bob"])]);
    assert_eq!(eval("(cn=bob)", &named), False);
}

#[test]
fn substrings() {
    let e = alice();
    assert_eq!(eval("(description=*abc)", &e), True);
    assert_eq!(eval("(description=abc*)", &e), True);
    assert_eq!(eval("(description=*bca*)", &e), True);
    assert_eq!(eval("(description=a*c*c)", &e), True);
    assert_eq!(eval("(description=*c*c*c*)", &e), False);
    assert_eq!(eval("(description=abca*cabc)", &e), False);
    let e = entry("cn=x", &[("cn", &["aXbYc"])]);
    assert_eq!(eval("(cn=A*b*C)", &e), True);
    assert_eq!(eval("(cn=A*c*B)", &e), False);
    let e = entry("cn=x", &[("cn", &["aba"])]);
    // Initial and final must not overlap.
    assert_eq!(eval("(cn=ab*ba)", &e), False);
    assert_eq!(eval("(cn=ab*a)", &e), True);
    assert_eq!(eval("(x-exact=Mi*d)", &alice()), True);
    assert_eq!(eval("(x-exact=mi*d)", &alice()), False);
}

#[test]
fn ordering() {
    let e = alice();
    assert_eq!(eval("(uidNumber>=1000)", &e), True);
    assert_eq!(eval("(uidNumber>=1500)", &e), True);
    assert_eq!(eval("(uidNumber>=1501)", &e), False);
    assert_eq!(eval("(uidNumber<=1500)", &e), True);
    assert_eq!(eval("(uidNumber<=1499)", &e), False);
    // sn (a `name`) has no ORDERING rule in RFC 4519: rejected, never guessed.
    let no_ordering = Filter::parse("(sn>=liddell)").unwrap().compile(&schema());
    assert!(no_ordering.is_err(), "{no_ordering:?}");
}

#[test]
fn three_valued_logic() {
    // integerBitAndMatch on a non-integer value is Undefined.
    let e = entry("cn=x", &[("uidNumber", &["abc"]), ("cn", &["x"])]);
    let undefined = "(uidNumber:integerBitAndMatch:=1)";
    assert_eq!(eval(undefined, &e), Undefined);
    assert_eq!(eval(&format!("(!{undefined})"), &e), Undefined);
    assert_eq!(eval(&format!("(&{undefined}(cn=x))"), &e), Undefined);
    assert_eq!(eval(&format!("(&{undefined}(cn=y))"), &e), False);
    assert_eq!(eval(&format!("(|{undefined}(cn=x))"), &e), True);
    assert_eq!(eval(&format!("(|{undefined}(cn=y))"), &e), Undefined);
    let compiled = Filter::parse(&format!("(!{undefined})"))
        .unwrap()
        .compile(&schema())
        .unwrap();
    assert!(!compiled.matches(&e));
    // One matching value decides, even next to an undecidable one.
    let e = entry("cn=x", &[("uidNumber", &["abc", "3"])]);
    assert_eq!(eval(undefined, &e), True);
}

#[test]
fn a_substring_prepared_to_nothing_matches_nothing() {
    // As slapd (found by tests/tests/matcher_agrees_with_slapd.rs): FALSE, not Undefined,
    // and not "matches anything".
    let e = entry(
        "cn=x",
        &[
            ("telephoneNumber", &["+49 421 1"]),
            ("cn", &["zero\u{200B}width"]),
        ],
    );
    for text in [
        "(telephoneNumber=+49* *)",
        "(telephoneNumber=*-)",
        "(cn=*\\e2\\80\\8b*)",
    ] {
        assert_eq!(eval(text, &e), False, "{text}");
        assert_eq!(eval(&format!("(!{text})"), &e), True, "{text}");
    }
    assert_eq!(eval("(telephoneNumber=+49*1)", &e), True);
}

#[test]
fn absolute_true_and_false() {
    let e = alice();
    let empty = Entry::new(Dn::parse("dc=example").unwrap());
    for e in [&e, &empty] {
        assert_eq!(eval("(&)", e), True);
        assert_eq!(eval("(|)", e), False);
        assert_eq!(eval("(!(|))", e), True);
        assert_eq!(eval("(&(&)(!(|)))", e), True);
    }
    assert_eq!(eval("(!(uid=alice))", &e), False);
}

#[test]
fn extensible_match() {
    let e = alice();
    assert_eq!(eval("(cn:=ALICE)", &e), True);
    assert_eq!(eval("(cn:caseExactMatch:=alice)", &e), True);
    assert_eq!(eval("(cn:caseExactMatch:=ALICE)", &e), False);
    assert_eq!(eval("(cn:2.5.13.5:=Alicia)", &e), True);
    // Without an attribute: every attribute whose rule fits (x-exact is caseExact).
    assert_eq!(eval("(:caseExactMatch:=MiXed)", &e), True);
    assert_eq!(eval("(:caseExactMatch:=mixed)", &e), False);
    assert_eq!(eval("(:caseIgnoreMatch:=LIDDELL)", &e), True);
}

#[test]
fn extensible_dn_attributes() {
    let e = entry("cn=Example,ou=People,dc=example,dc=com", &[("sn", &["x"])]);
    assert_eq!(eval("(ou:dn:=people)", &e), True);
    assert_eq!(eval("(ou:=people)", &e), False);
    assert_eq!(eval("(cn:dn:=example)", &e), True);
    assert_eq!(eval("(name:dn:=example)", &e), True);
    assert_eq!(eval("(:dn:caseIgnoreMatch:=PEOPLE)", &e), True);
    assert_eq!(eval("(:caseIgnoreMatch:=people)", &e), False);
    assert_eq!(eval("(dc:dn:=org)", &e), False);
}

#[test]
fn bitwise_integer_rules() {
    let e = alice(); // gidNumber 14 = 0b1110
    assert_eq!(eval("(gidNumber:integerBitAndMatch:=6)", &e), True);
    assert_eq!(eval("(gidNumber:1.2.840.113556.1.4.803:=7)", &e), False);
    assert_eq!(eval("(gidNumber:integerBitOrMatch:=5)", &e), True);
    assert_eq!(eval("(gidNumber:1.2.840.113556.1.4.804:=1)", &e), False);
    assert_eq!(eval("(:integerBitAndMatch:=2)", &e), True);
}

fn compile_error(filter: &str) -> String {
    Filter::parse(filter)
        .unwrap()
        .compile(&schema())
        .expect_err(filter)
        .to_string()
}

#[test]
fn compile_errors_never_guess() {
    assert!(compile_error("(objectClass>=a)").contains("ordering"));
    assert!(compile_error("(objectClass=*a*)").contains("substrings"));
    assert!(compile_error("(uidNumber=1*)").contains("substrings"));
    assert!(compile_error("(cn:noSuchMatch:=x)").contains("unknown"));
    assert!(compile_error("(gidNumber:integerBitAndMatch:=x)").contains("INTEGER"));
    // No attribute type of this schema has the rule: the match could never apply.
    let only_x_exact = Schema::new(vec![schema().attribute("x-exact").unwrap().clone()]);
    let e = Filter::parse("(:integerBitAndMatch:=1)")
        .unwrap()
        .compile(&only_x_exact)
        .unwrap_err();
    assert!(e.message.contains("no attribute type"), "{e}");
}

#[test]
fn assertion_values_invalid_for_the_syntax_are_compile_errors() {
    assert!(compile_error("(uidNumber=abc)").contains("not valid"));
    assert!(compile_error("(uidNumber>=1x)").contains("not valid"));
}

#[test]
fn real_rules() {
    let e = alice();
    assert_eq!(eval("(uidNumber>=999)", &e), True);
    assert_eq!(eval("(objectClass=INETORGPERSON)", &e), True);
    // objectIdentifierMatch: a name and its OID are one value, either way round.
    assert_eq!(eval("(objectClass=2.16.840.1.113730.3.2.2)", &e), True);
    assert_eq!(eval("(objectClass=2.5.6.6)", &e), True);
    assert_eq!(eval("(objectClass=organizationalRole)", &e), False);
    let by_oid = entry("cn=x", &[("objectClass", &["2.5.6.6", "x-Unknown"])]);
    assert_eq!(eval("(objectClass=person)", &by_oid), True);
    assert_eq!(eval("(objectClass=X-UNKNOWN)", &by_oid), True);
    assert_eq!(eval("(objectClass=inetOrgPerson)", &by_oid), False);
    assert_eq!(eval("(uidNumber:integerOrderingMatch:=1501)", &e), True);
    let bad = entry("cn=x", &[("uidNumber", &["abc"])]);
    assert_eq!(eval("(uidNumber=1)", &bad), Undefined);
    assert_eq!(eval("(!(uidNumber=1))", &bad), Undefined);
}

#[test]
fn object_classes_match_their_superclasses() {
    // As slapd's objectSubClassMatch (found by tests/tests/matcher_agrees_with_slapd.rs):
    // an entry listing only inetOrgPerson is a person and an organizationalPerson.
    let e = entry(
        "uid=a,dc=x",
        &[
            ("objectClass", &["inetOrgPerson", "univentionObject"]),
            ("structuralObjectClass", &["inetOrgPerson"]),
        ],
    );
    for text in [
        "(objectClass=person)",
        "(objectClass=organizationalPerson)",
        "(objectClass=2.5.6.6)",
        "(objectClass~=PERSON)",
        "(objectClass=top)",
        "(objectClass=univentionObject)",
        "(structuralObjectClass=person)",
        "(objectClass:=organizationalPerson)",
    ] {
        assert_eq!(eval(text, &e), True, "{text}");
    }
    for text in [
        "(objectClass=residentialPerson)",
        "(objectClass=posixAccount)",
        "(!(objectClass=person))",
    ] {
        assert_eq!(eval(text, &e), False, "{text}");
    }
    let by_oid = entry("cn=x", &[("objectClass", &["2.16.840.1.113730.3.2.2"])]);
    assert_eq!(eval("(objectClass=person)", &by_oid), True);
    // Only the classes as listed for other OID attributes.
    let other = entry("cn=x", &[("supportedControl", &["inetOrgPerson"])]);
    assert_eq!(eval("(supportedControl=person)", &other), False);
}
