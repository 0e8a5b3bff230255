//! The VMM's configuration td-shim measures into RTMR0 under TDX, read from files: the TD HOB
//! (`--td-hob`) and QEMU's ACPI fw_cfg files (`--acpi-dir`).
//!
//! Under TDX the firmware measures, after the launch parameters and before RTMR0's separator
//! (`td_shim::measurement::plan_with`, docs/measurement.md events 1a and 1b):
//!
//! - the TD HOB list, through its end-of-list HOB, as the VMM wrote it ([`TdHob`]);
//! - QEMU's `etc/table-loader`, then every file its ALLOCATE commands name, in command order,
//!   each as QEMU delivered it, before the loader patches it ([`acpi_files`]).
//!
//! Both are checked here as the firmware checks them: the HOB by `td_shim::tdx::hob::parse`
//! and `TdHob::memory_map`, the script by `td_shim::acpi::plan` (the same functions). What the
//! firmware checks later, while it links the tables (pointers, checksums, the RSDP and root
//! tables, the MADT), is not checked here: such tables fail the boot, and there is then no
//! RTMR0 to predict. Neither is the check of the HOB's ranges against the TD's shared bit,
//! which depends on the TD's GPA width.
//!
//! Every file is read with a size bound ([`crate::files`]): the TD_HOB region for the HOB, the
//! firmware's own bounds for the script and the files.

use crate::files::{self, FileError, Limit};
use std::io;
use std::path::{Path, PathBuf};
use td_layout::layout::TD_HOB;
use td_shim::acpi::{self, AcpiError};
use td_shim::measurement::ConfigFile;
use td_shim::tdx::hob::{self, HobError};

/// The fw_cfg name of QEMU's table-loader script, the first ACPI file measured.
pub const TABLE_LOADER: &str = "etc/table-loader";

/// The TD HOB: at most the image's TD_HOB region, where the VMM writes it.
pub const TD_HOB_LIMIT: Limit = Limit {
    what: "TD HOB",
    max: TD_HOB.size,
    regular_only: false,
    rule: "the VMM writes the TD HOB in the image's TD_HOB region (128 KiB)",
};

/// The table-loader script: at most the firmware's [`acpi::MAX_COMMANDS`] commands.
pub const TABLE_LOADER_LIMIT: Limit = Limit {
    what: "fw_cfg etc/table-loader",
    max: (acpi::MAX_COMMANDS * acpi::COMMAND_SIZE) as u64,
    regular_only: false,
    rule: "the firmware reads at most 1024 table-loader commands of 128 bytes",
};

/// A file the script allocates: at most [`acpi::MAX_FILE_SIZE`], as the firmware loads.
pub const ACPI_FILE_LIMIT: Limit = Limit {
    what: "fw_cfg ACPI file",
    max: acpi::MAX_FILE_SIZE,
    regular_only: false,
    rule: "the firmware loads ACPI files of at most 4 MiB",
};

/// Why the VMM's configuration could not be read, or would be refused by the firmware.
#[derive(Debug, thiserror::Error)]
pub enum VmmConfigError {
    /// The TD HOB is not one the firmware accepts.
    #[error("{}: not a TD HOB the firmware accepts: {error}", path.display())]
    Hob {
        /// The file.
        path: PathBuf,
        /// The rule it breaks.
        error: HobError,
    },
    /// The script names a file that is not a relative fw_cfg name.
    #[error(
        "{TABLE_LOADER} allocates a file named {name:?}, which is not a relative fw_cfg name \
         (segments separated by '/', none empty, '.' or '..'); it is not looked up"
    )]
    BadName {
        /// The name.
        name: String,
    },
    /// A file the firmware reads is not in the directory.
    #[error(
        "fw_cfg file {name} is missing: neither {} nor {}/raw exists{needed}",
        path.display(),
        path.display(),
        needed = if name == TABLE_LOADER { "" } else { " (etc/table-loader allocates it)" }
    )]
    Missing {
        /// Its fw_cfg name.
        name: String,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// A file the script allocates is empty: the firmware refuses it.
    #[error("fw_cfg file {name} ({}) is empty: the firmware refuses an empty ACPI file", path.display())]
    Empty {
        /// Its fw_cfg name.
        name: String,
        /// The file.
        path: PathBuf,
    },
    /// The script is one the firmware refuses.
    #[error("{}: {error} (the firmware refuses this table loader)", path.display())]
    Script {
        /// The script's file.
        path: PathBuf,
        /// The rule it breaks.
        error: AcpiError,
    },
    /// A file could not be read, or was refused by its size bound.
    #[error(transparent)]
    File(#[from] FileError),
}

/// A TD HOB as the firmware measures it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TdHob {
    /// The list, from its PHIT through its end-of-list HOB: the bytes measured.
    pub list: Vec<u8>,
    /// Bytes of RAM its memory map describes: the `ram_bytes` the firmware measures in the
    /// launch parameters.
    pub ram_bytes: u64,
}

