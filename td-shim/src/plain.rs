//! The Plain platform: a VM without a TEE. Port I/O is direct, RAM needs no acceptance, and the
//! memory map comes from QEMU's fw_cfg `etc/e820`.

use crate::arch::{cpu, io};
use crate::eventlog::{extend, ExtendError, Rtmrs, RTMR_COUNT};
use crate::fw_cfg::{self, DmaStatus, FwCfg, FwCfgError};
use crate::memory_map::{MemoryMap, E820_ENTRY_SIZE, MAX_VMM_ENTRIES};
use crate::platform::{Platform, PortIo};
use crate::BootError;
use core::sync::atomic::{compiler_fence, Ordering};
use td_layout::handoff::{PlatformKind, DEBUG_EXIT_FIRMWARE_FATAL, DEBUG_EXIT_PORT};

/// A plain VM. Its four runtime measurement registers are emulated in firmware memory (SHA-384
/// extend, from zero) and published to the OS at hand-off (docs/measurement.md).
pub struct PlainPlatform {
    rtmrs: spin::Mutex<Rtmrs>,
}

impl PlainPlatform {
    /// A plain VM with all emulated registers zero.
    pub const fn new() -> Self {
        PlainPlatform {
            rtmrs: spin::Mutex::new([[0; 48]; RTMR_COUNT]),
        }
    }
}

impl Default for PlainPlatform {
    fn default() -> Self {
        Self::new()
    }
}

/// fw_cfg item key of the number of boot vCPUs (u16, little-endian).
const FW_CFG_NB_CPUS: u16 = 0x05;

impl PortIo for PlainPlatform {
    fn inb(&self, port: u16) -> u8 {
        io::inb(port)
    }
    fn outb(&self, port: u16, value: u8) {
        io::outb(port, value)
    }
    fn outw(&self, port: u16, value: u16) {
        io::outw(port, value)
    }
    fn outl(&self, port: u16, value: u32) {
        io::outl(port, value)
    }
    fn inl(&self, port: u16) -> u32 {
        io::inl(port)
    }
}

/// The `FWCfgDmaAccess` descriptor in guest memory (all fields big-endian).
#[repr(C, align(16))]
struct DmaAccess([u8; 16]);

impl PlainPlatform {
    // One DMA transfer of item `key` into `dst`. Memory is identity-mapped and not encrypted, so
    // the device reads the descriptor and writes `dst` directly.
    fn fw_cfg_dma(&self, key: u16, dst: &mut [u8]) -> Result<(), FwCfgError> {
        let len = u32::try_from(dst.len()).map_err(|_| FwCfgError::ItemTooLarge {
            key,
            size: u32::MAX,
            max: dst.len(),
        })?;
        let mut access = DmaAccess(fw_cfg::dma_descriptor(
            fw_cfg::dma_select_read(key),
            len,
            dst.as_mut_ptr() as u64,
        ));
        let at = core::ptr::addr_of_mut!(access) as u64;
        // The descriptor and buffer must be in memory before the device is told to look.
        compiler_fence(Ordering::SeqCst);
        io::outl(fw_cfg::DMA_ADDRESS_HIGH_PORT, ((at >> 32) as u32).to_be());
        io::outl(fw_cfg::DMA_ADDRESS_LOW_PORT, (at as u32).to_be());
        loop {
            // SAFETY: `access` is a live local; the device writes its control word back.
            let control = unsafe { core::ptr::read_volatile(core::ptr::addr_of!(access.0)) };
            let control = u32::from_be_bytes([control[0], control[1], control[2], control[3]]);
            match fw_cfg::dma_status(control) {
                DmaStatus::Done => break,
                DmaStatus::Failed => return Err(FwCfgError::DmaFailed { key }),
                DmaStatus::Busy => core::hint::spin_loop(),
            }
        }
        compiler_fence(Ordering::SeqCst);
        Ok(())
    }
}

impl Platform for PlainPlatform {
    fn kind(&self) -> PlatformKind {
        PlatformKind::Plain
    }

    fn memory_map(&self) -> Result<MemoryMap, BootError> {
        let fw_cfg = FwCfg::probe(self)?;
        let e820 = fw_cfg.read_file("etc/e820", (MAX_VMM_ENTRIES * E820_ENTRY_SIZE) as u32)?;
        Ok(MemoryMap::from_e820_bytes(&e820)?)
    }

    fn accept_memory(&self, _base: u64, _len: u64) -> Result<(), BootError> {
        Ok(())
    }

    fn vcpu_count(&self) -> Result<u32, BootError> {
        let mut n = [0u8; 2];
        self.fw_cfg_read_item(FW_CFG_NB_CPUS, &mut n)?;
        Ok(u32::from(u16::from_le_bytes(n)))
    }

    fn extend_rtmr(&self, rtmr: usize, digest: &[u8; 48]) -> Result<(), ExtendError> {
        let mut regs = self.rtmrs.lock();
        let reg = regs
            .get_mut(rtmr)
            .ok_or(ExtendError::BadRegister { rtmr })?;
        *reg = extend(reg, digest);
        Ok(())
    }

    fn emulated_rtmrs(&self) -> Option<Rtmrs> {
        Some(*self.rtmrs.lock())
    }

    fn fw_cfg_read_item(&self, key: u16, dst: &mut [u8]) -> Result<(), FwCfgError> {
        let fw_cfg = FwCfg::probe(self)?;
        if fw_cfg.has_dma() {
            self.fw_cfg_dma(key, dst)
        } else {
            fw_cfg.read_item(key, dst);
            Ok(())
        }
    }

    fn fatal_report(&self) -> ! {
        // Ends QEMU with status 253 when isa-debug-exit is configured; otherwise a no-op.
        io::outb(DEBUG_EXIT_PORT, DEBUG_EXIT_FIRMWARE_FATAL);
        cpu::halt_forever()
    }
}
