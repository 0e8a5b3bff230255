//! `td-shim-tool initramfs`: packs the guest agent as `/init` into a gzip-compressed newc cpio
//! archive, the initramfs format the Linux kernel unpacks (see the kernel's
//! `Documentation/driver-api/early-userspace/buffer-format.rst`).
//!
//! The archive holds, in this order: the directories `/dev`, `/proc`, `/sys`, `/etc`; the console
//! device `/dev/console` (character 5:1, which the kernel opens as init's stdin, stdout and stderr
//! before it runs `/init`); `/init`, the agent, mode 0755; `/etc/initrd-id`, the identifier the agent
//! reports; each extra file at its destination (mode 0755 if the source is executable, else 0644),
//! after any parent directory it needs; the `TRAILER!!!` entry. Names are stored without the
//! leading `/`, as the kernel's own `gen_init_cpio` does.
//!
//! The output depends only on the inputs' bytes and executable bits: every entry has mtime 0,
//! uid and gid 0, and inode numbers counting from 1 in archive order; the gzip header has mtime 0
//! and no file name.

use crate::files::{self, FileError, Limit};
use cpio::newc::{self, ModeFileType};
use flate2::{Compression, GzBuilder};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The identifier written to `/etc/initrd-id` when none is given.
pub const DEFAULT_ID: &str = "td-shim-agent";

/// Where the identifier goes, for the agent to report.
pub const ID_PATH: &str = "etc/initrd-id";

/// The console device: character major 5, minor 1 (`Documentation/admin-guide/devices.txt`).
const CONSOLE: (&str, u32, u32) = ("dev/console", 5, 1);

/// The directories every archive has.
const DIRECTORIES: [&str; 4] = ["dev", "proc", "sys", "etc"];

/// Why an initramfs could not be built.
#[derive(Debug, thiserror::Error)]
pub enum InitramfsError {
    /// An input file could not be read, or was refused by its size bound.
    #[error(transparent)]
    File(#[from] FileError),
    /// A newc entry records its size in 32 bits.
    #[error("{} is {size} bytes; a newc archive entry holds at most 4 GiB - 1", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: usize,
    },
    /// A destination path that cannot name a file in the archive.
    #[error("destination `{dest}`: {reason}")]
    BadDestination {
        /// The destination as given.
        dest: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Two entries with the same path, or a file where a directory must be.
    #[error("/{0} would be in the archive twice (or as both a file and a directory)")]
    Conflict(String),
    /// Writing the archive failed.
    #[error("cannot write the archive: {0}")]
    Write(io::Error),
}

/// An extra file, given as `SRC:DEST` (split at the last `:`): the host file `SRC` goes to the
/// archive path `DEST`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraFile {
    /// The file on the host.
    pub source: PathBuf,
    /// The path in the archive, absolute or relative to the root.
    pub dest: String,
}

impl FromStr for ExtraFile {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        match spec.rsplit_once(':') {
            Some((source, dest)) if !source.is_empty() && !dest.is_empty() => Ok(Self {
                source: PathBuf::from(source),
                dest: dest.to_owned(),
            }),
            _ => Err(format!("expected SRC:DEST, got `{spec}`")),
        }
    }
}

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Content {
    Directory,
    File(Vec<u8>),
    CharDevice { major: u32, minor: u32 },
}

/// One archive entry before it is written.
#[derive(Debug, Clone)]
struct Entry {
    /// The path without the leading `/`.
    name: String,
    /// Permission bits.
    permissions: u32,
    content: Content,
}

/// One entry of a built archive, as reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryReport {
    /// The path in the guest (`/init`).
    pub path: String,
    /// `directory`, `file` or `char device`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Permission bits in octal (`0755`).
    pub mode: String,
    /// Bytes of content (0 for directories and devices).
    pub size: usize,
}

/// A built initramfs and what it holds.
#[derive(Debug, Clone, Serialize)]
pub struct Initramfs {
    /// The gzip-compressed newc archive.
    #[serde(skip)]
    pub archive: Vec<u8>,
    /// Bytes of `archive`.
    pub bytes: usize,
    /// The identifier in `/etc/initrd-id`.
    pub id: String,
    /// The entries in archive order (the trailer left out).
    pub entries: Vec<EntryReport>,
}

impl Initramfs {
    /// The human-readable description.
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "initramfs: {} bytes (gzip, newc), id {:?}\n",
            self.bytes, self.id
        );
        for entry in &self.entries {
            // Writing to a String cannot fail.
            let _ = writeln!(
                text,
                "  {} {:<12} {:>10}  {}",
                entry.mode, entry.kind, entry.size, entry.path
            );
        }
        text
    }
}

