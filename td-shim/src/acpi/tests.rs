extern crate std;
use super::*;
use proptest::prelude::*;
use std::vec;
use std::vec::Vec;

fn cmd(kind: u32, fields: &[(&str, usize)], tail: &[(usize, u64, usize)]) -> Vec<u8> {
    let mut c = vec![0u8; COMMAND_SIZE];
    c[0..4].copy_from_slice(&kind.to_le_bytes());
    for (name, at) in fields {
        c[*at..*at + name.len()].copy_from_slice(name.as_bytes());
    }
    for &(at, v, w) in tail {
        c[at..at + w].copy_from_slice(&v.to_le_bytes()[..w]);
    }
    c
}

const N: usize = NAME_SIZE;

fn allocate(file: &str, align: u64, zone: u64) -> Vec<u8> {
    cmd(
        ALLOCATE,
        &[(file, 4)],
        &[(4 + N, align, 4), (8 + N, zone, 1)],
    )
}
fn pointer(dest: &str, src: &str, offset: u64, size: u64) -> Vec<u8> {
    cmd(
        ADD_POINTER,
        &[(dest, 4), (src, 4 + N)],
        &[(4 + 2 * N, offset, 4), (8 + 2 * N, size, 1)],
    )
}
fn checksum(file: &str, offset: u64, start: u64, length: u64) -> Vec<u8> {
    cmd(
        ADD_CHECKSUM,
        &[(file, 4)],
        &[(4 + N, offset, 4), (8 + N, start, 4), (12 + N, length, 4)],
    )
}

fn sum(b: &[u8]) -> u8 {
    b.iter().fold(0u8, |a, &x| a.wrapping_add(x))
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// A script shaped like QEMU's: tables in high memory, an RSDP whose RSDT/XSDT pointers are
/// patched, then checksummed.
fn qemu_like() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let mut script = vec![];
    script.extend(allocate("etc/acpi/tables", 64, 1));
    script.extend(allocate("etc/acpi/rsdp", 16, 2));
    // RSDP: RsdtAddress at 16 (u32), XsdtAddress at 24 (u64), both relative to the tables.
    script.extend(pointer("etc/acpi/rsdp", "etc/acpi/tables", 16, 4));
    script.extend(pointer("etc/acpi/rsdp", "etc/acpi/tables", 24, 8));
    script.extend(checksum("etc/acpi/rsdp", 8, 0, 20));
    script.extend(vec![0u8; COMMAND_SIZE]); // padding
    let mut rsdp = vec![0u8; 36];
    rsdp[0..8].copy_from_slice(b"RSD PTR ");
    rsdp[16..20].copy_from_slice(&0x40u32.to_le_bytes());
    rsdp[24..32].copy_from_slice(&0x80u64.to_le_bytes());
    (script, vec![0xAB; 0x1000], rsdp)
}

/// Plans and links `script` over the files `files` into a region of the plan's size plus
/// [`FIRMWARE_TABLES_ROOM`], as the firmware does.
fn run_files(
    script: &[u8],
    files: &[(&str, &[u8])],
    base: u64,
) -> Result<(Linked, Vec<u8>), AcpiError> {
    let find = |f: &str| files.iter().find(|(n, _)| *n == f).map(|(_, d)| *d);
    let p = plan(script, |f| find(f).map(|d| d.len() as u64))?;
    let mut region = vec![0x5Au8; (p.size + FIRMWARE_TABLES_ROOM) as usize];
    let linked = link(&p, &mut region, base, |f, dst| match find(f) {
        Some(src) if src.len() == dst.len() => {
            dst.copy_from_slice(src);
            true
        }
        _ => false,
    })?;
    Ok((linked, region))
}

fn run(
    script: &[u8],
    tables: &[u8],
    rsdp: &[u8],
    base: u64,
) -> Result<(Linked, Vec<u8>), AcpiError> {
    run_files(
        script,
        &[("etc/acpi/tables", tables), ("etc/acpi/rsdp", rsdp)],
        base,
    )
}

