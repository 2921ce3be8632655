//! Progress of long commands (`query rebuild`, the benchmark tools): what is running, how
//! far it is, and an estimate of the time left.
//!
//! On a terminal it is an [`indicatif`] bar on stderr, redrawn in place. Anywhere else (a
//! CI log, a file) a bar would be a stream of control characters, so it is a plain line on
//! stderr at most every [`PLAIN_EVERY`], plus one when the work is done:
//!
//! ```text
//! [flash sale] reserved 120/200 (60%), 4 s elapsed, about 3 s left: 31 buyers waiting
//! ```
//!
//! Standard output is left alone: the tools print their results there.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a plain line is printed when stderr is not a terminal.
pub const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// The progress of one piece of work with a known size. Cheap to clone; every clone
/// reports on the same work.
#[derive(Clone, Debug)]
pub struct Progress {
    bar: ProgressBar,
    what: Arc<str>,
    unit: Arc<str>,
    /// When the last plain line was printed; `None` on a terminal (the bar draws itself).
    plain: Option<Arc<Mutex<Instant>>>,
}

impl Progress {
    /// Progress of `what` (`"query rebuild"`) over `total` items called `unit` (`"events"`).
    pub fn new(what: &str, unit: &str, total: u64) -> Self {
        Self::with_target(what, unit, total, std::io::stderr().is_terminal())
    }

    fn with_target(what: &str, unit: &str, total: u64, terminal: bool) -> Self {
        let bar = ProgressBar::with_draw_target(
            Some(total),
            if terminal { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() },
        );
        let template = format!(
            "[{what}] {{bar:30}} {{pos}}/{{len}} {unit} ({{percent}}%), {{elapsed}} elapsed, ETA {{eta}} {{msg}}"
        );
        if let Ok(style) = ProgressStyle::with_template(&template) {
            bar.set_style(style.progress_chars("█▉▊▋▌▍▎▏ "));
        }
        if terminal {
            bar.enable_steady_tick(Duration::from_millis(250));
        }
        let plain = (!terminal).then(|| Arc::new(Mutex::new(Instant::now())));
        Self { bar, what: what.into(), unit: unit.into(), plain }
    }

    /// The work has reached `position` items.
    pub fn set(&self, position: u64) {
        self.bar.set_position(position);
        self.plain_line(false);
    }

    /// The work has the total it will finish at, if it changed.
    pub fn set_total(&self, total: u64) {
        self.bar.set_length(total);
    }

    /// `n` more items are done.
    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
        self.plain_line(false);
    }

    /// A short note after the figures (what is waited for, a running count).
    pub fn note(&self, message: impl Into<String>) {
        self.bar.set_message(message.into());
    }

    /// The work is over: the bar stays on the terminal with its last figures, or a last
    /// plain line is printed.
    pub fn finish(&self, message: impl Into<String>) {
        self.bar.set_message(message.into());
        if self.plain.is_some() {
            self.plain_line(true);
        }
        self.bar.finish();
    }

    fn plain_line(&self, force: bool) {
        let Some(last) = &self.plain else { return };
        let mut last = last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !force && last.elapsed() < PLAIN_EVERY {
            return;
        }
        *last = Instant::now();
        eprintln!("{}", self.line());
    }

    /// The plain line: position, share, elapsed time, time left, note.
    fn line(&self) -> String {
        let position = self.bar.position();
        let total = self.bar.length().unwrap_or(0);
        let percent = position.saturating_mul(100).checked_div(total).unwrap_or(100);
        let elapsed = self.bar.elapsed().as_secs();
        let left =
            if position >= total { "done".to_owned() } else { format!("about {} s left", self.bar.eta().as_secs()) };
        let message = self.bar.message();
        let note = if message.is_empty() { String::new() } else { format!(": {message}") };
        format!("[{}] {position}/{total} {} ({percent}%), {elapsed} s elapsed, {left}{note}", self.what, self.unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_a_terminal_the_line_names_the_work_how_far_and_what_is_left() {
        let progress = Progress::with_target("query rebuild", "events", 200, false);
        progress.set(50);
        progress.note("6 consumers");

        let line = progress.line();

        assert!(line.starts_with("[query rebuild] 50/200 events (25%), "), "{line}");
        assert!(line.contains(" left: 6 consumers"), "{line}");
    }

    #[test]
    fn finished_work_says_done() {
        let progress = Progress::with_target("sale", "tickets", 3, false);
        progress.inc(3);
        assert!(progress.line().contains("(100%)") && progress.line().contains("done"));
    }
}
