//! Reading the tool's inputs with a size bound, writing its outputs without trusting what is
//! already next to them, and writing to standard output without panicking.
//!
//! # Inputs
//!
//! Every file named on the command line is read through [`read`] or [`stream`] with a [`Limit`]:
//! the largest such file that can be meaningful, chosen for what the file is (the `Limit`
//! constants below say why each bound is what it is). A larger file is refused before it is
//! read in full: a regular file by its size, anything else (a pipe, `/dev/zero`) after at most
//! `max + 1` bytes. A limit that needs the size up front ([`Limit::regular_only`]) refuses
//! anything but a regular file, before opening it (so a FIFO does not block).
//!
//! # Outputs
//!
//! [`write`] writes a file in one of two ways:
//! - the path does not exist, or is (or links to) a regular file: a new, uniquely named
//!   temporary file is created next to it (create-new semantics, mode 0666 less the umask, as
//!   a plain `creat` would), written, flushed to disk and renamed over the target. Nothing that
//!   already exists next to the target is opened, followed or removed, and a failed write
//!   leaves the target as it was. A symbolic link to a regular file is written through: the
//!   file it points to is replaced, the link stays;
//! - the path exists and is not a regular file (a FIFO, a character device such as `/dev/null`,
//!   `/dev/stdout` on a pipe or terminal): it is opened for writing and written in place, and
//!   stays what it is.
//!
//! # Standard output
//!
//! [`write_stdout`] writes and flushes, and returns an error instead of panicking as `print!`
//! does. A broken pipe ([`FileError::is_broken_pipe`]) means the reader has gone (`| head`):
//! the command-line tool then stops and exits 1 without a message.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

/// What a file input is, and how large it can be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// What the file is, as error messages name it ("event log").
    pub what: &'static str,
    /// The most bytes it can have.
    pub max: u64,
    /// Whether only a regular file is accepted (its size is needed, or reading a device or pipe
    /// up to `max` would take too long).
    pub regular_only: bool,
    /// Why: the rule behind `max` (and `regular_only`), for error messages.
    pub rule: &'static str,
}

const MIB: u64 = 1 << 20;

