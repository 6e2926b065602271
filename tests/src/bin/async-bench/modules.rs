//! The benchmark's modules: one handler that waits 5 ms (an I/O-bound call, such as a web
//! service's), as a synchronous module and as asynchronous modules with parallelism 1, 4
//! and 8. Each takes the organizational roles whose description names it, and appends
//! the start and end of each call (µs since the epoch) to `bench-<module>.txt` beside
//! the cache directory.

use std::io::Write as _;
use std::time::{Duration, SystemTime};

use listener_runtime::prelude::*;

/// How long a call waits.
pub const WAIT: Duration = Duration::from_millis(5);

fn micros() -> u128 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros())
}

fn record(ctx: &Context, start: u128) -> HandlerResult {
    let Some(dir) = ctx.settings().and_then(|s| s.cache_dir.parent()) else {
        return Err(HandlerError::msg("no cache directory in the settings"));
    };
    let path = dir.join(format!("bench-{}.txt", ctx.module_name()));
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    file.write_all(format!("{start} {}\n", micros()).as_bytes())?;
    Ok(())
}

#[listener_module(
    name = "bench_wait_sync",
    description = "benchmark: waits 5 ms a call, synchronously",
    ldap_filter = "(&(objectClass=organizationalRole)(description=sync))"
)]
#[derive(Default)]
pub struct WaitSync;

impl Handler for WaitSync {
    fn create(&mut self, ctx: &mut Context, _dn: &Dn, _new: &Entry) -> HandlerResult {
        let start = micros();
        std::thread::sleep(WAIT);
        record(ctx, start)
    }
}

/// Defines an asynchronous module whose calls wait 5 ms, with `parallelism`.
macro_rules! waiting {
    ($ty:ident, $name:literal, $filter:literal, $parallelism:literal) => {
        #[listener_module(
                            name = $name,
                            description = "benchmark: waits 5 ms a call, in worker processes",
                            ldap_filter = $filter,
                            run_asynchronously,
                            parallelism = $parallelism
                        )]
        #[derive(Default)]
        pub struct $ty;

        impl AsyncHandler for $ty {
            async fn create(&mut self, ctx: &mut Context, _dn: &Dn, _new: &Entry) -> HandlerResult {
                let start = micros();
                tokio::time::sleep(WAIT).await;
                record(ctx, start)
            }
        }
    };
}

waiting!(
    WaitP1,
    "bench_wait_p1",
    "(&(objectClass=organizationalRole)(description=p1))",
    1
);
waiting!(
    WaitP4,
    "bench_wait_p4",
    "(&(objectClass=organizationalRole)(description=p4))",
    4
);
waiting!(
    WaitP8,
    "bench_wait_p8",
    "(&(objectClass=organizationalRole)(description=p8))",
    8
);
