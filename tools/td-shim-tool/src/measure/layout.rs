//! Where the firmware will put a Linux boot, predicted on the host, so that `measure` refuses
//! exactly the setups the firmware refuses.
//!
//! The firmware reads QEMU's E820 map, reserves what it keeps
//! (`td_shim::memory_map::carve_firmware_regions`), reserves the ACPI tables at the top of the
//! RAM below 4 GiB (`td_shim::linux::top_of_low_ram`), then lays the boot out with
//! `td_shim::linux::layout`: bzImage and initrd staged high, the kernel's `init_size` window at
//! or above its `pref_address`. [`check`] runs that same code on the map QEMU will give
//! ([`qemu_q35_e820`]) with the ACPI size the host cannot know replaced by a documented upper
//! bound ([`ASSUMED_ACPI_FILES_SIZE`]).
//!
//! Assumptions about QEMU (7.2, machine `q35`, default properties, KVM, an Intel CPU model or
//! less than about 1 TiB of RAM):
//!
//! - RAM below 4 GiB is `min(ram, 2 GiB)` when `ram >= 0xB000_0000`, else `min(ram,
//!   0xB000_0000)` (`pc_q35_init`: the 32-bit PCI hole starts at 2 GiB once RAM would reach
//!   2.75 GiB); the rest is one RAM entry from 4 GiB.
//! - KVM adds a reserved entry `[0xFEFF_C000, 0xFF00_0000)` for the identity map and TSS of its
//!   real-mode emulation (`kvm_arch_init`). It lies in the MMIO hole, so it changes no placement;
//!   it is listed so the map is QEMU's.
//! - QEMU 7.1 and later move RAM above 4 GiB to 1 TiB, and reserve the HyperTransport range below
//!   it, for AMD CPU models when RAM would reach it; that case is not modelled.

use td_loader::linux::{KernelHeader, E820_NVS, E820_RAM, E820_RESERVED};
use td_shim::linux::{LinuxBootError, LinuxLayout};
use td_shim::memory_map::{MemoryMap, MemoryMapError};

/// QEMU q35 puts RAM below 4 GiB up to here when the VM has less than [`Q35_HIGH_RAM_FROM`].
pub const Q35_LOW_RAM_MAX: u64 = 0xB000_0000;
/// From this RAM size on, q35 puts only the first 2 GiB below 4 GiB.
pub const Q35_HIGH_RAM_FROM: u64 = 0xB000_0000;
/// RAM below 4 GiB on q35 for VMs of at least [`Q35_HIGH_RAM_FROM`].
pub const Q35_LOW_RAM_LARGE_VM: u64 = 0x8000_0000;
/// Where q35 puts the RAM that does not fit below 4 GiB.
pub const Q35_HIGH_RAM_BASE: u64 = 0x1_0000_0000;
/// The reserved range KVM adds to QEMU's E820 map (EPT identity map and TSS), as (base, length).
pub const KVM_IDENTITY_MAP: (u64, u64) = (0xFEFF_C000, 0x4000);

/// What the host assumes for the size of the VMM's ACPI table-loader files, which only the
/// firmware sees: 512 KiB. The firmware reserves their size plus
/// `td_shim::acpi::FIRMWARE_TABLES_ROOM` at the top of RAM below 4 GiB. On QEMU q35 they total
/// about 132 KiB (the firmware's log): `etc/acpi/tables` is padded to a multiple of 128 KiB
/// (256 KiB for very large VMs), plus the RSDP and, with a TPM, a 64 KiB log. 512 KiB covers all
/// of that with room to spare. Larger is the safe side: the host then refuses some borderline
/// small-RAM setups the firmware would boot, and never predicts a boot the firmware refuses for
/// lack of room.
pub const ASSUMED_ACPI_FILES_SIZE: u64 = 512 << 10;

