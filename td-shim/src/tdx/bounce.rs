//! fw_cfg DMA in a TD, through a bounce buffer converted to shared memory.
//!
//! The VMM's device model can only reach shared memory, so [`BounceDma`] gives the device a
//! buffer that was converted to shared with TDVMCALL<MapGPA>: the 16-byte `FWCfgDmaAccess`
//! descriptor at its start ([`DESCRIPTOR_OFFSET`]), the data area after it ([`DATA_OFFSET`]).
//! Each transfer (at most the data area, [`fw_cfg::dma_chunks`]) writes the descriptor, gives
//! the device its address, waits with [`fw_cfg::wait_for_dma`] and copies the data out to the
//! private destination. Everything in the buffer is written by the VMM and is read once.
//!
//! # The life of the buffer, and the order each step needs
//!
//! The buffer is private, accepted RAM the firmware owns (e.g. part of TempMem), 4 KiB aligned,
//! a whole number of 4 KiB pages, below the shared bit, holding nothing anyone needs: its
//! contents are lost both ways.
//!
//! **[`BounceDma::setup`]** (private → shared, research notes §5: the page tables first, then
//! MapGPA, so no private mapping ever points at a shared page, which would shut the TD down):
//! 1. [`SharedPageTables::map_shared`]: the page tables map the buffer's addresses (its virtual
//!    address is its GPA, identity map) to the **shared alias** `GPA | shared bit`
//!    ([`shared_alias`]) and the TLB entries for it are flushed. From then on every plain read
//!    and write of the buffer goes through the alias.
//! 2. TDVMCALL<MapGPA>(alias, len): the VMM maps the pages shared. Their contents are now the
//!    VMM's.
//!
//! **[`BounceDma::release`]**, before hand-off (shared → private; §5, §9.17: never hand off with
//! shared pages; Linux's order, MapGPA and accept while the mapping is still shared, because a
//! shared mapping of a private page only gives a #VE):
//! 1. TDVMCALL<MapGPA>(GPA, len) with the shared bit clear.
//! 2. TDG.MEM.PAGE.ACCEPT of every page again ([`crate::tdx::accept::accept_range`]); the module
//!    zeroes them.
//! 3. [`SharedPageTables::map_private`]: the page tables map the buffer private again and the
//!    TLB entries are flushed. No access to the buffer between 1 and 3 (it would be a #VE on a
//!    shared GPA, which the #VE handler refuses).
//!
//! After `release`, [`FwCfgDma::read`] fails with `DmaFailed` instead of touching the buffer.
//!
//! # What the page-table code must provide ([`SharedPageTables`])
//!
//! The firmware's implementation (`arch::live_tables::LiveTables`, over the host-tested
//! [`crate::paging::remap_4k`]):
//! * maps each 4 KiB page of `[gpa, gpa + len)` (virtual) to `gpa | shared_bit` (physical: bit 47
//!   or 51 set in the entry's address, which 4-level paging allows since MAXPHYADDR ≥ 48),
//!   keeping its rights, and back to `gpa`, then flushes the TLB (CR3 reload);
//! * splits the buffer's 2 MiB page into 4 KiB pages in a spare table first (`BOUNCE_PAGE_TABLE`;
//!   the buffer lies in one 2 MiB page), so no other page is ever accessed through the alias;
//! * works on the page tables live at the time, the reset tables: the buffer is released
//!   ([`crate::platform::Platform::before_handoff`]) before the firmware builds its final
//!   tables, which therefore never need the shared range, and a remap while they are live is
//!   refused.
//!
//! # What the firmware's memory access must provide ([`SharedBuffer`])
//!
//! The host build forbids `unsafe`, so the buffer's memory is reached through [`SharedBuffer`]:
//! bounds-checked byte copies in and out, and a volatile read of the 4-byte control word the
//! device writes back. [`StaticSharedBuffer`] (firmware builds only) implements it over a
//! `&'static mut [u8]` region with volatile accesses; the tests implement it over a `Vec`.
//!
//! # The address given to the device (decision)
//!
//! [`DeviceAddressing::Gpa`], the default: the descriptor and data addresses are GPAs **without**
//! the shared bit. That is what OVMF gives devices in a TD (`OvmfPkg/IoMmuDxe/CcIoMmu.c`:
//! `*DeviceAddress = MapInfo->PlainTextAddress`, the bounce buffer's address with the shared bit
//! only in the page tables), and Linux on x86 adds no shared bit to DMA addresses either. QEMU's
//! guest address space has no RAM at `GPA | 2^47`, so an alias address there would make the
//! device's descriptor read fail and the transfer time out. [`DeviceAddressing::SharedAlias`]
//! exists for a VMM shown to expect the alias; it is not confirmed for any VMM (research notes
//! §10: fw_cfg DMA in a TD was not verified at all).

