//! The error a module's handler returns: any error, boxed, so `?` works on everything.

use std::error::Error as StdError;
use std::fmt;

/// The result every handler method returns.
pub type HandlerResult = Result<(), HandlerError>;

/// Why a module call failed.
///
/// Like `anyhow::Error`, any `std::error::Error + Send + Sync + 'static` converts into it,
/// so `?` works on [`std::io::Error`], `ldap3::LdapError` and the module's own errors;
/// [`HandlerError::msg`] makes one from a plain message.
///
/// ```
/// use listener_runtime::{HandlerError, HandlerResult};
///
/// fn read_config() -> HandlerResult {
///     let text = std::fs::read_to_string("/nonexistent/listener.conf")?;
///     if text.is_empty() {
///         return Err(HandlerError::msg("the configuration file is empty"));
///     }
///     Ok(())
/// }
/// assert!(read_config().is_err());
/// ```
///
/// `HandlerError` itself deliberately does not implement `std::error::Error` (that would
/// conflict with the blanket `From`); use [`HandlerError::as_error`] or
/// [`HandlerError::into_inner`] to get at the underlying error.
pub struct HandlerError {
    inner: Box<dyn StdError + Send + Sync + 'static>,
}

impl HandlerError {
    /// An error carrying only a message.
    pub fn msg(message: impl fmt::Display) -> HandlerError {
        HandlerError {
            inner: Box::new(MessageError(message.to_string())),
        }
    }

    /// Wraps this error with a message saying what was being done; the original error
    /// stays reachable as the [`source`](StdError::source).
    pub fn context(self, context: impl fmt::Display) -> HandlerError {
        HandlerError {
            inner: Box::new(ContextError {
                context: context.to_string(),
                source: self.inner,
            }),
        }
    }

    /// The underlying error.
    pub fn as_error(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.inner
    }

    /// The underlying error, owned.
    pub fn into_inner(self) -> Box<dyn StdError + Send + Sync + 'static> {
        self.inner
    }

    /// The underlying error if it is an `E`.
    pub fn downcast_ref<E: StdError + 'static>(&self) -> Option<&E> {
        self.inner.downcast_ref::<E>()
    }

    /// The error and its chain of sources, outermost first.
    pub fn chain(&self) -> impl Iterator<Item = &(dyn StdError + 'static)> {
        let first: &(dyn StdError + 'static) = &*self.inner;
        let mut next = Some(first);
        std::iter::from_fn(move || {
            let current = next?;
            next = current.source();
            Some(current)
        })
    }
}

impl<E> From<E> for HandlerError
where
    E: StdError + Send + Sync + 'static,
{
    fn from(error: E) -> HandlerError {
        HandlerError {
            inner: Box::new(error),
        }
    }
}

impl From<HandlerError> for Box<dyn StdError + Send + Sync + 'static> {
    fn from(error: HandlerError) -> Self {
        error.inner
    }
}

impl From<HandlerError> for Box<dyn StdError + 'static> {
    fn from(error: HandlerError) -> Self {
        error.inner
    }
}

impl fmt::Display for HandlerError {
    /// The error's message; with `{:#}`, followed by each source (`: `-separated).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.inner)?;
        if f.alternate() {
            for source in self.chain().skip(1) {
                write!(f, ": {source}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}

#[derive(Debug)]
struct MessageError(String);

impl fmt::Display for MessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for MessageError {}

#[derive(Debug)]
struct ContextError {
    context: String,
    source: Box<dyn StdError + Send + Sync + 'static>,
}

impl fmt::Display for ContextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.context)
    }
}

impl StdError for ContextError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io_fails() -> HandlerResult {
        Err(std::io::Error::other("disk on fire"))?;
        Ok(())
    }

    #[test]
    fn question_mark_converts_std_errors() {
        let e = io_fails().unwrap_err();
        assert_eq!(e.to_string(), "disk on fire");
        assert!(e.downcast_ref::<std::io::Error>().is_some());
    }

    #[test]
    fn question_mark_converts_ldap_errors() {
        fn ldap() -> HandlerResult {
            Err(ldap3::LdapError::EndOfStream)?;
            Ok(())
        }
        assert!(ldap().is_err());
    }

    #[test]
    fn context_keeps_the_source() {
        let e = io_fails().unwrap_err().context("writing /etc/foo");
        assert_eq!(e.to_string(), "writing /etc/foo");
        assert_eq!(format!("{e:#}"), "writing /etc/foo: disk on fire");
        assert_eq!(e.chain().count(), 2);
    }

    #[test]
    fn msg_is_a_plain_message() {
        assert_eq!(HandlerError::msg(42).to_string(), "42");
    }
}
