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
    assert_eq!(types, ["BFV", "TempMem", "TD_HOB", "CFV"]);
    assert_eq!(v["sections"][0]["attribute_names"][0], "MR.EXTEND");
    assert_eq!(v["footer"][0]["name"], "tdx-metadata-offset");
    assert_eq!(v["payloads"][0]["kind"], "elf");
    // Both VMMs' TDX loader rules pass.
    assert_eq!(v["vmm_rules"][0]["vmm"], "qemu-tdx");
    assert_eq!(v["vmm_rules"][0]["passes"], true);
    assert_eq!(v["vmm_rules"][0]["failed_rule"], serde_json::Value::Null);
    assert_eq!(v["vmm_rules"][0]["rules"].as_array().unwrap().len(), 18);
    assert_eq!(v["vmm_rules"][1]["vmm"], "cloud-hypervisor-tdx");
    assert_eq!(v["vmm_rules"][1]["passes"], true);
}

/// The file offset of section `i`'s Type field in our image.
fn section_type_at(i: usize) -> usize {
    IMAGE_METADATA.image_offset() as usize + 16 + 16 + 32 * i + 24
}

#[test]
fn inspect_check_qemu_tdx() {
    let image = &artifacts().image;
    // Ours passes both; the flag's value is checked by the argument parser.
    for vmm in ["qemu-tdx", "cloud-hypervisor-tdx"] {
        let out = tool(&["inspect", s(image), "--check", vmm]);
        assert!(
            out.status.success(),
            "{vmm}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8_lossy(&tool(&["inspect", s(image)]).stdout).into_owned();
    assert!(
        text.contains("qemu-tdx              passes 18 rules"),
        "{text}"
    );
    assert_eq!(
        tool(&["inspect", s(image), "--check", "xen"]).status.code(),
        Some(2)
    );

    // The previous layout: section 3 as Payload (type 5). Valid for the spec and for Cloud
    // Hypervisor; QEMU refuses it. Without --check that is reported and the exit is 0.
    let mut old = std::fs::read(image).unwrap();
    old[section_type_at(3)] = 5;
    let old = write("payload-type.bin", &old);
    let out = tool(&["inspect", s(&old), "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["vmm_rules"][0]["passes"], false);
    assert_eq!(v["vmm_rules"][0]["failed_rule"], "section-type");
    assert_eq!(v["vmm_rules"][1]["passes"], true);
    assert_refused(
        &tool(&["inspect", s(&old), "--check", "qemu-tdx"]),
        "qemu-tdx: QEMU TDX rule section-type: section 3 (Payload): QEMU accepts only BFV (0), \
         CFV (1), TD_HOB (2) and TempMem (3), found type 5",
    );
    assert!(
        tool(&["inspect", s(&old), "--check", "cloud-hypervisor-tdx"])
            .status
            .success()
    );

    // Without the footer table (its GUID erased), only the legacy pointer is left: Cloud
    // Hypervisor still finds the metadata, QEMU does not.
    let mut legacy = std::fs::read(image).unwrap();
    let len = legacy.len();
    legacy[len - 0x30..len - 0x20].fill(0);
    let legacy = write("legacy-only.bin", &legacy);
    let out = tool(&[
        "inspect",
        s(&legacy),
        "--json",
        "--check",
        "cloud-hypervisor-tdx",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["metadata_source"], "legacy metadata pointer");
    assert_eq!(v["vmm_rules"][0]["failed_rule"], "footer-table");
    assert_refused(
        &tool(&["inspect", s(&legacy), "--check", "qemu-tdx"]),
        "QEMU TDX rule footer-table",
    );

    // A TempMem section with raw data: refused by the spec validator before any VMM check.
    let mut raw = std::fs::read(image).unwrap();
    let at = section_type_at(1) - 24 + 4;
    raw[at..at + 4].copy_from_slice(&0x1000u32.to_le_bytes());
    let raw = write("tempmem-raw.bin", &raw);
    assert_refused(&tool(&["inspect", s(&raw)]), "(TempMem) has raw data");
}

/// Debian's OVMF (package `ovmf`): `$SHIM_OVMF_DIR` if set (a directory holding OVMF.fd and
/// OVMF_CODE.fd), else fetched once with `apt-get download` and extracted with `dpkg-deb` into
/// `target/ovmf/`, as `cargo xtask kernel` fetches the test kernel. Not committed: 2 MiB each.
fn ovmf_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SHIM_OVMF_DIR") {
        return PathBuf::from(dir);
    }
    let cache = tests::root().join("target/ovmf");
    let wanted = ["OVMF.fd", "OVMF_CODE.fd"];
    if wanted.iter().all(|f| cache.join(f).is_file()) {
        return cache;
    }
    let work = cache.join(format!("fetch-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let run = |cmd: &mut Command| {
        let out = cmd
            .output()
            .expect("run apt-get/dpkg-deb (is this a Debian machine?)");
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(Command::new("apt-get")
        .current_dir(&work)
        .args(["download", "-q", "ovmf"]));
    let deb = std::fs::read_dir(&work)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .expect("apt-get download left no .deb");
    let unpacked = work.join("x");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked));
    // OVMF.fd (code + variables, 2 MiB) is in usr/share/ovmf, the split files in usr/share/OVMF.
    for (from, name) in [
        ("usr/share/ovmf", "OVMF.fd"),
        ("usr/share/OVMF", "OVMF_CODE.fd"),
    ] {
        std::fs::rename(unpacked.join(from).join(name), cache.join(name)).unwrap();
    }
    std::fs::write(
        cache.join("package"),
        deb.file_name().unwrap().to_string_lossy().as_bytes(),
    )
    .unwrap();
    std::fs::remove_dir_all(&work).unwrap();
    cache
}

#[test]
fn inspect_reports_debian_ovmf() {
    let dir = ovmf_dir();
    // OVMF.fd carries TDX metadata (OvmfPkgX64's reset vector) and passes QEMU's rules:
    // BFV + CFV (the variable store) + TempMem + TD_HOB.
    let out = tool(&[
        "inspect",
        s(&dir.join("OVMF.fd")),
        "--json",
        "--check",
        "qemu-tdx",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["metadata_source"], "footer GUID table");
    let types: Vec<&str> = v["sections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["type"].as_str().unwrap())
        .collect();
    assert!(types.contains(&"BFV") && types.contains(&"CFV") && types.contains(&"TD_HOB"));
    assert!(types
        .iter()
        .all(|t| ["BFV", "CFV", "TD_HOB", "TempMem"].contains(t)));
    assert_eq!(v["vmm_rules"][0]["passes"], true);
    assert_eq!(v["regions"], serde_json::Value::Null);
    // OVMF_CODE.fd alone describes a BFV for the whole flash: its raw data runs past the file.
    assert_refused(
        &tool(&["inspect", s(&dir.join("OVMF_CODE.fd"))]),
        "raw data runs past the end of the image",
    );
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

    // The reset-code segment (index 2) moved so that its last 16 bytes lie over the footer area
    // (it stays below 4 GiB whatever its size).
    let mut over = fw.clone();
    let at = paddr_offset(&over, 2);
    let memsz = u64::from_le_bytes(over[at + 16..at + 24].try_into().unwrap());
    let moved = td_layout::layout::IMAGE_FOOTER.base + 0x10 - memsz;
    over[at..at + 8].copy_from_slice(&moved.to_le_bytes());
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