use crate::fw_cfg::{self, FwCfgDma, FwCfgError};
use crate::port_io::PortIo;
use crate::tdx::accept::{self, AcceptError, PAGE_4K};
use crate::tdx::calls::{self, GpaWidth, Tdcall, TdxError};
use core::fmt;
use core::sync::atomic::{compiler_fence, Ordering};

/// Where the descriptor sits in the buffer.
pub const DESCRIPTOR_OFFSET: usize = 0;
/// Bytes of the `FWCfgDmaAccess` descriptor.
pub const DESCRIPTOR_SIZE: usize = 16;
/// Where the data area starts (a cache line after the descriptor).
pub const DATA_OFFSET: usize = 64;

/// The shared alias of private GPA `gpa`: `gpa | shared bit` (bit 47 or 51, §5). `None` if
/// `gpa` is not below the shared bit (it has no alias).
pub const fn shared_alias(gpa: u64, width: GpaWidth) -> Option<u64> {
    if gpa >= width.shared_bit() {
        None
    } else {
        Some(gpa | width.shared_bit())
    }
}

/// The buffer's memory, as the firmware reaches it (through the shared alias mapping while the
/// buffer is shared). Every method checks its bounds and does nothing out of them.
pub trait SharedBuffer: Send {
    /// The GPA of the first byte, without the shared bit (under the identity map: its address).
    fn gpa(&self) -> u64;
    /// The size in bytes.
    fn size(&self) -> usize;
    /// Copies `src` to `offset`. `false` (nothing written) if it does not fit.
    fn write(&mut self, offset: usize, src: &[u8]) -> bool;
    /// Copies the bytes at `offset` into `dst`, each read once. `false` if out of bounds.
    fn read(&self, offset: usize, dst: &mut [u8]) -> bool;
    /// A volatile read of the 4 bytes at `offset` (the device writes them behind the compiler's
    /// back). `None` if out of bounds.
    fn read_u32_volatile(&self, offset: usize) -> Option<[u8; 4]>;
}

/// The page-table changes the buffer's conversions need (see the module documentation). The
/// firmware implements it on its live page tables; each method must also flush the TLB for the
/// range. Errors are a short reason.
pub trait SharedPageTables {
    /// Maps `[gpa, gpa + len)` to `gpa | shared_bit`, writable, not executable.
    fn map_shared(&self, gpa: u64, len: u64, shared_bit: u64) -> Result<(), &'static str>;
    /// Maps `[gpa, gpa + len)` to itself (private) again.
    fn map_private(&self, gpa: u64, len: u64) -> Result<(), &'static str>;
}

/// Which address the device is given (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceAddressing {
    /// The GPA without the shared bit (OVMF's choice; the default).
    #[default]
    Gpa,
    /// The shared alias, `GPA | shared bit`.
    SharedAlias,
}

/// Why the bounce buffer could not be set up, used or released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BounceError {
    /// The buffer is unusable (alignment, size, or not below the shared bit).
    Buffer {
        /// What is wrong.
        what: &'static str,
        /// Its GPA.
        gpa: u64,
        /// Its size.
        len: u64,
    },
    /// The page tables could not be changed.
    PageTables {
        /// The reason the page-table code gave.
        what: &'static str,
        /// The buffer's GPA.
        gpa: u64,
    },
    /// MapGPA failed.
    MapGpa {
        /// The direction.
        to_shared: bool,
        /// What the call reported.
        error: TdxError,
    },
    /// Accepting the pages again after the conversion to private failed.
    Accept(AcceptError),
    /// The buffer was released already (or never set up).
    Released,
}

impl fmt::Display for BounceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Buffer { what, gpa, len } => write!(
                f,
                "tdx: fw_cfg bounce buffer [{gpa:#x}, +{len:#x}): {what}"
            ),
            Self::PageTables { what, gpa } => write!(
                f,
                "tdx: fw_cfg bounce buffer at {gpa:#x}: the page tables could not be changed: {what}"
            ),
            Self::MapGpa { to_shared, error } => write!(
                f,
                "tdx: fw_cfg bounce buffer: converting it to {} failed: {error}",
                if to_shared { "shared" } else { "private" }
            ),
            Self::Accept(e) => write!(f, "tdx: fw_cfg bounce buffer: {e}"),
            Self::Released => write!(f, "tdx: fw_cfg bounce buffer: already released"),
        }
    }
}

