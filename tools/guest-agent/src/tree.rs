//! The guest's file tree under a root directory (`/` in the guest, a fake tree in tests), and
//! how reading it records failures. Both the general collection ([`crate::collect`]) and the
//! measurements ([`crate::measurement`]) read through it.

use crate::failure::Failures;
use std::fs;
use std::path::{Path, PathBuf};

/// The guest's file tree under a root directory.
pub(crate) struct Tree<'a> {
    root: &'a Path,
}

impl<'a> Tree<'a> {
    /// The tree under `root`.
    pub(crate) fn new(root: &'a Path) -> Self {
        Self { root }
    }

    /// Where the guest's `guest_path` is under the root.
    pub(crate) fn path(&self, guest_path: &str) -> PathBuf {
        self.root.join(guest_path.trim_start_matches('/'))
    }

    /// The bytes of the guest's file `guest_path`; a failure line if it cannot be read.
    pub(crate) fn read_bytes(&self, guest_path: &str, failures: &mut Failures) -> Option<Vec<u8>> {
        fs::read(self.path(guest_path))
            .map_err(|e| failures.record(format_args!("read {guest_path}"), e))
            .ok()
    }

    /// The text of the guest's file `guest_path`; a failure line if it cannot be read.
    pub(crate) fn read_text(&self, guest_path: &str, failures: &mut Failures) -> Option<String> {
        fs::read_to_string(self.path(guest_path))
            .map_err(|e| failures.record(format_args!("read {guest_path}"), e))
            .ok()
    }

    /// The names of the files (not directories) in the ACPI tables directory, sorted.
    /// The entries of the guest's directory `guest_dir`; a failure line for each that cannot be
    /// listed.
    pub(crate) fn list_dir(&self, guest_dir: &str, failures: &mut Failures) -> Vec<fs::DirEntry> {
        let entries = match fs::read_dir(self.path(guest_dir)) {
            Ok(entries) => entries,
            Err(e) => {
                failures.record(format_args!("list {guest_dir}"), e);
                return Vec::new();
            }
        };
        entries
            .filter_map(|entry| {
                entry
                    .map_err(|e| failures.record(format_args!("list {guest_dir}"), e))
                    .ok()
            })
            .collect()
    }
}

/// `parsed`'s value, or a failure line `parse <guest_path>: <error>`.
pub(crate) fn parse_or_record<T>(
    guest_path: &str,
    parsed: Result<T, String>,
    failures: &mut Failures,
) -> Option<T> {
    parsed
        .map_err(|e| failures.record(format_args!("parse {guest_path}"), e))
        .ok()
}