#[test]
fn links_a_qemu_like_script() {
    let (script, tables, rsdp) = qemu_like();
    let (linked, region) = run(&script, &tables, &rsdp, 0x7F0_0000).unwrap();
    assert_eq!(
        linked.files,
        [
            Extent {
                addr: 0x7F0_0000,
                size: 0x1000
            },
            Extent {
                addr: 0x7F0_1000,
                size: 36
            }
        ]
    );
    // The RSDP follows the 4 KiB of tables at its 16-byte alignment.
    assert_eq!(linked.rsdp, linked.files[1]);
    assert_eq!(&region[..0x1000], &tables[..]);
    let r = &region[0x1000..0x1024];
    assert_eq!(u32_at(r, 16), 0x7F0_0040);
    assert_eq!(u64_at(r, 24), 0x7F0_0080);
    assert_eq!(sum(&r[..20]), 0);
    // The rest of the planned region is zeroed, the room after it left alone.
    assert!(region[0x1024..0x2000].iter().all(|&b| b == 0));
    assert!(region[0x2000..].iter().all(|&b| b == 0x5A));
}

#[test]
fn every_rule_has_its_error() {
    let (script, tables, rsdp) = qemu_like();
    let at = |i: usize| i * COMMAND_SIZE;
    let with = |i: usize, c: Vec<u8>| {
        let mut s = script.clone();
        s[at(i)..at(i) + COMMAND_SIZE].copy_from_slice(&c);
        s
    };
    let run = |s: &[u8], base| run(s, &tables, &rsdp, base).map(|_| ());
    assert_eq!(run(&script[..100], 0), Err(AcpiError::BadScriptLength(100)));
    assert_eq!(
        run(&with(2, cmd(9, &[], &[])), 0),
        Err(AcpiError::UnknownCommand {
            index: 2,
            command: 9
        })
    );
    let mut unterminated = script.clone();
    unterminated[4..4 + N].fill(b'a');
    assert_eq!(run(&unterminated, 0), Err(AcpiError::BadName { index: 0 }));
    assert_eq!(
        run(&with(0, allocate("etc/acpi/tables", 3, 1)), 0),
        Err(AcpiError::BadAllocate { index: 0 })
    );
    assert_eq!(
        run(&with(0, allocate("etc/acpi/tables", 64, 7)), 0),
        Err(AcpiError::BadAllocate { index: 0 })
    );
    assert_eq!(
        run(&with(1, allocate("etc/acpi/tables", 16, 2)), 0),
        Err(AcpiError::DuplicateAllocate { index: 1 })
    );
    assert_eq!(
        run(&with(0, allocate("etc/missing", 64, 1)), 0),
        Err(AcpiError::BadFile { index: 0, size: 0 })
    );
    assert_eq!(
        run(&with(2, pointer("etc/acpi/rsdp", "etc/nope", 16, 4)), 0),
        Err(AcpiError::NotAllocated { index: 2 })
    );
    assert_eq!(
        run(
            &with(2, pointer("etc/acpi/rsdp", "etc/acpi/tables", 34, 4)),
            0
        ),
        Err(AcpiError::OutOfBounds { index: 2 })
    );
    assert_eq!(
        run(
            &with(2, pointer("etc/acpi/rsdp", "etc/acpi/tables", 16, 3)),
            0
        ),
        Err(AcpiError::OutOfBounds { index: 2 })
    );
    // The tables' address no longer fits a 16-bit pointer field.
    assert_eq!(
        run(
            &with(2, pointer("etc/acpi/rsdp", "etc/acpi/tables", 16, 2)),
            0x7F0_0000
        ),
        Err(AcpiError::PointerOverflow { index: 2 })
    );
    assert_eq!(
        run(&with(4, checksum("etc/acpi/rsdp", 8, 30, 10)), 0),
        Err(AcpiError::OutOfBounds { index: 4 })
    );
    assert_eq!(
        run(&with(4, checksum("etc/acpi/rsdp", 36, 0, 20)), 0),
        Err(AcpiError::OutOfBounds { index: 4 })
    );
    assert_eq!(
        run(&with(1, allocate("etc/acpi/rsdp", 16, 1)), 0),
        Err(AcpiError::NoRsdp)
    );
    // A second file in the F segment: which one would be the RSDP?
    assert_eq!(
        run(&with(0, allocate("etc/acpi/tables", 64, 2)), 0),
        Err(AcpiError::BadAllocate { index: 1 })
    );
    assert_eq!(run(&script, 0xFFFF_F000), Err(AcpiError::TooLarge));
    let p = plan(&script, |f| {
        Some(if f == "etc/acpi/rsdp" { 36 } else { 0x1000 })
    })
    .unwrap();
    assert_eq!(
        link(&p, &mut [0u8; 0x1FFF], 0, |_, _| true),
        Err(AcpiError::RegionTooSmall {
            needed: 0x2000,
            len: 0x1FFF
        })
    );
    assert_eq!(
        link(&p, &mut [0u8; 0x2000], 0, |f, _| f != "etc/acpi/rsdp"),
        Err(AcpiError::BadFile { index: 1, size: 36 })
    );
}