impl TdHob {
    /// Checks `bytes` (the list, or the whole TD_HOB region starting with it) as the firmware
    /// does, and keeps the list.
    pub fn parse(mut bytes: Vec<u8>) -> Result<Self, HobError> {
        let parsed = hob::parse(&bytes)?;
        let ram_bytes = parsed.memory_map()?.ram_bytes();
        bytes.truncate(parsed.list_len());
        Ok(TdHob {
            list: bytes,
            ram_bytes,
        })
    }

    /// Reads and checks the TD HOB in `path`.
    pub fn read(path: &Path) -> Result<Self, VmmConfigError> {
        let bytes = files::read(path, &TD_HOB_LIMIT)?;
        Self::parse(bytes).map_err(|error| VmmConfigError::Hob {
            path: path.to_owned(),
            error,
        })
    }
}

/// Whether `name` is a relative fw_cfg name: segments separated by `/`, none empty, `.` or `..`
/// (so it stays inside the directory it is looked up in).
fn is_relative_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != ".." && !s.contains('\0'))
}

/// The file holding fw_cfg file `name` in `dir`: `dir/name`, or `dir/name/raw` when `dir/name`
/// is a directory (the layout of Linux's `/sys/firmware/qemu_fw_cfg/by_name`).
pub fn fw_cfg_path(dir: &Path, name: &str) -> Result<PathBuf, VmmConfigError> {
    if !is_relative_name(name) {
        return Err(VmmConfigError::BadName { name: name.into() });
    }
    let path = dir.join(name);
    let missing = || VmmConfigError::Missing {
        name: name.into(),
        path: path.clone(),
    };
    match std::fs::metadata(&path) {
        Ok(meta) if meta.is_dir() => {
            let raw = path.join("raw");
            match std::fs::metadata(&raw) {
                Ok(_) => Ok(raw),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Err(missing()),
                Err(error) => Err(read_error(&raw, error)),
            }
        }
        Ok(_) => Ok(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(missing()),
        Err(error) => Err(read_error(&path, error)),
    }
}

fn read_error(path: &Path, error: io::Error) -> VmmConfigError {
    VmmConfigError::File(FileError::Read {
        what: ACPI_FILE_LIMIT.what,
        path: path.to_owned(),
        error,
    })
}

/// The ACPI files the firmware measures for the table-loader `script`, in its order: the
/// script, then each file its ALLOCATE commands name, in command order, as `read` returns them
/// (given the fw_cfg name). The script is checked by `td_shim::acpi::plan`, as the firmware
/// checks it; `read` is called once per allocated file, in order, until one fails.
pub fn acpi_files(
    script: &[u8],
    script_path: &Path,
    mut read: impl FnMut(&str) -> Result<Vec<u8>, VmmConfigError>,
) -> Result<Vec<ConfigFile>, VmmConfigError> {
    let mut measured = vec![ConfigFile::of(TABLE_LOADER, script)];
    let mut failure = None;
    // `plan` asks for each allocated file's size once, in command order: the order in which
    // the firmware reads, and measures, them.
    let planned = acpi::plan(script, |name| {
        if failure.is_some() {
            return None;
        }
        match read(name) {
            Ok(bytes) => {
                measured.push(ConfigFile::of(name, &bytes));
                Some(bytes.len() as u64)
            }
            Err(e) => {
                failure = Some(e);
                None
            }
        }
    });
    match (planned, failure) {
        (_, Some(e)) => Err(e),
        (Err(error), None) => Err(VmmConfigError::Script {
            path: script_path.to_owned(),
            error,
        }),
        (Ok(_), None) => Ok(measured),
    }
}

/// Reads the ACPI files the firmware measures from `dir`, which holds QEMU's fw_cfg files under
/// their fw_cfg names (`dir/etc/table-loader`, `dir/etc/acpi/tables`, ...; or Linux's
/// `/sys/firmware/qemu_fw_cfg/by_name`, where each is `NAME/raw`): [`acpi_files`] over
/// `etc/table-loader`. A missing or empty file is an error naming it.
pub fn read_acpi_dir(dir: &Path) -> Result<Vec<ConfigFile>, VmmConfigError> {
    let script_path = fw_cfg_path(dir, TABLE_LOADER)?;
    let script = files::read(&script_path, &TABLE_LOADER_LIMIT)?;
    acpi_files(&script, &script_path, |name| {
        let path = fw_cfg_path(dir, name)?;
        let bytes = files::read(&path, &ACPI_FILE_LIMIT)?;
        if bytes.is_empty() {
            return Err(VmmConfigError::Empty {
                name: name.into(),
                path,
            });
        }
        Ok(bytes)
    })
}

#[cfg(test)]
#[path = "../../tests/common/hob.rs"]
mod test_hob;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The QEMU-like TD HOB of the integration tests (one copy, tests/common/hob.rs).
    pub(crate) use super::test_hob::qemu_hob;

    /// A 128-byte table-loader command: `kind`, then `names` (56 bytes each), then `tail`.
    fn command(kind: u32, names: &[&str], tail: &[u8]) -> Vec<u8> {
        let mut c = kind.to_le_bytes().to_vec();
        for n in names {
            let mut field = [0u8; acpi::NAME_SIZE];
            field[..n.len()].copy_from_slice(n.as_bytes());
            c.extend_from_slice(&field);
        }
        c.extend_from_slice(tail);
        c.resize(acpi::COMMAND_SIZE, 0);
        c
    }

    /// ALLOCATE `name` at `align` in `zone` (1 high, 2 F segment).
    pub(crate) fn allocate(name: &str, align: u32, zone: u8) -> Vec<u8> {
        let mut tail = align.to_le_bytes().to_vec();
        tail.push(zone);
        command(acpi::ALLOCATE, &[name], &tail)
    }

    /// ADD_POINTER: add `src`'s address to the `size`-byte field at `offset` of `dest`.
    pub(crate) fn add_pointer(dest: &str, src: &str, offset: u32, size: u8) -> Vec<u8> {
        let mut tail = offset.to_le_bytes().to_vec();
        tail.push(size);
        command(acpi::ADD_POINTER, &[dest, src], &tail)
    }

    #[test]
    fn the_hob_list_is_kept_from_a_list_or_a_region() {
        let list = qemu_hob(512 << 20);
        let from_list = TdHob::parse(list.clone()).unwrap();
        assert_eq!(from_list.list, list);
        assert_eq!(from_list.ram_bytes, 512 << 20);
        let mut region = list.clone();
        region.resize(TD_HOB.size as usize, 0);
        assert_eq!(TdHob::parse(region).unwrap(), from_list);
        // The firmware's rules: a wrong PHIT version, no end of list.
        let mut bad = list.clone();
        bad[8] = 8;
        assert!(matches!(
            TdHob::parse(bad),
            Err(HobError::PhitVersion { version: 8 })
        ));
        assert!(matches!(
            TdHob::parse(list[..list.len() - 8].to_vec()),
            Err(HobError::MissingEnd { .. })
        ));
    }

    #[test]
    fn files_are_measured_in_allocate_order() {
        let mut script = allocate("etc/acpi/tables", 64, 1);
        script.extend(allocate("etc/acpi/rsdp", 16, 2));
        script.extend(add_pointer("etc/acpi/rsdp", "etc/acpi/tables", 16, 4));
        script.extend(allocate("etc/a", 16, 1));
        let content = |name: &str| name.as_bytes().repeat(3);
        let mut asked = Vec::new();
        let files = acpi_files(&script, Path::new("s"), |name| {
            asked.push(name.to_owned());
            Ok(content(name))
        })
        .unwrap();
        assert_eq!(asked, ["etc/acpi/tables", "etc/acpi/rsdp", "etc/a"]);
        let expected: Vec<_> = [TABLE_LOADER, "etc/acpi/tables", "etc/acpi/rsdp", "etc/a"]
            .iter()
            .map(|n| {
                if *n == TABLE_LOADER {
                    ConfigFile::of(n, &script)
                } else {
                    ConfigFile::of(n, &content(n))
                }
            })
            .collect();
        assert_eq!(files, expected);
        // The first failure is the error; nothing is read after it.
        let mut asked = 0;
        let err = acpi_files(&script, Path::new("s"), |name| {
            asked += 1;
            Err(VmmConfigError::BadName { name: name.into() })
        })
        .unwrap_err();
        assert_eq!(asked, 1);
        assert!(err.to_string().contains("\"etc/acpi/tables\""), "{err}");
        // A script the firmware refuses: no RSDP.
        let err = acpi_files(&allocate("etc/acpi/tables", 64, 1), Path::new("s"), |n| {
            Ok(content(n))
        })
        .unwrap_err();
        assert!(
            matches!(
                err,
                VmmConfigError::Script {
                    error: AcpiError::NoRsdp,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn names_stay_inside_the_directory() {
        for name in ["etc/acpi/tables", "etc/table-loader", "a"] {
            assert!(is_relative_name(name), "{name}");
        }
        for name in [
            "",
            "/etc/passwd",
            "../x",
            "etc/../../x",
            "a//b",
            "a/./b",
            "a/",
        ] {
            assert!(!is_relative_name(name), "{name}");
        }
    }

    #[test]
    fn reads_a_copied_directory_and_the_sysfs_layout() {
        let mut script = allocate("etc/acpi/tables", 64, 1);
        script.extend(allocate("etc/acpi/rsdp", 16, 2));
        let copied = tempfile::tempdir().unwrap();
        let sysfs = tempfile::tempdir().unwrap();
        for (name, bytes) in [
            (TABLE_LOADER, script.clone()),
            ("etc/acpi/tables", vec![1u8; 100]),
            ("etc/acpi/rsdp", vec![2u8; 36]),
        ] {
            let path = copied.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &bytes).unwrap();
            let dir = sysfs.path().join(name);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("raw"), &bytes).unwrap();
            std::fs::write(dir.join("size"), bytes.len().to_string()).unwrap();
        }
        let files = read_acpi_dir(copied.path()).unwrap();
        assert_eq!(files.len(), 3);
        assert_eq!(files, read_acpi_dir(sysfs.path()).unwrap());
        // Missing and empty files are named.
        std::fs::remove_file(copied.path().join("etc/acpi/rsdp")).unwrap();
        let err = read_acpi_dir(copied.path()).unwrap_err().to_string();
        assert!(
            err.contains("fw_cfg file etc/acpi/rsdp is missing"),
            "{err}"
        );
        std::fs::write(copied.path().join("etc/acpi/rsdp"), b"").unwrap();
        let err = read_acpi_dir(copied.path()).unwrap_err().to_string();
        assert!(
            err.contains("etc/acpi/rsdp") && err.contains("empty"),
            "{err}"
        );
        let empty = tempfile::tempdir().unwrap();
        let err = read_acpi_dir(empty.path()).unwrap_err().to_string();
        assert!(
            err.contains("fw_cfg file etc/table-loader is missing"),
            "{err}"
        );
    }
}
