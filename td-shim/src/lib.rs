//! The platform-neutral boot core of td-shim (plain VM, TDX, SEV-SNP).
//!
//! Everything here is written once against the [`platform::Platform`] trait and builds for the
//! host too, where its tests run. Code that needs the CPU itself (assembly, control registers,
//! port I/O, raw physical memory) lives in [`arch`] and the platform implementations, which
//! build only for the firmware target.
#![no_std]
#![warn(missing_docs)]
#![cfg_attr(not(target_os = "none"), forbid(unsafe_code))]

extern crate alloc;

pub mod acpi;
#[cfg(target_os = "none")]
pub mod arch;
#[cfg(target_os = "none")]
pub mod boot;
pub mod bounce;
pub mod chipset;
pub mod eventlog;
pub mod exception;
pub mod fatal;
pub mod fw_cfg;
pub mod handoff;
pub mod linux;
pub mod measurement;
pub mod memory_map;
pub mod mp;
pub mod pages;
pub mod paging;
pub mod payload;
#[cfg(target_os = "none")]
pub mod plain;
pub mod platform;
pub mod port_io;
pub mod secure_boot;
pub mod serial;
pub mod sev_entry;
pub mod snp;
pub mod tdx;

use core::fmt;

/// Why the boot stopped. Every variant names what failed; the fatal path prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootError {
    /// Reading QEMU's fw_cfg failed.
    FwCfg(fw_cfg::FwCfgError),
    /// The memory map was refused or could not be carved.
    MemoryMap(memory_map::MemoryMapError),
    /// The page tables could not be built.
    Paging(paging::PagingError),
    /// The image's payload table is invalid.
    PayloadTable(td_layout::payload::PayloadTableError),
    /// The payload table lists no ELF payload.
    NoPayload,
    /// The ELF payload is malformed or does not fit.
    Elf(td_loader::elf::ElfError),
    /// A firmware region the boot needs was already taken or is not where the layout puts it.
    RegionUnavailable(&'static str),
    /// The Linux kernel's boot protocol header or boot parameters were refused.
    Linux(td_loader::linux::LinuxError),
    /// The Linux boot could not be laid out in memory.
    LinuxBoot(linux::LinuxBootError),
    /// Recording a measurement failed.
    Measurement(eventlog::WriteError),
    /// The VMM's ACPI table-loader script was refused.
    Acpi(acpi::AcpiError),
    /// The application processors could not be parked for the OS.
    Mp(mp::MpError),
    /// The platform was detected but this firmware cannot run on it yet.
    UnsupportedPlatform(&'static str),
    /// SEV-SNP measured direct boot: the kernel-hashes table is missing or a blob from the VMM
    /// does not match it.
    KernelHashes(snp::hashes::HashesError),
    /// Secure boot: the image's enrolled key record is malformed (never read as "no key").
    EnrolledKey(td_layout::signed::RecordError),
    /// Secure boot: the payload may not boot under the enrolled key.
    SecureBoot(secure_boot::Refused),
}

impl fmt::Display for BootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FwCfg(e) => write!(f, "{e}"),
            Self::MemoryMap(e) => write!(f, "{e}"),
            Self::Paging(e) => write!(f, "{e}"),
            Self::PayloadTable(e) => write!(f, "payload: {e}"),
            Self::NoPayload => write!(f, "payload: the image holds no ELF payload"),
            Self::Elf(e) => write!(f, "payload: {e}"),
            Self::Linux(e) => write!(f, "linux: {e}"),
            Self::LinuxBoot(e) => write!(f, "{e}"),
            Self::Acpi(e) => write!(f, "{e}"),
            Self::KernelHashes(e) => write!(f, "snp: measured direct boot: {e}"),
            Self::EnrolledKey(e) => write!(f, "secure boot: {e}"),
            Self::SecureBoot(e) => write!(f, "secure boot: {e}"),
            Self::Measurement(e) => write!(f, "measurement: {e}"),
            Self::Mp(e) => write!(f, "{e}"),
            Self::RegionUnavailable(r) => write!(f, "firmware region {r} is unavailable (already taken, or not where the layout puts it)"),
            Self::UnsupportedPlatform(p) => {
                write!(
                    f,
                    "platform {p} detected, but this firmware does not support it yet"
                )
            }
        }
    }
}

macro_rules! from_error {
    ($($variant:ident($ty:ty)),*) => {$(
        impl From<$ty> for BootError {
            fn from(e: $ty) -> Self {
                BootError::$variant(e)
            }
        }
    )*};
}

from_error!(
    FwCfg(fw_cfg::FwCfgError),
    MemoryMap(memory_map::MemoryMapError),
    Paging(paging::PagingError),
    PayloadTable(td_layout::payload::PayloadTableError),
    Elf(td_loader::elf::ElfError),
    Linux(td_loader::linux::LinuxError),
    LinuxBoot(linux::LinuxBootError),
    Acpi(acpi::AcpiError),
    KernelHashes(snp::hashes::HashesError),
    EnrolledKey(td_layout::signed::RecordError),
    SecureBoot(secure_boot::Refused),
    Measurement(eventlog::WriteError),
    Mp(mp::MpError)
);
