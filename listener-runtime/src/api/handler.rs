//! The three module APIs (semantics §7): [`Handler`] (the new API), [`AsyncHandler`]
//! (the same methods, asynchronous) and [`ClassicHandler`] (one function with the command
//! letter).

use std::future::Future;
use std::pin::Pin;

use listener_core::{Command, Dn, Entry};

use crate::api::context::Context;
use crate::api::error::{HandlerError, HandlerResult};

/// A listener module written against the new API (UCS's `ListenerModuleHandler`).
///
/// Every method has a default that does nothing, so a module implements only what it
/// needs. Register the struct with `#[listener_module(...)]`; the runtime makes one
/// instance with `Default::default()`.
///
/// ```
/// use listener_runtime::prelude::*;
///
/// #[derive(Default)]
/// pub struct Mailer;
///
/// impl Handler for Mailer {
///     fn create(&mut self, ctx: &mut Context, dn: &Dn, new: &Entry) -> HandlerResult {
///         ctx.logger().info(format_args!("{dn} has mail {:?}", new.first_str("mail")));
///         Ok(())
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "listener module `{Self}` does not implement `Handler`",
    label = "`#[listener_module]` needs `impl Handler for {Self}`",
    note = "add `impl listener_runtime::Handler for {Self} {{ … }}` with the methods the module needs (create, modify, remove, …); every method has a default",
    note = "if `{Self}` implements `AsyncHandler`, add `run_asynchronously` to `#[listener_module(...)]`"
)]
pub trait Handler: Send + 'static {
    /// The object `dn` entered the module's view: it was added, moved into the filter, or
    /// is delivered by the module's initialization.
    fn create(&mut self, ctx: &mut Context, dn: &Dn, new: &Entry) -> HandlerResult {
        let _ = (ctx, dn, new);
        Ok(())
    }

    /// The object changed from `old` to `new`; `old_dn` is set when it was also renamed
    /// or moved (then `dn` is the new DN).
    fn modify(
        &mut self,
        ctx: &mut Context,
        dn: &Dn,
        old: &Entry,
        new: &Entry,
        old_dn: Option<&Dn>,
    ) -> HandlerResult {
        let _ = (ctx, dn, old, new, old_dn);
        Ok(())
    }

    /// The object was deleted or left the module's filter; `old` is its last state.
    fn remove(&mut self, ctx: &mut Context, dn: &Dn, old: &Entry) -> HandlerResult {
        let _ = (ctx, dn, old);
        Ok(())
    }

    /// Called once when the module is (re)initialized, after [`Handler::clean`] and
    /// before the objects matching its filter are delivered as `create`s.
    fn initialize(&mut self, ctx: &mut Context) -> HandlerResult {
        let _ = ctx;
        Ok(())
    }

    /// Removes whatever the module produced, before it is initialized again.
    fn clean(&mut self, ctx: &mut Context) -> HandlerResult {
        let _ = ctx;
        Ok(())
    }

    /// Called before the first change after start or after a [`Handler::post_run`].
    fn pre_run(&mut self, ctx: &mut Context) -> HandlerResult {
        let _ = ctx;
        Ok(())
    }

    /// Called when the listener has been idle for a while and when it stops.
    fn post_run(&mut self, ctx: &mut Context) -> HandlerResult {
        let _ = ctx;
        Ok(())
    }

    /// Called when `create`, `modify` or `remove` returned `error` for the change `command`
    /// of `dn` (`old`/`new` as the failed call saw them).
    ///
    /// Return `Ok(())` when the module handled the error itself: the change then counts as
    /// delivered. Return an error (by default `error` itself, like UCS's re-raise)
    /// and the runtime retries and finally records the change as a failed event.
    fn error_handler(
        &mut self,
        ctx: &mut Context,
        dn: &Dn,
        old: Option<&Entry>,
        new: Option<&Entry>,
        command: Command,
        error: HandlerError,
    ) -> HandlerResult {
        let _ = (ctx, dn, old, new, command);
        Err(error)
    }
}

