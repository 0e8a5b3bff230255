//! fw_cfg DMA under SEV-SNP, through a bounce buffer made shared with the hypervisor.
//!
//! QEMU's fw_cfg device can only reach shared memory, so [`SnpBounce`] converts a buffer the
//! firmware owns (TempMem's `FW_CFG_BOUNCE`, 256 KiB) to shared once the GHCB is registered,
//! gives it to the common transfer code ([`crate::bounce::DmaChannel`], the same as TDX's), and
//! converts it back to private before the hand-off. Without it fw_cfg is read with REP INSB
//! through the GHCB's 2032-byte shared buffer: one VMGEXIT per 2032 bytes (about 27,000 for a
//! 50 MiB initrd); with it, one DMA transfer per 256 KiB − 64 bytes, each two IOIO exits (the
//! two halves of the DMA address; the wait polls memory), about 400 exits for 50 MiB.
//!
//! # The life of the buffer, and the order of each step (decision, with sources)
//!
//! The buffer is private, validated RAM the firmware owns and has not used (TempMem is
//! pre-validated by the SEV metadata), 4 KiB aligned, whole 4 KiB pages, inside one 2 MiB page
//! (the page-table code splits that page into `BOUNCE_PAGE_TABLE`), mapped with the C-bit in the
//! reset page tables. Its contents are lost both ways.
//!
//! **[`SnpBounce::setup`]** (private → shared), the order of Linux's `set_memory_decrypted`
//! (`__set_memory_enc_pgtable`, `arch/x86/mm/pat/set_memory.c`: `enc_status_change_prepare`
//! before the page-table change; `amd_enc_status_change_prepare`,
//! `arch/x86/mm/mem_encrypt_amd.c`: "make sure to invalidate the memory before encryption
//! attribute is cleared") and of OVMF's `SetMemoryEncDec`
//! (`OvmfPkg/Library/BaseMemEncryptSevLib/X64/PeiDxeVirtualMemory.c`: "set the page to shared
//! in the RMP table before clearing the memory encryption mask from the current page table"):
//! 1. PVALIDATE(validate = 0) of each 4 KiB page, through its virtual address, which still maps
//!    it private (with the C-bit): the rescind must come first so no validated page is ever
//!    shared (Linux `__set_pages_state`, OVMF `InternalSetPageState`: rescind, then PSC).
//! 2. Page state change to SHARED through the GHCB for the whole buffer (one request of 64
//!    entries; partial processing resent as [`super::psc`] does).
//!    Steps 1 and 2 are [`super::validate::make_shared`].
//! 3. The page tables map the buffer without the C-bit ([`RemapPages::remap`] with 0) and the TLB
//!    is flushed. From then on every access goes to the shared page.
//!
//! No access to the buffer between 1 and 3: between 1 and 2 the page is private but not
//! validated (an access would raise #VC), between 2 and 3 it is shared but mapped private (an
//! access would be an RMP fault). So a **private page is never mapped without the C-bit**, and
//! the buffer is mapped without the C-bit only once it is shared.
//!
//! **[`SnpBounce::release`]**, in `before_handoff`, before the final page tables (shared →
//! private), the order of Linux's `set_memory_encrypted` (the page-table change first, then
//! `amd_enc_status_change_finish`: "After memory is mapped encrypted in the page table,
//! validate it") and of OVMF's `SetMemoryEncDec` for `SetCBit` (page table, then
//! `InternalSetPageState(SevSnpPagePrivate)`: PSC, then PVALIDATE):
//! 1. The channel is closed: later fw_cfg reads fail with `DmaFailed` without touching it.
//! 2. The page tables map the buffer with the C-bit again; the TLB is flushed.
//! 3. Page state change to PRIVATE through the GHCB, then PVALIDATE(validate = 1) of each 4 KiB
//!    page through the C-bit mapping (CF = 1 fatal: the PSC cleared the validated bit, so CF = 1
//!    means the hypervisor did not do what it acknowledged) and, on CPUs without
//!    `COHERENCY_SFW_NO`, the cache-eviction touch: [`super::validate::validate_ram`].
//!
//! Between 2 and 3 the shared page is mapped with the C-bit and nothing accesses it; PVALIDATE
//! needs that mapping (it takes a virtual address of a private mapping: the contract of
//! `super::instr::SevInstr::new`). The contents after 3 are whatever the page held (garbage or
//! zeros) and nothing reads them. The buffer is TempMem, which goes back to the OS: the OS
//! never gets it shared, since a failure of any step is fatal (a typed [`BounceError`] that
//! the platform turns into the GHCB termination request).
//!
//! # Caches
//!
//! Linux flushes the caches for the range before a C-bit change unless the CPU has
//! `SME_COHERENT` (CPUID 0x8000001F EAX bit 10; `amd_enc_cache_flush_required`); OVMF always
//! flushes it (`WriteBackInvalidateDataCacheRange`). The firmware has no cache flush, so the
//! platform sets the buffer up only where the PSP-checked CPUID page says `SME_COHERENT`
//! ([`super::cpuid::CpuidTable::sme_coherent`]); elsewhere fw_cfg stays on REP INSB.
//!
//! # The address given to the device
//!
//! The GPA, without the C-bit (the C-bit is a guest page-table bit; QEMU's DMA addresses are
//! GPAs), as OVMF gives devices (`IoMmuDxe`: the plain-text address of the bounce buffer).

use super::cpu::{SevCpu, PAGE_2M, PAGE_4K};
use super::platform::RemapPages;
use super::validate::{self, PageStateChanger, ValidateError};
use crate::bounce::{DmaChannel, SharedBuffer};
use crate::fw_cfg::{FwCfgDma, FwCfgError};
use crate::port_io::PortIo;
use core::fmt;

