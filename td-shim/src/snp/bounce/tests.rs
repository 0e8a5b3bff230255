//! The SNP bounce buffer against the model of the hypervisor and the SNP hardware (RMP state,
//! validation), a model of the page tables' C-bit for each page of the buffer, a buffer whose
//! every firmware access is checked, and a fake fw_cfg DMA device that reaches guest memory only
//! through the address it is given and only where the model says the pages are shared.
//!
//! The rules checked on every step (a broken one is recorded and fails the test):
//! * PVALIDATE (rescind or validate) only of a page mapped with the C-bit;
//! * a page is mapped without the C-bit only once it is shared (never a private page);
//! * the firmware and the device touch the buffer only while it is shared and (firmware) mapped
//!   without the C-bit;
//! * after setup and after release, mapping and RMP state agree for every page.

extern crate std;

use super::*;
use crate::bounce::fake_device::{copy_in, copy_out, FakeFwCfg};
use crate::fw_cfg::{self, FwCfg};
use crate::snp::cpu::{PageSize, PvalidateResult};
use crate::snp::ghcb::{exit_code, Ghcb, Session};
use crate::snp::model::{Call, Inject, Model};
use crate::snp::msr_protocol::code;
use crate::snp::psc::{PageOp, PscEntry, PscError};
use crate::snp::tests::GHCB_GPA;
use std::boxed::Box;
use std::collections::BTreeSet;
use std::format;
use std::string::{String, ToString};
use std::sync::{Arc, Mutex};
use std::vec;
use std::vec::Vec;

/// Where the layout puts FW_CFG_BOUNCE, and its size.
pub(crate) const BUF: u64 = 0x1B_0000;
pub(crate) const LEN: u64 = 0x4_0000;
const PAGES: u64 = LEN / PAGE_4K;
const C_BIT: u64 = 1 << 51;

/// The model, the page tables' view of the buffer and the rules broken.
pub(crate) struct World {
    m: Mutex<Model>,
    /// Pages mapped without the C-bit (every other page is mapped with it, as the reset tables
    /// map all memory).
    unencrypted: Mutex<BTreeSet<u64>>,
    /// Page-table changes: (description, model calls made before it).
    remaps: Mutex<Vec<(String, usize)>>,
    broken: Mutex<Vec<String>>,
    fail_remap: Mutex<Option<&'static str>>,
}

impl World {
    /// A model that negotiated and registered the GHCB, RAM [0, 2 GiB), the buffer validated
    /// private (pre-validated TempMem).
    pub(crate) fn new() -> &'static World {
        let m = crate::snp::tests::ready();
        m.pre_validate(BUF, LEN);
        Box::leak(Box::new(World {
            m: Mutex::new(m),
            unencrypted: Mutex::new(BTreeSet::new()),
            remaps: Mutex::new(Vec::new()),
            broken: Mutex::new(Vec::new()),
            fail_remap: Mutex::new(None),
        }))
    }

    fn model(&self) -> std::sync::MutexGuard<'_, Model> {
        self.m.lock().unwrap()
    }

    fn break_rule(&self, what: String) {
        self.broken.lock().unwrap().push(what);
    }

    fn shared(&self, page: u64) -> bool {
        !self.model().is_private(page)
    }

    fn mapped_without_c_bit(&self, page: u64) -> bool {
        self.unencrypted.lock().unwrap().contains(&page)
    }

    /// Checks that the firmware may touch `[at, at + len)` of the buffer now.
    fn firmware_access(&self, what: &str, at: u64, len: u64) {
        let first = at & !0xFFF;
        let last = (at + len.max(1) - 1) & !0xFFF;
        for page in (first..=last).step_by(0x1000) {
            if !self.shared(page) || !self.mapped_without_c_bit(page) {
                self.break_rule(format!(
                    "firmware {what} of {page:#x}: shared {}, mapped without the C-bit {}",
                    self.shared(page),
                    self.mapped_without_c_bit(page)
                ));
            }
        }
    }

    /// Mapping and RMP state agree for every page of the buffer.
    pub(crate) fn assert_consistent(&self) {
        for page in (BUF..BUF + LEN).step_by(0x1000) {
            assert_eq!(
                self.mapped_without_c_bit(page),
                self.shared(page),
                "page {page:#x}: mapping and RMP state disagree"
            );
        }
    }

    pub(crate) fn assert_clean(&self) {
        let broken = self.broken.lock().unwrap().clone();
        assert!(broken.is_empty(), "rules broken: {broken:#?}");
        self.model().assert_clean();
    }

    fn calls(&self) -> Vec<Call> {
        self.model().calls()
    }

    fn remaps(&self) -> Vec<(String, usize)> {
        self.remaps.lock().unwrap().clone()
    }
}