/// Regression: a 4 MiB file (the largest allowed) used to be read into a heap `Vec` of its size,
/// more than the firmware's 3 MiB heap. Now it is read straight into its place in the region.
#[test]
fn links_a_4_mib_file_in_place() {
    let big = vec![0xC3u8; MAX_FILE_SIZE as usize];
    let mut rsdp = vec![0u8; 36];
    rsdp[..8].copy_from_slice(b"RSD PTR ");
    let mut script = vec![];
    script.extend(allocate("etc/acpi/tables", 64, 1));
    script.extend(allocate("etc/acpi/rsdp", 16, 2));
    script.extend(pointer("etc/acpi/rsdp", "etc/acpi/tables", 16, 4));
    let p = plan(&script, |f| {
        Some(match f {
            "etc/acpi/tables" => big.len() as u64,
            _ => 36,
        })
    })
    .unwrap();
    assert_eq!(p.size, MAX_FILE_SIZE + 0x1000);
    let mut region = vec![0u8; p.size as usize];
    let start = region.as_ptr() as usize;
    let mut targets = vec![];
    let base = 0x4000_0000;
    let linked = link(&p, &mut region, base, |f, dst| {
        targets.push((dst.as_ptr() as usize - start, dst.len()));
        dst.copy_from_slice(if f == "etc/acpi/tables" { &big } else { &rsdp });
        true
    })
    .unwrap();
    // Each file was read into the region itself, at its offset.
    assert_eq!(targets, [(0, big.len()), (big.len(), 36)]);
    assert!(region[..big.len()].iter().all(|&b| b == 0xC3));
    assert_eq!(
        linked.rsdp,
        Extent {
            addr: base + MAX_FILE_SIZE,
            size: 36
        }
    );
    assert_eq!(u32_at(&region, big.len() + 16), base as u32);
}

/// Regression: files totalling more than the firmware can reserve were accepted (up to 1024 files
/// of 4 MiB each).
#[test]
fn files_beyond_the_total_bound_are_refused() {
    let mut script = vec![];
    script.extend(allocate("a", 64, 1));
    script.extend(allocate("b", 64, 1));
    script.extend(allocate("c", 16, 2));
    // Two files of 4 MiB fill the bound exactly; a third byte is one too many.
    assert_eq!(
        plan(&script, |f| Some(if f == "c" { 1 } else { MAX_FILE_SIZE })),
        Err(AcpiError::FilesTooLarge { index: 2 })
    );
    let p = plan(&script[..2 * COMMAND_SIZE], |_| Some(MAX_FILE_SIZE));
    assert_eq!(
        p,
        Err(AcpiError::NoRsdp),
        "8 MiB of files is within the bound"
    );
    // Alignment padding counts: 8 MiB - 1 bytes, then one byte aligned to 4 KiB.
    let mut script = vec![];
    script.extend(allocate("a", 1, 1));
    script.extend(allocate("b", 1, 1));
    script.extend(allocate("c", 4096, 2));
    let sizes = |f: &str| {
        Some(match f {
            "a" => MAX_FILE_SIZE,
            "b" => MAX_FILE_SIZE - 1,
            _ => 1,
        })
    };
    assert_eq!(
        plan(&script, sizes),
        Err(AcpiError::FilesTooLarge { index: 2 })
    );
    let align = 2 * COMMAND_SIZE + 4 + N;
    script[align..align + 4].copy_from_slice(&1u32.to_le_bytes());
    assert_eq!(plan(&script, sizes).unwrap().size, MAX_FILES_SIZE);
}

