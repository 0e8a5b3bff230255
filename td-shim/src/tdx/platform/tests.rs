//! The TDX platform against the model: call order, RTMRs, the memory map and its acceptance,
//! the vCPU count, the bounce buffer's life, #VE dispatch and the fatal report.

extern crate std;

use super::*;
use crate::fw_cfg::fake::FakeFwCfg;
use crate::tdx::bounce::tests::{device, VecBuffer};
use crate::tdx::calls::model::{Inject, Model};
use crate::tdx::calls::{leaf, vmcall, TdcallArgs, VeInfo};
use crate::tdx::ve::exit_reason;
use sha2::{Digest, Sha384};
use std::boxed::Box;
use std::string::String;
use std::sync::Mutex;
use std::vec;
use std::vec::Vec;
use td_layout::layout::TD_HOB;

const MIB: u64 = 0x10_0000;
const TOP: u64 = 64 * MIB;

/// The model behind a lock, so the platform (which must be `Sync`) can hold it.
#[derive(Clone, Copy)]
struct Locked<'a>(&'a Mutex<Model>);

impl Tdcall for Locked<'_> {
    fn tdcall(&self, regs: &mut TdcallArgs) -> u64 {
        self.0.lock().unwrap().tdcall(regs)
    }
}

/// Page-table changes, recorded.
#[derive(Default)]
struct Pages(Mutex<Vec<String>>);

impl SharedPageTables for Pages {
    fn map_shared(&self, gpa: u64, len: u64, bit: u64) -> Result<(), &'static str> {
        self.0
            .lock()
            .unwrap()
            .push(std::format!("shared {gpa:#x}+{len:#x} {bit:#x}"));
        Ok(())
    }
    fn map_private(&self, gpa: u64, len: u64) -> Result<(), &'static str> {
        self.0
            .lock()
            .unwrap()
            .push(std::format!("private {gpa:#x}+{len:#x}"));
        Ok(())
    }
}

fn header(out: &mut Vec<u8>, hob_type: u16, len: u16) {
    out.extend_from_slice(&hob_type.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
}

/// A TD HOB as QEMU writes it (research notes §6.3) at TD_HOB's base.
fn td_hob(resources: &[(u32, u64, u64)]) -> &'static [u8] {
    let total = 56 + 48 * resources.len() + 8;
    let mut b = Vec::new();
    header(&mut b, 0x0001, 56);
    b.extend_from_slice(&9u32.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&[0; 32]);
    b.extend_from_slice(&(TD_HOB.base + total as u64).to_le_bytes());
    for &(kind, base, len) in resources {
        header(&mut b, 0x0003, 48);
        b.extend_from_slice(&[0; 16]);
        b.extend_from_slice(&kind.to_le_bytes());
        b.extend_from_slice(&7u32.to_le_bytes());
        b.extend_from_slice(&base.to_le_bytes());
        b.extend_from_slice(&len.to_le_bytes());
    }
    header(&mut b, 0xFFFF, 8);
    b.resize(0x1000, 0);
    Box::leak(b.into_boxed_slice())
}

/// QEMU's HOB for a 64 MiB q35 TD with this image's layout.
fn qemu_hob() -> &'static [u8] {
    td_hob(&[
        (7, 0, MIB),
        (0, MIB, 7 * MIB),
        (0, 8 * MIB, 0x20000),
        (7, 8 * MIB + 0x20000, TOP - 8 * MIB - 0x20000),
    ])
}

/// A model of that TD: RAM added, TempMem and TD_HOB accepted with 4 KiB pages.
fn model() -> Mutex<Model> {
    let m = Model::new();
    m.add_ram(0, TOP);
    for p in (MIB..8 * MIB + 0x20000).step_by(0x1000) {
        m.pre_accept_4k(p);
    }
    m.map_small(MIB, 7 * MIB + 0x20000);
    m.require_vp_info_first();
    Mutex::new(m)
}

fn platform<'a>(
    m: &'a Mutex<Model>,
    hob: &'static [u8],
) -> (TdxPlatform<Locked<'a>, VecBuffer>, &'static Pages) {
    let pages: &'static Pages = Box::leak(Box::default());
    (TdxPlatform::new(Locked(m), hob, pages), pages)
}

