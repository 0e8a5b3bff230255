//! `/init` of the guest initramfs; see the library's documentation for what it does and how to
//! build it statically.
#![warn(clippy::undocumented_unsafe_blocks)]

mod sys;

use guest_agent::failure::say_err;
use guest_agent::{collect, Failures, Report};
use std::ffi::OsString;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let pid1 = std::process::id() == 1;
    let mut failures = Failures::echoed();
    // As PID 1 the arguments are the kernel command line's unknown words: they are not ours.
    let root = if pid1 {
        sys::mount_early_filesystems(&mut failures);
        PathBuf::from("/")
    } else {
        root_from_args(std::env::args_os().skip(1).collect(), &mut failures)
    };
    let report = collect(&root, sys::uname_release, failures);
    let printed = print_report(&report);
    if pid1 {
        let error = sys::power_off();
        say_err(&format!("agent: power off: {error}"));
        // Init exiting makes the kernel panic, which `panic=-1` (and QEMU's -no-reboot) ends.
        return ExitCode::FAILURE;
    }
    if printed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Off PID 1 the tree to read is `/` or, with `--root DIR`, a fake one.
fn root_from_args(args: Vec<OsString>, failures: &mut Failures) -> PathBuf {
    match &args[..] {
        [] => PathBuf::from("/"),
        [flag, dir] if flag == "--root" => PathBuf::from(dir),
        _ => {
            failures.record(
                "arguments",
                format_args!("expected none or `--root DIR`, got {args:?}; reading /"),
            );
            PathBuf::from("/")
        }
    }
}

/// Prints the report on stdout (the console); says on stderr why if it cannot.
fn print_report(report: &Report) -> bool {
    let text = match report.to_console() {
        Ok(text) => text,
        Err(e) => {
            say_err(&format!("agent: serialize the report: {e}"));
            return false;
        }
    };
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => true,
        Err(e) => {
            say_err(&format!("agent: print the report: {e}"));
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_comes_from_root_flag_or_defaults_to_slash() {
        let mut failures = Failures::quiet();
        assert_eq!(root_from_args(vec![], &mut failures), PathBuf::from("/"));
        let args = vec!["--root".into(), "/tmp/fake".into()];
        assert_eq!(
            root_from_args(args, &mut failures),
            PathBuf::from("/tmp/fake")
        );
        assert!(failures.lines().is_empty());
        let args = vec!["quiet".into()];
        assert_eq!(root_from_args(args, &mut failures), PathBuf::from("/"));
        assert_eq!(failures.lines().len(), 1);
        assert!(failures.lines()[0].starts_with("agent: arguments: "));
    }
}
