//! The committed seeds of the SNP fuzz targets (`fuzz/corpus/snp_*/seed-*`), built from the
//! formats: `TD_SHIM_WRITE_SEEDS=1 cargo test -p td-shim --lib snp::tests::seeds` rewrites
//! them; without the variable the test fails if they are stale. Each seed is also checked to
//! reach the interesting path of its target (it parses).

extern crate std;

use super::super::cpu::PageSize;
use super::super::cpuid::CpuidTable;
use super::super::ghcb::exit_code;
use super::super::hashes::HashesTable;
use super::super::psc::{check_response, write_request, PageOp, Progress, PscEntry};
use super::super::vc::decode;
use super::{cpuid_page, epyc_functions, func};
use crate::exception::ExceptionFrame;
use sha2::{Digest, Sha256};
use std::string::String;
use std::vec::Vec;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus");

fn hashes_table(parts: [&[u8]; 3]) -> Vec<u8> {
    // The layout of the module documentation, GUIDs from the constants (checked byte by byte
    // against their text in `tests::hashes`).
    use super::super::hashes::{CMDLINE_GUID, INITRD_GUID, KERNEL_GUID, TABLE_GUID};
    let mut t = Vec::new();
    t.extend_from_slice(TABLE_GUID.as_bytes());
    t.extend_from_slice(&168u16.to_le_bytes());
    for (g, p) in [CMDLINE_GUID, INITRD_GUID, KERNEL_GUID].iter().zip(parts) {
        t.extend_from_slice(g.as_bytes());
        t.extend_from_slice(&50u16.to_le_bytes());
        t.extend_from_slice(&Sha256::digest(p));
    }
    t.extend_from_slice(&[0; 8]);
    t
}

/// `snp_vc_decode` input: exit-code selector, 8 bytes of RIP, 8 bytes each of RAX, RCX, RDX,
/// RBX, RSI, RDI, R8, R12, then the instruction bytes.
fn vc_input(selector: u8, regs: [u64; 8], insn: &[u8]) -> Vec<u8> {
    let mut v = std::vec![selector];
    v.extend_from_slice(&0x10_0000u64.to_le_bytes());
    for r in regs {
        v.extend_from_slice(&r.to_le_bytes());
    }
    v.extend_from_slice(insn);
    v
}

fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut s: Vec<(String, Vec<u8>)> = Vec::new();
    let mut add = |target: &str, name: &str, bytes: Vec<u8>| {
        s.push((std::format!("{target}/seed-{name}"), bytes));
    };
    // CPUID page: the EPYC-shaped page of the tests, and a full 64-entry page.
    add("snp_cpuid_page", "epyc", cpuid_page(&epyc_functions()));
    let full: Vec<_> = (0..64u32)
        .map(|i| func(i % 0x20, i / 0x20, [i, 0, 0, 0]))
        .collect();
    add("snp_cpuid_page", "full", cpuid_page(&full));
    // Hashes table: the empty boot (research notes §1.10) and a boot with blobs; the target
    // reads the blobs after the 176 bytes.
    let mut empty = hashes_table([b"\0", b"", b""]);
    empty.extend_from_slice(b"\0");
    add("snp_hashes", "qemu-empty", empty);
    let mut boot = hashes_table([b"console=ttyS0\0", b"initrd", b"setupkernel"]);
    boot.extend_from_slice(b"console=ttyS0\0|initrd|setupkernel");
    add("snp_hashes", "qemu-boot", boot);
    // PSC response: before-progress (4 bytes), then the buffer as a hypervisor left it.
    let entries = [
        PscEntry::new(0x1000, PageOp::Private, PageSize::Size4K).unwrap(),
        PscEntry::new(0x20_0000, PageOp::Private, PageSize::Size2M).unwrap(),
        PscEntry::new(0x40_0000, PageOp::Shared, PageSize::Size4K).unwrap(),
    ];
    let mut buf = std::vec![0u8; 8 + 8 * entries.len()];
    write_request(&mut buf, &entries).unwrap();
    let mut fresh = std::vec![0, 0, 0, 0];
    fresh.extend_from_slice(&buf);
    add("snp_psc", "fresh", fresh);
    buf[..2].copy_from_slice(&1u16.to_le_bytes());
    buf[8..16].copy_from_slice(&entries[0].encode(1).to_le_bytes());
    buf[16..24].copy_from_slice(&entries[1].encode(300).to_le_bytes());
    let mut partial = std::vec![1, 0, 100, 0];
    partial.extend_from_slice(&buf);
    add("snp_psc", "partial", partial);
    // #VC: one instruction per exit code.
    let regs = [
        0xAAAA,
        0xFEE0_0000,
        0x3F8,
        0xFEE0_0030,
        0x10,
        0xFEE0_0300,
        0xFEE0_0000,
        0xFEE0_0000,
    ];
    for (name, selector, insn) in [
        ("cpuid", 0u8, &[0x0F, 0xA2][..]),
        ("in-dx", 1, &[0xEC]),
        ("out-imm16", 1, &[0x66, 0xE7, 0x80]),
        ("rdmsr", 2, &[0x0F, 0x32]),
        ("rdtscp", 4, &[0x0F, 0x01, 0xF9]),
        ("mov-load", 5, &[0x8B, 0x07]),
        ("mov-sib", 5, &[0x45, 0x8B, 0x94, 0x24, 0x30, 0, 0, 0]),
        ("mov-imm", 5, &[0xC7, 0x47, 0x10, 0x00, 0x45, 0x0C, 0x00]),
        ("movzx-rip", 5, &[0x0F, 0xB7, 0x05, 0xFA, 0x0F, 0, 0]),
    ] {
        add("snp_vc_decode", name, vc_input(selector, regs, insn));
    }
    s
}

