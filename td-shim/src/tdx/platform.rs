//! Intel TDX behind the [`Platform`] trait: host-buildable logic over [`Tdcall`], so everything
//! here is tested against the model of the TDX module and the VMM. The firmware instantiates it
//! with the TDCALL instruction (`super::instr::TdcallInstr`).
//!
//! | `Platform` method | TDX |
//! |---|---|
//! | `kind` / `cc_type` | `Tdx` / 2 |
//! | `early_init` | TDG.VP.INFO once (GPA width, vCPU count kept in a `spin::Once`); then, if a bounce buffer was given, its conversion to shared |
//! | `io` | [`TdxPortIo`]: TDVMCALL<Instruction.IO>; a failing call goes to the fatal path |
//! | `owns_vector` / `handle_exception` | #VE (20) / [`super::ve::handle`] |
//! | `fw_cfg_dma` | [`BounceDma`] once a bounce buffer is set up; `None` without one: fw_cfg then reads byte by byte through TDVMCALL<IO> (correct, but one TDVMCALL per byte: slow for a kernel) |
//! | `memory_map` | the TD HOB given at construction ([`hob::parse`]), ranges checked below the shared bit; fw_cfg is not consulted |
//! | `accept_memory` | [`accept_range`], skipping the bounce buffer while it is shared; accepting accepted pages is a counted warning, so the HOB's system-memory ranges need no special case |
//! | `vcpu_count` | TDG.VP.INFO NUM_VCPUS (from the TDX module, trusted; fw_cfg is not consulted) |
//! | `extend_rtmr` | TDG.MR.RTMR.EXTEND of RTMR `rtmr` (0..=3; CC MR index 1..=4 in the event log) |
//! | `emulated_rtmrs` | `None` (the TDX module holds them; the quote reports them) |
//! | `td_hob` / `measures_acpi` | the HOB list once `memory_map` accepted it / `true`: both go into RTMR0 |
//! | `before_handoff` | [`Self::release_bounce_buffer`] |
//! | `fatal_report` | TDVMCALL<ReportFatalError>, then TDVMCALL<HLT> forever (never returns; the `hlt` instruction is not used: it would raise a #VE) |
//!
//! # Errors
//!
//! [`BootError`] has no TDX variant yet, so a TDX failure is logged in full (`log::error!`,
//! visible once the console is attached) and returned as the nearest existing variant with a
//! fixed text; a `BootError::Tdx` variant would carry it instead.

use crate::eventlog::{ExtendError, Rtmrs};
use crate::exception::{ExceptionFrame, Handled, VECTOR_VE};
use crate::fw_cfg::{FwCfg, FwCfgDma};
use crate::memory_map::MemoryMap;
use crate::platform::Platform;
use crate::port_io::PortIo;
use crate::tdx::accept::accept_range;
use crate::tdx::bounce::{
    BounceDma, BounceError, DeviceAddressing, SharedBuffer, SharedPageTables,
};
use crate::tdx::calls::{
    self, status, Digest48Aligned, GpaWidth, Tdcall, TdxError, TdxPortIo, VpInfo,
};
use crate::tdx::hob::{self, HobError};
use crate::tdx::ve;
use crate::BootError;
use core::sync::atomic::{AtomicBool, Ordering};
use td_layout::handoff::PlatformKind;
use td_layout::layout::{Region, TD_HOB};

/// The ReportFatalError code (R12 bits 31:16): 0, as Linux sends.
pub const FATAL_ERROR_CODE: u16 = 0;
/// The ReportFatalError message (at most 16 bytes are carried).
pub const FATAL_MESSAGE: &[u8] = b"td-shim FATAL";

/// A TD. `T` executes TDCALL; `B` is the fw_cfg bounce buffer's memory.
pub struct TdxPlatform<T: Tdcall + Sync, B: SharedBuffer> {
    tdcall: T,
    io: TdxPortIo<T>,
    info: spin::Once<VpInfo>,
    hob: &'static [u8],
    hob_len: spin::Once<usize>,
    pages: &'static (dyn SharedPageTables + Sync),
    addressing: DeviceAddressing,
    pending: spin::Mutex<Option<B>>,
    setup_lock: spin::Mutex<()>,
    bounce: spin::Once<BounceDma<B>>,
}

