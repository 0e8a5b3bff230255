//! ACPI tables from QEMU's fw_cfg `etc/table-loader`: the VMM's own tables (RSDP, XSDT/RSDT,
//! FADT, DSDT, MADT with every vCPU, ...) are installed by running its linker script, and the
//! firmware adds its own (CCEL, and RTMR on a plain VM).
//!
//! Two halves, one per submodule:
//!
//! - [`loader`] interprets the script: [`plan`] checks it and lays its files out, [`link`] reads
//!   each file straight into the region the firmware reserved and patches pointers and
//!   checksums.
//! - [`tables`] builds and edits tables: [`table`], [`ccel`], [`rtmr_table`], and
//!   [`add_tables`], which adds the firmware's tables to the VMM's RSDT and/or XSDT and fixes the
//!   RSDP.
//!
//! Everything the VMM gives (the script, the files it names, the RSDP, RSDT and XSDT in them) is
//! untrusted: every rule broken is an [`AcpiError`], never a panic, and nothing is allocated on
//! the heap in proportion to a size the VMM chose beyond [`MAX_COMMANDS`] entries.

use core::fmt;

pub mod loader;
pub mod tables;
#[cfg(test)]
mod tests;

pub use loader::{
    link, plan, Extent, Linked, Plan, ADD_CHECKSUM, ADD_POINTER, ALLOCATE, COMMAND_SIZE, MAX_ALIGN,
    MAX_COMMANDS, MAX_FILES_SIZE, MAX_FILE_SIZE, NAME_SIZE, WRITE_POINTER, ZONE_FSEG, ZONE_HIGH,
};
pub use tables::{
    add_tables, ccel, find_table, rtmr_table, table, Rsdp, RsdpV1, SdtHeader, FIRMWARE_TABLES_ROOM,
    HEADER_SIZE, RSDP_V1_SIZE, RSDP_V2_SIZE,
};

/// Why the table loader's script or the VMM's tables were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcpiError {
    /// A root table lists two tables with the signature of a table the firmware replaces (the
    /// MADT): which one to replace would be a guess, and the OS would see both.
    DuplicateTable,
    /// The VMM's MADT is not a well-formed MADT (signature, Length, structure lengths), or
    /// already has a multiprocessor wakeup structure.
    BadMadt,
    /// The VMM offers no `etc/table-loader`: there would be no tables to publish the CC event
    /// log in (CCEL), so a Linux boot is refused.
    NoTables,
    /// The script is not a whole number of commands, or has too many.
    BadScriptLength(usize),
    /// Command `index` has an unknown type.
    UnknownCommand {
        /// Command index.
        index: usize,
        /// Its type.
        command: u32,
    },
    /// Command `index` names a file that is empty, not NUL-terminated or not UTF-8.
    BadName {
        /// Command index.
        index: usize,
    },
    /// ALLOCATE `index` has an alignment that is not a power of two up to [`MAX_ALIGN`], an
    /// unknown zone, or is a second file in the F-segment zone (which holds the RSDP).
    BadAllocate {
        /// Command index.
        index: usize,
    },
    /// A file is allocated twice.
    DuplicateAllocate {
        /// Command index.
        index: usize,
    },
    /// A command refers to a file no ALLOCATE loaded before it.
    NotAllocated {
        /// Command index.
        index: usize,
    },
    /// A file is empty, missing from fw_cfg, larger than [`MAX_FILE_SIZE`], or could not be
    /// read.
    BadFile {
        /// Command index.
        index: usize,
        /// Its size (0 if missing).
        size: u64,
    },
    /// ALLOCATE `index` makes the files (with their alignment padding) exceed
    /// [`MAX_FILES_SIZE`].
    FilesTooLarge {
        /// Command index.
        index: usize,
    },
    /// A pointer or checksum field is outside its file, or a pointer has a bad width.
    OutOfBounds {
        /// Command index.
        index: usize,
    },
    /// A pointer does not fit its field once the address is added.
    PointerOverflow {
        /// Command index.
        index: usize,
    },
    /// The script loads no RSDP (no file in the F-segment zone).
    NoRsdp,
    /// The files, or the firmware's tables after them, do not fit below 4 GiB at the address
    /// given.
    TooLarge,
    /// The region given to [`link`] is smaller than the [`Plan`]'s size.
    RegionTooSmall {
        /// Bytes the plan needs.
        needed: u64,
        /// Bytes the region has.
        len: usize,
    },
    /// The RSDP's file is shorter than its revision requires: 20 bytes (ACPI 1.0), 36 bytes for
    /// revision 2 and later.
    RsdpTooShort {
        /// Bytes of the file that holds the RSDP.
        file_size: u64,
        /// Bytes its revision requires.
        needed: usize,
    },
    /// A revision 2+ RSDP's Length field is below 36 bytes or reaches past the file holding it.
    BadRsdpLength {
        /// The Length field.
        length: u32,
        /// Bytes of the file that holds the RSDP.
        file_size: u64,
    },
    /// The linked RSDP, RSDT or XSDT is missing, outside the VMM's files, or malformed.
    BadRootTables,
    /// The firmware's own tables do not fit the room left for them.
    NoRoomForTables,
}

