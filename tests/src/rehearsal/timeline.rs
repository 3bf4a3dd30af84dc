//! The rehearsal's printed timeline: one line per step with the time since
//! the start and who acted, indented details under it, and quoted blocks
//! (chat messages as a person reads them). Lines are printed as they happen
//! and kept, so the run can be saved next to the function logs.

use std::io::Write;
use std::time::{Duration, Instant};

/// Width of the actor column.
const WHO: usize = 15;
/// Indent of detail lines: under the step text.
const INDENT: usize = 2 + 8 + 2 + WHO + 1;

/// A timeline being printed.
pub struct Timeline {
    start: Instant,
    out: Box<dyn Write + Send>,
    lines: Vec<String>,
}

impl std::fmt::Debug for Timeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timeline")
            .field("lines", &self.lines.len())
            .finish()
    }
}

impl Timeline {
    /// A timeline printed to `out`, starting now.
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Self {
            start: Instant::now(),
            out,
            lines: Vec::new(),
        }
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    fn emit(&mut self, line: String) {
        // A closed stdout (e.g. piped into `head`) must not stop the rehearsal.
        let _ = writeln!(self.out, "{line}");
        let _ = self.out.flush();
        self.lines.push(line);
    }

    /// A heading between phases.
    pub fn section(&mut self, title: &str) {
        self.emit(String::new());
        self.emit(format!("── {title} "));
    }

    /// Free text without a timestamp (banner, summary).
    pub fn text(&mut self, text: &str) {
        for line in text.lines() {
            self.emit(line.to_owned());
        }
        if text.is_empty() {
            self.emit(String::new());
        }
    }

    /// One step: `+  1.23s  who             text`. Continuation lines of a
    /// multi-line `text` are indented as details.
    pub fn step(&mut self, who: &str, text: &str) {
        let secs = self.start.elapsed().as_secs_f64();
        let mut lines = text.lines();
        let first = lines.next().unwrap_or_default();
        self.emit(format!("  +{secs:>6.2}s  {who:<WHO$} {first}"));
        for rest in lines {
            self.detail(rest);
        }
    }

    /// An indented detail line (each line of `text`).
    pub fn detail(&mut self, text: &str) {
        for line in text.lines() {
            self.emit(format!("{:INDENT$}{line}", ""));
        }
    }

    /// A quoted block (a chat message): `│ ` before each line.
    pub fn quote(&mut self, lines: &[String]) {
        for line in lines {
            if line.is_empty() {
                self.emit(format!("{:INDENT$}│", ""));
            } else {
                self.emit(format!("{:INDENT$}│ {line}", ""));
            }
        }
    }

    /// Everything printed so far.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("buffer").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn steps_details_and_quotes_line_up() {
        let buf = Buffer::default();
        let mut t = Timeline::new(Box::new(buf.clone()));
        t.step("codedeploy", "deployment created\nsecond line");
        t.detail("a detail");
        t.quote(&["hello".to_owned(), String::new()]);
        let text = String::from_utf8(buf.0.lock().expect("buffer").clone()).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("  +  0.00s  codedeploy      deployment created"));
        let col = lines[0].find("deployment").expect("text");
        assert_eq!(lines[1].find("second"), Some(col));
        assert_eq!(lines[2].find("a detail"), Some(col));
        assert_eq!(lines[3].find("│ hello"), Some(col));
        assert_eq!(lines[4].trim(), "│");
        assert_eq!(t.lines().len(), 5);
    }
}
