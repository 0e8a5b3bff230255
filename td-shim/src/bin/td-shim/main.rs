//! td-shim: the TDX firmware binary. The reset vector (in `td_shim::arch`) brings the CPU to long
//! mode and calls [`shim_entry`]; this binary only chooses the platform, and the library's boot
//! pipeline (`td_shim::boot`) does the rest.
#![no_std]
#![no_main]

use td_shim::arch::cpu;
use td_shim::boot::{self, Entry};
use td_shim::plain::PlainPlatform;
use td_shim::platform::Platform;

/// Chooses this boot's platform: its TEE if detected, else a plain VM.
fn detect() -> &'static dyn Platform {
    static PLAIN: PlainPlatform = PlainPlatform::new();
    if cpu::tdx_detected() {
        // The TDX platform is not built yet. Under TDX every port access would raise a #VE
        // that nothing handles, so the firmware cannot even say so: it stops here, before the
        // first port I/O.
        cpu::halt_forever()
    }
    &PLAIN
}

/// Called by the reset code on the boot CPU: `entry_mode` is 16 (entered in real mode) or 32
/// (entered in 32-bit protected mode, as TDX does); `vcpu_index` and `ebx` are the entry
/// registers (TDX: vCPU index and GPA width; plain VM: 0).
#[no_mangle]
extern "sysv64" fn shim_entry(entry_mode: u32, vcpu_index: u32, ebx: u32) -> ! {
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