impl fmt::Display for AcpiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DuplicateTable => write!(
                f,
                "acpi: a root table lists two tables with the signature of one the firmware replaces"
            ),
            Self::BadMadt => write!(
                f,
                "acpi: the VMM's MADT is malformed or already has a wakeup structure"
            ),
            Self::NoTables => write!(
                f,
                "acpi: the VMM offers no ACPI tables (no etc/table-loader), so the CC event log \
                 cannot be published to Linux (CCEL): refusing to boot a kernel unmeasured to \
                 its verifier"
            ),
            Self::BadScriptLength(n) => write!(
                f,
                "acpi: table-loader has {n} bytes, not a whole number of at most {MAX_COMMANDS} commands"
            ),
            Self::UnknownCommand { index, command } => {
                write!(f, "acpi: table-loader command {index} has unknown type {command}")
            }
            Self::BadName { index } => {
                write!(f, "acpi: table-loader command {index} has a malformed file name")
            }
            Self::BadAllocate { index } => write!(
                f,
                "acpi: table-loader command {index} asks for a bad alignment or zone"
            ),
            Self::DuplicateAllocate { index } => {
                write!(f, "acpi: table-loader command {index} allocates a file twice")
            }
            Self::NotAllocated { index } => write!(
                f,
                "acpi: table-loader command {index} uses a file that was not allocated before"
            ),
            Self::BadFile { index, size } => write!(
                f,
                "acpi: table-loader command {index} loads a file of {size} bytes (missing, empty, too large or unreadable)"
            ),
            Self::FilesTooLarge { index } => write!(
                f,
                "acpi: table-loader command {index} makes the files exceed {MAX_FILES_SIZE} bytes"
            ),
            Self::OutOfBounds { index } => write!(
                f,
                "acpi: table-loader command {index} reaches outside its file"
            ),
            Self::PointerOverflow { index } => write!(
                f,
                "acpi: table-loader command {index} makes a pointer overflow its field"
            ),
            Self::NoRsdp => write!(f, "acpi: the table-loader script loads no RSDP"),
            Self::TooLarge => write!(f, "acpi: the tables do not fit below 4 GiB"),
            Self::RegionTooSmall { needed, len } => write!(
                f,
                "acpi: the tables need {needed} bytes but the region has {len}"
            ),
            Self::RsdpTooShort { file_size, needed } => write!(
                f,
                "acpi: the VMM's RSDP file has {file_size} bytes, its revision needs {needed}"
            ),
            Self::BadRsdpLength { length, file_size } => write!(
                f,
                "acpi: the VMM's RSDP says it has {length} bytes, its file has {file_size} (at least 36 needed)"
            ),
            Self::BadRootTables => write!(
                f,
                "acpi: the VMM's RSDP, RSDT or XSDT is missing, misplaced or malformed"
            ),
            Self::NoRoomForTables => {
                write!(f, "acpi: no room for the firmware's own tables")
            }
        }
    }
}
