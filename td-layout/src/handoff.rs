//! What the firmware hands an ELF payload, and the exit codes the firmware and the test payload
//! report through QEMU's `isa-debug-exit` device.
//!
//! The payload is entered in 64-bit mode with the System V calling convention:
//! `extern "sysv64" fn(boot_info: *const BootInfo, load_base: u64) -> !`, that is `RDI` = the
//! address of a [`BootInfo`] in the [`HANDOFF`](crate::layout::HANDOFF) region, `RSI` = the address
//! the payload was loaded at. `RSP` is 16-byte aligned before the call (so `RSP + 8` is aligned at
//! the first instruction), interrupts are off, paging is the firmware's identity map.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `BootInfo::magic`: "TDSHBOOT" read as a little-endian u64.
pub const BOOT_INFO_MAGIC: u64 = u64::from_le_bytes(*b"TDSHBOOT");
/// `BootInfo::version` written by this firmware.
pub const BOOT_INFO_VERSION: u32 = 1;

/// The platform the firmware booted on, as recorded in [`BootInfo::platform`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum PlatformKind {
    /// A VM without a TEE; measurement registers are emulated.
    Plain = 0,
    /// Intel TDX.
    Tdx = 1,
    /// AMD SEV-SNP.
    SevSnp = 2,
}

impl PlatformKind {
    /// Name used in logs.
    pub const fn name(self) -> &'static str {
        match self {
            PlatformKind::Plain => "plain",
            PlatformKind::Tdx => "tdx",
            PlatformKind::SevSnp => "sev-snp",
        }
    }
}

/// The hand-off block. All fields little-endian; `size` lets later versions append fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct BootInfo {
    /// [`BOOT_INFO_MAGIC`].
    pub magic: u64,
    /// [`BOOT_INFO_VERSION`].
    pub version: u32,
    /// `size_of::<BootInfo>()` as written.
    pub size: u32,
    /// A [`PlatformKind`] value.
    pub platform: u32,
    /// Number of [`MemoryMapEntry`] records at `memory_map_address`.
    pub memory_map_entries: u32,
    /// Address of the memory map: `memory_map_entries` packed 20-byte records, sorted by base,
    /// not overlapping.
    pub memory_map_address: u64,
    /// Where the payload was loaded.
    pub payload_base: u64,
    /// Bytes the loaded payload spans from `payload_base` (reserved in the memory map).
    pub payload_size: u64,
    /// Where the CC event log of this boot starts (reserved in the memory map).
    pub event_log_address: u64,
    /// Bytes of the event log area (the log ends at the first 0xFF padding).
    pub event_log_size: u64,
}

/// One memory map record, in the E820 layout (20 bytes, packed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C, packed)]
pub struct MemoryMapEntry {
    /// First address.
    pub base: u64,
    /// Length in bytes.
    pub length: u64,
    /// An E820 type: [`E820_RAM`], [`E820_RESERVED`], [`E820_ACPI`], [`E820_NVS`] or
    /// [`E820_UNUSABLE`].
    pub kind: u32,
}

// E820 memory types (ACPI "Address Range Types", Linux `arch/x86/include/uapi/asm/e820.h`):
// this is the one definition; `td_loader::linux` re-exports them for `boot_params`.

/// E820 type 1: usable RAM.
pub const E820_RAM: u32 = 1;
/// E820 type 2: reserved memory (the firmware's own regions, the payload, ROM, MMIO).
pub const E820_RESERVED: u32 = 2;
/// E820 type 3: ACPI tables, reclaimable once the OS has read them.
pub const E820_ACPI: u32 = 3;
/// E820 type 4: ACPI non-volatile storage, to be preserved across sleep states.
pub const E820_NVS: u32 = 4;
/// E820 type 5: unusable memory (detected errors).
pub const E820_UNUSABLE: u32 = 5;

/// The I/O port of QEMU's `isa-debug-exit` device as the tests and docs configure it
/// (`-device isa-debug-exit,iobase=0xf4,iosize=0x04`). Writing `v` there ends QEMU with exit
/// status `(v << 1) | 1`.
pub const DEBUG_EXIT_PORT: u16 = 0xF4;
/// Written by the test payload when everything it received checked out (QEMU exits with 33).
pub const DEBUG_EXIT_PAYLOAD_OK: u8 = 0x10;
/// Written by the test payload when a check failed (QEMU exits with 35).
pub const DEBUG_EXIT_PAYLOAD_BAD: u8 = 0x11;
/// Written by the firmware's fatal path on the Plain platform (QEMU exits with 253).
pub const DEBUG_EXIT_FIRMWARE_FATAL: u8 = 0x7E;

/// The QEMU exit status that a write of `code` to [`DEBUG_EXIT_PORT`] produces.
pub const fn qemu_exit_status(code: u8) -> i32 {
    ((code as i32) << 1) | 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_sizes() {
        assert_eq!(core::mem::size_of::<BootInfo>(), 64);
        assert_eq!(core::mem::size_of::<MemoryMapEntry>(), 20);
        assert_eq!(qemu_exit_status(DEBUG_EXIT_PAYLOAD_OK), 33);
        assert_eq!(qemu_exit_status(DEBUG_EXIT_FIRMWARE_FATAL), 253);
        assert_eq!(&BOOT_INFO_MAGIC.to_le_bytes(), b"TDSHBOOT");
    }
}