impl SevCpu for World {
    fn ghcb_msr_read(&self) -> u64 {
        self.model().ghcb_msr_read()
    }
    fn ghcb_msr_write(&self, value: u64) {
        self.model().ghcb_msr_write(value)
    }
    fn vmgexit(&self, ghcb: Option<&mut Ghcb>) {
        self.model().vmgexit(ghcb)
    }
    fn pvalidate(&self, va: u64, size: PageSize, validate: bool) -> PvalidateResult {
        let pages = if size == PageSize::Size2M { 512 } else { 1 };
        for i in 0..pages {
            let page = va + i * PAGE_4K;
            if self.mapped_without_c_bit(page) {
                self.break_rule(format!(
                    "PVALIDATE({validate}) of {page:#x} mapped without the C-bit"
                ));
            }
        }
        self.model().pvalidate(va, size, validate)
    }
    fn touch_pages(&self, va: u64, pages: u64) {
        self.model().touch_pages(va, pages)
    }
}

impl RemapPages for World {
    fn remap(&self, gpa: u64, len: u64, phys_or: u64) -> Result<(), &'static str> {
        let calls = self.calls().len();
        self.remaps
            .lock()
            .unwrap()
            .push((format!("{gpa:#x}+{len:#x} or {phys_or:#x}"), calls));
        if let Some(what) = *self.fail_remap.lock().unwrap() {
            return Err(what);
        }
        for page in (gpa..gpa + len).step_by(0x1000) {
            match phys_or {
                0 => {
                    if !self.shared(page) {
                        self.break_rule(format!(
                            "the private page {page:#x} mapped without the C-bit"
                        ));
                    }
                    self.unencrypted.lock().unwrap().insert(page);
                }
                C_BIT => {
                    self.unencrypted.lock().unwrap().remove(&page);
                }
                other => self.break_rule(format!("remap with {other:#x}")),
            }
        }
        Ok(())
    }
}

/// The buffer's memory in a `Vec`; every firmware access is checked against the world.
pub(crate) struct Buffer {
    pub world: &'static World,
    pub mem: Arc<Mutex<Vec<u8>>>,
}

impl Buffer {
    pub(crate) fn new(world: &'static World) -> Self {
        Buffer {
            world,
            mem: Arc::new(Mutex::new(vec![0xAA; LEN as usize])),
        }
    }
}

impl SharedBuffer for Buffer {
    fn gpa(&self) -> u64 {
        BUF
    }
    fn size(&self) -> usize {
        LEN as usize
    }
    fn write(&mut self, offset: usize, src: &[u8]) -> bool {
        self.world
            .firmware_access("write", BUF + offset as u64, src.len() as u64);
        copy_in(&self.mem, offset, src)
    }
    fn read(&self, offset: usize, dst: &mut [u8]) -> bool {
        self.world
            .firmware_access("read", BUF + offset as u64, dst.len() as u64);
        copy_out(&self.mem, offset, dst)
    }
    fn read_u32_volatile(&self, offset: usize) -> Option<[u8; 4]> {
        let mut w = [0; 4];
        self.read(offset, &mut w).then_some(w)
    }
}

/// fw_cfg with the port and DMA interfaces, as QEMU's ([`FakeFwCfg`]): the DMA address is a
/// GPA; the device reaches the buffer's memory only where the model says the pages are shared
/// (the RMP keeps the hypervisor out of private pages). A descriptor it cannot read gets no
/// answer.
pub(crate) fn device(buf: &Buffer, files: &[(&str, Vec<u8>)]) -> FakeFwCfg<'static> {
    let world = buf.world;
    let reach = move |addr: u64, len: usize| -> Option<usize> {
        let off = usize::try_from(addr.checked_sub(BUF)?).ok()?;
        if off.checked_add(len)? > LEN as usize {
            return None;
        }
        let first = addr & !0xFFF;
        let last = (addr + len.max(1) as u64 - 1) & !0xFFF;
        (first..=last)
            .step_by(0x1000)
            .all(|p| world.shared(p))
            .then_some(off)
    };
    FakeFwCfg::new(buf.mem.clone(), Box::new(reach), files)
}

