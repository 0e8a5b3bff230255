//! AMD SEV-SNP behind the [`Platform`] trait: host-buildable glue over [`SevCpu`], tested
//! against the model of the hypervisor and the SNP hardware. The firmware instantiates it with
//! the instruction layer (`super::instr::SevInstr`) once the reset code has found SNP
//! ([`crate::sev_entry::SnpEntry`]).
//!
//! | `Platform` method | SEV-SNP |
//! |---|---|
//! | `kind` / `cc_type` | `SevSnp` / 1 |
//! | `early_init` | MSR protocol: version 2 negotiated, SNP required of the hypervisor; the CPUID page parsed and its C-bit checked against the reset code's and the hypervisor's; SEV_STATUS features checked ([`super::detect`]); the GHCB page rescinded, made shared (MSR-protocol page state change), mapped without the C-bit, registered; then, if a bounce buffer was given and the CPUID page says `SME_COHERENT`, the buffer made shared ([`SnpBounce::setup`]: rescind, GHCB page state change, mapping without the C-bit) |
//! | `io` | the platform itself: IOIO events through the GHCB; a failure goes to the fatal path |
//! | `owns_vector` / `handle_exception` | #VC (29) / [`super::vc::handle`], CPUID from the CPUID page |
//! | `fw_cfg_dma` | [`SnpBounce`] (the common [`crate::bounce::DmaChannel`], device address = GPA without the C-bit) from `early_init` until `before_handoff`; `None` before, after, without a buffer or without `SME_COHERENT`: fw_cfg then reads the data port with REP INSB through the GHCB's shared buffer (2032 bytes per exit; the DMA buffer moves 256 KiB − 64 bytes per two exits) |
//! | `memory_map` | fw_cfg `etc/e820` (untrusted, validated as on a plain VM) |
//! | `accept_memory` | page state change to private through the GHCB, then PVALIDATE ([`super::validate::validate_ram`]); CF = 1 is fatal; `accept_needs_mapping`: RAM above 4 GiB is validated once the firmware's page tables map it |
//! | `vcpu_count` | fw_cfg (untrusted; the launch digest covers the VMSAs, one per vCPU) |
//! | `extend_rtmr` / `emulated_rtmrs` | SNP has no runtime registers: nothing is extended and the CC event log is informational; the launch digest covers the firmware and, through the kernel-hashes table, the kernel, initrd and command line |
//! | `private_mask` | the C-bit |
//! | `reserved_regions` | the secrets page, the CPUID page, the GHCB page (shared, kept reserved: Linux sets up its own) |
//! | `shared_pages` | the GHCB page (mapped without the C-bit in the final page tables too) |
//! | `verify_direct_boot` | the kernel-hashes table against QEMU's blobs ([`super::hashes`]) |
//! | `cc_blob` | the secrets and CPUID pages, for Linux's `SETUP_CC_BLOB` |
//! | `parks_aps` | no: Linux starts the APs itself (SNP AP creation) |
//! | `before_handoff` | [`SnpPlatform::release_bounce_buffer`]: the bounce buffer mapped with the C-bit, made private (GHCB page state change) and validated again ([`SnpBounce::release`]), before the final page tables |
//! | `fatal_report` | GHCB MSR protocol termination request, then spin |

use super::bounce::{BounceError, SnpBounce};
use super::cpu::SevCpu;
use super::cpuid::CpuidTable;
use super::ghcb::{Ghcb, GhcbError, Session, Width};
use super::hashes::{self, HashesError, HashesTable};
use super::msr_protocol::{self, TermReason};
use super::validate::{self, ValidateError};
use super::vc::{self, VcEnv};
use super::{cpuid, detect};
use crate::bounce::SharedBuffer;
use crate::eventlog::{ExtendError, Rtmrs};
use crate::exception::{ExceptionFrame, Handled};
use crate::fw_cfg::{FwCfg, FwCfgDma, FwCfgError};
use crate::memory_map::{MemoryMap, E820_ENTRY_SIZE, MAX_VMM_ENTRIES};
use crate::platform::Platform;
use crate::port_io::PortIo;
use crate::sev_entry::SnpEntry;
use crate::BootError;
use core::sync::atomic::{AtomicBool, Ordering};
use td_layout::handoff::PlatformKind;
use td_layout::layout::{Region, SNP_CPUID, SNP_GHCB, SNP_SECRETS};

/// Vector of #VC.
pub const VECTOR_VC: u8 = 29;
/// fw_cfg item key of the number of boot vCPUs (u16, little-endian).
const FW_CFG_NB_CPUS: u16 = 0x05;
/// Termination reason set of the firmware's own codes (not a GHCB-defined set).
pub const TERM_SET: u8 = crate::sev_entry::TERM_REASON_SET as u8;
/// Our code: the fatal path.
pub const TERM_FATAL: u8 = 5;

