//! The options of `td-shim-tool measure --platform snp`, named as sev-snp-measure names them
//! (except `--cmdline` for its `--append`, `--ovmf-hash` for `--snp-ovmf-hash`).

use std::path::Path;

use super::{kernel_hashes_from_files, vcpu_type_sig, LaunchParams, Mode, VmmType, VCPU_TYPES};

/// `--mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModeArg {
    /// SEV-SNP launch digest (SHA-384, 96 hex characters).
    Snp,
    /// SEV-SNP, the firmware pages only (the value for --ovmf-hash).
    #[value(name = "snp:ovmf-hash")]
    SnpOvmfHash,
    /// SEV-ES launch digest (SHA-256; before LAUNCH_MEASURE's HMAC).
    Seves,
    /// SEV launch digest (SHA-256; before LAUNCH_MEASURE's HMAC).
    Sev,
}

/// `--vmm-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum VmmTypeArg {
    /// QEMU/KVM.
    #[value(alias = "QEMU")]
    Qemu,
    /// AWS EC2.
    Ec2,
    /// Google Compute Engine.
    Gce,
}

/// The SEV options of `measure` (all need `--platform snp`).
#[derive(Debug, Clone, clap::Args)]
pub struct SnpArgs {
    /// With --platform snp: which digest (default snp).
    #[arg(long, value_enum, value_name = "MODE")]
    pub mode: Option<ModeArg>,
    /// With --platform snp: the vCPU type, as QEMU's -cpu names it (case-sensitive): EPYC,
    /// EPYC-v1..v4, EPYC-IBPB, EPYC-Rome(-v1..v3), EPYC-Milan(-v1, -v2), EPYC-Genoa(-v1),
    /// EPYC-Turin. Required by modes snp and seves, or --vcpu-sig.
    #[arg(long, value_name = "TYPE", conflicts_with = "vcpu_sig")]
    pub vcpu_type: Option<String>,
    /// With --platform snp: the vCPU signature (CPUID leaf 1 EAX), 0x-hex or decimal, instead
    /// of --vcpu-type.
    #[arg(long, value_name = "SIG", value_parser = parse_u32)]
    pub vcpu_sig: Option<u32>,
    /// With --platform snp: the VMM (default qemu).
    #[arg(long, value_enum, value_name = "VMM")]
    pub vmm_type: Option<VmmTypeArg>,
    /// With --platform snp: SEV_FEATURES of the VMSAs, 0x-hex or decimal (default 0x1; 0x21
    /// for hosts with DebugSwap, Linux 6.6-6.7).
    #[arg(long, value_name = "VALUE", value_parser = parse_u64)]
    pub guest_features: Option<u64>,
    /// With --platform snp --mode snp: the firmware's digest from --mode snp:ovmf-hash (96 hex
    /// characters), used instead of measuring the --image's pages.
    #[arg(long, value_name = "HEX", value_parser = parse_ovmf_hash)]
    pub ovmf_hash: Option<[u8; 48]>,
}

/// A number, 0x-hex or decimal (the CLI's value parser).
pub fn parse_u64(s: &str) -> Result<u64, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    r.map_err(|e| format!("{s:?} is not a number (0x-hex or decimal): {e}"))
}

fn parse_u32(s: &str) -> Result<u32, String> {
    let v = parse_u64(s)?;
    u32::try_from(v).map_err(|_| format!("{s} does not fit in 32 bits"))
}

fn parse_ovmf_hash(s: &str) -> Result<[u8; 48], String> {
    let mut out = [0u8; 48];
    hex::decode_to_slice(s, &mut out)
        .map_err(|e| format!("expected 96 hex characters (a SHA-384): {e}"))?;
    Ok(out)
}

impl SnpArgs {
    /// Whether any of these options was given (they need `--platform snp`).
    pub fn any(&self) -> bool {
        self.mode.is_some()
            || self.vcpu_type.is_some()
            || self.vcpu_sig.is_some()
            || self.vmm_type.is_some()
            || self.guest_features.is_some()
            || self.ovmf_hash.is_some()
    }

    /// The mode asked for.
    pub fn mode(&self) -> Mode {
        match self.mode {
            None | Some(ModeArg::Snp) => Mode::Snp,
            Some(ModeArg::SnpOvmfHash) => Mode::SnpOvmfHash,
            Some(ModeArg::Seves) => Mode::SevEs,
            Some(ModeArg::Sev) => Mode::Sev,
        }
    }

    /// The usage rules clap cannot state, given `--vcpus`: the message of the first broken.
    pub fn usage_error(&self, vcpus: Option<u32>) -> Option<String> {
        let mode = self.mode();
        let needs_vcpus = matches!(mode, Mode::Snp | Mode::SevEs);
        if needs_vcpus && vcpus.is_none() {
            return Some(format!("--mode {} needs --vcpus", mode.name()));
        }
        if needs_vcpus && self.vcpu_type.is_none() && self.vcpu_sig.is_none() {
            return Some(format!(
                "--mode {} needs --vcpu-type (or --vcpu-sig)",
                mode.name()
            ));
        }
        if let Some(name) = &self.vcpu_type {
            if vcpu_type_sig(name).is_none() {
                let known: Vec<_> = VCPU_TYPES.iter().map(|(n, _)| *n).collect();
                return Some(format!(
                    "unknown --vcpu-type {name:?}; known: {}",
                    known.join(", ")
                ));
            }
        }
        if self.ovmf_hash.is_some() && mode != Mode::Snp {
            return Some("--ovmf-hash needs --mode snp".into());
        }
        None
    }

    /// The launch parameters; the kernel and initrd are read and hashed here.
    pub fn params(
        &self,
        vcpus: Option<u32>,
        kernel: Option<&Path>,
        initrd: Option<&Path>,
        cmdline: Option<&str>,
    ) -> anyhow::Result<LaunchParams> {
        let vcpu_sig = match (&self.vcpu_type, self.vcpu_sig) {
            (_, Some(sig)) => sig,
            (Some(name), None) => vcpu_type_sig(name)
                .ok_or_else(|| anyhow::anyhow!("unknown --vcpu-type {name:?}"))?,
            (None, None) => 0,
        };
        let kernel_hashes = kernel
            .map(|k| {
                let cmdline = cmdline.unwrap_or("").as_bytes();
                kernel_hashes_from_files(k, initrd, cmdline)
            })
            .transpose()?;
        Ok(LaunchParams {
            mode: self.mode(),
            vcpus: vcpus.unwrap_or(1),
            vcpu_sig,
            vmm: match self.vmm_type {
                None | Some(VmmTypeArg::Qemu) => VmmType::Qemu,
                Some(VmmTypeArg::Ec2) => VmmType::Ec2,
                Some(VmmTypeArg::Gce) => VmmType::Gce,
            },
            guest_features: self.guest_features.unwrap_or(1),
            kernel_hashes,
            ovmf_hash: self.ovmf_hash,
        })
    }
}
