//! Booting Linux: where the pieces go in guest memory, and the E820 map the kernel gets.
//!
//! Whatever the source (QEMU's fw_cfg or the image), the bzImage and initrd are first copied
//! into usable RAM below 4 GiB ("staging": the initrd stays there), the bzImage is checked there
//! ([`td_loader::linux::parse`]), and its protected-mode kernel is copied to a load address
//! chosen among the RAM that is still free. One code path once the bytes are in private memory.
//!
//! [`layout`] is that plan as a pure function of the memory map, the two lengths and the kernel's
//! header ([`KernelHeader`]): the firmware runs it on what it boots, and `td-shim-tool measure`
//! runs it on the map the VMM will give, so the host refuses exactly the setups the firmware
//! refuses.

use crate::memory_map::MemoryMap;
use alloc::vec::Vec;
use core::fmt;
use td_layout::layout::{FOUR_GIB, PAGE_SIZE};
use td_loader::linux::{E820Entry, KernelHeader, LinuxError};

/// Why a Linux boot could not be laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinuxBootError {
    /// No RAM range below 4 GiB holds the bzImage and initrd together.
    NoRoomToStage {
        /// Bytes needed (page-rounded bzImage + initrd).
        needed: u64,
    },
    /// The VMM's kernel is empty.
    EmptyKernel,
    /// The command line is not NUL-terminated or does not fit the hand-off region.
    BadCmdline {
        /// Its size as given.
        size: u32,
    },
    /// The kernel cannot be placed in the RAM left free by the staging, or the staged initrd is
    /// where the kernel cannot read it ([`layout`]).
    Placement(LinuxError),
}

impl fmt::Display for LinuxBootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoRoomToStage { needed } => write!(
                f,
                "linux: no RAM range below 4 GiB holds the kernel and initrd ({needed} bytes)"
            ),
            Self::EmptyKernel => write!(f, "linux: the kernel is empty"),
            Self::BadCmdline { size } => write!(
                f,
                "linux: a command line of {size} bytes is not NUL-terminated or does not fit"
            ),
            Self::Placement(e) => write!(f, "linux: {e}"),
        }
    }
}

/// Where the staged bzImage and initrd sit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Staging {
    /// The whole bzImage (setup sectors + protected-mode kernel), page aligned.
    pub bzimage: (u64, u64),
    /// The initrd, page aligned, if there is one.
    pub initrd: Option<(u64, u64)>,
}

fn page_up(x: u64) -> Option<u64> {
    x.checked_add(PAGE_SIZE - 1).map(|v| v & !(PAGE_SIZE - 1))
}

/// Places the bzImage at the top of the highest usable RAM range below 4 GiB that holds it and
/// the initrd, and the initrd right below it (initrds are conventionally loaded high).
pub fn plan_staging(
    map: &MemoryMap,
    bzimage_len: u64,
    initrd_len: u64,
) -> Result<Staging, LinuxBootError> {
    if bzimage_len == 0 {
        return Err(LinuxBootError::EmptyKernel);
    }
    let too_big = LinuxBootError::NoRoomToStage { needed: u64::MAX };
    let bz = page_up(bzimage_len).ok_or(too_big)?;
    let rd = page_up(initrd_len).ok_or(too_big)?;
    let needed = bz.checked_add(rd).ok_or(too_big)?;
    for r in map.ram().rev() {
        let end = r.end().min(FOUR_GIB) & !(PAGE_SIZE - 1);
        let base = page_up(r.base).ok_or(too_big)?;
        if end <= base || end - base < needed {
            continue;
        }
        let bz_at = end - bz;
        return Ok(Staging {
            bzimage: (bz_at, bzimage_len),
            initrd: (initrd_len > 0).then(|| (bz_at - rd, initrd_len)),
        });
    }
    Err(LinuxBootError::NoRoomToStage { needed })
}

/// Where a Linux boot goes: [`layout`]'s result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinuxLayout {
    /// Where the bzImage and initrd are staged ([`plan_staging`]).
    pub staging: Staging,
    /// Where the protected-mode kernel is loaded: its `init_size` window starts here
    /// ([`KernelHeader::place_kernel`] over [`free_ranges`] without the staging).
    pub kernel_load: u64,
}

