//! The SNP platform against the model of the hypervisor and the SNP hardware: the set-up order,
//! port I/O through the GHCB, validation of RAM, #VC for CPUID from the CPUID page, the
//! kernel-hashes check and the termination request.

extern crate std;

use super::*;
use crate::snp::cpu::{CpuidResult, PageSize, PvalidateResult};
use crate::snp::cpuid::CpuState;
use crate::snp::model::{Call, Inject, Model};
use crate::snp::tests::{cpuid_page, epyc_functions, GHCB_GPA, MIB};
use crate::snp::vc::MAX_INSN;
use crate::tdx::bounce::tests::VecBuffer;
use std::boxed::Box;
use std::sync::Mutex;
use std::vec::Vec;

/// The model behind a lock, so the platform (which must be `Sync`) can hold it.
struct Locked(Mutex<Model>);

impl SevCpu for Locked {
    fn ghcb_msr_read(&self) -> u64 {
        self.0.lock().unwrap().ghcb_msr_read()
    }
    fn ghcb_msr_write(&self, value: u64) {
        self.0.lock().unwrap().ghcb_msr_write(value)
    }
    fn vmgexit(&self, ghcb: Option<&mut Ghcb>) {
        self.0.lock().unwrap().vmgexit(ghcb)
    }
    fn pvalidate(&self, va: u64, size: PageSize, validate: bool) -> PvalidateResult {
        self.0.lock().unwrap().pvalidate(va, size, validate)
    }
    fn touch_pages(&self, va: u64, pages: u64) {
        self.0.lock().unwrap().touch_pages(va, pages)
    }
}

/// Page-table changes, recorded.
#[derive(Default)]
struct Remaps(Mutex<Vec<(u64, u64, u64)>>);

impl RemapPages for Remaps {
    fn remap(&self, gpa: u64, len: u64, phys_or: u64) -> Result<(), &'static str> {
        self.0.lock().unwrap().push((gpa, len, phys_or));
        Ok(())
    }
}

/// The #VC environment: code bytes given by the test.
struct Env(Vec<u8>);

impl VcEnv for Env {
    fn fetch(&self, _rip: u64, buf: &mut [u8; MAX_INSN]) -> usize {
        let n = self.0.len().min(MAX_INSN);
        buf[..n].copy_from_slice(&self.0[..n]);
        n
    }
    fn mmio_gpa(&self, _va: u64, _len: u64) -> Option<u64> {
        None
    }
    fn cpu_state(&self) -> CpuState {
        CpuState::default()
    }
    fn secure_tsc(&self) -> bool {
        false
    }
}

const ENTRY: SnpEntry = SnpEntry {
    sev_status: 0b111,
    c_bit: 51,
};

fn leak<T>(t: T) -> &'static T {
    Box::leak(Box::new(t))
}