/// A region with the VMM's tables: an RSDT of one entry at 0x40, an XSDT of one entry at 0x80
/// (each if its address is given), and the RSDP `rsdp` at 0x100. Returns the region and the RSDP's
/// extent.
fn vmm_region(base: u64, rsdp: &[u8]) -> (Vec<u8>, Extent) {
    let mut region = vec![0u8; 0x1000];
    let rsdt = table(*b"RSDT", 1, &0x1234u32.to_le_bytes());
    let xsdt = table(*b"XSDT", 1, &0x1234u64.to_le_bytes());
    region[0x40..0x40 + rsdt.len()].copy_from_slice(&rsdt);
    region[0x80..0x80 + xsdt.len()].copy_from_slice(&xsdt);
    region[0x100..0x100 + rsdp.len()].copy_from_slice(rsdp);
    let extent = Extent {
        addr: base + 0x100,
        size: rsdp.len() as u64,
    };
    (region, extent)
}

/// An RSDP of `len` bytes with `revision`, RsdtAddress `rsdt`, and from revision 2 Length 36 and
/// XsdtAddress `xsdt` (as far as `len` reaches).
fn rsdp_bytes(revision: u8, rsdt: u32, xsdt: u64, len: usize) -> Vec<u8> {
    let mut r = vec![0u8; len.max(36)];
    r[..8].copy_from_slice(b"RSD PTR ");
    r[15] = revision;
    r[16..20].copy_from_slice(&rsdt.to_le_bytes());
    if revision >= 2 {
        r[20..24].copy_from_slice(&36u32.to_le_bytes());
        r[24..32].copy_from_slice(&xsdt.to_le_bytes());
    }
    r.truncate(len);
    r
}

#[test]
fn adds_tables_to_the_rsdt_and_xsdt() {
    let base = 0x7F0_0000u64;
    let rsdp = rsdp_bytes(2, (base + 0x40) as u32, base + 0x80, 36);
    let (mut region, extent) = vmm_region(base, &rsdp);

    let ccel = ccel(0, 0, 0x1_0000, 0x1A_0000);
    assert_eq!(ccel.len(), 56);
    assert_eq!(sum(&ccel), 0);
    let added = add_tables(
        &mut region,
        base,
        extent,
        0x200,
        core::slice::from_ref(&ccel),
    )
    .unwrap();
    assert_eq!(added, [base + 0x200]);
    assert_eq!(&region[0x200..0x200 + 56], &ccel[..]);
    // The RSDP points at new root tables that list the old entry and the CCEL.
    let r = &region[0x100..0x124];
    assert_eq!(sum(&r[..20]), 0);
    assert_eq!(sum(r), 0);
    let new_rsdt = (u64::from(u32_at(r, 16)) - base) as usize;
    let t = &region[new_rsdt..new_rsdt + 44];
    assert_eq!(&t[..4], b"RSDT");
    assert_eq!(u32_at(t, 4), 44);
    assert_eq!(sum(t), 0);
    assert_eq!(u32_at(t, 36), 0x1234);
    assert_eq!(u64::from(u32_at(t, 40)), base + 0x200);
    let new_xsdt = (u64_at(r, 24) - base) as usize;
    let x = &region[new_xsdt..new_xsdt + 52];
    assert_eq!(&x[..4], b"XSDT");
    assert_eq!(u32_at(x, 4), 52);
    assert_eq!(sum(x), 0);
    assert_eq!(u64_at(x, 36), 0x1234);
    assert_eq!(u64_at(x, 44), base + 0x200);
}

/// Regression: an ACPI 2.0 RSDP with RsdtAddress 0 and an XSDT was refused. The firmware's tables
/// now go to the XSDT alone, and RsdtAddress stays 0.
#[test]
fn adds_tables_to_the_xsdt_alone_when_there_is_no_rsdt() {
    let base = 0x7F0_0000u64;
    let rsdp = rsdp_bytes(2, 0, base + 0x80, 36);
    let (mut region, extent) = vmm_region(base, &rsdp);
    let own = [ccel(2, 0, 0x1_0000, 0x80_0000), rtmr_table(&[[7; 48]; 4])];
    let added = add_tables(&mut region, base, extent, 0x200, &own).unwrap();
    assert_eq!(added.len(), 2);
    let r = &region[0x100..0x124];
    assert_eq!(u32_at(r, 16), 0, "no RSDT appears");
    assert_eq!(sum(&r[..20]), 0);
    assert_eq!(sum(r), 0);
    let x = (u64_at(r, 24) - base) as usize;
    assert!(x >= 0x200);
    let x = &region[x..x + 60];
    assert_eq!(&x[..4], b"XSDT");
    assert_eq!(u32_at(x, 4), 60);
    assert_eq!(sum(x), 0);
    assert_eq!(
        [u64_at(x, 36), u64_at(x, 44), u64_at(x, 52)],
        [0x1234, added[0], added[1]]
    );
    // The RSDT at 0x40, which the RSDP does not name, is left alone.
    assert_eq!(u32_at(&region, 0x40 + 4), 40);
    // Neither root table: refused.
    let rsdp = rsdp_bytes(2, 0, 0, 36);
    let (mut region, extent) = vmm_region(base, &rsdp);
    assert_eq!(
        add_tables(&mut region, base, extent, 0x200, &own),
        Err(AcpiError::BadRootTables)
    );
}