/// Lays out a Linux boot in `map` (the memory map once the firmware has reserved what it keeps,
/// ACPI tables included): the staging of a `bzimage_len`-byte bzImage and an `initrd_len`-byte
/// initrd (0: none) by [`plan_staging`], then the kernel's load address by
/// [`KernelHeader::place_kernel`] over the RAM the staging leaves free: at or above
/// `pref_address`, aligned, its whole `init_size` window in free RAM below 4 GiB.
///
/// Also checks the staged initrd against `initrd_addr_max` as `boot_params` will
/// (`td_loader::linux::build_boot_params`), for a kernel that cannot take one above 4 GiB.
///
/// Pure, and total on any input: the firmware calls it after parsing the bzImage, the host with
/// the header from `td_loader::linux::parse_header` and the map QEMU will give.
pub fn layout(
    map: &MemoryMap,
    bzimage_len: u64,
    initrd_len: u64,
    header: &KernelHeader,
) -> Result<LinuxLayout, LinuxBootError> {
    let staging = plan_staging(map, bzimage_len, initrd_len)?;
    place(map, staging, header)
}

/// The second half of [`layout`], for a caller that has already staged the bzImage and initrd
/// where [`plan_staging`] put them (the firmware stages before it can read the header): places
/// the kernel around `staging` and checks the initrd against the header.
pub fn place(
    map: &MemoryMap,
    staging: Staging,
    header: &KernelHeader,
) -> Result<LinuxLayout, LinuxBootError> {
    let mut taken = alloc::vec![staging.bzimage];
    taken.extend(staging.initrd);
    let kernel_load = header
        .place_kernel(&free_ranges(map, &taken))
        .map_err(LinuxBootError::Placement)?;
    if let Some((addr, size)) = staging.initrd {
        if !header.can_load_above_4g() {
            let end = addr.checked_add(size).ok_or(LinuxBootError::Placement(
                LinuxError::InitrdWraps { addr, size },
            ))?;
            if end > FOUR_GIB {
                return Err(LinuxBootError::Placement(LinuxError::InitrdAbove4G {
                    addr,
                    size,
                }));
            }
            // size > 0: plan_staging stages no initrd of 0 bytes.
            let last = end - 1;
            if last > u64::from(header.initrd_addr_max) {
                return Err(LinuxBootError::Placement(LinuxError::InitrdAboveAddrMax {
                    last,
                    max: header.initrd_addr_max,
                }));
            }
        }
    }
    Ok(LinuxLayout {
        staging,
        kernel_load,
    })
}

/// The page-aligned base of a `size`-byte block at the top of the highest usable RAM range below
/// 4 GiB that holds it.
pub fn top_of_low_ram(map: &MemoryMap, size: u64) -> Option<u64> {
    map.ram().rev().find_map(|r| {
        let end = r.end().min(FOUR_GIB) & !(PAGE_SIZE - 1);
        let base = end.checked_sub(size)? & !(PAGE_SIZE - 1);
        (base >= r.base && base < end).then_some(base)
    })
}

/// Usable RAM ranges with `taken` ranges cut out: where the kernel may be placed.
pub fn free_ranges(map: &MemoryMap, taken: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut free: Vec<(u64, u64)> = map.ram().map(|r| (r.base, r.end())).collect();
    for &(t_base, t_len) in taken {
        let t_end = t_base.saturating_add(t_len);
        free = free
            .into_iter()
            .flat_map(|(b, e)| {
                let left = (b, e.min(t_base));
                let right = (b.max(t_end), e);
                [left, right]
            })
            .filter(|(b, e)| b < e)
            .collect();
    }
    free.into_iter().map(|(b, e)| (b, e - b)).collect()
}

/// The map as E820 records for `boot_params`.
pub fn e820(map: &MemoryMap) -> Vec<E820Entry> {
    map.ranges()
        .iter()
        .map(|r| E820Entry {
            addr: r.base,
            size: r.length,
            kind: r.kind,
        })
        .collect()
}

