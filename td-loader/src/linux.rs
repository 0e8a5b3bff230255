//! Linux bzImage payloads: setup-header validation, kernel placement, the `boot_params` "zero
//! page" and `setup_data` nodes, for the 64-bit boot protocol.
//!
//! The firmware copies the protected-mode part of a bzImage (everything after the real-mode
//! setup sectors) to a load address aligned to `kernel_alignment`, fills a 4 KiB `boot_params`
//! page, and jumps in 64-bit mode to the load address + 0x200 ([`entry64`]) with RSI pointing at
//! that page. The real-mode setup code is never run.
//!
//! The kernel bytes are untrusted input. [`parse`] checks every header field this module relies
//! on; [`BzImage::place_kernel`], [`build_boot_params`] and [`write_setup_data`] check the
//! caller's addresses against the kernel's limits. No function here panics on any input, and none
//! allocates.
//!
//! Boot protocol 2.12 (Linux 3.8) is the oldest accepted: it added `xloadflags`, whose
//! `XLF_KERNEL_64` bit is the only way to know that the kernel has the 64-bit entry point at
//! 0x200, and the `ext_*` fields of `boot_params` that carry the high 32 bits of the command
//! line and initrd addresses. (Protocol 2.14 is documented as burnt and to be treated as 2.13;
//! `acpi_rsdp_addr` is a `boot_params` field, written whatever the version.)
//!
//! What [`parse`] requires (the [`LinuxError`] variant for each rule in brackets):
//!
//! - At least the bytes up to the end of `init_size` (0x264)
//!   [`TruncatedHeader`](LinuxError::TruncatedHeader); `boot_flag` 0xAA55
//!   [`BadBootFlag`](LinuxError::BadBootFlag); a short jump (0xEB) at 0x200
//!   [`BadJump`](LinuxError::BadJump); `"HdrS"` at 0x202 [`BadMagic`](LinuxError::BadMagic);
//!   protocol version at least 2.12 [`UnsupportedVersion`](LinuxError::UnsupportedVersion).
//! - The setup header, which ends at 0x202 + the jump's signed offset byte at 0x201: a forward
//!   jump that covers every field read here, so it ends within 0x264..=0x281 (0x281 is the reach
//!   of a short jump, and lies inside the 0x1F1..0x290 hole of `boot_params`)
//!   [`BadHeaderLength`](LinuxError::BadHeaderLength), and inside the file
//!   [`TruncatedHeader`](LinuxError::TruncatedHeader).
//! - `LOADED_HIGH` in `loadflags` [`NotLoadedHigh`](LinuxError::NotLoadedHigh); `XLF_KERNEL_64`
//!   in `xloadflags` [`No64BitEntry`](LinuxError::No64BitEntry); `relocatable_kernel` non-zero
//!   [`NotRelocatable`](LinuxError::NotRelocatable).
//! - `kernel_alignment` a power of two, at least 4 KiB, and at least `1 << min_alignment` when
//!   `min_alignment` is set [`BadKernelAlignment`](LinuxError::BadKernelAlignment).
//! - The protected-mode kernel, from `(setup_sects + 1) * 512` (`setup_sects` 0 meaning 4) to the
//!   end of the file, non-empty [`MissingKernel`](LinuxError::MissingKernel), and no larger than
//!   `init_size` [`InitSizeTooSmall`](LinuxError::InitSizeTooSmall).
//! - The protected-mode kernel at least `syssize * 16` bytes long (else the file is truncated)
//!   [`KernelTruncated`](LinuxError::KernelTruncated).
//!
//! [`KernelHeader::place_kernel`] (and [`BzImage::place_kernel`]) puts the kernel where it will
//! run: at or above `pref_address`, aligned to `kernel_alignment`, with its whole `init_size`
//! window in one free range below 4 GiB. It fails with
//! [`KernelTooLarge`](LinuxError::KernelTooLarge) when that window cannot end below 4 GiB from
//! `pref_address` whatever RAM there is, and with
//! [`NoRoomForKernel`](LinuxError::NoRoomForKernel) when no candidate range holds it.
//!
//! What [`build_boot_params`] requires of its [`BootParamsInput`]:
//!
//! - Kernel: load address aligned to `kernel_alignment`
//!   [`UnalignedKernel`](LinuxError::UnalignedKernel); `[load, load + init_size)` not wrapping
//!   [`KernelWraps`](LinuxError::KernelWraps) and, without `XLF_CAN_BE_LOADED_ABOVE_4G`, below
//!   4 GiB [`KernelAbove4G`](LinuxError::KernelAbove4G).
//! - Command line: at most `cmdline_size` bytes before the NUL
//!   [`CmdlineTooLong`](LinuxError::CmdlineTooLong); the string and its NUL not wrapping
//!   [`CmdlineWraps`](LinuxError::CmdlineWraps), below 4 GiB without
//!   `XLF_CAN_BE_LOADED_ABOVE_4G` [`CmdlineAbove4G`](LinuxError::CmdlineAbove4G), and outside the
//!   kernel's `init_size` window [`CmdlineOverlapsKernel`](LinuxError::CmdlineOverlapsKernel).
//! - Initrd (if any): non-empty [`EmptyInitrd`](LinuxError::EmptyInitrd), not wrapping
//!   [`InitrdWraps`](LinuxError::InitrdWraps); without `XLF_CAN_BE_LOADED_ABOVE_4G`, below 4 GiB
//!   [`InitrdAbove4G`](LinuxError::InitrdAbove4G) with its last byte at most `initrd_addr_max`
//!   [`InitrdAboveAddrMax`](LinuxError::InitrdAboveAddrMax); outside the kernel's `init_size`
//!   window [`InitrdOverlapsKernel`](LinuxError::InitrdOverlapsKernel).
//! - At most [`E820_MAX_ENTRIES`] memory map entries
//!   [`TooManyE820Entries`](LinuxError::TooManyE820Entries).
//!
//! The `boot_params` page itself must lie below 4 GiB unless [`BzImage::can_load_above_4g`]; its
//! address is the caller's, so the caller checks that.
//!
//! Formats (all little-endian, offsets in bytes):
//!
//! ```text
//! bzImage file / boot_params                       boot_params only
//! 0x1F1 setup_sects        u8  (0 means 4)         0x070 acpi_rsdp_addr     u64
//! 0x1FE boot_flag          u16 0xAA55              0x0C0 ext_ramdisk_image  u32
//! 0x200 jump               u8 0xEB, i8 offset      0x0C4 ext_ramdisk_size   u32
//! 0x202 header             "HdrS"                  0x0C8 ext_cmd_line_ptr   u32
//! 0x206 version            u16                     0x1E8 e820_entries       u8
//! 0x210 type_of_loader     u8                      0x1EF sentinel           u8 (left 0)
//! 0x211 loadflags          u8                      0x2D0 e820_table  128 x 20 bytes:
//! 0x214 code32_start       u32                            addr u64, size u64, type u32
//! 0x218 ramdisk_image      u32
//! 0x21C ramdisk_size       u32                     setup_data node
//! 0x228 cmd_line_ptr       u32                     0x00 next u64
//! 0x22C initrd_addr_max    u32                     0x08 type u32
//! 0x230 kernel_alignment   u32                     0x0C len  u32
//! 0x234 relocatable_kernel u8                      0x10 data[len]
//! 0x235 min_alignment      u8  (log2)
//! 0x236 xloadflags         u16
//! 0x238 cmdline_size       u32 (without the NUL)
//! 0x250 setup_data         u64
//! 0x258 pref_address       u64
//! 0x260 init_size          u32
//! ```

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

pub use td_layout::handoff::{E820_ACPI, E820_NVS, E820_RAM, E820_RESERVED, E820_UNUSABLE};

/// The setup-header fields the boot protocol assigns to the boot loader ("write" and "modify"
/// in Documentation/arch/x86/boot.rst), as (file offset, size): vid_mode, type_of_loader,
/// loadflags (all but LOADED_HIGH, see [`normalize_setup_header`]), setup_move_size,
/// code32_start, ramdisk_image, ramdisk_size, bootsect_kludge, heap_end_ptr, ext_loader_ver,
/// ext_loader_type, cmd_line_ptr, hardware_subarch, hardware_subarch_data, setup_data.
pub const LOADER_FIELDS: [(usize, usize); 15] = [
    (0x1FA, 2),
    (0x210, 1),
    (0x211, 1),
    (0x212, 2),
    (0x214, 4),
    (0x218, 4),
    (0x21C, 4),
    (0x220, 4),
    (0x224, 2),
    (0x226, 1),
    (0x227, 1),
    (0x228, 4),
    (0x23C, 4),
    (0x240, 8),
    (0x250, 8),
];

/// Clears, in a bzImage's first bytes (`setup`, at least up to the end of its setup header), the
/// fields that belong to the boot loader ([`LOADER_FIELDS`]); of `loadflags` only LOADED_HIGH is
/// kept. A VMM or boot loader may have written those fields (QEMU's direct boot does), so this is
/// the form of the header that is measured and that `boot_params` starts from: the same kernel
/// file gives the same bytes whoever delivered it. Fields past the end of `setup` are left alone.
pub fn normalize_setup_header(setup: &mut [u8]) {
    for (at, len) in LOADER_FIELDS {
        if let Some(field) = setup.get_mut(at..at + len) {
            if at == LOADFLAGS {
                field[0] &= LOADED_HIGH;
            } else {
                field.fill(0);
            }
        }
    }
}

/// Size of the `boot_params` page.
pub const BOOT_PARAMS_SIZE: usize = 4096;
/// Most entries the `boot_params` E820 table holds.
pub const E820_MAX_ENTRIES: usize = 128;
/// Offset of the 64-bit entry point from the load address of the protected-mode kernel.
pub const ENTRY64_OFFSET: u64 = 0x200;
/// Oldest boot protocol accepted: 2.12, the first with `xloadflags` and the `ext_*` fields.
pub const MIN_PROTOCOL_VERSION: u16 = 0x020C;
/// `type_of_loader` written by [`build_boot_params`]: 0xFF, "undefined", for a boot loader
/// without an assigned ID.
pub const LOADER_TYPE_UNDEFINED: u8 = 0xFF;
/// Smallest `kernel_alignment` accepted (a page).
pub const MIN_KERNEL_ALIGNMENT: u32 = 0x1000;
/// Size of a `setup_data` node header (`next`, `type`, `len`).
pub const SETUP_DATA_HEADER_SIZE: usize = 16;

/// `loadflags` bit: the protected-mode kernel is loaded high (a bzImage).
pub const LOADED_HIGH: u8 = 1 << 0;
/// `xloadflags` bit: the kernel has the 64-bit entry point at 0x200.
pub const XLF_KERNEL_64: u16 = 1 << 0;
/// `xloadflags` bit: the kernel, `boot_params`, command line and initrd may be above 4 GiB.
pub const XLF_CAN_BE_LOADED_ABOVE_4G: u16 = 1 << 1;

/// `setup_data` type: more E820 entries.
pub const SETUP_E820_EXT: u32 = 1;
/// `setup_data` type: a flattened device tree.
pub const SETUP_DTB: u32 = 2;
/// `setup_data` type: the confidential-computing blob (AMD SEV-SNP `cc_blob_sev_info`).
pub const SETUP_CC_BLOB: u32 = 7;
/// `setup_data` type: seed for the kernel's random number generator.
pub const SETUP_RNG_SEED: u32 = 9;

const FOUR_GIB: u64 = 1 << 32;

// Setup header fields (offsets in the file and in boot_params).
const SETUP_HEADER_START: usize = 0x1F1;
const SETUP_SECTS: usize = 0x1F1;
/// `syssize`: size of the protected-mode kernel in 16-byte units (protocol >= 2.04).
const SYSSIZE: usize = 0x1F4;
const BOOT_FLAG: usize = 0x1FE;
const JUMP: usize = 0x200;
const HEADER: usize = 0x202;
const VERSION: usize = 0x206;
const TYPE_OF_LOADER: usize = 0x210;
const LOADFLAGS: usize = 0x211;
const CODE32_START: usize = 0x214;
const RAMDISK_IMAGE: usize = 0x218;
const RAMDISK_SIZE: usize = 0x21C;
const CMD_LINE_PTR: usize = 0x228;
const INITRD_ADDR_MAX: usize = 0x22C;
const KERNEL_ALIGNMENT: usize = 0x230;
const RELOCATABLE_KERNEL: usize = 0x234;
const MIN_ALIGNMENT: usize = 0x235;
const XLOADFLAGS: usize = 0x236;
const CMDLINE_SIZE: usize = 0x238;
const SETUP_DATA: usize = 0x250;
const PREF_ADDRESS: usize = 0x258;
const INIT_SIZE: usize = 0x260;

// boot_params fields outside the setup header.
const ACPI_RSDP_ADDR: usize = 0x070;
const EXT_RAMDISK_IMAGE: usize = 0x0C0;
const EXT_RAMDISK_SIZE: usize = 0x0C4;
const EXT_CMD_LINE_PTR: usize = 0x0C8;
const E820_ENTRIES: usize = 0x1E8;
const E820_TABLE: usize = 0x2D0;
const E820_ENTRY_SIZE: usize = 20;

const BOOT_FLAG_MAGIC: u16 = 0xAA55;
const SHORT_JUMP: u8 = 0xEB;
const HDRS_MAGIC: [u8; 4] = *b"HdrS";
const SECTOR_SIZE: usize = 512;
/// Smallest setup header end accepted: just past `init_size`, the last field read here.
pub const MIN_HEADER_END: usize = INIT_SIZE + 4;
/// Largest setup header end: 0x202 + 0x7F, the reach of a forward short jump.
pub const MAX_HEADER_END: usize = HEADER + 0x7F;

