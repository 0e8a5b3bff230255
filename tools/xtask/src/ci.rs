//! `cargo xtask ci`: every check CI runs.

use crate::util::{cargo, run, TARGET};
use crate::{build, fuzz, kernel, setup};
use anyhow::Result;

/// How long each fuzz target runs in CI: a smoke test that the targets build and start from their
/// corpus, not a fuzzing campaign (`cargo xtask fuzz` is that).
const FUZZ_SMOKE_SECONDS: u64 = 5;

/// fmt, clippy (host and firmware), the firmware build, the unit, property, CLI and QEMU boot
/// tests, then a short run of every fuzz target.
pub fn ci() -> Result<()> {
    setup::ensure_toolchain()?;
    setup::ensure_qemu()?;
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    run(cargo().args([
        "clippy",
        "--release",
        "--target",
        TARGET,
        "-p",
        "td-shim",
        "-p",
        "test-payload",
        "--features",
        "td-shim/firmware,test-payload/firmware",
        "--",
        "-D",
        "warnings",
    ]))?;
    build::image()?;
    kernel::SERIES
        .iter()
        .try_for_each(|s| kernel::vmlinuz_of(s).map(drop))?;
    // The SNP launch digest is compared with sev-snp-measure (tests/snp_differential.rs).
    setup::ensure_sev_snp_measure()?;
    // The secure-boot tests sign and verify with OpenSSL as the independent implementation.
    setup::ensure_openssl()?;
    // Unit tests, property tests, CLI tests, the differential test and the QEMU boot tests.
    run(cargo().args(["test", "--workspace"]))?;
    fuzz::run(FUZZ_SMOKE_SECONDS, None)
}
