//! Grouping lines into log events: one event a line, or, with a start pattern (multiline or
//! datetime format), a line matching the pattern starts a new event and the lines after it are
//! appended to it, as Docker's awslogs driver groups them; a line that would take an event
//! past [`MAX_EVENT_BYTES`] starts the next one. Pure.

use super::batch::{Event, MAX_EVENT_BYTES};

/// One line read from Docker's log stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub timestamp_ms: i64,
    pub text: String,
}

/// Turns lines into events.
pub struct Grouper {
    pattern: Option<regex_lite::Regex>,
    pending: Option<Event>,
}

impl Grouper {
    pub fn new(pattern: Option<regex_lite::Regex>) -> Self {
        Grouper {
            pattern,
            pending: None,
        }
    }

    /// Takes a line; returns the event it completes, if any. Without a pattern that is the
    /// line's own event (nothing stays pending); with one, it is the previous event when this
    /// line starts a new one: it matches the pattern, or, as in Docker's driver, joining it
    /// would take the event past [`MAX_EVENT_BYTES`] (so an event never grows without bound
    /// when the pattern stops matching).
    pub fn push(&mut self, line: Line) -> Option<Event> {
        let event = Event {
            timestamp_ms: line.timestamp_ms,
            message: line.text,
        };
        let Some(pattern) = &self.pattern else {
            return Some(event);
        };
        match &mut self.pending {
            Some(pending)
                if !pattern.is_match(&event.message)
                    && pending.message.len() + 1 + event.message.len() <= MAX_EVENT_BYTES =>
            {
                pending.message.push('\n');
                pending.message.push_str(&event.message);
                None
            }
            _ => self.pending.replace(event),
        }
    }

    /// The event being grouped (at the end of the stream or when the flush timer fires).
    pub fn flush(&mut self) -> Option<Event> {
        self.pending.take()
    }

    pub fn pending(&self) -> bool {
        self.pending.is_some()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn line(t: i64, text: &str) -> Line {
        Line {
            timestamp_ms: t,
            text: text.into(),
        }
    }

    fn run(pattern: Option<&str>, lines: &[&str]) -> Vec<(i64, String)> {
        let mut g = Grouper::new(pattern.map(|p| regex_lite::Regex::new(p).unwrap()));
        let mut out: Vec<Event> = lines
            .iter()
            .enumerate()
            .filter_map(|(i, l)| g.push(line(i as i64, l)))
            .collect();
        out.extend(g.flush());
        out.into_iter()
            .map(|e| (e.timestamp_ms, e.message))
            .collect()
    }

    #[test]
    fn without_a_pattern_each_line_is_an_event() {
        assert_eq!(run(None, &["a", "b"]), [(0, "a".into()), (1, "b".into())]);
    }

    #[test]
    fn a_matching_line_starts_an_event_and_the_others_join_it() {
        let got = run(Some("^START"), &["START a", "more", "  more", "START b"]);
        assert_eq!(
            got,
            [(0, "START a\nmore\n  more".into()), (3, "START b".into())]
        );
    }

    #[test]
    fn a_line_that_would_overfill_the_event_starts_the_next_one() {
        let half = "c".repeat(MAX_EVENT_BYTES / 2);
        // "START" + '\n' + half + '\n' + half is 7 bytes over the limit.
        let rest = "c".repeat(MAX_EVENT_BYTES - 1 - "START".len() - 1 - half.len());
        let got = run(Some("^START"), &["START", &half, &half, "START"]);
        assert_eq!(
            got,
            [
                (0, format!("START\n{half}")),
                (2, half.clone()),
                (3, "START".into())
            ]
        );
        // Exactly at the limit the line still joins.
        let got = run(Some("^START"), &["START", &half, &rest]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1.len(), MAX_EVENT_BYTES);
    }

    #[test]
    fn an_oversize_line_is_an_event_of_its_own_for_the_splitter() {
        let big = "b".repeat(MAX_EVENT_BYTES + 10);
        let got = run(Some("^START"), &["START", &big, "tail"]);
        assert_eq!(
            got,
            [(0, "START".into()), (1, big.clone()), (2, "tail".into())]
        );
    }

    #[test]
    fn lines_before_the_first_match_are_an_event_of_their_own() {
        let got = run(Some("^START"), &["orphan", "tail", "START x"]);
        assert_eq!(got, [(0, "orphan\ntail".into()), (2, "START x".into())]);
    }

    proptest! {
        #[test]
        fn grouping_keeps_every_line_in_order(
            lines in proptest::collection::vec("(S|x)[a-z ]{0,8}", 0..40),
            with_pattern: bool,
        ) {
            let pattern = with_pattern.then_some("^S");
            let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
            let events = run(pattern, &refs);
            let rejoined: Vec<String> = events
                .iter()
                .flat_map(|(_, m)| m.split('\n').map(str::to_owned))
                .collect();
            prop_assert_eq!(rejoined, lines.clone());
            for (t, message) in &events {
                let first = usize::try_from(*t).unwrap();
                prop_assert!(message.starts_with(lines[first].as_str()), "an event's time is its first line's");
            }
        }
    }
}