/// Why the bounce buffer could not be set up, used or released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BounceError {
    /// The buffer is unusable (alignment, size, not inside one 2 MiB page, or not below the
    /// C-bit).
    Buffer {
        /// What is wrong.
        what: &'static str,
        /// Its GPA.
        gpa: u64,
        /// Its size.
        len: u64,
    },
    /// Rescinding the pages or making them shared failed.
    ToShared(ValidateError),
    /// The page tables could not be changed.
    PageTables {
        /// The reason the page-table code gave.
        what: &'static str,
        /// Whether the mapping was being made shared (no C-bit).
        to_shared: bool,
    },
    /// Making the pages private or validating them again failed.
    ToPrivate(ValidateError),
    /// The buffer was released already.
    Released,
}

impl fmt::Display for BounceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Buffer { what, gpa, len } => {
                write!(f, "snp: fw_cfg bounce buffer [{gpa:#x}, +{len:#x}): {what}")
            }
            Self::ToShared(e) => write!(f, "snp: fw_cfg bounce buffer to shared: {e}"),
            Self::PageTables { what, to_shared } => write!(
                f,
                "snp: fw_cfg bounce buffer: mapping it {} failed: {what}",
                if to_shared {
                    "without the C-bit"
                } else {
                    "with the C-bit"
                }
            ),
            Self::ToPrivate(e) => write!(f, "snp: fw_cfg bounce buffer to private: {e}"),
            Self::Released => write!(f, "snp: fw_cfg bounce buffer: already released"),
        }
    }
}

/// fw_cfg DMA through a bounce buffer made shared: the common [`DmaChannel`] plus what its SNP
/// conversions need.
pub struct SnpBounce<B> {
    channel: DmaChannel<B>,
    gpa: u64,
    len: u64,
    c_bit: u64,
}

impl<B: SharedBuffer> SnpBounce<B> {
    /// Makes `buffer` shared (rescind, PSC shared through `psc`, then the mapping without the
    /// C-bit; see the module documentation) and returns the DMA channel over it. `c_bit` is the
    /// C-bit's mask (`1 << position`). The buffer must be private, validated, mapped with the
    /// C-bit, 4 KiB aligned, whole 4 KiB pages inside one 2 MiB page and below the C-bit. On
    /// error the pages may be left rescinded or shared: treat it as fatal.
    pub fn setup<C: SevCpu + ?Sized, P: PageStateChanger + ?Sized>(
        cpu: &C,
        psc: &mut P,
        c_bit: u64,
        buffer: B,
        pages: &dyn RemapPages,
    ) -> Result<Self, BounceError> {
        let gpa = buffer.gpa();
        let len = u64::try_from(buffer.size()).unwrap_or(u64::MAX);
        let bad = |what| BounceError::Buffer { what, gpa, len };
        if !gpa.is_multiple_of(PAGE_4K) || !len.is_multiple_of(PAGE_4K) || len < PAGE_4K {
            return Err(bad("not 4 KiB aligned, not whole 4 KiB pages, or empty"));
        }
        let end = gpa.checked_add(len).ok_or(bad("wraps"))?;
        if gpa / PAGE_2M != (end - 1) / PAGE_2M {
            return Err(bad("crosses a 2 MiB boundary"));
        }
        if !c_bit.is_power_of_two() || end > c_bit {
            return Err(bad("reaches the C-bit (or the C-bit mask is not one bit)"));
        }
        validate::make_shared(cpu, psc, gpa, len).map_err(BounceError::ToShared)?;
        pages
            .remap(gpa, len, 0)
            .map_err(|what| BounceError::PageTables {
                what,
                to_shared: true,
            })?;
        Ok(SnpBounce {
            channel: DmaChannel::new(buffer, gpa),
            gpa,
            len,
            c_bit,
        })
    }

    /// Makes the buffer private and validated again (close the channel, map with the C-bit,
    /// PSC private, PVALIDATE; see the module documentation) and hands it back. `evict`: touch
    /// each validated page ([`validate::validate_ram`]). Later DMA reads fail. On error the
    /// pages' state is unknown: treat it as fatal (the OS must not get shared pages).
    pub fn release<C: SevCpu + ?Sized, P: PageStateChanger + ?Sized>(
        &self,
        cpu: &C,
        psc: &mut P,
        pages: &dyn RemapPages,
        evict: bool,
    ) -> Result<B, BounceError> {
        let buffer = self.channel.close().ok_or(BounceError::Released)?;
        pages
            .remap(self.gpa, self.len, self.c_bit)
            .map_err(|what| BounceError::PageTables {
                what,
                to_shared: false,
            })?;
        validate::validate_ram(cpu, psc, self.gpa, self.len, &[], evict)
            .map_err(BounceError::ToPrivate)?;
        Ok(buffer)
    }

    /// `(GPA, length)` of the buffer while it is shared; `None` after [`Self::release`].
    pub fn shared_range(&self) -> Option<(u64, u64)> {
        self.channel.is_open().then_some((self.gpa, self.len))
    }

    /// The address the device is given for the descriptor (the GPA, no C-bit).
    pub fn device_address(&self) -> u64 {
        self.channel.device_address()
    }
}

impl<B: SharedBuffer> FwCfgDma for SnpBounce<B> {
    fn read(&self, io: &dyn PortIo, key: u16, dst: &mut [u8]) -> Result<(), FwCfgError> {
        self.channel.read(io, key, dst)
    }
}

#[cfg(test)]
pub(crate) mod tests;
