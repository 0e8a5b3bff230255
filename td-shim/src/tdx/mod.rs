//! Intel TDX, behind the `Platform` trait (docs/platforms.md). Only `instr` executes TDX
//! instructions (TDCALL, and TDVMCALL through it); everything else is plain Rust over the
//! [`calls::Tdcall`] trait and is tested on the host against a model of the TDX module and the
//! VMM. The firmware binary runs it when CPUID leaf 0x21 says TDX (docs/platforms.md: what was
//! verified in software and what needs hardware).

pub mod accept;
pub mod bounce;
pub mod calls;
pub mod hob;
#[cfg(target_os = "none")]
pub mod instr;
pub mod platform;
pub mod quote;
pub mod ve;
