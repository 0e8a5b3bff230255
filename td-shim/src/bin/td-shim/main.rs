//! td-shim: the firmware binary for TDX, SEV-SNP and plain VMs (one image carries the TDVF and
//! the SEV metadata). The reset vector (in `td_shim::arch`) brings the CPU to long mode and calls
//! [`shim_entry`]; this binary only chooses the platform, and the library's boot pipeline
//! (`td_shim::boot`) does the rest.
#![no_std]
#![no_main]

use td_layout::layout::SNP_GHCB;
use td_shim::arch::live_tables::LiveTables;
use td_shim::arch::sev::FirmwareVcEnv;
use td_shim::arch::{cpu, phys};
use td_shim::boot::{self, Entry};
use td_shim::bounce::StaticSharedBuffer;
use td_shim::plain::PlainPlatform;
use td_shim::platform::Platform;
use td_shim::sev_entry::SnpEntry;
use td_shim::snp::instr::SevInstr;
use td_shim::snp::platform::{SnpPages, SnpPlatform};
use td_shim::tdx::instr::TdcallInstr;
use td_shim::tdx::platform::TdxPlatform;

type Tdx = TdxPlatform<TdcallInstr, StaticSharedBuffer>;

/// The live page tables (one set: the reset tables until the final ones are built).
static LIVE_TABLES: LiveTables = LiveTables::new();

/// Chooses this boot's platform: its TEE if detected, else a plain VM.
fn detect() -> &'static dyn Platform {
    static PLAIN: PlainPlatform = PlainPlatform::new();
    static TDX: spin::Once<Tdx> = spin::Once::new();
    if cpu::tdx_detected() {
        return TDX.call_once(|| {
            let tdx = Tdx::new(TdcallInstr, phys::td_hob(), &LIVE_TABLES);
            // The bounce buffer is converted to shared in early_init, after TDG.VP.INFO gave
            // the shared bit. Without it fw_cfg reads byte by byte through TDVMCALL<IO>.
            match phys::take(phys::RamRegion::FwCfgBounce) {
                Some(region) => tdx.with_bounce_buffer(StaticSharedBuffer::new(region)),
                None => tdx,
            }
        });
    }
    &PLAIN
}

/// Called by the reset code on the boot CPU: `entry_mode` is 16 (entered in real mode) or 32
/// (entered in 32-bit protected mode, as TDX does); `vcpu_index` and `ebx` are the entry
/// registers (TDX: vCPU index and GPA width; plain VM: 0).
#[no_mangle]
extern "sysv64" fn shim_entry(entry_mode: u32, vcpu_index: u32, ebx: u32) -> ! {
    let entry = Entry {
        mode: entry_mode,
        vcpu_index,
        ebx,
    };
    // The reset code found SEV-SNP active (and set the C-bit in its page tables): every CPUID
    // or port access raises #VC from here on, so the SNP platform is chosen before either
    // (`detect` asks CPUID).
    if let Some(snp) = SnpEntry::from_entry(entry_mode, ebx) {
        boot::run(snp_platform(snp), entry)
    }
    boot::run(detect(), entry)
}

type Snp = SnpPlatform<SevInstr, StaticSharedBuffer>;

/// The SEV-SNP platform over the layout's pages.
fn snp_platform(entry: SnpEntry) -> &'static dyn Platform {
    static SNP: spin::Once<Snp> = spin::Once::new();
    static ENV: spin::Once<FirmwareVcEnv> = spin::Once::new();
    let env = ENV.call_once(|| FirmwareVcEnv::new(entry.sev_status & (1 << 11) != 0));
    SNP.call_once(|| {
        // SNP_GHCB is a 4 KiB-aligned page of TempMem that nothing else uses; the
        // platform maps it shared (no C-bit) in early_init before the first GHCB exchange and
        // keeps it so (reserved for good); PVALIDATE is only given identity-mapped RAM.
        // SAFETY: SNP_GHCB is an unused aligned page, shared by early_init before any GHCB use.
        let cpu = unsafe { SevInstr::new(SNP_GHCB.base as usize) };
        let snp = Snp::new(
            cpu,
            entry,
            SnpPages {
                ghcb_gpa: SNP_GHCB.base,
                cpuid_page: phys::snp_cpuid_page(),
                hashes_area: phys::snp_kernel_hashes(),
            },
            &LIVE_TABLES,
            env,
        );
        // FW_CFG_BOUNCE (pre-validated TempMem, mapped with the C-bit) is made shared in
        // early_init after the GHCB (PVALIDATE is given it only while it is mapped with the
        // C-bit: rescinded before the C-bit is cleared, validated after it is set again).
        // Without it fw_cfg reads the data port with REP INSB through the GHCB.
        match phys::take(phys::RamRegion::FwCfgBounce) {
            Some(region) => snp.with_bounce_buffer(StaticSharedBuffer::new(region)),
            None => snp,
        }
    })
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    td_shim::fatal::fatal(format_args!("panic: {info}"))
}