/// Changes the live page tables: maps `[gpa, gpa + len)` (4 KiB aligned, inside one 2 MiB page)
/// to `gpa | phys_or` (SNP: `phys_or` = the C-bit for private, 0 for shared) and flushes the
/// TLB. The firmware implements it on its live tables.
pub trait RemapPages: Sync {
    /// Remaps the range; a short reason on failure.
    fn remap(&self, gpa: u64, len: u64, phys_or: u64) -> Result<(), &'static str>;
}

/// What `early_init` established.
struct Ready {
    cpuid: CpuidTable,
    evict: bool,
    secure_tsc: bool,
}

/// An SEV-SNP guest. `C` executes the SEV instructions; `B` is the fw_cfg bounce buffer's
/// memory.
pub struct SnpPlatform<C: SevCpu + Sync, B: SharedBuffer> {
    cpu: C,
    entry: SnpEntry,
    ghcb_gpa: u64,
    cpuid_page: &'static [u8],
    hashes_area: &'static [u8],
    pages: &'static dyn RemapPages,
    env: &'static (dyn VcEnv + Sync),
    ready: spin::Once<Ready>,
    ghcb: spin::Mutex<Ghcb>,
    pending: spin::Mutex<Option<B>>,
    bounce: spin::Once<SnpBounce<B>>,
}

/// Where the platform's pages are and what reaches them (the firmware: the layout's pages,
/// read in place).
pub struct SnpPages {
    /// The GHCB page's GPA (4 KiB aligned, private and validated at entry).
    pub ghcb_gpa: u64,
    /// The CPUID page as the PSP validated it.
    pub cpuid_page: &'static [u8],
    /// The kernel-hashes area (QEMU writes the table at its start when `kernel-hashes=on`).
    pub hashes_area: &'static [u8],
}

impl<C: SevCpu + Sync, B: SharedBuffer> SnpPlatform<C, B> {
    /// An SNP guest entered as `entry` says, its pages as `pages` says; `remap` changes the live
    /// page tables, `env` is what the #VC handler needs from the firmware.
    pub fn new(
        cpu: C,
        entry: SnpEntry,
        pages: SnpPages,
        remap: &'static dyn RemapPages,
        env: &'static (dyn VcEnv + Sync),
    ) -> Self {
        SnpPlatform {
            cpu,
            entry,
            ghcb_gpa: pages.ghcb_gpa,
            cpuid_page: pages.cpuid_page,
            hashes_area: pages.hashes_area,
            pages: remap,
            env,
            ready: spin::Once::new(),
            ghcb: spin::Mutex::new(Ghcb::new()),
            pending: spin::Mutex::new(None),
            bounce: spin::Once::new(),
        }
    }

    /// Gives the fw_cfg bounce buffer at construction: private, validated RAM mapped with the
    /// C-bit that nothing else uses (see [`super::bounce`]). It is made shared in
    /// [`Platform::early_init`] once the GHCB is registered (the page state change goes through
    /// it). Without one, fw_cfg reads the data port with REP INSB.
    pub fn with_bounce_buffer(self, buffer: B) -> Self {
        *self.pending.lock() = Some(buffer);
        self
    }

    /// Makes the buffer given at construction shared, if the CPU keeps caches coherent across
    /// C-bit changes (see [`super::bounce`]); else it is left alone and fw_cfg stays on REP
    /// INSB.
    fn setup_bounce(&self, ready: &Ready) -> Result<(), SnpError> {
        let Some(buffer) = self.pending.lock().take() else {
            return Ok(());
        };
        if !ready.cpuid.sme_coherent() {
            log::warn!(
                "snp: the CPUID page does not say SME_COHERENT: no fw_cfg DMA bounce buffer (REP INSB)"
            );
            return Ok(());
        }
        let c_bit = self.entry.c_bit_mask();
        let dma = self
            .session(|s| Ok(SnpBounce::setup(&self.cpu, s, c_bit, buffer, self.pages)))?
            .map_err(SnpError::Bounce)?;
        self.bounce.call_once(move || dma);
        Ok(())
    }