#[test]
fn an_acpi_1_rsdp_in_a_20_byte_file_gets_an_rsdt() {
    let base = 0x10_0000u64;
    let rsdp = rsdp_bytes(0, (base + 0x40) as u32, 0, 20);
    let (mut region, extent) = vmm_region(base, &rsdp);
    let added = add_tables(&mut region, base, extent, 0x200, &[ccel(0, 0, 1, 2)]).unwrap();
    let r = &region[0x100..0x114];
    assert_eq!(sum(r), 0);
    let t = (u64::from(u32_at(r, 16)) - base) as usize;
    assert_eq!(u32_at(&region, t + 4), 44);
    assert_eq!(u64::from(u32_at(&region, t + 40)), added[0]);
    // The 16 bytes after the 20-byte file are not touched.
    assert!(region[0x114..0x124].iter().all(|&b| b == 0));
}

/// Regression, the exact scenario: a 20-byte RSDP (an ACPI 1.0 file) marked revision 2, linked at
/// the end of the VMM's files, right before the room where the firmware writes its CCEL. The
/// firmware used to read and patch 36 bytes, so the extended checksum landed in the CCEL.
#[test]
fn a_20_byte_rsdp_marked_revision_2_is_refused() {
    let base = 0x7F0_0000u64;
    let mut script = vec![];
    script.extend(allocate("etc/acpi/tables", 64, 1));
    script.extend(allocate("etc/acpi/rsdp", 4, 2));
    script.extend(pointer("etc/acpi/rsdp", "etc/acpi/tables", 16, 4));
    script.extend(checksum("etc/acpi/rsdp", 8, 0, 20));
    let mut tables = vec![0u8; 0xFEC];
    let rsdt = table(*b"RSDT", 1, &0x1234u32.to_le_bytes());
    tables[0x40..0x40 + rsdt.len()].copy_from_slice(&rsdt);
    let rsdp = rsdp_bytes(2, 0x40, 0, 20);
    let (linked, mut region) = run(&script, &tables, &rsdp, base).unwrap();
    // The RSDP's file ends exactly where the firmware's room starts.
    assert_eq!(
        linked.rsdp,
        Extent {
            addr: base + 0xFEC,
            size: 20
        }
    );
    let before = region.clone();
    let own = [ccel(2, 0, 0x1_0000, 0x80_0000)];
    assert_eq!(
        add_tables(&mut region, base, linked.rsdp, 0x1000, &own),
        Err(AcpiError::RsdpTooShort {
            file_size: 20,
            needed: 36
        })
    );
    assert_eq!(region, before, "nothing is written");
}

#[test]
fn a_revision_2_rsdp_length_must_fit_its_file() {
    let base = 0x7F0_0000u64;
    let own = [ccel(2, 0, 1, 2)];
    let with_length = |length: u32, file: usize| {
        let mut r = rsdp_bytes(2, (base + 0x40) as u32, base + 0x80, file);
        r[20..24].copy_from_slice(&length.to_le_bytes());
        r
    };
    for (length, file) in [(40, 36), (20, 36), (0, 36), (u32::MAX, 36)] {
        let (mut region, extent) = vmm_region(base, &with_length(length, file));
        assert_eq!(
            add_tables(&mut region, base, extent, 0x200, &own),
            Err(AcpiError::BadRsdpLength {
                length,
                file_size: 36
            })
        );
    }
    // A longer RSDP (a later revision) inside its file: the extended checksum covers Length.
    let (mut region, extent) = vmm_region(base, &with_length(40, 48));
    add_tables(&mut region, base, extent, 0x200, &own).unwrap();
    assert_eq!(sum(&region[0x100..0x114]), 0);
    assert_eq!(sum(&region[0x100..0x128]), 0);
    // A file too short for even ACPI 1.0.
    let (mut region, extent) = vmm_region(base, &rsdp_bytes(0, 0x40, 0, 19));
    assert_eq!(
        add_tables(&mut region, base, extent, 0x200, &own),
        Err(AcpiError::RsdpTooShort {
            file_size: 19,
            needed: 20
        })
    );
}

