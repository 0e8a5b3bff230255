//! `td_shim::acpi::add_tables` on arbitrary RSDP/RSDT/XSDT bytes: the firmware adds its own
//! tables to the VMM's and rebuilds the root tables the VMM's RSDP points at (a table with a
//! signature already listed replaces that entry).
//!
//! Input (all little-endian):
//!
//! ```text
//! u32 base        guest address of the region
//! u16 rsdp        offset of the RSDP in the region
//! u16 at          offset from which the new tables are written
//! u8  tables      how many tables to add (0 to 3)
//! u8  rsdp size   bytes of the RSDP's file
//! rest            the region's bytes, followed by 1 KiB of zeroes (room for the new tables)
//! ```
//!
//! As in the firmware, the region lies below 4 GiB.
#![no_main]

use libfuzzer_sys::fuzz_target;
use td_shim::acpi::{self, add_tables, Extent, HEADER_SIZE};

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn sum(b: &[u8]) -> u8 {
    b.iter().fold(0u8, |a, &x| a.wrapping_add(x))
}

fuzz_target!(|data: &[u8]| {
    let Some((head, rest)) = data.split_first_chunk::<10>() else {
        return;
    };
    let base = u64::from(u32_at(head, 0));
    let rsdp_off = usize::from(u16::from_le_bytes([head[4], head[5]]));
    let at = usize::from(u16::from_le_bytes([head[6], head[7]]));
    let own = [
        acpi::ccel(2, 0, 0x1_0000, 0x80_0000),
        acpi::rtmr_table(&[[0x5A; 48]; 4]),
        acpi::table(*b"TEST", 1, b"body"),
    ];
    let own = &own[..usize::from(head[8] % 4)];
    let mut region = rest.to_vec();
    region.resize(rest.len() + 1024, 0);
    if base + region.len() as u64 > 1 << 32 {
        return;
    }
    let rsdp = Extent {
        addr: base + rsdp_off as u64,
        size: u64::from(head[9]),
    };
    // As given: the new tables may overwrite it when `at` is before the RSDP.
    let revision = region.get(rsdp_off + 15).copied().unwrap_or(0);
    let before = region.clone();
    let Ok(added) = add_tables(&mut region, base, rsdp, at, own) else {
        assert!(region == before, "add_tables wrote although it failed");
        return;
    };
    assert_eq!(added.len(), own.len());
    // The RSDP is rewritten last, so its checksums hold whatever `at` is.
    assert_eq!(sum(&region[rsdp_off..rsdp_off + 20]), 0, "RSDP checksum");
    let rsdp_len = if revision >= 2 {
        // The extended checksum covers the RSDP's Length bytes.
        let len = u32_at(&region, rsdp_off + 20) as usize;
        assert_eq!(
            sum(&region[rsdp_off..rsdp_off + len]),
            0,
            "RSDP extended checksum"
        );
        len
    } else {
        20
    };
    for a in &added {
        assert!(*a >= base + at as u64 && a.is_multiple_of(8));
    }
    // When the RSDP lies before the new tables (as in the firmware, which adds them after the
    // VMM's files), they and the new root tables are intact.
    if rsdp_off + rsdp_len > at {
        return;
    }
    for (addr, table) in added.iter().zip(own) {
        let o = (addr - base) as usize;
        assert_eq!(
            &region[o..o + table.len()],
            &table[..],
            "an added table was overwritten"
        );
    }
    let mut roots = vec![(u64::from(u32_at(&region, rsdp_off + 16)), 4)];
    roots.retain(|&(addr, _)| addr != 0);
    if revision >= 2 {
        let xsdt = u64::from_le_bytes(region[rsdp_off + 24..rsdp_off + 32].try_into().unwrap());
        if xsdt != 0 {
            roots.push((xsdt, 8));
        }
    }
    for (addr, width) in roots {
        let o = (addr - base) as usize;
        assert!(o >= at, "the new root tables are written after `at`");
        let len = u32_at(&region, o + 4) as usize;
        let table = &region[o..o + len];
        assert_eq!(sum(table), 0, "root table checksum");
        assert!((len - HEADER_SIZE).is_multiple_of(width));
        let entries: Vec<u64> = table[HEADER_SIZE..]
            .chunks_exact(width)
            .map(|c| {
                let mut v = [0u8; 8];
                v[..width].copy_from_slice(c);
                u64::from_le_bytes(v)
            })
            .collect();
        // Each added table is listed: appended, or in place of the entry of a table with its
        // signature (the firmware's extended MADT replaces the VMM's), never twice.
        for a in &added {
            assert_eq!(
                entries.iter().filter(|&e| e == a).count(),
                1,
                "added table {a:#x} is listed once"
            );
        }
    }
});
