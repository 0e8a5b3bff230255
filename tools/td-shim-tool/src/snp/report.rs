//! The AMD SEV-SNP attestation report (ATTESTATION_REPORT of the SEV-SNP firmware ABI), read from
//! untrusted bytes.
//!
//! A report is 1184 (0x4A0) bytes, little-endian: the fields the AMD secure processor signs
//! (bytes 0 to 0x29F) and the ECDSA P-384 signature over them (r and s, 72 bytes each, then
//! zeros). [`parse`] checks the length and the version, and decodes every field; **it does not
//! verify the signature**: that takes the chip's VCEK (or VLEK) certificate and AMD's
//! certificate chain, and is the verifier's job.
//!
//! Versions read: 2 (Milan firmware before ABI 1.55), 3 and 4 (one layout: the CPUID family,
//! model and stepping at 0x188), 5 (adds the launch and current mitigation vectors at 0x1F8 and
//! 0x200). [`layout`] gives the offsets, and the compiler checks the struct against them. The
//! TCB_VERSION fields ([`TcbVersion`]) have two layouts: Milan and Genoa keep boot loader, TEE,
//! SNP and microcode in bytes 0, 1, 6 and 7; Turin (CPUID family 0x1A, so a version 3+ report)
//! has FMC, boot loader, TEE, SNP in bytes 0 to 3 and microcode in byte 7.
//!
//! Sources: the offsets of Linux's `struct snp_report` users and the SNP ABI's table as quoted in
//! research notes sev.md §2.10, checked against virtee/sev's `AttestationReport` and Trustee's
//! SNP verifier; the tests decode a real Milan report (testdata/sev-snp/).
//!
//! This file is self-contained (it uses only `core`, `zerocopy` and `thiserror`): `td-shim-tool`
//! has it as `snp::report`, and the guest agent, which does not depend on `td-shim-tool`,
//! compiles the same file as its `snp_report` module (`#[path]`), so there is one parser.

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

/// The size of an attestation report (every version so far).
pub const REPORT_SIZE: usize = 0x4A0;
/// The bytes the signature covers: 0 to 0x29F.
pub const SIGNED_SIZE: usize = 0x2A0;
/// The size of REPORT_DATA, what the guest asks the report for (the nonce).
pub const REPORT_DATA_SIZE: usize = 64;
/// The size of MEASUREMENT, the launch digest (SHA-384).
pub const MEASUREMENT_SIZE: usize = 48;
/// The oldest version read.
pub const MIN_VERSION: u32 = 2;
/// The newest version read.
pub const MAX_VERSION: u32 = 5;
/// SIGNATURE_ALGO 1: ECDSA P-384 with SHA-384 (the only one defined).
pub const SIGNATURE_ALGO_ECDSA_P384_SHA384: u32 = 1;
/// The CPUID family of Turin (Zen 5), whose TCB_VERSION layout differs.
pub const TURIN_FAMILY: u8 = 0x1A;

/// A launch digest.
pub type Measurement = [u8; MEASUREMENT_SIZE];

