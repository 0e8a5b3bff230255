//! This boot's measurements: the recording the pipeline extends and the fatal path closes.

use super::Hex;
use crate::arch::phys;
use crate::measurement::{
    self, LaunchParams, Payload, PlatformExtender, Recording, SecureBoot, VmmConfig,
};
use crate::platform::{self, Platform};
use crate::BootError;
use td_layout::layout::EVENT_LOG;

/// The log in progress, reachable from the fatal path.
static RECORDING: spin::Mutex<Option<Recording<'static>>> = spin::Mutex::new(None);

/// Starts the CC event log in the event-log region. From here on every failure records the
/// error separator.
pub(super) fn start() -> Result<(), BootError> {
    let area =
        phys::take(phys::RamRegion::EventLog).ok_or(BootError::RegionUnavailable("event-log"))?;
    *RECORDING.lock() = Some(Recording::new(area)?);
    Ok(())
}

/// Records the measurement plan for `payload` in the registers and the log.
pub(super) fn record(
    platform: &dyn Platform,
    params: &LaunchParams,
    config: &VmmConfig<'_>,
    secure: Option<&SecureBoot<'_>>,
    payload: &Payload<'_>,
) -> Result<(), BootError> {
    let planned = measurement::plan_with_secure_boot(params, config, secure, payload);
    let count = planned.len();
    let mut guard = RECORDING.lock();
    let rec = guard
        .as_mut()
        .ok_or(BootError::RegionUnavailable("event-log"))?;
    rec.record(&mut PlatformExtender(platform), planned)?;
    log::info!(
        "measurement: {count} events, {} bytes of CC event log at {:#x}",
        rec.log().len(),
        EVENT_LOG.base
    );
    if let Some(regs) = platform.emulated_rtmrs() {
        for (i, r) in regs.iter().enumerate().take(3) {
            log::info!("measurement: RTMR{i} {}", Hex(r));
        }
    }
    Ok(())
}

/// The fatal path's hook: close the registers with the error separator, if the log was started.
pub(super) fn record_failure() {
    let Some(platform) = platform::current() else {
        return;
    };
    let Some(mut guard) = RECORDING.try_lock() else {
        return;
    };
    let Some(rec) = guard.as_mut() else {
        return;
    };
    if !rec.record_failure(&mut PlatformExtender(platform)) {
        super::CONSOLE.write_line(format_args!(
            "td-shim: measurement: the error separator could not be recorded"
        ));
        return;
    }
    match platform.emulated_rtmrs() {
        // Emulated registers die with the VM: say what they were.
        Some(regs) => super::CONSOLE.write_line(format_args!(
            "td-shim: measurement: error separator recorded; RTMR0 {} RTMR1 {}",
            Hex(&regs[0]),
            Hex(&regs[1])
        )),
        None => super::CONSOLE.write_line(format_args!(
            "td-shim: measurement: error separator recorded"
        )),
    }
}