/// `&'static Locked` as a `SevCpu + Sync`.
#[derive(Clone, Copy)]
struct CpuRef(&'static Locked);

impl SevCpu for CpuRef {
    fn ghcb_msr_read(&self) -> u64 {
        self.0.ghcb_msr_read()
    }
    fn ghcb_msr_write(&self, value: u64) {
        self.0.ghcb_msr_write(value)
    }
    fn vmgexit(&self, ghcb: Option<&mut Ghcb>) {
        self.0.vmgexit(ghcb)
    }
    fn pvalidate(&self, va: u64, size: PageSize, validate: bool) -> PvalidateResult {
        self.0.pvalidate(va, size, validate)
    }
    fn touch_pages(&self, va: u64, pages: u64) {
        self.0.touch_pages(va, pages)
    }
}

type P = SnpPlatform<CpuRef, VecBuffer>;

/// A platform over a fresh model with RAM [0, 2 GiB), the GHCB page validated private (as the
/// SEV metadata's pre-validated TempMem leaves it) and a QEMU-like CPUID page.
fn platform(hashes: Vec<u8>, code: Vec<u8>) -> (&'static P, &'static Locked, &'static Remaps) {
    build(hashes, code, epyc_functions(), None)
}

/// As [`platform`], with `functions` as the CPUID page and, if given, a bounce buffer (its
/// pages validated private, as TempMem is).
fn build(
    hashes: Vec<u8>,
    code: Vec<u8>,
    functions: Vec<crate::snp::cpuid::CpuidFunction>,
    bounce: Option<VecBuffer>,
) -> (&'static P, &'static Locked, &'static Remaps) {
    let m = Model::new();
    m.add_ram(0, 0x8000_0000);
    m.pre_validate(GHCB_GPA, 0x1000);
    if let Some(b) = &bounce {
        m.pre_validate(b.gpa, b.mem.lock().unwrap().len() as u64);
    }
    let cpu: &'static Locked = leak(Locked(Mutex::new(m)));
    let remaps: &'static Remaps = leak(Remaps::default());
    let env: &'static Env = leak(Env(code));
    let page: &'static [u8] = Box::leak(cpuid_page(&functions).into_boxed_slice());
    let hashes: &'static [u8] = Box::leak(hashes.into_boxed_slice());
    let p = SnpPlatform::new(
        CpuRef(cpu),
        ENTRY,
        SnpPages {
            ghcb_gpa: GHCB_GPA,
            cpuid_page: page,
            hashes_area: hashes,
        },
        remaps,
        env,
    );
    let p = match bounce {
        Some(b) => p.with_bounce_buffer(b),
        None => p,
    };
    (leak(p), cpu, remaps)
}

/// Where the layout puts FW_CFG_BOUNCE, and its size.
const BOUNCE: u64 = 0x1B_0000;
const BOUNCE_LEN: u64 = 0x4_0000;

/// The EPYC CPUID page with `SME_COHERENT` (0x8000001F EAX bit 10) set or clear.
fn functions(sme_coherent: bool) -> Vec<crate::snp::cpuid::CpuidFunction> {
    let mut f = epyc_functions();
    for e in f.iter_mut().filter(|e| e.eax_in == 0x8000_001F) {
        e.eax = if sme_coherent {
            e.eax | 1 << 10
        } else {
            e.eax & !(1 << 10)
        };
    }
    f
}

/// A platform with a bounce buffer at [`BOUNCE`].
fn with_bounce(sme_coherent: bool) -> (&'static P, &'static Locked, &'static Remaps) {
    build(
        std::vec![0; 0x400],
        Vec::new(),
        functions(sme_coherent),
        Some(VecBuffer::new(BOUNCE, BOUNCE_LEN as usize)),
    )
}

fn bounce_pages() -> impl Iterator<Item = u64> {
    (BOUNCE..BOUNCE + BOUNCE_LEN).step_by(0x1000)
}

fn model(cpu: &Locked) -> std::sync::MutexGuard<'_, Model> {
    cpu.0.lock().unwrap()
}

#[test]
fn early_init_negotiates_shares_maps_and_registers_the_ghcb_in_that_order() {
    let (p, cpu, remaps) = platform(std::vec![0; 0x400], Vec::new());
    assert!(matches!(p.session(|_| Ok(())), Err(SnpError::NotReady)));
    p.early_init().unwrap();
    {
        let m = model(cpu);
        assert_eq!(m.registered(), Some(GHCB_GPA));
        assert!(!m.is_private(GHCB_GPA), "the GHCB page is shared");
        assert!(!m.is_validated(GHCB_GPA), "and rescinded");
        m.assert_clean();
    }
    assert_eq!(remaps.0.lock().unwrap().clone(), [(GHCB_GPA, 0x1000, 0)]);
    // A second early_init does nothing.
    p.early_init().unwrap();
    assert_eq!(remaps.0.lock().unwrap().len(), 1);
    assert_eq!(p.private_mask(), 1 << 51);
    assert_eq!(p.kind(), PlatformKind::SevSnp);
    assert_eq!(p.cc_type(), 1);
    assert!(!p.parks_aps());
    assert_eq!(p.shared_pages(), &[SNP_GHCB]);
    assert_eq!(p.reserved_regions(), &[SNP_SECRETS, SNP_CPUID, SNP_GHCB]);
}