fn sequence(m: &Mutex<Model>) -> Vec<(u64, Option<u64>)> {
    m.lock().unwrap().sequence()
}

#[test]
fn vp_info_comes_first_and_only_once() {
    let m = model();
    m.lock().unwrap().set_vp_info(52, 1 << 28, 2, 4, 0);
    let (p, _) = platform(&m, qemu_hob());
    assert_eq!((p.kind(), p.cc_type()), (PlatformKind::Tdx, 2));
    assert!(p.owns_vector(20) && !p.owns_vector(29) && !p.owns_vector(14));
    assert!(p.emulated_rtmrs().is_none());
    assert!(p.vp_info().is_none());
    // Nothing that needs TDG.VP.INFO works before it.
    assert!(p.vcpu_count(None).is_err() && p.memory_map(None).is_err());
    assert!(sequence(&m).is_empty());

    p.early_init().unwrap();
    p.early_init().unwrap();
    p.io().outb(0x3F8, b'x');
    assert_eq!(
        sequence(&m),
        vec![(leaf::VP_INFO, None), (leaf::VP_VMCALL, Some(vmcall::IO))]
    );
    let info = p.vp_info().unwrap();
    assert_eq!((info.gpa_width, info.num_vcpus), (GpaWidth::W52, 2));
    assert_eq!(m.lock().unwrap().port_writes(), vec![(0x3F8, 1, 0x78)]);
    m.lock().unwrap().assert_clean();
}

#[test]
fn a_failing_vp_info_fails_early_init() {
    let m = model();
    m.lock()
        .unwrap()
        .inject(leaf::VP_INFO, None, Inject::Status(status::OPERAND_INVALID));
    let (p, _) = platform(&m, qemu_hob());
    assert!(matches!(
        p.early_init(),
        Err(BootError::UnsupportedPlatform(_))
    ));
    assert!(p.vp_info().is_none());
    // An unsupported width likewise; a retry asks again.
    m.lock().unwrap().set_vp_info(50, 0, 1, 1, 0);
    assert!(p.early_init().is_err());
    m.lock().unwrap().set_vp_info(48, 0, 1, 1, 0);
    p.early_init().unwrap();
    assert_eq!(sequence(&m).len(), 3);
}

#[test]
fn vcpu_count_is_tdx_modules_even_when_fw_cfg_disagrees() {
    let m = model();
    m.lock().unwrap().set_vp_info(48, 1 << 28, 4, 8, 0);
    let (p, _) = platform(&m, qemu_hob());
    p.early_init().unwrap();
    let mut dev = FakeFwCfg::with_files(&[]);
    dev.set_item(0x05, vec![1, 0]);
    let f = FwCfg::probe(&dev, None).unwrap();
    assert_eq!(f.read_u16(0x05).unwrap(), 1);
    assert_eq!(p.vcpu_count(Some(&f)).unwrap(), 4);
    assert_eq!(p.vcpu_count(None).unwrap(), 4);
    assert_eq!(sequence(&m), vec![(leaf::VP_INFO, None)]);
}

#[test]
fn rtmr_extends_land_in_the_modules_registers_in_order() {
    let m = model();
    let (p, _) = platform(&m, qemu_hob());
    p.early_init().unwrap();
    let digests = [
        (0usize, Digest48Aligned([1; 48])),
        (0, Digest48Aligned([2; 48])),
        (3, Digest48Aligned([3; 48])),
        (1, Digest48Aligned([4; 48])),
    ];
    for (i, d) in &digests {
        m.lock().unwrap().expose_digest(d);
        p.extend_rtmr_staged(*i, d).unwrap();
    }
    let mut expect = [[0u8; 48]; 4];
    for (i, d) in &digests {
        let mut h = Sha384::new();
        h.update(expect[*i]);
        h.update(d.0);
        expect[*i].copy_from_slice(&h.finalize());
    }
    for (i, e) in expect.iter().enumerate() {
        assert_eq!(&m.lock().unwrap().rtmr(i), e, "RTMR{i}");
    }
    let calls = m.lock().unwrap().calls();
    let extends: Vec<_> = calls
        .iter()
        .filter(|c| c.leaf() == leaf::MR_RTMR_EXTEND)
        .map(|c| c.input.rdx)
        .collect();
    assert_eq!(extends, vec![0, 0, 3, 1]);
    m.lock().unwrap().assert_clean();
}

