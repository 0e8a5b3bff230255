//! Port I/O as a platform provides it: direct `in`/`out` on a plain VM, TDVMCALL under TDX, the
//! GHCB under SEV-ES/SNP. Every device driver of the boot core (UART, fw_cfg, PCI configuration)
//! is written against this trait, so it runs unchanged on every platform and in host tests.

/// Port I/O through the platform.
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
    /// Reads `dst.len()` bytes from `port`, one after the other (what `rep insb` does). The
    /// default reads byte by byte; a platform where each access is an exit to the VMM (the GHCB
    /// under SEV-SNP) can move many bytes per exit.
    fn read_bytes(&self, port: u16, dst: &mut [u8]) {
        for b in dst {
            *b = self.inb(port);
        }
    }
}