/// A future returned by an asynchronous handler method, boxed so [`ErasedAsyncHandler`]
/// stays object safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A listener module run asynchronously (`#[listener_module(run_asynchronously, ...)]`):
/// the methods of [`Handler`], as `async fn`.
///
/// Implement the methods with `async fn`; their futures must be `Send`, so that they can
/// run on the worker processes' runtime. Each of the module's `parallelism` worker
/// processes makes its own instance with `Default::default()` and runs one call at a time
/// (docs/semantics.md §7.1).
///
/// ```
/// use listener_runtime::prelude::*;
///
/// #[derive(Default)]
/// pub struct Slow;
///
/// impl AsyncHandler for Slow {
///     async fn create(&mut self, ctx: &mut Context, dn: &Dn, _new: &Entry) -> HandlerResult {
///         ctx.logger().debug(format_args!("dn: {dn}"));
///         Ok(())
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "asynchronous listener module `{Self}` does not implement `AsyncHandler`",
    label = "`#[listener_module(run_asynchronously, ...)]` needs `impl AsyncHandler for {Self}`",
    note = "add `impl listener_runtime::AsyncHandler for {Self} {{ … }}` with `async fn create`, `async fn modify`, … (every method has a default); or drop `run_asynchronously` and implement `Handler`"
)]
pub trait AsyncHandler: Send + 'static {
    /// See [`Handler::create`].
    fn create(
        &mut self,
        ctx: &mut Context,
        dn: &Dn,
        new: &Entry,
    ) -> impl Future<Output = HandlerResult> + Send {
        let _ = (ctx, dn, new);
        async { Ok(()) }
    }

    /// See [`Handler::modify`].
    fn modify(
        &mut self,
        ctx: &mut Context,
        dn: &Dn,
        old: &Entry,
        new: &Entry,
        old_dn: Option<&Dn>,
    ) -> impl Future<Output = HandlerResult> + Send {
        let _ = (ctx, dn, old, new, old_dn);
        async { Ok(()) }
    }

    /// See [`Handler::remove`].
    fn remove(
        &mut self,
        ctx: &mut Context,
        dn: &Dn,
        old: &Entry,
    ) -> impl Future<Output = HandlerResult> + Send {
        let _ = (ctx, dn, old);
        async { Ok(()) }
    }

    /// See [`Handler::initialize`].
    fn initialize(&mut self, ctx: &mut Context) -> impl Future<Output = HandlerResult> + Send {
        let _ = ctx;
        async { Ok(()) }
    }

    /// See [`Handler::clean`].
    fn clean(&mut self, ctx: &mut Context) -> impl Future<Output = HandlerResult> + Send {
        let _ = ctx;
        async { Ok(()) }
    }

    /// See [`Handler::pre_run`]; in asynchronous modules it runs only before the first
    /// call after start or after a `post_run`.
    fn pre_run(&mut self, ctx: &mut Context) -> impl Future<Output = HandlerResult> + Send {
        let _ = ctx;
        async { Ok(()) }
    }

    /// See [`Handler::post_run`].
    fn post_run(&mut self, ctx: &mut Context) -> impl Future<Output = HandlerResult> + Send {
        let _ = ctx;
        async { Ok(()) }
    }

    /// See [`Handler::error_handler`].
    fn error_handler(
        &mut self,
        ctx: &mut Context,
        dn: &Dn,
        old: Option<&Entry>,
        new: Option<&Entry>,
        command: Command,
        error: HandlerError,
    ) -> impl Future<Output = HandlerResult> + Send {
        let _ = (ctx, dn, old, new, command);
        async move { Err(error) }
    }
}