/// Builds the initramfs from the agent binary, the extra files and the identifier.
pub fn build_initramfs(
    agent: &Path,
    files: &[ExtraFile],
    id: &str,
) -> Result<Initramfs, InitramfsError> {
    let mut layout = Layout::default();
    for dir in DIRECTORIES {
        layout.add(dir, 0o755, Content::Directory, None)?;
    }
    let (console, major, minor) = CONSOLE;
    layout.add(console, 0o600, Content::CharDevice { major, minor }, None)?;
    let agent_bytes = files::read(agent, &Limit::AGENT)?;
    layout.add("init", 0o755, Content::File(agent_bytes), Some(agent))?;
    layout.add(ID_PATH, 0o644, Content::File(id.as_bytes().to_vec()), None)?;
    for file in files {
        let name = archive_name(&file.dest)?;
        let bytes = files::read(&file.source, &Limit::EXTRA_FILE)?;
        let executable = std::fs::metadata(&file.source)
            .map_err(|error| FileError::Read {
                what: Limit::EXTRA_FILE.what,
                path: file.source.clone(),
                error,
            })?
            .permissions()
            .mode()
            & 0o111
            != 0;
        if let Some((parent, _)) = name.rsplit_once('/') {
            layout.add_parents(parent)?;
        }
        let permissions = if executable { 0o755 } else { 0o644 };
        layout.add(&name, permissions, Content::File(bytes), Some(&file.source))?;
    }
    let archive = write_archive(&layout.entries).map_err(InitramfsError::Write)?;
    Ok(Initramfs {
        bytes: archive.len(),
        archive,
        id: id.to_owned(),
        entries: layout.entries.iter().map(report_entry).collect(),
    })
}

/// The entries in archive order, and which names are taken.
#[derive(Default)]
struct Layout {
    entries: Vec<Entry>,
    /// Each name in `entries`, and whether it is a directory.
    names: BTreeMap<String, bool>,
}

impl Layout {
    fn add(
        &mut self,
        name: &str,
        permissions: u32,
        content: Content,
        source: Option<&Path>,
    ) -> Result<(), InitramfsError> {
        if let Content::File(bytes) = &content {
            if u32::try_from(bytes.len()).is_err() {
                return Err(InitramfsError::TooLarge {
                    path: source.map_or_else(|| PathBuf::from(name), Path::to_owned),
                    size: bytes.len(),
                });
            }
        }
        let is_dir = content == Content::Directory;
        if self.names.insert(name.to_owned(), is_dir).is_some() {
            return Err(InitramfsError::Conflict(name.to_owned()));
        }
        self.entries.push(Entry {
            name: name.to_owned(),
            permissions,
            content,
        });
        Ok(())
    }

    /// Adds `dir` and the directories above it that are not there yet, outermost first.
    fn add_parents(&mut self, dir: &str) -> Result<(), InitramfsError> {
        let mut end = 0;
        for component in dir.split('/') {
            end += component.len();
            let prefix = &dir[..end];
            match self.names.get(prefix) {
                Some(true) => {}
                Some(false) => return Err(InitramfsError::Conflict(prefix.to_owned())),
                None => self.add(prefix, 0o755, Content::Directory, None)?,
            }
            end += 1;
        }
        Ok(())
    }
}

/// The archive name for a destination: no leading `/`, no empty, `.` or `..` component.
fn archive_name(dest: &str) -> Result<String, InitramfsError> {
    let bad = |reason| InitramfsError::BadDestination {
        dest: dest.to_owned(),
        reason,
    };
    let name = dest.strip_prefix('/').unwrap_or(dest);
    if name.is_empty() {
        return Err(bad("names no file"));
    }
    if name.contains('\0') {
        return Err(bad("contains a NUL byte"));
    }
    for component in name.split('/') {
        match component {
            "" => return Err(bad("has an empty component (`//` or a trailing `/`)")),
            "." | ".." => return Err(bad("has a `.` or `..` component")),
            _ => {}
        }
    }
    Ok(name.to_owned())
}

