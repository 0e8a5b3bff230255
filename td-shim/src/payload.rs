//! Finding the payload in the image and loading it.

use crate::BootError;
use alloc::vec::Vec;
use td_layout::payload::{PayloadKind, PayloadTable};
use td_loader::elf::{ElfFile, LoadedImage};

/// Copies the ELF payload the image's payload table lists into firmware memory, so that what is
/// checked (and, with measurement, measured) is exactly what is loaded.
pub fn copy_elf_payload(table: &PayloadTable<'_>) -> Result<Vec<u8>, BootError> {
    let elf = table.find(PayloadKind::Elf).ok_or(BootError::NoPayload)?;
    Ok(elf.to_vec())
}

/// Loads and relocates the ELF `payload` into `dst`, which is memory at guest address `base`.
pub fn load_elf_payload(
    payload: &[u8],
    dst: &mut [u8],
    base: u64,
) -> Result<LoadedImage, BootError> {
    let elf = ElfFile::parse(payload)?;
    Ok(elf.load(dst, base)?)
}