/// The offsets of the attestation report.
pub mod layout {
    /// VERSION, u32.
    pub const VERSION: usize = 0x000;
    /// GUEST_SVN, u32.
    pub const GUEST_SVN: usize = 0x004;
    /// POLICY, u64: the guest policy the VMM launched with.
    pub const POLICY: usize = 0x008;
    /// FAMILY_ID, 16 bytes (from the ID block).
    pub const FAMILY_ID: usize = 0x010;
    /// IMAGE_ID, 16 bytes (from the ID block).
    pub const IMAGE_ID: usize = 0x020;
    /// VMPL, u32: the privilege level the report was requested at.
    pub const VMPL: usize = 0x030;
    /// SIGNATURE_ALGO, u32.
    pub const SIGNATURE_ALGO: usize = 0x034;
    /// CURRENT_TCB, 8 bytes.
    pub const CURRENT_TCB: usize = 0x038;
    /// PLATFORM_INFO, u64.
    pub const PLATFORM_INFO: usize = 0x040;
    /// The key flags, u32: AUTHOR_KEY_EN (bit 0), MASK_CHIP_KEY (bit 1), SIGNING_KEY (bits 4:2).
    pub const KEY_INFO: usize = 0x048;
    /// REPORT_DATA, 64 bytes.
    pub const REPORT_DATA: usize = 0x050;
    /// MEASUREMENT, 48 bytes: the launch digest.
    pub const MEASUREMENT: usize = 0x090;
    /// HOST_DATA, 32 bytes (the VMM's, at launch).
    pub const HOST_DATA: usize = 0x0C0;
    /// ID_KEY_DIGEST, 48 bytes.
    pub const ID_KEY_DIGEST: usize = 0x0E0;
    /// AUTHOR_KEY_DIGEST, 48 bytes.
    pub const AUTHOR_KEY_DIGEST: usize = 0x110;
    /// REPORT_ID, 32 bytes.
    pub const REPORT_ID: usize = 0x140;
    /// REPORT_ID_MA, 32 bytes (the migration agent's; all ones without one).
    pub const REPORT_ID_MA: usize = 0x160;
    /// REPORTED_TCB, 8 bytes: the TCB the VCEK that signs the report is derived for.
    pub const REPORTED_TCB: usize = 0x180;
    /// CPUID_FAM_ID, u8 (version 3 and later).
    pub const CPUID_FAM_ID: usize = 0x188;
    /// CPUID_MOD_ID, u8 (version 3 and later).
    pub const CPUID_MOD_ID: usize = 0x189;
    /// CPUID_STEP, u8 (version 3 and later).
    pub const CPUID_STEP: usize = 0x18A;
    /// CHIP_ID, 64 bytes (zeros when MASK_CHIP_ID was set).
    pub const CHIP_ID: usize = 0x1A0;
    /// COMMITTED_TCB, 8 bytes.
    pub const COMMITTED_TCB: usize = 0x1E0;
    /// CURRENT_BUILD, CURRENT_MINOR, CURRENT_MAJOR, one byte each, then a reserved byte.
    pub const CURRENT_VERSION: usize = 0x1E8;
    /// COMMITTED_BUILD, COMMITTED_MINOR, COMMITTED_MAJOR, then a reserved byte.
    pub const COMMITTED_VERSION: usize = 0x1EC;
    /// LAUNCH_TCB, 8 bytes.
    pub const LAUNCH_TCB: usize = 0x1F0;
    /// LAUNCH_MIT_VECTOR, u64 (version 5).
    pub const LAUNCH_MIT_VECTOR: usize = 0x1F8;
    /// CURRENT_MIT_VECTOR, u64 (version 5).
    pub const CURRENT_MIT_VECTOR: usize = 0x200;
    /// SIGNATURE: R (72 bytes, little-endian), S (72 bytes), then reserved zeros.
    pub const SIGNATURE: usize = 0x2A0;
    /// S, right after R.
    pub const SIGNATURE_S: usize = 0x2E8;
}

/// The size of each signature component (R, S): a P-384 scalar zero-extended to 72 bytes.
pub const SIGNATURE_COMPONENT_SIZE: usize = 72;