impl Limit {
    /// A CC event log (the CCEL log area): at most 16 MiB, the largest log area the guest agent
    /// reads (td-shim's area is 64 KiB, OVMF's 256 KiB).
    pub const EVENT_LOG: Self = Self {
        what: "event log",
        max: 16 * MIB,
        regular_only: false,
        rule: "a CC event log area is at most 16 MiB (td-shim's is 64 KiB, OVMF's 256 KiB)",
    };
    /// A TDX quote: at most 1 MiB (632 bytes of header and report body, then the signature data
    /// with its certificate chain, a few KiB).
    pub const QUOTE: Self = Self {
        what: "quote",
        max: MIB,
        regular_only: false,
        rule: "a TDX quote with its certificate chain is a few KiB; at most 1 MiB is read",
    };
    /// An SEV-SNP attestation report: exactly 1184 bytes; at most 64 KiB is read, so a wrong
    /// file is named by its size rather than read whole.
    pub const SNP_REPORT: Self = Self {
        what: "SEV-SNP attestation report",
        max: 64 << 10,
        regular_only: false,
        rule: "an SEV-SNP attestation report is 1184 bytes; at most 64 KiB is read",
    };
    /// A firmware image to inspect: at most 64 MiB. It is mapped just below 4 GiB, under the
    /// MMIO of the platform: td-shim's is 16 MiB, OVMF's and TDVF's 2 to 16 MiB.
    pub const FIRMWARE_IMAGE: Self = Self {
        what: "firmware image",
        max: 64 * MIB,
        regular_only: false,
        rule: "a firmware image mapped below 4 GiB is at most 64 MiB here (td-shim's is 16 MiB)",
    };
    /// A td-shim image to measure: exactly `IMAGE_SIZE` (16 MiB), so at most that.
    pub const TD_SHIM_IMAGE: Self = Self {
        what: "td-shim image",
        max: td_layout::layout::IMAGE_SIZE,
        regular_only: false,
        rule: "a td-shim image is 16 MiB",
    };
    /// The firmware ELF `build` lays out: at most 64 MiB, debug information included (what it
    /// loads must fit the image's 16 MiB anyway).
    pub const FIRMWARE_ELF: Self = Self {
        what: "firmware ELF",
        max: 64 * MIB,
        regular_only: false,
        rule: "the firmware ELF, debug information included, is at most 64 MiB here; \
               what it loads must fit a 16 MiB image",
    };
    /// A payload, kernel or initrd `build` embeds: at most 16 MiB, the size of the image it
    /// goes into (the build then checks the exact room left).
    pub const EMBEDDED_PAYLOAD: Self = Self {
        what: "payload",
        max: td_layout::layout::IMAGE_SIZE,
        regular_only: false,
        rule: "an embedded payload must fit the 16 MiB td-shim image",
    };
    /// A kernel given to `measure` (QEMU's `-kernel`): a regular file under 4 GiB, as the 32-bit
    /// fields of the boot protocol describe it (and as QEMU needs it: it sizes the file).
    pub const KERNEL: Self = Self {
        what: "kernel",
        max: u32::MAX as u64,
        regular_only: true,
        rule: "the firmware boots a kernel file of known size (QEMU's -kernel) under 4 GiB",
    };
    /// An initrd given to `measure` (QEMU's `-initrd`): a regular file under 4 GiB, the most
    /// the boot protocol's `ramdisk_size` describes and the firmware loads.
    pub const INITRD: Self = Self {
        what: "initrd",
        max: u32::MAX as u64,
        regular_only: true,
        rule: "the firmware loads an initrd file of known size (QEMU's -initrd) under 4 GiB",
    };
    /// The agent `initramfs` packs as `/init`: a regular file under 4 GiB, the most a newc
    /// archive entry records.
    pub const AGENT: Self = Self {
        what: "the agent",
        max: u32::MAX as u64,
        regular_only: true,
        rule: "a newc archive entry records a regular file's size in 32 bits",
    };
    /// An extra file `initramfs` packs: as [`Limit::AGENT`].
    pub const EXTRA_FILE: Self = Self {
        what: "extra file",
        ..Self::AGENT
    };
}

/// Why a file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Opening, inspecting or reading the file failed.
    #[error("cannot read {} ({what}): {error}", path.display())]
    Read {
        /// What the file is.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        error: io::Error,
    },
    /// The file is larger than its limit.
    #[error("{} ({what}) is larger than {max} bytes: {rule}", path.display())]
    TooLarge {
        /// What the file is.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The limit.
        max: u64,
        /// Why that is the limit.
        rule: &'static str,
    },
    /// The file is not a regular file, and only one is accepted.
    #[error("{} ({what}) is not a regular file: {rule}", path.display())]
    NotRegular {
        /// What the file is.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why a regular file is needed.
        rule: &'static str,
    },
    /// Writing an output file failed.
    #[error("cannot write {}: {error}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        error: io::Error,
    },
    /// Writing to standard output failed.
    #[error("cannot write to standard output: {0}")]
    Stdout(io::Error),
}

impl FileError {
    /// Whether this is standard output whose reader has gone (`EPIPE`).
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Self::Stdout(e) if e.kind() == io::ErrorKind::BrokenPipe)
    }
}

/// Bytes read per `read` call: large enough that the syscalls do not count, small enough that
/// a chunk stays in the L2 cache between the kernel's copy and the consumer's read.
const CHUNK: usize = 128 << 10;

/// An input opened within its limit: the file, bounded to one byte past the limit (a file can
/// grow while it is read, and a device has no size), and the errors to report about it.
struct Bounded<'a> {
    file: io::Take<File>,
    path: &'a Path,
    limit: &'a Limit,
    total: u64,
}