#[test]
fn extend_rtmr_stages_the_digest_aligned_and_maps_errors() {
    let m = model();
    let (p, _) = platform(&m, qemu_hob());
    p.early_init().unwrap();
    assert_eq!(
        p.extend_rtmr(4, &[0; 48]),
        Err(ExtendError::BadRegister { rtmr: 4 })
    );
    assert_eq!(sequence(&m).len(), 1, "refused before any call");
    // The stack copy is unknown to the model (it cannot read memory), which refuses it; the
    // call itself has the right shape, and the refusal becomes ExtendError::Refused.
    assert_eq!(
        p.extend_rtmr(2, &[9; 48]),
        Err(ExtendError::Refused {
            status: status::OPERAND_INVALID | status::OPERAND_RCX
        })
    );
    let c = m.lock().unwrap().calls().last().unwrap().clone();
    assert_eq!((c.input.rax, c.input.rdx), (leaf::MR_RTMR_EXTEND, 2));
    assert_eq!(c.input.rcx % 64, 0);
    // A busy RTMR lock that never clears.
    for _ in 0..calls::BUSY_ATTEMPTS {
        m.lock().unwrap().inject(
            leaf::MR_RTMR_EXTEND,
            None,
            Inject::Status(status::OPERAND_BUSY | status::OPERAND_RTMR),
        );
    }
    let d = Digest48Aligned([5; 48]);
    assert_eq!(
        p.extend_rtmr_staged(1, &d),
        Err(ExtendError::Refused {
            status: status::OPERAND_BUSY | status::OPERAND_RTMR
        })
    );
    assert_eq!(m.lock().unwrap().rtmr(1), [0; 48]);
}

#[test]
fn the_hob_is_the_memory_map_and_all_its_ram_gets_accepted() {
    let m = model();
    let (p, _) = platform(&m, qemu_hob());
    p.early_init().unwrap();
    let map = p.memory_map(None).unwrap();
    assert_eq!(map.ram_bytes(), TOP);
    // As the boot pipeline does: accept every RAM range of the map.
    let ram: Vec<(u64, u64)> = map.ram().map(|r| (r.base, r.length)).collect();
    for (base, len) in &ram {
        p.accept_memory(*base, *len).unwrap();
    }
    let model = m.lock().unwrap();
    assert_eq!(model.accepted_pages(), TOP / 0x1000);
    assert!(model.is_accepted(0) && model.is_accepted(TOP - 0x1000));
    model.assert_clean();
}

#[test]
fn a_hob_range_at_the_shared_bit_or_a_bad_hob_is_refused() {
    let m = model();
    let hob = td_hob(&[(7, 0, TOP), (7, (1 << 47) - MIB, 2 * MIB)]);
    let (p, _) = platform(&m, hob);
    p.early_init().unwrap();
    assert!(matches!(
        p.memory_map(None),
        Err(BootError::RegionUnavailable(_))
    ));
    let (p, _) = platform(&m, Box::leak(vec![0u8; 64].into_boxed_slice()));
    p.early_init().unwrap();
    assert!(p.memory_map(None).is_err());
    // RAM over the firmware image: the memory map's own check, its own error.
    let (p, _) = platform(&m, td_hob(&[(7, 0, 0x1_0000_0000)]));
    p.early_init().unwrap();
    assert!(matches!(p.memory_map(None), Err(BootError::MemoryMap(_))));
}