/// The exit codes `snp_vc_decode` selects with its first byte (keep in step with the target).
const VC_EXITS: [u64; 6] = [
    exit_code::CPUID,
    exit_code::IOIO,
    exit_code::MSR,
    exit_code::RDTSC,
    exit_code::RDTSCP,
    exit_code::NPF,
];

fn check(name: &str, bytes: &[u8]) {
    let target = name.split('/').next().unwrap();
    match target {
        "snp_cpuid_page" => assert!(CpuidTable::parse(bytes).is_ok(), "{name}"),
        "snp_hashes" => assert!(HashesTable::parse(bytes).is_ok(), "{name}"),
        "snp_psc" => {
            let before = Progress {
                cur_entry: u16::from_le_bytes([bytes[0], bytes[1]]),
                cur_page: u16::from_le_bytes([bytes[2], bytes[3]]),
            };
            let sent: Vec<PscEntry> = (0..3)
                .map(|i| {
                    let raw = super::super::psc::read_entry(&bytes[4..], i).unwrap();
                    let r = super::super::psc::RawEntry::decode(raw);
                    let size = if r.size_2m {
                        PageSize::Size2M
                    } else {
                        PageSize::Size4K
                    };
                    let op = PageOp::from_code(u64::from(r.op)).unwrap();
                    PscEntry::new(r.gfn << 12, op, size).unwrap()
                })
                .collect();
            assert!(check_response(&sent, before, &bytes[4..]).is_ok(), "{name}");
        }
        "snp_vc_decode" => {
            let exit = VC_EXITS[usize::from(bytes[0]) % VC_EXITS.len()];
            let f = ExceptionFrame {
                rip: 0x10_0000,
                ..ExceptionFrame::default()
            };
            assert!(decode(exit, &bytes[1 + 8 + 64..], &f).is_ok(), "{name}");
        }
        _ => panic!("{name}"),
    }
}

#[test]
fn fuzz_seeds_are_current_and_parse() {
    let write = std::env::var_os("TD_SHIM_WRITE_SEEDS").is_some();
    for (name, bytes) in seeds() {
        assert!(bytes.len() <= 4096, "{name}");
        check(&name, &bytes);
        let path = std::format!("{CORPUS}/{name}");
        if write {
            let dir = std::path::Path::new(&path).parent().unwrap();
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        let committed = std::fs::read(&path).unwrap_or_else(|e| {
            panic!("{name}: {e}; rewrite the seeds with TD_SHIM_WRITE_SEEDS=1")
        });
        assert_eq!(
            committed, bytes,
            "{name} is stale: rewrite with TD_SHIM_WRITE_SEEDS=1"
        );
    }
}
