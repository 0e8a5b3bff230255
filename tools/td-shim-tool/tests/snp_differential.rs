//! Differential test: `td-shim-tool measure --platform snp` against sev-snp-measure (the pip
//! package, the reference implementation) on random launches.
//!
//! The oracle is `$SEV_SNP_MEASURE`, else `target/sev-snp-measure-venv/bin/sev-snp-measure`,
//! which `cargo xtask oracle` installs (a pinned version in a venv; `cargo xtask ci` does it
//! before the tests). A missing oracle FAILS the test, loudly: it never passes without
//! comparing.
//!
//! The cases come from a fixed seed ([`SEED`], or `$SNP_DIFF_SEED`), [`CASES`] of them (or
//! `$SNP_DIFF_CASES`): firmware (sev-snp-measure's AmdSev and OvmfX64 fixtures, Debian's
//! OVMF.fd), mode (mostly snp; seves, sev), 1-288 vCPUs, any built-in vCPU type, VMM type,
//! guest features, and for a direct boot a random kernel, initrd (or none) and command line
//! (or none). Where the oracle refuses (a kernel with a firmware that cannot measure one), the
//! tool must refuse too.
//!
//! [`our_image_against_sev_snp_measure`] does the same on our own image, built afresh by
//! `td-shim-tool build` from the firmware ELF `cargo xtask build` left: fixed cases, with and
//! without a direct boot (kernel, initrd, command line), several vCPU counts, types, VMMs and
//! guest features, and the SEV-ES and SEV modes.

mod common;

use common::{arg, artefacts, ok, root};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The generator seed the committed run used.
const SEED: u64 = 0x5EB5_2026_0D1F_F001;
/// Cases per run.
const CASES: usize = 50;

const VCPU_TYPES: &[&str] = &[
    "EPYC",
    "EPYC-v1",
    "EPYC-v2",
    "EPYC-IBPB",
    "EPYC-v3",
    "EPYC-v4",
    "EPYC-Rome",
    "EPYC-Rome-v1",
    "EPYC-Rome-v2",
    "EPYC-Rome-v3",
    "EPYC-Milan",
    "EPYC-Milan-v1",
    "EPYC-Milan-v2",
    "EPYC-Genoa",
    "EPYC-Genoa-v1",
    "EPYC-Turin",
];

/// SplitMix64: small, deterministic, good enough to pick test cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, max: u64) -> Vec<u8> {
        let len = self.below(max + 1) as usize;
        (0..len).map(|_| self.next() as u8).collect()
    }
    fn cmdline(&mut self) -> String {
        const WORDS: &[&str] = &[
            "console=ttyS0",
            "loglevel=7",
            "quiet",
            "root=/dev/vda1",
            "ro",
            "init=/init",
            "td_shim.nonce=00ff",
            "panic=-1",
            "a=\"b c\"",
            "é",
            "-",
            "--",
            "mem=2G",
        ];
        let n = self.below(12) as usize;
        let words: Vec<&str> = (0..n)
            .map(|_| WORDS[self.below(WORDS.len() as u64) as usize])
            .collect();
        words.join(" ")
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .trim_start_matches("0x")
            .parse()
            .ok()
            .or_else(|| T::from_str(&v).ok())
            .unwrap_or_else(|| panic!("${name}={v:?} is not a valid value")),
        Err(_) => default,
    }
}

fn oracle() -> PathBuf {
    let path = std::env::var_os("SEV_SNP_MEASURE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/sev-snp-measure-venv/bin/sev-snp-measure"));
    assert!(
        path.is_file(),
        "\n\n*** THE SEV-SNP DIFFERENTIAL TEST DID NOT RUN: no sev-snp-measure at {} ***\n\
         *** run `cargo xtask oracle` (installs it into a venv under target/),         ***\n\
         *** or set $SEV_SNP_MEASURE to the sev-snp-measure executable.               ***\n\n",
        path.display()
    );
    path
}

/// Runs a command; returns (success, trimmed stdout, stderr).
fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().expect("run command");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write case file");
    arg(&path)
}

