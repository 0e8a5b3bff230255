//! The bounce buffer against the model and a fake fw_cfg DMA device that reads and writes the
//! buffer's memory only through the address it is given, and only while the model says the
//! pages are shared.

extern crate std;

use super::*;
use crate::bounce::fake_device::{copy_in, copy_out, FakeFwCfg};
use crate::fw_cfg::FwCfg;
use crate::tdx::calls::model::{Inject, Model};
use crate::tdx::calls::{leaf, vmcall};
use std::boxed::Box;
use std::string::{String, ToString};
use std::sync::{Arc, Mutex};
use std::vec;
use std::vec::Vec;

const BUF: u64 = 0x20_0000;
const W48: GpaWidth = GpaWidth::W48;
const SHARED: u64 = 1 << 47;

/// A buffer in a `Vec`, at a pretend GPA.
pub(crate) struct VecBuffer {
    pub gpa: u64,
    pub mem: Arc<Mutex<Vec<u8>>>,
}

impl VecBuffer {
    pub(crate) fn new(gpa: u64, size: usize) -> Self {
        VecBuffer {
            gpa,
            mem: Arc::new(Mutex::new(vec![0; size])),
        }
    }
}

impl SharedBuffer for VecBuffer {
    fn gpa(&self) -> u64 {
        self.gpa
    }
    fn size(&self) -> usize {
        self.mem.lock().unwrap().len()
    }
    fn write(&mut self, offset: usize, src: &[u8]) -> bool {
        copy_in(&self.mem, offset, src)
    }
    fn read(&self, offset: usize, dst: &mut [u8]) -> bool {
        copy_out(&self.mem, offset, dst)
    }
    fn read_u32_volatile(&self, offset: usize) -> Option<[u8; 4]> {
        let mut w = [0; 4];
        self.read(offset, &mut w).then_some(w)
    }
}

/// Records page-table changes with the number of TDCALLs made before each.
pub(crate) struct Pages<'a> {
    pub m: Option<&'a Model>,
    pub log: Mutex<Vec<(String, usize)>>,
    pub fail: Option<&'static str>,
}

impl<'a> Pages<'a> {
    pub(crate) fn new(m: Option<&'a Model>) -> Self {
        Pages {
            m,
            log: Mutex::new(Vec::new()),
            fail: None,
        }
    }
    fn record(&self, what: String) -> Result<(), &'static str> {
        let n = self.m.map_or(0, |m| m.calls().len());
        self.log.lock().unwrap().push((what, n));
        self.fail.map_or(Ok(()), Err)
    }
    pub(crate) fn log(&self) -> Vec<(String, usize)> {
        self.log.lock().unwrap().clone()
    }
}

impl SharedPageTables for Pages<'_> {
    fn map_shared(&self, gpa: u64, len: u64, shared_bit: u64) -> Result<(), &'static str> {
        self.record(std::format!("shared {gpa:#x}+{len:#x} bit {shared_bit:#x}"))
    }
    fn map_private(&self, gpa: u64, len: u64) -> Result<(), &'static str> {
        self.record(std::format!("private {gpa:#x}+{len:#x}"))
    }
}

/// fw_cfg with the port and DMA interfaces ([`FakeFwCfg`]). It reaches guest memory only at
/// `[gpa, gpa + len)` addressed as `expect_bit | gpa`, and only pages the model says are shared.
pub(crate) fn device<'a>(
    buf: &VecBuffer,
    expect_bit: u64,
    model: Option<&'a Model>,
    files: &[(&str, Vec<u8>)],
) -> FakeFwCfg<'a> {
    let (gpa, len) = (buf.gpa, buf.mem.lock().unwrap().len());
    let reach = move |addr: u64, n: usize| -> Option<usize> {
        if addr & SHARED != expect_bit {
            return None;
        }
        let off = usize::try_from((addr & !SHARED).checked_sub(gpa)?).ok()?;
        if off.checked_add(n)? > len {
            return None;
        }
        let first = (gpa + off as u64) & !0xFFF;
        let last = (gpa + (off + n.max(1) - 1) as u64) & !0xFFF;
        let shared = |p: u64| model.is_none_or(|m| m.is_shared(p));
        (first..=last).step_by(0x1000).all(shared).then_some(off)
    };
    FakeFwCfg::new(buf.mem.clone(), Box::new(reach), files)
}

/// A model with the buffer's pages as accepted RAM.
fn model(len: u64) -> Model {
    let m = Model::new();
    m.add_ram(BUF, 0x20_0000);
    for p in (BUF..BUF + len).step_by(0x1000) {
        m.pre_accept_4k(p);
    }
    m
}

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