#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct Raw {
    version: U32,
    guest_svn: U32,
    policy: U64,
    family_id: [u8; 16],
    image_id: [u8; 16],
    vmpl: U32,
    signature_algo: U32,
    current_tcb: [u8; 8],
    platform_info: U64,
    key_info: U32,
    reserved0: [u8; 4],
    report_data: [u8; REPORT_DATA_SIZE],
    measurement: Measurement,
    host_data: [u8; 32],
    id_key_digest: [u8; 48],
    author_key_digest: [u8; 48],
    report_id: [u8; 32],
    report_id_ma: [u8; 32],
    reported_tcb: [u8; 8],
    cpuid: [u8; 3],
    reserved1: [u8; 21],
    chip_id: [u8; 64],
    committed_tcb: [u8; 8],
    current_version: [u8; 4],
    committed_version: [u8; 4],
    launch_tcb: [u8; 8],
    launch_mit_vector: U64,
    current_mit_vector: U64,
    reserved2: [u8; SIGNED_SIZE - 0x208],
    signature_r: [u8; SIGNATURE_COMPONENT_SIZE],
    signature_s: [u8; SIGNATURE_COMPONENT_SIZE],
    signature_reserved: [u8; REPORT_SIZE - SIGNED_SIZE - 2 * SIGNATURE_COMPONENT_SIZE],
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<Raw>() == REPORT_SIZE);
    assert!(offset_of!(Raw, version) == layout::VERSION);
    assert!(offset_of!(Raw, guest_svn) == layout::GUEST_SVN);
    assert!(offset_of!(Raw, policy) == layout::POLICY);
    assert!(offset_of!(Raw, family_id) == layout::FAMILY_ID);
    assert!(offset_of!(Raw, image_id) == layout::IMAGE_ID);
    assert!(offset_of!(Raw, vmpl) == layout::VMPL);
    assert!(offset_of!(Raw, signature_algo) == layout::SIGNATURE_ALGO);
    assert!(offset_of!(Raw, current_tcb) == layout::CURRENT_TCB);
    assert!(offset_of!(Raw, platform_info) == layout::PLATFORM_INFO);
    assert!(offset_of!(Raw, key_info) == layout::KEY_INFO);
    assert!(offset_of!(Raw, report_data) == layout::REPORT_DATA);
    assert!(offset_of!(Raw, measurement) == layout::MEASUREMENT);
    assert!(offset_of!(Raw, host_data) == layout::HOST_DATA);
    assert!(offset_of!(Raw, id_key_digest) == layout::ID_KEY_DIGEST);
    assert!(offset_of!(Raw, author_key_digest) == layout::AUTHOR_KEY_DIGEST);
    assert!(offset_of!(Raw, report_id) == layout::REPORT_ID);
    assert!(offset_of!(Raw, report_id_ma) == layout::REPORT_ID_MA);
    assert!(offset_of!(Raw, reported_tcb) == layout::REPORTED_TCB);
    assert!(offset_of!(Raw, cpuid) == layout::CPUID_FAM_ID);
    assert!(layout::CPUID_FAM_ID + 1 == layout::CPUID_MOD_ID);
    assert!(layout::CPUID_FAM_ID + 2 == layout::CPUID_STEP);
    assert!(offset_of!(Raw, chip_id) == layout::CHIP_ID);
    assert!(offset_of!(Raw, committed_tcb) == layout::COMMITTED_TCB);
    assert!(offset_of!(Raw, current_version) == layout::CURRENT_VERSION);
    assert!(offset_of!(Raw, committed_version) == layout::COMMITTED_VERSION);
    assert!(offset_of!(Raw, launch_tcb) == layout::LAUNCH_TCB);
    assert!(offset_of!(Raw, launch_mit_vector) == layout::LAUNCH_MIT_VECTOR);
    assert!(offset_of!(Raw, current_mit_vector) == layout::CURRENT_MIT_VECTOR);
    assert!(offset_of!(Raw, signature_r) == layout::SIGNATURE);
    assert!(offset_of!(Raw, signature_s) == layout::SIGNATURE_S);
};

/// Why bytes are not an attestation report this module reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// Not exactly [`REPORT_SIZE`] bytes.
    #[error(
        "{size} bytes, not the {REPORT_SIZE} bytes of an SEV-SNP attestation report{}",
        if *size > REPORT_SIZE { " (trailing bytes are not accepted)" } else { "" }
    )]
    Size {
        /// The number of bytes.
        size: usize,
    },
    /// A version other than 2 to 5.
    #[error(
        "attestation report version {0}, but only versions {MIN_VERSION} to {MAX_VERSION} are \
         read"
    )]
    Version(u32),
    /// A VMPL other than 0 to 3.
    #[error("VMPL {0}: not a privilege level (0 to 3)")]
    Vmpl(u32),
}

