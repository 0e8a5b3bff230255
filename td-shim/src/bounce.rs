//! fw_cfg DMA through a bounce buffer shared with the VMM: the transfer, common to TDX
//! ([`crate::tdx::bounce`]) and SEV-SNP ([`crate::snp::bounce`]). Only the conversions of the
//! buffer (private → shared before the first transfer, shared → private before the hand-off)
//! differ between the two; they live in those modules. This module never converts anything.
//!
//! # The transfer ([`DmaChannel`])
//!
//! The VMM's device model can only reach shared memory, so the device is given a buffer the
//! platform has converted to shared: the 16-byte `FWCfgDmaAccess` descriptor at its start
//! ([`DESCRIPTOR_OFFSET`]), the data area after it ([`DATA_OFFSET`]). Each transfer (at most the
//! data area, [`fw_cfg::dma_chunks`]) writes the descriptor, gives the device its address
//! (high then low DMA port, big-endian), waits with [`fw_cfg::wait_for_dma`] and copies the data
//! out to the private destination. Everything in the buffer is written by the VMM and is read
//! once. Transfers are serialised by a lock.
//!
//! Once the platform has taken the buffer back ([`DmaChannel::close`], the first step of each
//! platform's release), [`FwCfgDma::read`] fails with `DmaFailed` instead of touching it.
//!
//! # What the firmware's memory access must provide ([`SharedBuffer`])
//!
//! The host build forbids `unsafe`, so the buffer's memory is reached through [`SharedBuffer`]:
//! bounds-checked byte copies in and out, and a volatile read of the 4-byte control word the
//! device writes back. `StaticSharedBuffer` (firmware builds only) implements it over a
//! `&'static mut [u8]` region with volatile accesses; the tests implement it over a `Vec`.
//! While the buffer is shared, the platform's page tables map its addresses to the shared
//! memory (TDX: the shared alias; SNP: without the C-bit), so these accesses reach what the
//! device reads and writes.

use crate::fw_cfg::{self, FwCfgDma, FwCfgError};
use crate::port_io::PortIo;
use core::sync::atomic::{compiler_fence, Ordering};

/// Where the descriptor sits in the buffer.
pub const DESCRIPTOR_OFFSET: usize = 0;
/// Bytes of the `FWCfgDmaAccess` descriptor.
pub const DESCRIPTOR_SIZE: usize = 16;
/// Where the data area starts (a cache line after the descriptor).
pub const DATA_OFFSET: usize = 64;

/// The buffer's memory, as the firmware reaches it (through the shared mapping while the
/// buffer is shared). Every method checks its bounds and does nothing out of them.
pub trait SharedBuffer: Send {
    /// The GPA of the first byte, without the shared bit or C-bit (under the identity map: its
    /// address).
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

/// fw_cfg DMA over a buffer the platform has made shared: the one transfer implementation.
pub struct DmaChannel<B> {
    buffer: spin::Mutex<Option<B>>,
    /// The device address of the buffer's first byte.
    device_base: u64,
}

impl<B: SharedBuffer> DmaChannel<B> {
    /// A channel over `buffer`, already shared; the device reaches its first byte at
    /// `device_base`.
    pub fn new(buffer: B, device_base: u64) -> Self {
        DmaChannel {
            buffer: spin::Mutex::new(Some(buffer)),
            device_base,
        }
    }

    /// Whether the channel still holds the buffer (it was not closed).
    pub fn is_open(&self) -> bool {
        self.buffer.lock().is_some()
    }

    /// Takes the buffer back (waiting for a transfer in progress): later reads fail without
    /// touching it. `None` if it was closed already.
    pub fn close(&self) -> Option<B> {
        self.buffer.lock().take()
    }

    /// Writes `message` and a NUL at the start of the buffer (cut to fit). `false` once closed,
    /// or if a transfer holds the buffer (the fatal path may interrupt one: it does not wait).
    pub fn post_message(&self, message: &[u8]) -> bool {
        let Some(mut guard) = self.buffer.try_lock() else {
            return false;
        };
        let Some(buffer) = guard.as_mut() else {
            return false;
        };
        let Some(room) = buffer.size().checked_sub(1) else {
            return false;
        };
        let Some(text) = message.get(..message.len().min(room)) else {
            return false;
        };
        buffer.write(0, text) && buffer.write(text.len(), &[0])
    }

    /// The address the device is given for the descriptor.
    pub fn device_address(&self) -> u64 {
        self.device_base.saturating_add(DESCRIPTOR_OFFSET as u64)
    }
}

impl<B: SharedBuffer> FwCfgDma for DmaChannel<B> {
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
// to another CPU is sound; all access goes through `&self`/`&mut self` under DmaChannel's lock.
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
pub(crate) mod fake_device;