/// Why the firmware would refuse to lay out the boot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// The firmware refuses QEMU's memory map for this RAM size.
    #[error("memory: QEMU's q35 map for {ram_bytes} bytes of RAM: {error}")]
    MemoryMap {
        /// The RAM size.
        ram_bytes: u64,
        /// The firmware's reason.
        error: MemoryMapError,
    },
    /// No RAM below 4 GiB holds the ACPI tables.
    #[error("memory: no RAM below 4 GiB holds the ACPI tables ({size:#x} bytes assumed)")]
    NoRoomForAcpi {
        /// Bytes the host assumes the firmware reserves.
        size: u64,
    },
    /// The firmware cannot place the bzImage, initrd or kernel.
    #[error("{0} (with {ram_bytes} bytes of RAM)", ram_bytes = .1)]
    Linux(LinuxBootError, u64),
    /// A kernel given by digest only, whose header was not seen here.
    #[error("kernel: its setup header is unknown, so its placement cannot be checked")]
    UnknownHeader,
}

/// The E820 table (20-byte records: base u64, length u64, type u32, little-endian) QEMU 7.2's
/// q35 machine gives, in `etc/e820`, a KVM guest with `ram_bytes` of RAM (see the module
/// documentation for the assumptions). Records are not checked here: the firmware's
/// `MemoryMap::from_e820_bytes` does that, and refuses what does not fit the physical address
/// space (`15E`).
pub fn qemu_q35_e820(ram_bytes: u64) -> Vec<u8> {
    let low_max = if ram_bytes >= Q35_HIGH_RAM_FROM {
        Q35_LOW_RAM_LARGE_VM
    } else {
        Q35_LOW_RAM_MAX
    };
    let low = ram_bytes.min(low_max);
    let high = ram_bytes - low;
    let mut records = vec![(KVM_IDENTITY_MAP.0, KVM_IDENTITY_MAP.1, E820_RESERVED)];
    if low > 0 {
        records.push((0, low, E820_RAM));
    }
    if high > 0 {
        records.push((Q35_HIGH_RAM_BASE, high, E820_RAM));
    }
    let mut out = Vec::with_capacity(records.len() * 20);
    for (base, length, kind) in records {
        out.extend_from_slice(&base.to_le_bytes());
        out.extend_from_slice(&length.to_le_bytes());
        out.extend_from_slice(&kind.to_le_bytes());
    }
    out
}

/// The memory map the firmware lays a Linux boot out in, on QEMU q35 with `ram_bytes` of RAM:
/// QEMU's map, checked and carved by the firmware's own code, with the ACPI tables' area
/// ([`ASSUMED_ACPI_FILES_SIZE`] + `FIRMWARE_TABLES_ROOM`) reserved at the top of RAM below 4 GiB.
pub fn firmware_map(ram_bytes: u64) -> Result<MemoryMap, LayoutError> {
    let map_error = |error| LayoutError::MemoryMap { ram_bytes, error };
    let mut map = MemoryMap::from_e820_bytes(&qemu_q35_e820(ram_bytes)).map_err(map_error)?;
    td_shim::memory_map::carve_firmware_regions(&mut map).map_err(map_error)?;
    let size = ASSUMED_ACPI_FILES_SIZE + td_shim::acpi::FIRMWARE_TABLES_ROOM;
    let base =
        td_shim::linux::top_of_low_ram(&map, size).ok_or(LayoutError::NoRoomForAcpi { size })?;
    map.carve("acpi", base, size, E820_NVS).map_err(map_error)?;
    Ok(map)
}

