//! `modules`: the listener modules linked into the binary, in call order; with
//! `--cache-dir`, each module's state in that listener cache (semantics §6).

use std::path::Path;
use std::process::ExitCode;

use serde::Serialize;

use crate::api::registry::{ApiKind, ModuleRegistration};
use crate::listener::cache::{Cache, CacheError};
use crate::listener::control::Client;
use crate::listener::control::protocol::{Query, StatusReport};
use crate::listener::control::report::state_text;

const NO_MODULES_HINT: &str = "no listener modules are registered in this binary.\n\
    hint: a module crate that the binary never refers to is not linked, and its modules \
    are silently missing; add `use my_modules as _;` (your module crate's name) to the \
    binary's main.rs";

pub(super) fn list_modules(
    modules: &[&ModuleRegistration],
    json: bool,
    cache_dir: Option<&Path>,
) -> ExitCode {
    if modules.is_empty() {
        eprintln!("{NO_MODULES_HINT}");
    }
    let states = match cache_dir.map(|dir| module_states(modules, dir)) {
        None => None,
        Some(Ok(states)) => Some(states),
        Some(Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if json {
        println!("{}", module_json(modules, states.as_deref()));
    } else if !modules.is_empty() {
        print!("{}", module_table(modules, states.as_deref()));
    }
    ExitCode::SUCCESS
}

/// A module's state in a cache, and for an asynchronous module the calls queued.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Shown {
    state: String,
    queued: Option<u64>,
}

/// Each module's state in the cache in `dir`, as [`state_text`] shows it: from the
/// running listener (over its control socket) or, when none runs, from the cache itself.
fn module_states(modules: &[&ModuleRegistration], dir: &Path) -> Result<Vec<Shown>, String> {
    if let Some(mut client) = Client::connect(dir) {
        let status: StatusReport = client.call(&Query::Status)?;
        return Ok(modules
            .iter()
            .map(|m| {
                let found = status.modules.iter().find(|s| s.name == m.name);
                Shown {
                    state: found.map_or_else(|| "NEW".to_owned(), |s| s.state.clone()),
                    queued: found.and_then(|s| s.queue.as_ref()).map(|q| q.depth),
                }
            })
            .collect());
    }
    let from_cache = || -> Result<Vec<Shown>, CacheError> {
        let Some(cache) = Cache::open_read_only(dir)? else {
            eprintln!(
                "warning: there is no listener cache in {} (yet): every module is NEW",
                dir.display()
            );
            return Ok(modules
                .iter()
                .map(|m| Shown {
                    state: state_text(m, None, 0),
                    queued: None,
                })
                .collect());
        };
        let r = cache.read()?;
        modules
            .iter()
            .map(|m| {
                let state = r.module_state(m.name)?;
                let registered = r.registered_count(m.name)?;
                let queued = match m.kind {
                    ApiKind::Async => Some(r.queue_len(m.name)?),
                    _ => None,
                };
                Ok(Shown {
                    state: state_text(m, state.as_ref(), registered),
                    queued,
                })
            })
            .collect()
    };
    from_cache().map_err(|e| e.to_string())
}

/// The `modules --json` listing: an array of objects, one per module, in call order; with
/// `states`, each has a `state`, and an asynchronous module the calls `queued`.
fn module_json(modules: &[&ModuleRegistration], states: Option<&[Shown]>) -> String {
    let objects: Vec<ModuleJson<'_>> = modules
        .iter()
        .enumerate()
        .map(|(i, m)| ModuleJson {
            name: m.name,
            state: states.and_then(|s| s.get(i)).map(|s| s.state.as_str()),
            queued: states.and_then(|s| s.get(i)).and_then(|s| s.queued),
            description: m.description,
            api: m.kind.as_str(),
            priority: m.priority,
            workers: m.workers(),
            handle_every_delete: m.handle_every_delete,
            modrdn: m.modrdn,
            attributes: m.attributes,
            ldap_filter: m.ldap_filter,
            source: SourceJson {
                item: m.source.item,
                file: m.source.file,
                line: m.source.line,
            },
        })
        .collect();
    // Plain strings, numbers and booleans: serializing cannot fail.
    serde_json::to_string(&objects).expect("module listing serializes")
}

/// One module in the `modules --json` listing.
#[derive(Serialize)]
struct ModuleJson<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    queued: Option<u64>,
    description: &'a str,
    api: &'a str,
    priority: f64,
    workers: Option<u32>,
    handle_every_delete: bool,
    modrdn: bool,
    attributes: &'a [&'a str],
    ldap_filter: &'a str,
    source: SourceJson<'a>,
}

/// Where a module is defined.
#[derive(Serialize)]
struct SourceJson<'a> {
    item: &'a str,
    file: &'a str,
    line: u32,
}

