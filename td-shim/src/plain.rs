//! The Plain platform: a VM without a TEE. Port I/O is direct, RAM needs no acceptance, and the
//! memory map comes from QEMU's fw_cfg `etc/e820`.

use crate::arch::{cpu, io};
use crate::fw_cfg::FwCfg;
use crate::memory_map::{MemoryMap, E820_ENTRY_SIZE, MAX_VMM_ENTRIES};
use crate::platform::{Platform, PortIo};
use crate::BootError;
use td_layout::handoff::{PlatformKind, DEBUG_EXIT_FIRMWARE_FATAL, DEBUG_EXIT_PORT};

/// A plain VM.
pub struct PlainPlatform;

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

    fn fatal_report(&self) -> ! {
        // Ends QEMU with status 253 when isa-debug-exit is configured; otherwise a no-op.
        io::outb(DEBUG_EXIT_PORT, DEBUG_EXIT_FIRMWARE_FATAL);
        cpu::halt_forever()
    }
}