/// The setup header (`struct setup_header`, Documentation/arch/x86/boot.rst) from 0x1F1 up to
/// and including `init_size`, the last field read here ([`MIN_HEADER_END`]); the same bytes at
/// the same offsets in the file and in `boot_params`.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct SetupHeader {
    setup_sects: u8,
    root_flags: U16,
    syssize: U32,
    ram_size: U16,
    vid_mode: U16,
    root_dev: U16,
    boot_flag: U16,
    /// The short jump (0xEB) and its signed offset from 0x202, the end of the header.
    jump: [u8; 2],
    /// `"HdrS"`, read as a u32 for the error.
    header: U32,
    version: U16,
    realmode_swtch: U32,
    start_sys_seg: U16,
    kernel_version: U16,
    type_of_loader: u8,
    loadflags: u8,
    setup_move_size: U16,
    code32_start: U32,
    ramdisk_image: U32,
    ramdisk_size: U32,
    bootsect_kludge: U32,
    heap_end_ptr: U16,
    ext_loader_ver: u8,
    ext_loader_type: u8,
    cmd_line_ptr: U32,
    initrd_addr_max: U32,
    kernel_alignment: U32,
    relocatable_kernel: u8,
    min_alignment: u8,
    xloadflags: U16,
    cmdline_size: U32,
    hardware_subarch: U32,
    hardware_subarch_data: U64,
    payload_offset: U32,
    payload_length: U32,
    setup_data: U64,
    pref_address: U64,
    init_size: U32,
}

/// One entry of the `boot_params` E820 table (`struct boot_e820_entry`, packed).
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct BootE820Entry {
    addr: U64,
    size: U64,
    kind: U32,
}

/// The `boot_params` page (`struct boot_params`, arch/x86/include/uapi/asm/bootparam.h), with
/// the fields this module writes named and the rest opaque. The setup header may run past
/// `hdr` (up to [`MAX_HEADER_END`]) into `_pad_after_hdr`.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct BootParams {
    _pad_0: [u8; ACPI_RSDP_ADDR],
    acpi_rsdp_addr: U64,
    _pad_1: [u8; EXT_RAMDISK_IMAGE - (ACPI_RSDP_ADDR + 8)],
    ext_ramdisk_image: U32,
    ext_ramdisk_size: U32,
    ext_cmd_line_ptr: U32,
    _pad_2: [u8; E820_ENTRIES - (EXT_CMD_LINE_PTR + 4)],
    e820_entries: u8,
    /// Includes the `sentinel` byte at 0x1EF, left 0.
    _pad_3: [u8; SETUP_HEADER_START - (E820_ENTRIES + 1)],
    hdr: SetupHeader,
    _pad_after_hdr: [u8; E820_TABLE - MIN_HEADER_END],
    e820_table: [BootE820Entry; E820_MAX_ENTRIES],
    _pad_4: [u8; BOOT_PARAMS_SIZE - (E820_TABLE + E820_MAX_ENTRIES * E820_ENTRY_SIZE)],
}

/// A `setup_data` node header (`struct setup_data` without its data).
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct SetupDataHeader {
    next: U64,
    kind: U32,
    len: U32,
}

// Every field at the offset of the format table in the module documentation.
const _: () = {
    use core::mem::{offset_of, size_of};
    const fn at(field: usize) -> usize {
        SETUP_HEADER_START + field
    }
    assert!(at(offset_of!(SetupHeader, setup_sects)) == SETUP_SECTS);
    assert!(at(offset_of!(SetupHeader, syssize)) == SYSSIZE);
    assert!(at(offset_of!(SetupHeader, vid_mode)) == 0x1FA);
    assert!(at(offset_of!(SetupHeader, boot_flag)) == BOOT_FLAG);
    assert!(at(offset_of!(SetupHeader, jump)) == JUMP);
    assert!(at(offset_of!(SetupHeader, header)) == HEADER);
    assert!(at(offset_of!(SetupHeader, version)) == VERSION);
    assert!(at(offset_of!(SetupHeader, kernel_version)) == 0x20E);
    assert!(at(offset_of!(SetupHeader, type_of_loader)) == TYPE_OF_LOADER);
    assert!(at(offset_of!(SetupHeader, loadflags)) == LOADFLAGS);
    assert!(at(offset_of!(SetupHeader, code32_start)) == CODE32_START);
    assert!(at(offset_of!(SetupHeader, ramdisk_image)) == RAMDISK_IMAGE);
    assert!(at(offset_of!(SetupHeader, ramdisk_size)) == RAMDISK_SIZE);
    assert!(at(offset_of!(SetupHeader, heap_end_ptr)) == 0x224);
    assert!(at(offset_of!(SetupHeader, cmd_line_ptr)) == CMD_LINE_PTR);
    assert!(at(offset_of!(SetupHeader, initrd_addr_max)) == INITRD_ADDR_MAX);
    assert!(at(offset_of!(SetupHeader, kernel_alignment)) == KERNEL_ALIGNMENT);
    assert!(at(offset_of!(SetupHeader, relocatable_kernel)) == RELOCATABLE_KERNEL);
    assert!(at(offset_of!(SetupHeader, min_alignment)) == MIN_ALIGNMENT);
    assert!(at(offset_of!(SetupHeader, xloadflags)) == XLOADFLAGS);
    assert!(at(offset_of!(SetupHeader, cmdline_size)) == CMDLINE_SIZE);
    assert!(at(offset_of!(SetupHeader, hardware_subarch)) == 0x23C);
    assert!(at(offset_of!(SetupHeader, hardware_subarch_data)) == 0x240);
    assert!(at(offset_of!(SetupHeader, setup_data)) == SETUP_DATA);
    assert!(at(offset_of!(SetupHeader, pref_address)) == PREF_ADDRESS);
    assert!(at(offset_of!(SetupHeader, init_size)) == INIT_SIZE);
    assert!(at(size_of::<SetupHeader>()) == MIN_HEADER_END);

    assert!(size_of::<BootE820Entry>() == E820_ENTRY_SIZE);
    assert!(offset_of!(BootE820Entry, size) == 8);
    assert!(offset_of!(BootE820Entry, kind) == 16);

    assert!(size_of::<BootParams>() == BOOT_PARAMS_SIZE);
    assert!(offset_of!(BootParams, acpi_rsdp_addr) == ACPI_RSDP_ADDR);
    assert!(offset_of!(BootParams, ext_ramdisk_image) == EXT_RAMDISK_IMAGE);
    assert!(offset_of!(BootParams, ext_ramdisk_size) == EXT_RAMDISK_SIZE);
    assert!(offset_of!(BootParams, ext_cmd_line_ptr) == EXT_CMD_LINE_PTR);
    assert!(offset_of!(BootParams, e820_entries) == E820_ENTRIES);
    assert!(offset_of!(BootParams, hdr) == SETUP_HEADER_START);
    assert!(offset_of!(BootParams, e820_table) == E820_TABLE);
    // The setup header, whatever its length, ends before the E820 table.
    assert!(MAX_HEADER_END <= E820_TABLE);

    assert!(size_of::<SetupDataHeader>() == SETUP_DATA_HEADER_SIZE);
    assert!(offset_of!(SetupDataHeader, kind) == 8);
    assert!(offset_of!(SetupDataHeader, len) == 12);
};

/// Why a bzImage was refused, or its kernel could not be placed or handed its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinuxError {
    /// The file ends before the setup header does.
    TruncatedHeader {
        /// Bytes the header needs (its end offset).
        needed: usize,
        /// Bytes in the file.
        len: usize,
    },
    /// `boot_flag` (0x1FE) is not 0xAA55.
    BadBootFlag(u16),
    /// The byte at 0x200 is not a short jump (0xEB), so the header length is unknown.
    BadJump(u8),
    /// The 4 bytes at 0x202 are not `"HdrS"`.
    BadMagic(u32),
    /// The boot protocol version is below [`MIN_PROTOCOL_VERSION`] (2.12).
    UnsupportedVersion(u16),
    /// The setup header end (0x202 + the signed byte at 0x201) is outside
    /// [`MIN_HEADER_END`]`..=`[`MAX_HEADER_END`].
    BadHeaderLength {
        /// The header end offset the jump gives (0x202 + the byte as a signed number).
        end: isize,
    },
    /// `loadflags` lacks `LOADED_HIGH`: not a bzImage.
    NotLoadedHigh {
        /// The `loadflags` value.
        loadflags: u8,
    },
    /// `xloadflags` lacks `XLF_KERNEL_64`: the kernel has no 64-bit entry point.
    No64BitEntry {
        /// The `xloadflags` value.
        xloadflags: u16,
    },
    /// `relocatable_kernel` is 0: the kernel can only run at `pref_address`.
    NotRelocatable,
    /// `kernel_alignment` is not a power of two, is below 4 KiB, or is below
    /// `1 << min_alignment`.
    BadKernelAlignment {
        /// The `kernel_alignment` value.
        align: u32,
        /// The `min_alignment` value (log2; 0 means unset).
        min_alignment: u8,
    },
    /// The protected-mode kernel, from `(setup_sects + 1) * 512` to the end of the file, is empty
    /// or starts past the end of the file.
    MissingKernel {
        /// File offset where the protected-mode kernel would start.
        offset: usize,
        /// Bytes in the file.
        len: usize,
    },
    /// The protected-mode kernel is shorter than `syssize` says: the file is truncated.
    KernelTruncated {
        /// Bytes `syssize` promises (`syssize * 16`).
        expected: u64,
        /// Bytes present after the setup sectors.
        len: u64,
    },
    /// `init_size` is smaller than the protected-mode kernel.
    InitSizeTooSmall {
        /// The `init_size` value.
        init_size: u32,
        /// Bytes of the protected-mode kernel.
        kernel_size: u64,
    },
    /// No candidate range holds the kernel's window: `init_size` bytes at an address aligned to
    /// `kernel_alignment`, at or above `pref_address`, ending at or below 4 GiB.
    NoRoomForKernel {
        /// Bytes needed (`init_size`).
        size: u64,
        /// Alignment needed (`kernel_alignment`).
        align: u64,
        /// Lowest address the window may start at (`pref_address`).
        floor: u64,
        /// Bytes of the largest such window the candidates offer (0: none).
        largest: u64,
    },
    /// The kernel's window, `init_size` bytes from `pref_address` (aligned up to
    /// `kernel_alignment`), does not end at or below 4 GiB: no RAM the firmware serves can hold
    /// it.
    KernelTooLarge {
        /// Bytes needed (`init_size`).
        size: u64,
        /// Lowest address the window may start at (`pref_address`).
        floor: u64,
        /// Alignment needed (`kernel_alignment`).
        align: u64,
    },
    /// The kernel load address is not a multiple of `kernel_alignment`.
    UnalignedKernel {
        /// The load address.
        load: u64,
        /// The `kernel_alignment` value.
        align: u64,
    },
    /// `[load, load + init_size)` wraps the end of the address space.
    KernelWraps {
        /// The load address.
        load: u64,
        /// The `init_size` value.
        size: u64,
    },
    /// The kernel's `init_size` window reaches above 4 GiB, which the kernel does not support.
    KernelAbove4G {
        /// The load address.
        load: u64,
        /// The `init_size` value.
        size: u64,
    },
    /// The command line is longer than the kernel's `cmdline_size`.
    CmdlineTooLong {
        /// Bytes of the command line, without the NUL.
        len: u32,
        /// The `cmdline_size` value (most bytes before the NUL).
        max: u32,
    },
    /// The command line and its NUL wrap the end of the address space.
    CmdlineWraps {
        /// The command line address.
        addr: u64,
    },
    /// The command line reaches above 4 GiB, which the kernel does not support.
    CmdlineAbove4G {
        /// The command line address.
        addr: u64,
    },
    /// The command line lies inside the kernel's `init_size` window.
    CmdlineOverlapsKernel {
        /// The command line address.
        addr: u64,
    },
    /// An initrd of 0 bytes was given (pass `None` for no initrd).
    EmptyInitrd {
        /// The initrd address.
        addr: u64,
    },
    /// The initrd wraps the end of the address space.
    InitrdWraps {
        /// The initrd address.
        addr: u64,
        /// The initrd size.
        size: u64,
    },
    /// The initrd reaches above 4 GiB, which the kernel does not support.
    InitrdAbove4G {
        /// The initrd address.
        addr: u64,
        /// The initrd size.
        size: u64,
    },
    /// The initrd's last byte is above the kernel's `initrd_addr_max`.
    InitrdAboveAddrMax {
        /// Address of the initrd's last byte.
        last: u64,
        /// The `initrd_addr_max` value (highest address the initrd may occupy).
        max: u32,
    },
    /// The initrd lies inside the kernel's `init_size` window.
    InitrdOverlapsKernel {
        /// The initrd address.
        addr: u64,
        /// The initrd size.
        size: u64,
    },
    /// More E820 entries than `boot_params` holds ([`E820_MAX_ENTRIES`]).
    TooManyE820Entries(usize),
    /// The `setup_data` payload does not fit its 32-bit length field.
    SetupDataTooLarge {
        /// Bytes of payload.
        len: usize,
    },
    /// The buffer is smaller than the `setup_data` node.
    SetupDataBufferTooSmall {
        /// Bytes the node needs (16 + payload).
        needed: usize,
        /// Bytes the buffer has.
        available: usize,
    },
}

