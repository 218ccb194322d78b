//! Human-readable views of the configuration: `ecs-agent config check` output and the
//! Markdown reference table kept in the README. Pure: returns strings.

use std::fmt::Write as _;

use super::vars::Config;
use super::{Loaded, Origin};

/// The effective configuration, one variable a line, with its origin; secrets redacted.
/// Warnings follow the table.
pub fn render_check(loaded: &Loaded) -> String {
    let rows = loaded.config.rendered();
    let width = rows.iter().map(|(v, _)| v.env.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (var, value) in rows {
        let origin = loaded.origins.get(var.env).unwrap_or(&Origin::Default);
        let _ = writeln!(
            out,
            "{:width$} = {value}    # {origin}; {}",
            var.env,
            var.status.describe()
        );
    }
    if !loaded.warnings.is_empty() {
        let _ = writeln!(out, "\nwarnings:");
        for w in &loaded.warnings {
            let _ = writeln!(out, "  {w}");
        }
    }
    out
}

/// A Markdown table of every variable: name, default, status and description.
pub fn reference_markdown() -> String {
    let mut out = String::from("| variable | default | status | meaning |\n|---|---|---|---|\n");
    for (var, default) in Config::rendered_defaults() {
        let doc = var.doc.split_whitespace().collect::<Vec<_>>().join(" ");
        let default = if default.is_empty() {
            "(empty)".to_owned()
        } else {
            default
        };
        let _ = writeln!(
            out,
            "| `{}` | `{}` | {} | {} |",
            var.env,
            default.replace('|', "\\|"),
            var.status.describe(),
            doc.replace('|', "\\|")
        );
    }
    out
}