/// Lays out, as the firmware will (`td_shim::linux::layout`), a boot of a kernel with `header`,
/// a `bzimage_len`-byte bzImage and an `initrd_len`-byte initrd (0: none) on QEMU q35 with
/// `ram_bytes` of RAM; an error is a boot the firmware refuses.
pub fn check(
    ram_bytes: u64,
    header: &KernelHeader,
    bzimage_len: u64,
    initrd_len: u64,
) -> Result<LinuxLayout, LayoutError> {
    let map = firmware_map(ram_bytes)?;
    td_shim::linux::layout(&map, bzimage_len, initrd_len, header)
        .map_err(|e| LayoutError::Linux(e, ram_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use td_loader::linux::LinuxError;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    /// Debian 12's cloud kernel header, as placement reads it.
    const DEBIAN: KernelHeader = KernelHeader {
        version: 0x020F,
        init_size: 0x337_8000,
        kernel_alignment: 0x20_0000,
        min_alignment: 21,
        pref_address: 0x100_0000,
        xloadflags: 0x7F,
        initrd_addr_max: 0x7FFF_FFFF,
        cmdline_size: 2047,
    };
    const BZIMAGE: u64 = 14_189_056;
    const INITRD: u64 = 607_722;

    fn ram(map: &MemoryMap) -> Vec<(u64, u64)> {
        map.ram().map(|r| (r.base, r.end())).collect()
    }

    #[test]
    fn q35_splits_ram_around_the_pci_hole() {
        for (size, low, high) in [
            (512 * MIB, 512 * MIB, 0),
            (2 * GIB, 2 * GIB, 0),
            (0xAFFF_E000, 0xAFFF_E000, 0),
            (0xB000_0000, 2 * GIB, 0x3000_0000),
            (5 * GIB, 2 * GIB, 3 * GIB),
        ] {
            let map = MemoryMap::from_e820_bytes(&qemu_q35_e820(size)).unwrap();
            let mut expected = vec![(0, low)];
            if high > 0 {
                expected.push((4 * GIB, 4 * GIB + high));
            }
            assert_eq!(ram(&map), expected, "{size:#x}");
            assert_eq!(map.ram_bytes(), size);
            assert!(map
                .ranges()
                .iter()
                .any(|r| (r.base, r.length, r.kind) == (0xFEFF_C000, 0x4000, E820_RESERVED)));
        }
    }

    #[test]
    fn the_acpi_area_is_reserved_at_the_top_of_low_ram() {
        let map = firmware_map(512 * MIB).unwrap();
        let size = ASSUMED_ACPI_FILES_SIZE + td_shim::acpi::FIRMWARE_TABLES_ROOM;
        assert!(map
            .ranges()
            .iter()
            .any(|r| (r.base, r.length, r.kind) == (512 * MIB - size, size, E820_NVS)));
    }

    #[test]
    fn debian_fits_512m_1g_5g_but_not_64m_or_80m() {
        for size in [512 * MIB, GIB, 5 * GIB] {
            let l = check(size, &DEBIAN, BZIMAGE, INITRD).unwrap();
            assert_eq!(l.kernel_load, 0x100_0000, "{size:#x}");
        }
        for size in [64 * MIB, 80 * MIB] {
            let err = check(size, &DEBIAN, BZIMAGE, INITRD).unwrap_err();
            assert!(
                matches!(
                    err,
                    LayoutError::Linux(
                        LinuxBootError::Placement(LinuxError::NoRoomForKernel { .. }),
                        _
                    )
                ),
                "{size:#x}: {err:?}"
            );
            assert!(err.to_string().contains("pref_address"), "{err}");
        }
    }

    #[test]
    fn ram_beyond_the_physical_address_space_is_refused() {
        // 15E: the firmware refuses the map (52-bit physical addresses).
        let err = check(15 << 60, &DEBIAN, BZIMAGE, INITRD).unwrap_err();
        assert!(matches!(
            err,
            LayoutError::MemoryMap {
                error: MemoryMapError::EntryOutOfRange { .. },
                ..
            }
        ));
        // The largest RAM size QEMU's -m takes: no overflow, refused.
        assert!(check(u64::MAX - 8191, &DEBIAN, BZIMAGE, INITRD).is_err());
    }

    #[test]
    fn a_huge_init_size_is_refused() {
        let huge = KernelHeader {
            init_size: 0xFFFF_F000,
            ..DEBIAN
        };
        let err = check(5 * GIB, &huge, BZIMAGE, INITRD).unwrap_err();
        assert!(matches!(
            err,
            LayoutError::Linux(
                LinuxBootError::Placement(LinuxError::KernelTooLarge { .. }),
                _
            )
        ));
        assert!(err.to_string().contains("init_size 0xfffff000"), "{err}");
    }
}
