//! Intel TDX, behind the `Platform` trait (docs/platforms.md). Only `instr` executes TDX
//! instructions (TDCALL, and TDVMCALL through it); everything else is plain Rust over the
//! [`calls::Tdcall`] trait and is tested on the host against a model of the TDX module and the
//! VMM. Being built: see the TDX issue.

pub mod accept;
pub mod bounce;
pub mod calls;
pub mod hob;
#[cfg(target_os = "none")]
pub mod instr;
pub mod platform;
pub mod quote;
pub mod ve;
