//! The system calls the agent makes as PID 1: mounting the kernel's filesystems, `uname`, and
//! powering off. The only unsafe code of the agent.

use guest_agent::Failures;
use std::ffi::CStr;
use std::io;
use std::path::Path;

/// Mounts proc on /proc, sysfs on /sys and devtmpfs on /dev, creating the directories if missing,
/// then configfs on /sys/kernel/config if that directory exists (sysfs has it when the kernel has
/// configfs; configfs-tsm lives there). A filesystem already mounted there (EBUSY) is fine.
pub fn mount_early_filesystems(failures: &mut Failures) {
    mount_sys_and_dev(failures);
    let configfs = c"/sys/kernel/config";
    if Path::new(&*configfs.to_string_lossy()).is_dir() {
        match mount(c"configfs", configfs, c"configfs", NOSUID_NODEV_NOEXEC) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
            Err(e) => failures.record("mount configfs on /sys/kernel/config", e),
        }
    }
}

const NOSUID_NODEV_NOEXEC: libc::c_ulong = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;

fn mount_sys_and_dev(failures: &mut Failures) {
    let mounts: [(&CStr, &CStr, libc::c_ulong); 3] = [
        (c"proc", c"/proc", NOSUID_NODEV_NOEXEC),
        (c"sysfs", c"/sys", NOSUID_NODEV_NOEXEC),
        (c"devtmpfs", c"/dev", libc::MS_NOSUID),
    ];
    for (fstype, target, flags) in mounts {
        let dir = target.to_string_lossy();
        if let Err(e) = std::fs::create_dir_all(Path::new(&*dir)) {
            failures.record(format_args!("create {dir}"), e);
            continue;
        }
        match mount(fstype, target, fstype, flags) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
            Err(e) => failures.record(
                format_args!("mount {} on {dir}", fstype.to_string_lossy()),
                e,
            ),
        }
    }
}

fn mount(source: &CStr, target: &CStr, fstype: &CStr, flags: libc::c_ulong) -> io::Result<()> {
    // SAFETY: the three strings are NUL-terminated and outlive the call; a null data pointer means no options.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            flags,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The kernel release from `uname(2)`.
pub fn uname_release() -> io::Result<String> {
    // SAFETY: utsname is arrays of c_char only, for which all zero bytes are a valid value.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `uts` is a live, writable utsname for uname(2) to fill.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // `c_char` is a byte; the kernel NUL-terminates the release.
    let release: Vec<u8> = uts
        .release
        .iter()
        .map(|&c| c as u8)
        .take_while(|&b| b != 0)
        .collect();
    String::from_utf8(release).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Flushes the filesystems and powers the machine off. Returns only on failure, with the reason.
pub fn power_off() -> io::Error {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    // SAFETY: reboot(2) with RB_POWER_OFF takes no pointers; on success it does not return.
    unsafe { libc::reboot(libc::RB_POWER_OFF) };
    io::Error::last_os_error()
}
