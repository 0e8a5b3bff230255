//! The `Platform` trait: what differs between TDX, SEV-SNP and a plain VM, behind one interface
//! the boot core is written against (DESIGN.md, "Platforms").

use crate::eventlog::{ExtendError, Rtmrs};
use crate::fw_cfg::FwCfgError;
use crate::memory_map::MemoryMap;
use crate::BootError;
use td_layout::handoff::PlatformKind;

/// Port I/O as the platform provides it: direct `in`/`out` on a plain VM, TDVMCALL under TDX,
/// GHCB under SEV-ES/SNP.
pub trait PortIo {
    /// Reads a byte from `port`.
    fn inb(&self, port: u16) -> u8;
    /// Writes a byte to `port`.
    fn outb(&self, port: u16, value: u8);
    /// Writes a 16-bit word to `port`.
    fn outw(&self, port: u16, value: u16);
    /// Writes a 32-bit word to `port`.
    fn outl(&self, port: u16, value: u32);
    /// Reads a 32-bit word from `port`.
    fn inl(&self, port: u16) -> u32;
}

/// One platform the firmware runs on.
pub trait Platform: PortIo + Sync {
    /// Which platform this is.
    fn kind(&self) -> PlatformKind;

    /// The guest memory map as the VMM describes it (fw_cfg `etc/e820` on a plain VM and SNP,
    /// the TD HOB on TDX), validated as untrusted input.
    fn memory_map(&self) -> Result<MemoryMap, BootError>;

    /// Makes `[base, base + len)` of private RAM usable (TDG.MEM.PAGE.ACCEPT under TDX,
    /// PVALIDATE under SNP). RAM in a plain VM needs nothing.
    fn accept_memory(&self, base: u64, len: u64) -> Result<(), BootError>;

    /// Reads the first `dst.len()` bytes of QEMU fw_cfg item `key` into `dst`, by DMA where the
    /// device offers it (under SEV through a shared bounce buffer). Platforms without fw_cfg
    /// (TDX) return [`FwCfgError::NotPresent`].
    fn fw_cfg_read_item(&self, key: u16, dst: &mut [u8]) -> Result<(), FwCfgError>;

    /// How many vCPUs the VMM starts (a launch parameter the measurement records).
    fn vcpu_count(&self) -> Result<u32, BootError>;

    /// Extends runtime measurement register `rtmr` (0..=3) with `digest`: TDG.MR.RTMR.EXTEND
    /// under TDX, the emulated registers on a plain VM. On error the register is unchanged.
    fn extend_rtmr(&self, rtmr: usize, digest: &[u8; 48]) -> Result<(), ExtendError>;

    /// The registers to publish to the OS when they are emulated (a plain VM); `None` where the
    /// hardware holds them and reports them itself (TDX quote, SNP report).
    fn emulated_rtmrs(&self) -> Option<Rtmrs>;

    /// The platform's report of a fatal error, after the message has been printed: never
    /// returns. On a plain VM: QEMU's `isa-debug-exit` if present, then halt.
    fn fatal_report(&self) -> !;
}
