//! td-shim: the TDX firmware binary. The reset vector (in `td_shim::arch`) brings the CPU to long
//! mode and calls [`shim_entry`]; this binary only chooses the platform, and the library's boot
//! pipeline (`td_shim::boot`) does the rest.
#![no_std]
#![no_main]

use td_shim::arch::live_tables::LiveTables;
use td_shim::arch::{cpu, phys, sev};
use td_shim::boot::{self, Entry};
use td_shim::plain::PlainPlatform;
use td_shim::platform::Platform;
use td_shim::sev_entry::{SnpEntry, TERM_REASON_SET, TERM_SNP_PLATFORM_MISSING};
use td_shim::tdx::bounce::StaticSharedBuffer;
use td_shim::tdx::instr::TdcallInstr;
use td_shim::tdx::platform::TdxPlatform;

type Tdx = TdxPlatform<TdcallInstr, StaticSharedBuffer>;

/// Chooses this boot's platform: its TEE if detected, else a plain VM.
fn detect() -> &'static dyn Platform {
    static PLAIN: PlainPlatform = PlainPlatform::new();
    static TDX: spin::Once<Tdx> = spin::Once::new();
    static LIVE_TABLES: LiveTables = LiveTables::new();
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
    // The reset code found SEV-SNP active (and set the C-bit in its page tables). The SNP
    // platform is not built yet, and here every CPUID or port access would raise a #VC that
    // nothing in long mode handles: end with a GHCB termination request, before either.
    if SnpEntry::from_entry(entry_mode, ebx).is_some() {
        sev::ghcb_terminate(TERM_REASON_SET as u8, TERM_SNP_PLATFORM_MISSING as u8)
    }
    boot::run(
        detect(),
        Entry {
            mode: entry_mode,
            vcpu_index,
            ebx,
        },
    )
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    td_shim::fatal::fatal(format_args!("panic: {info}"))
}
