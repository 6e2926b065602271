//! A module reads more from LDAP through its context (UCS's `self.lo`), and sees the
//! listener's settings but never its password.

use std::sync::Arc;
use std::time::Duration;

use ldap3::Scope;
use listener_core::Dn;
use listener_runtime::testing::Fetcher;
use listener_runtime::testing::LdapSettings;
use listener_runtime::{Context, Settings};
use tests::Slapd;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_search_and_settings() {
    let slapd = Slapd::builder()
        .entries(
            "dn: cn=staff,dc=example,dc=com\nobjectClass: groupOfNames\ncn: staff\n\
             member: uid=alice,dc=example,dc=com\n",
        )
        .start()
        .unwrap();
    let base = Dn::parse(slapd.base()).unwrap();
    let ldap = LdapSettings {
        uri: slapd.url().to_owned(),
        bind_dn: slapd.root_dn(),
        bind_password: slapd.root_password().to_owned(),
        starttls: false,
        timeout: Duration::from_secs(5),
    };
    let fetcher = Fetcher::connect(&ldap, base.clone()).await.unwrap();
    let mut ctx = Context::new("groups");
    assert!(ctx.settings().is_none());
    assert!(
        ctx.search(slapd.base(), Scope::Subtree, "(cn=staff)")
            .is_err()
    );

    ctx.connect(
        fetcher,
        Arc::new(Settings {
            base,
            ldap_uri: slapd.url().to_owned(),
            bind_dn: slapd.root_dn(),
            notifier: "127.0.0.1:6669".into(),
            cache_dir: "/var/lib/listener".into(),
        }),
    );
    // A synchronous module method calls it directly (it runs on the listener's runtime).
    let groups = ctx
        .search(
            slapd.base(),
            Scope::Subtree,
            "(member=uid=alice,dc=example,dc=com)",
        )
        .unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].first_str("cn"), Some("staff"));
    assert!(
        groups[0].first_str("entryUUID").is_some(),
        "operational attributes too"
    );
    assert_eq!(ctx.settings().unwrap().bind_dn, slapd.root_dn());
    assert!(!format!("{:?}", ctx.settings()).contains(slapd.root_password()));
    assert!(ctx.ldap().is_some());
}
