//! The guest's file tree under a root directory (`/` in the guest, a fake tree in tests), and
//! how reading it records failures. Both the general collection ([`crate::collect`]) and the
//! measurements ([`crate::measurement`]) read through it, and so does the multiprocessor wakeup
//! mailbox ([`crate::mp_wakeup`]), which is read from physical memory like an older kernel's event
//! log.

use crate::failure::Failures;
use std::fs::{self, File};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

/// Physical memory, where older kernels leave the CC event log to be read and where the
/// multiprocessor wakeup mailbox is.
pub const DEV_MEM: &str = "/dev/mem";

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

    /// `size` bytes at the physical address `address`: at that offset of the guest's
    /// `/dev/mem`. The error says what failed, without naming the file (the caller's failure line
    /// does): an area past the end of the address space, an unopenable file, a short read.
    /// Callers bound `size` first: it is allocated.
    pub(crate) fn read_physical(&self, address: u64, size: u64) -> Result<Vec<u8>, String> {
        let len = usize::try_from(size).map_err(|e| e.to_string())?;
        if address.checked_add(size).is_none() {
            return Err("the area runs past the end of the address space".into());
        }
        let mem = File::open(self.path(DEV_MEM)).map_err(|e| format!("open: {e}"))?;
        let mut area = vec![0; len];
        mem.read_exact_at(&mut area, address)
            .map_err(|e| e.to_string())?;
        Ok(area)
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
