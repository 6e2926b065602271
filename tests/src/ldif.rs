//! LDIF change records for scenario tests, ready for [`crate::Slapd::ldapmodify`]. Values
//! that LDIF cannot carry as plain text (non-ASCII, leading space or colon…) are written
//! base64-encoded (`attr:: …`), so a DN like `cn=Unmöglich` needs no care from the caller.
//!
//! ```
//! use tests::ldif;
//! assert_eq!(
//!     ldif::rename("cn=a,dc=x", "cn=b", None),
//!     "dn: cn=a,dc=x\nchangetype: modrdn\nnewrdn: cn=b\ndeleteoldrdn: 1\n"
//! );
//! assert_eq!(
//!     ldif::add_value("cn=g,dc=x", "roleOccupant", "cn=p,dc=x"),
//!     "dn: cn=g,dc=x\nchangetype: modify\nadd: roleOccupant\nroleOccupant: cn=p,dc=x\n"
//! );
//! assert_eq!(ldif::delete("cn=ü,dc=x"), "dn:: Y249w7wsZGM9eA==\nchangetype: delete\n");
//! ```

/// Adds `dn` with `attributes` (`objectClass` included).
pub fn add(dn: &str, attributes: &[(&str, &str)]) -> String {
    let mut ldif = line("dn", dn);
    for (attr, value) in attributes {
        ldif += &line(attr, value);
    }
    ldif
}

/// Adds an `organizationalRole` (a container that may hold anything) named by `dn`'s
/// first RDN value.
pub fn role(dn: &str) -> String {
    let cn = dn
        .split_once(',')
        .map_or(dn, |(rdn, _)| rdn)
        .split_once('=')
        .map_or("", |(_, v)| v);
    add(dn, &[("objectClass", "organizationalRole"), ("cn", cn)])
}

/// Replaces `attr` of `dn` with `value`.
pub fn replace(dn: &str, attr: &str, value: &str) -> String {
    format!(
        "{}changetype: modify\nreplace: {attr}\n{}",
        line("dn", dn),
        line(attr, value)
    )
}

/// Adds `value` to `attr` of `dn`, leaving its other values.
pub fn add_value(dn: &str, attr: &str, value: &str) -> String {
    format!(
        "{}changetype: modify\nadd: {attr}\n{}",
        line("dn", dn),
        line(attr, value)
    )
}

/// Deletes `value` from `attr` of `dn`, leaving its other values.
pub fn delete_value(dn: &str, attr: &str, value: &str) -> String {
    format!(
        "{}changetype: modify\ndelete: {attr}\n{}",
        line("dn", dn),
        line(attr, value)
    )
}

/// Renames `dn` to `new_rdn` (the old RDN value removed), under `new_superior` if given.
pub fn rename(dn: &str, new_rdn: &str, new_superior: Option<&str>) -> String {
    let mut ldif = format!(
        "{}changetype: modrdn\n{}deleteoldrdn: 1\n",
        line("dn", dn),
        line("newrdn", new_rdn)
    );
    if let Some(superior) = new_superior {
        ldif += &line("newsuperior", superior);
    }
    ldif
}

/// Deletes `dn`.
pub fn delete(dn: &str) -> String {
    format!("{}changetype: delete\n", line("dn", dn))
}

/// `attr: value`, or `attr:: base64` when `value` is no LDIF SAFE-STRING (RFC 2849).
fn line(attr: &str, value: &str) -> String {
    let safe = value
        .bytes()
        .all(|b| b.is_ascii() && b != 0 && b != b'\n' && b != b'\r')
        && !value.starts_with([' ', ':', '<'])
        && !value.ends_with(' ');
    if safe {
        format!("{attr}: {value}\n")
    } else {
        format!("{attr}:: {}\n", base64(value.as_bytes()))
    }
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, &b| n << 8 | u32::from(b)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
