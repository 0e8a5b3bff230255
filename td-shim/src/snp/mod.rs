//! AMD SEV-SNP, host-testable: the GHCB protocols, page state change and PVALIDATE planning,
//! the CPUID page, the #VC handler's decoding and emulation, and the kernel-hashes table of
//! measured direct boot. Only `instr` executes SNP instructions (VMGEXIT, PVALIDATE, the GHCB
//! MSR); everything else is plain Rust over the [`cpu::SevCpu`] trait, tested on the host
//! against a model of the hypervisor and the SNP hardware (`model`, tests only). The firmware
//! binary runs [`platform::SnpPlatform`] when the reset code found SEV-SNP.
//!
//! | Module | What |
//! |---|---|
//! | [`cpu`] | [`cpu::SevCpu`]: the GHCB MSR, VMGEXIT, PVALIDATE, the post-validation touch |
//! | [`detect`] | SEV / SEV-ES / SNP from CPUID and SEV_STATUS; refused SNP features |
//! | [`msr_protocol`] | the GHCB MSR protocol: SEV information, CPUID, hypervisor features, GHCB registration, one-page PSC, termination |
//! | [`ghcb`] | the GHCB page, one NAE event ([`ghcb::Session::call`]), CPUID/IOIO/MSR/RDTSC/MMIO events |
//! | [`psc`] | page state change through the GHCB: the buffer, partial processing, checked responses |
//! | [`validate`] | RAM → PSC private + PVALIDATE in 2 MiB / 4 KiB runs; size mismatch, CF = 1, the ROM range; pages → rescind + PSC shared |
//! | [`bounce`] | the fw_cfg DMA bounce buffer: made shared after the GHCB (rescind, PSC shared, C-bit cleared), private again before the hand-off (C-bit set, PSC private, PVALIDATE); the transfers are the common [`crate::bounce::DmaChannel`] |
//! | [`cpuid`] | the CPUID page: parse, lookup with Linux's post-processing, C-bit |
//! | [`vc`] | the #VC handler: decode, emulate through the GHCB and the CPUID page |
//! | [`hashes`] | the kernel-hashes table (QEMU `kernel-hashes=on`): parse, verify |
//! | `instr` | the instructions (firmware builds only) |
//! | [`platform`] | all of it behind the `Platform` trait |
//!
//! # Sources
//!
//! Research notes /work/shared/research/sev.md §2 (and §1.6 for the hashes table). Every
//! constant was checked against primary sources: the GHCB specification as Linux quotes it
//! (`arch/x86/include/asm/sev-common.h`, `arch/x86/include/asm/svm.h`,
//! `arch/x86/include/uapi/asm/svm.h`, `arch/x86/include/asm/msr-index.h`), Linux's guest code
//! (`arch/x86/boot/startup/sev-shared.c`, `arch/x86/coco/sev/vc-shared.c`,
//! `arch/x86/coco/sev/vc-handle.c`, `arch/x86/coco/sev/core.c`), QEMU `target/i386/sev.c` for
//! the hashes table, OVMF `BlobVerifierLibSevHashes` for its GUIDs. Each module says which parts
//! it follows. Where Linux and these modules differ, the module says so (they are stricter: e.g.
//! bounded PSC retries, checked PSC entries, all RDMSR outputs required).
//!
//! # Verified in software versus needs hardware
//!
//! Verified here, on the host: every encoder and decoder against the layouts above; every
//! status path of every call (wrong MSR-protocol response codes, GHCB errors and injected
//! exceptions, missing outputs, partial and stalled PSC, tampered PSC buffers, PVALIDATE
//! FAIL_INPUT / FAIL_SIZEMISMATCH / CF = 1); the sequences the firmware sends, against a model
//! that checks the MSR-protocol order, the GHCB registration, protocol version, usage and valid
//! bits, SW_SCRATCH, IOIO/MMIO encodings, PSC buffers and PVALIDATE alignment and page state;
//! the fw_cfg bounce buffer's conversions in both directions against the model plus a model of
//! the page tables' C-bit (PVALIDATE only through a C-bit mapping, no private page ever mapped
//! without it, every access to the buffer only while shared and unencrypted) and a fake fw_cfg
//! DMA device that reaches only shared pages;
//! CPUID-page parsing and lookups; #VC decoding and emulation; the hashes table against a
//! table built byte by byte from QEMU's layout (and the empty-input table hash the host tool's
//! golden vector gives). The parsers are fuzzed (`fuzz/`).
//!
//! Needs hardware (not run anywhere yet): that VMGEXIT, PVALIDATE and the GHCB MSR behave on a
//! real EPYC and KVM as the specification and Linux say (`instr`); that KVM's answers have the
//! shapes the model gives (e.g. that it marks RAX/RDX valid after RDMSR, that it leaves
//! `end_entry` unchanged in a PSC); the cache-eviction touch's effect; and everything about
//! the PSP's CPUID-page checks. For fw_cfg DMA: that QEMU's fw_cfg device under SNP takes the
//! GPA without the C-bit and reaches the shared buffer, that the CPUID page QEMU/KVM give says
//! `SME_COHERENT` (else the buffer is not used), and the speed-up itself.

pub mod bounce;
pub mod cpu;
pub mod cpuid;
pub mod detect;
pub mod ghcb;
pub mod hashes;
#[cfg(target_os = "none")]
pub mod instr;
pub mod msr_protocol;
pub mod platform;
pub mod psc;
pub mod validate;
pub mod vc;

#[cfg(test)]
pub(crate) mod model;
#[cfg(test)]
mod tests;
