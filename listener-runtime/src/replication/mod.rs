//! The built-in `replication` module (docs/semantics.md §8): with `run --replicate-to`,
//! every change is written into a local slapd (the replica) before any other module
//! sees it: priority 0, blocking, so that a change the replica rejects holds processing
//! and is retried instead of being dropped. What is written is decided without I/O in
//! [`listener_core::replica`]; [`replica`] sends it.

mod fill;
mod mark;
mod pipeline;
mod replica;
mod schema;

use std::path::Path;
use std::sync::{Arc, OnceLock};

use listener_core::{Dn, Entry};

use crate::api::context::Context;
use crate::api::error::{HandlerError, HandlerResult};
use crate::api::handler::Handler;
use crate::api::registry::{ApiKind, ModuleInstance, ModuleRegistration, SourceLocation};
use crate::ldap::LdapSettings;
use crate::listener::fetch::Fetcher;

pub(crate) use mark::{Mark, MarkError};
pub(crate) use pipeline::Pipeline;
use pipeline::Write;

/// Connections to the replica that write at once, each one operation at a time: the
/// fill's adds and the main loop's writes ([`Pipeline`]).
const WRITERS: usize = 8;

/// The module's name, as `status`, `modules` and `failed` show it.
pub(crate) const NAME: &str = "replication";

/// Where and what to replicate (`run --replicate-to …`).
#[derive(Debug, Clone)]
pub(crate) struct ReplicationConfig {
    /// The replica's URI and its updatedn's credentials.
    pub replica: LdapSettings,
    /// The subtree replicated (the listener's base).
    pub base: Dn,
    /// `--replication-filter`: only the matching objects (and their parents) are
    /// replicated; every object without it.
    pub filter: Option<String>,
    /// `--replica-config-uri`: the replica's `cn=config` (`ldapi://`, SASL EXTERNAL),
    /// where the primary's new schema is written; without it a change that needs schema
    /// the replica lacks is held like any refused change.
    pub config_uri: Option<String>,
    /// The primary's connection settings (the listener's own), for the first fill's
    /// search on a connection of its own; set by `run`.
    pub primary: Option<LdapSettings>,
}

/// The configuration of this process's replication module: set once by `run`, before
/// the module is instantiated (a registration's constructor takes no arguments).
static CONFIG: OnceLock<ReplicationConfig> = OnceLock::new();

/// The registration of the `replication` module for `config`: first of all modules
/// (priority 0), blocking, taking every object the filter matches.
pub(crate) fn registration(config: ReplicationConfig) -> &'static ModuleRegistration {
    let filter = config.filter.clone();
    // A second `run` in one process (tests) keeps the first configuration.
    let _ = CONFIG.set(config);
    match filter {
        // One registration per process, made at start: leaked, as linked ones are static.
        Some(filter) => Box::leak(Box::new(with_filter(Box::leak(filter.into_boxed_str())))),
        None => &KNOWN,
    }
}

/// The module as the tools (`failed`, `status`, `resync`) know it, whether or not the
/// running listener replicates.
pub(crate) fn known() -> &'static ModuleRegistration {
    &KNOWN
}

static KNOWN: ModuleRegistration = with_filter("(objectClass=*)");

const fn with_filter(ldap_filter: &'static str) -> ModuleRegistration {
    ModuleRegistration {
        name: NAME,
        description: "domain replication into the local slapd (run --replicate-to)",
        ldap_filter,
        attributes: &[],
        priority: 0.0,
        handle_every_delete: true,
        blocking: true,
        modrdn: false,
        parallelism: None,
        kind: ApiKind::New,
        constructor: || ModuleInstance::Sync(Box::new(Replication::new())),
        source: SourceLocation {
            item: "listener_runtime::replication::Replication",
            file: file!(),
            line: line!(),
        },
    }
}

/// The module's instance for a listener that hands its writes to `pipeline`.
pub(crate) fn instance(pipeline: Arc<Pipeline>) -> ModuleInstance {
    let mut replication = Replication::new();
    replication.pipeline = Some(pipeline);
    ModuleInstance::Sync(Box::new(replication))
}

