//! Progress on long work: an indicatif bar on stderr that appears only once the work has taken
//! a second (short loads stay quiet) and never when stderr is not a terminal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::time::{Duration, Instant};

const SHOW_AFTER: Duration = Duration::from_secs(1);

/// A byte-count progress bar for `what` (e.g. "uploading weights").
pub struct ByteProgress {
    what: String,
    start: Instant,
    bar: Option<ProgressBar>,
}

impl ByteProgress {
    pub fn new(what: &str) -> Self {
        Self {
            what: what.to_string(),
            start: Instant::now(),
            bar: None,
        }
    }

    /// Records `done` of `total` bytes; draws once a second has passed.
    pub fn update(&mut self, done: u64, total: u64) {
        if self.bar.is_none() && self.start.elapsed() >= SHOW_AFTER && done < total {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:40}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_message(self.what.clone());
            self.bar = Some(bar);
        }
        if let Some(bar) = &self.bar {
            bar.set_position(done);
        }
    }

    /// Clears the bar (if it was shown).
    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
