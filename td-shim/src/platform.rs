//! The `Platform` trait: what differs between TDX, SEV-SNP and a plain VM, behind one interface
//! the boot pipeline is written against (docs/platforms.md), and the one place the platform of
//! this boot is chosen and remembered ([`select`], [`current`]).

use crate::eventlog::{ExtendError, Rtmrs};
use crate::exception::{ExceptionFrame, Handled};
use crate::fw_cfg::{FwCfg, FwCfgDma};
use crate::memory_map::MemoryMap;
use crate::port_io::PortIo;
use crate::BootError;
use td_layout::handoff::PlatformKind;

/// One platform the firmware runs on.
pub trait Platform: Sync {
    /// Which platform this is.
    fn kind(&self) -> PlatformKind;

    /// The CC type the CCEL ACPI table gives for this platform's event log: 0 none (a plain VM,
    /// registers emulated), 1 SEV, 2 TDX (UEFI 2.10 CC measurement protocol).
    fn cc_type(&self) -> u8 {
        match self.kind() {
            PlatformKind::Plain => 0,
            PlatformKind::SevSnp => 1,
            PlatformKind::Tdx => 2,
        }
    }

    /// Port I/O on this platform (the UART, fw_cfg and PCI configuration go through it).
    fn io(&self) -> &(dyn PortIo + Sync);

    /// Runs once at entry, after the IDT is installed and before the first port I/O: what the
    /// platform needs before devices can be touched (TDX: TDG.VP.INFO; SNP: the GHCB). Nothing
    /// on a plain VM.
    fn early_init(&self) -> Result<(), BootError> {
        Ok(())
    }

    /// Whether exception `vector` belongs to the platform (#VE = 20 under TDX, #VC = 29 under
    /// SEV-ES/SNP) rather than being a fatal CPU exception.
    fn owns_vector(&self, vector: u8) -> bool {
        let _ = vector;
        false
    }

    /// Handles an exception of a vector the platform owns, e.g. by emulating the instruction
    /// that raised it. [`Handled::Resume`] returns to the interrupted code with the registers of
    /// `frame`; [`Handled::Fatal`] takes the fatal path with the reason.
    fn handle_exception(&self, frame: &mut ExceptionFrame) -> Handled {
        let _ = frame;
        Handled::Fatal("the platform owns no exception vectors")
    }

    /// The DMA channel fw_cfg may use, if memory can be reached by the device on this platform
    /// (directly on a plain VM, through a shared bounce buffer under TDX and SNP).
    fn fw_cfg_dma(&self) -> Option<&dyn FwCfgDma>;

    /// The guest memory map as the VMM describes it (fw_cfg `etc/e820` on a plain VM and SNP,
    /// the TD HOB on TDX), validated as untrusted input.
    fn memory_map(&self, fw_cfg: Option<&FwCfg<'_>>) -> Result<MemoryMap, BootError>;

    /// Regions of the VMM's RAM the firmware keeps for itself beyond the common ones (TDX: the
    /// TD HOB): reserved in the memory map, never accepted again or handed out.
    fn reserved_regions(&self) -> &'static [td_layout::layout::Region] {
        &[]
    }

    /// The address bit that makes a mapping private, set in every leaf of the firmware's page
    /// tables: the C-bit under SEV-SNP. 0 elsewhere (TDX marks shared pages instead).
    fn private_mask(&self) -> u64 {
        0
    }

    /// Whether [`Platform::accept_memory`] reaches RAM through its virtual address (SNP:
    /// PVALIDATE), so only RAM the live page tables map may be given: the pipeline then accepts
    /// RAM above 4 GiB only once its own page tables (which map all RAM) are live.
    fn accept_needs_mapping(&self) -> bool {
        false
    }

    /// Makes `[base, base + len)` of private RAM usable (TDG.MEM.PAGE.ACCEPT under TDX,
    /// PVALIDATE under SNP). RAM in a plain VM needs nothing.
    fn accept_memory(&self, base: u64, len: u64) -> Result<(), BootError>;

