//! CloudWatch Logs' `PutLogEvents` limits, and batching events within them: at most
//! [`MAX_BATCH_BYTES`] counting [`EVENT_OVERHEAD`] bytes per event, [`MAX_BATCH_EVENTS`] events,
//! [`MAX_BATCH_SPAN_MS`] between the first and the last event, in chronological order; a
//! message longer than one event may be is split, never dropped. Pure.

/// Largest request body CloudWatch accepts, counting [`EVENT_OVERHEAD`] per event.
pub const MAX_BATCH_BYTES: usize = 1_048_576;
/// What CloudWatch adds to each event's size.
pub const EVENT_OVERHEAD: usize = 26;
/// Most events in one request.
pub const MAX_BATCH_EVENTS: usize = 10_000;
/// Longest time between the first and the last event of one request.
pub const MAX_BATCH_SPAN_MS: i64 = 24 * 3600 * 1000;
/// Longest message of one event, in UTF-8 bytes.
pub const MAX_EVENT_BYTES: usize = 262_144 - EVENT_OVERHEAD;

/// One log event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub timestamp_ms: i64,
    pub message: String,
}

/// Splits a message into pieces of at most [`MAX_EVENT_BYTES`], on character boundaries. An
/// empty message gives no piece: CloudWatch refuses empty events (Docker's driver drops them).
pub fn split_oversize(message: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut rest = message;
    while !rest.is_empty() {
        let mut end = rest.len().min(MAX_EVENT_BYTES);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        pieces.push(rest[..end].to_owned());
        rest = &rest[end..];
    }
    pieces
}

/// Events waiting for the next request.
#[derive(Debug, Default)]
pub struct Batcher {
    events: Vec<Event>,
    bytes: usize,
}

impl Batcher {
    /// Adds an event (of at most [`MAX_EVENT_BYTES`]). When it would break a limit, the
    /// events before it come back as a full batch and it starts the next one. Timestamps are
    /// kept non-decreasing (an earlier one is raised to the last), so batches are chronological.
    pub fn push(&mut self, mut event: Event) -> Option<Vec<Event>> {
        let size = event.message.len() + EVENT_OVERHEAD;
        if let Some(last) = self.events.last() {
            event.timestamp_ms = event.timestamp_ms.max(last.timestamp_ms);
        }
        let full = match self.events.first() {
            Some(first) => {
                self.bytes + size > MAX_BATCH_BYTES
                    || self.events.len() >= MAX_BATCH_EVENTS
                    || event.timestamp_ms - first.timestamp_ms > MAX_BATCH_SPAN_MS
            }
            None => false,
        };
        let done = full.then(|| self.take());
        self.bytes += size;
        self.events.push(event);
        done
    }

    /// Whatever is pending.
    pub fn take(&mut self) -> Vec<Event> {
        self.bytes = 0;
        std::mem::take(&mut self.events)
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Size of the pending events as CloudWatch counts it.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn event(t: i64, len: usize) -> Event {
        Event {
            timestamp_ms: t,
            message: "x".repeat(len),
        }
    }

    fn within_limits(batch: &[Event]) -> bool {
        let bytes: usize = batch.iter().map(|e| e.message.len() + EVENT_OVERHEAD).sum();
        let chronological = batch
            .windows(2)
            .all(|w| w[0].timestamp_ms <= w[1].timestamp_ms);
        let span = batch.last().map_or(0, |l| l.timestamp_ms)
            - batch.first().map_or(0, |f| f.timestamp_ms);
        bytes <= MAX_BATCH_BYTES
            && batch.len() <= MAX_BATCH_EVENTS
            && span <= MAX_BATCH_SPAN_MS
            && chronological
    }

    #[test]
    fn an_oversize_message_is_split_on_char_boundaries_and_nothing_is_lost() {
        let message = format!("{}é{}", "a".repeat(MAX_EVENT_BYTES - 1), "b".repeat(10));
        let pieces = split_oversize(&message);
        assert_eq!(pieces.len(), 2);
        assert_eq!(
            pieces[0].len(),
            MAX_EVENT_BYTES - 1,
            "the é does not fit whole"
        );
        assert_eq!(pieces.concat(), message);
        assert_eq!(split_oversize(&"z".repeat(MAX_EVENT_BYTES)).len(), 1);
        assert!(split_oversize("").is_empty());
    }

    #[test]
    fn the_byte_limit_counts_the_overhead_exactly() {
        let mut b = Batcher::default();
        // Four events of exactly a quarter of the limit fill it; a fifth byte does not fit.
        let quarter = MAX_BATCH_BYTES / 4 - EVENT_OVERHEAD;
        for _ in 0..4 {
            assert!(b.push(event(1, quarter)).is_none());
        }
        assert_eq!(b.bytes(), MAX_BATCH_BYTES);
        let full = b.push(event(1, 1)).expect("a full batch");
        assert_eq!(full.len(), 4);
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn ten_thousand_events_make_a_batch() {
        let mut b = Batcher::default();
        for _ in 0..MAX_BATCH_EVENTS {
            assert!(b.push(event(1, 1)).is_none());
        }
        assert_eq!(b.push(event(1, 1)).map(|f| f.len()), Some(MAX_BATCH_EVENTS));
    }

    #[test]
    fn events_more_than_a_day_apart_go_in_separate_batches() {
        let mut b = Batcher::default();
        b.push(event(0, 1));
        assert!(
            b.push(event(MAX_BATCH_SPAN_MS, 1)).is_none(),
            "exactly 24 h fits"
        );
        assert_eq!(
            b.push(event(MAX_BATCH_SPAN_MS + 1, 1)).map(|f| f.len()),
            Some(2)
        );
    }

    #[test]
    fn an_earlier_timestamp_is_raised_to_keep_the_order() {
        let mut b = Batcher::default();
        b.push(event(10, 1));
        b.push(event(5, 1));
        assert_eq!(
            b.take().iter().map(|e| e.timestamp_ms).collect::<Vec<_>>(),
            [10, 10]
        );
    }

    proptest! {
        #[test]
        fn batches_keep_every_message_in_order_within_the_limits(
            events in proptest::collection::vec((0i64..200_000_000, 1usize..300_000), 1..40)
        ) {
            let mut b = Batcher::default();
            let mut out = Vec::new();
            let mut sent = Vec::new();
            for (t, len) in events {
                for piece in split_oversize(&"m".repeat(len)) {
                    sent.push(piece.clone());
                    if let Some(batch) = b.push(Event { timestamp_ms: t, message: piece }) {
                        out.push(batch);
                    }
                }
            }
            out.push(b.take());
            for batch in &out {
                prop_assert!(within_limits(batch));
            }
            let got: Vec<String> = out.into_iter().flatten().map(|e| e.message).collect();
            prop_assert_eq!(got, sent);
        }
    }
}
