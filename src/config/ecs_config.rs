//! The `/etc/ecs/ecs.config` format, parsed exactly as ecs-init parses it.
//!
//! One `KEY=VALUE` per line; each line is trimmed and split at the first `=`. Key and value are
//! not trimmed on their own, quotes are kept as part of the value, and there are no comments: a
//! line without `=` is skipped, but a "comment" containing `=` becomes a (useless) variable. These
//! quirks are reproduced on purpose so that a file behaves here as it did under the official
//! agent; the loader warns about the lines that are probably mistakes.

/// One `KEY=VALUE` line of an `ecs.config` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcsConfigLine {
    pub key: String,
    pub value: String,
    /// 1-based line number in the file.
    pub line: usize,
}

/// Parses `ecs.config` text. Lines without `=` are skipped, as ecs-init does.
pub fn parse_ecs_config(text: &str) -> Vec<EcsConfigLine> {
    text.split('\n')
        .enumerate()
        .filter_map(|(i, line)| {
            let (key, value) = line.trim().split_once('=')?;
            Some(EcsConfigLine {
                key: key.to_owned(),
                value: value.to_owned(),
                line: i + 1,
            })
        })
        .collect()
}

/// Why a parsed line is probably not what the operator meant, if it looks wrong.
pub fn suspicious(line: &EcsConfigLine) -> Option<&'static str> {
    if line.key.is_empty() {
        return Some("line has no variable name before '='; ignored");
    }
    if line.key.starts_with('#') {
        return Some("ecs.config has no comments: this line defines a variable named with '#'");
    }
    if line.key != line.key.trim() {
        return Some("white space around the name makes it a different variable (as in ecs-init)");
    }
    let v = line.value.as_str();
    if v.len() >= 2
        && ((v.starts_with('"') && v.ends_with('"')) || (v.starts_with('\'') && v.ends_with('\'')))
    {
        return Some("the quotes are part of the value (ecs.config does not remove quotes)");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn splits_at_first_equals_and_trims_only_the_line() {
        let lines =
            parse_ecs_config("  ECS_CLUSTER=prod  \nECS_INSTANCE_ATTRIBUTES={\"a\":\"b=c\"}\n");
        assert_eq!(lines[0].key, "ECS_CLUSTER");
        assert_eq!(lines[0].value, "prod");
        assert_eq!(lines[1].value, "{\"a\":\"b=c\"}");
        assert_eq!(lines[1].line, 2);
    }

    #[test]
    fn keeps_quotes_and_inner_spaces() {
        let lines = parse_ecs_config("ECS_CLUSTER=\"prod\"\nECS_LOGLEVEL = debug\n");
        assert_eq!(lines[0].value, "\"prod\"");
        assert_eq!(lines[1].key, "ECS_LOGLEVEL ");
        assert_eq!(lines[1].value, " debug");
        assert!(suspicious(&lines[0]).is_some());
        assert!(suspicious(&lines[1]).is_some());
    }

    #[test]
    fn comment_lines_without_equals_are_skipped_but_with_equals_become_variables() {
        let lines = parse_ecs_config("# plain comment\n# ECS_CLUSTER=old\nECS_CLUSTER=new\n");
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].key, "# ECS_CLUSTER");
        assert_eq!(lines[0].line, 2);
        assert!(suspicious(&lines[0]).is_some());
        assert_eq!(lines[1].key, "ECS_CLUSTER");
        assert_eq!(lines[1].line, 3);
        assert!(suspicious(&lines[1]).is_none());
    }

    #[test]
    fn crlf_line_endings_are_trimmed() {
        let lines = parse_ecs_config("ECS_CLUSTER=win\r\nECS_LOGLEVEL=debug\r\n");
        assert_eq!(lines[0].value, "win");
        assert_eq!(lines[1].value, "debug");
    }

    #[test]
    fn empty_value_is_kept_as_empty() {
        let lines = parse_ecs_config("ECS_LOGFILE=\n");
        assert_eq!(lines[0].value, "");
    }

    proptest! {
        #[test]
        fn every_line_with_equals_yields_one_entry(
            entries in proptest::collection::vec(("[A-Z_]{1,12}", "[^\n\r=]{0,12}"), 0..8)
        ) {
            let text: String = entries.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
            let lines = parse_ecs_config(&text);
            prop_assert_eq!(lines.len(), entries.len());
            for (line, (k, v)) in lines.iter().zip(&entries) {
                prop_assert_eq!(&line.key, k);
                prop_assert_eq!(&line.value, v.trim_end());
            }
        }

        #[test]
        fn parser_never_panics(text in "\\PC{0,200}") {
            let _ = parse_ecs_config(&text);
        }
    }
}