impl<'a> Bounded<'a> {
    fn open(path: &'a Path, limit: &'a Limit) -> Result<Self, FileError> {
        let read_error = |error| FileError::Read {
            what: limit.what,
            path: path.to_owned(),
            error,
        };
        // Checked before opening: opening a FIFO would wait for a writer.
        if limit.regular_only && !fs::metadata(path).map_err(read_error)?.is_file() {
            return Err(not_regular(path, limit));
        }
        let file = File::open(path).map_err(read_error)?;
        let meta = file.metadata().map_err(read_error)?;
        if meta.is_file() && meta.len() > limit.max {
            return Err(too_large(path, limit));
        }
        if limit.regular_only && !meta.is_file() {
            return Err(not_regular(path, limit));
        }
        Ok(Bounded {
            file: file.take(limit.max.saturating_add(1)),
            path,
            limit,
            total: 0,
        })
    }

    /// Fills the front of `buf`; 0 at the end. Past the limit is an error.
    fn next(&mut self, buf: &mut [u8]) -> Result<usize, FileError> {
        let n = loop {
            match self.file.read(buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    return Err(FileError::Read {
                        what: self.limit.what,
                        path: self.path.to_owned(),
                        error,
                    })
                }
            }
        };
        self.total = self.total.saturating_add(n as u64);
        if self.total > self.limit.max {
            return Err(too_large(self.path, self.limit));
        }
        Ok(n)
    }
}

fn too_large(path: &Path, limit: &Limit) -> FileError {
    FileError::TooLarge {
        what: limit.what,
        path: path.to_owned(),
        max: limit.max,
        rule: limit.rule,
    }
}

fn not_regular(path: &Path, limit: &Limit) -> FileError {
    FileError::NotRegular {
        what: limit.what,
        path: path.to_owned(),
        rule: limit.rule,
    }
}

/// Reads `path` in chunks into `sink`, within `limit`; returns the number of bytes read.
pub fn stream(path: &Path, limit: &Limit, mut sink: impl FnMut(&[u8])) -> Result<u64, FileError> {
    let mut input = Bounded::open(path, limit)?;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = input.next(&mut buf)?;
        if n == 0 {
            return Ok(input.total);
        }
        sink(buf.get(..n).unwrap_or_default());
    }
}

/// Reads all of `path`, within `limit`.
pub fn read(path: &Path, limit: &Limit) -> Result<Vec<u8>, FileError> {
    // Sized once from the file's length (a hint: the limit still rules), instead of growing by
    // doubling, which copies and faults in twice the memory.
    let hint = fs::metadata(path).map_or(0, |m| m.len()).min(limit.max);
    let mut bytes = Vec::with_capacity(usize::try_from(hint).unwrap_or(0));
    stream(path, limit, |chunk| bytes.extend_from_slice(chunk))?;
    Ok(bytes)
}

/// Writes `bytes` to `path`: through a new temporary file renamed over a regular file (or a
/// path that does not exist), in place into anything else (see the module documentation).
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    let write_error = |error| FileError::Write {
        path: path.to_owned(),
        error,
    };
    match fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Err(write_error(io::Error::from(io::ErrorKind::IsADirectory))),
        Ok(meta) if !meta.is_file() => write_in_place(path, bytes).map_err(write_error),
        Ok(_) => {
            // A link to a regular file is written through: the file it names is replaced.
            let target = fs::canonicalize(path).map_err(write_error)?;
            replace(&target, bytes).map_err(write_error)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => replace(path, bytes).map_err(write_error),
        Err(e) => Err(write_error(e)),
    }
}

/// Writes into an existing FIFO or device, which stays what it is.
fn write_in_place(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).open(path)?;
    file.write_all(bytes)?;
    file.flush()
}

