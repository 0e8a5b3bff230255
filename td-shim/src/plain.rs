//! The Plain platform: a VM without a TEE. Port I/O is direct, RAM needs no acceptance, fw_cfg
//! DMA writes guest memory directly, and the memory map comes from QEMU's fw_cfg `etc/e820`.

use crate::arch::{cpu, io};
use crate::eventlog::{extend, ExtendError, Rtmrs, RTMR_COUNT};
use crate::fw_cfg::{self, FwCfg, FwCfgDma, FwCfgError};
use crate::memory_map::{MemoryMap, E820_ENTRY_SIZE, MAX_VMM_ENTRIES};
use crate::platform::Platform;
use crate::port_io::PortIo;
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

/// Direct port I/O.
struct DirectIo;

impl PortIo for DirectIo {
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

/// fw_cfg DMA straight into the destination: memory is identity-mapped and not encrypted, so
/// the device reads the descriptor and writes `dst` directly, in one transfer per 4 GiB.
struct DirectDma;

impl FwCfgDma for DirectDma {
    fn read(&self, io: &dyn PortIo, key: u16, dst: &mut [u8]) -> Result<(), FwCfgError> {
        fw_cfg::dma_chunks(key, dst, u32::MAX as usize, |control, part| {
            let mut access = DmaAccess(fw_cfg::dma_descriptor(
                control,
                part.len() as u32,
                part.as_mut_ptr() as u64,
            ));
            let at = core::ptr::addr_of_mut!(access) as u64;
            // The descriptor and buffer must be in memory before the device is told to look.
            compiler_fence(Ordering::SeqCst);
            io.outl(fw_cfg::DMA_ADDRESS_HIGH_PORT, ((at >> 32) as u32).to_be());
            io.outl(fw_cfg::DMA_ADDRESS_LOW_PORT, (at as u32).to_be());
            let result = fw_cfg::wait_for_dma(key, || {
                // SAFETY: `access` is a live, aligned local; the device writes its control word back.
                let control = unsafe { core::ptr::read_volatile(core::ptr::addr_of!(access.0)) };
                u32::from_be_bytes([control[0], control[1], control[2], control[3]])
            });
            compiler_fence(Ordering::SeqCst);
            result
        })
    }
}

static DIRECT_IO: DirectIo = DirectIo;
static DIRECT_DMA: DirectDma = DirectDma;

impl Platform for PlainPlatform {
    fn kind(&self) -> PlatformKind {
        PlatformKind::Plain
    }

    fn io(&self) -> &(dyn PortIo + Sync) {
        &DIRECT_IO
    }

    fn fw_cfg_dma(&self) -> Option<&dyn FwCfgDma> {
        Some(&DIRECT_DMA)
    }

    fn memory_map(&self, fw_cfg: Option<&FwCfg<'_>>) -> Result<MemoryMap, BootError> {
        let fw_cfg = fw_cfg.ok_or(FwCfgError::NotPresent)?;
        let e820 = fw_cfg.read_file("etc/e820", (MAX_VMM_ENTRIES * E820_ENTRY_SIZE) as u32)?;
        Ok(MemoryMap::from_e820_bytes(&e820)?)
    }

    fn accept_memory(&self, _base: u64, _len: u64) -> Result<(), BootError> {
        Ok(())
    }

    fn vcpu_count(&self, fw_cfg: Option<&FwCfg<'_>>) -> Result<u32, BootError> {
        let fw_cfg = fw_cfg.ok_or(FwCfgError::NotPresent)?;
        Ok(u32::from(fw_cfg.read_u16(FW_CFG_NB_CPUS)?))
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

    fn fatal_report(&self, _message: &str) -> ! {
        // Ends QEMU with status 253 when isa-debug-exit is configured; otherwise a no-op.
        io::outb(DEBUG_EXIT_PORT, DEBUG_EXIT_FIRMWARE_FATAL);
        cpu::halt_forever()
    }
}