fn with_session<R>(w: &'static World, f: impl FnOnce(&mut Session<'_, World>) -> R) -> R {
    let mut g = Ghcb::new();
    let mut s = Session::new(w, &mut g, GHCB_GPA).unwrap();
    f(&mut s)
}

fn setup(w: &'static World) -> Result<SnpBounce<Buffer>, BounceError> {
    with_session(w, |s| SnpBounce::setup(w, s, C_BIT, Buffer::new(w), w))
}

/// [`setup`], and a handle on the buffer's memory for the device.
fn setup_shared(w: &'static World) -> (SnpBounce<Buffer>, Buffer) {
    let buf = Buffer::new(w);
    let handle = Buffer {
        world: w,
        mem: buf.mem.clone(),
    };
    let b = with_session(w, |s| SnpBounce::setup(w, s, C_BIT, buf, w)).unwrap();
    (b, handle)
}

fn release(w: &'static World, b: &SnpBounce<Buffer>) -> Result<Buffer, BounceError> {
    with_session(w, |s| b.release(w, s, w, false))
}

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn is_psc(c: &Call) -> bool {
    matches!(c, Call::Ghcb { exit_code: e, .. } if *e == exit_code::PSC)
}

fn entries(op: PageOp) -> Vec<u64> {
    (0..PAGES)
        .map(|i| {
            PscEntry::new(BUF + i * PAGE_4K, op, PageSize::Size4K)
                .unwrap()
                .encode(0)
        })
        .collect()
}

#[test]
fn setup_rescinds_then_shares_then_clears_the_c_bit_and_release_reverses_it() {
    let w = World::new();
    let b = setup(w).unwrap();
    let calls = w.calls();
    // 64 rescinds of the pages in order, then one page state change to shared, then the page
    // tables.
    assert_eq!(calls.len() as u64, PAGES + 1);
    for (i, c) in calls[..PAGES as usize].iter().enumerate() {
        assert!(
            matches!(c, Call::Pvalidate { va, size: PageSize::Size4K, validate: false, result }
                if *va == BUF + i as u64 * PAGE_4K && *result == PvalidateResult::CHANGED),
            "{c:?}"
        );
    }
    assert!(is_psc(&calls[PAGES as usize]));
    assert_eq!(w.model().psc_requests(), vec![entries(PageOp::Shared)]);
    assert_eq!(
        w.remaps(),
        vec![(format!("{BUF:#x}+{LEN:#x} or 0x0"), PAGES as usize + 1)],
        "the C-bit is cleared after the rescind and the page state change"
    );
    for page in (BUF..BUF + LEN).step_by(0x1000) {
        assert!(!w.model().is_private(page), "{page:#x} is shared");
    }
    w.assert_consistent();
    assert_eq!(b.shared_range(), Some((BUF, LEN)));
    assert_eq!(b.device_address(), BUF, "the GPA, without the C-bit");

    let before = w.calls().len();
    let back = release(w, &b).unwrap();
    assert_eq!(back.gpa(), BUF);
    // The C-bit first, then the page state change to private, then 64 validations.
    assert_eq!(
        w.remaps()[1],
        (format!("{BUF:#x}+{LEN:#x} or {C_BIT:#x}"), before)
    );
    let calls = w.calls()[before..].to_vec();
    assert_eq!(calls.len() as u64, 1 + PAGES);
    assert!(is_psc(&calls[0]));
    assert_eq!(w.model().psc_requests()[1], entries(PageOp::Private));
    for (i, c) in calls[1..].iter().enumerate() {
        assert!(
            matches!(c, Call::Pvalidate { va, size: PageSize::Size4K, validate: true, result }
                if *va == BUF + i as u64 * PAGE_4K && *result == PvalidateResult::CHANGED),
            "{c:?}"
        );
    }
    for page in (BUF..BUF + LEN).step_by(0x1000) {
        assert!(
            w.model().is_validated(page),
            "{page:#x} is private and validated"
        );
    }
    w.assert_consistent();
    assert_eq!(b.shared_range(), None);
    assert_eq!(release(w, &b).err(), Some(BounceError::Released));
    w.assert_clean();
}