#[test]
fn differential_against_sev_snp_measure() {
    let oracle = oracle();
    let (ok, version, _) = run(Command::new(&oracle).arg("--version"));
    assert!(ok, "{} --version failed", oracle.display());
    let seed: u64 = match std::env::var("SNP_DIFF_SEED") {
        Ok(v) => u64::from_str_radix(v.trim_start_matches("0x"), 16)
            .unwrap_or_else(|_| panic!("$SNP_DIFF_SEED={v:?} is not hex")),
        Err(_) => SEED,
    };
    let cases: usize = env_or("SNP_DIFF_CASES", CASES);
    println!(
        "oracle: {} ({version}); seed {seed:#x}; {cases} cases",
        oracle.display()
    );

    let dir = tempfile::tempdir().expect("temporary directory");
    let mut ovmf = Vec::new();
    flate2::read::GzDecoder::new(
        std::fs::File::open(root().join("testdata/tdx/OVMF.fd.gz")).expect("OVMF.fd.gz"),
    )
    .read_to_end(&mut ovmf)
    .expect("gunzip OVMF.fd.gz");
    let firmwares = [
        (
            arg(&root().join("testdata/sev-snp/ovmf_AmdSev_suffix.bin")),
            true,
        ),
        (
            arg(&root().join("testdata/sev-snp/ovmf_OvmfX64_suffix.bin")),
            false,
        ),
        (write(dir.path(), "OVMF.fd", &ovmf), false),
    ];

    let mut rng = Rng(seed);
    let mut failures = Vec::new();
    let (mut agreed_digests, mut agreed_refusals) = (0, 0);
    for case in 0..cases {
        let (fw, measures_kernels) = &firmwares[rng.below(3) as usize];
        let mode = match rng.below(10) {
            0 => "seves",
            1 => "sev",
            _ => "snp",
        };
        let vcpus = (1 + rng.below(288)).to_string();
        let vcpu_type = VCPU_TYPES[rng.below(VCPU_TYPES.len() as u64) as usize];
        let vmm = ["qemu", "ec2", "gce"][rng.below(3) as usize];
        let features = match rng.below(4) {
            0 => 0x1,
            1 => 0x21,
            _ => rng.below(1 << 16) | 1,
        };
        // Mostly direct boots on the firmware that can measure them; a few where it cannot.
        let kernel = if *measures_kernels {
            rng.below(4) != 0
        } else {
            rng.below(6) == 0
        };
        let mut common_args: Vec<String> = vec![];
        let mut ours = vec!["measure".to_string(), "--platform=snp".into()];
        let mut theirs = vec![];
        ours.push(format!("--mode={mode}"));
        theirs.push(format!("--mode={mode}"));
        ours.push(format!("--image={fw}"));
        theirs.push(format!("--ovmf={fw}"));
        if mode != "sev" {
            common_args.push(format!("--vcpus={vcpus}"));
            common_args.push(format!("--vcpu-type={vcpu_type}"));
            ours.push(format!("--vmm-type={vmm}"));
            theirs.push(format!(
                "--vmm-type={}",
                if vmm == "qemu" { "QEMU" } else { vmm }
            ));
        }
        if mode == "snp" {
            common_args.push(format!("--guest-features={features:#x}"));
        }
        if kernel {
            common_args.push(format!(
                "--kernel={}",
                write(dir.path(), &format!("kernel{case}"), &rng.bytes(64 << 10))
            ));
            if rng.below(3) != 0 {
                common_args.push(format!(
                    "--initrd={}",
                    write(dir.path(), &format!("initrd{case}"), &rng.bytes(256 << 10))
                ));
            }
            if rng.below(4) != 0 {
                let c = rng.cmdline();
                ours.push(format!("--cmdline={c}"));
                theirs.push(format!("--append={c}"));
            }
        }
        ours.extend(common_args.iter().cloned());
        theirs.extend(common_args.iter().cloned());

        let (our_ok, our_out, our_err) =
            run(Command::new(env!("CARGO_BIN_EXE_td-shim-tool")).args(&ours));
        let (their_ok, their_out, their_err) = run(Command::new(&oracle).args(&theirs));
        let verdict = match (our_ok, their_ok) {
            (true, true) if our_out == their_out => {
                agreed_digests += 1;
                "same digest"
            }
            (false, false) => {
                agreed_refusals += 1;
                "both refuse"
            }
            _ => {
                failures.push(format!(
                    "case {case}:\n  td-shim-tool {}\n    -> {our_out}{our_err}\n  \
                     sev-snp-measure {}\n    -> {their_out}{their_err}",
                    ours.join(" "),
                    theirs.join(" ")
                ));
                "DIFFER"
            }
        };
        println!(
            "case {case:2}: {mode:5} {} vcpus={vcpus:>3} {vcpu_type:13} {vmm:4} \
             features={features:#06x} kernel={kernel}: {verdict}",
            Path::new(fw)
                .file_name()
                .unwrap_or_default()
                .to_string_lossy(),
        );
    }
    println!(
        "{agreed_digests} same digests, {agreed_refusals} same refusals, {} differences",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "td-shim-tool and sev-snp-measure disagree:\n{}",
        failures.join("\n")
    );
    assert!(agreed_digests > 0, "no case produced a digest");
}

