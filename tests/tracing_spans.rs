//! Feature `tracing`: every step of a commit is a span with the target path
//! and its duration.
#![cfg(feature = "tracing")]

mod common;

use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// A span seen: name, path field, whether `elapsed_us` was recorded, id.
type Span = (String, String, bool, u64);

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Span>>>);

struct Fields<'a>(&'a mut String, &'a mut bool);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "path" {
            *self.0 = format!("{value:?}");
        }
    }
    fn record_u64(&mut self, field: &Field, _: u64) {
        if field.name() == "elapsed_us" {
            *self.1 = true;
        }
    }
}

impl<S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>> Layer<S>
    for Seen
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let (mut path, mut timed) = (String::new(), false);
        attrs.record(&mut Fields(&mut path, &mut timed));
        let mut seen = self.0.lock().unwrap();
        seen.push((
            attrs.metadata().name().to_owned(),
            path,
            timed,
            id.into_u64(),
        ));
    }
    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        let (mut path, mut timed) = (String::new(), false);
        values.record(&mut Fields(&mut path, &mut timed));
        if timed {
            // Ids are reused after a span closes: the latest one is this.
            let mut seen = self.0.lock().unwrap();
            if let Some(span) = seen.iter_mut().rev().find(|s| s.3 == id.into_u64()) {
                span.2 = true;
            }
        }
    }
}

#[test]
fn a_commit_shows_each_step_with_path_and_duration() {
    let (_dir, dir) = common::tempdir();
    let path = dir.join("traced");
    let seen = Seen::default();
    let subscriber = tracing_subscriber::registry().with(seen.clone());
    tracing::subscriber::with_default(subscriber, || {
        let file = txfile::TxFile::open(&path).unwrap();
        file.update(|_| Ok::<_, txfile::Error>(vec![b'x'; 100_000]))
            .unwrap();
        file.update(|old| Ok::<_, txfile::Error>(old.unwrap()[1..].to_vec()))
            .unwrap();
    });
    let seen = seen.0.lock().unwrap();
    for step in [
        "txfile.lock_wait",
        "txfile.read",
        "txfile.write",
        "txfile.fsync",
        "txfile.rename",
        "txfile.sync_dir",
    ] {
        let span = seen
            .iter()
            .find(|(name, ..)| name == step)
            .unwrap_or_else(|| panic!("no {step} span in {seen:?}"));
        assert!(
            span.1.contains("traced"),
            "{step} names the target: {span:?}"
        );
        assert!(span.2, "{step} recorded its duration: {span:?}");
    }
}