#[test]
fn the_bounce_buffer_is_shared_after_early_init_skipped_by_accept_and_released() {
    let m = model();
    let buf = VecBuffer::new(2 * MIB, 0x2000);
    let mem = buf.mem.clone();
    let (p, pages) = platform(&m, qemu_hob());
    let p = p.with_bounce_buffer(buf);
    assert!(p.fw_cfg_dma().is_none(), "not before early_init");
    p.early_init().unwrap();
    assert_eq!(
        sequence(&m),
        vec![
            (leaf::VP_INFO, None),
            (leaf::VP_VMCALL, Some(vmcall::MAP_GPA))
        ]
    );
    assert_eq!(
        pages.0.lock().unwrap().clone(),
        vec![std::format!(
            "shared {:#x}+0x2000 {:#x}",
            2 * MIB,
            1u64 << 47
        )]
    );
    assert!(m.lock().unwrap().is_shared(2 * MIB));

    // fw_cfg DMA through it.
    let dev = device(
        &VecBuffer { gpa: 2 * MIB, mem },
        0,
        None,
        &[("opt/k", (0..5000u32).map(|i| i as u8).collect())],
    );
    let dma = p.fw_cfg_dma().unwrap();
    let f = FwCfg::probe(&dev, Some(dma)).unwrap();
    let k = f.read_file("opt/k", 1 << 20).unwrap();
    assert_eq!(k, (0..5000u32).map(|i| i as u8).collect::<Vec<_>>());

    // Accepting all RAM leaves the shared buffer alone (the model refuses shared pages).
    for r in p.memory_map(None).unwrap().ram() {
        p.accept_memory(r.base, r.length).unwrap();
    }
    assert!(!m.lock().unwrap().is_accepted(2 * MIB));
    m.lock().unwrap().assert_clean();

    // Release before hand-off: private and accepted again, page tables last.
    let back = p.release_bounce_buffer().unwrap().unwrap();
    assert_eq!(back.gpa, 2 * MIB);
    {
        let model = m.lock().unwrap();
        assert!(!model.is_shared(2 * MIB) && !model.is_shared(2 * MIB + 0x1000));
        assert!(model.is_accepted(2 * MIB) && model.is_accepted(2 * MIB + 0x1000));
        assert_eq!(model.accepted_pages(), TOP / 0x1000);
        model.assert_clean();
    }
    assert_eq!(
        pages.0.lock().unwrap().last().unwrap(),
        &std::format!("private {:#x}+0x2000", 2 * MIB)
    );
    assert!(p.fw_cfg_dma().is_none());
    assert!(p.release_bounce_buffer().unwrap().is_none());
    // A second buffer is refused once one was set up.
    assert!(p
        .set_bounce_buffer(VecBuffer::new(4 * MIB, 0x1000))
        .is_err());
}

#[test]
fn without_a_bounce_buffer_fw_cfg_uses_port_io_and_a_late_buffer_is_set_up_at_once() {
    let m = model();
    let (p, _) = platform(&m, qemu_hob());
    p.early_init().unwrap();
    assert!(p.fw_cfg_dma().is_none());
    assert!(p.release_bounce_buffer().unwrap().is_none());
    p.set_bounce_buffer(VecBuffer::new(4 * MIB, 0x1000))
        .unwrap();
    assert!(p.fw_cfg_dma().is_some());
    assert!(m.lock().unwrap().is_shared(4 * MIB));
    // A bad buffer given at construction makes early_init fail.
    let (p, _) = platform(&m, qemu_hob());
    let p = p.with_bounce_buffer(VecBuffer::new(4 * MIB + 0x10, 0x1000));
    assert!(matches!(
        p.early_init(),
        Err(BootError::RegionUnavailable(_))
    ));
}

#[test]
fn ve_goes_to_the_handler_with_the_gpa_width() {
    let m = model();
    let (p, _) = platform(&m, qemu_hob());
    p.early_init().unwrap();
    m.lock().unwrap().set_ve(VeInfo {
        exit_reason: exit_reason::IO,
        exit_qualification: 0x3F8 << 16,
        instruction_length: 1,
        ..VeInfo::default()
    });
    let mut f = ExceptionFrame {
        vector: 20,
        rip: 0x1000,
        rax: 0x41,
        ..ExceptionFrame::default()
    };
    assert_eq!(p.handle_exception(&mut f), Handled::Resume);
    assert_eq!(f.rip, 0x1001);
    assert_eq!(m.lock().unwrap().port_writes(), vec![(0x3F8, 1, 0x41)]);
    m.lock().unwrap().set_ve(VeInfo {
        exit_reason: exit_reason::EPT_VIOLATION,
        guest_physical_address: 1 << 47,
        ..VeInfo::default()
    });
    assert!(matches!(p.handle_exception(&mut f), Handled::Fatal(_)));
    assert_eq!(f.rip, 0x1001);
}

