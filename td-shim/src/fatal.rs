//! The single fatal path: say what failed on the console, then the platform's fatal report.

use crate::platform::Platform;
use crate::serial::SerialLogger;
use core::fmt;

struct Fatal {
    platform: &'static dyn Platform,
    console: &'static SerialLogger,
}

static FATAL: spin::Once<Fatal> = spin::Once::new();
static HOOK: spin::Once<fn()> = spin::Once::new();
static IN_FATAL: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Registers what the fatal path does before it reports: recording the error separator in the
/// measurement registers and the log. Later calls are ignored.
pub fn set_hook(hook: fn()) {
    HOOK.call_once(|| hook);
}

/// Registers the platform and console the fatal path uses. Later calls are ignored.
pub fn install(platform: &'static dyn Platform, console: &'static SerialLogger) {
    FATAL.call_once(|| Fatal { platform, console });
}

/// Prints `td-shim: FATAL <what>` and ends the boot through the platform. Before
/// [`install`], it can only stop the CPU.
pub fn fatal(what: fmt::Arguments<'_>) -> ! {
    // The hook runs once: a failure inside it comes back here and goes straight to the report.
    if !IN_FATAL.swap(true, core::sync::atomic::Ordering::SeqCst) {
        if let Some(hook) = HOOK.get() {
            hook();
        }
    }
    match FATAL.get() {
        Some(f) => {
            f.console.write_line(format_args!("td-shim: FATAL {what}"));
            f.platform.fatal_report()
        }
        None => loop {
            core::hint::spin_loop();
        },
    }
}
