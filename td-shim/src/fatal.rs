//! The single fatal path: record the failure in the measurements, say what failed on the
//! console, then the chosen platform's fatal report.

use crate::platform;
use crate::serial::SerialLogger;
use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};

static CONSOLE: spin::Once<&'static SerialLogger> = spin::Once::new();
static HOOK: spin::Once<fn()> = spin::Once::new();
static IN_FATAL: AtomicBool = AtomicBool::new(false);

/// Registers what the fatal path does before it reports: recording the error separator in the
/// measurement registers and the log. Later calls are ignored.
pub fn set_hook(hook: fn()) {
    HOOK.call_once(|| hook);
}

/// Registers the console the fatal path prints on. Later calls are ignored.
pub fn set_console(console: &'static SerialLogger) {
    CONSOLE.call_once(|| console);
}

/// Prints `td-shim: FATAL <what>` and ends the boot through the platform chosen with
/// [`platform::select`]. Before a platform is chosen it can only stop the CPU.
pub fn fatal(what: fmt::Arguments<'_>) -> ! {
    // The hook runs once: a failure inside it comes back here and goes straight to the report.
    if !IN_FATAL.swap(true, Ordering::SeqCst) {
        if let Some(hook) = HOOK.get() {
            hook();
        }
    }
    if let Some(console) = CONSOLE.get() {
        console.write_line(format_args!("td-shim: FATAL {what}"));
    }
    let mut text = Message::new();
    // A message longer than the buffer is cut; formatting cannot fail otherwise.
    let _ = fmt::write(&mut text, what);
    match platform::current() {
        Some(p) => p.fatal_report(text.as_str()),
        None => loop {
            core::hint::spin_loop();
        },
    }
}

/// Bytes of the message the platform's report gets (ReportFatalError's shared page is 4 KiB;
/// the console has the whole text).
pub const MESSAGE_BYTES: usize = 256;

/// A fatal message on the stack: no heap on the fatal path. Text beyond [`MESSAGE_BYTES`] is
/// dropped at a character boundary.
pub struct Message {
    bytes: [u8; MESSAGE_BYTES],
    len: usize,
}

impl Message {
    /// An empty message.
    pub const fn new() -> Self {
        Message {
            bytes: [0; MESSAGE_BYTES],
            len: 0,
        }
    }

    /// The text so far.
    pub fn as_str(&self) -> &str {
        // Only whole `str`s or whole characters of them are ever appended.
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
    }
}

impl Default for Message {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Write for Message {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            let mut utf8 = [0u8; 4];
            let c = c.encode_utf8(&mut utf8).as_bytes();
            let end = self.len.saturating_add(c.len());
            match self.bytes.get_mut(self.len..end) {
                Some(dst) => dst.copy_from_slice(c),
                None => return Ok(()),
            }
            self.len = end;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::fmt::Write;

    #[test]
    fn a_message_is_kept_whole_or_cut_at_a_character() {
        let mut m = Message::new();
        let what = "no room";
        write!(m, "linux: {what} at {:#x}", 0x1000).unwrap();
        assert_eq!(m.as_str(), "linux: no room at 0x1000");
        let mut m = Message::new();
        for _ in 0..200 {
            m.write_str("é").unwrap();
        }
        assert_eq!(m.as_str().len(), MESSAGE_BYTES);
        assert_eq!(m.as_str().chars().count(), MESSAGE_BYTES / 2);
        let mut m = Message::new();
        m.write_str(&"x".repeat(MESSAGE_BYTES - 1)).unwrap();
        m.write_str("é").unwrap();
        assert_eq!(
            m.as_str().len(),
            MESSAGE_BYTES - 1,
            "a character that does not fit is dropped"
        );
    }
}
