use ldap3::{LdapConnAsync, Scope};
use std::time::Instant;
use tests::Slapd;
use tests::ldif;

fn cpu(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let f: Vec<&str> = s.rsplit(')').next().unwrap().split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch() {
    let slapd = Slapd::builder().no_sync(true).start().unwrap();
    let base = slapd.base().to_owned();
    let n = 20000;
    let mut setup = String::new();
    for k in 0..n {
        setup += &(ldif::role(&format!("cn=o{k},{base}")) + "\n");
    }
    eprintln!("loading");
    slapd.ldapmodify(&setup).unwrap();
    eprintln!("loaded");
    let (conn, mut ldap) = LdapConnAsync::new(slapd.url()).await.unwrap();
    ldap3::drive!(conn);
    ldap.simple_bind(&slapd.root_dn(), slapd.root_password())
        .await
        .unwrap()
        .success()
        .unwrap();
    let dns: Vec<String> = (0..4000)
        .map(|k| format!("cn=o{},{base}", (k * 7919) % n))
        .collect();
    for round in 0..2 {
        let (c0, t) = (cpu(slapd.pid()), Instant::now());
        for dn in &dns {
            let (r, _) = ldap
                .search(dn, Scope::Base, "(objectClass=*)", vec!["*", "+"])
                .await
                .unwrap()
                .success()
                .unwrap();
            assert_eq!(r.len(), 1);
        }
        eprintln!(
            "round {round} base: {:?} slapd cpu ticks {}",
            t.elapsed(),
            cpu(slapd.pid()) - c0
        );
        for b in [8usize, 32, 128] {
            let (c0, t) = (cpu(slapd.pid()), Instant::now());
            for chunk in dns.chunks(b) {
                let f = format!(
                    "(|{})",
                    chunk
                        .iter()
                        .map(|d| format!("(entryDN={})", ldap3::ldap_escape(d)))
                        .collect::<String>()
                );
                let (r, _) = ldap
                    .search(&base, Scope::Subtree, &f, vec!["*", "+"])
                    .await
                    .unwrap()
                    .success()
                    .unwrap();
                assert_eq!(r.len(), chunk.len());
            }
            eprintln!(
                "round {round} entryDN batch {b}: {:?} slapd cpu ticks {}",
                t.elapsed(),
                cpu(slapd.pid()) - c0
            );
        }
    }
}
