//! sev-shim: the AMD SEV-SNP firmware on the td-shim boot core.
//!
//! This crate is a placeholder in the workspace layout of docs/architecture.md: the SNP platform (GHCB, #VC,
//! PVALIDATE, CPUID and secrets pages, kernel-hashes verification) and the firmware binary come
//! with the SEV-SNP issue. It holds no code yet.
#![no_std]
