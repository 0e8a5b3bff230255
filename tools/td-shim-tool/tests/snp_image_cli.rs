//! Our image under SEV-SNP, from the command line: `build` writes the SEV metadata, the SEV-ES
//! reset block (from the firmware's `sev_ap_reset_entry`) and the kernel-hashes table entry;
//! `inspect --check qemu-snp` passes it and names the rule a broken image fails, while the TDX
//! checks are unaffected; `build` refuses a firmware ELF without a usable AP reset entry.
//!
//! The per-rule tests of the checker are td-layout's (`sev::tests`); the digest against
//! sev-snp-measure is tests/snp_differential.rs.

mod common;

use common::{arg, artefacts, ok, root, tool};
use serde_json::Value;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use td_layout::sev::{td_shim_sev_sections, SEV_HASH_TABLE_BASE, SEV_HASH_TABLE_SIZE};
use td_shim_tool::build::SEV_AP_RESET_SYMBOL;
use td_shim_tool::elf_symbols::find_global_symbol;

/// Builds an image from `firmware` (an ELF path) and the test payload into `dir`.
fn build(dir: &Path, firmware: &Path, name: &str) -> (std::process::Output, PathBuf) {
    let out = dir.join(name);
    let o = tool(&[
        "build",
        "--firmware",
        &arg(firmware),
        "--payload",
        &arg(&artefacts().payload),
        "-o",
        &arg(&out),
    ]);
    (o, out)
}

fn inspect_json(image: &Path) -> Value {
    serde_json::from_str(&ok(&["inspect", &arg(image), "--json"])).expect("JSON")
}

fn refused(out: &std::process::Output, message: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(message), "expected {message:?} in {stderr}");
}

