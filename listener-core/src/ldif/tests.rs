use super::*;

fn dn(text: &str) -> Dn {
    Dn::parse(text).unwrap()
}

#[test]
fn content_records_with_folding_base64_and_comments() {
    let text = "version: 1\n\
                # a comment\n\
                #  folded into the comment\n\
                dn: cn=Alice Liddell,dc=exam\n ple,dc=com\n\
                objectClass: person\n\
                cn: Alice Liddell\n\
                sn:: TGlkZGVsbA==\n\
                description: spaces after the colon are not part\n\
                jpegPhoto;binary:: AP8BAg==\n\
                \n\
                \n\
                dn:: Y249w5xuw69jb2RlLGRjPWV4YW1wbGUsZGM9Y29t\n\
                cn: Ünïcode\n";
    let records = parse(text).unwrap();
    assert_eq!(records.len(), 2);
    let Record::Content(alice) = &records[0] else {
        panic!("{records:?}")
    };
    assert_eq!(alice.dn(), &dn("cn=alice liddell,dc=example,dc=com"));
    assert_eq!(alice.first_str("sn"), Some("Liddell"));
    assert_eq!(
        alice.first_str("description"),
        Some("spaces after the colon are not part")
    );
    assert_eq!(alice.first("jpegPhoto;binary"), Some(&[0u8, 255, 1, 2][..]));
    let Record::Content(unicode) = &records[1] else {
        panic!()
    };
    assert_eq!(unicode.dn().as_str(), "cn=Ünïcode,dc=example,dc=com");
}

#[test]
fn change_records_of_every_kind() {
    let text = "dn: cn=new,dc=x\n\
                changetype: add\n\
                objectClass: organizationalRole\n\
                cn: new\n\
                \n\
                dn: cn=new,dc=x\n\
                control: 1.2.840.113556.1.4.805 true\n\
                changetype: modify\n\
                add: description\n\
                description: one\n\
                description: two\n\
                -\n\
                delete: seeAlso\n\
                -\n\
                replace: roleOccupant\n\
                roleOccupant: cn=a,dc=x\n\
                -\n\
                \n\
                dn: cn=new,dc=x\n\
                changetype: modrdn\n\
                newrdn: cn=renamed\n\
                deleteoldrdn: 1\n\
                newsuperior: ou=moved,dc=x\n\
                \n\
                dn: cn=renamed,ou=moved,dc=x\n\
                changetype: delete\n";
    let records = parse(text).unwrap();
    let changes: Vec<&ChangeRecord> = records
        .iter()
        .map(|r| match r {
            Record::Change(c) => c,
            Record::Content(_) => panic!("content record"),
        })
        .collect();
    let Change::Add(entry) = &changes[0].change else {
        panic!()
    };
    assert_eq!(entry.first_str("cn"), Some("new"));
    assert_eq!(
        changes[1].controls,
        [Control {
            oid: "1.2.840.113556.1.4.805".into(),
            critical: true,
            value: None
        }]
    );
    let Change::Modify(mods) = &changes[1].change else {
        panic!()
    };
    assert_eq!(mods.len(), 3);
    assert_eq!((mods[0].op, mods[0].values.len()), (ModOp::Add, 2));
    assert_eq!((mods[1].op, mods[1].values.len()), (ModOp::Delete, 0));
    assert_eq!(mods[2].op, ModOp::Replace);
    assert_eq!(
        changes[2].change,
        Change::ModRdn {
            new_rdn: Rdn::parse("cn=renamed").unwrap(),
            delete_old_rdn: true,
            new_superior: Some(dn("ou=moved,dc=x")),
        }
    );
    assert_eq!(changes[3].change, Change::Delete);
    // Rendering and parsing again gives the same records.
    let rendered: String = changes.iter().map(|c| change_to_string(c)).collect();
    assert_eq!(parse(&rendered).unwrap(), records);
}

#[test]
fn errors_name_the_line() {
    for (text, line, needle) in [
        ("cn: x\n", 1, "starts with `dn:`"),
        ("dn: cn=x\nchangetype: frob\n", 2, "unknown changetype"),
        (
            "dn: cn=x\nchangetype: modify\nadd: cn\ncn: a\n",
            3,
            "does not end with a `-`",
        ),
        (
            "dn: cn=x\nchangetype: modify\nadd: cn\nsn: a\n-\n",
            4,
            "inside the add of cn",
        ),
        (
            "dn: cn=x\nchangetype: modify\nfrob: cn\n-\n",
            3,
            "expected `add:`",
        ),
        (
            "dn: cn=x\nchangetype: modrdn\nnewrdn: cn=y\n",
            2,
            "needs deleteoldrdn",
        ),
        (
            "dn: cn=x\nchangetype: modrdn\nnewrdn: cn=y\ndeleteoldrdn: 2\n",
            4,
            "0 or 1",
        ),
        ("dn: cn=x\nchangetype: delete\ncn: x\n", 3, "nothing after"),
        ("dn: cn=x\ncn:: !!!\n", 2, "does not decode"),
        (
            "dn: cn=x\njpegPhoto:< file:///etc/passwd\n",
            2,
            "not supported",
        ),
        (
            "dn: cn=x\nbad attr: y\n",
            2,
            "invalid attribute description",
        ),
        ("dn: cnx\ncn: y\n", 1, "invalid DN"),
        (" continued\n", 1, "follows no line"),
        ("version: 2\n", 1, "unsupported LDIF version"),
        (
            "dn: cn=x\ncn: x\n\ndn: cn=y\nchangetype: delete\n",
            4,
            "one kind",
        ),
        ("dn: cn=x\nno colon here\n", 2, "expected `name: value`"),
    ] {
        let e = parse(text).unwrap_err();
        assert_eq!(e.line, line, "{text:?}: {e}");
        assert!(e.to_string().contains(needle), "{text:?}: {e}");
    }
}

#[test]
fn writes_base64_where_the_rfc_asks_and_folds_long_lines() {
    let mut e = Entry::new(dn("cn=Ünïcode,dc=x"));
    e.insert("cn", ["Ünïcode"]).unwrap();
    e.insert(
        "description",
        [" leading space", "trailing ", ":colon", "<angle", "plain"],
    )
    .unwrap();
    e.insert("jpegPhoto", [vec![0u8, 1, 2]]).unwrap();
    e.insert("info", ["x".repeat(200)]).unwrap();
    let text = entry_to_string(&e);
    assert!(text.starts_with("dn:: "), "{text}");
    assert!(text.contains("description: plain\n"), "{text}");
    assert!(!text.contains("description: :colon"), "{text}");
    assert!(text.lines().all(|l| l.len() <= 76), "{text}");
    assert!(text.ends_with("\n\n"));
    let Record::Content(back) = parse(&text).unwrap().remove(0) else {
        panic!()
    };
    assert_eq!(back, e);
}

#[test]
fn arbitrary_text_never_panics() {
    use proptest::prelude::*;
    proptest!(|(text in "(dn|cn|changetype|add|-|:| |\n|::|<|#|x|=|,|version: 1|control: 1.2 true)*")| {
        let _ = parse(&text);
    });
}