#[test]
fn fw_cfg_reads_files_by_dma_in_chunks_of_the_buffer() {
    let w = World::new();
    let big = data(600_000);
    let (b, handle) = setup_shared(w);
    let dev = device(
        &handle,
        &[("etc/e820", data(40)), ("opt/initrd", big.clone())],
    );
    let calls_before = w.calls().len();
    let f = FwCfg::probe(&dev, Some(&b)).unwrap();
    assert!(f.has_dma());
    assert_eq!(f.read_file("opt/initrd", 1 << 20).unwrap(), big);
    let chunk = (LEN as usize - crate::bounce::DATA_OFFSET) as u32;
    let t = dev.transfers.borrow().clone();
    // The directory (one transfer), then the initrd: 262,080 + 262,080 + 75,840 bytes.
    let initrd = &t[t.len() - 3..];
    assert_eq!(initrd[0], (fw_cfg::dma_select_read(0x21), chunk, BUF + 64));
    assert_eq!(initrd[1], (fw_cfg::DMA_READ, chunk, BUF + 64));
    assert_eq!(initrd[2], (fw_cfg::DMA_READ, 600_000 - 2 * chunk, BUF + 64));
    assert!(t.iter().all(|&(_, _, a)| a & C_BIT == 0));
    assert_eq!(f.read_file("etc/e820", 1 << 20).unwrap(), data(40));
    // The fake device's port I/O is not the model's: nothing reached the hypervisor.
    assert_eq!(w.calls().len(), calls_before);
    w.assert_consistent();

    // After the release, DMA fails without touching the buffer.
    release(w, &b).unwrap();
    let before = dev.transfers.borrow().len();
    assert_eq!(
        f.read_file("etc/e820", 100),
        Err(FwCfgError::DmaFailed { key: 0x20 })
    );
    assert_eq!(dev.transfers.borrow().len(), before);
    w.assert_clean();
}

#[test]
fn a_hypervisor_that_keeps_the_buffer_private_gets_no_dma_through() {
    // The PSC to shared is acknowledged but not done: the pages stay the guest's, and the
    // device (the hypervisor's side) cannot reach them. The descriptor is never answered, so
    // the read times out: it fails closed, it never returns data.
    let w = World::new();
    w.model().inject(Inject::PscLie);
    let (b, handle) = setup_shared(w);
    let dev = device(&handle, &[("etc/e820", data(40))]);
    let mut dst = [0u8; 8];
    assert_eq!(
        b.read(&dev, 0x20, &mut dst),
        Err(FwCfgError::DmaTimeout { key: 0x20 })
    );
    assert!(dev.transfers.borrow().is_empty(), "no descriptor was read");
}

#[test]
fn partial_page_state_changes_are_resent_until_done() {
    let w = World::new();
    w.model().inject(Inject::PscEntries(10));
    w.model().inject(Inject::PscEntries(0));
    w.model().inject(Inject::PscEntries(30));
    let b = setup(w).unwrap();
    assert_eq!(w.calls().iter().filter(|c| is_psc(c)).count(), 4);
    w.assert_consistent();
    w.model().inject(Inject::PscEntries(63));
    release(w, &b).unwrap();
    w.assert_consistent();
    for page in (BUF..BUF + LEN).step_by(0x1000) {
        assert!(w.model().is_validated(page));
    }
    w.assert_clean();
}

#[test]
fn a_page_state_change_failure_midway_stops_before_the_page_tables() {
    let w = World::new();
    w.model().inject(Inject::PscEntries(20));
    w.model().inject(Inject::PscError(7));
    let e = setup(w).err().unwrap();
    assert!(
        matches!(
            e,
            BounceError::ToShared(ValidateError::Psc {
                gpa: BUF,
                error: PscError::Hypervisor { code: 7, .. }
            })
        ),
        "{e:?}"
    );
    assert!(e
        .to_string()
        .starts_with("snp: fw_cfg bounce buffer to shared"));
    assert!(w.remaps().is_empty(), "nothing is mapped without the C-bit");
    // Half the pages were made shared, all rescinded: mapped with the C-bit, none usable. The
    // platform ends here on the fatal path.
    assert!(!w.model().is_private(BUF) && w.model().is_private(BUF + LEN - PAGE_4K));
    assert!(!w.model().is_validated(BUF + LEN - PAGE_4K));
    w.assert_clean();

    // The same on the way back: after the C-bit is set, the PSC to private fails; no
    // validation is attempted.
    let w = World::new();
    let b = setup(w).unwrap();
    let before = w.calls().len();
    w.model().inject(Inject::PscError(9));
    assert!(matches!(
        release(w, &b),
        Err(BounceError::ToPrivate(ValidateError::Psc { .. }))
    ));
    assert!(w.calls()[before..].iter().all(is_psc));
    assert_eq!(b.shared_range(), None, "closed: no DMA afterwards");
    assert_eq!(release(w, &b).err(), Some(BounceError::Released));
    w.assert_clean();
}

