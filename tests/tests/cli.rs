//! `td-shim-tool build` and `inspect` on real artefacts: what they print, and that they refuse
//! broken input with a clear message and exit status 1.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use td_layout::layout::{IMAGE_METADATA, IMAGE_SIZE};
use tests::artifacts;

fn tool(args: &[&str]) -> Output {
    Command::new(&artifacts().tool)
        .args(args)
        .output()
        .expect("run td-shim-tool")
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("td-shim-cli-{}-{name}", std::process::id()))
}

fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let p = tmp(name);
    std::fs::write(&p, bytes).expect("write test input");
    p
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn assert_refused(out: &Output, message: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains(message),
        "expected {message:?} in {stderr:?}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn help_lists_the_commands() {
    let out = tool(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("build") && text.contains("inspect"));
    assert_eq!(tool(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn inspect_reports_the_metadata_as_json() {
    let out = tool(&["inspect", s(&artifacts().image), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["size"], IMAGE_SIZE);
    assert_eq!(v["metadata_source"], "footer GUID table");
    let types: Vec<&str> = v["sections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["BFV", "TempMem", "TD_HOB", "Payload"]);
    assert_eq!(v["sections"][0]["attribute_names"][0], "MR.EXTEND");
    assert_eq!(v["footer"][0]["name"], "tdx-metadata-offset");
    assert_eq!(v["payloads"][0]["kind"], "elf");
}

#[test]
fn inspect_refuses_broken_images() {
    let image = std::fs::read(&artifacts().image).unwrap();
    assert_refused(&tool(&["inspect", "/nonexistent/image.bin"]), "cannot read");
    // Truncated: the first half has no footer table and no metadata pointer.
    let half = write("half.bin", &image[..image.len() / 2]);
    assert_refused(&tool(&["inspect", s(&half)]), "TDX metadata");
    let odd = write("odd.bin", &image[..image.len() - 100]);
    assert_refused(&tool(&["inspect", s(&odd)]), "not a multiple of 64 KiB");
    // TDVF signature corrupted.
    let mut bad = image.clone();
    bad[IMAGE_METADATA.image_offset() as usize + 16] ^= 0xFF;
    let sig = write("sig.bin", &bad);
    assert_refused(&tool(&["inspect", s(&sig)]), "signature");
    // Footer table length absurd.
    let mut bad = image.clone();
    let at = bad.len() - 0x32;
    bad[at..at + 2].copy_from_slice(&0xFFFFu16.to_le_bytes());
    let footer = write("footer.bin", &bad);
    assert_refused(&tool(&["inspect", s(&footer)]), "footer table");
}

fn build(firmware: &Path, payload: &Path, name: &str) -> (Output, PathBuf) {
    let out = tmp(name);
    let o = tool(&[
        "build",
        "--firmware",
        s(firmware),
        "--payload",
        s(payload),
        "--output",
        s(&out),
    ]);
    (o, out)
}

#[test]
fn build_reproduces_the_image() {
    let a = artifacts();
    let (o, out) = build(&a.firmware_elf, &a.payload_elf, "again.bin");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        std::fs::read(out).unwrap(),
        std::fs::read(&a.image).unwrap()
    );
}

// Program header `index` of an ELF64: its p_paddr field's file offset.
fn paddr_offset(elf: &[u8], index: usize) -> usize {
    let phoff = u64::from_le_bytes(elf[32..40].try_into().unwrap()) as usize;
    phoff + index * 56 + 24
}

#[test]
fn build_refuses_broken_inputs() {
    let a = artifacts();
    let fw = std::fs::read(&a.firmware_elf).unwrap();
    let payload = std::fs::read(&a.payload_elf).unwrap();

    let (o, out) = build(&a.payload_elf, &a.payload_elf, "pie.bin");
    assert_refused(&o, "fixed-address executable");
    assert!(!out.exists(), "no image is written on failure");

    let junk = write("junk.elf", b"not an ELF at all, just text");
    assert_refused(&build(&a.firmware_elf, &junk, "junk.bin").0, "payload: ELF");
    assert_refused(
        &build(&junk, &a.payload_elf, "junk2.bin").0,
        "firmware: ELF",
    );

    // A fixed-address ELF linked elsewhere cannot be loaded at the payload load region.
    assert_refused(
        &build(&a.firmware_elf, &a.firmware_elf, "fixed.bin").0,
        "payload: it spans",
    );

    // Linux payloads: the kernel must be a bzImage the firmware would boot, the command line
    // within the kernel's limit, and kernel + initrd within the payload region.
    let fws = s(&a.firmware_elf);
    let usage = tool(&["build", "--firmware", fws, "--initrd", fws, "-o", "/tmp/x"]);
    assert_eq!(usage.status.code(), Some(2), "--initrd needs --kernel");
    let both = tool(&[
        "build",
        "--firmware",
        fws,
        "--payload",
        fws,
        "--kernel",
        fws,
        "-o",
        "/tmp/x",
    ]);
    assert_eq!(
        both.status.code(),
        Some(2),
        "--payload and --kernel exclude each other"
    );
    let o = tool(&[
        "build",
        "--firmware",
        fws,
        "--kernel",
        s(&junk),
        "-o",
        s(&tmp("k.bin")),
    ]);
    assert_refused(&o, "kernel: bzImage:");
    let kernel = tests::kernel();
    let long = "x".repeat(5000);
    let o = tool(&[
        "build",
        "--firmware",
        fws,
        "--kernel",
        s(kernel),
        "--cmdline",
        &long,
        "-o",
        s(&tmp("c.bin")),
    ]);
    assert_refused(&o, "cmdline: 5000 bytes");
    let big_initrd = write("big.initrd", &vec![0x5A; 2 << 20]);
    let o = tool(&[
        "build",
        "--firmware",
        fws,
        "--kernel",
        s(kernel),
        "--initrd",
        s(&big_initrd),
        "-o",
        s(&tmp("i.bin")),
    ]);
    assert_refused(&o, "payload region holds");

    let truncated = write("trunc.elf", &fw[..200]);
    assert_refused(
        &build(&truncated, &a.payload_elf, "trunc.bin").0,
        "firmware: ELF",
    );

    // A payload larger than the payload region (still a valid ELF: padding after its segments).
    let mut big = payload.clone();
    big.resize(15 << 20, 0);
    let big = write("big.elf", &big);
    assert_refused(
        &build(&a.firmware_elf, &big, "big.bin").0,
        "payload region holds",
    );

    // The reset-code segment (index 2) moved over the footer area.
    let mut over = fw.clone();
    let at = paddr_offset(&over, 2);
    over[at..at + 8].copy_from_slice(&0xFFFF_FE00u64.to_le_bytes());
    let over = write("over.elf", &over);
    assert_refused(
        &build(&over, &a.payload_elf, "over.bin").0,
        "overlaps the footer area",
    );

    // The data segment's load address (index 1) moved onto the code segment's (index 0).
    let mut clash = fw.clone();
    let code = u64::from_le_bytes(
        fw[paddr_offset(&fw, 0)..paddr_offset(&fw, 0) + 8]
            .try_into()
            .unwrap(),
    );
    let at = paddr_offset(&clash, 1);
    clash[at..at + 8].copy_from_slice(&code.to_le_bytes());
    let clash = write("clash.elf", &clash);
    assert_refused(
        &build(&clash, &a.payload_elf, "clash.bin").0,
        "overlap in the image",
    );
}