    /// Makes the bounce buffer private and validated again ([`SnpBounce::release`]). Must run
    /// before the hand-off, before the final page tables: the OS must get no shared pages.
    /// `Ok(None)` if no buffer was set up (or it was released already); a buffer still waiting
    /// for `early_init` is handed back untouched. fw_cfg DMA fails afterwards.
    pub fn release_bounce_buffer(&self) -> Result<Option<B>, SnpError> {
        if let Some(waiting) = self.pending.lock().take() {
            return Ok(Some(waiting));
        }
        let Some(dma) = self.bounce.get() else {
            return Ok(None);
        };
        if dma.shared_range().is_none() {
            return Ok(None);
        }
        let evict = self.ready.get().is_some_and(|r| r.evict);
        match self.session(|s| Ok(dma.release(&self.cpu, s, self.pages, evict)))? {
            Ok(b) => Ok(Some(b)),
            Err(BounceError::Released) => Ok(None),
            Err(e) => Err(SnpError::Bounce(e)),
        }
    }

    /// One GHCB exchange sequence. `None` before `early_init` registered the GHCB, or while
    /// another sequence holds it (a #VC taken inside one: the fatal path says so).
    fn session<R>(
        &self,
        f: impl FnOnce(&mut Session<'_, C>) -> Result<R, GhcbError>,
    ) -> Result<R, SnpError> {
        self.ready.get().ok_or(SnpError::NotReady)?;
        let mut g = self.ghcb.try_lock().ok_or(SnpError::GhcbBusy)?;
        let mut s = Session::new(&self.cpu, &mut g, self.ghcb_gpa).map_err(SnpError::Ghcb)?;
        f(&mut s).map_err(SnpError::Ghcb)
    }

    fn io_read(&self, port: u16, width: Width) -> u32 {
        match self.session(|s| s.io_read(port, width)) {
            Ok(v) => v,
            Err(e) => io_fatal(e),
        }
    }

    fn io_write(&self, port: u16, width: Width, value: u32) {
        if let Err(e) = self.session(|s| s.io_write(port, width, value)) {
            io_fatal(e)
        }
    }

    /// The termination request of the fatal path: returns only if the hypervisor resumes the
    /// guest (it should not), with what it answered.
    pub fn terminate(&self) -> msr_protocol::MsrProtocolError {
        let reason = TermReason::new(TERM_SET, TERM_FATAL).unwrap_or(TermReason::GENERAL);
        msr_protocol::terminate(&self.cpu, reason)
    }

    fn setup(&self) -> Result<Ready, SnpError> {
        let info = msr_protocol::negotiate(&self.cpu).map_err(SnpError::Msr)?;
        msr_protocol::require_snp(&self.cpu).map_err(SnpError::Msr)?;
        let status = u64::from(self.entry.sev_status);
        let detected = detect::detect(0x8000_001F, 1 << 1, || status).map_err(SnpError::Detect)?;
        if detected.mode != detect::Mode::Snp {
            return Err(SnpError::NotSnp);
        }
        let table = CpuidTable::parse(self.cpuid_page).map_err(SnpError::Cpuid)?;
        let c_bit = table.check_c_bit(info.c_bit).map_err(SnpError::Cpuid)?;
        if c_bit != self.entry.c_bit {
            return Err(SnpError::CBitChanged {
                at_reset: self.entry.c_bit,
                now: c_bit,
            });
        }
        // The GHCB page: rescinded and made shared (Linux's order), then mapped without the
        // C-bit, then registered.
        validate::make_shared_4k(&self.cpu, self.ghcb_gpa).map_err(SnpError::Validate)?;
        self.pages
            .remap(self.ghcb_gpa, 0x1000, 0)
            .map_err(SnpError::PageTables)?;
        msr_protocol::register_ghcb(&self.cpu, self.ghcb_gpa).map_err(SnpError::Msr)?;
        Ok(Ready {
            evict: table.needs_cache_eviction(),
            secure_tsc: detected.secure_tsc(),
            cpuid: table,
        })
    }
}

/// Why the SNP platform failed (logged in full; the boot error carries a fixed text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnpError {
    /// The GHCB is not registered yet.
    NotReady,
    /// The GHCB is held by another exchange (a #VC inside one).
    GhcbBusy,
    /// A GHCB exchange failed.
    Ghcb(GhcbError),
    /// An MSR-protocol exchange failed.
    Msr(msr_protocol::MsrProtocolError),
    /// SEV_STATUS was refused.
    Detect(detect::DetectError),
    /// SEV_STATUS does not say SNP.
    NotSnp,
    /// The CPUID page was refused.
    Cpuid(cpuid::CpuidError),
    /// The CPUID page's C-bit differs from the one the reset code used.
    CBitChanged {
        /// What the reset code read.
        at_reset: u8,
        /// What the page says now.
        now: u8,
    },
    /// Validating or sharing memory failed.
    Validate(ValidateError),
    /// The page tables could not be changed.
    PageTables(&'static str),
    /// The fw_cfg bounce buffer could not be made shared or private again.
    Bounce(BounceError),
}

impl core::fmt::Display for SnpError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NotReady => write!(f, "snp: the GHCB is not set up"),
            Self::GhcbBusy => write!(f, "snp: the GHCB is in use (a #VC inside a GHCB exchange)"),
            Self::Ghcb(e) => write!(f, "snp: {e}"),
            Self::Msr(e) => write!(f, "snp: {e}"),
            Self::Detect(e) => write!(f, "snp: {e}"),
            Self::NotSnp => write!(f, "snp: SEV_STATUS does not say SEV-SNP"),
            Self::Cpuid(e) => write!(f, "snp: {e}"),
            Self::CBitChanged { at_reset, now } => write!(
                f,
                "snp: the CPUID page's C-bit {now} is not the one the reset code used ({at_reset})"
            ),
            Self::Validate(e) => write!(f, "snp: {e}"),
            Self::PageTables(what) => write!(f, "snp: {what}"),
            Self::Bounce(e) => write!(f, "{e}"),
        }
    }
}