    /// How many vCPUs the VMM starts (a launch parameter the measurement records).
    fn vcpu_count(&self, fw_cfg: Option<&FwCfg<'_>>) -> Result<u32, BootError>;

    /// Extends runtime measurement register `rtmr` (0..=3) with `digest`: TDG.MR.RTMR.EXTEND
    /// under TDX, the emulated registers on a plain VM. On error the register is unchanged.
    fn extend_rtmr(&self, rtmr: usize, digest: &[u8; 48]) -> Result<(), ExtendError>;

    /// The registers to publish to the OS when they are emulated (a plain VM); `None` where the
    /// hardware holds them and reports them itself (TDX quote, SNP report).
    fn emulated_rtmrs(&self) -> Option<Rtmrs>;

    /// The TD HOB list the firmware consumed (through its end-of-list HOB), which the plan
    /// measures into RTMR0 (TDX). `None` where the VMM gives none (plain VM, SNP), and before
    /// [`Platform::memory_map`] has accepted it.
    fn td_hob(&self) -> Option<&[u8]> {
        None
    }

    /// Whether the VMM's ACPI files (fw_cfg `etc/table-loader` and the files it loads) are
    /// measured into RTMR0 before the OS can run their AML: where the hardware's launch
    /// measurement does not cover them and the registers are real (TDX).
    fn measures_acpi(&self) -> bool {
        false
    }

    /// Pages that stay shared with the VMM while the firmware runs, mapped without the
    /// platform's `private_mask` in the final page tables too (SNP: the GHCB page). None
    /// elsewhere.
    fn shared_pages(&self) -> &'static [td_layout::layout::Region] {
        &[]
    }

    /// Checks the blobs of QEMU's direct boot (setup sectors, protected-mode kernel, initrd, the
    /// command line with its NUL) before they are used, where the hardware measured what they
    /// must be (SNP: the kernel-hashes table in the launch digest). Nothing to check where the
    /// firmware measures them instead (plain VM, TDX).
    fn verify_direct_boot(
        &self,
        setup: &[u8],
        kernel: &[u8],
        initrd: Option<&[u8]>,
        cmdline_with_nul: &[u8],
    ) -> Result<(), BootError> {
        let _ = (setup, kernel, initrd, cmdline_with_nul);
        Ok(())
    }

    /// The confidential-computing blob Linux finds through `setup_data` (SNP: where the secrets
    /// and CPUID pages are). None elsewhere.
    fn cc_blob(&self) -> Option<[u8; td_loader::linux::CC_BLOB_SEV_LEN]> {
        None
    }

    /// Whether the firmware starts the APs and parks them in the ACPI wakeup mailbox (plain VM,
    /// TDX). SNP: no, Linux creates its APs itself through the hypervisor.
    fn parks_aps(&self) -> bool {
        true
    }

    /// Runs once before the payload is entered, after the last fw_cfg read and before the
    /// final page tables are built: the platform takes back what the OS must not inherit (TDX:
    /// the shared bounce buffer is converted back to private and accepted again; SNP: it is
    /// mapped with the C-bit, made private and validated again).
    fn before_handoff(&self) -> Result<(), BootError> {
        Ok(())
    }

    /// The platform's report of a fatal error, after `message` (what failed, possibly
    /// truncated) has been printed: never returns. On a plain VM: QEMU's `isa-debug-exit` if
    /// present, then halt; under TDX: TDVMCALL<ReportFatalError> carrying the message.
    fn fatal_report(&self, message: &str) -> !;
}

static CURRENT: spin::Once<&'static dyn Platform> = spin::Once::new();

/// Chooses the platform of this boot, once. Returns the chosen one: `platform` on the first
/// call, the earlier choice on any later call (the choice never changes).
pub fn select(platform: &'static dyn Platform) -> &'static dyn Platform {
    *CURRENT.call_once(|| platform)
}

/// The platform chosen by [`select`], or `None` before it.
pub fn current() -> Option<&'static dyn Platform> {
    CURRENT.get().copied()
}
