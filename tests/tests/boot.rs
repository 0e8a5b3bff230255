//! The firmware boots the test payload under QEMU TCG, on the Plain platform, and the payload
//! confirms what it was handed; broken images and machines take the fatal path with a message.

use std::time::Duration;
use td_layout::handoff::{qemu_exit_status, DEBUG_EXIT_FIRMWARE_FATAL, DEBUG_EXIT_PAYLOAD_OK};
use td_layout::layout::IMAGE_PAYLOAD;
use td_layout::payload::FIRST_PAYLOAD_OFFSET;
use tests::{artifacts, boot, Boot};

const TIMEOUT: Duration = Duration::from_secs(60);

fn boot_built(memory: &str) -> Boot {
    let b = boot(&artifacts().image, memory, &[], TIMEOUT);
    println!("{}", b.console);
    b
}

fn assert_payload_pass(b: &Boot) {
    assert!(
        b.said("entered in 16-bit mode"),
        "the reset vector's real-mode path ran"
    );
    assert!(b.said("platform: plain"));
    assert!(
        b.said("payload: verdict: PASS"),
        "the payload's checks passed"
    );
    assert!(!b.said("FAILED"));
    assert_eq!(b.status, Some(qemu_exit_status(DEBUG_EXIT_PAYLOAD_OK)));
}

#[test]
fn boots_the_payload_with_128m() {
    let b = boot_built("128M");
    assert_payload_pass(&b);
    assert!(b.said("payload: ram: vmm 128 MiB (top 0x8000000)"));
}

#[test]
fn boots_the_payload_with_1g() {
    let b = boot_built("1G");
    assert_payload_pass(&b);
    assert!(b.said("payload: ram: vmm 1024 MiB (top 0x40000000)"));
}

#[test]
fn boots_the_payload_with_ram_above_4g() {
    // q35 puts 2 GiB below the PCI hole and the other 3 GiB at 4 GiB.
    let b = boot_built("5G");
    assert_payload_pass(&b);
    assert!(b.said("payload: ram: vmm 5120 MiB (top 0x1c0000000)"));
    assert!(b.said("[0x000100000000, 0x0001c0000000) type 1"));
    assert!(b.said("paging: identity map up to 0x1c0000000"));
}

fn corrupted(name: &str, patch: impl FnOnce(&mut Vec<u8>)) -> std::path::PathBuf {
    let mut image = std::fs::read(&artifacts().image).expect("read the image");
    patch(&mut image);
    let path = std::env::temp_dir().join(format!("td-shim-{name}-{}.bin", std::process::id()));
    std::fs::write(&path, image).expect("write the corrupted image");
    path
}

fn assert_fatal(b: &Boot, message: &str) {
    assert!(
        b.said(&format!("td-shim: FATAL {message}")),
        "expected FATAL {message}"
    );
    assert!(!b.said("payload: started"), "the payload must not run");
    assert_eq!(b.status, Some(qemu_exit_status(DEBUG_EXIT_FIRMWARE_FATAL)));
}

#[test]
fn a_corrupted_payload_takes_the_fatal_path() {
    // e_machine of the embedded ELF (offset 18) set to 3 (i386).
    let at = (IMAGE_PAYLOAD.image_offset() + FIRST_PAYLOAD_OFFSET) as usize + 18;
    let path = corrupted("elf", |img| img[at] = 3);
    let b = boot(&path, "256M", &[], TIMEOUT);
    println!("{}", b.console);
    assert_fatal(&b, "payload: ELF: machine 3 is not x86-64");
}

#[test]
fn a_corrupted_payload_table_takes_the_fatal_path() {
    let at = IMAGE_PAYLOAD.image_offset() as usize;
    let path = corrupted("table", |img| img[at] = b'X');
    let b = boot(&path, "256M", &[], TIMEOUT);
    println!("{}", b.console);
    assert_fatal(&b, "payload: payload table magic is not \"TDSHPAYL\"");
}

#[test]
fn too_little_ram_for_the_firmware_takes_the_fatal_path() {
    // 32 MiB holds the firmware's working memory but not the payload load region (16..48 MiB).
    let b = boot(&artifacts().image, "32M", &[], TIMEOUT);
    println!("{}", b.console);
    assert_fatal(
        &b,
        "memory map: payload-load [0x1000000, 0x3000000) is not RAM",
    );
}

#[test]
fn tiny_guests_end_with_a_clear_message() {
    // Below 8 MiB the firmware's working memory does not exist: the reset code says so before it
    // writes any RAM (these sizes used to hang, triple-fault or panic). From 8 MiB on, the memory
    // map check in Rust speaks.
    for memory in ["1M", "2M", "4M", "7M"] {
        let b = boot(&artifacts().image, memory, &[], TIMEOUT);
        println!("-m {memory}:\n{}", b.console);
        assert_fatal(
            &b,
            "memory: the VM has less than 8 MiB of RAM; the firmware needs [0x100000, 0x800000) for its working memory",
        );
        assert!(!b.said("entered in"), "-m {memory}: Rust must not run");
    }
    for memory in ["8M", "16M"] {
        let b = boot(&artifacts().image, memory, &[], TIMEOUT);
        println!("-m {memory}:\n{}", b.console);
        assert_fatal(
            &b,
            "memory map: payload-load [0x1000000, 0x3000000) is not RAM",
        );
    }
}

// The payload runs on the firmware's IDT, so a fault it provokes shows the firmware's report.
fn boot_with_action(action: &str) -> Boot {
    let fw_cfg = format!("name=opt/test-payload/action,string={action}");
    let b = boot(&artifacts().image, "256M", &["-fw_cfg", &fw_cfg], TIMEOUT);
    println!("{}", b.console);
    assert!(b.said("payload: verdict") || b.said("payload: action"));
    assert_eq!(b.status, Some(qemu_exit_status(DEBUG_EXIT_FIRMWARE_FATAL)));
    b
}

#[test]
fn an_invalid_opcode_is_reported_with_its_rip() {
    let b = boot_with_action("ud2");
    assert!(b.said("td-shim: FATAL CPU exception 6 invalid opcode (#UD) at rip=0x100"));
}

#[test]
fn a_page_fault_is_reported_with_cr2() {
    let b = boot_with_action("page-fault");
    assert!(b.said("td-shim: FATAL CPU exception 14 page fault (#PF)"));
    assert!(b.said("cr2=0x400000000000"));
}

#[test]
fn the_stack_is_not_executable() {
    let b = boot_with_action("exec-stack");
    // Error code 0x11: protection violation (present page) on an instruction fetch.
    assert!(b.said("td-shim: FATAL CPU exception 14 page fault (#PF)"));
    assert!(b.said("error_code=0x11"));
    // The firmware runs on the selectors Linux's 64-bit boot protocol requires at entry.
    assert!(b.said("cs=0x10 ss=0x18"));
    assert!(!b.said("the stack was executable"));
}