/// Port I/O failures end here (see the TDX platform's twin for why the second one reports
/// directly).
fn io_fatal(e: SnpError) -> ! {
    static FAILED: AtomicBool = AtomicBool::new(false);
    if FAILED.swap(true, Ordering::SeqCst) {
        match crate::platform::current() {
            Some(p) => p.fatal_report("port I/O through the GHCB failed"),
            None => loop {
                core::hint::spin_loop();
            },
        }
    }
    crate::fatal::fatal(format_args!("{e}"))
}

/// Logs an SNP failure in full and returns the boot error standing for it.
fn failure(detail: &dyn core::fmt::Display, stand_in: BootError) -> BootError {
    log::error!("{detail}");
    stand_in
}

impl<C: SevCpu + Sync, B: SharedBuffer> PortIo for SnpPlatform<C, B> {
    fn inb(&self, port: u16) -> u8 {
        self.io_read(port, Width::W8) as u8
    }
    fn outb(&self, port: u16, value: u8) {
        self.io_write(port, Width::W8, u32::from(value))
    }
    fn outw(&self, port: u16, value: u16) {
        self.io_write(port, Width::W16, u32::from(value))
    }
    fn outl(&self, port: u16, value: u32) {
        self.io_write(port, Width::W32, value)
    }
    fn inl(&self, port: u16) -> u32 {
        self.io_read(port, Width::W32)
    }
    /// REP INSB through the GHCB's shared buffer: 2032 bytes per exit instead of one (fw_cfg's
    /// data port, when there is no DMA bounce buffer or the device has no DMA).
    fn read_bytes(&self, port: u16, dst: &mut [u8]) {
        if let Err(e) = self.session(|s| s.io_read_string(port, dst)) {
            io_fatal(e)
        }
    }
}

impl<C: SevCpu + Sync, B: SharedBuffer> Platform for SnpPlatform<C, B> {
    fn kind(&self) -> PlatformKind {
        PlatformKind::SevSnp
    }

    fn io(&self) -> &(dyn PortIo + Sync) {
        self
    }

    fn early_init(&self) -> Result<(), BootError> {
        if self.ready.is_completed() {
            return Ok(());
        }
        let ready = self.setup().map_err(|e| {
            failure(
                &e,
                BootError::UnsupportedPlatform(
                    "SEV-SNP (the GHCB, the CPUID page or SEV_STATUS was refused)",
                ),
            )
        })?;
        let ready = self.ready.call_once(|| ready);
        self.setup_bounce(ready).map_err(|e| {
            failure(
                &e,
                BootError::RegionUnavailable(
                    "fw_cfg bounce buffer (its conversion to shared failed)",
                ),
            )
        })
    }

    fn owns_vector(&self, vector: u8) -> bool {
        vector == VECTOR_VC
    }

    fn handle_exception(&self, frame: &mut ExceptionFrame) -> Handled {
        let Some(ready) = self.ready.get() else {
            return Handled::Fatal("#VC before the GHCB was set up");
        };
        let Some(mut g) = self.ghcb.try_lock() else {
            return Handled::Fatal("#VC inside a GHCB exchange");
        };
        let Ok(mut s) = Session::new(&self.cpu, &mut g, self.ghcb_gpa) else {
            return Handled::Fatal("#VC: the GHCB session could not start");
        };
        vc::handle(&mut s, &ready.cpuid, self.env, frame)
    }

    fn fw_cfg_dma(&self) -> Option<&dyn FwCfgDma> {
        let dma = self.bounce.get()?;
        dma.shared_range()?;
        Some(dma)
    }