/// fw_cfg DMA through a shared bounce buffer. Transfers are serialised by a lock.
pub struct BounceDma<B> {
    buffer: spin::Mutex<Option<B>>,
    gpa: u64,
    len: u64,
    width: GpaWidth,
    /// The device address of the buffer's first byte.
    device_base: u64,
}

impl<B: SharedBuffer> BounceDma<B> {
    /// Converts `buffer` to shared (page tables, then MapGPA; see the module documentation) and
    /// returns the DMA channel over it. The buffer must be private, accepted, 4 KiB aligned, at
    /// least 4 KiB, a whole number of 4 KiB pages and below the shared bit of `width`. On error
    /// the buffer's pages may be left shared or half converted: treat it as fatal.
    pub fn setup<T: Tdcall + ?Sized>(
        t: &T,
        width: GpaWidth,
        buffer: B,
        addressing: DeviceAddressing,
        pages: &dyn SharedPageTables,
    ) -> Result<Self, BounceError> {
        let gpa = buffer.gpa();
        let len = u64::try_from(buffer.size()).unwrap_or(u64::MAX);
        let bad = |what| BounceError::Buffer { what, gpa, len };
        if !gpa.is_multiple_of(PAGE_4K) || !len.is_multiple_of(PAGE_4K) || len < PAGE_4K {
            return Err(bad("not 4 KiB aligned, not whole 4 KiB pages, or empty"));
        }
        let end = gpa.checked_add(len).ok_or(bad("wraps"))?;
        if end > width.shared_bit() {
            return Err(bad("reaches the shared bit"));
        }
        let alias = shared_alias(gpa, width).ok_or(bad("has no shared alias"))?;
        pages
            .map_shared(gpa, len, width.shared_bit())
            .map_err(|what| BounceError::PageTables { what, gpa })?;
        calls::map_gpa(t, width, gpa, len, true).map_err(|error| BounceError::MapGpa {
            to_shared: true,
            error,
        })?;
        let device_base = match addressing {
            DeviceAddressing::Gpa => gpa,
            DeviceAddressing::SharedAlias => alias,
        };
        Ok(BounceDma {
            buffer: spin::Mutex::new(Some(buffer)),
            gpa,
            len,
            width,
            device_base,
        })
    }

    /// Converts the buffer back to private (MapGPA, accept, then page tables; see the module
    /// documentation) and hands it back. Later DMA reads fail. On error the pages' state is
    /// unknown: treat it as fatal (the OS must not get shared pages).
    pub fn release<T: Tdcall + ?Sized>(
        &self,
        t: &T,
        pages: &dyn SharedPageTables,
    ) -> Result<B, BounceError> {
        let buffer = self.buffer.lock().take().ok_or(BounceError::Released)?;
        calls::map_gpa(t, self.width, self.gpa, self.len, false).map_err(|error| {
            BounceError::MapGpa {
                to_shared: false,
                error,
            }
        })?;
        accept::accept_range(t, self.gpa, self.len).map_err(BounceError::Accept)?;
        pages
            .map_private(self.gpa, self.len)
            .map_err(|what| BounceError::PageTables {
                what,
                gpa: self.gpa,
            })?;
        Ok(buffer)
    }

    /// `(GPA, length)` of the buffer while it is shared; `None` after [`Self::release`].
    pub fn shared_range(&self) -> Option<(u64, u64)> {
        self.buffer.lock().as_ref().map(|_| (self.gpa, self.len))
    }

    /// Writes `message` and a NUL at the start of the buffer while it is shared (cut to fit),
    /// for TDVMCALL<ReportFatalError>, and returns the buffer's shared GPA (`GPA | shared bit`).
    /// `None` once released, or if a transfer holds the buffer (the fatal path may interrupt
    /// one: it does not wait).
    pub fn post_message(&self, message: &[u8]) -> Option<u64> {
        let mut guard = self.buffer.try_lock()?;
        let buffer = guard.as_mut()?;
        let room = buffer.size().checked_sub(1)?;
        let text = message.get(..message.len().min(room))?;
        if !(buffer.write(0, text) && buffer.write(text.len(), &[0])) {
            return None;
        }
        shared_alias(self.gpa, self.width)
    }

    /// The address the device is given for the descriptor.
    pub fn device_address(&self) -> u64 {
        self.device_base.saturating_add(DESCRIPTOR_OFFSET as u64)
    }
}

