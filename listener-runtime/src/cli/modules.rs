//! `modules`: the listener modules linked into the binary, in call order.

use std::process::ExitCode;

use crate::registry::ModuleRegistration;

const NO_MODULES_HINT: &str = "no listener modules are registered in this binary.\n\
    hint: a module crate that the binary never refers to is not linked, and its modules \
    are silently missing; add `use my_modules as _;` (your module crate's name) to the \
    binary's main.rs";

pub(super) fn list_modules(modules: &[&ModuleRegistration], json: bool) -> ExitCode {
    if modules.is_empty() {
        eprintln!("{NO_MODULES_HINT}");
    }
    if json {
        println!("{}", module_json(modules));
    } else if !modules.is_empty() {
        print!("{}", module_table(modules));
    }
    ExitCode::SUCCESS
}

/// The `modules --json` listing: an array of objects, one per module, in call order.
fn module_json(modules: &[&ModuleRegistration]) -> String {
    let objects: Vec<String> = modules
        .iter()
        .map(|m| {
            let attributes: Vec<String> = m.attributes.iter().map(|a| json_string(a)).collect();
            let workers = m
                .workers()
                .map_or_else(|| "null".to_owned(), |n| n.to_string());
            format!(
                "{{\"name\":{},\"description\":{},\"api\":{},\"priority\":{:?},\
                 \"workers\":{workers},\"handle_every_delete\":{},\"modrdn\":{},\
                 \"attributes\":[{}],\"ldap_filter\":{},\"source\":{{\"item\":{},\
                 \"file\":{},\"line\":{}}}}}",
                json_string(m.name),
                json_string(m.description),
                json_string(m.kind.as_str()),
                m.priority,
                m.handle_every_delete,
                m.modrdn,
                attributes.join(","),
                json_string(m.ldap_filter),
                json_string(m.source.item),
                json_string(m.source.file),
                m.source.line,
            )
        })
        .collect();
    format!("[{}]", objects.join(","))
}

/// `text` as a JSON string literal.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The `modules` listing: one aligned row per module, the filter last (it is the longest).
fn module_table(modules: &[&ModuleRegistration]) -> String {
    let header = ["NAME", "API", "PRIORITY", "WORKERS", "ATTRIBUTES", "FILTER"];
    let rows: Vec<[String; 6]> = modules
        .iter()
        .map(|m| {
            [
                m.name.to_owned(),
                m.kind.to_string(),
                format!("{:?}", m.priority),
                m.workers()
                    .map_or_else(|| "-".to_owned(), |n| n.to_string()),
                if m.attributes.is_empty() {
                    "(all)".to_owned()
                } else {
                    m.attributes.join(",")
                },
                m.ldap_filter.to_owned(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut push_row = |cells: &[&str]| {
        let last = cells.len() - 1;
        for (i, cell) in cells.iter().enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                out.push_str(cell);
                let pad = widths[i] - cell.chars().count() + 2;
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    };
    push_row(&header);
    for row in &rows {
        push_row(&row.each_ref().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{ApiKind, ModuleInstance, SourceLocation};

    fn construct() -> ModuleInstance {
        unreachable!("not called by the listing")
    }

    static ASYNC: ModuleRegistration = ModuleRegistration {
        name: "listener_module_template_async",
        description: "d",
        ldap_filter: "(objectClass=inetOrgPerson)",
        attributes: &[],
        priority: 50.0,
        handle_every_delete: false,
        modrdn: false,
        parallelism: Some(4),
        kind: ApiKind::Async,
        constructor: construct,
        source: SourceLocation {
            item: "x::A",
            file: "a.rs",
            line: 1,
        },
    };
    static SYNC: ModuleRegistration = ModuleRegistration {
        name: "unique_name",
        description: "d",
        ldap_filter: "(&(objectClass=inetOrgPerson)(uid=example))",
        attributes: &["sn", "givenName"],
        priority: 12.5,
        handle_every_delete: false,
        modrdn: false,
        parallelism: None,
        kind: ApiKind::New,
        constructor: construct,
        source: SourceLocation {
            item: "x::S",
            file: "s.rs",
            line: 1,
        },
    };

    #[test]
    fn table_is_aligned() {
        let table = module_table(&[&SYNC, &ASYNC]);
        let expected = "\
NAME                            API    PRIORITY  WORKERS  ATTRIBUTES    FILTER
unique_name                     new    12.5      -        sn,givenName  (&(objectClass=inetOrgPerson)(uid=example))
listener_module_template_async  async  50.0      4        (all)         (objectClass=inetOrgPerson)
";
        assert_eq!(table, expected);
    }

    #[test]
    fn json_lists_every_field() {
        let json = module_json(&[&SYNC, &ASYNC]);
        assert!(json.starts_with(r#"[{"name":"unique_name","description":"d","api":"new","priority":12.5,"workers":null,"#), "{json}");
        assert!(json.contains(r#""attributes":["sn","givenName"],"ldap_filter":"(&(objectClass=inetOrgPerson)(uid=example))""#), "{json}");
        assert!(
            json.contains(r#""api":"async","priority":50.0,"workers":4,"#),
            "{json}"
        );
        assert!(
            json.contains(r#""source":{"item":"x::A","file":"a.rs","line":1}}]"#),
            "{json}"
        );
        assert_eq!(module_json(&[]), "[]");
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string(r#"(cn=a\2a"b)"#), r#""(cn=a\\2a\"b)""#);
        assert_eq!(json_string("a\nb\u{1}"), r#""a\nb\u0001""#);
    }
}