impl core::fmt::Display for LinuxError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::TruncatedHeader { needed, len } => write!(
                f,
                "bzImage: file of {len:#x} bytes ends before the setup header (needs {needed:#x})"
            ),
            Self::BadBootFlag(v) => write!(f, "bzImage: boot flag is {v:#06x}, not 0xaa55"),
            Self::BadJump(op) => write!(
                f,
                "bzImage: byte at 0x200 is {op:#04x}, not a short jump (0xeb)"
            ),
            Self::BadMagic(m) => write!(
                f,
                "bzImage: setup header magic is {m:#010x}, not \"HdrS\""
            ),
            Self::UnsupportedVersion(v) => write!(
                f,
                "bzImage: boot protocol {}.{:02} is older than 2.12 (no 64-bit entry flag)",
                v >> 8,
                v & 0xff
            ),
            Self::BadHeaderLength { end } => write!(
                f,
                "bzImage: setup header end {end:#x} is outside {MIN_HEADER_END:#x}..={MAX_HEADER_END:#x}"
            ),
            Self::NotLoadedHigh { loadflags } => write!(
                f,
                "bzImage: loadflags {loadflags:#04x} lack LOADED_HIGH (not a bzImage)"
            ),
            Self::No64BitEntry { xloadflags } => write!(
                f,
                "bzImage: xloadflags {xloadflags:#06x} lack XLF_KERNEL_64 (no 64-bit entry point)"
            ),
            Self::NotRelocatable => write!(f, "bzImage: kernel is not relocatable"),
            Self::BadKernelAlignment { align, min_alignment } => write!(
                f,
                "bzImage: kernel alignment {align:#x} is not a power of two of at least 4 KiB and 2^{min_alignment}"
            ),
            Self::MissingKernel { offset, len } => write!(
                f,
                "bzImage: no protected-mode kernel at {offset:#x} in a file of {len:#x} bytes"
            ),
            Self::KernelTruncated { expected, len } => write!(
                f,
                "bzImage: truncated: the protected-mode kernel has {len} bytes, syssize says {expected}"
            ),
            Self::InitSizeTooSmall {
                init_size,
                kernel_size,
            } => write!(
                f,
                "bzImage: init_size {init_size:#x} is smaller than the {kernel_size:#x}-byte kernel"
            ),
            Self::NoRoomForKernel {
                size,
                align,
                floor,
                largest,
            } => write!(
                f,
                "bzImage: the kernel needs {size:#x} bytes (init_size) of free RAM at or above \
                 pref_address {floor:#x}, aligned to {align:#x}, below 4 GiB; the largest such \
                 window is {largest:#x} bytes"
            ),
            Self::KernelTooLarge { size, floor, align } => write!(
                f,
                "bzImage: init_size {size:#x} from pref_address {floor:#x} (aligned to {align:#x}) \
                 reaches past 4 GiB: more than the RAM below 4 GiB the firmware serves"
            ),
            Self::UnalignedKernel { load, align } => write!(
                f,
                "bzImage: kernel load address {load:#x} is not aligned to {align:#x}"
            ),
            Self::KernelWraps { load, size } => write!(
                f,
                "bzImage: kernel of {size:#x} bytes at {load:#x} wraps the address space"
            ),
            Self::KernelAbove4G { load, size } => write!(
                f,
                "bzImage: kernel of {size:#x} bytes at {load:#x} reaches above 4 GiB, which it does not support"
            ),
            Self::CmdlineTooLong { len, max } => write!(
                f,
                "bzImage: command line of {len} bytes exceeds the kernel's limit of {max}"
            ),
            Self::CmdlineWraps { addr } => write!(
                f,
                "bzImage: command line at {addr:#x} wraps the address space"
            ),
            Self::CmdlineAbove4G { addr } => write!(
                f,
                "bzImage: command line at {addr:#x} reaches above 4 GiB, which the kernel does not support"
            ),
            Self::CmdlineOverlapsKernel { addr } => write!(
                f,
                "bzImage: command line at {addr:#x} overlaps the kernel's init_size window"
            ),
            Self::EmptyInitrd { addr } => write!(f, "bzImage: initrd at {addr:#x} is empty"),
            Self::InitrdWraps { addr, size } => write!(
                f,
                "bzImage: initrd of {size:#x} bytes at {addr:#x} wraps the address space"
            ),
            Self::InitrdAbove4G { addr, size } => write!(
                f,
                "bzImage: initrd of {size:#x} bytes at {addr:#x} reaches above 4 GiB, which the kernel does not support"
            ),
            Self::InitrdAboveAddrMax { last, max } => write!(
                f,
                "bzImage: initrd ends at {last:#x}, above the kernel's initrd_addr_max {max:#x}"
            ),
            Self::InitrdOverlapsKernel { addr, size } => write!(
                f,
                "bzImage: initrd of {size:#x} bytes at {addr:#x} overlaps the kernel's init_size window"
            ),
            Self::TooManyE820Entries(n) => write!(
                f,
                "bzImage: {n} E820 entries (boot_params holds {E820_MAX_ENTRIES})"
            ),
            Self::SetupDataTooLarge { len } => write!(
                f,
                "bzImage: setup_data payload of {len:#x} bytes does not fit a 32-bit length"
            ),
            Self::SetupDataBufferTooSmall { needed, available } => write!(
                f,
                "bzImage: setup_data node needs {needed:#x} bytes but the buffer holds {available:#x}"
            ),
        }
    }
}

/// Low and high 32 bits of `v`.
fn split(v: u64) -> (U32, U32) {
    (
        U32::new((v & 0xffff_ffff) as u32),
        U32::new((v >> 32) as u32),
    )
}

/// Whether the non-empty ranges `[a, a_end)` and `[b, b_end)` overlap.
fn overlaps(a: u64, a_end: u64, b: u64, b_end: u64) -> bool {
    a < b_end && b < a_end
}

/// The 64-bit entry point of a kernel whose protected-mode part is at `load`: `load + 0x200`.
/// `None` if that wraps.
pub fn entry64(load: u64) -> Option<u64> {
    load.checked_add(ENTRY64_OFFSET)
}

/// The setup-header fields that decide where a kernel goes and what it accepts, without the
/// file's bytes. [`parse`] ([`BzImage::header`]) and [`parse_header`] produce it from a checked
/// header; its methods are total on any field values all the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelHeader {
    /// Boot protocol version, `(major << 8) | minor`.
    pub version: u16,
    /// Bytes of contiguous memory, from the load address, that the kernel needs while it
    /// decompresses and starts.
    pub init_size: u32,
    /// Alignment of the load address (a power of two).
    pub kernel_alignment: u32,
    /// Minimum alignment the kernel needs, as a power of two (0: not given).
    pub min_alignment: u8,
    /// Preferred load address: for a relocatable kernel, `LOAD_PHYSICAL_ADDR`, the lowest
    /// address it decompresses to (0: none).
    pub pref_address: u64,
    /// The `xloadflags` field.
    pub xloadflags: u16,
    /// Highest address the initrd may occupy, when the kernel cannot take one above 4 GiB.
    pub initrd_addr_max: u32,
    /// Most bytes of command line, not counting the terminating NUL.
    pub cmdline_size: u32,
}

impl KernelHeader {
    /// Whether the kernel, `boot_params`, command line and initrd may lie above 4 GiB
    /// (`XLF_CAN_BE_LOADED_ABOVE_4G`).
    pub fn can_load_above_4g(&self) -> bool {
        self.xloadflags & XLF_CAN_BE_LOADED_ABOVE_4G != 0
    }

    /// Picks a load address for the protected-mode kernel in `candidates`, free RAM ranges given
    /// as `(base, len)`: the lowest address that is at or above
    /// [`pref_address`](Self::pref_address), a multiple of
    /// [`kernel_alignment`](Self::kernel_alignment), and such that `[addr, addr + init_size)`
    /// lies inside one candidate and ends at or below 4 GiB. The 64-bit entry point is then
    /// [`entry64`]`(addr)`.
    ///
    /// Never below `pref_address`: a relocatable kernel loaded lower decompresses itself to
    /// `pref_address` anyway (arch/x86/boot/compressed/head_64.S: the output address is the
    /// load address aligned up to `kernel_alignment`, but at least `LOAD_PHYSICAL_ADDR`), into
    /// memory outside the window the firmware reserved, mapped and measured around.
    ///
    /// Always below 4 GiB, even with `XLF_CAN_BE_LOADED_ABOVE_4G`: the firmware serves (accepts,
    /// maps) only RAM below 4 GiB for the kernel today.
    ///
    /// Errors: [`BadKernelAlignment`](LinuxError::BadKernelAlignment) if `kernel_alignment` is
    /// not a power of two; [`KernelTooLarge`](LinuxError::KernelTooLarge) if the window cannot
    /// end below 4 GiB from `pref_address` (e.g. `init_size` 0xFFFFF000);
    /// [`NoRoomForKernel`](LinuxError::NoRoomForKernel), with the largest window found, if no
    /// candidate holds it.
    pub fn place_kernel(&self, candidates: &[(u64, u64)]) -> Result<u64, LinuxError> {
        let align = u64::from(self.kernel_alignment);
        if !align.is_power_of_two() {
            return Err(LinuxError::BadKernelAlignment {
                align: self.kernel_alignment,
                min_alignment: self.min_alignment,
            });
        }
        let size = u64::from(self.init_size);
        let floor = self.pref_address;
        let fits_below_4g = floor
            .checked_next_multiple_of(align)
            .and_then(|start| start.checked_add(size))
            .is_some_and(|end| end <= PLACEMENT_LIMIT);
        if !fits_below_4g {
            return Err(LinuxError::KernelTooLarge { size, floor, align });
        }
        let mut best: Option<u64> = None;
        let mut largest = 0u64;
        for &(base, len) in candidates {
            let end = base.saturating_add(len).min(PLACEMENT_LIMIT);
            let Some(start) = base.max(floor).checked_next_multiple_of(align) else {
                continue;
            };
            let Some(room) = end.checked_sub(start) else {
                continue;
            };
            largest = largest.max(room);
            if room >= size && best.is_none_or(|b| start < b) {
                best = Some(start);
            }
        }
        best.ok_or(LinuxError::NoRoomForKernel {
            size,
            align,
            floor,
            largest,
        })
    }
}

/// Highest address (exclusive) a kernel window may reach when the firmware places it: 4 GiB,
/// the end of the RAM it serves the kernel from.
pub const PLACEMENT_LIMIT: u64 = FOUR_GIB;

/// A validated bzImage.
#[derive(Clone, Copy)]
pub struct BzImage<'a> {
    bytes: &'a [u8],
    header_end: usize,
    kernel_offset: usize,
    setup_sects: u8,
    version: u16,
    loadflags: u8,
    xloadflags: u16,
    init_size: u32,
    kernel_alignment: u32,
    min_alignment: u8,
    pref_address: u64,
    initrd_addr_max: u32,
    cmdline_size: u32,
}

impl core::fmt::Debug for BzImage<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // The file bytes are left out: they are megabytes.
        f.debug_struct("BzImage")
            .field("len", &self.bytes.len())
            .field("version", &self.version)
            .field("setup_sects", &self.setup_sects)
            .field("header_end", &self.header_end)
            .field("loadflags", &self.loadflags)
            .field("xloadflags", &self.xloadflags)
            .field("init_size", &self.init_size)
            .field("kernel_alignment", &self.kernel_alignment)
            .field("min_alignment", &self.min_alignment)
            .field("pref_address", &self.pref_address)
            .field("initrd_addr_max", &self.initrd_addr_max)
            .field("cmdline_size", &self.cmdline_size)
            .finish()
    }
}

/// Parses and validates `kernel` as a relocatable 64-bit bzImage (boot protocol 2.12 or later).
/// See the module documentation for what is checked.
pub fn parse(kernel: &[u8]) -> Result<BzImage<'_>, LinuxError> {
    parse_impl(kernel, kernel.len())
}

/// Applies every check of [`parse`] to a bzImage of `file_len` bytes of which only the first
/// bytes, `head`, are at hand (they must include the setup header, at most
/// [`MAX_HEADER_END`] bytes): for a caller that streams the rest, e.g. into a hash. Returns the
/// kernel's `cmdline_size`.
pub fn check_header(head: &[u8], file_len: usize) -> Result<u32, LinuxError> {
    parse_header(head, file_len).map(|h| h.cmdline_size)
}

/// Like [`check_header`], but returns the header fields placement and `boot_params` depend on:
/// what a host needs to lay out a boot as the firmware will ([`KernelHeader::place_kernel`]).
pub fn parse_header(head: &[u8], file_len: usize) -> Result<KernelHeader, LinuxError> {
    parse_impl(head, file_len).map(|bz| bz.header())
}

// `kernel` holds at least the setup header; `len` is the whole file's length.
fn parse_impl(kernel: &[u8], len: usize) -> Result<BzImage<'_>, LinuxError> {
    if len < MIN_HEADER_END || kernel.len() < MIN_HEADER_END {
        return Err(LinuxError::TruncatedHeader {
            needed: MIN_HEADER_END,
            len: len.min(kernel.len()),
        });
    }
    // `kernel` holds at least MIN_HEADER_END bytes, the end of `SetupHeader`.
    let h = kernel
        .get(SETUP_HEADER_START..)
        .and_then(|b| SetupHeader::ref_from_prefix(b).ok())
        .map(|(h, _)| h)
        .ok_or(LinuxError::TruncatedHeader {
            needed: MIN_HEADER_END,
            len: len.min(kernel.len()),
        })?;
    let boot_flag = h.boot_flag.get();
    if boot_flag != BOOT_FLAG_MAGIC {
        return Err(LinuxError::BadBootFlag(boot_flag));
    }
    let [jump, jump_offset] = h.jump;
    if jump != SHORT_JUMP {
        return Err(LinuxError::BadJump(jump));
    }
    if h.header.as_bytes() != HDRS_MAGIC {
        return Err(LinuxError::BadMagic(h.header.get()));
    }
    let version = h.version.get();
    if version < MIN_PROTOCOL_VERSION {
        return Err(LinuxError::UnsupportedVersion(version));
    }
    // The jump's operand is a signed offset from 0x202.
    let jump_offset = jump_offset as i8;
    let end = (HEADER as isize).saturating_add(isize::from(jump_offset));
    let header_end = usize::try_from(end)
        .ok()
        .filter(|e| (MIN_HEADER_END..=MAX_HEADER_END).contains(e))
        .ok_or(LinuxError::BadHeaderLength { end })?;
    if header_end > len || header_end > kernel.len() {
        return Err(LinuxError::TruncatedHeader {
            needed: header_end,
            len: len.min(kernel.len()),
        });
    }
    let loadflags = h.loadflags;
    if loadflags & LOADED_HIGH == 0 {
        return Err(LinuxError::NotLoadedHigh { loadflags });
    }
    let xloadflags = h.xloadflags.get();
    if xloadflags & XLF_KERNEL_64 == 0 {
        return Err(LinuxError::No64BitEntry { xloadflags });
    }
    if h.relocatable_kernel == 0 {
        return Err(LinuxError::NotRelocatable);
    }
    let align = h.kernel_alignment.get();
    let min_alignment = h.min_alignment;
    let min_align = 1u64.checked_shl(u32::from(min_alignment)).unwrap_or(0);
    let min_ok = min_alignment == 0 || (min_align != 0 && u64::from(align) >= min_align);
    if !align.is_power_of_two() || align < MIN_KERNEL_ALIGNMENT || !min_ok {
        return Err(LinuxError::BadKernelAlignment {
            align,
            min_alignment,
        });
    }
    let raw_sects = h.setup_sects;
    let setup_sects = if raw_sects == 0 { 4 } else { raw_sects };
    // At most 256 * 512: cannot overflow.
    let kernel_offset = (usize::from(setup_sects) + 1) * SECTOR_SIZE;
    if kernel_offset >= len {
        return Err(LinuxError::MissingKernel {
            offset: kernel_offset,
            len,
        });
    }
    let kernel_size = (len - kernel_offset) as u64;
    // Signed kernels carry a signature after the syssize bytes, so only shorter is an error.
    let expected = u64::from(h.syssize.get()) * 16;
    if kernel_size < expected {
        return Err(LinuxError::KernelTruncated {
            expected,
            len: kernel_size,
        });
    }
    let init_size = h.init_size.get();
    if u64::from(init_size) < kernel_size {
        return Err(LinuxError::InitSizeTooSmall {
            init_size,
            kernel_size,
        });
    }
    Ok(BzImage {
        bytes: kernel,
        header_end,
        kernel_offset,
        setup_sects,
        version,
        loadflags,
        xloadflags,
        init_size,
        kernel_alignment: align,
        min_alignment,
        pref_address: h.pref_address.get(),
        initrd_addr_max: h.initrd_addr_max.get(),
        cmdline_size: h.cmdline_size.get(),
    })
}