/// The command line's bytes without the NUL, from the VMM's NUL-terminated copy; at most `max`
/// bytes long.
pub fn cmdline_text(raw: &[u8], max: usize) -> Result<&[u8], LinuxBootError> {
    let bad = LinuxBootError::BadCmdline {
        size: u32::try_from(raw.len()).unwrap_or(u32::MAX),
    };
    let end = raw.iter().position(|&b| b == 0).ok_or(bad)?;
    if end > max {
        return Err(bad);
    }
    Ok(&raw[..end])
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    const MIB: u64 = 1 << 20;

    fn map(records: &[(u64, u64, u32)]) -> MemoryMap {
        let mut v = std::vec::Vec::new();
        for (b, l, t) in records {
            v.extend_from_slice(&b.to_le_bytes());
            v.extend_from_slice(&l.to_le_bytes());
            v.extend_from_slice(&t.to_le_bytes());
        }
        MemoryMap::from_e820_bytes(&v).unwrap()
    }

    #[test]
    fn stages_high_below_4g() {
        // q35 -m 5G: 2 GiB low, 3 GiB above 4 GiB; staging must stay below 4 GiB.
        let m = map(&[(0, 2048 * MIB, 1), (4096 * MIB, 3072 * MIB, 1)]);
        let s = plan_staging(&m, 14 * MIB + 5, 3 * MIB).unwrap();
        // 14 MiB + 5 bytes rounds up to 14 MiB + one page.
        let bz_at = 2048 * MIB - 14 * MIB - 4096;
        assert_eq!(s.bzimage, (bz_at, 14 * MIB + 5));
        assert_eq!(s.initrd, Some((bz_at - 3 * MIB, 3 * MIB)));
        let none = plan_staging(&m, MIB, 0).unwrap();
        assert_eq!(none.initrd, None);
    }

    #[test]
    fn top_of_low_ram_skips_high_memory_and_small_ranges() {
        let m = map(&[(0, 2048 * MIB, 1), (4096 * MIB, 3072 * MIB, 1)]);
        assert_eq!(top_of_low_ram(&m, 0x2_1000), Some(2048 * MIB - 0x2_1000));
        assert_eq!(top_of_low_ram(&m, 4096 * MIB), None);
        let small = map(&[(0, MIB, 1), (16 * MIB, 2 * MIB, 2)]);
        assert_eq!(top_of_low_ram(&small, 2 * MIB), None);
    }

    #[test]
    fn refuses_what_does_not_fit() {
        let m = map(&[(0, 16 * MIB, 1)]);
        assert_eq!(
            plan_staging(&m, 16 * MIB, 1),
            Err(LinuxBootError::NoRoomToStage {
                needed: 16 * MIB + 4096
            })
        );
        assert_eq!(plan_staging(&m, 0, 0), Err(LinuxBootError::EmptyKernel));
        assert!(plan_staging(&m, u64::MAX, 0).is_err());
    }

    #[test]
    fn free_ranges_cut_out_what_is_taken() {
        let m = map(&[(0, 128 * MIB, 1), (128 * MIB, MIB, 2)]);
        let free = free_ranges(&m, &[(100 * MIB, 10 * MIB), (0, MIB)]);
        assert_eq!(free, [(MIB, 99 * MIB), (110 * MIB, 18 * MIB)]);
    }

    /// Debian 12's cloud kernel (6.1): what placement reads of its header.
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
    const DEBIAN_BZIMAGE: u64 = 14_189_056;
    const INITRD: u64 = 607_722;

    /// A q35 map of `low` bytes below 4 GiB, carved as the firmware carves it, with 136 KiB of
    /// ACPI tables at the top of low RAM.
    fn carved(low: u64) -> MemoryMap {
        let mut m = map(&[(0, low, 1)]);
        crate::memory_map::carve_firmware_regions(&mut m).unwrap();
        let acpi = top_of_low_ram(&m, 136 << 10).unwrap();
        m.carve("acpi", acpi, 136 << 10, 4).unwrap();
        m
    }

    #[test]
    fn layout_stages_high_and_loads_the_kernel_at_pref_address() {
        let m = carved(512 * MIB);
        let l = layout(&m, DEBIAN_BZIMAGE, INITRD, &DEBIAN).unwrap();
        assert_eq!(l.staging, plan_staging(&m, DEBIAN_BZIMAGE, INITRD).unwrap());
        assert_eq!(l.kernel_load, 0x100_0000);
        let (rd, rd_len) = l.staging.initrd.unwrap();
        assert!(l.kernel_load + u64::from(DEBIAN.init_size) <= rd);
        assert!(rd + rd_len <= l.staging.bzimage.0);
    }

    /// Regression (with td-loader's placement fix): `-m 64M` and `-m 80M` leave no window of
    /// `init_size` bytes at or above pref_address beside the staging; the firmware used to load
    /// the kernel lower, where it decompressed over what it did not own.
    #[test]
    fn layout_refuses_too_little_ram_above_pref_address() {
        for low in [64 * MIB, 80 * MIB] {
            let m = carved(low);
            let err = layout(&m, DEBIAN_BZIMAGE, INITRD, &DEBIAN).unwrap_err();
            assert!(
                matches!(
                    err,
                    LinuxBootError::Placement(LinuxError::NoRoomForKernel {
                        size: 0x337_8000,
                        floor: 0x100_0000,
                        ..
                    })
                ),
                "{err:?}"
            );
            let msg = std::format!("{err}");
            assert!(msg.contains("at or above pref_address 0x1000000"), "{msg}");
        }
        // 96 MiB is enough.
        assert!(layout(&carved(96 * MIB), DEBIAN_BZIMAGE, INITRD, &DEBIAN).is_ok());
    }

    #[test]
    fn layout_refuses_a_huge_init_size() {
        let huge = KernelHeader {
            init_size: 0xFFFF_F000,
            ..DEBIAN
        };
        let m = map(&[(0, 2048 * MIB, 1), (4096 * MIB, 1 << 40, 1)]);
        assert_eq!(
            layout(&m, DEBIAN_BZIMAGE, INITRD, &huge),
            Err(LinuxBootError::Placement(LinuxError::KernelTooLarge {
                size: 0xFFFF_F000,
                floor: 0x100_0000,
                align: 0x20_0000
            }))
        );
    }

    #[test]
    fn layout_checks_the_initrd_against_initrd_addr_max() {
        // q35 -m 2560M: all 2.5 GiB below 4 GiB, so the initrd is staged above 2 GiB.
        let m = carved(2560 * MIB);
        assert!(layout(&m, DEBIAN_BZIMAGE, INITRD, &DEBIAN).is_ok());
        let below_4g_only = KernelHeader {
            xloadflags: 0x1,
            ..DEBIAN
        };
        assert!(matches!(
            layout(&m, DEBIAN_BZIMAGE, INITRD, &below_4g_only),
            Err(LinuxBootError::Placement(LinuxError::InitrdAboveAddrMax {
                max: 0x7FFF_FFFF,
                ..
            }))
        ));
        // Without an initrd there is nothing to check.
        assert!(layout(&m, DEBIAN_BZIMAGE, 0, &below_4g_only).is_ok());
    }

    #[test]
    fn layout_passes_on_staging_errors() {
        let m = carved(512 * MIB);
        assert_eq!(layout(&m, 0, 0, &DEBIAN), Err(LinuxBootError::EmptyKernel));
        assert!(matches!(
            layout(&m, u64::MAX, u64::MAX, &DEBIAN),
            Err(LinuxBootError::NoRoomToStage { .. })
        ));
    }

    #[test]
    fn cmdline_must_be_terminated_and_bounded() {
        assert_eq!(
            cmdline_text(b"console=ttyS0\0", 100).unwrap(),
            b"console=ttyS0"
        );
        assert_eq!(cmdline_text(b"\0", 100).unwrap(), b"");
        assert_eq!(
            cmdline_text(b"abc", 100),
            Err(LinuxBootError::BadCmdline { size: 3 })
        );
        assert_eq!(
            cmdline_text(b"abcdef\0", 3),
            Err(LinuxBootError::BadCmdline { size: 7 })
        );
    }
}
