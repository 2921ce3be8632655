//! `OTEL_SDK_DISABLED=true`: tracing off altogether (what bench/run measures tracing's
//! cost against). Its own test binary, because the subscriber is global to a process;
//! tracing on is tested end to end in crates/gateway/tests/tracing.rs.

use std::sync::{Arc, Mutex};

use common::config::Env;

#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn with_the_sdk_disabled_a_request_span_carries_no_trace_and_nothing_is_exported() {
    let lines = Lines::default();
    let writer = lines.clone();
    let env = Env::from_pairs([
        ("LOG_FORMAT", "json"),
        ("RUST_LOG", "warn"),
        ("OTEL_SDK_DISABLED", "true"),
        // Ignored while disabled: nothing listens there, and nothing may be sent.
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9"),
    ]);
    common::telemetry::init_with_writer(&env, move || writer.clone()).unwrap();

    // The span the platform middleware opens for a request (info level, a common:: target).
    let span = tracing::info_span!(target: "common::http", "request", service = "test");
    let traceparent = span.in_scope(|| {
        tracing::warn!("inside a request");
        common::trace::current_traceparent()
    });

    assert_eq!(traceparent, None, "no trace to continue or to put in the outbox");
    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    let line: serde_json::Value = serde_json::from_str(text.lines().next().expect("the warning is logged")).unwrap();
    assert_eq!(line["message"], "inside a request");
    assert!(line.get("trace_id").is_none_or(serde_json::Value::is_null), "no trace id: {line}");
    assert!(line.get("span").is_none_or(serde_json::Value::is_null), "the span is off at warn: {line}");
}
