//! The host side of td-shim: building images, reading what they say about themselves, and
//! computing the measurements and reference values of a boot before it happens.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod build;
pub mod elf_symbols;
pub mod eventlog;
pub mod files;
pub mod initramfs;
pub mod inspect;
pub mod measure;
pub mod mrtd;
pub mod refvals;
pub mod secure_boot;
pub mod snp;
pub mod verify;