/// Runs one launch through both tools: (ours, theirs) as (success, stdout, stderr).
fn both(
    oracle: &Path,
    mode: &str,
    image: &str,
    common: &[String],
    cmdline: Option<&str>,
) -> ((bool, String, String), (bool, String, String), String) {
    let mut ours = vec![
        "measure".to_string(),
        "--platform=snp".into(),
        format!("--mode={mode}"),
        format!("--image={image}"),
    ];
    let mut theirs = vec![format!("--mode={mode}"), format!("--ovmf={image}")];
    for a in common {
        if let Some(vmm) = a.strip_prefix("--vmm-type=") {
            ours.push(a.clone());
            theirs.push(format!(
                "--vmm-type={}",
                if vmm == "qemu" { "QEMU" } else { vmm }
            ));
        } else {
            ours.push(a.clone());
            theirs.push(a.clone());
        }
    }
    if let Some(c) = cmdline {
        ours.push(format!("--cmdline={c}"));
        theirs.push(format!("--append={c}"));
    }
    let described = format!(
        "td-shim-tool {}\n  sev-snp-measure {}",
        ours.join(" "),
        theirs.join(" ")
    );
    (
        run(Command::new(env!("CARGO_BIN_EXE_td-shim-tool")).args(&ours)),
        run(Command::new(oracle).args(&theirs)),
        described,
    )
}

#[test]
fn an_enrolled_key_is_in_the_launch_digest() {
    // The secure-boot record is in the image, all of which SNP measures: enrolling changes the
    // launch digest, and sev-snp-measure computes the same new digest.
    let oracle = oracle();
    let dir = tempfile::tempdir().expect("temporary directory");
    let image = &artefacts().image;
    let enrolled = common::enrolled_image(dir.path(), image);
    let digest = |image: &Path| {
        let (ours, theirs, described) = both(
            &oracle,
            "snp",
            &arg(image),
            &["--vcpus=2".into(), "--vcpu-type=EPYC-v4".into()],
            None,
        );
        assert!(ours.0 && theirs.0, "{described}\n{}\n{}", ours.2, theirs.2);
        assert_eq!(ours.1.trim(), theirs.1.trim(), "{described}");
        ours.1.trim().to_string()
    };
    assert_ne!(digest(&enrolled), digest(image), "the record is measured");
}