/// A TCB_VERSION: the security version numbers of the platform's firmware components.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcbVersion {
    /// The 8 bytes as a little-endian u64.
    pub raw: u64,
    /// FMC (Turin and later; `None` before).
    pub fmc: Option<u8>,
    /// The PSP boot loader's SVN.
    pub bootloader: u8,
    /// The PSP OS's (TEE) SVN.
    pub tee: u8,
    /// The SNP firmware's SVN.
    pub snp: u8,
    /// The lowest microcode patch level of all cores.
    pub microcode: u8,
}

impl TcbVersion {
    /// Decodes the 8 bytes in the layout of Turin (`turin`) or of Milan and Genoa.
    pub fn decode(bytes: [u8; 8], turin: bool) -> Self {
        let [b0, b1, b2, b3, _, _, b6, b7] = bytes;
        let raw = u64::from_le_bytes(bytes);
        if turin {
            Self {
                raw,
                fmc: Some(b0),
                bootloader: b1,
                tee: b2,
                snp: b3,
                microcode: b7,
            }
        } else {
            Self {
                raw,
                fmc: None,
                bootloader: b0,
                tee: b1,
                snp: b6,
                microcode: b7,
            }
        }
    }
}

/// The guest policy (POLICY), as the VMM gave it at launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestPolicy(pub u64);

impl GuestPolicy {
    /// Bit 16: the host may use SMT.
    pub const SMT: u64 = 1 << 16;
    /// Bit 17: reserved, must be one.
    pub const RESERVED_ONE: u64 = 1 << 17;
    /// Bit 18: a migration agent may be associated.
    pub const MIGRATE_MA: u64 = 1 << 18;
    /// Bit 19: the host may debug the guest (read and write its memory).
    pub const DEBUG: u64 = 1 << 19;
    /// Bit 20: the guest may run on one socket only.
    pub const SINGLE_SOCKET: u64 = 1 << 20;

    /// Bits 7:0, the lowest ABI minor version the guest runs on.
    pub fn abi_minor(self) -> u8 {
        (self.0 & 0xFF) as u8
    }

    /// Bits 15:8, the lowest ABI major version the guest runs on.
    pub fn abi_major(self) -> u8 {
        ((self.0 >> 8) & 0xFF) as u8
    }

    /// Bit 16.
    pub fn smt_allowed(self) -> bool {
        self.0 & Self::SMT != 0
    }

    /// Bit 18.
    pub fn migrate_ma_allowed(self) -> bool {
        self.0 & Self::MIGRATE_MA != 0
    }

    /// Bit 19.
    pub fn debug_allowed(self) -> bool {
        self.0 & Self::DEBUG != 0
    }

    /// Bit 20.
    pub fn single_socket_required(self) -> bool {
        self.0 & Self::SINGLE_SOCKET != 0
    }
}

/// PLATFORM_INFO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlatformInfo(pub u64);

impl PlatformInfo {
    /// Bit 0: SMT is enabled on the host.
    pub fn smt_enabled(self) -> bool {
        self.0 & 1 != 0
    }

    /// Bit 1: TSME is enabled on the host.
    pub fn tsme_enabled(self) -> bool {
        self.0 & 2 != 0
    }
}

/// Which key signed the report (SIGNING_KEY, key flags bits 4:2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningKey {
    /// 0: the VCEK (chip-unique).
    Vcek,
    /// 1: the VLEK (loaded by the cloud provider).
    Vlek,
    /// 7: none (the report is not signed).
    None,
    /// Another, reserved value.
    Reserved(u8),
}

impl SigningKey {
    /// The name used in reports: `vcek`, `vlek`, `none` or `reserved`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Vcek => "vcek",
            Self::Vlek => "vlek",
            Self::None => "none",
            Self::Reserved(_) => "reserved",
        }
    }
}

/// A firmware version: build, minor, major.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirmwareVersion {
    /// Major.
    pub major: u8,
    /// Minor.
    pub minor: u8,
    /// Build.
    pub build: u8,
}

impl FirmwareVersion {
    fn decode(bytes: [u8; 4]) -> Self {
        let [build, minor, major, _] = bytes;
        Self {
            major,
            minor,
            build,
        }
    }
}