#[test]
fn a_hypervisor_without_snp_or_another_c_bit_is_refused() {
    let (p, cpu, _) = platform(std::vec![0; 0x400], Vec::new());
    model(cpu).set_features(0);
    assert!(p.early_init().is_err());
    assert_eq!(model(cpu).registered(), None);
    let (p, cpu, _) = platform(std::vec![0; 0x400], Vec::new());
    model(cpu).set_sev_info(2, 1, 47);
    assert!(
        p.early_init().is_err(),
        "the hypervisor's C-bit differs from the CPUID page's"
    );
    assert_eq!(model(cpu).registered(), None);
    let (p, cpu, _) = platform(std::vec![0; 0x400], Vec::new());
    model(cpu).set_sev_info(1, 1, 51);
    assert!(
        p.early_init().is_err(),
        "GHCB protocol version 2 is required"
    );
}

#[test]
fn port_io_goes_through_the_ghcb() {
    let (p, cpu, _) = platform(std::vec![0; 0x400], Vec::new());
    p.early_init().unwrap();
    model(cpu).set_port(0x511, 0x42);
    assert_eq!(p.io().inb(0x511), 0x42);
    p.io().outw(0x510, 0x19);
    p.io().outb(0x3F8, b'A');
    let writes = model(cpu).port_writes();
    assert!(writes.contains(&(0x510, 2, 0x19)), "{writes:?}");
    assert!(writes.contains(&(0x3F8, 1, u64::from(b'A'))), "{writes:?}");
    model(cpu).assert_clean();
}

#[test]
fn fw_cfg_reads_go_2032_bytes_per_exit() {
    let (p, cpu, _) = platform(std::vec![0; 0x400], Vec::new());
    p.early_init().unwrap();
    let data: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
    model(cpu).set_port_stream(0x511, &data);
    let calls_before = model(cpu).calls().len();
    let mut got = std::vec![0u8; 5000];
    p.io().read_bytes(0x511, &mut got);
    assert_eq!(got, data);
    assert_eq!(
        model(cpu).calls().len() - calls_before,
        3,
        "2032 + 2032 + 936"
    );
    model(cpu).assert_clean();
}

#[test]
fn accepting_ram_validates_every_page_once() {
    let (p, cpu, _) = platform(std::vec![0; 0x400], Vec::new());
    p.early_init().unwrap();
    let before = model(cpu).validated_pages();
    p.accept_memory(0x100_0000, 4 * MIB).unwrap();
    p.accept_memory(0, 0xA_0000).unwrap();
    let m = model(cpu);
    assert_eq!(m.validated_pages() - before, (4 * MIB + 0xA_0000) / 0x1000);
    assert!(m.is_validated(0x100_0000) && m.is_validated(0x13F_F000));
    assert!(m.is_validated(0) && m.is_validated(0x9_F000));
    m.assert_clean();
    drop(m);
    assert!(p.accept_needs_mapping());
    // Above the model's RAM (2 GiB here): the page state change fails, and says so.
    assert!(p.accept_memory(1 << 32, 0x1000).is_err());
    assert!(p.accept_memory(u64::MAX - 0xFFF, 0x1000).is_err());
}