/// [`AsyncHandler`] made object safe (futures boxed), so the runtime can store any
/// asynchronous module as `Box<dyn ErasedAsyncHandler>`. Implemented for every
/// `AsyncHandler`; modules never implement it themselves.
pub trait ErasedAsyncHandler: Send + 'static {
    /// [`AsyncHandler::create`], boxed.
    fn create<'a>(
        &'a mut self,
        ctx: &'a mut Context,
        dn: &'a Dn,
        new: &'a Entry,
    ) -> BoxFuture<'a, HandlerResult>;

    /// [`AsyncHandler::modify`], boxed.
    fn modify<'a>(
        &'a mut self,
        ctx: &'a mut Context,
        dn: &'a Dn,
        old: &'a Entry,
        new: &'a Entry,
        old_dn: Option<&'a Dn>,
    ) -> BoxFuture<'a, HandlerResult>;

    /// [`AsyncHandler::remove`], boxed.
    fn remove<'a>(
        &'a mut self,
        ctx: &'a mut Context,
        dn: &'a Dn,
        old: &'a Entry,
    ) -> BoxFuture<'a, HandlerResult>;

    /// [`AsyncHandler::initialize`], boxed.
    fn initialize<'a>(&'a mut self, ctx: &'a mut Context) -> BoxFuture<'a, HandlerResult>;

    /// [`AsyncHandler::clean`], boxed.
    fn clean<'a>(&'a mut self, ctx: &'a mut Context) -> BoxFuture<'a, HandlerResult>;

    /// [`AsyncHandler::pre_run`], boxed.
    fn pre_run<'a>(&'a mut self, ctx: &'a mut Context) -> BoxFuture<'a, HandlerResult>;

    /// [`AsyncHandler::post_run`], boxed.
    fn post_run<'a>(&'a mut self, ctx: &'a mut Context) -> BoxFuture<'a, HandlerResult>;

    /// [`AsyncHandler::error_handler`], boxed.
    #[allow(clippy::too_many_arguments)]
    fn error_handler<'a>(
        &'a mut self,
        ctx: &'a mut Context,
        dn: &'a Dn,
        old: Option<&'a Entry>,
        new: Option<&'a Entry>,
        command: Command,
        error: HandlerError,
    ) -> BoxFuture<'a, HandlerResult>;
}

impl<T: AsyncHandler> ErasedAsyncHandler for T {
    fn create<'a>(
        &'a mut self,
        ctx: &'a mut Context,
        dn: &'a Dn,
        new: &'a Entry,
    ) -> BoxFuture<'a, HandlerResult> {
        Box::pin(AsyncHandler::create(self, ctx, dn, new))
    }

    fn modify<'a>(
        &'a mut self,
        ctx: &'a mut Context,
        dn: &'a Dn,
        old: &'a Entry,
        new: &'a Entry,
        old_dn: Option<&'a Dn>,
    ) -> BoxFuture<'a, HandlerResult> {
        Box::pin(AsyncHandler::modify(self, ctx, dn, old, new, old_dn))
    }

    fn remove<'a>(
        &'a mut self,
        ctx: &'a mut Context,
        dn: &'a Dn,
        old: &'a Entry,
    ) -> BoxFuture<'a, HandlerResult> {
        Box::pin(AsyncHandler::remove(self, ctx, dn, old))
    }

    fn initialize<'a>(&'a mut self, ctx: &'a mut Context) -> BoxFuture<'a, HandlerResult> {
        Box::pin(AsyncHandler::initialize(self, ctx))
    }

    fn clean<'a>(&'a mut self, ctx: &'a mut Context) -> BoxFuture<'a, HandlerResult> {
        Box::pin(AsyncHandler::clean(self, ctx))
    }

    fn pre_run<'a>(&'a mut self, ctx: &'a mut Context) -> BoxFuture<'a, HandlerResult> {
        Box::pin(AsyncHandler::pre_run(self, ctx))
    }

    fn post_run<'a>(&'a mut self, ctx: &'a mut Context) -> BoxFuture<'a, HandlerResult> {
        Box::pin(AsyncHandler::post_run(self, ctx))
    }

    fn error_handler<'a>(
        &'a mut self,
        ctx: &'a mut Context,
        dn: &'a Dn,
        old: Option<&'a Entry>,
        new: Option<&'a Entry>,
        command: Command,
        error: HandlerError,
    ) -> BoxFuture<'a, HandlerResult> {
        Box::pin(AsyncHandler::error_handler(
            self, ctx, dn, old, new, command, error,
        ))
    }
}

