//! Grouping lines into log events: one event a line, or, with a start pattern (multiline or
//! datetime format), a line matching the pattern starts a new event and the lines after it are
//! appended to it, as Docker's awslogs driver groups them. Pure.

use super::batch::Event;

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
    /// line starts a new one.
    pub fn push(&mut self, line: Line) -> Option<Event> {
        let Some(pattern) = &self.pattern else {
            return Some(Event {
                timestamp_ms: line.timestamp_ms,
                message: line.text,
            });
        };
        if pattern.is_match(&line.text) || self.pending.is_none() {
            return self.pending.replace(Event {
                timestamp_ms: line.timestamp_ms,
                message: line.text,
            });
        }
        if let Some(event) = &mut self.pending {
            event.message.push('\n');
            event.message.push_str(&line.text);
        }
        None
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
    fn lines_before_the_first_match_are_an_event_of_their_own() {
        let got = run(Some("^START"), &["orphan", "tail", "START x"]);
        assert_eq!(got, [(0, "orphan\ntail".into()), (2, "START x".into())]);
    }
}