#[test]
fn shared_alias_sets_the_shared_bit_below_it_only() {
    assert_eq!(shared_alias(0x1000, W48), Some(0x8000_0000_1000));
    assert_eq!(
        shared_alias(0x1000, GpaWidth::W52),
        Some((1 << 51) | 0x1000)
    );
    assert_eq!(shared_alias(1 << 47, W48), None);
    assert_eq!(shared_alias(u64::MAX, GpaWidth::W52), None);
}

#[test]
fn setup_maps_the_alias_before_map_gpa_and_release_reverses_it() {
    let m = model(0x2000);
    let pages = Pages::new(Some(&m));
    let buf = VecBuffer::new(BUF, 0x2000);
    let dma = BounceDma::setup(&m, W48, buf, DeviceAddressing::Gpa, &pages).unwrap();
    assert_eq!(m.sequence(), vec![(leaf::VP_VMCALL, Some(vmcall::MAP_GPA))]);
    let map = m.calls()[0].input;
    assert_eq!((map.r12, map.r13), (BUF | SHARED, 0x2000));
    assert_eq!(
        pages.log(),
        vec![(std::format!("shared {BUF:#x}+0x2000 bit {SHARED:#x}"), 0)],
        "page tables first, then MapGPA"
    );
    assert!(m.is_shared(BUF) && m.is_shared(BUF + 0x1000));
    assert!(!m.is_accepted(BUF));
    assert_eq!(dma.shared_range(), Some((BUF, 0x2000)));
    assert_eq!(dma.device_address(), BUF);

    let back = dma.release(&m, &pages).unwrap();
    assert_eq!(back.gpa, BUF);
    // MapGPA to private, two 4 KiB accepts, then the page tables.
    let seq = m.sequence();
    assert_eq!(seq.len(), 4);
    assert_eq!(seq[1], (leaf::VP_VMCALL, Some(vmcall::MAP_GPA)));
    assert_eq!(m.calls()[1].input.r12, BUF);
    assert_eq!(&seq[2..], &[(leaf::MEM_PAGE_ACCEPT, None); 2]);
    assert_eq!(pages.log()[1], (std::format!("private {BUF:#x}+0x2000"), 4));
    assert!(!m.is_shared(BUF) && m.is_accepted(BUF) && m.is_accepted(BUF + 0x1000));
    assert_eq!(dma.shared_range(), None);
    assert_eq!(dma.release(&m, &pages).err(), Some(BounceError::Released));
    m.assert_clean();
}

#[test]
fn reads_go_through_the_shared_buffer_in_chunks() {
    let m = model(0x1000);
    let pages = Pages::new(Some(&m));
    let buf = VecBuffer::new(BUF, 0x1000);
    let dev = device(&buf, 0, Some(&m), &[("etc/big", data(10_000))]);
    let dma = BounceDma::setup(&m, W48, buf, DeviceAddressing::Gpa, &pages).unwrap();
    let mut dst = vec![0u8; 10_000];
    dma.read(&dev, 0x20, &mut dst).unwrap();
    assert_eq!(dst, data(10_000));
    let chunk = (0x1000 - DATA_OFFSET) as u32;
    let t = dev.transfers.borrow().clone();
    assert_eq!(t.len(), 3);
    assert_eq!(t[0], (fw_cfg::dma_select_read(0x20), chunk, BUF + 64));
    assert_eq!(t[1], (fw_cfg::DMA_READ, chunk, BUF + 64));
    assert_eq!(t[2], (fw_cfg::DMA_READ, 10_000 - 2 * chunk, BUF + 64));
    // Nothing but MapGPA went to the TDX module: the port I/O here is the fake device's.
    assert_eq!(m.calls().len(), 1);
    m.assert_clean();
}

#[test]
fn fw_cfg_probes_and_reads_files_over_the_bounce_buffer() {
    let m = model(0x2000);
    let pages = Pages::new(Some(&m));
    let buf = VecBuffer::new(BUF, 0x2000);
    let dev = device(
        &buf,
        0,
        Some(&m),
        &[("etc/e820", data(40)), ("opt/x", data(9000))],
    );
    let dma = BounceDma::setup(&m, W48, buf, DeviceAddressing::Gpa, &pages).unwrap();
    let f = FwCfg::probe(&dev, Some(&dma)).unwrap();
    assert!(f.has_dma());
    assert_eq!(f.read_file("opt/x", 1 << 20).unwrap(), data(9000));
    assert_eq!(f.read_file("etc/e820", 1 << 20).unwrap(), data(40));
    // After the release, DMA fails instead of touching the buffer.
    dma.release(&m, &pages).unwrap();
    let before = dev.transfers.borrow().len();
    assert_eq!(
        f.read_file("etc/e820", 100),
        Err(FwCfgError::DmaFailed { key: 0x20 })
    );
    assert_eq!(dev.transfers.borrow().len(), before);
    m.assert_clean();
}

