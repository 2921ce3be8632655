//! One trace per user action, across HTTP and events (W3C Trace Context).
//!
//! A request's `traceparent` header (or a new trace) starts its `request` span; the
//! outbox stores the `traceparent` of the span that staged each event and the relay
//! publishes it as a message header; the listener that handles the event continues that
//! trace in its `event` span. So a purchase (sign-in, reserve, the expiry or the payment,
//! every replica's update, the query projection) is one trace, whose `trace_id` is on every
//! log line written inside it ([`crate::telemetry`]). With `OTEL_EXPORTER_OTLP_ENDPOINT`
//! set, the spans are also exported over OTLP and form one tree; without it nothing is
//! exported and the propagation costs a few field writes.

use std::fmt::Write as _;

use tracing::Span;

/// The W3C header (and NATS message header) that carries the trace.
pub const TRACEPARENT: &str = "traceparent";

/// A parsed `traceparent`: `00-<trace id>-<parent span id>-<flags>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    pub parent_id: [u8; 8],
    pub sampled: bool,
}

impl TraceParent {
    /// Parses a header value; `None` for anything malformed (then a new trace starts, as
    /// the specification says), including all-zero ids and version `ff`.
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.trim().split('-');
        let (version, trace, parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        // Later versions may append fields; version 00 has exactly four.
        if version.len() != 2 || version == "ff" || (version == "00" && parts.next().is_some()) {
            return None;
        }
        let trace_id: [u8; 16] = hex(trace)?;
        let parent_id: [u8; 8] = hex(parent)?;
        let [flags]: [u8; 1] = hex(flags)?;
        hex::<1>(version)?;
        if trace_id == [0; 16] || parent_id == [0; 8] {
            return None;
        }
        Some(Self { trace_id, parent_id, sampled: flags & 1 == 1 })
    }

    /// A new trace, with a made-up parent id (the caller that did not send one).
    pub fn new_root() -> Self {
        let random = uuid::Uuid::new_v4().into_bytes();
        let more = uuid::Uuid::new_v4().into_bytes();
        let mut parent_id = [0; 8];
        parent_id.copy_from_slice(&more[..8]);
        Self { trace_id: random, parent_id, sampled: true }
    }

    /// The same trace with another parent (the span that causes the next step).
    pub fn child_of(self, parent_id: [u8; 8]) -> Self {
        Self { parent_id, ..self }
    }

    pub fn trace_id_hex(&self) -> String {
        to_hex(&self.trace_id)
    }

    pub fn to_header(&self) -> String {
        format!("00-{}-{}-{:02x}", to_hex(&self.trace_id), to_hex(&self.parent_id), u8::from(self.sampled))
    }
}

fn hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != N * 2 || !text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    let mut out = [0; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[i * 2..i * 2 + 2], 16).ok()?;
    }
    Some(out)
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// Makes `span` part of the trace `incoming` (a `traceparent` value), or of a new trace
/// when there is none or it is malformed: records the span's `trace_id` field and, when
/// spans are exported, makes the span a child of the incoming parent.
pub fn continue_trace(span: &Span, incoming: Option<&str>) -> TraceParent {
    let parent = incoming.and_then(TraceParent::parse).unwrap_or_else(TraceParent::new_root);
    span.record("trace_id", parent.trace_id_hex());
    crate::telemetry::set_remote_parent(span, &parent);
    parent
}

/// The `traceparent` for work the current span causes (an event it stages, a call it
/// makes): its trace, with the current span as the parent. `None` outside any trace.
pub fn current_traceparent() -> Option<String> {
    crate::telemetry::current_trace().map(|parent| parent.to_header())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_round_trips() {
        let value = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parsed = TraceParent::parse(value).unwrap();
        assert_eq!(parsed.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(parsed.sampled);
        assert_eq!(parsed.to_header(), value);
    }

    #[test]
    fn malformed_values_start_a_new_trace() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-xyz-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
        let future = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-more";
        assert!(TraceParent::parse(future).is_some_and(|p| !p.sampled), "a later version is read");
    }

    #[test]
    fn new_traces_differ() {
        let (a, b) = (TraceParent::new_root(), TraceParent::new_root());
        assert_ne!(a.trace_id, b.trace_id);
        assert!(TraceParent::parse(&a.to_header()).is_some());
    }
}
