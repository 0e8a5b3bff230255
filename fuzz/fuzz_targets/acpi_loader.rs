//! QEMU's ACPI table-loader script (fw_cfg `etc/table-loader`): `td_shim::acpi::plan` and
//! `link` with a fake fw_cfg file reader, then `add_tables` as the firmware runs them.
//!
//! Input (all little-endian):
//!
//! ```text
//! u32 base        guest address of the region (page-aligned by the target)
//! u16 n           script length in bytes
//! [n] script      the table-loader commands
//! then files:     u8 name length, name, u16 size, data (cut short at the end of the input)
//! ```
#![no_main]

use libfuzzer_sys::fuzz_target;
use td_shim::acpi::{self, add_tables, link, plan, FIRMWARE_TABLES_ROOM};

fn take<'a>(data: &mut &'a [u8], n: usize) -> &'a [u8] {
    let (head, rest) = data.split_at(n.min(data.len()));
    *data = rest;
    head
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn sum(b: &[u8]) -> u8 {
    b.iter().fold(0u8, |a, &x| a.wrapping_add(x))
}

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let head = take(&mut data, 6);
    if head.len() < 6 {
        return;
    }
    let base = u64::from(u32_at(head, 0) & !0xFFF);
    let script = take(&mut data, usize::from(u16_at(head, 4)));
    let mut files: Vec<(String, &[u8])> = Vec::new();
    while !data.is_empty() {
        let n = usize::from(take(&mut data, 1)[0]);
        let name = String::from_utf8_lossy(take(&mut data, n)).into_owned();
        let size = take(&mut data, 2);
        let size = if size.len() == 2 {
            usize::from(u16_at(size, 0))
        } else {
            0
        };
        files.push((name, take(&mut data, size)));
    }
    let file = |name: &str| files.iter().find(|(n, _)| n == name).map(|(_, d)| *d);

    let Ok(p) = plan(script, |name| file(name).map(|d| d.len() as u64)) else {
        return;
    };
    assert!(p.size.is_multiple_of(4096));
    // As the firmware does: one region for the VMM's files and the room after them, below 4 GiB.
    if base + p.size + FIRMWARE_TABLES_ROOM > 1 << 32 {
        return;
    }
    let mut region = vec![0xA5u8; (p.size + FIRMWARE_TABLES_ROOM) as usize];
    let Ok(linked) = link(&p, &mut region, base, |name, dst| match file(name) {
        Some(d) if d.len() == dst.len() => {
            dst.copy_from_slice(d);
            true
        }
        _ => false,
    }) else {
        return;
    };
    // The files lie one after another inside [base, base + size); the room is untouched.
    let mut cursor = base;
    for f in &linked.files {
        assert!(f.addr >= cursor, "files overlap or go backwards");
        cursor = f.addr + f.size;
        assert!(
            cursor <= base + p.size,
            "a file runs past the planned region"
        );
    }
    assert!(linked.files.contains(&linked.rsdp));
    assert!(
        region[p.size as usize..].iter().all(|&b| b == 0xA5),
        "link wrote past the plan"
    );

    // Then the firmware adds its own tables after the VMM's.
    let own = vec![
        acpi::ccel(0, 0, 0x1_0000, 0x80_0000),
        acpi::rtmr_table(&[[7; 48]; 4]),
    ];
    let rsdp = (linked.rsdp.addr - base) as usize;
    let revision = region[rsdp + 15];
    let Ok(added) = add_tables(&mut region, base, linked.rsdp, p.size as usize, &own) else {
        return;
    };
    assert_eq!(added.len(), own.len());
    assert_eq!(sum(&region[rsdp..rsdp + 20]), 0, "RSDP checksum");
    if revision >= 2 {
        // The extended checksum covers the RSDP's Length bytes.
        let len = u32_at(&region, rsdp + 20) as usize;
        assert_eq!(sum(&region[rsdp..rsdp + len]), 0, "RSDP extended checksum");
    }
    for (addr, table) in added.iter().zip(&own) {
        assert!(*addr >= base + p.size && addr.is_multiple_of(8));
        let at = (addr - base) as usize;
        assert_eq!(
            &region[at..at + table.len()],
            &table[..],
            "an added table was overwritten"
        );
    }
    // The new RSDT (and XSDT) list each added table once (appended, or in place of a listed table
    // with its signature), with a valid checksum.
    let mut roots = vec![(u64::from(u32_at(&region, rsdp + 16)), 4)];
    roots.retain(|&(addr, _)| addr != 0);
    if revision >= 2 {
        let xsdt = u64::from_le_bytes(region[rsdp + 24..rsdp + 32].try_into().unwrap());
        if xsdt != 0 {
            roots.push((xsdt, 8));
        }
    }
    for (addr, width) in roots {
        let at = addr
            .checked_sub(base)
            .expect("root table inside the region") as usize;
        let len = u32_at(&region, at + 4) as usize;
        let table = &region[at..at + len];
        assert_eq!(sum(table), 0, "root table checksum");
        let entries: Vec<u64> = table[acpi::HEADER_SIZE..]
            .chunks_exact(width)
            .map(|c| {
                let mut v = [0u8; 8];
                v[..width].copy_from_slice(c);
                u64::from_le_bytes(v)
            })
            .collect();
        for a in &added {
            assert_eq!(
                entries.iter().filter(|&e| e == a).count(),
                1,
                "added table {a:#x} is listed once"
            );
        }
    }
});
