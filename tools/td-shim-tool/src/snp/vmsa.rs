//! The initial VMSA (the vCPU save area, `struct sev_es_save_area`, AMD APM vol. 2 table B-4)
//! of each vCPU, as the VMM sets it up: its SHA-384 goes into the launch digest
//! (docs/sev-measurement.md §3).
//!
//! Every vCPU starts in real mode at the reset vector: the BSP at EIP 0xFFFFFFF0, the APs at
//! the firmware's SEV-ES reset block EIP. The values that depend on the VMM are in
//! [`VmmType`]; the vCPU's CPUID signature goes into RDX (QEMU only).

use sha2::{Digest, Sha384};

use super::digest::PAGE_SIZE;

/// The BSP's reset EIP.
pub const BSP_EIP: u32 = 0xFFFF_FFF0;

/// The VMM that launches the guest: it decides a few initial register values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VmmType {
    /// QEMU/KVM (KVM_SEV_INIT2: MXCSR and FCW set, RDX = the vCPU signature).
    #[default]
    Qemu,
    /// AWS EC2 (its own segment attributes, RDX 0x600).
    Ec2,
    /// Google Compute Engine (RDX 0x600, G_PAT 0x70106).
    Gce,
}

impl VmmType {
    /// The name used by the CLI and in reports.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Qemu => "qemu",
            Self::Ec2 => "ec2",
            Self::Gce => "gce",
        }
    }
}

/// The vCPU types QEMU names (`-cpu`) and their CPUID signature (leaf 1 EAX).
pub const VCPU_TYPES: &[(&str, u32)] = &[
    ("EPYC", vcpu_sig(23, 1, 2)),
    ("EPYC-v1", vcpu_sig(23, 1, 2)),
    ("EPYC-v2", vcpu_sig(23, 1, 2)),
    ("EPYC-IBPB", vcpu_sig(23, 1, 2)),
    ("EPYC-v3", vcpu_sig(23, 1, 2)),
    ("EPYC-v4", vcpu_sig(23, 1, 2)),
    ("EPYC-Rome", vcpu_sig(23, 49, 0)),
    ("EPYC-Rome-v1", vcpu_sig(23, 49, 0)),
    ("EPYC-Rome-v2", vcpu_sig(23, 49, 0)),
    ("EPYC-Rome-v3", vcpu_sig(23, 49, 0)),
    ("EPYC-Milan", vcpu_sig(25, 1, 1)),
    ("EPYC-Milan-v1", vcpu_sig(25, 1, 1)),
    ("EPYC-Milan-v2", vcpu_sig(25, 1, 1)),
    ("EPYC-Genoa", vcpu_sig(25, 17, 0)),
    ("EPYC-Genoa-v1", vcpu_sig(25, 17, 0)),
    ("EPYC-Turin", vcpu_sig(26, 0, 0)),
];

/// The CPUID leaf 1 EAX of a vCPU with this family, model and stepping (the x86 encoding:
/// families above 0xF go into the extended family field, the model's high nibble into the
/// extended model field).
pub const fn vcpu_sig(family: u32, model: u32, stepping: u32) -> u32 {
    let (family_low, ext_family) = if family > 0xF {
        (0xF, family - 0xF)
    } else {
        (family, 0)
    };
    ((ext_family & 0xFF) << 20)
        | (((model >> 4) & 0xF) << 16)
        | ((family_low & 0xF) << 8)
        | ((model & 0xF) << 4)
        | (stepping & 0xF)
}

/// The signature of a vCPU type named as QEMU does (case-sensitive, e.g. `EPYC-v4`).
pub fn vcpu_type_sig(name: &str) -> Option<u32> {
    VCPU_TYPES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|&(_, sig)| sig)
}

/// A segment register as the VMSA stores it (16 bytes).
#[derive(Clone, Copy)]
struct Segment {
    selector: u16,
    attrib: u16,
    limit: u32,
    base: u64,
}

impl Segment {
    const fn new(selector: u16, attrib: u16, limit: u32, base: u64) -> Self {
        Self {
            selector,
            attrib,
            limit,
            base,
        }
    }
}

/// A VMSA page under construction.
struct Page(Box<[u8; PAGE_SIZE]>);