/// A connection to the replica, as `run --replicate-to` configured it.
async fn connect_replica() -> Result<replica::Replica, HandlerError> {
    match CONFIG.get() {
        Some(config) => replica::Replica::connect(config).await,
        None => Err(not_configured()),
    }
}

fn not_configured() -> HandlerError {
    HandlerError::msg("the replication module runs only under `run --replicate-to`")
}

/// The primary, on the listener's connection, searched under the replicated base.
fn primary(ctx: &Context) -> Result<Fetcher, HandlerError> {
    let config = CONFIG.get().ok_or_else(not_configured)?;
    let ldap = ctx
        .ldap()
        .ok_or_else(|| HandlerError::msg("no connection to the primary"))?;
    Ok(Fetcher::new(ldap, config.base.clone()))
}

/// The module: its connection to the replica, opened at the first change.
struct Replication {
    replica: Option<replica::Replica>,
    /// Where writes go in the listener's main loop (with group commit), to run several
    /// at a time; without it, or when it gives a write back, it is written here, inline.
    pipeline: Option<Arc<Pipeline>>,
    /// What the fill of this initialization wrote, until the objects' creates come.
    filled: fill::Filled,
    /// The refused change last appended to `failed.ldif` (a retry of the same change is
    /// not appended again).
    recorded: Option<replica::Rejected>,
}

impl Replication {
    fn new() -> Replication {
        Replication {
            replica: None,
            pipeline: None,
            filled: fill::Filled::default(),
            recorded: None,
        }
    }

    /// Runs `write` on the replica's connection (opened first if need be) from the
    /// module's synchronous method, on the listener's runtime. A failed write drops the
    /// connection: the retry starts on a fresh one.
    fn with_replica<F>(&mut self, ctx: &Context, write: F) -> HandlerResult
    where
        F: AsyncFnOnce(&mut replica::Replica, &Context) -> HandlerResult,
    {
        let Some(config) = CONFIG.get() else {
            return Err(not_configured());
        };
        let slot = &mut self.replica;
        let result = on_runtime(async {
            if slot.is_none() {
                *slot = Some(replica::Replica::connect(config).await?);
            }
            let replica = slot.as_mut().expect("connected above");
            write(replica, ctx).await
        })
        .flatten();
        if result.is_err() {
            let refused = self.replica.take().and_then(|mut r| r.take_refused());
            if let Some(refused) = refused
                && self.recorded.as_ref() != Some(&refused)
            {
                if let Some(settings) = ctx.settings() {
                    record_refused(&settings.cache_dir, &config.replica.uri, &refused);
                }
                self.recorded = Some(refused);
            }
        }
        result
    }

    /// Makes the replica take `write`: handed to the pipeline if there is one and it
    /// takes it, else written here, waiting for the replica's answer.
    fn write(&mut self, ctx: &Context, write: Write) -> HandlerResult {
        if let Some(pipeline) = &self.pipeline {
            pipeline
                .cover()
                .map_err(|e| HandlerError::msg(e.to_string()))?;
        }
        let write = match &self.pipeline {
            Some(pipeline) => match on_runtime(pipeline.hand_over(write, primary(ctx)?))? {
                None => return Ok(()),
                Some(write) => write,
            },
            None => write,
        };
        self.with_replica(ctx, async |r, ctx| write.run(r, &primary(ctx)?).await)
    }
}

/// Runs `future` to its end from the module's synchronous methods, on the listener's
/// runtime.
fn on_runtime<F: std::future::Future>(future: F) -> Result<F::Output, HandlerError> {
    let handle = tokio::runtime::Handle::try_current()
        .map_err(|_| HandlerError::msg("the replication module needs the listener's runtime"))?;
    Ok(tokio::task::block_in_place(|| handle.block_on(future)))
}