#[test]
fn cpuid_under_vc_comes_from_the_cpuid_page() {
    // CPUID (0F A2) raised #VC with exit code 0x72.
    let (p, cpu, _) = platform(std::vec![0; 0x400], std::vec![0x0F, 0xA2]);
    let mut f = ExceptionFrame {
        vector: u64::from(VECTOR_VC),
        error_code: 0x72,
        rip: 0x20_1000,
        rax: 0,
        ..ExceptionFrame::default()
    };
    assert!(
        matches!(p.handle_exception(&mut f), Handled::Fatal(_)),
        "before the GHCB"
    );
    p.early_init().unwrap();
    assert!(p.owns_vector(29) && !p.owns_vector(20));
    assert_eq!(p.handle_exception(&mut f), Handled::Resume);
    assert_eq!(f.rip, 0x20_1002);
    // Leaf 0 of the page: max leaf 0xD, "AuthenticAMD".
    assert_eq!(f.rax, 0xD);
    assert_eq!(f.rbx, 0x6874_7541);
    model(cpu).assert_clean();
    let _ = CpuidResult::default();
}

#[test]
fn the_fatal_path_asks_for_termination() {
    let (p, cpu, _) = platform(std::vec![0; 0x400], Vec::new());
    let e = p.terminate();
    assert!(matches!(
        e,
        msr_protocol::MsrProtocolError::TerminateReturned { .. }
    ));
    let code = model(cpu).terminated().unwrap();
    assert_eq!(code & 0xFFF, 0x100);
    assert_eq!((code >> 12) & 0xF, u64::from(TERM_SET));
    assert_eq!((code >> 16) & 0xFF, u64::from(TERM_FATAL));
}

/// A kernel-hashes table as QEMU writes it (table GUID, length 168, then cmdline, initrd and
/// kernel entries of 50 bytes: GUID, length 50, SHA-256), built from the layout (the GUIDs are
/// the module's; `snp::tests::hashes` checks them against QEMU's text form).
fn hashes_table(cmdline: &[u8], initrd: &[u8], setup: &[u8], kernel: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    use td_layout::sev::SEV_HASH_TABLE_SIZE;
    let mut t = Vec::new();
    t.extend_from_slice(hashes::TABLE_GUID.as_bytes());
    t.extend_from_slice(&168u16.to_le_bytes());
    let entry = |t: &mut Vec<u8>, g: td_layout::guid::Guid, digest: [u8; 32]| {
        t.extend_from_slice(g.as_bytes());
        t.extend_from_slice(&50u16.to_le_bytes());
        t.extend_from_slice(&digest);
    };
    entry(&mut t, hashes::CMDLINE_GUID, Sha256::digest(cmdline).into());
    entry(&mut t, hashes::INITRD_GUID, Sha256::digest(initrd).into());
    let mut k = Sha256::new();
    k.update(setup);
    k.update(kernel);
    entry(&mut t, hashes::KERNEL_GUID, k.finalize().into());
    t.resize(SEV_HASH_TABLE_SIZE as usize, 0);
    t
}

#[test]
fn direct_boot_blobs_must_match_the_launch_measured_table() {
    let (setup, kernel, initrd, cmdline) = (
        &[1u8; 512][..],
        &[2u8; 4096][..],
        &[3u8; 100][..],
        &b"console=ttyS0\0"[..],
    );
    let (p, _, _) = platform(hashes_table(cmdline, initrd, setup, kernel), Vec::new());
    p.verify_direct_boot(setup, kernel, Some(initrd), cmdline)
        .unwrap();
    // One flipped byte in each blob, a missing initrd, the command line without its NUL.
    let mut k2 = kernel.to_vec();
    k2[100] ^= 1;
    for (what, r) in [
        (
            "kernel",
            p.verify_direct_boot(setup, &k2, Some(initrd), cmdline),
        ),
        (
            "setup",
            p.verify_direct_boot(&[1u8; 511], kernel, Some(initrd), cmdline),
        ),
        (
            "initrd",
            p.verify_direct_boot(setup, kernel, Some(&[3u8; 99]), cmdline),
        ),
        (
            "no initrd",
            p.verify_direct_boot(setup, kernel, None, cmdline),
        ),
        (
            "cmdline",
            p.verify_direct_boot(setup, kernel, Some(initrd), b"console=ttyS0"),
        ),
    ] {
        assert!(
            matches!(r, Err(BootError::KernelHashes(HashesError::Mismatch(_)))),
            "{what}: {r:?}"
        );
    }
    // No table (QEMU without kernel-hashes=on): refused, and said so.
    let (p, _, _) = platform(std::vec![0; 0x400], Vec::new());
    let e = p
        .verify_direct_boot(setup, kernel, Some(initrd), cmdline)
        .unwrap_err();
    assert!(hashes_missing(&e), "{e:?}");
    assert!(std::format!("{e}").contains("measured direct boot"));
}