impl<'a> BzImage<'a> {
    /// Boot protocol version, `(major << 8) | minor` (at least 0x020C).
    pub fn version(&self) -> u16 {
        self.version
    }

    /// Setup sectors after the boot sector (a stored 0 reads as 4).
    pub fn setup_sects(&self) -> u8 {
        self.setup_sects
    }

    /// The protected-mode kernel: the file from `(setup_sects + 1) * 512` to its end. This is
    /// what is copied to the load address.
    pub fn kernel(&self) -> &'a [u8] {
        self.bytes.get(self.kernel_offset..).unwrap_or(&[])
    }

    /// Bytes of contiguous memory, from the load address, that the kernel needs while it
    /// decompresses and starts (at least [`kernel`](Self::kernel)'s length).
    pub fn init_size(&self) -> u32 {
        self.init_size
    }

    /// Alignment of the load address (a power of two, at least 4 KiB).
    pub fn kernel_alignment(&self) -> u32 {
        self.kernel_alignment
    }

    /// Minimum alignment the kernel needs, as a power of two (0: not given).
    pub fn min_alignment(&self) -> u8 {
        self.min_alignment
    }

    /// Preferred load address (0: none).
    pub fn pref_address(&self) -> u64 {
        self.pref_address
    }

    /// Highest address the initrd may occupy, when the kernel cannot take one above 4 GiB.
    pub fn initrd_addr_max(&self) -> u32 {
        self.initrd_addr_max
    }

    /// Most bytes of command line, not counting the terminating NUL.
    pub fn cmdline_size(&self) -> u32 {
        self.cmdline_size
    }

    /// The `xloadflags` field.
    pub fn xloadflags(&self) -> u16 {
        self.xloadflags
    }

    /// Whether the kernel, `boot_params`, command line and initrd may lie above 4 GiB
    /// (`XLF_CAN_BE_LOADED_ABOVE_4G`).
    pub fn can_load_above_4g(&self) -> bool {
        self.xloadflags & XLF_CAN_BE_LOADED_ABOVE_4G != 0
    }

    /// The setup header as stored in the file: bytes 0x1F1 up to its end (0x202 + the byte at
    /// 0x201). [`build_boot_params`] copies it to the same offsets of `boot_params`.
    pub fn setup_header(&self) -> &'a [u8] {
        self.bytes
            .get(SETUP_HEADER_START..self.header_end)
            .unwrap_or(&[])
    }

    /// Highest address (exclusive) the kernel's `init_size` window may reach.
    fn address_limit(&self) -> u64 {
        if self.can_load_above_4g() {
            u64::MAX
        } else {
            FOUR_GIB
        }
    }

    /// The header fields without the file's bytes.
    pub fn header(&self) -> KernelHeader {
        KernelHeader {
            version: self.version,
            init_size: self.init_size,
            kernel_alignment: self.kernel_alignment,
            min_alignment: self.min_alignment,
            pref_address: self.pref_address,
            xloadflags: self.xloadflags,
            initrd_addr_max: self.initrd_addr_max,
            cmdline_size: self.cmdline_size,
        }
    }

    /// Picks a load address for the protected-mode kernel in `candidates`, free RAM ranges given
    /// as `(base, len)`: [`KernelHeader::place_kernel`] (at or above `pref_address`, aligned,
    /// the whole `init_size` window in one range below 4 GiB).
    pub fn place_kernel(&self, candidates: &[(u64, u64)]) -> Result<u64, LinuxError> {
        self.header().place_kernel(candidates)
    }
}

/// One entry of the E820 memory map in `boot_params`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct E820Entry {
    /// First address of the range.
    pub addr: u64,
    /// Bytes in the range.
    pub size: u64,
    /// Range type ([`E820_RAM`], [`E820_RESERVED`], [`E820_ACPI`], ...).
    pub kind: u32,
}

/// What [`build_boot_params`] writes into `boot_params`, besides the kernel's setup header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootParamsInput<'a> {
    /// Where the protected-mode kernel is loaded ([`BzImage::place_kernel`]).
    pub kernel_load: u64,
    /// Address of the NUL-terminated command line.
    pub cmdline_addr: u64,
    /// Bytes of the command line, not counting the NUL.
    pub cmdline_len: u32,
    /// The initrd as `(address, size in bytes)`, if any.
    pub initrd: Option<(u64, u64)>,
    /// Address of the ACPI RSDP (0: let the kernel search for it).
    pub acpi_rsdp: u64,
    /// The memory map, at most [`E820_MAX_ENTRIES`] entries.
    pub e820: &'a [E820Entry],
    /// Address of the first `setup_data` node ([`write_setup_data`]), or 0 for none.
    pub setup_data: u64,
}

/// Checks `p` against the kernel's limits (the rules in the module documentation).
fn check_boot_params(bz: &BzImage<'_>, p: &BootParamsInput<'_>) -> Result<(), LinuxError> {
    let align = u64::from(bz.kernel_alignment);
    let load = p.kernel_load;
    let size = u64::from(bz.init_size);
    let limit = bz.address_limit();
    if !load.is_multiple_of(align) {
        return Err(LinuxError::UnalignedKernel { load, align });
    }
    let kernel_end = load
        .checked_add(size)
        .ok_or(LinuxError::KernelWraps { load, size })?;
    if kernel_end > limit {
        return Err(LinuxError::KernelAbove4G { load, size });
    }

    if p.cmdline_len > bz.cmdline_size {
        return Err(LinuxError::CmdlineTooLong {
            len: p.cmdline_len,
            max: bz.cmdline_size,
        });
    }
    let addr = p.cmdline_addr;
    let cmdline_end = addr
        .checked_add(u64::from(p.cmdline_len) + 1)
        .ok_or(LinuxError::CmdlineWraps { addr })?;
    if cmdline_end > limit {
        return Err(LinuxError::CmdlineAbove4G { addr });
    }
    if overlaps(addr, cmdline_end, load, kernel_end) {
        return Err(LinuxError::CmdlineOverlapsKernel { addr });
    }

    if let Some((addr, size)) = p.initrd {
        if size == 0 {
            return Err(LinuxError::EmptyInitrd { addr });
        }
        let end = addr
            .checked_add(size)
            .ok_or(LinuxError::InitrdWraps { addr, size })?;
        if !bz.can_load_above_4g() {
            if end > FOUR_GIB {
                return Err(LinuxError::InitrdAbove4G { addr, size });
            }
            let last = end - 1; // size > 0
            if last > u64::from(bz.initrd_addr_max) {
                return Err(LinuxError::InitrdAboveAddrMax {
                    last,
                    max: bz.initrd_addr_max,
                });
            }
        }
        if overlaps(addr, end, load, kernel_end) {
            return Err(LinuxError::InitrdOverlapsKernel { addr, size });
        }
    }

    if p.e820.len() > E820_MAX_ENTRIES {
        return Err(LinuxError::TooManyE820Entries(p.e820.len()));
    }
    Ok(())
}

/// Fills `out` as the kernel's `boot_params` page. Checks `p` first (see the module
/// documentation); on an error `out` is left unchanged.
///
/// Then zeroes `out`, copies the kernel's setup header to 0x1F1, and writes: `type_of_loader`
/// 0xFF (no assigned loader ID); `loadflags` = `LOADED_HIGH` alone (`QUIET_FLAG` would hide early
/// messages, `KEEP_SEGMENTS` is obsolete, `CAN_USE_HEAP` concerns the real-mode setup code, which
/// the 64-bit entry skips, and `KASLR_FLAG` is the kernel's own); `code32_start` = the load
/// address when it is below 4 GiB, else 0 (the 64-bit entry does not read it); `cmd_line_ptr`
/// and `ext_cmd_line_ptr`; the initrd's `ramdisk_image`, `ramdisk_size` and their `ext_` high
/// halves (all 0 without an initrd); `setup_data`; `acpi_rsdp_addr`; and the E820 table with
/// `e820_entries`. Everything else in the header keeps the kernel's value, and the rest of the
/// page (including the `sentinel` byte at 0x1EF) stays zero.
pub fn build_boot_params(
    out: &mut [u8; BOOT_PARAMS_SIZE],
    bz: &BzImage<'_>,
    p: &BootParamsInput<'_>,
) -> Result<(), LinuxError> {
    check_boot_params(bz, p)?;

    out.fill(0);
    // Start from the normalized header: every field the kernel reads is then either the kernel's
    // own (and measured) or set below by the firmware. The header ends at most at
    // MAX_HEADER_END, inside the page.
    let header = bz.setup_header();
    let header_end = SETUP_HEADER_START + header.len();
    if let Some(dst) = out.get_mut(SETUP_HEADER_START..header_end) {
        dst.copy_from_slice(header);
    }
    if let Some(header) = out.get_mut(..header_end) {
        normalize_setup_header(header);
    }

    let bp: &mut BootParams = zerocopy::transmute_mut!(out);
    bp.hdr.type_of_loader = LOADER_TYPE_UNDEFINED;
    bp.hdr.loadflags = LOADED_HIGH;
    bp.hdr.code32_start = U32::new(u32::try_from(p.kernel_load).unwrap_or(0));

    (bp.hdr.cmd_line_ptr, bp.ext_cmd_line_ptr) = split(p.cmdline_addr);

    let (addr, size) = p.initrd.unwrap_or((0, 0));
    (bp.hdr.ramdisk_image, bp.ext_ramdisk_image) = split(addr);
    (bp.hdr.ramdisk_size, bp.ext_ramdisk_size) = split(size);

    bp.hdr.setup_data = U64::new(p.setup_data);
    bp.acpi_rsdp_addr = U64::new(p.acpi_rsdp);

    // At most 128, checked above.
    bp.e820_entries = p.e820.len() as u8;
    for (slot, e) in bp.e820_table.iter_mut().zip(p.e820) {
        *slot = BootE820Entry {
            addr: U64::new(e.addr),
            size: U64::new(e.size),
            kind: U32::new(e.kind),
        };
    }
    Ok(())
}

/// `cc_blob_sev_info.magic`: "AMDE" (Linux `CC_BLOB_SEV_HDR_MAGIC`).
pub const CC_BLOB_SEV_MAGIC: u32 = 0x4544_4D41;
/// `cc_blob_sev_info.version` as OVMF writes it.
pub const CC_BLOB_SEV_VERSION: u16 = 1;
/// Bytes of `cc_blob_sev_info`.
pub const CC_BLOB_SEV_LEN: usize = 40;

/// `struct cc_blob_sev_info` (Linux `arch/x86/include/asm/sev.h`, OVMF
/// `ConfidentialComputingSevSnpBlob.h`): where an SEV-SNP guest's secrets page and CPUID page
/// are, for the kernel's SNP guest driver and its CPUID handling.
#[derive(IntoBytes, FromBytes, KnownLayout, Immutable, Unaligned, Debug, Clone, Copy)]
#[repr(C)]
struct CcBlobSevInfo {
    magic: U32,
    version: zerocopy::little_endian::U16,
    reserved: zerocopy::little_endian::U16,
    secrets_phys: U64,
    secrets_len: U32,
    rsvd1: U32,
    cpuid_phys: U64,
    cpuid_len: U32,
    rsvd2: U32,
}

const _: () = assert!(core::mem::size_of::<CcBlobSevInfo>() == CC_BLOB_SEV_LEN);

/// The bytes of a `cc_blob_sev_info` naming the secrets page `(address, length)` and the CPUID
/// page `(address, length)`.
pub fn cc_blob_sev_info(secrets: (u64, u32), cpuid: (u64, u32)) -> [u8; CC_BLOB_SEV_LEN] {
    let blob = CcBlobSevInfo {
        magic: U32::new(CC_BLOB_SEV_MAGIC),
        version: CC_BLOB_SEV_VERSION.into(),
        reserved: 0.into(),
        secrets_phys: U64::new(secrets.0),
        secrets_len: U32::new(secrets.1),
        rsvd1: U32::new(0),
        cpuid_phys: U64::new(cpuid.0),
        cpuid_len: U32::new(cpuid.1),
        rsvd2: U32::new(0),
    };
    let mut out = [0u8; CC_BLOB_SEV_LEN];
    out.copy_from_slice(blob.as_bytes());
    out
}

