//! Payload formats: parsing, loading and relocation into a caller-given buffer.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod elf;
pub mod linux;
