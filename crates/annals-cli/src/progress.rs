//! Progress bars on stderr, with rates; indicatif draws nothing when
//! stderr is not a terminal, so scripts and tests see none of it.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar counting `unit` up to `length` (a spinner when the length is
/// unknown), showing the rate per second.
pub fn bar(length: Option<u64>, unit: &str) -> ProgressBar {
    let template = match length {
        Some(_) => format!(
            "{{spinner}} [{{elapsed_precise}}] {{wide_bar}} {{human_pos}}/{{human_len}} {unit} ({{per_sec}}, eta {{eta}})"
        ),
        None => format!("{{spinner}} [{{elapsed_precise}}] {{human_pos}} {unit} ({{per_sec}})"),
    };
    let style =
        ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar());
    let bar = match length {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    bar.set_style(style);
    bar
}