/// Port I/O failures end here: the fatal path. If port I/O fails again while the fatal path
/// prints (the console uses the same port I/O), the platform's report is made directly, so a
/// persistently failing VMM cannot recurse the fatal path forever.
fn io_fatal(e: TdxError) -> ! {
    static FAILED: AtomicBool = AtomicBool::new(false);
    if FAILED.swap(true, Ordering::SeqCst) {
        match crate::platform::current() {
            Some(p) => p.fatal_report("port I/O through TDVMCALL failed"),
            None => loop {
                core::hint::spin_loop();
            },
        }
    }
    crate::fatal::fatal(format_args!("{e}"))
}

/// The status a TDX error carries, for [`ExtendError::Refused`].
fn status_of(e: &TdxError) -> u64 {
    match *e {
        TdxError::Tdcall { status, .. }
        | TdxError::Busy { status, .. }
        | TdxError::VmcallTdcall { status, .. }
        | TdxError::Vmcall { status, .. }
        | TdxError::FatalReportReturned { status } => status,
        _ => status::INSTR_REFUSED,
    }
}

/// Logs a TDX failure in full and returns the boot error standing for it.
fn failure(detail: &dyn core::fmt::Display, stand_in: BootError) -> BootError {
    log::error!("{detail}");
    stand_in
}

impl<T: Tdcall + Sync + Clone, B: SharedBuffer> TdxPlatform<T, B> {
    /// A TD whose TDCALLs go through `tdcall`. `hob` is the TD HOB as the VMM wrote it (the
    /// TD_HOB region of the layout, whose base is the list's GPA); `pages` changes the live page
    /// tables for the bounce buffer ([`SharedPageTables`]). No bounce buffer: fw_cfg uses port
    /// I/O until [`Self::set_bounce_buffer`].
    pub fn new(
        tdcall: T,
        hob: &'static [u8],
        pages: &'static (dyn SharedPageTables + Sync),
    ) -> Self {
        TdxPlatform {
            io: TdxPortIo::new(tdcall.clone(), io_fatal),
            tdcall,
            info: spin::Once::new(),
            hob,
            hob_len: spin::Once::new(),
            pages,
            addressing: DeviceAddressing::default(),
            pending: spin::Mutex::new(None),
            setup_lock: spin::Mutex::new(()),
            bounce: spin::Once::new(),
        }
    }
}

impl<T: Tdcall + Sync, B: SharedBuffer> TdxPlatform<T, B> {
    /// Gives the fw_cfg bounce buffer at construction: it is converted to shared in
    /// [`Platform::early_init`], right after TDG.VP.INFO (the shared bit depends on it).
    pub fn with_bounce_buffer(self, buffer: B) -> Self {
        *self.pending.lock() = Some(buffer);
        self
    }

    /// Chooses the address the device is given ([`DeviceAddressing`]; default: the GPA).
    pub fn with_device_addressing(mut self, addressing: DeviceAddressing) -> Self {
        self.addressing = addressing;
        self
    }

    /// Gives the fw_cfg bounce buffer later. Before `early_init` it waits for it; after, it is
    /// converted now. Refused if a buffer is already set up. On error the buffer's pages may be
    /// half converted: treat it as fatal.
    pub fn set_bounce_buffer(&self, buffer: B) -> Result<(), BounceError> {
        match self.info.get() {
            None => {
                *self.pending.lock() = Some(buffer);
                Ok(())
            }
            Some(info) => self.setup_bounce(info.gpa_width, buffer),
        }
    }

    fn setup_bounce(&self, width: GpaWidth, buffer: B) -> Result<(), BounceError> {
        // One setup at a time, so a second buffer is refused before it is converted.
        let _one = self.setup_lock.lock();
        if self.bounce.is_completed() {
            return Err(BounceError::Buffer {
                what: "a bounce buffer is already set up",
                gpa: buffer.gpa(),
                len: u64::try_from(buffer.size()).unwrap_or(u64::MAX),
            });
        }
        let dma = BounceDma::setup(&self.tdcall, width, buffer, self.addressing, self.pages)?;
        self.bounce.call_once(move || dma);
        Ok(())
    }