#[test]
fn pvalidate_failures_are_fatal_errors_naming_the_page() {
    // A page that was not validated (CF = 1 on the rescind): nothing is shared.
    let w = World::new();
    w.model()
        .inject(Inject::Pvalidate(PvalidateResult { eax: 0, cf: true }));
    assert_eq!(
        setup(w).err(),
        Some(BounceError::ToShared(ValidateError::AlreadyValidated {
            va: BUF,
            size: PageSize::Size4K
        }))
    );
    assert!(w.calls().iter().all(|c| !is_psc(c)));
    assert!(w.remaps().is_empty());

    // CF = 1 on the validation after the PSC to private: the hypervisor did not make the page
    // private as it said.
    let w = World::new();
    let b = setup(w).unwrap();
    w.model()
        .inject(Inject::Pvalidate(PvalidateResult { eax: 0, cf: true }));
    assert_eq!(
        release(w, &b).err(),
        Some(BounceError::ToPrivate(ValidateError::AlreadyValidated {
            va: BUF,
            size: PageSize::Size4K
        }))
    );
    // A lying hypervisor: the PSC to private reports success and changes nothing; PVALIDATE
    // of the still shared page fails (the model records it as a violation, as the hardware
    // would fault).
    let w = World::new();
    let b = setup(w).unwrap();
    w.model().inject(Inject::PscLie);
    assert!(matches!(
        release(w, &b),
        Err(BounceError::ToPrivate(ValidateError::Pvalidate {
            va: BUF,
            ..
        }))
    ));
}

#[test]
fn page_table_failures_are_reported() {
    let w = World::new();
    *w.fail_remap.lock().unwrap() = Some("no spare table");
    assert_eq!(
        setup(w).err(),
        Some(BounceError::PageTables {
            what: "no spare table",
            to_shared: true
        })
    );
    let w = World::new();
    let b = setup(w).unwrap();
    *w.fail_remap.lock().unwrap() = Some("no spare table");
    let before = w.calls().len();
    assert_eq!(
        release(w, &b).err(),
        Some(BounceError::PageTables {
            what: "no spare table",
            to_shared: false
        })
    );
    assert_eq!(w.calls().len(), before, "no PSC with the mapping unchanged");
    w.assert_clean();
}

#[test]
fn unusable_buffers_are_refused_before_any_change() {
    struct Odd(u64, usize);
    impl SharedBuffer for Odd {
        fn gpa(&self) -> u64 {
            self.0
        }
        fn size(&self) -> usize {
            self.1
        }
        fn write(&mut self, _: usize, _: &[u8]) -> bool {
            false
        }
        fn read(&self, _: usize, _: &mut [u8]) -> bool {
            false
        }
        fn read_u32_volatile(&self, _: usize) -> Option<[u8; 4]> {
            None
        }
    }
    for (gpa, size, c_bit) in [
        (BUF + 0x800, 0x1000usize, C_BIT),
        (BUF, 0x1800, C_BIT),
        (BUF, 0, C_BIT),
        (0x1F_F000, 0x2000, C_BIT),
        (u64::MAX - 0xFFF, 0x1000, C_BIT),
        (BUF, 0x1000, 1 << 20),
        (BUF, 0x1000, 3 << 50),
    ] {
        let w = World::new();
        let r = with_session(w, |s| SnpBounce::setup(w, s, c_bit, Odd(gpa, size), w));
        assert!(
            matches!(r, Err(BounceError::Buffer { .. })),
            "{gpa:#x}+{size:#x} c-bit {c_bit:#x}"
        );
        assert!(w.calls().is_empty() && w.remaps().is_empty());
    }
}

#[test]
fn the_msr_protocol_is_not_used_for_the_buffer() {
    let w = World::new();
    let b = setup(w).unwrap();
    release(w, &b).unwrap();
    assert!(!w
        .calls()
        .iter()
        .any(|c| matches!(c, Call::Msr { request, .. } if request & 0xFFF == code::PSC_REQ)));
}
