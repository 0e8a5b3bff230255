//! The guest's file tree under a root directory (`/` in the guest, a fake tree in tests), and
//! how reading it records failures. Both the general collection ([`crate::collect`]) and the
//! measurements ([`crate::measurement`]) read through it, and so does the multiprocessor wakeup
//! mailbox ([`crate::mp_wakeup`]), which is read from physical memory like an older kernel's event
//! log.
//!
//! The evidence ([`crate::evidence`]) also changes the tree: it makes a configfs-tsm report entry,
//! writes its `inblob` and removes the entry again. On a real system the kernel acts on those
//! changes (it fills in the entry's attributes and makes a quote); in a fake tree a test's
//! [`FakeKernel`] does, deterministically, at the point the kernel would.

use crate::failure::Failures;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

/// Physical memory, where older kernels leave the CC event log to be read and where the
/// multiprocessor wakeup mailbox is.
pub const DEV_MEM: &str = "/dev/mem";

/// What the agent does to the tree that a kernel would act on, by guest path. A [`FakeKernel`]
/// sees each one at the point the kernel acts: after a directory is made or a file written,
/// before a file is read or a directory removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change<'b> {
    /// A directory was made.
    MadeDir(&'b str),
    /// A file was written with these bytes.
    Wrote(&'b str, &'b [u8]),
    /// A file is about to be read with [`Tree::read_bounded`].
    Reading(&'b str),
    /// A directory is about to be removed.
    RemovingDir(&'b str),
}

/// What stands in for the kernel behind a fake tree's pseudo files (tests only): it may create,
/// change or remove files under `root` in answer to a [`Change`].
pub(crate) trait FakeKernel {
    /// Acts on `change` to the tree under `root`.
    fn act(&self, root: &Path, change: Change<'_>);
}

/// The guest's file tree under a root directory.
pub(crate) struct Tree<'a> {
    root: &'a Path,
    /// `None` on a real system, where the kernel acts by itself.
    kernel: Option<&'a dyn FakeKernel>,
}

impl<'a> Tree<'a> {
    /// The tree under `root`.
    pub(crate) fn new(root: &'a Path) -> Self {
        Self { root, kernel: None }
    }

    /// The fake tree under `root`, with `kernel` acting on the agent's changes.
    #[cfg(test)]
    pub(crate) fn with_kernel(root: &'a Path, kernel: &'a dyn FakeKernel) -> Self {
        Self {
            root,
            kernel: Some(kernel),
        }
    }

    fn tell_kernel(&self, change: Change<'_>) {
        if let Some(kernel) = self.kernel {
            kernel.act(self.root, change);
        }
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

    /// At most `max` bytes of the guest's file `guest_path`, read to its end; an error if it has
    /// more (nothing beyond `max + 1` bytes is read, so a huge or endless file costs no more).
    pub(crate) fn read_bounded(&self, guest_path: &str, max: usize) -> Result<Vec<u8>, String> {
        self.tell_kernel(Change::Reading(guest_path));
        let file = File::open(self.path(guest_path)).map_err(|e| e.to_string())?;
        let limit = u64::try_from(max).map_or(u64::MAX, |max| max.saturating_add(1));
        let mut bytes = Vec::new();
        file.take(limit)
            .read_to_end(&mut bytes)
            .map_err(|e| e.to_string())?;
        if bytes.len() > max {
            return Err(format!("more than the {max} bytes the agent reads"));
        }
        Ok(bytes)
    }

    /// Makes the guest's directory `guest_dir` (its parent must exist; `mkdir(2)`).
    pub(crate) fn make_dir(&self, guest_dir: &str) -> io::Result<()> {
        fs::create_dir(self.path(guest_dir))?;
        self.tell_kernel(Change::MadeDir(guest_dir));
        Ok(())
    }

    /// Writes `bytes` to the existing guest file `guest_path` in one `write(2)` where the kernel
    /// takes it, without creating or truncating it, as pseudo files (sysfs, configfs attributes)
    /// are written.
    pub(crate) fn write_existing(&self, guest_path: &str, bytes: &[u8]) -> io::Result<()> {
        let mut file = OpenOptions::new().write(true).open(self.path(guest_path))?;
        file.write_all(bytes)?;
        drop(file);
        self.tell_kernel(Change::Wrote(guest_path, bytes));
        Ok(())
    }

    /// Removes the guest's directory `guest_dir` (`rmdir(2)`).
    pub(crate) fn remove_dir(&self, guest_dir: &str) -> io::Result<()> {
        self.tell_kernel(Change::RemovingDir(guest_dir));
        fs::remove_dir(self.path(guest_dir))
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