#[test]
fn add_tables_refuses_what_does_not_fit_or_is_not_there() {
    let rsdp = Extent {
        addr: 0x100,
        size: 20,
    };
    let mut region = vec![0u8; 0x200];
    assert_eq!(
        add_tables(&mut region, 0, rsdp, 0x180, &[]),
        Err(AcpiError::BadRootTables)
    );
    region[0x100..0x108].copy_from_slice(b"RSD PTR ");
    region[0x110..0x114].copy_from_slice(&0x40u32.to_le_bytes());
    let rsdt = table(*b"RSDT", 1, &[]);
    region[0x40..0x40 + rsdt.len()].copy_from_slice(&rsdt);
    let before = region.clone();
    assert_eq!(
        add_tables(&mut region, 0, rsdp, 0x1F0, &[ccel(0, 0, 1, 2)]),
        Err(AcpiError::NoRoomForTables)
    );
    assert_eq!(region, before, "nothing is written");
    // The RSDP and root tables must lie before `at`.
    assert_eq!(
        add_tables(&mut region, 0, rsdp, 0x110, &[]),
        Err(AcpiError::BadRootTables)
    );
    assert_eq!(
        add_tables(
            &mut region,
            0,
            Extent {
                addr: 0x100,
                size: 20
            },
            0x114,
            &[]
        ),
        Ok(vec![])
    );
    // An RSDT whose signature is not "RSDT".
    let mut region = before.clone();
    region[0x40] = b'X';
    assert_eq!(
        add_tables(&mut region, 0, rsdp, 0x140, &[]),
        Err(AcpiError::BadRootTables)
    );
    region[0x40] = b'R';
    assert!(add_tables(&mut region, 0, rsdp, 0x140, &[]).is_ok());
}

#[test]
fn a_linked_qemu_like_script_gets_the_firmware_tables() {
    let (script, mut tables, mut rsdp) = qemu_like();
    rsdp[15] = 2;
    rsdp[20..24].copy_from_slice(&36u32.to_le_bytes());
    let rsdt = table(*b"RSDT", 1, &0x1234u32.to_le_bytes());
    let xsdt = table(*b"XSDT", 1, &0x1234u64.to_le_bytes());
    tables[0x40..0x40 + rsdt.len()].copy_from_slice(&rsdt);
    tables[0x80..0x80 + xsdt.len()].copy_from_slice(&xsdt);
    let base = 0x7F0_0000;
    let (linked, mut region) = run(&script, &tables, &rsdp, base).unwrap();
    let own = [ccel(2, 0, 1, 2), rtmr_table(&[[1; 48]; 4])];
    let added = add_tables(&mut region, base, linked.rsdp, 0x2000, &own).unwrap();
    assert_eq!(added[0], base + 0x2000);
    let r = &region[0x1000..0x1024];
    assert_eq!((sum(&r[..20]), sum(r)), (0, 0));
}

#[test]
fn write_pointers_are_counted_and_skipped() {
    let (mut script, tables, rsdp) = qemu_like();
    script.extend(cmd(
        WRITE_POINTER,
        &[("etc/vmgenid_addr", 4), ("etc/vmgenid_guid", 4 + N)],
        &[],
    ));
    let size = |f: &str| {
        Some(if f == "etc/acpi/tables" {
            tables.len()
        } else {
            rsdp.len()
        } as u64)
    };
    assert_eq!(plan(&script, size).unwrap().skipped_write_pointers, 1);
}