impl Page {
    fn put(&mut self, at: usize, bytes: &[u8]) {
        // Every offset below is a constant well inside the page.
        if let Some(dst) = self.0.get_mut(at..at + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
    }
    fn u16(&mut self, at: usize, v: u16) {
        self.put(at, &v.to_le_bytes());
    }
    fn u32(&mut self, at: usize, v: u32) {
        self.put(at, &v.to_le_bytes());
    }
    fn u64(&mut self, at: usize, v: u64) {
        self.put(at, &v.to_le_bytes());
    }
    fn segment(&mut self, at: usize, s: Segment) {
        self.u16(at, s.selector);
        self.u16(at + 2, s.attrib);
        self.u32(at + 4, s.limit);
        self.u64(at + 8, s.base);
    }
}

/// The initial VMSA of a vCPU that starts at `eip` (a [`BSP_EIP`] BSP or an AP at the reset
/// block's EIP), launched by `vmm`, with CPUID signature `vcpu_sig` and SEV_FEATURES
/// `sev_features` (the SNP "guest features"; 0 for SEV-ES).
pub fn vmsa_page(
    eip: u32,
    is_bsp: bool,
    vmm: VmmType,
    vcpu_sig: u32,
    sev_features: u64,
) -> Box<[u8; PAGE_SIZE]> {
    let (cs_attr, ss_attr, tr_attr, rdx, mxcsr, fcw, g_pat) = match vmm {
        VmmType::Qemu => (
            0x9B,
            0x93,
            0x8B,
            u64::from(vcpu_sig),
            0x1F80,
            0x37F,
            0x0007_0406_0007_0406,
        ),
        VmmType::Ec2 => (
            if is_bsp { 0x9A } else { 0x9B },
            0x92,
            0x83,
            0x600,
            0,
            0,
            0x0007_0406_0007_0406,
        ),
        VmmType::Gce => (0x9B, 0x93, 0x8B, 0x600, 0, 0, 0x0007_0106),
    };
    let data = Segment::new(0, 0x93, 0xFFFF, 0);
    let mut p = Page(Box::new([0; PAGE_SIZE]));
    p.segment(0x000, data); // es
    p.segment(
        0x010,
        Segment::new(0xF000, cs_attr, 0xFFFF, u64::from(eip & 0xFFFF_0000)),
    ); // cs
    p.segment(0x020, Segment::new(0, ss_attr, 0xFFFF, 0)); // ss
    p.segment(0x030, data); // ds
    p.segment(0x040, data); // fs
    p.segment(0x050, data); // gs
    p.segment(0x060, Segment::new(0, 0, 0xFFFF, 0)); // gdtr
    p.segment(0x070, Segment::new(0, 0x82, 0xFFFF, 0)); // ldtr
    p.segment(0x080, Segment::new(0, 0, 0xFFFF, 0)); // idtr
    p.segment(0x090, Segment::new(0, tr_attr, 0xFFFF, 0)); // tr
    p.u64(0x0D0, 0x1000); // efer: SVME
    p.u64(0x148, 0x40); // cr4: MCE
    p.u64(0x158, 0x10); // cr0: ET
    p.u64(0x160, 0x400); // dr7
    p.u64(0x168, 0xFFFF_0FF0); // dr6
    p.u64(0x170, 0x2); // rflags
    p.u64(0x178, u64::from(eip & 0xFFFF)); // rip
    p.u64(0x268, g_pat); // g_pat
    p.u64(0x310, rdx); // rdx
    p.u64(0x3B0, sev_features); // sev_features
    p.u64(0x3E8, 0x1); // xcr0
    p.u32(0x408, mxcsr); // mxcsr
    p.u16(0x410, fcw); // x87_fcw
    p.0
}

/// SHA-384 of [`vmsa_page`].
pub fn vmsa_hash(
    eip: u32,
    is_bsp: bool,
    vmm: VmmType,
    vcpu_sig: u32,
    sev_features: u64,
) -> [u8; 48] {
    Sha384::digest(&vmsa_page(eip, is_bsp, vmm, vcpu_sig, sev_features)[..]).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The built-in signatures research §1.7 lists.
    #[test]
    fn signatures() {
        assert_eq!(vcpu_type_sig("EPYC-v4"), Some(0x800F12));
        assert_eq!(vcpu_type_sig("EPYC-Rome"), Some(0x830F10));
        assert_eq!(vcpu_type_sig("EPYC-Milan"), Some(0xA00F11));
        assert_eq!(vcpu_type_sig("EPYC-Genoa"), Some(0xA10F10));
        assert_eq!(vcpu_type_sig("EPYC-Turin"), Some(0xB00F00));
        assert_eq!(vcpu_type_sig("epyc-v4"), None);
    }

    /// The intermediate VMSA hashes of research §1.10 (AmdSev, QEMU, EPYC-v4, features 0x1).
    #[test]
    fn qemu_vmsa_hashes() {
        let sig = 0x800F12;
        assert_eq!(
            hex::encode(vmsa_hash(BSP_EIP, true, VmmType::Qemu, sig, 1)),
            "77920c4c629ff47e90c0e174fc1ad0eb6fa664f88cd4739488058a8c6cb1a77b\
             3856f55378e9518d0da99452d51c553a"
        );
        assert_eq!(
            hex::encode(vmsa_hash(0x80B004, false, VmmType::Qemu, sig, 1)),
            "8413b852790765a310d95867a8b00bfca3a802b5a80830044b45e253fe962226\
             57e11e53fcf63eb0e0afd722385bf7b4"
        );
        let bsp21 = hex::encode(vmsa_hash(BSP_EIP, true, VmmType::Qemu, sig, 0x21));
        assert!(bsp21.starts_with("ae79efa6") && bsp21.ends_with("833d6e"));
        let ap21 = hex::encode(vmsa_hash(0x80B004, false, VmmType::Qemu, sig, 0x21));
        assert!(ap21.starts_with("180ef267") && ap21.ends_with("5d8355"));
    }
}