/// Writes the entries and the trailer as newc, compressed with gzip. Every file fits a newc entry
/// (checked by [`Layout::add`]).
fn write_archive(entries: &[Entry]) -> io::Result<Vec<u8>> {
    let too_big = |what| io::Error::new(io::ErrorKind::InvalidInput, what);
    let mut gzip = GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::best());
    for (index, entry) in entries.iter().enumerate() {
        let ino = u32::try_from(index + 1).map_err(|_| too_big("more than 2^32 - 1 entries"))?;
        let (file_type, nlink, data) = match &entry.content {
            Content::Directory => (ModeFileType::Directory, 2, &[][..]),
            Content::File(bytes) => (ModeFileType::Regular, 1, &bytes[..]),
            Content::CharDevice { .. } => (ModeFileType::Char, 1, &[][..]),
        };
        let size = u32::try_from(data.len()).map_err(|_| too_big("an entry of 4 GiB or more"))?;
        let mut builder = newc::Builder::new(&entry.name)
            .ino(ino)
            .mode(entry.permissions)
            .set_mode_file_type(file_type)
            .uid(0)
            .gid(0)
            .nlink(nlink)
            .mtime(0);
        if let Content::CharDevice { major, minor } = entry.content {
            builder = builder.rdev_major(major).rdev_minor(minor);
        }
        let mut writer = builder.write(gzip, size);
        writer.write_all(data)?;
        gzip = writer.finish()?;
    }
    newc::trailer(gzip)?.finish()
}