/// The data of a `SETUP_CC_BLOB` node (Linux `struct cc_setup_data`): the blob's address as a
/// u32, so the blob must lie below 4 GiB. `None` otherwise.
pub fn cc_setup_data(blob_address: u64) -> Option<[u8; 4]> {
    u32::try_from(blob_address).ok().map(u32::to_le_bytes)
}

/// Writes a `setup_data` node at the start of `out`: `next` (address of the next node, 0 for the
/// last), `type` = `kind`, `len` = `data.len()`, then `data`. Returns the bytes written
/// (16 + `data.len()`). On an error `out` is left unchanged.
///
/// The kernel walks the list from `boot_params.setup_data` by physical address; the node must
/// stay where the caller says it is until the kernel has read it (mark it reserved in E820).
pub fn write_setup_data(
    out: &mut [u8],
    next: u64,
    kind: u32,
    data: &[u8],
) -> Result<usize, LinuxError> {
    let len =
        u32::try_from(data.len()).map_err(|_| LinuxError::SetupDataTooLarge { len: data.len() })?;
    let needed = SETUP_DATA_HEADER_SIZE
        .checked_add(data.len())
        .ok_or(LinuxError::SetupDataTooLarge { len: data.len() })?;
    let available = out.len();
    let node = out
        .get_mut(..needed)
        .ok_or(LinuxError::SetupDataBufferTooSmall { needed, available })?;
    let header = SetupDataHeader {
        next: U64::new(next),
        kind: U32::new(kind),
        len: U32::new(len),
    };
    // `node` has exactly 16 + `data.len()` bytes.
    if let Some((head, rest)) = node.split_at_mut_checked(SETUP_DATA_HEADER_SIZE) {
        head.copy_from_slice(header.as_bytes());
        rest.copy_from_slice(data);
    }
    Ok(needed)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::vec;
    use std::vec::Vec;

    #[test]
    fn the_cc_blob_is_linuxs_layout() {
        let b = cc_blob_sev_info((0x18_8000, 4096), (0x18_9000, 4096));
        assert_eq!(&b[0..4], b"AMDE");
        assert_eq!(&b[4..8], &[1, 0, 0, 0], "version 1, reserved 0");
        assert_eq!(u64::from_le_bytes(b[8..16].try_into().unwrap()), 0x18_8000);
        assert_eq!(u32::from_le_bytes(b[16..20].try_into().unwrap()), 4096);
        assert_eq!(&b[20..24], &[0; 4]);
        assert_eq!(u64::from_le_bytes(b[24..32].try_into().unwrap()), 0x18_9000);
        assert_eq!(u32::from_le_bytes(b[32..36].try_into().unwrap()), 4096);
        assert_eq!(&b[36..40], &[0; 4]);
        // The node's data is the blob's 32-bit address.
        assert_eq!(cc_setup_data(0x19_2000), Some([0x00, 0x20, 0x19, 0x00]));
        assert_eq!(cc_setup_data(1 << 32), None);
        let mut node = [0u8; 20];
        let data = cc_setup_data(0x19_2000).unwrap();
        assert_eq!(write_setup_data(&mut node, 0, SETUP_CC_BLOB, &data), Ok(20));
        assert_eq!(&node[8..12], &[7, 0, 0, 0]);
        assert_eq!(&node[12..16], &[4, 0, 0, 0]);
    }

    // The synthetic bzImage: a boot sector, 4 setup sectors, a 0x600-byte protected-mode kernel.
    const FILE_LEN: usize = 0x1000;
    const KERNEL_OFFSET: usize = 0xA00;
    const KERNEL_LEN: usize = FILE_LEN - KERNEL_OFFSET;
    const HEADER_END: usize = 0x26C;
    const ALIGN: u64 = 0x20_0000;
    const PREF: u64 = 0x100_0000;
    const INIT: u32 = 0x200_0000;
    const CMDLINE_MAX: u32 = 2047;
    const INITRD_MAX: u32 = 0x7FFF_FFFF;
    const MIB: u64 = 1 << 20;

    // Header fields this module does not name.
    const VID_MODE: usize = 0x1FA;
    const ROOT_DEV: usize = 0x1FC;
    const KERNEL_VERSION: usize = 0x20E;
    const HEAP_END_PTR: usize = 0x224;
    const HANDOVER_OFFSET: usize = 0x264;
    const KERNEL_INFO_OFFSET: usize = 0x268;

    fn put8(b: &mut [u8], at: usize, v: u8) {
        b[at] = v;
    }
    fn put16(b: &mut [u8], at: usize, v: u16) {
        b[at..at + 2].copy_from_slice(&v.to_le_bytes());
    }
    fn put32(b: &mut [u8], at: usize, v: u32) {
        b[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }
    fn put64(b: &mut [u8], at: usize, v: u64) {
        b[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }
    fn get16(b: &[u8], at: usize) -> u16 {
        u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
    }
    fn get32(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }
    fn get64(b: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
    }

    /// A valid bzImage shaped like a current x86-64 kernel's (protocol 2.15).
    fn image() -> Vec<u8> {
        let mut b = vec![0u8; FILE_LEN];
        // Boot sector filler and setup code filler, so that copies are visible.
        for (i, x) in b.iter_mut().enumerate().take(0x1F1) {
            *x = (i as u8) ^ 0x5A;
        }
        put8(&mut b, SETUP_SECTS, 4);
        put32(&mut b, SYSSIZE, (KERNEL_LEN / 16) as u32);
        put16(&mut b, VID_MODE, 0xFFFF);
        put16(&mut b, ROOT_DEV, 0x0801);
        put16(&mut b, BOOT_FLAG, 0xAA55);
        put8(&mut b, JUMP, 0xEB);
        put8(&mut b, JUMP + 1, (HEADER_END - HEADER) as u8);
        b[HEADER..HEADER + 4].copy_from_slice(b"HdrS");
        put16(&mut b, VERSION, 0x020F);
        put16(&mut b, KERNEL_VERSION, 0x0400);
        put8(&mut b, LOADFLAGS, LOADED_HIGH);
        put32(&mut b, CODE32_START, 0x10_0000);
        put16(&mut b, HEAP_END_PTR, 0x5BE0);
        put32(&mut b, INITRD_ADDR_MAX, INITRD_MAX);
        put32(&mut b, KERNEL_ALIGNMENT, ALIGN as u32);
        put8(&mut b, RELOCATABLE_KERNEL, 1);
        put8(&mut b, MIN_ALIGNMENT, 21);
        put16(
            &mut b,
            XLOADFLAGS,
            XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G,
        );
        put32(&mut b, CMDLINE_SIZE, CMDLINE_MAX);
        // A stale setup_data pointer that build_boot_params must replace.
        put64(&mut b, SETUP_DATA, 0xDEAD_BEEF);
        put64(&mut b, PREF_ADDRESS, PREF);
        put32(&mut b, INIT_SIZE, INIT);
        put32(&mut b, HANDOVER_OFFSET, 0x190);
        put32(&mut b, KERNEL_INFO_OFFSET, 0x4_0000);
        // Setup code after the header, then the fake protected-mode kernel.
        for (i, x) in b[HEADER_END..KERNEL_OFFSET].iter_mut().enumerate() {
            *x = (i as u8).wrapping_mul(3);
        }
        for (i, x) in b[KERNEL_OFFSET..].iter_mut().enumerate() {
            *x = (i as u8).wrapping_mul(7).wrapping_add(1);
        }
        b
    }

    /// The image without `XLF_CAN_BE_LOADED_ABOVE_4G`.
    fn image_below_4g() -> Vec<u8> {
        let mut b = image();
        put16(&mut b, XLOADFLAGS, XLF_KERNEL_64);
        b
    }

    fn parse_err(change: impl FnOnce(&mut Vec<u8>)) -> LinuxError {
        let mut b = image();
        change(&mut b);
        parse(&b).unwrap_err()
    }

    const E820: [E820Entry; 3] = [
        E820Entry {
            addr: 0,
            size: 0xA_0000,
            kind: E820_RAM,
        },
        E820Entry {
            addr: 0x10_0000,
            size: 0x7FF0_0000,
            kind: E820_RAM,
        },
        E820Entry {
            addr: 0xFEC0_0000,
            size: 0x1000,
            kind: E820_RESERVED,
        },
    ];

    fn input() -> BootParamsInput<'static> {
        BootParamsInput {
            kernel_load: PREF,
            cmdline_addr: 0x9_0000,
            cmdline_len: 20,
            initrd: Some((0x4000_0000, 0x80_0000)),
            acpi_rsdp: 0xE_0000,
            e820: &E820,
            setup_data: 0x8_0000,
        }
    }

    fn build(b: &[u8], p: &BootParamsInput<'_>) -> Result<[u8; BOOT_PARAMS_SIZE], LinuxError> {
        let bz = parse(b).unwrap();
        let mut out = [0u8; BOOT_PARAMS_SIZE];
        build_boot_params(&mut out, &bz, p).map(|()| out)
    }

    fn build_err(b: &[u8], change: impl FnOnce(&mut BootParamsInput<'static>)) -> LinuxError {
        let mut p = input();
        change(&mut p);
        build(b, &p).unwrap_err()
    }

    #[test]
    fn round_trip() {
        let b = image();
        let bz = parse(&b).unwrap();
        assert_eq!(bz.version(), 0x020F);
        assert_eq!(bz.setup_sects(), 4);
        assert_eq!(bz.kernel(), &b[KERNEL_OFFSET..]);
        assert_eq!(bz.init_size(), INIT);
        assert_eq!(u64::from(bz.kernel_alignment()), ALIGN);
        assert_eq!(bz.min_alignment(), 21);
        assert_eq!(bz.pref_address(), PREF);
        assert_eq!(bz.initrd_addr_max(), INITRD_MAX);
        assert_eq!(bz.cmdline_size(), CMDLINE_MAX);
        assert_eq!(bz.xloadflags(), XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G);
        assert!(bz.can_load_above_4g());
        assert_eq!(bz.setup_header(), &b[0x1F1..HEADER_END]);

        let load = bz.place_kernel(&[(0x10_0000, 64 * MIB)]).unwrap();
        assert_eq!(load, PREF);
        assert_eq!(entry64(load), Some(PREF + 0x200));

        let e820 = [
            E820Entry {
                addr: 0x1_2345_6000,
                size: 0x1_0000_0000,
                kind: E820_RAM,
            },
            E820[0],
            E820[2],
        ];
        let p = BootParamsInput {
            kernel_load: load,
            cmdline_addr: 0x1_0000_2000,
            cmdline_len: 100,
            initrd: Some((0x2_3000_0000, 0x1_2000_0000)),
            acpi_rsdp: 0xF_0010,
            e820: &e820,
            setup_data: 0x1_0000_3000,
        };
        let mut out = [0x55u8; BOOT_PARAMS_SIZE];
        build_boot_params(&mut out, &bz, &p).unwrap();

        // Fields written by the loader.
        assert_eq!(out[0x210], 0xFF);
        assert_eq!(out[0x211], LOADED_HIGH);
        assert_eq!(get32(&out, 0x214), PREF as u32);
        assert_eq!(get32(&out, 0x228), 0x2000);
        assert_eq!(get32(&out, 0x0C8), 1);
        assert_eq!(get32(&out, 0x218), 0x3000_0000);
        assert_eq!(get32(&out, 0x0C0), 2);
        assert_eq!(get32(&out, 0x21C), 0x2000_0000);
        assert_eq!(get32(&out, 0x0C4), 1);
        assert_eq!(get64(&out, 0x070), 0xF_0010);
        assert_eq!(get64(&out, 0x250), 0x1_0000_3000);
        assert_eq!(out[0x1E8], 3);
        for (i, e) in e820.iter().enumerate() {
            let at = 0x2D0 + 20 * i;
            assert_eq!(get64(&out, at), e.addr);
            assert_eq!(get64(&out, at + 8), e.size);
            assert_eq!(get32(&out, at + 16), e.kind);
        }
        // Fields copied from the kernel's header.
        assert_eq!(out[0x1F1], 4);
        // vid_mode is the loader's: normalized to 0.
        assert_eq!(get16(&out, 0x1FA), 0);
        assert_eq!(get16(&out, 0x1FC), 0x0801);
        assert_eq!(get16(&out, 0x1FE), 0xAA55);
        assert_eq!(&out[0x202..0x206], b"HdrS");
        assert_eq!(get16(&out, 0x206), 0x020F);
        assert_eq!(
            get16(&out, 0x224),
            0,
            "heap_end_ptr is the loader's: normalized"
        );
        assert_eq!(get32(&out, 0x22C), INITRD_MAX);
        assert_eq!(u64::from(get32(&out, 0x230)), ALIGN);
        assert_eq!(get16(&out, 0x236), 3);
        assert_eq!(get32(&out, 0x238), CMDLINE_MAX);
        assert_eq!(get64(&out, 0x258), PREF);
        assert_eq!(get32(&out, 0x260), INIT);
        assert_eq!(get32(&out, 0x268), 0x4_0000);
        // Everything else is zero: the header area is the kernel's with the loader's fields
        // patched, and the rest of the page is untouched by anything but the listed fields.
        let mut expected = [0u8; BOOT_PARAMS_SIZE];
        expected[0x1F1..HEADER_END].copy_from_slice(&b[0x1F1..HEADER_END]);
        normalize_setup_header(&mut expected[..HEADER_END]);
        let written: &[(usize, usize)] = &[
            (0x070, 8),
            (0x0C0, 12),
            (0x1E8, 1),
            (0x210, 2),
            (0x214, 12),
            (0x228, 4),
            (0x250, 8),
            (0x2D0, 60),
        ];
        for &(at, len) in written {
            expected[at..at + len].copy_from_slice(&out[at..at + len]);
        }
        assert_eq!(out, expected);
        assert_eq!(out[0x1EF], 0, "sentinel");
    }

    #[test]
    fn boot_params_below_4g_and_without_initrd() {
        let b = image_below_4g();
        let p = BootParamsInput {
            initrd: None,
            ..input()
        };
        let out = build(&b, &p).unwrap();
        assert_eq!(get32(&out, 0x228), 0x9_0000);
        assert_eq!(get32(&out, 0x0C8), 0);
        for at in [0x218, 0x21C, 0x0C0, 0x0C4] {
            assert_eq!(get32(&out, at), 0);
        }
        assert_eq!(get64(&out, 0x250), 0x8_0000);
        assert_eq!(out[0x1E8], 3);
    }

    #[test]
    fn kernel_above_4g_leaves_code32_start_zero() {
        let b = image();
        let p = BootParamsInput {
            kernel_load: 0x1_0000_0000,
            ..input()
        };
        let out = build(&b, &p).unwrap();
        assert_eq!(get32(&out, 0x214), 0);
    }

    #[test]
    fn header_shorter_than_the_file() {
        assert_eq!(
            parse(&image()[..MIN_HEADER_END - 1]).unwrap_err(),
            LinuxError::TruncatedHeader {
                needed: 0x264,
                len: 0x263
            }
        );
        assert_eq!(
            parse(&[]).unwrap_err(),
            LinuxError::TruncatedHeader {
                needed: 0x264,
                len: 0
            }
        );
        // The jump announces a header running past the end of the file.
        let mut b = image();
        put8(&mut b, JUMP + 1, 0x7F);
        assert_eq!(
            parse(&b[..0x270]).unwrap_err(),
            LinuxError::TruncatedHeader {
                needed: 0x281,
                len: 0x270
            }
        );
    }

    #[test]
    fn boot_flag_must_be_aa55() {
        assert_eq!(
            parse_err(|b| put16(b, BOOT_FLAG, 0x55AA)),
            LinuxError::BadBootFlag(0x55AA)
        );
    }

    #[test]
    fn header_length_comes_from_a_short_jump() {
        assert_eq!(
            parse_err(|b| put8(b, JUMP, 0xE9)),
            LinuxError::BadJump(0xE9)
        );
    }

    #[test]
    fn header_magic_must_be_hdrs() {
        assert_eq!(
            parse_err(|b| b[HEADER..HEADER + 4].copy_from_slice(b"HdrT")),
            LinuxError::BadMagic(u32::from_le_bytes(*b"HdrT"))
        );
    }

    #[test]
    fn protocol_must_be_at_least_2_12() {
        assert_eq!(
            parse_err(|b| put16(b, VERSION, 0x020B)),
            LinuxError::UnsupportedVersion(0x020B)
        );
        let mut b = image();
        put16(&mut b, VERSION, 0x020C);
        assert_eq!(parse(&b).unwrap().version(), 0x020C);
    }

    #[test]
    fn header_end_must_cover_the_fields_and_fit_the_jump() {
        assert_eq!(
            parse_err(|b| put8(b, JUMP + 1, 0x61)),
            LinuxError::BadHeaderLength { end: 0x263 }
        );
        // A backward jump.
        assert_eq!(
            parse_err(|b| put8(b, JUMP + 1, 0x80)),
            LinuxError::BadHeaderLength { end: 0x202 - 0x80 }
        );
        assert_eq!(
            parse_err(|b| put8(b, JUMP + 1, 0xFF)),
            LinuxError::BadHeaderLength { end: 0x201 }
        );
        // The shortest and the longest header.
        for (byte, len) in [(0x62u8, 0x264 - 0x1F1), (0x7F, 0x90)] {
            let mut b = image();
            put8(&mut b, JUMP + 1, byte);
            assert_eq!(parse(&b).unwrap().setup_header().len(), len);
        }
    }

    #[test]
    fn must_be_loaded_high() {
        assert_eq!(
            parse_err(|b| put8(b, LOADFLAGS, 0x80)),
            LinuxError::NotLoadedHigh { loadflags: 0x80 }
        );
    }

    #[test]
    fn must_have_a_64_bit_entry() {
        assert_eq!(
            parse_err(|b| put16(b, XLOADFLAGS, 0xFFFE)),
            LinuxError::No64BitEntry { xloadflags: 0xFFFE }
        );
    }

    #[test]
    fn must_be_relocatable() {
        assert_eq!(
            parse_err(|b| put8(b, RELOCATABLE_KERNEL, 0)),
            LinuxError::NotRelocatable
        );
    }

    #[test]
    fn kernel_alignment_rules() {
        for align in [0u32, 3, 0x800, 0x30_0000, 0x1001, u32::MAX] {
            assert_eq!(
                parse_err(|b| put32(b, KERNEL_ALIGNMENT, align)),
                LinuxError::BadKernelAlignment {
                    align,
                    min_alignment: 21
                }
            );
        }
        // Below the kernel's own minimum.
        for min_alignment in [22u8, 32, 63, 64, 255] {
            assert_eq!(
                parse_err(|b| put8(b, MIN_ALIGNMENT, min_alignment)),
                LinuxError::BadKernelAlignment {
                    align: ALIGN as u32,
                    min_alignment
                }
            );
        }
        // 4 KiB with no minimum given, and 2^31.
        for (align, min) in [(0x1000u32, 0u8), (1 << 31, 31)] {
            let mut b = image();
            put32(&mut b, KERNEL_ALIGNMENT, align);
            put8(&mut b, MIN_ALIGNMENT, min);
            put32(&mut b, INIT_SIZE, KERNEL_LEN as u32);
            assert_eq!(parse(&b).unwrap().kernel_alignment(), align);
        }
    }

    #[test]
    fn protected_mode_kernel_must_be_in_the_file() {
        assert_eq!(
            parse(&image()[..KERNEL_OFFSET]).unwrap_err(),
            LinuxError::MissingKernel {
                offset: KERNEL_OFFSET,
                len: KERNEL_OFFSET
            }
        );
        assert_eq!(
            parse_err(|b| put8(b, SETUP_SECTS, 0xFF)),
            LinuxError::MissingKernel {
                offset: 0x2_0000,
                len: FILE_LEN
            }
        );
        // setup_sects 0 means 4.
        let mut b = image();
        put8(&mut b, SETUP_SECTS, 0);
        let bz = parse(&b).unwrap();
        assert_eq!(bz.setup_sects(), 4);
        assert_eq!(bz.kernel(), &b[KERNEL_OFFSET..]);
        // One setup sector.
        put8(&mut b, SETUP_SECTS, 1);
        assert_eq!(parse(&b).unwrap().kernel(), &b[0x400..]);
    }

    #[test]
    fn normalizing_clears_exactly_the_loader_fields() {
        let mut b = image();
        // What QEMU's direct boot writes into the header it hands over.
        put8(&mut b, TYPE_OF_LOADER, 0xB0);
        put8(&mut b, LOADFLAGS, LOADED_HIGH | 0x80);
        put32(&mut b, CMD_LINE_PTR, 0x2_0000);
        put32(&mut b, RAMDISK_IMAGE, 0x7F0_0000);
        let mut qemu = b.clone();
        normalize_setup_header(&mut qemu);
        let mut file = image();
        normalize_setup_header(&mut file);
        assert_eq!(qemu, file, "the same kernel normalizes to the same bytes");
        assert_eq!(file[LOADFLAGS], LOADED_HIGH);
        assert_eq!(get32(&file, CMD_LINE_PTR), 0);
        // Kernel-defined fields are kept.
        assert_eq!(get32(&file, INIT_SIZE), INIT);
        assert_eq!(&file[HEADER..HEADER + 4], b"HdrS");
        assert_eq!(file[KERNEL_OFFSET..], image()[KERNEL_OFFSET..]);
        // Short buffers are handled: fields past the end are skipped.
        let mut short = image()[..0x215].to_vec();
        normalize_setup_header(&mut short);
        assert_eq!(short[TYPE_OF_LOADER], 0);
    }

    #[test]
    fn the_header_check_agrees_with_parse() {
        let b = image();
        // The head alone, with the file's length, passes the same checks.
        assert_eq!(check_header(&b[..0x300], b.len()), Ok(CMDLINE_MAX));
        // Size rules use the file length, not the head's.
        assert_eq!(
            check_header(&b[..0x300], b.len() - 1),
            parse(&b[..b.len() - 1]).map(|bz| bz.cmdline_size())
        );
        // A head shorter than the header is refused.
        assert!(matches!(
            check_header(&b[..0x250], b.len()),
            Err(LinuxError::TruncatedHeader { .. })
        ));
        let mut bad = b.clone();
        bad[BOOT_FLAG] = 0;
        assert_eq!(
            check_header(&bad[..0x300], bad.len()),
            parse(&bad).map(|_| 0)
        );
    }

    #[test]
    fn a_truncated_kernel_is_refused() {
        let b = image();
        assert_eq!(
            parse(&b[..b.len() - 1]).unwrap_err(),
            LinuxError::KernelTruncated {
                expected: KERNEL_LEN as u64,
                len: KERNEL_LEN as u64 - 1
            }
        );
        // Bytes after syssize (a signature) are fine.
        let mut signed = b.clone();
        signed.extend_from_slice(&[0x5A; 64]);
        assert_eq!(parse(&signed).unwrap().kernel().len(), KERNEL_LEN + 64);
    }

    #[test]
    fn init_size_must_hold_the_kernel() {
        assert_eq!(
            parse_err(|b| put32(b, INIT_SIZE, KERNEL_LEN as u32 - 1)),
            LinuxError::InitSizeTooSmall {
                init_size: KERNEL_LEN as u32 - 1,
                kernel_size: KERNEL_LEN as u64
            }
        );
        let mut b = image();
        put32(&mut b, INIT_SIZE, KERNEL_LEN as u32);
        assert_eq!(parse(&b).unwrap().init_size(), KERNEL_LEN as u32);
    }

    #[test]
    fn placement_prefers_pref_address() {
        let b = image();
        let bz = parse(&b).unwrap();
        // The lowest fit at or above pref_address wins over a lower fit.
        assert_eq!(
            bz.place_kernel(&[(0x20_0000, 64 * MIB), (0x10_0000, 0x10_0000)])
                .unwrap(),
            PREF
        );
        assert_eq!(
            bz.place_kernel(&[(0x8000_0000, 64 * MIB), (0x20_0000, 0x200_0000)])
                .unwrap(),
            0x8000_0000
        );
        // Above pref_address, rounded up to the alignment.
        assert_eq!(
            bz.place_kernel(&[(0x110_0001, 64 * MIB)]).unwrap(),
            0x120_0000
        );
        // Nothing at or above pref_address: refused, never the lower fit (see
        // placement_refuses_when_only_lower_memory_is_free).
        assert!(matches!(
            bz.place_kernel(&[(0x30_0000, 0x220_0000), (0x10_0000, 0x210_0000)]),
            Err(LinuxError::NoRoomForKernel {
                floor: PREF,
                largest: 0x150_0000,
                ..
            })
        ));
        // No pref_address.
        let mut b = image();
        put64(&mut b, PREF_ADDRESS, 0);
        let bz = parse(&b).unwrap();
        assert_eq!(bz.place_kernel(&[(0x10_0000, 64 * MIB)]).unwrap(), ALIGN);
    }

    #[test]
    fn placement_fails_without_room() {
        let b = image();
        let bz = parse(&b).unwrap();
        let none = |largest| LinuxError::NoRoomForKernel {
            size: u64::from(INIT),
            align: ALIGN,
            floor: PREF,
            largest,
        };
        assert_eq!(bz.place_kernel(&[]).unwrap_err(), none(0));
        // Large enough, but not once aligned.
        assert_eq!(
            bz.place_kernel(&[(PREF - 0x8_0000, u64::from(INIT) + 0x8_0000 - 1)])
                .unwrap_err(),
            none(u64::from(INIT) - 1)
        );
        // Wrapping ranges and the top of the address space.
        assert_eq!(
            bz.place_kernel(&[(u64::MAX - 0xFFF, u64::MAX), (u64::MAX, 1)])
                .unwrap_err(),
            none(0)
        );
        // Exactly enough.
        assert_eq!(bz.place_kernel(&[(PREF, u64::from(INIT))]).unwrap(), PREF);
    }

    #[test]
    fn placement_stays_below_4g_even_when_allowed() {
        let range = [(0xFFE0_0000u64, 0x1000_0000u64)];
        // The window may end exactly at 4 GiB.
        let fits = [(0x1_0000_0000 - u64::from(INIT), 64 * MIB)];
        // The firmware serves RAM below 4 GiB only: the same for both kinds of kernel.
        for b in [image_below_4g(), image()] {
            assert_eq!(
                parse(&b).unwrap().place_kernel(&range).unwrap_err(),
                LinuxError::NoRoomForKernel {
                    size: u64::from(INIT),
                    align: ALIGN,
                    floor: PREF,
                    largest: 0x20_0000,
                }
            );
            assert_eq!(
                parse(&b).unwrap().place_kernel(&fits).unwrap(),
                0x1_0000_0000 - u64::from(INIT)
            );
        }
    }

    #[test]
    fn the_header_alone_places_the_kernel_as_the_image_does() {
        let b = image();
        let bz = parse(&b).unwrap();
        let h = parse_header(&b[..0x300], b.len()).unwrap();
        assert_eq!(h, bz.header());
        assert_eq!(h.init_size, INIT);
        assert_eq!(h.pref_address, PREF);
        assert_eq!(u64::from(h.kernel_alignment), ALIGN);
        assert!(h.can_load_above_4g());
        let ranges = [(0x10_0000u64, 40 * MIB), (64 * MIB, 64 * MIB)];
        assert_eq!(h.place_kernel(&ranges), bz.place_kernel(&ranges));
        assert_eq!(
            parse_header(&b[..0x250], b.len()),
            Err(LinuxError::TruncatedHeader {
                needed: 0x264,
                len: 0x250
            })
        );
        // Field values parse would refuse are handled without panicking.
        let odd = KernelHeader {
            kernel_alignment: 0,
            ..h
        };
        assert!(matches!(
            odd.place_kernel(&ranges),
            Err(LinuxError::BadKernelAlignment { align: 0, .. })
        ));
        let odd = KernelHeader {
            pref_address: u64::MAX,
            ..h
        };
        assert!(matches!(
            odd.place_kernel(&ranges),
            Err(LinuxError::KernelTooLarge { .. })
        ));
    }

    /// Regression: a relocatable kernel loaded below `pref_address` decompresses itself to
    /// `pref_address` (head_64.S), outside the window the firmware reserved. With only memory
    /// below `pref_address` free, placement must refuse, naming the window it needed.
    #[test]
    fn placement_refuses_when_only_lower_memory_is_free() {
        let mut b = image();
        put32(&mut b, INIT_SIZE, 0x80_0000);
        let bz = parse(&b).unwrap();
        // 15 MiB free below pref_address (16 MiB): room for the 8 MiB window, but too low.
        let lower = [(0x10_0000u64, 0xF0_0000u64), (0x20_0000, 0xE0_0000)];
        let err = bz.place_kernel(&lower).unwrap_err();
        let msg = std::string::ToString::to_string(&err);
        assert!(msg.contains("at or above pref_address 0x1000000"), "{msg}");
        assert!(msg.contains("0x800000 bytes"), "{msg}");
        // 64 MiB from 8 MiB: the part at or above pref_address holds the window.
        assert_eq!(bz.place_kernel(&[(0x80_0000, 64 * MIB)]).unwrap(), PREF);
        // 12 MiB from 8 MiB: 8 MiB below pref_address, only 4 MiB above it: refused.
        let err = bz.place_kernel(&[(0x80_0000, 12 * MIB)]).unwrap_err();
        let msg = std::string::ToString::to_string(&err);
        assert!(
            msg.contains("largest such window is 0x400000 bytes"),
            "{msg}"
        );
    }

    /// Regression: an `init_size` near 4 GiB (0xFFFFF000) cannot fit below 4 GiB from
    /// `pref_address`: refused with an error that says so, whatever the candidates.
    #[test]
    fn placement_refuses_a_huge_init_size() {
        let mut b = image();
        put32(&mut b, INIT_SIZE, 0xFFFF_F000);
        let bz = parse(&b).unwrap();
        for candidates in [
            &[][..],
            &[(0u64, u64::MAX)][..],
            &[(0x10_0000u64, 1u64 << 40)][..],
            &[(u64::MAX - 0xFFF, u64::MAX)][..],
        ] {
            let err = bz.place_kernel(candidates).unwrap_err();
            let msg = std::string::ToString::to_string(&err);
            assert!(msg.contains("init_size 0xfffff000"), "{msg}");
            assert!(msg.contains("4 GiB"), "{msg}");
            assert_eq!(
                err,
                LinuxError::KernelTooLarge {
                    size: 0xFFFF_F000,
                    floor: PREF,
                    align: ALIGN
                }
            );
        }
        // The largest window that still fits below 4 GiB from pref_address is placed.
        put32(&mut b, INIT_SIZE, (FOUR_GIB - PREF) as u32);
        let bz = parse(&b).unwrap();
        assert_eq!(bz.place_kernel(&[(0, FOUR_GIB)]), Ok(PREF));
    }

    #[test]
    fn entry_point() {
        assert_eq!(entry64(0x100_0000), Some(0x100_0200));
        assert_eq!(entry64(u64::MAX - 0x1FF), None);
    }

    #[test]
    fn kernel_load_must_be_aligned() {
        assert_eq!(
            build_err(&image(), |p| p.kernel_load = PREF + 0x1000),
            LinuxError::UnalignedKernel {
                load: PREF + 0x1000,
                align: ALIGN
            }
        );
    }

    #[test]
    fn kernel_window_must_not_wrap() {
        let load = u64::MAX - (ALIGN - 1);
        assert_eq!(
            build_err(&image(), |p| p.kernel_load = load),
            LinuxError::KernelWraps {
                load,
                size: u64::from(INIT)
            }
        );
    }

    #[test]
    fn kernel_window_below_4g_unless_allowed() {
        let load = 0x1_0000_0000 - ALIGN;
        assert_eq!(
            build_err(&image_below_4g(), |p| p.kernel_load = load),
            LinuxError::KernelAbove4G {
                load,
                size: u64::from(INIT)
            }
        );
        let p = BootParamsInput {
            kernel_load: load,
            ..input()
        };
        assert!(build(&image(), &p).is_ok());
    }

    #[test]
    fn cmdline_within_the_kernel_limit() {
        assert_eq!(
            build_err(&image(), |p| p.cmdline_len = CMDLINE_MAX + 1),
            LinuxError::CmdlineTooLong {
                len: CMDLINE_MAX + 1,
                max: CMDLINE_MAX
            }
        );
        // cmdline_size counts the bytes before the NUL.
        let p = BootParamsInput {
            cmdline_len: CMDLINE_MAX,
            ..input()
        };
        assert!(build(&image(), &p).is_ok());
    }

    #[test]
    fn cmdline_must_not_wrap() {
        let addr = u64::MAX - 20;
        assert_eq!(
            build_err(&image(), |p| p.cmdline_addr = addr),
            LinuxError::CmdlineWraps { addr }
        );
    }

    #[test]
    fn cmdline_below_4g_unless_allowed() {
        let b = image_below_4g();
        for (addr, len) in [
            (0x1_0000_0000u64, 0u32),
            (0xFFFF_FFFF, 1),
            (0xFFFF_FFF0, 16),
        ] {
            assert_eq!(
                build_err(&b, |p| {
                    p.cmdline_addr = addr;
                    p.cmdline_len = len;
                }),
                LinuxError::CmdlineAbove4G { addr }
            );
        }
        // The NUL may be the last byte below 4 GiB.
        let p = BootParamsInput {
            cmdline_addr: 0xFFFF_FFF0,
            cmdline_len: 15,
            ..input()
        };
        assert!(build(&b, &p).is_ok());
    }

    #[test]
    fn cmdline_outside_the_kernel_window() {
        for addr in [PREF, PREF + u64::from(INIT) - 1, PREF - 10] {
            assert_eq!(
                build_err(&image(), |p| p.cmdline_addr = addr),
                LinuxError::CmdlineOverlapsKernel { addr }
            );
        }
        for addr in [PREF + u64::from(INIT), PREF - 21] {
            let p = BootParamsInput {
                cmdline_addr: addr,
                ..input()
            };
            assert!(build(&image(), &p).is_ok());
        }
    }

    #[test]
    fn initrd_must_not_be_empty() {
        assert_eq!(
            build_err(&image(), |p| p.initrd = Some((0x4000_0000, 0))),
            LinuxError::EmptyInitrd { addr: 0x4000_0000 }
        );
    }

    #[test]
    fn initrd_must_not_wrap() {
        let (addr, size) = (u64::MAX - 0xFFF, 0x2000);
        assert_eq!(
            build_err(&image(), |p| p.initrd = Some((addr, size))),
            LinuxError::InitrdWraps { addr, size }
        );
    }

    #[test]
    fn initrd_below_4g_unless_allowed() {
        let b = image_below_4g();
        for (addr, size) in [
            (0x1_0000_0000u64, 0x1000u64),
            (0x8000_0000, 0x1_0000_0000),
            (0xFFFF_F000, 0x1001),
        ] {
            assert_eq!(
                build_err(&b, |p| p.initrd = Some((addr, size))),
                LinuxError::InitrdAbove4G { addr, size }
            );
        }
        // Allowed with XLF_CAN_BE_LOADED_ABOVE_4G, past initrd_addr_max too.
        let p = BootParamsInput {
            initrd: Some((0xFFFF_F000, 0x1001)),
            ..input()
        };
        let out = build(&image(), &p).unwrap();
        assert_eq!(get32(&out, 0x218), 0xFFFF_F000);
        assert_eq!(get32(&out, 0x21C), 0x1001);
        assert_eq!(get32(&out, 0x0C0), 0);
    }

    #[test]
    fn initrd_below_initrd_addr_max_unless_above_4g_allowed() {
        let b = image_below_4g();
        assert_eq!(
            build_err(&b, |p| p.initrd = Some((0x7FFF_0000, 0x2_0000))),
            LinuxError::InitrdAboveAddrMax {
                last: 0x8000_FFFF,
                max: INITRD_MAX
            }
        );
        // The last byte may be initrd_addr_max itself.
        let p = BootParamsInput {
            initrd: Some((0x7FFE_0000, 0x2_0000)),
            ..input()
        };
        let out = build(&b, &p).unwrap();
        assert_eq!(get32(&out, 0x218), 0x7FFE_0000);
        assert_eq!(get32(&out, 0x21C), 0x2_0000);
    }

    #[test]
    fn initrd_outside_the_kernel_window() {
        for (addr, size) in [(PREF, 1u64), (PREF - 0x1000, 0x1001), (0, u64::MAX)] {
            assert_eq!(
                build_err(&image(), |p| p.initrd = Some((addr, size))),
                LinuxError::InitrdOverlapsKernel { addr, size }
            );
        }
        let p = BootParamsInput {
            initrd: Some((PREF - 0x1000, 0x1000)),
            ..input()
        };
        assert!(build(&image(), &p).is_ok());
    }

    #[test]
    fn at_most_128_e820_entries() {
        let many = [E820[1]; E820_MAX_ENTRIES + 1];
        assert_eq!(
            build_err(&image(), |p| p.e820 = &[E820[1]; E820_MAX_ENTRIES + 1]),
            LinuxError::TooManyE820Entries(129)
        );
        let p = BootParamsInput {
            e820: &many[..E820_MAX_ENTRIES],
            ..input()
        };
        let out = build(&image(), &p).unwrap();
        assert_eq!(out[0x1E8], 128);
        let last = 0x2D0 + 127 * 20;
        assert_eq!(get64(&out, last + 8), E820[1].size);
        assert_eq!(get32(&out, last + 16), E820_RAM);
        // The table is 0xA00 bytes; nothing is written past it.
        assert_eq!(last + 20, 0x2D0 + 0xA00);
        assert!(out[0xCD0..].iter().all(|&x| x == 0));
        let p = BootParamsInput {
            e820: &[],
            ..input()
        };
        assert_eq!(build(&image(), &p).unwrap()[0x1E8], 0);
    }

    #[test]
    fn refused_boot_params_leave_the_buffer_alone() {
        let b = image();
        let bz = parse(&b).unwrap();
        let mut out = [0x77u8; BOOT_PARAMS_SIZE];
        let p = BootParamsInput {
            cmdline_len: u32::MAX,
            ..input()
        };
        assert!(build_boot_params(&mut out, &bz, &p).is_err());
        assert!(out.iter().all(|&x| x == 0x77));
    }

    #[test]
    fn setup_data_layout() {
        let mut out = [0xAAu8; 32];
        let n = write_setup_data(&mut out, 0x1234_5678_9ABC, SETUP_CC_BLOB, &[1, 2, 3, 4]).unwrap();
        assert_eq!(n, 20);
        assert_eq!(get64(&out, 0), 0x1234_5678_9ABC);
        assert_eq!(get32(&out, 8), 7);
        assert_eq!(get32(&out, 12), 4);
        assert_eq!(&out[16..20], &[1, 2, 3, 4]);
        assert!(out[20..].iter().all(|&x| x == 0xAA));
        // An empty payload.
        assert_eq!(write_setup_data(&mut out, 0, SETUP_RNG_SEED, &[]), Ok(16));
        assert_eq!(get32(&out, 12), 0);
    }

    #[test]
    fn setup_data_buffer_must_hold_the_node() {
        let mut out = [0xAAu8; 19];
        assert_eq!(
            write_setup_data(&mut out, 0, SETUP_DTB, &[1, 2, 3, 4]),
            Err(LinuxError::SetupDataBufferTooSmall {
                needed: 20,
                available: 19
            })
        );
        assert!(out.iter().all(|&x| x == 0xAA));
        assert_eq!(
            write_setup_data(&mut [], 0, SETUP_DTB, &[]),
            Err(LinuxError::SetupDataBufferTooSmall {
                needed: 16,
                available: 0
            })
        );
    }

    /// A payload of 4 GiB: the zeroed allocation is not touched, so it costs no memory.
    #[cfg(target_pointer_width = "64")]
    #[test]
    fn setup_data_length_must_fit_32_bits() {
        let huge = vec![0u8; 1 << 32];
        let mut out = [0u8; 64];
        assert_eq!(
            write_setup_data(&mut out, 0, SETUP_E820_EXT, &huge),
            Err(LinuxError::SetupDataTooLarge { len: 1 << 32 })
        );
    }

    #[test]
    fn errors_have_clear_messages() {
        use std::string::ToString;
        assert_eq!(
            LinuxError::UnsupportedVersion(0x020B).to_string(),
            "bzImage: boot protocol 2.11 is older than 2.12 (no 64-bit entry flag)"
        );
        assert_eq!(
            LinuxError::CmdlineTooLong {
                len: 3000,
                max: 2047
            }
            .to_string(),
            "bzImage: command line of 3000 bytes exceeds the kernel's limit of 2047"
        );
        let all = [
            LinuxError::TruncatedHeader { needed: 1, len: 0 },
            LinuxError::BadBootFlag(0),
            LinuxError::BadJump(0),
            LinuxError::BadMagic(0),
            LinuxError::UnsupportedVersion(0x0200),
            LinuxError::BadHeaderLength { end: 0x201 },
            LinuxError::NotLoadedHigh { loadflags: 0 },
            LinuxError::No64BitEntry { xloadflags: 0 },
            LinuxError::NotRelocatable,
            LinuxError::BadKernelAlignment {
                align: 3,
                min_alignment: 0,
            },
            LinuxError::MissingKernel { offset: 1, len: 1 },
            LinuxError::KernelTruncated {
                expected: 2,
                len: 1,
            },
            LinuxError::InitSizeTooSmall {
                init_size: 0,
                kernel_size: 1,
            },
            LinuxError::NoRoomForKernel {
                size: 1,
                align: 1,
                floor: 0,
                largest: 0,
            },
            LinuxError::KernelTooLarge {
                size: 1,
                floor: 0,
                align: 1,
            },
            LinuxError::UnalignedKernel { load: 1, align: 2 },
            LinuxError::KernelWraps { load: 1, size: 1 },
            LinuxError::KernelAbove4G { load: 1, size: 1 },
            LinuxError::CmdlineTooLong { len: 2, max: 1 },
            LinuxError::CmdlineWraps { addr: 1 },
            LinuxError::CmdlineAbove4G { addr: 1 },
            LinuxError::CmdlineOverlapsKernel { addr: 1 },
            LinuxError::EmptyInitrd { addr: 1 },
            LinuxError::InitrdWraps { addr: 1, size: 1 },
            LinuxError::InitrdAbove4G { addr: 1, size: 1 },
            LinuxError::InitrdAboveAddrMax { last: 1, max: 0 },
            LinuxError::InitrdOverlapsKernel { addr: 1, size: 1 },
            LinuxError::TooManyE820Entries(129),
            LinuxError::SetupDataTooLarge { len: 1 },
            LinuxError::SetupDataBufferTooSmall {
                needed: 16,
                available: 0,
            },
        ];
        let messages: Vec<_> = all.iter().map(|e| e.to_string()).collect();
        for (i, m) in messages.iter().enumerate() {
            assert!(m.starts_with("bzImage: "), "{m}");
            assert!(!messages[..i].contains(m), "duplicate message {m}");
        }
    }

    /// A real kernel, when `TD_LOADER_BZIMAGE` names one (e.g. `/boot/vmlinuz-...`).
    #[test]
    fn real_kernel_from_the_environment() {
        let Some(path) = std::env::var_os("TD_LOADER_BZIMAGE") else {
            return;
        };
        let bytes = std::fs::read(path).unwrap();
        let bz = parse(&bytes).unwrap();
        assert!(bz.kernel().len() as u64 <= u64::from(bz.init_size()));
        let load = bz.place_kernel(&[(0x10_0000, 1 << 30)]).unwrap();
        let p = BootParamsInput {
            kernel_load: load,
            initrd: None,
            ..input()
        };
        let mut out = [0u8; BOOT_PARAMS_SIZE];
        build_boot_params(&mut out, &bz, &p).unwrap();
        assert_eq!(&out[0x202..0x206], b"HdrS");
        std::println!("{bz:?} placed at {load:#x}");
    }

    /// Parses `bytes` and, if that works, places and builds boot_params a few ways; nothing may
    /// panic, and what succeeds must be consistent.
    fn exercise(bytes: &[u8]) {
        let Ok(bz) = parse(bytes) else {
            return;
        };
        let _ = std::format!("{bz:?}");
        let header = bz.setup_header();
        assert!((MIN_HEADER_END - 0x1F1..=MAX_HEADER_END - 0x1F1).contains(&header.len()));
        assert!(bz.kernel().len() as u64 <= u64::from(bz.init_size()));
        assert!(!bz.kernel().is_empty());
        assert!(bz.kernel_alignment().is_power_of_two());
        let candidates = [
            (0x10_0000u64, 1u64 << 30),
            (0, u64::MAX),
            (0x1_0000_0000, 1 << 40),
        ];
        let loads = [
            bz.place_kernel(&candidates[..1]),
            bz.place_kernel(&candidates),
            Ok(0),
            Ok(1 << 32),
        ];
        for load in loads.into_iter().flatten() {
            let _ = entry64(load);
            for p in [
                BootParamsInput {
                    kernel_load: load,
                    ..input()
                },
                BootParamsInput {
                    kernel_load: load,
                    cmdline_addr: u64::MAX,
                    cmdline_len: u32::MAX,
                    initrd: Some((u64::MAX, u64::MAX)),
                    acpi_rsdp: u64::MAX,
                    e820: &E820,
                    setup_data: u64::MAX,
                },
            ] {
                let mut out = [0u8; BOOT_PARAMS_SIZE];
                if build_boot_params(&mut out, &bz, &p).is_ok() {
                    // Up to vid_mode (0x1FA), the header is the kernel's own.
                    assert_eq!(&out[0x1F1..0x1F1 + header.len()][..0x09], &header[..0x09]);
                    assert_eq!(out[0x210], 0xFF);
                }
            }
        }
    }

    #[test]
    fn every_single_byte_change_in_the_header_is_handled() {
        let good = image();
        for at in 0x1F0..0x270 {
            for value in [
                0,
                0xFF,
                good[at] ^ 1,
                good[at] ^ 0x80,
                good[at].wrapping_add(1),
            ] {
                let mut b = good.clone();
                b[at] = value;
                exercise(&b);
            }
        }
    }

    /// Offsets of every u32 (and half of every u64) header field.
    const U32_FIELDS: [usize; 20] = [
        0x1F4, 0x208, 0x214, 0x218, 0x21C, 0x220, 0x228, 0x22C, 0x230, 0x234, 0x238, 0x23C, 0x248,
        0x24C, 0x258, 0x25C, 0x260, 0x264, 0x268, 0x206,
    ];

    fn interesting_u32() -> impl Strategy<Value = u32> {
        prop_oneof![
            Just(0u32),
            Just(1u32),
            Just(0x1000u32),
            Just(0x20_0000u32),
            Just(0x7FFF_FFFFu32),
            Just(u32::MAX),
            Just(1u32 << 31),
            0u32..0x2000,
            any::<u32>(),
        ]
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            exercise(&bytes);
        }

        #[test]
        fn arbitrary_bytes_after_a_valid_header_never_panic(
            tail in proptest::collection::vec(any::<u8>(), 0..2048),
            cut in MIN_HEADER_END..KERNEL_OFFSET,
        ) {
            let mut b = image()[..cut].to_vec();
            b.extend_from_slice(&tail);
            exercise(&b);
        }

        #[test]
        fn single_byte_mutations_never_panic(at in 0x1F0usize..0x270, byte in any::<u8>()) {
            let mut b = image();
            b[at] = byte;
            exercise(&b);
        }

        #[test]
        fn u32_field_mutations_never_panic(
            field in proptest::sample::select(U32_FIELDS.to_vec()),
            value in interesting_u32(),
            second in proptest::sample::select(U32_FIELDS.to_vec()),
            second_value in interesting_u32(),
        ) {
            let mut b = image();
            put32(&mut b, field, value);
            exercise(&b);
            put32(&mut b, second, second_value);
            exercise(&b);
        }

        #[test]
        fn placement_is_aligned_and_inside_a_candidate(
            align_log2 in 12u32..32,
            init_size in 0x600u32..0x1000_0000,
            pref in prop_oneof![Just(0u64), Just(PREF), 0u64..(1 << 32), any::<u64>()],
            above_4g in any::<bool>(),
            candidates in proptest::collection::vec(
                (prop_oneof![0u64..(1 << 34), any::<u64>()], prop_oneof![0u64..(1 << 31), any::<u64>()]),
                0..6,
            ),
        ) {
            let mut b = image();
            let align = 1u64 << align_log2;
            put32(&mut b, KERNEL_ALIGNMENT, align as u32);
            put8(&mut b, MIN_ALIGNMENT, 0);
            put32(&mut b, INIT_SIZE, init_size);
            put64(&mut b, PREF_ADDRESS, pref);
            if !above_4g {
                put16(&mut b, XLOADFLAGS, XLF_KERNEL_64);
            }
            let bz = parse(&b).unwrap();
            let size = u64::from(init_size);
            let fits = |load: u64, &(base, len): &(u64, u64)| {
                load >= base
                    && load.checked_add(size).is_some_and(|end| end <= base.saturating_add(len))
                    && load + size <= 1 << 32
            };
            // The first aligned address at or above pref_address in each candidate.
            let first = |c: &(u64, u64)| c.0.max(pref).checked_next_multiple_of(align);
            match bz.place_kernel(&candidates) {
                Ok(load) => {
                    prop_assert!(load.is_multiple_of(align));
                    prop_assert!(load >= pref);
                    prop_assert!(candidates.iter().any(|c| fits(load, c)));
                    // Nothing lower fits at or above pref_address.
                    for c in &candidates {
                        if let Some(l) = first(c).filter(|&l| l < load) {
                            prop_assert!(!fits(l, c));
                        }
                    }
                    // A kernel placed there gets boot_params built.
                    let p = BootParamsInput {
                        kernel_load: load,
                        cmdline_addr: 0,
                        cmdline_len: 0,
                        initrd: None,
                        acpi_rsdp: 0,
                        e820: &[],
                        setup_data: 0,
                    };
                    let mut out = [0u8; BOOT_PARAMS_SIZE];
                    match build_boot_params(&mut out, &bz, &p) {
                        Ok(()) => prop_assert_eq!(get32(&out, 0x214), u32::try_from(load).unwrap_or(0)),
                        // The command line at 0 is inside a kernel loaded at 0.
                        Err(e) => prop_assert_eq!(e, LinuxError::CmdlineOverlapsKernel { addr: 0 }),
                    }
                }
                Err(LinuxError::KernelTooLarge { size: s, floor, align: a }) => {
                    prop_assert_eq!((s, floor, a), (size, pref, align));
                    let end = pref.checked_next_multiple_of(align).and_then(|l| l.checked_add(size));
                    prop_assert!(end.is_none_or(|e| e > 1 << 32));
                }
                Err(e) => {
                    let LinuxError::NoRoomForKernel { size: s, align: a, floor, largest } = e else {
                        return Err(TestCaseError::fail(std::format!("{e:?}")));
                    };
                    prop_assert_eq!((s, a, floor), (size, align, pref));
                    prop_assert!(largest < size);
                    for c in &candidates {
                        prop_assert!(first(c).is_none_or(|l| !fits(l, c)));
                    }
                }
            }
        }

        /// Regression: whatever the candidates, a kernel is never placed below `pref_address`
        /// (where it would not run), and its window ends below 4 GiB (the RAM the firmware
        /// serves), even for a kernel that could be loaded above 4 GiB.
        #[test]
        fn placement_never_below_pref_address(
            align_log2 in 12u32..24,
            init_size in 0x600u32..0x400_0000,
            pref_mib in 0u64..64,
            above_4g in any::<bool>(),
            candidates in proptest::collection::vec(
                (prop_oneof![0u64..(1 << 27), 0u64..(1 << 33), any::<u64>()],
                 prop_oneof![0u64..(1 << 27), any::<u64>()]),
                0..6,
            ),
        ) {
            let mut b = image();
            put32(&mut b, KERNEL_ALIGNMENT, 1 << align_log2);
            put8(&mut b, MIN_ALIGNMENT, 0);
            put32(&mut b, INIT_SIZE, init_size);
            let pref = (pref_mib * MIB).next_multiple_of(1 << align_log2);
            put64(&mut b, PREF_ADDRESS, pref);
            if !above_4g {
                put16(&mut b, XLOADFLAGS, XLF_KERNEL_64);
            }
            let bz = parse(&b).unwrap();
            let size = u64::from(init_size);
            let fits = |load: u64| {
                load >= pref
                    && load.is_multiple_of(1 << align_log2)
                    && load + size <= 1 << 32
                    && candidates.iter().any(|&(base, len)| {
                        load >= base && load + size <= base.saturating_add(len)
                    })
            };
            match bz.place_kernel(&candidates) {
                Ok(load) => {
                    prop_assert!(load >= pref, "{:#x} below pref_address {:#x}", load, pref);
                    prop_assert!(fits(load));
                }
                Err(_) => {
                    // Nothing fits: no candidate holds the window at its first aligned address
                    // at or above pref_address.
                    for &(base, _) in &candidates {
                        if let Some(l) = base.max(pref).checked_next_multiple_of(1 << align_log2) {
                            prop_assert!(!fits(l));
                        }
                    }
                }
            }
        }

        #[test]
        fn boot_params_fields_follow_the_input(
            load_page in 0u64..(1 << 20),
            cmdline_addr in any::<u64>(),
            cmdline_len in 0u32..4096,
            initrd in proptest::option::of((any::<u64>(), 1u64..(1 << 33))),
            acpi_rsdp in any::<u64>(),
            setup_data in any::<u64>(),
            entries in 0usize..=E820_MAX_ENTRIES + 1,
            above_4g in any::<bool>(),
        ) {
            let b = if above_4g { image() } else { image_below_4g() };
            let e820 = vec![E820[1]; entries];
            let p = BootParamsInput {
                kernel_load: load_page * ALIGN,
                cmdline_addr,
                cmdline_len,
                initrd,
                acpi_rsdp,
                e820: &e820,
                setup_data,
            };
            if let Ok(out) = build(&b, &p) {
                let (rd_addr, rd_size) = initrd.unwrap_or((0, 0));
                prop_assert_eq!(u64::from(get32(&out, 0x228)) | u64::from(get32(&out, 0x0C8)) << 32, cmdline_addr);
                prop_assert_eq!(u64::from(get32(&out, 0x218)) | u64::from(get32(&out, 0x0C0)) << 32, rd_addr);
                prop_assert_eq!(u64::from(get32(&out, 0x21C)) | u64::from(get32(&out, 0x0C4)) << 32, rd_size);
                prop_assert_eq!(get64(&out, 0x070), acpi_rsdp);
                prop_assert_eq!(get64(&out, 0x250), setup_data);
                prop_assert_eq!(usize::from(out[0x1E8]), entries);
                prop_assert!(cmdline_len <= CMDLINE_MAX);
                prop_assert!(entries <= E820_MAX_ENTRIES);
                if !above_4g {
                    prop_assert!(cmdline_addr + u64::from(cmdline_len) < 1 << 32);
                    prop_assert!(rd_addr + rd_size <= u64::from(INITRD_MAX) + 1);
                    prop_assert!(load_page * ALIGN + u64::from(INIT) <= 1 << 32);
                }
            }
        }
    }
}
