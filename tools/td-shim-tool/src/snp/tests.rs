//! The golden vectors of sev-snp-measure v0.0.13's own test suite (tests/test_guest.py;
//! research/sev.md §1.10, testdata/README.md): every one whose firmware is in
//! testdata/sev-snp/. vCPU type EPYC-v4; "null" is an empty file.

use super::*;

const AMD_SEV: &[u8] = include_bytes!("../../../../testdata/sev-snp/ovmf_AmdSev_suffix.bin");
const OVMF_X64: &[u8] = include_bytes!("../../../../testdata/sev-snp/ovmf_OvmfX64_suffix.bin");

/// kernel/initrd/append: `Null` = empty kernel, empty initrd and this command line;
/// `None` = no kernel.
#[derive(Clone, Copy)]
enum Boot {
    None,
    Null(&'static str),
}

fn params(mode: Mode, vcpus: u32, boot: Boot, features: u64, vmm: VmmType) -> LaunchParams {
    LaunchParams {
        mode,
        vcpus,
        vcpu_sig: vcpu_type_sig("EPYC-v4").unwrap(),
        vmm,
        guest_features: features,
        kernel_hashes: match boot {
            Boot::None => None,
            Boot::Null(cmdline) => {
                Some(KernelHashes::from_bytes(b"", Some(b""), cmdline.as_bytes()))
            }
        },
        ovmf_hash: None,
    }
}

fn check(image: &[u8], p: &LaunchParams, expected: &str) {
    let got = hex::encode(compute(image, p).unwrap());
    assert_eq!(got, expected, "{p:?}");
}

const CMDLINE: &str = "console=ttyS0 loglevel=7";

#[test]
fn snp_vectors() {
    use Boot::{None as NoKernel, Null};
    use VmmType::*;
    /// Firmware, vCPUs, boot, guest features, VMM, expected digest.
    type Case = (&'static [u8], u32, Boot, u64, VmmType, &'static str);
    let cases: &[Case] = &[
        (AMD_SEV, 1, Null(""), 0x21, Qemu, "329c8ce0972ae52343b64d34a434a86f245dfd74f5ed7aae15d22efc78fb9683632b9b50e4e1d7fa41179ef98a7ef198"),
        (AMD_SEV, 1, Null(""), 0x1, Qemu, "ddc5224521617a536ee7ce9dd6224d1b58a8d4fda1c741f3ac99fc4bfa04ba6e9fc98646d4a07a9079397fa3852819b5"),
        (AMD_SEV, 1, Null(CMDLINE), 0x21, Qemu, "803f691094946e42068aaa3a8f9e26a5c89f36f7b73ecfb28c653360fe4b3aba7e534442e7e1e17895dfe778d0228977"),
        (AMD_SEV, 1, Null(CMDLINE), 0x1, Qemu, "6d287813eb5222d770f75005c664e34c204f385ce832cc2ce7d0d6f354454362f390ef83a92046c042e706363b4b08fa"),
        (AMD_SEV, 1, NoKernel, 0x21, Qemu, "e1e1ca029dd7973ab9513295be68198472dcd4fc834bd9af9b63f6e8a1674dbf281a9278a4a2ebe0eed9f22adbcd0e2b"),
        (AMD_SEV, 1, NoKernel, 0x1, Qemu, "19358ba9a7615534a9a1e2f0dfc29384dcd4dcb7062ff9c6013b26869a5fc6ecabe033c48dd6f6db5d6d76e7c5df632d"),
        (AMD_SEV, 4, Null(""), 0x21, Qemu, "4953b1fb416fa874980e8442b3706d345926d5f38879134e00813c5d7abcbe78eafe7b422907be0b4698e2414a631942"),
        (AMD_SEV, 4, Null(""), 0x1, Qemu, "5061fffb019493a903613d56d54b94912a1a2f9e4502385f5c194616753720a92441310ba6c4933de877c36e23046ad5"),
        (OVMF_X64, 1, NoKernel, 0x21, Qemu, "28797ae0afaba4005a81e629acebfb59e6687949d6be44007cd5506823b0dd66f146aaae26ff291eed7b493d8a64c385"),
        (OVMF_X64, 1, NoKernel, 0x1, Qemu, "da0296de8193586a5512078dcd719eccecbd87e2b825ad4148c44f665dc87df21e5b49e21523a9ad993afdb6a30b4005"),
        (AMD_SEV, 1, Null(""), 0x21, Ec2, "0ce9ccc06bab55eebe8abc234f3df6514883977a68a591b71052498ab52b2f1aa415db338033946ef93aa8278c0d67fb"),
        (AMD_SEV, 1, Null(""), 0x1, Ec2, "0883bd0eeb716e65b7b977a321c278d1e51b33b5c655fab985443bbcc65c086b9c15e8a0bd8811050dec7e24964e5056"),
        (AMD_SEV, 1, Null(""), 0x1, Gce, "5da7106cf14cf46b1725ebab123eb9e53bd46a1e9f400cd0c08e7827b04b688ea8b4e403c8404efed4397ea5d5d0722e"),
        (AMD_SEV, 4, Null(""), 0x1, Gce, "5c5debf100fc339f90276e761ee1f1658d08922c3b20e2a2e6c7a6c3370b2452a15a00eae11886a93d6fd1e7ab81e29d"),
    ];
    for &(fw, vcpus, boot, features, vmm, expected) in cases {
        check(fw, &params(Mode::Snp, vcpus, boot, features, vmm), expected);
    }
}

const AMD_SEV_OVMF_HASH: &str = "086e2e9149ebf45abdc3445fba5b2da8270bdbb04094d7a2c37faaa4b24af3aa16aff8c374c2a55c467a50da6d466b74";

#[test]
fn ovmf_hash_vector_and_seed() {
    let mut p = params(Mode::SnpOvmfHash, 1, Boot::None, 1, VmmType::Qemu);
    check(AMD_SEV, &p, AMD_SEV_OVMF_HASH);
    // Seeding with it gives the unseeded digest.
    p.mode = Mode::Snp;
    let unseeded = compute(AMD_SEV, &p).unwrap();
    let mut seed = [0u8; 48];
    hex::decode_to_slice(AMD_SEV_OVMF_HASH, &mut seed).unwrap();
    p.ovmf_hash = Some(seed);
    assert_eq!(compute(AMD_SEV, &p).unwrap(), unseeded);
}

#[test]
fn seves_and_sev_vectors() {
    let q = VmmType::Qemu;
    let n = Boot::Null("");
    check(
        AMD_SEV,
        &params(Mode::SevEs, 1, n, 0, q),
        "13810ae661ea11e2bb205621f582fee268f0367c8f97bc297b7fadef3e12002c",
    );
    check(
        AMD_SEV,
        &params(Mode::SevEs, 4, n, 0, q),
        "0dccbcaba8e90b261bd0d2e1863a2f9da714768b7b2a19363cd6ae35aa90de91",
    );
    // The guest features are ignored for SEV-ES.
    check(
        AMD_SEV,
        &params(Mode::SevEs, 4, n, 0x21, q),
        "0dccbcaba8e90b261bd0d2e1863a2f9da714768b7b2a19363cd6ae35aa90de91",
    );
    check(
        AMD_SEV,
        &params(Mode::Sev, 1, Boot::Null(CMDLINE), 0, q),
        "82a3ee5d537c3620628270c292ae30cb40c3c878666a7890ee7ef2a08fb535ff",
    );
    // null/none/none: an empty kernel, no initrd, no command line.
    let mut p = params(Mode::Sev, 1, Boot::None, 0, q);
    p.kernel_hashes = Some(KernelHashes::from_bytes(b"", None, b""));
    check(
        AMD_SEV,
        &p,
        "77f613d7bbcdf12a73782ea9e88b0172aeda50d1a54201cb903594ff52846898",
    );
    check(
        OVMF_X64,
        &params(Mode::Sev, 1, Boot::None, 0, q),
        "b4c021e085fb83ceffe6571a3d357b4a98773c83c474e47f76c876708fe316da",
    );
}

/// The negative vectors: OvmfX64 cannot measure a kernel.
#[test]
fn kernel_needs_hashes_support() {
    let n = Boot::Null("");
    let q = VmmType::Qemu;
    assert_eq!(
        compute(OVMF_X64, &params(Mode::Snp, 1, n, 1, q)),
        Err(SnpError::KernelWithoutHashesSection)
    );
    for mode in [Mode::SevEs, Mode::Sev] {
        assert_eq!(
            compute(OVMF_X64, &params(mode, 1, n, 1, q)),
            Err(SnpError::KernelWithoutHashTable)
        );
    }
}

#[test]
fn refusals_are_typed() {
    let p = params(Mode::Snp, 2, Boot::None, 1, VmmType::Qemu);
    assert!(matches!(
        compute(&[0u8; 8192], &p),
        Err(SnpError::NoFooterTable(_))
    ));
    assert_eq!(
        compute(&AMD_SEV[..4000], &p),
        Err(SnpError::ImageSize { len: 4000 })
    );
    assert_eq!(compute(&[], &p), Err(SnpError::ImageSize { len: 0 }));
    let mut none = p.clone();
    none.vcpus = 0;
    assert_eq!(compute(AMD_SEV, &none), Err(SnpError::NoVcpus));
    // Every single-byte corruption of the metadata (0x554 from the end, 100 bytes) and of the
    // footer table (the last 0xD0 bytes): a digest or an error, never a panic.
    for at in (4096 - 0x554..4096 - 0x554 + 100).chain(4096 - 0xD0..4096) {
        let mut bad = AMD_SEV.to_vec();
        bad[at] ^= 0xFF;
        for mode in [Mode::Snp, Mode::SevEs, Mode::Sev] {
            let mut q = p.clone();
            q.mode = mode;
            q.kernel_hashes = Some(KernelHashes::from_bytes(b"", None, b""));
            let _ = compute(&bad, &q);
        }
    }
}

#[test]
fn report_describes_the_launch() {
    let p = params(Mode::Snp, 4, Boot::Null(""), 1, VmmType::Gce);
    let r = report(AMD_SEV, &p).unwrap();
    assert_eq!(r.launch_digest.len(), 96);
    assert_eq!(r.firmware_gpa, "0xfffff000");
    assert_eq!(r.sections.len(), 7);
    assert_eq!(r.sections[0].measured_as, "unmeasured");
    assert_eq!(r.sections[5].measured_as, "normal");
    assert_eq!(r.to_text(), format!("{}\n", r.launch_digest));
}

#[test]
fn page_digests_computed_ahead_give_the_same_digest() {
    for (image, boot) in [(AMD_SEV, Boot::Null(CMDLINE)), (OVMF_X64, Boot::None)] {
        let p = params(Mode::Snp, 4, boot, 0x1, VmmType::Qemu);
        let pages = digest::page_digests(image);
        assert_eq!(pages.len(), image.len() / PAGE_SIZE);
        assert_eq!(
            compute_with(image, &p, Some(&pages)).unwrap(),
            compute(image, &p).unwrap()
        );
        let ovmf_hash = params(Mode::SnpOvmfHash, 1, Boot::None, 0x1, VmmType::Qemu);
        assert_eq!(
            compute_with(image, &ovmf_hash, Some(&pages)).unwrap(),
            compute(image, &ovmf_hash).unwrap()
        );
        // Digests of another length, or of other bytes, are not silently used.
        assert!(matches!(
            compute_with(image, &p, Some(&pages[1..])),
            Err(SnpError::PageDigestsMismatch)
        ));
        let mut other = pages.clone();
        other[0][0] ^= 1;
        assert_ne!(
            compute_with(image, &p, Some(&other)).unwrap(),
            compute(image, &p).unwrap()
        );
    }
}

#[test]
fn the_sparse_image_read_equals_reading_and_hashing_every_page() {
    let dir = tempfile::tempdir().unwrap();
    let limit = Limit {
        what: "test image",
        max: 1 << 20,
        regular_only: true,
        rule: "the rule",
    };
    // Zero pages, data pages, a page that is zero but for its last byte, and a partial last
    // page: every case of the one-pass read.
    let mut image = vec![0u8; 7 * PAGE_SIZE + 123];
    image[PAGE_SIZE..2 * PAGE_SIZE].fill(0xA5);
    image[4 * PAGE_SIZE - 1] = 1;
    image[7 * PAGE_SIZE + 5] = 9;
    for (name, bytes) in [
        ("mixed", image.clone()),
        ("empty", Vec::new()),
        ("zero", vec![0u8; 3 * PAGE_SIZE]),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        let (read, digests) = read_image_pages(&path, &limit).unwrap();
        assert!(read == bytes, "{name}: the bytes");
        assert_eq!(digests, digest::page_digests(&bytes), "{name}: the digests");
    }
    let big = dir.path().join("big");
    std::fs::write(&big, vec![1u8; (1 << 20) + 1]).unwrap();
    assert!(matches!(
        read_image_pages(&big, &limit),
        Err(FileError::TooLarge { .. })
    ));
}