#[test]
fn the_fatal_report_carries_code_zero_and_the_message() {
    let m = model();
    let (p, _) = platform(&m, qemu_hob());
    assert_eq!(
        p.report_fatal(""),
        TdxError::FatalReportReturned { status: 0 }
    );
    let (r12, r13, r14, r15) = m.lock().unwrap().fatal().unwrap();
    assert_eq!((r12, r13), (0, 0));
    let mut text = r14.to_le_bytes().to_vec();
    text.extend_from_slice(&r15.to_le_bytes());
    assert_eq!(&text[..FATAL_MESSAGE.len()], FATAL_MESSAGE);
}

#[test]
fn the_fatal_report_puts_the_whole_message_in_the_shared_buffer() {
    let m = model();
    let buf = VecBuffer::new(2 * MIB, 0x1000);
    let mem = buf.mem.clone();
    let (p, _) = platform(&m, qemu_hob());
    let p = p.with_bounce_buffer(buf);
    // Before early_init nothing is shared: the registers only.
    p.report_fatal("memory: no RAM");
    let (r12, r13, _, _) = m.lock().unwrap().fatal().unwrap();
    assert_eq!((r12, r13), (0, 0));
    p.early_init().unwrap();
    let message = "linux: the kernel does not fit below 4 GiB (init_size 0x5000000)";
    p.report_fatal(message);
    let (r12, r13, r14, r15) = m.lock().unwrap().fatal().unwrap();
    assert_eq!(r12, 1 << 63, "code 0, R13 valid");
    assert_eq!(r13, (2 * MIB) | (1 << 47), "the shared alias of the buffer");
    let mut regs = r14.to_le_bytes().to_vec();
    regs.extend_from_slice(&r15.to_le_bytes());
    assert_eq!(&regs, &message.as_bytes()[..16]);
    let page = mem.lock().unwrap();
    assert_eq!(&page[..message.len()], message.as_bytes());
    assert_eq!(page[message.len()], 0);
    drop(page);
    // A message longer than the buffer is cut to fit with its NUL.
    let long = "x".repeat(0x2000);
    p.report_fatal(&long);
    let page = mem.lock().unwrap();
    assert!(page[..0xFFF].iter().all(|&b| b == b'x'));
    assert_eq!(page[0xFFF], 0);
    drop(page);
    // Released: registers only again.
    p.release_bounce_buffer().unwrap();
    p.report_fatal(message);
    let (r12, r13, _, _) = m.lock().unwrap().fatal().unwrap();
    assert_eq!((r12, r13), (0, 0));
}

#[test]
fn the_hob_is_measured_as_consumed_and_the_buffer_released_before_hand_off() {
    let m = model();
    let hob = qemu_hob();
    let (p, _) = platform(&m, hob);
    let p = p.with_bounce_buffer(VecBuffer::new(2 * MIB, 0x1000));
    assert!(p.measures_acpi());
    assert_eq!(p.reserved_regions(), &[TD_HOB]);
    p.early_init().unwrap();
    assert_eq!(p.td_hob(), None, "nothing before memory_map accepted it");
    p.memory_map(None).unwrap();
    // The list through its end-of-list HOB: not the zeroes after it.
    let list = p.td_hob().unwrap();
    assert_eq!(list, &hob[..list.len()]);
    assert_eq!(&list[list.len() - 8..list.len() - 6], &[0xFF, 0xFF]);
    assert!(hob[list.len()..].iter().all(|&b| b == 0));
    assert!(m.lock().unwrap().is_shared(2 * MIB));
    p.before_handoff().unwrap();
    assert!(!m.lock().unwrap().is_shared(2 * MIB));
    assert!(p.fw_cfg_dma().is_none());
    // A second call has nothing left to release.
    p.before_handoff().unwrap();
}