proptest! {
    #[test]
    fn any_script_never_panics(script in proptest::collection::vec(any::<u8>(), 0..1024),
                               base in any::<u64>()) {
        if let Ok(p) = plan(&script, |_| Some(64)) {
            let mut region = vec![0u8; p.size as usize];
            let _ = link(&p, &mut region, base, |_, d| { d.fill(1); true });
        }
    }

    #[test]
    fn mutated_scripts_never_panic(at in 0usize..640, byte in any::<u8>(), base in 0u64..0x1_0000_0000) {
        let (mut script, tables, rsdp) = qemu_like();
        script[at] = byte;
        let _ = run(&script, &tables, &rsdp, base);
    }

    #[test]
    fn any_root_tables_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..0x180),
                                   rsdp_off in 0u64..0x200, rsdp_size in 0u64..0x60,
                                   at in 0usize..0x300, base in 0u64..0x1_0000_0000,
                                   revision in 0u8..4, rsdt in 0u32..0x300, xsdt in 0u64..0x300,
                                   count in 0usize..3) {
        let mut region = vec![0u8; 0x400];
        region[..bytes.len()].copy_from_slice(&bytes);
        let r = rsdp_off as usize;
        region[r..r + 8].copy_from_slice(b"RSD PTR ");
        region[r + 15] = revision;
        region[r + 16..r + 20].copy_from_slice(&(base as u32).wrapping_add(rsdt).to_le_bytes());
        region[r + 24..r + 32].copy_from_slice(&base.wrapping_add(xsdt).to_le_bytes());
        let own = [ccel(2, 0, 1, 2), rtmr_table(&[[1; 48]; 4])];
        let extent = Extent { addr: base + rsdp_off, size: rsdp_size };
        if let Ok(added) = add_tables(&mut region, base, extent, at, &own[..count]) {
            prop_assert_eq!(added.len(), count);
            prop_assert_eq!(sum(&region[r..r + 20]), 0);
        }
    }
}

/// A table the root tables already list by signature (the firmware's extended MADT) replaces that
/// entry instead of being added twice; `find_table` finds the VMM's copy through the XSDT.
#[test]
fn a_new_table_with_a_listed_signature_replaces_its_entry() {
    let base = 0x7F0_0000u64;
    let mut region = vec![0u8; 0x1000];
    let madt = table(*b"APIC", 3, &[0xAA; 16]);
    let facp = table(*b"FACP", 1, &[0xBB; 8]);
    region[0x300..0x300 + madt.len()].copy_from_slice(&madt);
    region[0x380..0x380 + facp.len()].copy_from_slice(&facp);
    let mut rsdt_body = Vec::new();
    let mut xsdt_body = Vec::new();
    for off in [0x380u64, 0x300] {
        rsdt_body.extend_from_slice(&((base + off) as u32).to_le_bytes());
        xsdt_body.extend_from_slice(&(base + off).to_le_bytes());
    }
    let rsdt = table(*b"RSDT", 1, &rsdt_body);
    let xsdt = table(*b"XSDT", 1, &xsdt_body);
    region[0x40..0x40 + rsdt.len()].copy_from_slice(&rsdt);
    region[0x80..0x80 + xsdt.len()].copy_from_slice(&xsdt);
    let rsdp = rsdp_bytes(2, (base + 0x40) as u32, base + 0x80, 36);
    region[0x100..0x124].copy_from_slice(&rsdp);
    let extent = Extent {
        addr: base + 0x100,
        size: 36,
    };
    let found = find_table(&region, base, extent, 0x400, b"APIC").unwrap();
    assert_eq!(found, Some(0x300..0x300 + madt.len()));
    assert_eq!(
        find_table(&region, base, extent, 0x400, b"SSDT").unwrap(),
        None
    );

    let new_madt = table(*b"APIC", 3, &[0xCC; 32]);
    let own = [new_madt.clone(), ccel(0, 0, 1, 2)];
    let added = add_tables(&mut region, base, extent, 0x400, &own).unwrap();
    let r = &region[0x100..0x124];
    assert_eq!(sum(r), 0);
    let x = (u64_at(r, 24) - base) as usize;
    let x = &region[x..x + 36 + 3 * 8];
    assert_eq!(
        u32_at(x, 4) as usize,
        36 + 3 * 8,
        "FACP, the new MADT, CCEL: no second MADT"
    );
    assert_eq!(sum(x), 0);
    assert_eq!(u64_at(x, 36), base + 0x380, "FACP unchanged");
    assert_eq!(
        u64_at(x, 44),
        added[0],
        "the MADT entry now points at the new MADT"
    );
    assert_eq!(u64_at(x, 52), added[1], "CCEL appended");
    let t = (u64::from(u32_at(r, 16)) - base) as usize;
    let t = &region[t..t + 36 + 3 * 4];
    assert_eq!(u32_at(t, 4) as usize, 36 + 3 * 4);
    assert_eq!(sum(t), 0);
    assert_eq!(u64::from(u32_at(t, 40)), added[0]);
    let at = (added[0] - base) as usize;
    assert_eq!(&region[at..at + new_madt.len()], &new_madt[..]);
}