/// An attestation report whose length and version were checked and whose fields are decoded
/// (its signature was not verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationReport {
    /// VERSION (2 to 5).
    pub version: u32,
    /// GUEST_SVN.
    pub guest_svn: u32,
    /// POLICY.
    pub policy: GuestPolicy,
    /// FAMILY_ID.
    pub family_id: [u8; 16],
    /// IMAGE_ID.
    pub image_id: [u8; 16],
    /// VMPL (0 to 3).
    pub vmpl: u32,
    /// SIGNATURE_ALGO (1: ECDSA P-384 with SHA-384).
    pub signature_algo: u32,
    /// CURRENT_TCB.
    pub current_tcb: TcbVersion,
    /// PLATFORM_INFO.
    pub platform_info: PlatformInfo,
    /// AUTHOR_KEY_EN: AUTHOR_KEY_DIGEST is meaningful.
    pub author_key_en: bool,
    /// MASK_CHIP_KEY: the guest asked for CHIP_ID to be masked.
    pub mask_chip_key: bool,
    /// SIGNING_KEY.
    pub signing_key: SigningKey,
    /// REPORT_DATA: what the guest asked the report for.
    pub report_data: [u8; REPORT_DATA_SIZE],
    /// MEASUREMENT: the launch digest.
    pub measurement: Measurement,
    /// HOST_DATA.
    pub host_data: [u8; 32],
    /// ID_KEY_DIGEST.
    pub id_key_digest: [u8; 48],
    /// AUTHOR_KEY_DIGEST.
    pub author_key_digest: [u8; 48],
    /// REPORT_ID.
    pub report_id: [u8; 32],
    /// REPORT_ID_MA.
    pub report_id_ma: [u8; 32],
    /// REPORTED_TCB.
    pub reported_tcb: TcbVersion,
    /// CPUID family, model and stepping (version 3 and later).
    pub cpuid: Option<[u8; 3]>,
    /// CHIP_ID.
    pub chip_id: [u8; 64],
    /// COMMITTED_TCB.
    pub committed_tcb: TcbVersion,
    /// CURRENT_MAJOR/MINOR/BUILD.
    pub current_version: FirmwareVersion,
    /// COMMITTED_MAJOR/MINOR/BUILD.
    pub committed_version: FirmwareVersion,
    /// LAUNCH_TCB.
    pub launch_tcb: TcbVersion,
    /// LAUNCH_MIT_VECTOR (version 5).
    pub launch_mit_vector: Option<u64>,
    /// CURRENT_MIT_VECTOR (version 5).
    pub current_mit_vector: Option<u64>,
    /// The signature's R, little-endian (not verified).
    pub signature_r: [u8; SIGNATURE_COMPONENT_SIZE],
    /// The signature's S, little-endian (not verified).
    pub signature_s: [u8; SIGNATURE_COMPONENT_SIZE],
}

impl AttestationReport {
    /// Whether the TCB_VERSION fields have Turin's layout (CPUID family 0x1A).
    pub fn turin_tcb_layout(&self) -> bool {
        matches!(self.cpuid, Some([TURIN_FAMILY, _, _]))
    }
}

