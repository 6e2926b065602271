//! The README's demo runs, ends cleanly, and shows create, modify, move and remove calls.

#[test]
fn the_demo_shows_every_kind_of_call() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_demo"))
        .env("NO_COLOR", "1")
        .output()
        .expect("the demo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for expected in [
        "printer: init   dc=example,dc=com",
        "printer: add    uid=example,ou=people,dc=example,dc=com",
        "printer: modify uid=example,ou=people,dc=example,dc=com",
        "printer: rename uid=example,ou=people,dc=example,dc=com",
        "printer: add    uid=example,dc=example,dc=com",
        "printer: delete uid=example,dc=example,dc=com",
        "listener exited cleanly",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    // The new-API template: create, modify with old_dn for the move, remove.
    assert!(
        stderr.contains(
            "it is (also) a move! old_dn: Dn(\"uid=example,ou=people,dc=example,dc=com\")"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("changed attributes: [\"sn\"]"), "{stderr}");
}