/// Replacement is decided per root table: a signature the RSDT lists but the XSDT does not is
/// replaced in the RSDT and appended to the XSDT (found by fuzzing the first version, which
/// dropped the table from the XSDT).
#[test]
fn replacement_is_per_root_table() {
    let base = 0x7F0_0000u64;
    let mut region = vec![0u8; 0x1000];
    let madt = table(*b"APIC", 3, &[0xAA; 16]);
    region[0x300..0x300 + madt.len()].copy_from_slice(&madt);
    let rsdt = table(*b"RSDT", 1, &((base + 0x300) as u32).to_le_bytes());
    let xsdt = table(*b"XSDT", 1, &[]);
    region[0x40..0x40 + rsdt.len()].copy_from_slice(&rsdt);
    region[0x80..0x80 + xsdt.len()].copy_from_slice(&xsdt);
    let rsdp = rsdp_bytes(2, (base + 0x40) as u32, base + 0x80, 36);
    region[0x100..0x124].copy_from_slice(&rsdp);
    let extent = Extent {
        addr: base + 0x100,
        size: 36,
    };
    let own = [table(*b"APIC", 3, &[0xCC; 32])];
    let added = add_tables(&mut region, base, extent, 0x400, &own).unwrap();
    let r = &region[0x100..0x124];
    let t = (u64::from(u32_at(r, 16)) - base) as usize;
    assert_eq!(u32_at(&region[t..], 4), 40, "RSDT: replaced, not grown");
    assert_eq!(u64::from(u32_at(&region[t..], 36)), added[0]);
    let x = (u64_at(r, 24) - base) as usize;
    assert_eq!(u32_at(&region[x..], 4), 44, "XSDT: appended");
    assert_eq!(u64_at(&region[x..], 36), added[0]);
}

/// Two listed tables with the signature of a table the firmware replaces are refused, and so is
/// a root entry pointing into the firmware's room (found by fuzzing).
#[test]
fn ambiguous_replacements_and_entries_into_the_room_are_refused() {
    let base = 0x7F0_0000u64;
    let roots = |entries: &[u64]| {
        let mut region = vec![0u8; 0x1000];
        let madt = table(*b"APIC", 3, &[0xAA; 16]);
        region[0x300..0x300 + madt.len()].copy_from_slice(&madt);
        region[0x340..0x340 + madt.len()].copy_from_slice(&madt);
        let body: Vec<u8> = entries.iter().flat_map(|a| a.to_le_bytes()).collect();
        let xsdt = table(*b"XSDT", 1, &body);
        region[0x80..0x80 + xsdt.len()].copy_from_slice(&xsdt);
        let rsdp = rsdp_bytes(2, 0, base + 0x80, 36);
        region[0x100..0x124].copy_from_slice(&rsdp);
        region
    };
    let extent = Extent {
        addr: base + 0x100,
        size: 36,
    };
    let own = [table(*b"APIC", 3, &[0xCC; 32])];
    let mut two = roots(&[base + 0x300, base + 0x340]);
    let before = two.clone();
    assert_eq!(
        add_tables(&mut two, base, extent, 0x400, &own),
        Err(AcpiError::DuplicateTable)
    );
    assert_eq!(two, before, "nothing written");
    let mut into_room = roots(&[base + 0x300, base + 0x400]);
    assert_eq!(
        add_tables(&mut into_room, base, extent, 0x400, &own),
        Err(AcpiError::BadRootTables)
    );
    let mut fine = roots(&[base + 0x300]);
    assert!(add_tables(&mut fine, base, extent, 0x400, &own).is_ok());
}
