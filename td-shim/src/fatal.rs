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
    match platform::current() {
        Some(p) => p.fatal_report(),
        None => loop {
            core::hint::spin_loop();
        },
    }
}