#[test]
fn our_image_against_sev_snp_measure() {
    let oracle = oracle();
    let dir = tempfile::tempdir().expect("temporary directory");
    // Our image, built now from the firmware and test payload ELFs.
    let a = artefacts();
    let image_path = dir.path().join("td-shim.bin");
    ok(&[
        "build",
        "--firmware",
        &arg(&a.firmware),
        "--payload",
        &arg(&a.payload),
        "-o",
        &arg(&image_path),
    ]);
    ok(&["inspect", &arg(&image_path), "--check", "qemu-snp"]);
    let image = arg(&image_path);

    let mut rng = Rng(0x5EB5_2026_0D1F_F002);
    let kernel = write(dir.path(), "kernel", &rng.bytes(1 << 20));
    let initrd = write(dir.path(), "initrd", &rng.bytes(2 << 20));
    let empty = write(dir.path(), "empty", b"");
    // (mode, vCPUs, vCPU type, VMM, guest features, kernel, initrd, command line)
    type Case<'a> = (
        &'a str,
        u32,
        &'a str,
        &'a str,
        u64,
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a str>,
    );
    let cases: Vec<Case<'_>> = vec![
        ("snp", 1, "EPYC-v4", "qemu", 0x1, None, None, None),
        ("snp", 2, "EPYC-v4", "qemu", 0x1, None, None, None),
        ("snp", 4, "EPYC-Milan", "qemu", 0x21, None, None, None),
        ("snp", 64, "EPYC-Genoa", "qemu", 0x1, None, None, None),
        ("snp", 288, "EPYC-Turin", "qemu", 0x1, None, None, None),
        ("snp", 1, "EPYC-v4", "qemu", 0x1, Some(&kernel), None, None),
        (
            "snp",
            1,
            "EPYC-v4",
            "qemu",
            0x1,
            Some(&kernel),
            Some(&initrd),
            None,
        ),
        (
            "snp",
            4,
            "EPYC-Rome",
            "qemu",
            0x1,
            Some(&kernel),
            Some(&initrd),
            Some("console=ttyS0 td_shim.nonce=00ff"),
        ),
        (
            "snp",
            8,
            "EPYC-Milan-v2",
            "qemu",
            0x21,
            Some(&kernel),
            None,
            Some("quiet"),
        ),
        (
            "snp",
            1,
            "EPYC-v4",
            "qemu",
            0x1,
            Some(&empty),
            Some(&empty),
            Some(""),
        ),
        ("snp", 3, "EPYC-Genoa-v1", "ec2", 0x1, None, None, None),
        (
            "snp",
            3,
            "EPYC-Genoa-v1",
            "ec2",
            0x1,
            Some(&kernel),
            Some(&initrd),
            Some("ro"),
        ),
        ("snp", 2, "EPYC-Milan", "gce", 0x1, None, None, None),
        (
            "snp",
            16,
            "EPYC-Milan",
            "gce",
            0x1,
            Some(&kernel),
            None,
            None,
        ),
        ("snp:ovmf-hash", 1, "EPYC-v4", "qemu", 0x1, None, None, None),
        ("seves", 1, "EPYC-v4", "qemu", 0x1, None, None, None),
        (
            "seves",
            4,
            "EPYC-Rome-v3",
            "qemu",
            0x1,
            Some(&kernel),
            Some(&initrd),
            Some("a"),
        ),
        ("sev", 1, "EPYC-v4", "qemu", 0x1, None, None, None),
        (
            "sev",
            1,
            "EPYC-v4",
            "qemu",
            0x1,
            Some(&kernel),
            None,
            Some("console=ttyS0"),
        ),
    ];
    let mut failures = Vec::new();
    for (i, (mode, vcpus, vcpu_type, vmm, features, k, ird, c)) in cases.iter().enumerate() {
        let mut common = Vec::new();
        if matches!(*mode, "snp" | "seves") {
            common.push(format!("--vcpus={vcpus}"));
            common.push(format!("--vcpu-type={vcpu_type}"));
            common.push(format!("--vmm-type={vmm}"));
        }
        if *mode == "snp" {
            common.push(format!("--guest-features={features:#x}"));
        }
        if let Some(k) = k {
            common.push(format!("--kernel={k}"));
        }
        if let Some(ird) = ird {
            common.push(format!("--initrd={ird}"));
        }
        let (ours, theirs, described) = both(&oracle, mode, &image, &common, *c);
        let verdict = if ours.0 && theirs.0 && ours.1 == theirs.1 {
            "same digest"
        } else {
            failures.push(format!(
                "case {i}:\n  {described}\n  ours: {} {}{}\n  theirs: {} {}{}",
                ours.0, ours.1, ours.2, theirs.0, theirs.1, theirs.2
            ));
            "DIFFER"
        };
        println!(
            "our image, case {i:2}: {mode:13} vcpus={vcpus:>3} {vcpu_type:13} {vmm:4} \
             features={features:#x} kernel={} initrd={} cmdline={c:?}: {verdict} {}",
            k.is_some(),
            ird.is_some(),
            ours.1
        );
    }
    assert!(
        failures.is_empty(),
        "td-shim-tool and sev-snp-measure disagree on our image:\n{}",
        failures.join("\n")
    );
}
