//! Background tasks, each spawned inside a span named after it, so every
//! log line a watch, a writer or a loop emits says which task it came from
//! (the request path is not a task and gets no span of this kind).

use std::future::Future;

use tokio::task::JoinHandle;
use tracing::Instrument;

/// Spawns `future` on the runtime inside the span `task{task=<name>}`.
pub(crate) fn spawn<F>(name: &'static str, future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(future.instrument(tracing::info_span!("task", task = name)))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing::{Subscriber, span};
    use tracing_subscriber::{Layer, layer::Context, prelude::*, registry::LookupSpan};

    /// Records the name and fields of each span that is entered.
    #[derive(Clone, Default)]
    struct Entered(Arc<Mutex<Vec<String>>>);

    impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Entered {
        fn on_new_span(&self, attrs: &span::Attributes<'_>, _: &span::Id, _: Context<'_, S>) {
            let mut fields = String::new();
            attrs.record(
                &mut |field: &tracing::field::Field, value: &dyn std::fmt::Debug| {
                    fields.push_str(&format!("{}={value:?}", field.name()));
                },
            );
            self.0
                .lock()
                .unwrap()
                .push(format!("{}{{{fields}}}", attrs.metadata().name()));
        }
    }

    #[tokio::test]
    async fn a_task_runs_inside_a_span_named_after_it() {
        let seen = Entered::default();
        let subscriber = tracing_subscriber::registry().with(seen.clone());
        let _guard = tracing::subscriber::set_default(subscriber);
        let inside = super::spawn("cache.pods", async { tracing::Span::current().is_none() });
        assert!(!inside.await.unwrap(), "the task's own code sees its span");
        assert_eq!(*seen.0.lock().unwrap(), ["task{task=\"cache.pods\"}"]);
    }
}