/// Appends `refused` to `<cache_dir>/failed.ldif` (mode 0600), as an RFC 2849 change
/// record after a comment naming the time and the replica's answer: where UCS
/// administrators look. A file that cannot be written is logged; the change is held
/// and retried either way.
fn record_refused(cache_dir: &Path, uri: &str, refused: &replica::Rejected) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = cache_dir.join(FAILED_LDIF);
    let text = format!(
        "# {} refused by {uri}: {}\n{}\n",
        crate::utc::now(),
        refused.message.replace('\n', " "),
        refused.record.trim_end()
    );
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut file| {
            file.write_all(format!("{text}\n").as_bytes())?;
            file.sync_data()
        });
    if let Err(e) = written {
        tracing::error!(path = %path.display(), error = %e, "cannot append the refused change to failed.ldif");
    }
}

/// The file refused changes are appended to, in the cache directory.
pub(crate) const FAILED_LDIF: &str = "failed.ldif";

impl Handler for Replication {
    /// A fresh initialization (the first start, `resync replication`): the replica is
    /// filled many objects at a time first ([`fill`]); without a replication filter
    /// only, since a filtered fill is the objects' own creates. The fill only saves
    /// time: when it fails (the replica unreachable, say), the objects' creates do the
    /// work, and hold processing as every write does, so initialization never fails here.
    fn initialize(&mut self, _ctx: &mut Context) -> HandlerResult {
        self.filled.clear();
        let Some(config) = CONFIG.get().filter(|c| c.filter.is_none()) else {
            return Ok(());
        };
        let Some(primary) = &config.primary else {
            return Ok(());
        };
        let filled = on_runtime(async {
            let connect = async |settings: &LdapSettings, what: &str| {
                Fetcher::connect(settings, config.base.clone())
                    .await
                    .map_err(|e| HandlerError::msg(format!("{what} {}: {e}", settings.uri)))
            };
            // Connections of their own: a paged search shares its connection with no
            // other operation, and each writer has one add in flight.
            let primary = connect(primary, "primary").await?;
            let mut writers = Vec::new();
            for _ in 0..WRITERS {
                writers.push(connect(&config.replica, "replica").await?);
            }
            fill::fill(&primary, writers).await
        })
        .flatten();
        match filled {
            Ok(filled) => self.filled = filled,
            Err(e) => {
                tracing::warn!(error = %e, "replication: the replica could not be filled many objects at a time; each object's create writes it instead")
            }
        }
        Ok(())
    }

    fn create(&mut self, ctx: &mut Context, _dn: &Dn, new: &Entry) -> HandlerResult {
        if self.filled.take(new) {
            return Ok(());
        }
        // Without a replication filter every object is this module's from its first
        // state on, so one new to the listener is on the replica already only when its
        // transaction is applied again (after a crash or a rewind), which `is_fresh`
        // rules out. With a filter, it may be there as the parent of a matching one.
        let fresh = CONFIG.get().is_some_and(|c| c.filter.is_none())
            && self.pipeline.as_ref().is_some_and(|p| p.is_fresh());
        let new = new.clone();
        self.write(
            ctx,
            Write::Put {
                before: None,
                new,
                cached: None,
                fresh,
            },
        )
    }

    fn post_run(&mut self, _ctx: &mut Context) -> HandlerResult {
        self.filled.clear();
        Ok(())
    }

    fn modify(
        &mut self,
        ctx: &mut Context,
        dn: &Dn,
        old: &Entry,
        new: &Entry,
        old_dn: Option<&Dn>,
    ) -> HandlerResult {
        let _ = dn;
        self.filled.clear();
        let before = Some(old_dn.unwrap_or(old.dn()).clone());
        let (new, cached) = (new.clone(), Some(old.clone()));
        self.write(
            ctx,
            Write::Put {
                before,
                new,
                cached,
                fresh: false,
            },
        )
    }

    fn remove(&mut self, ctx: &mut Context, _dn: &Dn, old: &Entry) -> HandlerResult {
        self.filled.clear();
        let old = old.clone();
        self.write(ctx, Write::Delete { old })
    }
}