    fn memory_map(&self, fw_cfg: Option<&FwCfg<'_>>) -> Result<MemoryMap, BootError> {
        let fw_cfg = fw_cfg.ok_or(FwCfgError::NotPresent)?;
        let e820 = fw_cfg.read_file("etc/e820", (MAX_VMM_ENTRIES * E820_ENTRY_SIZE) as u32)?;
        Ok(MemoryMap::from_e820_bytes(&e820)?)
    }

    /// PVALIDATE takes a virtual address: `[base, base + len)` must be identity-mapped when
    /// this runs ([`Platform::accept_needs_mapping`]: the pipeline validates RAM above 4 GiB only
    /// on its own page tables).
    fn accept_memory(&self, base: u64, len: u64) -> Result<(), BootError> {
        let evict = self.ready.get().is_some_and(|r| r.evict);
        let stats = self
            .session(|s| {
                // The GHCB errors of a page state change come back inside ValidateError.
                Ok(validate::validate_ram(&self.cpu, s, base, len, &[], evict))
            })
            .map_err(|e| {
                failure(
                    &e,
                    BootError::RegionUnavailable("RAM to validate (no GHCB)"),
                )
            })?;
        stats.map(drop).map_err(|e| {
            failure(
                &e,
                BootError::RegionUnavailable(
                    "RAM to validate (page state change or PVALIDATE failed)",
                ),
            )
        })
    }

    fn accept_needs_mapping(&self) -> bool {
        true
    }

    fn vcpu_count(&self, fw_cfg: Option<&FwCfg<'_>>) -> Result<u32, BootError> {
        let fw_cfg = fw_cfg.ok_or(FwCfgError::NotPresent)?;
        Ok(u32::from(fw_cfg.read_u16(FW_CFG_NB_CPUS)?))
    }

    /// SEV-SNP has no runtime measurement registers: nothing is extended (the log is
    /// informational; see the module documentation).
    fn extend_rtmr(&self, rtmr: usize, _digest: &[u8; 48]) -> Result<(), ExtendError> {
        if rtmr > 3 {
            return Err(ExtendError::BadRegister { rtmr });
        }
        Ok(())
    }

    fn emulated_rtmrs(&self) -> Option<Rtmrs> {
        None
    }

    fn private_mask(&self) -> u64 {
        self.entry.c_bit_mask()
    }

    fn reserved_regions(&self) -> &'static [Region] {
        &[SNP_SECRETS, SNP_CPUID, SNP_GHCB]
    }

    fn shared_pages(&self) -> &'static [Region] {
        &[SNP_GHCB]
    }

    fn verify_direct_boot(
        &self,
        setup: &[u8],
        kernel: &[u8],
        initrd: Option<&[u8]>,
        cmdline_with_nul: &[u8],
    ) -> Result<(), BootError> {
        let table = HashesTable::parse(self.hashes_area).map_err(BootError::KernelHashes)?;
        let blobs = HashesTable::of_blobs(setup, kernel, initrd, cmdline_with_nul);
        hashes::verify(&table, &blobs).map_err(BootError::KernelHashes)
    }

    fn cc_blob(&self) -> Option<[u8; td_loader::linux::CC_BLOB_SEV_LEN]> {
        Some(td_loader::linux::cc_blob_sev_info(
            (SNP_SECRETS.base, SNP_SECRETS.size as u32),
            (SNP_CPUID.base, SNP_CPUID.size as u32),
        ))
    }

    fn parks_aps(&self) -> bool {
        false
    }

    /// Makes the bounce buffer private and validated again.
    fn before_handoff(&self) -> Result<(), BootError> {
        match self.release_bounce_buffer() {
            Ok(_) => Ok(()),
            Err(e) => Err(failure(
                &e,
                BootError::RegionUnavailable(
                    "fw_cfg bounce buffer (its conversion back to private failed)",
                ),
            )),
        }
    }

    fn fatal_report(&self, _message: &str) -> ! {
        let _ = self.terminate();
        loop {
            core::hint::spin_loop();
        }
    }
}

/// Whether `e` is the hashes table's absence (QEMU launched without `kernel-hashes=on`).
pub fn hashes_missing(e: &BootError) -> bool {
    matches!(e, BootError::KernelHashes(HashesError::Missing))
}

impl<C: SevCpu + Sync, B: SharedBuffer> SnpPlatform<C, B> {
    /// Whether Secure TSC is on (for the #VC environment).
    pub fn secure_tsc(&self) -> bool {
        self.ready.get().is_some_and(|r| r.secure_tsc)
    }
}

#[cfg(test)]
mod tests;