/// Reads an attestation report: exactly [`REPORT_SIZE`] bytes, version 2 to 5, VMPL 0 to 3.
/// The signature is not verified. Never panics.
pub fn parse(bytes: &[u8]) -> Result<AttestationReport, ReportError> {
    if bytes.len() != REPORT_SIZE {
        return Err(ReportError::Size { size: bytes.len() });
    }
    let raw = Raw::ref_from_bytes(bytes).map_err(|_| ReportError::Size { size: bytes.len() })?;
    let version = raw.version.get();
    if !(MIN_VERSION..=MAX_VERSION).contains(&version) {
        return Err(ReportError::Version(version));
    }
    let vmpl = raw.vmpl.get();
    if vmpl > 3 {
        return Err(ReportError::Vmpl(vmpl));
    }
    let cpuid = (version >= 3).then_some(raw.cpuid);
    let turin = matches!(cpuid, Some([TURIN_FAMILY, _, _]));
    let tcb = |bytes: [u8; 8]| TcbVersion::decode(bytes, turin);
    let key_info = raw.key_info.get();
    let signing_key = match (key_info >> 2) & 7 {
        0 => SigningKey::Vcek,
        1 => SigningKey::Vlek,
        7 => SigningKey::None,
        // Masked to three bits.
        other => SigningKey::Reserved(other as u8),
    };
    let v5 = version >= 5;
    Ok(AttestationReport {
        version,
        guest_svn: raw.guest_svn.get(),
        policy: GuestPolicy(raw.policy.get()),
        family_id: raw.family_id,
        image_id: raw.image_id,
        vmpl,
        signature_algo: raw.signature_algo.get(),
        current_tcb: tcb(raw.current_tcb),
        platform_info: PlatformInfo(raw.platform_info.get()),
        author_key_en: key_info & 1 != 0,
        mask_chip_key: key_info & 2 != 0,
        signing_key,
        report_data: raw.report_data,
        measurement: raw.measurement,
        host_data: raw.host_data,
        id_key_digest: raw.id_key_digest,
        author_key_digest: raw.author_key_digest,
        report_id: raw.report_id,
        report_id_ma: raw.report_id_ma,
        reported_tcb: tcb(raw.reported_tcb),
        cpuid,
        chip_id: raw.chip_id,
        committed_tcb: tcb(raw.committed_tcb),
        current_version: FirmwareVersion::decode(raw.current_version),
        committed_version: FirmwareVersion::decode(raw.committed_version),
        launch_tcb: tcb(raw.launch_tcb),
        launch_mit_vector: v5.then(|| raw.launch_mit_vector.get()),
        current_mit_vector: v5.then(|| raw.current_mit_vector.get()),
        signature_r: raw.signature_r,
        signature_s: raw.signature_s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real report (virtee/sev tests/certs_data/report_milan.hex; provenance in
    /// testdata/README.md): version 2, from a Milan chip, signed by the VCEK next to it upstream.
    const MILAN_HEX: &str = include_str!("../../../../testdata/sev-snp/virtee-report_milan.hex");

    fn milan() -> Vec<u8> {
        let text = MILAN_HEX.trim();
        let mut out = Vec::with_capacity(text.len() / 2);
        let digit = |c: u8| (c as char).to_digit(16).expect("hex digit") as u8;
        for pair in text.as_bytes().chunks(2) {
            out.push(digit(pair[0]) << 4 | digit(pair[1]));
        }
        out
    }

    fn from_hex<const N: usize>(text: &str) -> [u8; N] {
        let mut out = [0; N];
        assert_eq!(text.len(), 2 * N, "{text}");
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).expect("hex");
        }
        out
    }

    #[test]
    fn the_real_milan_report_decodes_as_read_by_hand() {
        let bytes = milan();
        assert_eq!(bytes.len(), REPORT_SIZE);
        let r = parse(&bytes).unwrap();
        // Bytes 0..4: 02 00 00 00; 8..16: 00 00 03 00 ...: policy 0x30000 (SMT allowed, the
        // reserved bit 17, ABI 0.0), QEMU's default.
        assert_eq!(r.version, 2);
        assert_eq!(r.guest_svn, 0);
        assert_eq!(r.policy, GuestPolicy(0x30000));
        assert!(r.policy.smt_allowed());
        assert!(!r.policy.debug_allowed() && !r.policy.migrate_ma_allowed());
        assert!(!r.policy.single_socket_required());
        assert_eq!((r.policy.abi_major(), r.policy.abi_minor()), (0, 0));
        assert_eq!((r.family_id, r.image_id), ([0; 16], [0; 16]));
        assert_eq!(r.vmpl, 0);
        assert_eq!(r.signature_algo, SIGNATURE_ALGO_ECDSA_P384_SHA384);
        // 0x38: 03 00 00 00 00 00 08 73: boot loader 3, TEE 0, SNP 8, microcode 0x73.
        let milan_tcb = TcbVersion {
            raw: 0x7308_0000_0000_0003,
            fmc: None,
            bootloader: 3,
            tee: 0,
            snp: 8,
            microcode: 0x73,
        };
        assert_eq!(r.current_tcb, milan_tcb);
        assert_eq!(r.platform_info, PlatformInfo(1));
        assert!(r.platform_info.smt_enabled() && !r.platform_info.tsme_enabled());
        assert!(!r.author_key_en && !r.mask_chip_key);
        assert_eq!(r.signing_key, SigningKey::Vcek);
        assert_eq!(
            r.report_data,
            from_hex::<64>(
                "d447b55d197491bfe15cf298f9de9986b7a7c4be2468b4f6e2d53b71d7c645810b0f2cdfca0040\
                 433be063fc1a8293f0f3f8dae7b79fecb3d1cd82bd6a93ebfd"
            )
        );
        assert_eq!(
            r.measurement,
            from_hex::<48>(
                "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd\
                 95b9c480cd81841f"
            )
        );
        assert_eq!(r.host_data, [0; 32]);
        assert_eq!((r.id_key_digest, r.author_key_digest), ([0; 48], [0; 48]));
        assert_eq!(
            r.report_id,
            from_hex::<32>("92b3b47d59f0a2a10a74c5678868a80238cf593c01a82f3cffb878e904c28d5b")
        );
        // No migration agent: all ones.
        assert_eq!(r.report_id_ma, [0xFF; 32]);
        assert_eq!(r.reported_tcb, milan_tcb);
        assert_eq!(r.cpuid, None, "version 2 has no CPUID fields");
        assert!(!r.turin_tcb_layout());
        assert_eq!(
            r.chip_id,
            from_hex::<64>(
                "d49554ec717f4e5b0fe6b143bcf0405bd7ae304727edf46603f2a76aef6a3abc15d7af38db7570\
                 39029f0efacfd08e244324884738c72b082e2f87a44d541eb6"
            )
        );
        assert_eq!(r.committed_tcb, milan_tcb);
        assert_eq!(r.launch_tcb, milan_tcb);
        // 0x1E8: 04 34 01 00: build 4, minor 0x34, major 1 (firmware 1.52, build 4).
        let fw = FirmwareVersion {
            major: 1,
            minor: 52,
            build: 4,
        };
        assert_eq!((r.current_version, r.committed_version), (fw, fw));
        assert_eq!((r.launch_mit_vector, r.current_mit_vector), (None, None));
        assert_eq!(
            r.signature_r[..48],
            from_hex::<48>(
                "61ab4f11aa661997625f233df42a4ad54440eeb7a96ea63de170cbc29c37c005cb54054881ec7d2b\
                 ee569b02d07f8272"
            )
        );
        assert_eq!(r.signature_r[48..], [0; 24]);
        assert_eq!(
            r.signature_s[..48],
            from_hex::<48>(
                "209d7eb9be919a1d0baf1d57fe6ebfeabbc53b778c6e977e40b15ca931bb6d44c5ab9e30cfdc7346\
                 cb41ac083b90bf49"
            )
        );
        // The fields sit at the documented offsets of the raw bytes.
        assert_eq!(bytes[layout::MEASUREMENT..][..48], r.measurement);
        assert_eq!(bytes[layout::REPORT_DATA..][..64], r.report_data);
        assert_eq!(bytes[layout::CHIP_ID..][..64], r.chip_id);
    }

    #[test]
    fn sizes_versions_and_vmpls_are_checked() {
        let bytes = milan();
        for size in [0, 1, SIGNED_SIZE, REPORT_SIZE - 1] {
            assert_eq!(parse(&bytes[..size]), Err(ReportError::Size { size }));
        }
        let mut long = bytes.clone();
        long.push(0);
        let err = parse(&long).unwrap_err();
        assert_eq!(err, ReportError::Size { size: 1185 });
        assert!(err.to_string().contains("trailing bytes"), "{err}");
        for version in [0, 1, 6, u32::MAX] {
            let mut v = bytes.clone();
            v[..4].copy_from_slice(&version.to_le_bytes());
            assert_eq!(parse(&v), Err(ReportError::Version(version)));
        }
        let mut vmpl = bytes.clone();
        vmpl[layout::VMPL] = 4;
        assert_eq!(parse(&vmpl), Err(ReportError::Vmpl(4)));
        vmpl[layout::VMPL] = 3;
        assert_eq!(parse(&vmpl).unwrap().vmpl, 3);
    }

    #[test]
    fn later_versions_read_the_cpuid_and_turin_layouts() {
        let mut bytes = milan();
        // Version 3 on Genoa (family 0x19, model 0x11): the Milan/Genoa TCB layout.
        bytes[..4].copy_from_slice(&3u32.to_le_bytes());
        bytes[layout::CPUID_FAM_ID..][..3].copy_from_slice(&[0x19, 0x11, 0x01]);
        let r = parse(&bytes).unwrap();
        assert_eq!(r.cpuid, Some([0x19, 0x11, 0x01]));
        assert_eq!(r.reported_tcb.snp, 8);
        assert_eq!(r.launch_mit_vector, None);
        // Version 5 on Turin: FMC, boot loader, TEE, SNP in bytes 0-3; the mitigation vectors.
        bytes[..4].copy_from_slice(&5u32.to_le_bytes());
        bytes[layout::CPUID_FAM_ID] = TURIN_FAMILY;
        bytes[layout::REPORTED_TCB..][..8].copy_from_slice(&[1, 2, 3, 4, 0, 0, 0, 0x55]);
        bytes[layout::LAUNCH_MIT_VECTOR..][..8].copy_from_slice(&7u64.to_le_bytes());
        bytes[layout::CURRENT_MIT_VECTOR..][..8].copy_from_slice(&9u64.to_le_bytes());
        let r = parse(&bytes).unwrap();
        assert!(r.turin_tcb_layout());
        let t = r.reported_tcb;
        assert_eq!(
            (t.fmc, t.bootloader, t.tee, t.snp, t.microcode),
            (Some(1), 2, 3, 4, 0x55)
        );
        assert_eq!(
            (r.launch_mit_vector, r.current_mit_vector),
            (Some(7), Some(9))
        );
        // Version 4 has version 3's layout: no mitigation vectors.
        bytes[..4].copy_from_slice(&4u32.to_le_bytes());
        assert_eq!(parse(&bytes).unwrap().launch_mit_vector, None);
    }

    #[test]
    fn key_flags_decode() {
        let mut bytes = milan();
        for (flags, key, author, mask) in [
            (0b00001u32, SigningKey::Vcek, true, false),
            (0b00110, SigningKey::Vlek, false, true),
            (0b11100, SigningKey::None, false, false),
            (0b01000, SigningKey::Reserved(2), false, false),
        ] {
            bytes[layout::KEY_INFO..][..4].copy_from_slice(&flags.to_le_bytes());
            let r = parse(&bytes).unwrap();
            assert_eq!(
                (r.signing_key, r.author_key_en, r.mask_chip_key),
                (key, author, mask)
            );
        }
    }

    #[test]
    fn any_bytes_parse_or_fail_without_panic() {
        // A deterministic sweep (the crates' proptests cover random inputs): every length around
        // the report size, and every byte of the header set to extremes.
        let bytes = milan();
        for len in 0..=REPORT_SIZE + 8 {
            let mut b = bytes.clone();
            b.resize(len, 0xFF);
            let _ = parse(&b);
        }
        for at in 0..0x60 {
            for value in [0, 1, 2, 3, 4, 5, 0x1A, 0x7F, 0xFF] {
                let mut b = bytes.clone();
                b[at] = value;
                let _ = parse(&b);
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn random_reports_parse_or_fail_without_panic(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), REPORT_SIZE),
            version in 0u32..8,
        ) {
            let mut b = body;
            b[..4].copy_from_slice(&version.to_le_bytes());
            if let Ok(r) = parse(&b) {
                proptest::prop_assert!((MIN_VERSION..=MAX_VERSION).contains(&r.version));
                proptest::prop_assert_eq!(&b[layout::MEASUREMENT..][..48], &r.measurement[..]);
            }
        }
    }
}
