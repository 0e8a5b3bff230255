//! The layout of td-shim images and of the guest memory they use, and the image's
//! self-description that VMMs and tools read.
//!
//! - [`layout`]: every region of the image and of the firmware's RAM, checked at compile time.
//! - [`metadata`]: the TDX metadata (TDVF descriptor and sections): build, locate, validate.
//! - [`footer`]: the OVMF-style footer GUID table at the end of the image.
//! - [`sev`]: the SEV metadata and footer entries (SEV-SNP), and QEMU's rules for them.
//! - [`payload`]: the table that lists the payloads embedded in the image.
//! - [`handoff`]: what the firmware hands an ELF payload.
//! - [`signed`]: secure boot's signed-payload trailer and enrolled key record.
//!
//! Everything that parses image bytes is panic-free on any input.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod footer;
pub mod guid;
pub mod handoff;
pub mod layout;
pub mod metadata;
pub mod payload;
pub mod sev;
pub mod signed;