/// Replaces (or creates) the regular file `target` through a new temporary file next to it.
fn replace(target: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = target
        .file_name()
        .map_or_else(|| "output".into(), |n| n.to_string_lossy().into_owned());
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .permissions(fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(target).map_err(|e| e.error)?;
    // The rename itself reaches the disk with the directory.
    File::open(dir)?.sync_all()
}

/// Writes `bytes` to standard output and flushes it.
pub fn write_stdout(bytes: &[u8]) -> Result<(), FileError> {
    let mut out = io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(FileError::Stdout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt as _;

    #[test]
    fn reads_within_the_limit_and_refuses_past_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, [7u8; 100]).unwrap();
        let limit = |max| Limit {
            what: "test file",
            max,
            regular_only: false,
            rule: "the rule",
        };
        assert_eq!(read(&path, &limit(100)).unwrap(), [7u8; 100]);
        let err = read(&path, &limit(99)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{} (test file) is larger than 99 bytes: the rule",
                path.display()
            )
        );
        // A device without a size: refused after max + 1 bytes.
        let err = read(Path::new("/dev/zero"), &limit(4096)).unwrap_err();
        assert!(
            matches!(err, FileError::TooLarge { max: 4096, .. }),
            "{err}"
        );
        // An empty device is read.
        assert_eq!(read(Path::new("/dev/null"), &limit(1)).unwrap(), b"");
        let regular_only = Limit {
            regular_only: true,
            ..limit(1 << 20)
        };
        let err = read(Path::new("/dev/zero"), &regular_only).unwrap_err();
        assert!(matches!(err, FileError::NotRegular { .. }), "{err}");
        assert!(read(&path, &regular_only).is_ok());
        let err = read(&dir.path().join("missing"), &regular_only).unwrap_err();
        assert!(err.to_string().starts_with("cannot read "), "{err}");
    }

    #[test]
    fn streaming_counts_every_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, vec![1u8; (3 << 20) + 5]).unwrap();
        let mut seen = 0usize;
        let n = stream(&path, &Limit::KERNEL, |c| seen += c.len()).unwrap();
        assert_eq!((n, seen), ((3 << 20) + 5, (3 << 20) + 5));
    }

    #[test]
    fn writing_creates_replaces_and_writes_through_links() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.bin");
        write(&out, b"first").unwrap();
        assert_eq!(fs::read(&out).unwrap(), b"first");
        write(&out, b"second").unwrap();
        assert_eq!(fs::read(&out).unwrap(), b"second");
        // A link to a regular file: the file is replaced, the link stays.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&out, &link).unwrap();
        write(&link, b"third").unwrap();
        assert!(fs::symlink_metadata(&link).unwrap().is_symlink());
        assert_eq!(fs::read(&out).unwrap(), b"third");
        // Only the two names are left: no temporary file.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
        let err = write(Path::new("/nonexistent-dir/x"), b"").unwrap_err();
        assert!(err
            .to_string()
            .starts_with("cannot write /nonexistent-dir/x"));
        let err = write(dir.path(), b"").unwrap_err();
        assert!(err.to_string().contains("directory"), "{err}");
    }

    #[test]
    fn the_mode_is_that_of_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let reference = dir.path().join("reference");
        fs::write(&reference, b"").unwrap();
        let out = dir.path().join("out");
        write(&out, b"x").unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&out), mode(&reference));
    }

    /// The path `/proc/self/fd/N` of an open file: writing to it reaches the file, and no
    /// temporary file can be created next to it (so this test cannot replace a device node).
    fn fd_path(file: &File) -> PathBuf {
        use std::os::fd::AsRawFd as _;
        PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()))
    }

    #[test]
    fn a_character_device_is_written_in_place() {
        let null = OpenOptions::new().write(true).open("/dev/null").unwrap();
        write(&fd_path(&null), b"nothing").unwrap();
        let full = OpenOptions::new().write(true).open("/dev/full").unwrap();
        let err = write(&fd_path(&full), b"x").unwrap_err();
        assert!(err.to_string().contains("No space left"), "{err}");
        for device in ["/dev/null", "/dev/full"] {
            assert!(fs::metadata(device).unwrap().file_type().is_char_device());
        }
    }

    #[test]
    fn a_broken_pipe_is_recognised() {
        assert!(FileError::Stdout(io::ErrorKind::BrokenPipe.into()).is_broken_pipe());
        assert!(!FileError::Stdout(io::Error::from_raw_os_error(28)).is_broken_pipe());
    }
}