    /// Converts the bounce buffer back to private and accepts it again (MapGPA, accept, page
    /// tables; [`BounceDma::release`]). Must run before hand-off: the OS must get no shared
    /// pages. `Ok(None)` if no buffer was set up; a buffer still waiting for `early_init` is
    /// handed back untouched. fw_cfg DMA fails afterwards.
    pub fn release_bounce_buffer(&self) -> Result<Option<B>, BounceError> {
        if let Some(waiting) = self.pending.lock().take() {
            return Ok(Some(waiting));
        }
        match self.bounce.get() {
            None => Ok(None),
            Some(dma) => match dma.release(&self.tdcall, self.pages) {
                Ok(b) => Ok(Some(b)),
                Err(BounceError::Released) => Ok(None),
                Err(e) => Err(e),
            },
        }
    }

    /// What TDG.VP.INFO reported, once `early_init` has run.
    pub fn vp_info(&self) -> Option<VpInfo> {
        self.info.get().copied()
    }

    fn require_info(&self) -> Result<VpInfo, BootError> {
        self.info
            .get()
            .copied()
            .ok_or(BootError::UnsupportedPlatform(
                "TDX (TDG.VP.INFO has not run: early_init must come first)",
            ))
    }

    /// Extends RTMR `rtmr` with a digest already in a 64-byte aligned private buffer.
    pub fn extend_rtmr_staged(
        &self,
        rtmr: usize,
        digest: &Digest48Aligned,
    ) -> Result<(), ExtendError> {
        if rtmr > 3 {
            return Err(ExtendError::BadRegister { rtmr });
        }
        calls::rtmr_extend(&self.tdcall, rtmr, digest).map_err(|e| {
            log::error!("{e}");
            match e {
                TdxError::InvalidArgument { .. } => ExtendError::BadRegister { rtmr },
                other => ExtendError::Refused {
                    status: status_of(&other),
                },
            }
        })
    }

    /// The ReportFatalError half of [`Platform::fatal_report`], which returns what the call
    /// reported when the VMM resumes the TD (it should not). The first 16 bytes of `message`
    /// (or [`FATAL_MESSAGE`] if it is empty) go in R14/R15, which QEMU prints. While the
    /// bounce buffer is shared, the whole message, NUL-terminated, is written at its start and
    /// its shared GPA (with the shared bit) is given in R13 (GHCI: R12 bit 63 = R13 valid).
    pub fn report_fatal(&self, message: &str) -> TdxError {
        let gpa = self
            .bounce
            .get()
            .and_then(|dma| dma.post_message(message.as_bytes()));
        let text = if message.is_empty() {
            FATAL_MESSAGE
        } else {
            message.as_bytes()
        };
        calls::report_fatal_error(&self.tdcall, FATAL_ERROR_CODE, text, gpa)
    }
}

impl<T: Tdcall + Sync, B: SharedBuffer> Platform for TdxPlatform<T, B> {
    fn kind(&self) -> PlatformKind {
        PlatformKind::Tdx
    }

    fn io(&self) -> &(dyn PortIo + Sync) {
        &self.io
    }

    /// TDG.VP.INFO (first TDCALL of the boot; a second `early_init` makes no call), then the
    /// bounce buffer given at construction, if any, is converted to shared.
    fn early_init(&self) -> Result<(), BootError> {
        let info = match self.info.get() {
            Some(info) => *info,
            None => {
                let info = calls::vp_info(&self.tdcall).map_err(|e| {
                    failure(
                        &e,
                        BootError::UnsupportedPlatform(
                            "TDX (TDG.VP.INFO failed or reports an unsupported GPA width)",
                        ),
                    )
                })?;
                *self.info.call_once(|| info)
            }
        };
        let waiting = self.pending.lock().take();
        if let Some(buffer) = waiting {
            self.setup_bounce(info.gpa_width, buffer).map_err(|e| {
                failure(
                    &e,
                    BootError::RegionUnavailable(
                        "fw_cfg bounce buffer (its conversion to shared failed)",
                    ),
                )
            })?;
        }
        Ok(())
    }

