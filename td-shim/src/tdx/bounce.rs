//! fw_cfg DMA in a TD, through a bounce buffer converted to shared memory.
//!
//! The VMM's device model can only reach shared memory, so [`BounceDma`] gives the device a
//! buffer that was converted to shared with TDVMCALL<MapGPA>. The transfers themselves (the
//! descriptor at the buffer's start, the data area after it, chunking, the wait, the copy-out)
//! are the common [`crate::bounce::DmaChannel`], shared with SEV-SNP ([`crate::snp::bounce`]);
//! this module does the TDX conversions around it.
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
//! See [`crate::bounce`]: [`SharedBuffer`] and its firmware implementation
//! `StaticSharedBuffer` are common to TDX and SEV-SNP (re-exported here).
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

use crate::bounce::DmaChannel;
#[cfg(target_os = "none")]
pub use crate::bounce::StaticSharedBuffer;
pub use crate::bounce::{SharedBuffer, DATA_OFFSET, DESCRIPTOR_OFFSET, DESCRIPTOR_SIZE};
#[cfg(test)]
use crate::fw_cfg;
use crate::fw_cfg::{FwCfgDma, FwCfgError};
use crate::port_io::PortIo;
use crate::tdx::accept::{self, AcceptError, PAGE_4K};
use crate::tdx::calls::{self, GpaWidth, Tdcall, TdxError};
use core::fmt;

/// The shared alias of private GPA `gpa`: `gpa | shared bit` (bit 47 or 51, §5). `None` if
/// `gpa` is not below the shared bit (it has no alias).
pub const fn shared_alias(gpa: u64, width: GpaWidth) -> Option<u64> {
    if gpa >= width.shared_bit() {
        None
    } else {
        Some(gpa | width.shared_bit())
    }
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

/// fw_cfg DMA through a shared bounce buffer: the common [`DmaChannel`] plus what its TDX
/// conversions need.
pub struct BounceDma<B> {
    channel: DmaChannel<B>,
    gpa: u64,
    len: u64,
    width: GpaWidth,
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
            channel: DmaChannel::new(buffer, device_base),
            gpa,
            len,
            width,
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
        let buffer = self.channel.close().ok_or(BounceError::Released)?;
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
        self.channel.is_open().then_some((self.gpa, self.len))
    }

    /// Writes `message` and a NUL at the start of the buffer while it is shared (cut to fit),
    /// for TDVMCALL<ReportFatalError>, and returns the buffer's shared GPA (`GPA | shared bit`).
    /// `None` once released, or if a transfer holds the buffer (the fatal path may interrupt
    /// one: it does not wait).
    pub fn post_message(&self, message: &[u8]) -> Option<u64> {
        if !self.channel.post_message(message) {
            return None;
        }
        shared_alias(self.gpa, self.width)
    }

    /// The address the device is given for the descriptor.
    pub fn device_address(&self) -> u64 {
        self.channel.device_address()
    }
}

impl<B: SharedBuffer> FwCfgDma for BounceDma<B> {
    fn read(&self, io: &dyn PortIo, key: u16, dst: &mut [u8]) -> Result<(), FwCfgError> {
        self.channel.read(io, key, dst)
    }
}

#[cfg(test)]
pub(crate) mod tests;