impl<B: SharedBuffer> FwCfgDma for BounceDma<B> {
    fn read(&self, io: &dyn PortIo, key: u16, dst: &mut [u8]) -> Result<(), FwCfgError> {
        let failed = FwCfgError::DmaFailed { key };
        let mut guard = self.buffer.lock();
        let buffer = guard.as_mut().ok_or(failed.clone())?;
        let chunk = buffer
            .size()
            .checked_sub(DATA_OFFSET)
            .filter(|c| *c > 0)
            .ok_or(failed.clone())?
            .min(u32::MAX as usize);
        let descriptor_at = self.device_address();
        let data_at = self.device_base.saturating_add(DATA_OFFSET as u64);
        fw_cfg::dma_chunks(key, dst, chunk, |control, part| {
            let length = u32::try_from(part.len()).map_err(|_| failed.clone())?;
            let descriptor = fw_cfg::dma_descriptor(control, length, data_at);
            if !buffer.write(DESCRIPTOR_OFFSET, &descriptor) {
                return Err(failed.clone());
            }
            // The descriptor must be in memory before the device is told to look.
            compiler_fence(Ordering::SeqCst);
            io.outl(
                fw_cfg::DMA_ADDRESS_HIGH_PORT,
                ((descriptor_at >> 32) as u32).to_be(),
            );
            io.outl(fw_cfg::DMA_ADDRESS_LOW_PORT, (descriptor_at as u32).to_be());
            fw_cfg::wait_for_dma(key, || {
                // Out of bounds cannot happen (the buffer holds the descriptor); read it as the
                // error bit so the wait stops.
                buffer
                    .read_u32_volatile(DESCRIPTOR_OFFSET)
                    .map_or(fw_cfg::DMA_ERROR, u32::from_be_bytes)
            })?;
            compiler_fence(Ordering::SeqCst);
            if !buffer.read(DATA_OFFSET, part) {
                return Err(failed.clone());
            }
            Ok(())
        })
    }
}

/// [`SharedBuffer`] over a firmware memory region (firmware builds only): volatile byte
/// accesses through a raw pointer, so no Rust reference to memory the device changes exists.
#[cfg(target_os = "none")]
pub struct StaticSharedBuffer {
    base: *mut u8,
    size: usize,
}

// SAFETY: the region is owned exclusively (it came from a `&'static mut`), so moving the owner
// to another CPU is sound; all access goes through `&self`/`&mut self` under BounceDma's lock.
#[cfg(target_os = "none")]
unsafe impl Send for StaticSharedBuffer {}

#[cfg(target_os = "none")]
impl StaticSharedBuffer {
    /// Takes `region` for good (under the identity map its address is its GPA).
    pub fn new(region: &'static mut [u8]) -> Self {
        StaticSharedBuffer {
            base: region.as_mut_ptr(),
            size: region.len(),
        }
    }

    fn in_bounds(&self, offset: usize, len: usize) -> bool {
        offset.checked_add(len).is_some_and(|end| end <= self.size)
    }
}

#[cfg(target_os = "none")]
impl SharedBuffer for StaticSharedBuffer {
    fn gpa(&self) -> u64 {
        self.base.expose_provenance() as u64
    }

    fn size(&self) -> usize {
        self.size
    }

    fn write(&mut self, offset: usize, src: &[u8]) -> bool {
        if !self.in_bounds(offset, src.len()) {
            return false;
        }
        for (i, b) in src.iter().enumerate() {
            // SAFETY: offset + i < size (checked above), inside the region this value owns.
            unsafe { core::ptr::write_volatile(self.base.add(offset + i), *b) };
        }
        true
    }

    fn read(&self, offset: usize, dst: &mut [u8]) -> bool {
        if !self.in_bounds(offset, dst.len()) {
            return false;
        }
        for (i, b) in dst.iter_mut().enumerate() {
            // SAFETY: offset + i < size (checked above), inside the region this value owns.
            *b = unsafe { core::ptr::read_volatile(self.base.add(offset + i)) };
        }
        true
    }

    fn read_u32_volatile(&self, offset: usize) -> Option<[u8; 4]> {
        if !self.in_bounds(offset, 4) {
            return None;
        }
        // SAFETY: offset + 4 <= size (checked above), inside the region this value owns.
        let at = unsafe { self.base.add(offset) };
        if at.cast::<u32>().is_aligned() {
            // SAFETY: in bounds and aligned: one 4-byte load, as the device wrote it.
            Some(unsafe { core::ptr::read_volatile(at.cast::<u32>()) }.to_ne_bytes())
        } else {
            let mut word = [0u8; 4];
            self.read(offset, &mut word).then_some(word)
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