#[test]
fn the_alias_addressing_gives_the_device_the_shared_bit() {
    let m = model(0x1000);
    let pages = Pages::new(Some(&m));
    let buf = VecBuffer::new(BUF, 0x1000);
    let dev = device(&buf, SHARED, Some(&m), &[("a", data(100))]);
    let dma = BounceDma::setup(&m, W48, buf, DeviceAddressing::SharedAlias, &pages).unwrap();
    assert_eq!(dma.device_address(), BUF | SHARED);
    let mut dst = vec![0; 100];
    dma.read(&dev, 0x20, &mut dst).unwrap();
    assert_eq!(dst, data(100));
    assert_eq!(dev.transfers.borrow()[0].2, BUF | SHARED | 64);
}

#[test]
fn device_errors_and_unreachable_descriptors_fail_the_read() {
    let m = model(0x1000);
    let pages = Pages::new(Some(&m));
    let buf = VecBuffer::new(BUF, 0x1000);
    let dev = device(&buf, 0, Some(&m), &[("a", data(100))]);
    let mem = buf.mem.clone();
    let dma = BounceDma::setup(&m, W48, buf, DeviceAddressing::Gpa, &pages).unwrap();
    *dev.fail_next.borrow_mut() = true;
    let mut dst = vec![0; 100];
    assert_eq!(
        dma.read(&dev, 0x20, &mut dst),
        Err(FwCfgError::DmaFailed { key: 0x20 })
    );
    // A device that expects the alias never sees a descriptor: the control word stays busy and
    // the wait gives up after fw_cfg::DMA_POLL_LIMIT polls.
    let dev = device(
        &VecBuffer {
            gpa: BUF,
            mem: mem.clone(),
        },
        SHARED,
        Some(&m),
        &[],
    );
    let mut small = vec![0; 8];
    assert_eq!(
        dma.read(&dev, 0x20, &mut small),
        Err(FwCfgError::DmaTimeout { key: 0x20 })
    );
    assert!(dev.transfers.borrow().is_empty());
}

#[test]
fn unusable_buffers_are_refused_before_any_change() {
    for (gpa, size) in [
        (BUF + 0x800, 0x1000usize),
        (BUF, 0x1800),
        (BUF, 0),
        ((1 << 47) - 0x1000, 0x2000),
        (1 << 47, 0x1000),
    ] {
        let m = Model::new();
        let pages = Pages::new(Some(&m));
        let r = BounceDma::setup(
            &m,
            W48,
            VecBuffer::new(gpa, size),
            DeviceAddressing::Gpa,
            &pages,
        );
        assert!(
            matches!(r, Err(BounceError::Buffer { .. })),
            "{gpa:#x}+{size:#x}"
        );
        assert!(m.calls().is_empty() && pages.log().is_empty());
    }
}

#[test]
fn setup_and_release_failures_are_reported() {
    // Page tables refuse: no MapGPA.
    let m = model(0x1000);
    let mut pages = Pages::new(Some(&m));
    pages.fail = Some("no 4 KiB tables");
    let r = BounceDma::setup(
        &m,
        W48,
        VecBuffer::new(BUF, 0x1000),
        DeviceAddressing::Gpa,
        &pages,
    );
    assert_eq!(
        r.err(),
        Some(BounceError::PageTables {
            what: "no 4 KiB tables",
            gpa: BUF
        })
    );
    assert!(m.calls().is_empty());

    // The VMM does not support MapGPA (pitfall 13).
    let m = model(0x1000);
    let pages = Pages::new(Some(&m));
    m.inject(
        leaf::VP_VMCALL,
        Some(vmcall::MAP_GPA),
        Inject::Status(vmcall::SUBFUNC_UNSUPPORTED),
    );
    let e = BounceDma::setup(
        &m,
        W48,
        VecBuffer::new(BUF, 0x1000),
        DeviceAddressing::Gpa,
        &pages,
    )
    .err()
    .unwrap();
    assert!(matches!(
        e,
        BounceError::MapGpa {
            to_shared: true,
            ..
        }
    ));
    assert!(e.to_string().contains("converting it to shared failed"));

    // Release: MapGPA back fails: no accept, no page-table change.
    let m = model(0x1000);
    let pages = Pages::new(Some(&m));
    let dma = BounceDma::setup(
        &m,
        W48,
        VecBuffer::new(BUF, 0x1000),
        DeviceAddressing::Gpa,
        &pages,
    )
    .unwrap();
    m.inject(
        leaf::VP_VMCALL,
        Some(vmcall::MAP_GPA),
        Inject::Status(vmcall::INVALID_OPERAND),
    );
    assert!(matches!(
        dma.release(&m, &pages),
        Err(BounceError::MapGpa {
            to_shared: false,
            ..
        })
    ));
    assert_eq!(pages.log().len(), 1);
    assert_eq!(m.calls().len(), 2);
    m.assert_clean();
}
