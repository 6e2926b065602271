//! The command line (architecture.md): `main()` parses it and runs a subcommand.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::registry::{self, ModuleRegistration};

/// Univention Directory Listener/Notifier.
#[derive(Debug, Parser)]
#[command(version, about = "Univention Directory Listener and Notifier")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// List the listener modules linked into this binary, in the order they are called:
    /// name, API, priority, workers, attributes, filter.
    Modules {
        /// Print a JSON array of the modules' configurations instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Runs the command line: parses the arguments, sets up logging (`RUST_LOG`, default
/// `info`, on stderr) and runs the subcommand.
///
/// Refuses to run when two linked modules have the same name, naming both.
pub fn main() -> ExitCode {
    main_from(std::env::args_os())
}

/// [`main`] with the given command line (the first item is the program name), for tests
/// and for binaries that add their own arguments.
pub fn main_from<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            // `--help` and `--version` are "errors" that print to stdout and succeed.
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    init_logging();
    let modules = registry::registered_modules();
    if let Err(e) = registry::check_unique_names(&modules) {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    match cli.command {
        Cmd::Modules { json } => list_modules(&modules, json),
    }
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // A second initialization (e.g. a test calling main twice) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

const NO_MODULES_HINT: &str = "no listener modules are registered in this binary.\n\
    hint: a module crate that the binary never refers to is not linked, and its modules \
    are silently missing; add `use my_modules as _;` (your module crate's name) to the \
    binary's main.rs";

fn list_modules(modules: &[&ModuleRegistration], json: bool) -> ExitCode {
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

    #[test]
    fn cli_parses() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