/// A classic module: one function receiving the command letter (semantics §7).
///
/// `new` is `None` for deletes and the first half of a move (`r`), `old` is `None` for
/// adds and initialization (`n`).
///
/// ```
/// use listener_runtime::prelude::*;
///
/// fn handler(
///     _ctx: &mut Context,
///     dn: &Dn,
///     new: Option<&Entry>,
///     old: Option<&Entry>,
///     command: Command,
/// ) -> HandlerResult {
///     println!("{command} {dn} {} {}", new.is_some(), old.is_some());
///     Ok(())
/// }
/// let _: ClassicHandler = handler;
/// ```
pub type ClassicHandler = fn(
    ctx: &mut Context,
    dn: &Dn,
    new: Option<&Entry>,
    old: Option<&Entry>,
    command: Command,
) -> HandlerResult;

#[cfg(test)]
mod tests {
    use std::task::{Context as TaskContext, Poll, Waker};

    use super::*;

    /// Drives a future that never waits on I/O (enough for these adapters).
    fn block_on<F: Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let mut cx = TaskContext::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                return output;
            }
        }
    }

    #[derive(Default)]
    struct Counter {
        calls: Vec<&'static str>,
    }

    impl AsyncHandler for Counter {
        async fn create(&mut self, _: &mut Context, _: &Dn, _: &Entry) -> HandlerResult {
            self.calls.push("create");
            Ok(())
        }

        async fn remove(&mut self, ctx: &mut Context, dn: &Dn, _: &Entry) -> HandlerResult {
            self.calls.push("remove");
            Err(HandlerError::msg(format!(
                "{} cannot remove {dn}",
                ctx.module_name()
            )))
        }
    }

    fn assert_send<T: Send>(_: &T) {}

    #[test]
    fn erased_async_handler_forwards_every_call() {
        let mut erased: Box<dyn ErasedAsyncHandler> = Box::new(Counter::default());
        let mut ctx = Context::new("counter");
        let dn = Dn::parse("uid=a,dc=example").expect("valid DN");
        let entry = Entry::new(dn.clone());

        let create = erased.create(&mut ctx, &dn, &entry);
        assert_send(&create);
        assert!(block_on(create).is_ok());
        let err = block_on(erased.remove(&mut ctx, &dn, &entry)).unwrap_err();
        assert_eq!(err.to_string(), "counter cannot remove uid=a,dc=example");
        // Defaults: no-ops, and the error handler passes the error on.
        assert!(block_on(erased.modify(&mut ctx, &dn, &entry, &entry, None)).is_ok());
        assert!(block_on(erased.pre_run(&mut ctx)).is_ok());
        let passed_on =
            block_on(erased.error_handler(&mut ctx, &dn, None, Some(&entry), Command::Add, err));
        assert!(passed_on.is_err());
    }

    #[test]
    fn handler_defaults_do_nothing() {
        struct Nothing;
        impl Handler for Nothing {}
        let mut module: Box<dyn Handler> = Box::new(Nothing);
        let mut ctx = Context::new("nothing");
        let dn = Dn::root();
        let entry = Entry::new(dn.clone());
        assert!(module.create(&mut ctx, &dn, &entry).is_ok());
        assert!(module.initialize(&mut ctx).is_ok());
        assert!(module.clean(&mut ctx).is_ok());
        assert!(module.post_run(&mut ctx).is_ok());
    }
}
