//! Tracing spans for the steps of a transaction (feature `tracing`).
//!
//! `step!("fsync", path)` opens a span named `txfile.fsync` at debug level
//! with the path it works on, and records `elapsed_us` when it ends, so a
//! log shows whether time goes to waiting for the lock or to the disk.
//! Without the feature the macro expands to `()`: the path expression is
//! not even evaluated, and nothing is left in the binary.

#[cfg(feature = "tracing")]
macro_rules! step {
    ($name:literal, $path:expr) => {
        $crate::trace::Step::enter(tracing::debug_span!(
            target: "txfile",
            concat!("txfile.", $name),
            path = %$path,
            elapsed_us = tracing::field::Empty,
        ))
    };
}

#[cfg(not(feature = "tracing"))]
macro_rules! step {
    ($name:literal, $path:expr) => {
        ()
    };
}

/// A span for the time an async task waits for the lock, which crosses
/// `.await` points: it is never entered (an entered span must not be held
/// across them), and records `elapsed_us` when dropped.
#[cfg(all(feature = "tracing", feature = "tokio"))]
macro_rules! wait_span {
    ($path:expr) => {
        $crate::trace::Step::waiting(tracing::debug_span!(
            target: "txfile",
            "txfile.lock_wait",
            path = %$path,
            elapsed_us = tracing::field::Empty,
        ))
    };
}

#[cfg(all(not(feature = "tracing"), feature = "tokio"))]
macro_rules! wait_span {
    ($path:expr) => {
        ()
    };
}

/// What `wait_span!` gives, for an async update to keep while it is
/// queued.
#[cfg(all(feature = "tracing", feature = "tokio"))]
pub(crate) type Waiting = Step<Box<tracing::Span>>;

#[cfg(all(not(feature = "tracing"), feature = "tokio"))]
pub(crate) type Waiting = ();

pub(crate) use step;
#[cfg(feature = "tokio")]
pub(crate) use wait_span;

/// An entered span that records its own duration when dropped.
#[cfg(feature = "tracing")]
#[derive(Debug)]
pub(crate) struct Step<S: std::ops::Deref<Target = tracing::Span> = tracing::span::EnteredSpan> {
    span: S,
    /// `None` when no subscriber wants the span: then not even the clock
    /// is read.
    start: Option<std::time::Instant>,
}

#[cfg(feature = "tracing")]
impl Step {
    pub(crate) fn enter(span: tracing::Span) -> Step {
        Step {
            start: (!span.is_disabled()).then(std::time::Instant::now),
            span: span.entered(),
        }
    }
}

#[cfg(all(feature = "tracing", feature = "tokio"))]
impl Step<Box<tracing::Span>> {
    pub(crate) fn waiting(span: tracing::Span) -> Step<Box<tracing::Span>> {
        Step {
            start: (!span.is_disabled()).then(std::time::Instant::now),
            span: Box::new(span),
        }
    }
}

#[cfg(feature = "tracing")]
impl<S: std::ops::Deref<Target = tracing::Span>> Drop for Step<S> {
    fn drop(&mut self) {
        if let Some(start) = self.start {
            let elapsed = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
            self.span.record("elapsed_us", elapsed);
        }
    }
}
