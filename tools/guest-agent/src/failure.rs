//! Failure lines: whatever goes wrong is one line `agent: <what failed>: <error>`, written to stderr
//! when it happens and kept for the report's `errors` array.

use std::fmt::Display;
use std::io::Write as _;

/// The failures seen so far.
#[derive(Debug, Default)]
pub struct Failures {
    echo: bool,
    lines: Vec<String>,
}

impl Failures {
    /// Failures that are also written to stderr as they happen: what the agent uses.
    pub fn echoed() -> Self {
        Self {
            echo: true,
            lines: Vec::new(),
        }
    }

    /// Failures that are only kept, for tests.
    pub fn quiet() -> Self {
        Self::default()
    }

    /// Records that `what` failed because of `error`. Line breaks in either become spaces, so a
    /// failure is always exactly one line.
    pub fn record(&mut self, what: impl Display, error: impl Display) {
        let line = format!("agent: {what}: {error}").replace(['\r', '\n'], " ");
        if self.echo {
            say_err(&line);
        }
        self.lines.push(line);
    }

    /// The lines recorded so far, oldest first.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// The lines recorded, oldest first.
    pub fn into_lines(self) -> Vec<String> {
        self.lines
    }
}

/// Writes one line to stderr. A console that cannot be written to leaves nowhere to report that,
/// and is no reason to stop, so a write error is dropped here (and only here).
pub fn say_err(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_one_prefixed_line() {
        let mut failures = Failures::quiet();
        failures.record("read /proc/cmdline", "gone\nreally");
        assert_eq!(failures.lines(), ["agent: read /proc/cmdline: gone really"]);
        assert_eq!(failures.into_lines().len(), 1);
    }
}