#[test]
fn our_image_passes_qemu_snp_and_keeps_its_tdx_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let firmware = &artefacts().firmware;
    let (o, image) = build(dir.path(), firmware, "td-shim.bin");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for vmm in ["qemu-snp", "qemu-tdx", "cloud-hypervisor-tdx"] {
        ok(&["inspect", &arg(&image), "--check", vmm]);
    }
    let v = inspect_json(&image);
    // The footer table: the TDX entry first, then the three SEV entries.
    let names: Vec<&str> = v["footer"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "tdx-metadata-offset",
            "sev-metadata-offset",
            "sev-es-reset-block",
            "sev-hash-table"
        ]
    );
    // The TDX metadata is what it was.
    let types: Vec<&str> = v["sections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["BFV", "TempMem", "TD_HOB", "CFV"]);
    // The SEV metadata: td-layout's sections, the reset address of the ELF's symbol, the hashes
    // table in the kernel-hashes page.
    let sev = &v["sev"];
    let sections: Vec<(String, u64, u64)> = sev["sections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["type"].as_str().unwrap().to_owned(),
                s["gpa"].as_u64().unwrap(),
                s["size"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(String, u64, u64)> = td_shim_sev_sections()
        .iter()
        .map(|s| {
            (
                s.kind().unwrap().name().to_owned(),
                u64::from(s.gpa),
                u64::from(s.size),
            )
        })
        .collect();
    assert_eq!(sections, expected);
    let elf = std::fs::read(firmware).unwrap();
    let sym = find_global_symbol(&elf, SEV_AP_RESET_SYMBOL).unwrap();
    assert_eq!(sev["ap_reset_eip"].as_u64(), Some(sym.value));
    assert_eq!(sev["hash_table_gpa"].as_u64(), Some(SEV_HASH_TABLE_BASE));
    assert_eq!(sev["hash_table_size"].as_u64(), Some(SEV_HASH_TABLE_SIZE));
    let snp = &v["vmm_rules"][2];
    assert_eq!(snp["vmm"], "qemu-snp");
    assert_eq!(snp["passes"], true);
    assert_eq!(snp["rules"].as_array().unwrap().len(), 18);
    let text = ok(&["inspect", &arg(&image)]);
    assert!(
        text.contains("qemu-snp              passes 18 rules"),
        "{text}"
    );
    assert!(
        text.contains("SNP_KERNEL_HASHES     0x18a000     0x1000"),
        "{text}"
    );
    // The same bytes as the default image `cargo xtask build` wrote from the same inputs.
    assert_eq!(
        std::fs::read(&image).unwrap(),
        std::fs::read(&artefacts().image).unwrap()
    );
}

#[test]
fn inspect_check_qemu_snp_names_the_rule_and_tdx_is_unaffected() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(&artefacts().image).unwrap();
    let n = good.len();
    let table = inspect_json(&artefacts().image);
    assert_eq!(table["footer"][2]["name"], "sev-es-reset-block");
    // The reset block's data: the third entry in walk order, 4 bytes before its trailer.
    // Walk: footer (18) at n-0x20, TDX (22), SEV metadata (22), reset block (22).
    let reset_data = n - 0x20 - 18 - 22 - 22 - 22;
    assert_eq!(
        u32::from_le_bytes(good[reset_data..reset_data + 4].try_into().unwrap()),
        table["sev"]["ap_reset_eip"].as_u64().unwrap() as u32
    );
    let asev = table["sev"]["metadata_offset"].as_u64().unwrap() as usize;
    type Mutation = Box<dyn Fn(&mut Vec<u8>)>;
    let cases: Vec<(&str, Mutation, &str)> = vec![
        (
            "reset0.bin",
            Box::new(move |b: &mut Vec<u8>| b[reset_data..reset_data + 4].fill(0)),
            "qemu-snp: QEMU SNP rule reset-block: the SEV-ES reset address is 0",
        ),
        (
            "signature.bin",
            Box::new(move |b: &mut Vec<u8>| b[asev] = b'X'),
            "qemu-snp: QEMU SNP rule signature:",
        ),
        (
            "version.bin",
            Box::new(move |b: &mut Vec<u8>| b[asev + 8] = 2),
            "qemu-snp: QEMU SNP rule version:",
        ),
        (
            "type.bin",
            // Section 2 (CPUID) becomes type 5.
            Box::new(move |b: &mut Vec<u8>| b[asev + 16 + 12 * 2 + 8] = 5),
            "qemu-snp: QEMU SNP rule section-type: section 2 has type 0x5",
        ),
    ];
    for (name, mutate, message) in cases {
        let mut bytes = good.clone();
        mutate(&mut bytes);
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        refused(
            &tool(&["inspect", &arg(&path), "--check", "qemu-snp"]),
            message,
        );
        // Without --check: reported, exit 0; TDX passes, no SEV metadata is shown.
        let v = inspect_json(&path);
        assert_eq!(v["vmm_rules"][2]["passes"], false, "{name}");
        assert_eq!(v["sev"], Value::Null);
        for vmm in ["qemu-tdx", "cloud-hypervisor-tdx"] {
            ok(&["inspect", &arg(&path), "--check", vmm]);
        }
    }
}

/// Patches the firmware ELF's `sev_ap_reset_entry` symbol with `f(bytes, file offset of the
/// Elf64_Sym)`, builds, and expects `message`.
fn build_with_patched_symbol(name: &str, f: impl Fn(&mut [u8], usize), message: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut elf = std::fs::read(&artefacts().firmware).unwrap();
    let sym = find_global_symbol(&elf, SEV_AP_RESET_SYMBOL).unwrap();
    f(&mut elf, sym.file_offset);
    let patched = dir.path().join(name);
    std::fs::write(&patched, &elf).unwrap();
    let (o, out) = build(dir.path(), &patched, "out.bin");
    refused(&o, message);
    assert!(!out.exists(), "no image is written on failure");
}

#[test]
fn build_refuses_a_firmware_without_a_usable_ap_reset_entry() {
    let value = |v: u64| {
        move |b: &mut [u8], at: usize| b[at + 8..at + 16].copy_from_slice(&v.to_le_bytes())
    };
    // Nameless: the symbol is gone.
    build_with_patched_symbol(
        "missing.elf",
        |b, at| b[at..at + 4].fill(0),
        "firmware: the global symbol `sev_ap_reset_entry` (the APs' SEV-ES reset entry): no symbol of that name",
    );
    // Local binding.
    build_with_patched_symbol(
        "local.elf",
        |b, at| b[at + 4] &= 0x0F,
        "the symbol is not global (binding 0)",
    );
    // Below the last 64 KiB.
    build_with_patched_symbol(
        "low.elf",
        value(0xFFFE_F1B1),
        "`sev_ap_reset_entry` is at 0xfffef1b1, not in the last 64 KiB [0xffff0000, 4 GiB)",
    );
    // In the last 64 KiB but in the footer area, which no segment holds.
    build_with_patched_symbol(
        "footer.elf",
        value(0xFFFF_FF80),
        "`sev_ap_reset_entry` at 0xffffff80 is not in a load segment that runs in place",
    );
    // Stripped: no symbol table at all (its section header's type changed to PROGBITS).
    let dir = tempfile::tempdir().unwrap();
    let mut elf = std::fs::read(&artefacts().firmware).unwrap();
    let shoff = u64::from_le_bytes(elf[0x28..0x30].try_into().unwrap()) as usize;
    let shnum = u16::from_le_bytes(elf[0x3C..0x3E].try_into().unwrap()) as usize;
    for i in 0..shnum {
        let kind = shoff + 64 * i + 4;
        if elf[kind..kind + 4] == 2u32.to_le_bytes() {
            elf[kind..kind + 4].copy_from_slice(&1u32.to_le_bytes());
        }
    }
    let stripped = dir.path().join("stripped.elf");
    std::fs::write(&stripped, &elf).unwrap();
    refused(
        &build(dir.path(), &stripped, "out.bin").0,
        "the ELF has no symbol table (is it stripped?)",
    );
}

#[test]
fn debian_ovmf_passes_qemu_snp_without_a_direct_boot() {
    let gz = std::fs::File::open(root().join("testdata/tdx/OVMF.fd.gz")).expect("OVMF.fd.gz");
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut bytes)
        .expect("gunzip OVMF.fd.gz");
    let dir = tempfile::tempdir().unwrap();
    let ovmf = dir.path().join("OVMF.fd");
    std::fs::write(&ovmf, &bytes).unwrap();
    let v: Value = serde_json::from_str(&ok(&[
        "inspect",
        &arg(&ovmf),
        "--json",
        "--check",
        "qemu-snp",
    ]))
    .unwrap();
    // OvmfPkgX64: SEV metadata at 0x52c from the end, 5 sections, APs at 0x80b004, the hash
    // table entry 0/0 (no measured direct boot).
    assert_eq!(v["sev"]["metadata_from_end"], 0x52c);
    assert_eq!(v["sev"]["sections"].as_array().unwrap().len(), 5);
    assert_eq!(v["sev"]["ap_reset_eip"], 0x80_b004);
    assert_eq!(v["sev"]["hash_table_gpa"], Value::Null);
    let notes = v["vmm_rules"][2]["notes"].as_array().unwrap();
    assert!(notes
        .iter()
        .any(|n| n.as_str().unwrap().starts_with("no measured direct boot")));
}