fn report_entry(entry: &Entry) -> EntryReport {
    let (kind, size) = match &entry.content {
        Content::Directory => ("directory", 0),
        Content::File(bytes) => ("file", bytes.len()),
        Content::CharDevice { .. } => ("char device", 0),
    };
    EntryReport {
        path: format!("/{}", entry.name),
        kind,
        mode: format!("{:04o}", entry.permissions),
        size,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;
    use std::io::Read as _;

    /// One entry read back: name, full mode, nlink, uid, gid, mtime, ino, rdev, content.
    #[derive(Debug, PartialEq, Eq)]
    struct ReadBack {
        name: String,
        mode: u32,
        nlink: u32,
        ino: u32,
        owner_and_time: (u32, u32, u32),
        rdev: (u32, u32),
        data: Vec<u8>,
    }

    /// Reads the archive back with the cpio crate's reader, trailer included.
    fn read_back(archive: &[u8]) -> Vec<ReadBack> {
        let mut cpio = Vec::new();
        GzDecoder::new(archive).read_to_end(&mut cpio).unwrap();
        let mut rest = &cpio[..];
        let mut entries = Vec::new();
        loop {
            let mut reader = newc::Reader::new(rest).unwrap();
            let e = reader.entry();
            let mut back = ReadBack {
                name: e.name().to_owned(),
                mode: e.mode(),
                nlink: e.nlink(),
                ino: e.ino(),
                owner_and_time: (e.uid(), e.gid(), e.mtime()),
                rdev: (e.rdev_major(), e.rdev_minor()),
                data: Vec::new(),
            };
            let trailer = e.is_trailer();
            reader.read_to_end(&mut back.data).unwrap();
            entries.push(back);
            rest = reader.finish().unwrap();
            if trailer {
                break;
            }
        }
        assert!(rest.iter().all(|&b| b == 0), "bytes after the trailer");
        entries
    }

    struct Inputs {
        dir: tempfile::TempDir,
    }

    impl Inputs {
        fn new() -> Self {
            let inputs = Self {
                dir: tempfile::tempdir().unwrap(),
            };
            inputs.file("agent", b"\x7fELF static agent", 0o755);
            inputs.file("script", b"#!/bin/sh\n", 0o700);
            inputs.file("data", b"abc", 0o600);
            inputs
        }

        fn file(&self, name: &str, bytes: &[u8], mode: u32) -> PathBuf {
            let path = self.dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            path
        }

        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }

        fn extra(&self, name: &str, dest: &str) -> ExtraFile {
            format!("{}:{dest}", self.path(name).display())
                .parse()
                .unwrap()
        }
    }

    #[test]
    fn round_trip_names_modes_and_contents() {
        let inputs = Inputs::new();
        let extras = [
            inputs.extra("script", "/usr/bin/check"),
            inputs.extra("data", "etc/data.txt"),
        ];
        let built = build_initramfs(&inputs.path("agent"), &extras, "build-42").unwrap();
        assert_eq!(built.bytes, built.archive.len());
        let entries = read_back(&built.archive);
        let summary: Vec<(&str, u32, &[u8])> = entries
            .iter()
            .map(|e| (e.name.as_str(), e.mode, &e.data[..]))
            .collect();
        assert_eq!(
            summary,
            [
                ("dev", 0o040755, &b""[..]),
                ("proc", 0o040755, b""),
                ("sys", 0o040755, b""),
                ("etc", 0o040755, b""),
                ("dev/console", 0o020600, b""),
                ("init", 0o100755, b"\x7fELF static agent"),
                ("etc/initrd-id", 0o100644, b"build-42"),
                ("usr", 0o040755, b""),
                ("usr/bin", 0o040755, b""),
                ("usr/bin/check", 0o100755, b"#!/bin/sh\n"),
                ("etc/data.txt", 0o100644, b"abc"),
                ("TRAILER!!!", 0, b""),
            ]
        );
        let (body, trailer) = entries.split_at(entries.len() - 1);
        for (index, entry) in body.iter().enumerate() {
            assert_eq!(
                entry.ino,
                u32::try_from(index + 1).unwrap(),
                "{}",
                entry.name
            );
            assert_eq!(entry.owner_and_time, (0, 0, 0), "{}", entry.name);
            let dir = entry.mode & 0o170000 == 0o040000;
            assert_eq!(entry.nlink, if dir { 2 } else { 1 }, "{}", entry.name);
        }
        assert_eq!(body[4].rdev, (5, 1));
        assert_eq!(trailer[0].owner_and_time, (0, 0, 0));
        let paths: Vec<&str> = built.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths.len(), body.len());
        assert_eq!(paths[5], "/init");
        assert_eq!(built.entries[5].mode, "0755");
        assert_eq!(built.entries[5].size, 17);
        assert!(built.to_text().contains("/usr/bin/check"));
    }

    #[test]
    fn default_id_and_no_extras() {
        let inputs = Inputs::new();
        let built = build_initramfs(&inputs.path("agent"), &[], DEFAULT_ID).unwrap();
        let entries = read_back(&built.archive);
        let id = entries.iter().find(|e| e.name == ID_PATH).unwrap();
        assert_eq!(id.data, b"td-shim-agent");
        assert_eq!(entries.len(), 8);
        let json = serde_json::to_value(&built).unwrap();
        assert_eq!(json["id"], "td-shim-agent");
        assert_eq!(json["entries"][5]["type"], "file");
        assert!(json.get("archive").is_none());
    }

    #[test]
    fn same_inputs_same_bytes() {
        let inputs = Inputs::new();
        let extras = [inputs.extra("data", "/data")];
        let first = build_initramfs(&inputs.path("agent"), &extras, "x").unwrap();
        // Newer timestamps on the inputs change nothing.
        inputs.file("agent", b"\x7fELF static agent", 0o755);
        let second = build_initramfs(&inputs.path("agent"), &extras, "x").unwrap();
        assert_eq!(first.archive, second.archive);
        let other = build_initramfs(&inputs.path("agent"), &extras, "y").unwrap();
        assert_ne!(first.archive, other.archive);
    }

    #[test]
    fn missing_agent_is_a_clear_error() {
        let inputs = Inputs::new();
        let error = build_initramfs(&inputs.path("no-such-agent"), &[], DEFAULT_ID).unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with("cannot read ") && message.contains("no-such-agent (the agent): "),
            "{message}"
        );
        let missing = inputs.extra("gone", "/gone");
        let error = build_initramfs(&inputs.path("agent"), &[missing], DEFAULT_ID).unwrap_err();
        assert!(
            error.to_string().starts_with("cannot read ")
                && error.to_string().contains("gone (extra file): "),
            "{error}"
        );
    }

    #[test]
    fn bad_or_clashing_destinations_are_refused() {
        let inputs = Inputs::new();
        let agent = inputs.path("agent");
        for dest in ["/", "a//b", "a/", "../x", "/a/./b"] {
            let extra = inputs.extra("data", dest);
            let error = build_initramfs(&agent, &[extra], DEFAULT_ID).unwrap_err();
            assert!(
                matches!(error, InitramfsError::BadDestination { .. }),
                "{dest}: {error}"
            );
        }
        for dest in ["/init", "/etc/initrd-id", "dev", "/init/x"] {
            let extra = inputs.extra("data", dest);
            let error = build_initramfs(&agent, &[extra], DEFAULT_ID).unwrap_err();
            assert!(
                matches!(error, InitramfsError::Conflict(_)),
                "{dest}: {error}"
            );
        }
        let twice = [inputs.extra("data", "/a"), inputs.extra("script", "a")];
        let error = build_initramfs(&agent, &twice, DEFAULT_ID).unwrap_err();
        assert_eq!(
            error.to_string(),
            "/a would be in the archive twice (or as both a file and a directory)"
        );
    }

    #[test]
    fn file_specs_split_at_the_last_colon() {
        let extra: ExtraFile = "/tmp/a:b/c:/etc/c".parse().unwrap();
        assert_eq!(extra.source, PathBuf::from("/tmp/a:b/c"));
        assert_eq!(extra.dest, "/etc/c");
        for bad in ["no-colon", ":/dest", "/src:"] {
            assert!(bad.parse::<ExtraFile>().is_err(), "{bad}");
        }
    }
}
