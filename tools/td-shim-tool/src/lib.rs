//! The host side of td-shim: building images and reading what they say about themselves.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod build;
pub mod eventlog;
pub mod initramfs;
pub mod inspect;
