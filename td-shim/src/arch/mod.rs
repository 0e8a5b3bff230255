//! Architecture code: everything that needs assembly, control registers, port I/O or raw
//! physical memory. Built only for the firmware target (`target_os = "none"`).

pub mod cpu;
pub mod exceptions;
pub mod heap;
pub mod io;
pub mod live_tables;
pub mod mp;
pub mod phys;
mod reset;
pub mod sev;