/// The `modules` listing: one aligned row per module, the filter last (it is the longest);
/// with `states`, a STATE column after the name, and the calls an asynchronous module has
/// queued beside its workers.
fn module_table(modules: &[&ModuleRegistration], states: Option<&[Shown]>) -> String {
    let mut header = vec!["NAME", "API", "PRIORITY", "WORKERS", "ATTRIBUTES", "FILTER"];
    if states.is_some() {
        header.insert(1, "STATE");
    }
    let rows: Vec<Vec<String>> = modules
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut row = vec![
                m.name.to_owned(),
                m.kind.to_string(),
                format!("{:?}", m.priority),
                match (
                    m.workers(),
                    states.and_then(|s| s.get(i)).and_then(|s| s.queued),
                ) {
                    (None, _) => "-".to_owned(),
                    (Some(n), None) => n.to_string(),
                    (Some(n), Some(queued)) => format!("{n}, {queued} queued"),
                },
                if m.attributes.is_empty() {
                    "(all)".to_owned()
                } else {
                    m.attributes.join(",")
                },
                m.ldap_filter.to_owned(),
            ];
            if let Some(states) = states {
                row.insert(
                    1,
                    states.get(i).map(|s| s.state.clone()).unwrap_or_default(),
                );
            }
            row
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
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
        push_row(&row.iter().map(String::as_str).collect::<Vec<_>>());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::registry::{ApiKind, ModuleInstance, SourceLocation};
    use crate::listener::cache::{ModulePhase, ModuleState};

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
        blocking: false,
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
        blocking: false,
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
        let table = module_table(&[&SYNC, &ASYNC], None);
        let expected = "\
NAME                            API    PRIORITY  WORKERS  ATTRIBUTES    FILTER
unique_name                     new    12.5      -        sn,givenName  (&(objectClass=inetOrgPerson)(uid=example))
listener_module_template_async  async  50.0      4        (all)         (objectClass=inetOrgPerson)
";
        assert_eq!(table, expected);
    }

    #[test]
    fn json_lists_every_field() {
        let json = module_json(&[&SYNC, &ASYNC], None);
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
        assert_eq!(module_json(&[], None), "[]");
    }

    fn state(phase: ModulePhase, filter: &str, attributes: &[&str]) -> ModuleState {
        ModuleState {
            phase,
            filter: filter.to_owned(),
            attributes: attributes.iter().map(|a| (*a).to_owned()).collect(),
            changed: std::time::SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn states_read_like_the_lifecycle() {
        let filter = SYNC.ldap_filter;
        let attrs = ["sn", "givenName"];
        assert_eq!(state_text(&SYNC, None, 0), "NEW");
        assert_eq!(
            state_text(&SYNC, Some(&state(ModulePhase::Ready, filter, &attrs)), 3),
            "READY"
        );
        assert_eq!(
            state_text(
                &SYNC,
                Some(&state(
                    ModulePhase::Initializing { progress: None },
                    filter,
                    &attrs
                )),
                1200
            ),
            "INITIALIZING (1200 done)"
        );
        let failed = ModulePhase::Failed {
            error: "clean failed: no such file".into(),
        };
        assert_eq!(
            state_text(&SYNC, Some(&state(failed, filter, &attrs)), 0),
            "FAILED: clean failed: no such file"
        );
        assert!(
            state_text(
                &SYNC,
                Some(&state(ModulePhase::Ready, "(cn=other)", &attrs)),
                0
            )
            .starts_with("READY (filter or attributes changed")
        );
    }

    #[test]
    fn table_and_json_show_states() {
        let shown = |state: &str, queued| Shown {
            state: state.to_owned(),
            queued,
        };
        let states = [shown("READY", None), shown("NEW", Some(12))];
        let table = module_table(&[&SYNC, &ASYNC], Some(&states));
        let mut lines = table.lines();
        assert!(
            lines
                .next()
                .unwrap()
                .starts_with("NAME                            STATE  API")
        );
        assert!(
            lines
                .next()
                .unwrap()
                .starts_with("unique_name                     READY  new")
        );
        assert!(
            lines
                .next()
                .unwrap()
                .starts_with("listener_module_template_async  NEW    async")
        );
        assert!(table.contains(" 4, 12 queued "), "{table}");
        let json = module_json(&[&SYNC], Some(&states[..1]));
        assert!(
            json.starts_with(r#"[{"name":"unique_name","state":"READY","description""#),
            "{json}"
        );
    }

    #[test]
    fn json_strings_are_escaped() {
        static ODD: ModuleRegistration = ModuleRegistration {
            name: "odd",
            description: "a\nb\u{1}",
            ldap_filter: r#"(cn=a\2a"b)"#,
            ..SYNC
        };
        let json = module_json(&[&ODD], None);
        assert!(json.contains(r#""description":"a\nb\u0001","#), "{json}");
        assert!(json.contains(r#""ldap_filter":"(cn=a\\2a\"b)","#), "{json}");
        let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed[0]["ldap_filter"], r#"(cn=a\2a"b)"#);
    }
}