/// Secure boot under SEV-SNP with kernel-hashes: QEMU hashes the files it was given, so the table
/// covers the signed bzImage, trailer included. The firmware checks the table on the staged bytes
/// first, then verifies the signature on the same bytes (`boot::linux`): both pass on a good
/// signed kernel. The order matters: the payload without its trailer is not what QEMU hashed.
#[test]
fn under_secure_boot_the_hashes_table_covers_the_signed_file() {
    use crate::secure_boot::{key_hash, message_digest, verify};
    use p384::ecdsa::signature::hazmat::PrehashSigner;
    use p384::ecdsa::{Signature, SigningKey};
    use td_layout::signed::{header, Algorithm, EnrolledKey};
    let mut secret = [0u8; 48];
    secret[0] = 0x11;
    secret[47] = 9;
    let key = SigningKey::from_slice(&secret).unwrap();
    let public = key.verifying_key().to_sec1_point(false).as_bytes()[1..].to_vec();
    // A bzImage with one setup sector: QEMU sends 1024 bytes of setup, then the rest.
    let mut bz = std::vec![0x5Au8; 0x2000];
    bz[0x1F1] = 1;
    bz[0x202..0x206].copy_from_slice(b"HdrS");
    let h = header(bz.len(), 1, 4, Algorithm::EcdsaP384Sha384).unwrap();
    let sig: Signature = key.sign_prehash(&message_digest(&h, &bz)).unwrap();
    let mut signed = bz.clone();
    signed.extend_from_slice(&public);
    signed.extend_from_slice(&sig.to_bytes());
    signed.extend_from_slice(&h);
    let (initrd, cmdline) = (&[3u8; 100][..], &b"console=ttyS0\0"[..]);
    let (setup, kernel) = signed.split_at(1024);
    let (p, _, _) = platform(hashes_table(cmdline, initrd, setup, kernel), Vec::new());
    p.verify_direct_boot(setup, kernel, Some(initrd), cmdline)
        .unwrap();
    let enrolled = EnrolledKey {
        algorithm: Algorithm::EcdsaP384Sha384,
        key_hash: key_hash(&public),
        min_svn: 4,
    };
    let v = verify(&signed, &enrolled).unwrap();
    assert_eq!(v.payload, &bz[..]);
    let (setup, kernel) = v.payload.split_at(1024);
    assert!(matches!(
        p.verify_direct_boot(setup, kernel, Some(initrd), cmdline),
        Err(BootError::KernelHashes(HashesError::Mismatch(_)))
    ));
}

#[test]
fn the_cc_blob_names_the_secrets_and_cpuid_pages() {
    let (p, _, _) = platform(std::vec![0; 0x400], Vec::new());
    let b = p.cc_blob().unwrap();
    assert_eq!(&b[0..4], b"AMDE");
    assert_eq!(
        u64::from_le_bytes(b[8..16].try_into().unwrap()),
        SNP_SECRETS.base
    );
    assert_eq!(
        u64::from_le_bytes(b[24..32].try_into().unwrap()),
        SNP_CPUID.base
    );
    // No registers: extends succeed without effect, none are published.
    assert_eq!(p.extend_rtmr(0, &[1; 48]), Ok(()));
    assert!(p.extend_rtmr(4, &[1; 48]).is_err());
    assert_eq!(p.emulated_rtmrs(), None);
}

