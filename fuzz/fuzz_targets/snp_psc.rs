//! SEV-SNP page state change through the GHCB, against a hostile hypervisor:
//! `td_shim::snp::psc::check_response` on a raw response, and `page_state_change` with a
//! hypervisor whose every answer comes from the input.
//!
//! Input: 4 bytes of progress before (`cur_entry`, `cur_page`), then a response buffer (header
//! and entries). The request is rebuilt from the response's own entries (sanitised), so most
//! inputs pass the entry checks and reach the progress logic. The same bytes then drive a
//! hypervisor that, per VMGEXIT, consumes 12 bytes: new `cur_entry` (2), an entry index (1) and
//! its new `cur_page` (2), SW_EXITINFO1 (1, as 0/1/2/other), SW_EXITINFO2 (1, as 0 or the byte),
//! a byte of header reserved bits, 4 bytes written over a quadword of the buffer if the first
//! of them is odd. When the input runs out it reports every entry done.
//! Checked: a partial response never goes backwards and names an entry in range; a completed
//! change returned only after a response with `cur_entry > end_entry`; the loop ends (each
//! call either progresses or counts against the stall bound).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;
use td_shim::snp::cpu::{PageSize, PvalidateResult, SevCpu};
use td_shim::snp::ghcb::{Field, Ghcb, Session};
use td_shim::snp::psc::{
    check_response, page_state_change, read_entry, Header, PageOp, Progress, PscEntry, RawEntry,
    Response, HEADER_SIZE, MAX_ENTRIES, MAX_STALLS,
};

const GHCB_GPA: u64 = 0x80_0000;

struct Hostile<'a> {
    input: RefCell<&'a [u8]>,
    msr: RefCell<u64>,
    calls: RefCell<u32>,
    last_done: RefCell<bool>,
}

impl SevCpu for Hostile<'_> {
    fn ghcb_msr_read(&self) -> u64 {
        *self.msr.borrow()
    }
    fn ghcb_msr_write(&self, v: u64) {
        *self.msr.borrow_mut() = v;
    }
    fn vmgexit(&self, ghcb: Option<&mut Ghcb>) {
        let g = ghcb.expect("PSC uses the GHCB page");
        assert_eq!(*self.msr.borrow(), GHCB_GPA);
        *self.calls.borrow_mut() += 1;
        let mut input = self.input.borrow_mut();
        let buf = g.shared_buffer_mut();
        let end = Header::read(buf).unwrap().end_entry;
        if input.len() < 12 {
            buf[..2].copy_from_slice(&(end + 1).to_le_bytes());
            g.set(Field::SwExitInfo1, 0);
            g.set(Field::SwExitInfo2, 0);
            *self.last_done.borrow_mut() = true;
            return;
        }
        let (c, rest) = input.split_at(12);
        *input = rest;
        buf[..2].copy_from_slice(&c[0..2]);
        let i = usize::from(c[2]) % MAX_ENTRIES;
        let at = HEADER_SIZE + 8 * i;
        if let Some(q) = buf.get_mut(at..at + 2) {
            let old = u16::from_le_bytes([q[0], q[1]]);
            let v = (old & 0xF000) | (u16::from_le_bytes([c[3], c[4]]) & 0xFFF);
            q.copy_from_slice(&v.to_le_bytes());
        }
        buf[4] = c[7];
        if c[8] & 1 == 1 {
            let at = usize::from(c[9]) * 8 % 2032;
            buf[at..at + 2].copy_from_slice(&c[10..12]);
        }
        // What the guest will read: the header after every change above.
        let done = Header::read(buf).unwrap().cur_entry > end;
        *self.last_done.borrow_mut() = done;
        let info1 = match c[5] % 4 {
            0 | 3 => 0,
            1 => 1,
            _ => 2,
        };
        g.set(Field::SwExitInfo1, info1);
        g.set(
            Field::SwExitInfo2,
            if c[6] % 2 == 0 { 0 } else { u64::from(c[6]) },
        );
    }
    fn pvalidate(&self, _: u64, _: PageSize, _: bool) -> PvalidateResult {
        unreachable!("a page state change does not validate")
    }
    fn touch_pages(&self, _: u64, _: u64) {
        unreachable!("a page state change does not touch pages")
    }
}

fn sanitised(raw: u64) -> PscEntry {
    let r = RawEntry::decode(raw);
    let op = PageOp::from_code(u64::from(r.op)).unwrap_or(PageOp::Private);
    let (size, gfn) = if r.size_2m {
        (PageSize::Size2M, r.gfn & !511)
    } else {
        (PageSize::Size4K, r.gfn)
    };
    PscEntry::new(gfn << 12, op, size).unwrap()
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 + HEADER_SIZE + 8 {
        return;
    }
    let before = Progress {
        cur_entry: u16::from_le_bytes([data[0], data[1]]),
        cur_page: u16::from_le_bytes([data[2], data[3]]),
    };
    let buf = &data[4..];
    let h = Header::read(buf).unwrap();
    let n = (usize::from(h.end_entry) + 1)
        .min(MAX_ENTRIES)
        .min((buf.len() - HEADER_SIZE) / 8)
        .max(1);
    let sent: Vec<PscEntry> = (0..n)
        .map(|i| sanitised(read_entry(buf, i).unwrap()))
        .collect();
    match check_response(&sent, before, buf) {
        Ok(Response::Done) => assert!(h.cur_entry > h.end_entry),
        Ok(Response::Partial(p)) => {
            assert!(p >= before);
            assert!(p.cur_entry <= h.end_entry && usize::from(p.cur_entry) < n);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }

    let hv = Hostile {
        input: RefCell::new(&data[4..]),
        msr: RefCell::new(0),
        calls: RefCell::new(0),
        last_done: RefCell::new(false),
    };
    let mut g = Ghcb::new();
    let mut s = Session::new(&hv, &mut g, GHCB_GPA).unwrap();
    let r = page_state_change(&mut s, &sent);
    let calls = *hv.calls.borrow();
    if let Ok(stats) = r {
        assert!(
            *hv.last_done.borrow(),
            "done without the hypervisor saying so"
        );
        assert_eq!(stats.calls, calls);
    }
    // Progress is bounded by 253 entries × 513 page counts, stalls by MAX_STALLS each.
    assert!(calls <= (MAX_ENTRIES as u32 * 513 + 1) * MAX_STALLS);
});
