//! Host tests of the SNP modules against the model of the hypervisor and the SNP hardware
//! (`super::model`), plus property tests of the parsers.

extern crate std;

mod detect;
mod ghcb;
mod msr_protocol;
mod psc;
mod validate;

use super::ghcb::{Ghcb, Session};
use super::model::Model;

/// Where the tests put the GHCB (shared RAM).
pub(crate) const GHCB_GPA: u64 = 0x80_0000;
pub(crate) const MIB: u64 = 0x10_0000;

/// A model that has negotiated and registered the GHCB at [`GHCB_GPA`], with RAM
/// `[0, 2 GiB)`.
pub(crate) fn ready() -> Model {
    let m = Model::ready(GHCB_GPA);
    m.add_ram(0, 0x8000_0000);
    m
}

/// Runs `f` with a session on `m`.
pub(crate) fn with_session<R>(m: &Model, f: impl FnOnce(&mut Session<'_, Model>) -> R) -> R {
    let mut g = Ghcb::new();
    let mut s = Session::new(m, &mut g, GHCB_GPA).unwrap();
    f(&mut s)
}