#[test]
fn the_bounce_buffer_is_shared_after_the_ghcb_and_private_again_before_handoff() {
    let (p, cpu, remaps) = with_bounce(true);
    assert!(p.fw_cfg_dma().is_none(), "before early_init");
    p.early_init().unwrap();
    {
        let m = model(cpu);
        // The GHCB is registered (MSR protocol) before the buffer's first rescind.
        let calls = m.calls();
        let registered = calls
            .iter()
            .position(|c| matches!(c, Call::Msr { request, .. } if request & 0xFFF == msr_protocol::code::REGISTER_GHCB_REQ))
            .unwrap();
        let first_rescind = calls
            .iter()
            .position(|c| matches!(c, Call::Pvalidate { va, validate: false, .. } if *va == BOUNCE))
            .unwrap();
        assert!(registered < first_rescind);
        assert!(bounce_pages().all(|pg| !m.is_private(pg)), "shared");
        m.assert_clean();
    }
    assert_eq!(
        remaps.0.lock().unwrap().clone(),
        [(GHCB_GPA, 0x1000, 0), (BOUNCE, BOUNCE_LEN, 0)]
    );
    assert!(p.fw_cfg_dma().is_some());
    // The buffer is not one of the pages that stay shared in the final page tables.
    assert_eq!(p.shared_pages(), &[SNP_GHCB]);

    p.before_handoff().unwrap();
    assert_eq!(
        remaps.0.lock().unwrap().last().copied(),
        Some((BOUNCE, BOUNCE_LEN, 1 << 51))
    );
    {
        let m = model(cpu);
        assert!(
            bounce_pages().all(|pg| m.is_validated(pg)),
            "private, validated"
        );
        m.assert_clean();
    }
    assert!(p.fw_cfg_dma().is_none(), "after the release");
    // A second hand-off attempt changes nothing.
    let n = model(cpu).calls().len();
    p.before_handoff().unwrap();
    assert_eq!(model(cpu).calls().len(), n);
}

#[test]
fn without_sme_coherent_the_buffer_is_left_private_and_fw_cfg_uses_rep_insb() {
    let (p, cpu, remaps) = with_bounce(false);
    p.early_init().unwrap();
    assert!(p.fw_cfg_dma().is_none());
    assert_eq!(remaps.0.lock().unwrap().len(), 1, "the GHCB only");
    {
        let m = model(cpu);
        assert!(bounce_pages().all(|pg| m.is_validated(pg)));
        assert!(!m
            .calls()
            .iter()
            .any(|c| matches!(c, Call::Pvalidate { va, .. } if *va == BOUNCE)));
    }
    let n = model(cpu).calls().len();
    p.before_handoff().unwrap();
    assert_eq!(model(cpu).calls().len(), n);
    model(cpu).assert_clean();
}

#[test]
fn a_failed_conversion_of_the_buffer_fails_early_init_and_the_hand_off() {
    let (p, cpu, _) = with_bounce(true);
    model(cpu).inject(Inject::PscEntries(5));
    model(cpu).inject(Inject::PscError(3));
    assert_eq!(
        p.early_init(),
        Err(BootError::RegionUnavailable(
            "fw_cfg bounce buffer (its conversion to shared failed)"
        ))
    );
    assert!(p.fw_cfg_dma().is_none());

    let (p, cpu, _) = with_bounce(true);
    p.early_init().unwrap();
    model(cpu).inject(Inject::PscError(3));
    assert_eq!(
        p.before_handoff(),
        Err(BootError::RegionUnavailable(
            "fw_cfg bounce buffer (its conversion back to private failed)"
        ))
    );
    assert!(
        p.fw_cfg_dma().is_none(),
        "closed even though the release failed"
    );
    assert!(matches!(p.release_bounce_buffer(), Ok(None)));
}