    fn owns_vector(&self, vector: u8) -> bool {
        vector == VECTOR_VE
    }

    fn handle_exception(&self, frame: &mut ExceptionFrame) -> Handled {
        ve::handle(&self.tdcall, frame, self.info.get().map(|i| i.gpa_width))
    }

    fn fw_cfg_dma(&self) -> Option<&dyn FwCfgDma> {
        let dma = self.bounce.get()?;
        dma.shared_range()?;
        Some(dma)
    }

    fn memory_map(&self, _fw_cfg: Option<&FwCfg<'_>>) -> Result<MemoryMap, BootError> {
        let info = self.require_info()?;
        let refused = |e: HobError| match e {
            HobError::MemoryMap(m) => BootError::MemoryMap(m),
            other => failure(
                &other,
                BootError::RegionUnavailable("TD_HOB (the VMM's HOB list was refused)"),
            ),
        };
        let td_hob = hob::parse(self.hob).map_err(refused)?;
        let shared_bit = info.gpa_width.shared_bit();
        if let Some(r) = td_hob.ranges().iter().find(|r| r.end() > shared_bit) {
            log::error!(
                "tdx: TD HOB range [{:#x}, {:#x}) reaches the shared bit {shared_bit:#x}",
                r.base,
                r.end()
            );
            return Err(BootError::RegionUnavailable(
                "TD_HOB (a range reaches the shared bit)",
            ));
        }
        let map = td_hob.memory_map().map_err(refused)?;
        self.hob_len.call_once(|| td_hob.list_len());
        Ok(map)
    }

    /// The TD HOB stays the firmware's (it is measured, and read through `td_hob`).
    fn reserved_regions(&self) -> &'static [Region] {
        &[TD_HOB]
    }

    fn td_hob(&self) -> Option<&[u8]> {
        self.hob.get(..*self.hob_len.get()?)
    }

    fn measures_acpi(&self) -> bool {
        true
    }

    /// Converts the bounce buffer back to private memory and accepts it again.
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

    fn accept_memory(&self, base: u64, len: u64) -> Result<(), BootError> {
        let end = base.checked_add(len).ok_or(BootError::RegionUnavailable(
            "RAM to accept (the range wraps)",
        ))?;
        // The bounce buffer is shared while it is in use: accepting it would be wrong.
        let hole = self
            .bounce
            .get()
            .and_then(BounceDma::shared_range)
            .and_then(|(b, l)| Some((b, b.checked_add(l)?)))
            .filter(|&(hb, he)| hb < end && base < he);
        let pieces = match hole {
            None => [(base, end), (end, end)],
            Some((hb, he)) => [(base, hb.max(base)), (he.min(end), end)],
        };
        for (from, to) in pieces {
            if to > from {
                accept_range(&self.tdcall, from, to.saturating_sub(from)).map_err(|e| {
                    failure(
                        &e,
                        BootError::RegionUnavailable("RAM to accept (TDG.MEM.PAGE.ACCEPT failed)"),
                    )
                })?;
            }
        }
        Ok(())
    }

    fn vcpu_count(&self, _fw_cfg: Option<&FwCfg<'_>>) -> Result<u32, BootError> {
        Ok(self.require_info()?.num_vcpus)
    }

    fn extend_rtmr(&self, rtmr: usize, digest: &[u8; 48]) -> Result<(), ExtendError> {
        // The module reads the digest from a 64-byte aligned private buffer: this stack copy
        // (the stack is private and identity-mapped, so its address is its GPA).
        let staged = Digest48Aligned(*digest);
        self.extend_rtmr_staged(rtmr, &staged)
    }

    fn emulated_rtmrs(&self) -> Option<Rtmrs> {
        None
    }

    /// Never returns: ReportFatalError, then TDVMCALL<HLT> (interrupts blocked) in a loop, in
    /// case the VMM resumes the TD anyway.
    fn fatal_report(&self, message: &str) -> ! {
        let _ = self.report_fatal(message);
        loop {
            let _ = ve::tdvmcall_halt(&self.tdcall);
            core::hint::spin_loop();
        }
    }
}

#[cfg(test)]
mod tests;
