//! Page state change through the GHCB: the buffer, every response check, partial processing.

extern crate std;

use super::super::cpu::PageSize;
use super::super::ghcb::{exit_code, GhcbError};
use super::super::model::Inject;
use super::super::psc::*;
use super::{ready, with_session, MIB};
use proptest::prelude::*;
use std::vec::Vec;

fn e4k(gpa: u64) -> PscEntry {
    PscEntry::new(gpa, PageOp::Private, PageSize::Size4K).unwrap()
}

fn e2m(gpa: u64) -> PscEntry {
    PscEntry::new(gpa, PageOp::Private, PageSize::Size2M).unwrap()
}

fn request(entries: &[PscEntry]) -> Vec<u8> {
    let mut b = std::vec![0u8; 2032];
    write_request(&mut b, entries).unwrap();
    b
}

fn set_entry(b: &mut [u8], i: usize, v: u64) {
    b[8 + 8 * i..16 + 8 * i].copy_from_slice(&v.to_le_bytes());
}

fn set_cur(b: &mut [u8], cur: u16) {
    b[..2].copy_from_slice(&cur.to_le_bytes());
}

#[test]
fn entries_are_encoded_as_linux_lays_them_out() {
    let e = PscEntry::new(0x1234_5000, PageOp::Shared, PageSize::Size4K).unwrap();
    assert_eq!(e.encode(0), 0x0020_0000_1234_5000);
    assert_eq!(e.encode(1), 0x0020_0000_1234_5001);
    let e = e2m(0x4020_0000);
    assert_eq!(e.encode(0x1FF), 0x0110_0000_4020_01FF);
    assert_eq!(
        RawEntry::decode(e.encode(3) | 0x80 << 56),
        RawEntry {
            cur_page: 3,
            gfn: 0x40200,
            op: 1,
            size_2m: true,
            reserved: 0x40
        }
    );
    assert!(PscEntry::new(0x1000, PageOp::Private, PageSize::Size2M).is_err());
    assert!(PscEntry::new(0x800, PageOp::Private, PageSize::Size4K).is_err());
    assert!(PscEntry::new(1 << 52, PageOp::Private, PageSize::Size4K).is_err());
    assert_eq!(PageOp::from_code(2), Some(PageOp::Shared));
    assert_eq!(PageOp::from_code(3), None);
}

#[test]
fn the_request_header_names_the_last_entry() {
    let b = request(&[e4k(0x1000), e4k(0x2000), e2m(0x20_0000)]);
    assert_eq!(
        Header::read(&b),
        Some(Header {
            cur_entry: 0,
            end_entry: 2,
            reserved: 0
        })
    );
    assert_eq!(read_entry(&b, 2), Some(e2m(0x20_0000).encode(0)));
    let mut small = [0u8; 15];
    assert!(write_request(&mut small, &[e4k(0), e4k(0x1000)]).is_err());
    assert!(write_request(&mut [0u8; 2032], &[]).is_err());
    let many: Vec<PscEntry> = (0..254).map(|i| e4k(i * 0x1000)).collect();
    assert!(write_request(&mut [0u8; 4096], &many).is_err());
    assert!(write_request(&mut [0u8; 2032], &many[..253]).is_ok());
}

#[test]
fn responses_are_checked() {
    let sent = [e4k(0x1000), e2m(0x20_0000), e4k(0x3000)];
    let fresh = request(&sent);
    let p0 = Progress::default();

    // Nothing done yet, then partial progress inside the 2 MiB entry, then done.
    assert_eq!(check_response(&sent, p0, &fresh), Ok(Response::Partial(p0)));
    let mut b = fresh.clone();
    set_cur(&mut b, 1);
    set_entry(&mut b, 0, sent[0].encode(1));
    set_entry(&mut b, 1, sent[1].encode(100));
    let p = Progress {
        cur_entry: 1,
        cur_page: 100,
    };
    assert_eq!(check_response(&sent, p0, &b), Ok(Response::Partial(p)));
    let mut done = b.clone();
    set_cur(&mut done, 3);
    assert_eq!(check_response(&sent, p, &done), Ok(Response::Done));

    // Backwards: fewer pages of the same entry, or an earlier entry.
    let mut back = b.clone();
    set_entry(&mut back, 1, sent[1].encode(99));
    assert_eq!(
        check_response(&sent, p, &back),
        Err(PscError::Backwards {
            before: p,
            after: Progress {
                cur_entry: 1,
                cur_page: 99
            }
        })
    );
    let mut back = fresh.clone();
    set_cur(&mut back, 0);
    assert!(matches!(
        check_response(&sent, p, &back),
        Err(PscError::Backwards { .. })
    ));

    // Reserved header bits; end_entry changed (shrunk or grown).
    let mut r = fresh.clone();
    r[4] = 1;
    assert_eq!(
        check_response(&sent, p0, &r),
        Err(PscError::HeaderReserved { value: 1 })
    );
    for end in [1u16, 3] {
        let mut r = fresh.clone();
        r[2..4].copy_from_slice(&end.to_le_bytes());
        assert_eq!(
            check_response(&sent, p0, &r),
            Err(PscError::EndChanged { sent: 2, got: end })
        );
    }

    // An entry's GFN, operation, size or reserved bits changed.
    for tampered in [
        e4k(0x9000).encode(0),
        PscEntry::new(0x1000, PageOp::Shared, PageSize::Size4K)
            .unwrap()
            .encode(0),
        sent[0].encode(0) | 1 << 56,
        sent[0].encode(0) | 1 << 60,
    ] {
        let mut r = fresh.clone();
        set_entry(&mut r, 0, tampered);
        assert_eq!(
            check_response(&sent, p0, &r),
            Err(PscError::EntryChanged {
                index: 0,
                sent: sent[0].encode(0),
                got: tampered
            })
        );
    }

    // cur_page beyond the entry's pages.
    let mut r = fresh.clone();
    set_entry(&mut r, 0, sent[0].encode(2));
    assert_eq!(
        check_response(&sent, p0, &r),
        Err(PscError::CurPage {
            index: 0,
            cur_page: 2
        })
    );
    let mut r = fresh.clone();
    set_entry(&mut r, 1, sent[1].encode(513));
    assert!(matches!(
        check_response(&sent, p0, &r),
        Err(PscError::CurPage { index: 1, .. })
    ));

    // Truncated buffers, bad requests.
    assert!(matches!(
        check_response(&sent, p0, &fresh[..20]),
        Err(PscError::Truncated { .. })
    ));
    assert!(matches!(
        check_response(&sent, p0, &fresh[..4]),
        Err(PscError::Truncated { .. })
    ));
    assert!(check_response(&[], p0, &fresh).is_err());
}

#[test]
fn a_change_runs_against_the_model() {
    let m = ready();
    let entries = [e4k(0x1000), e2m(0x20_0000), e4k(0x40_0000)];
    let stats = with_session(&m, |s| page_state_change(s, &entries)).unwrap();
    assert_eq!(
        stats,
        PscStats {
            calls: 1,
            stalls: 0
        }
    );
    assert!(m.is_private(0x1000) && m.is_private(0x3F_F000) && m.is_private(0x40_0000));
    assert!(!m.is_private(0x2000) && !m.is_private(0x40_1000));
    assert_eq!(
        m.psc_requests(),
        [entries.iter().map(|e| e.encode(0)).collect::<Vec<_>>()]
    );
    m.assert_clean();
}

#[test]
fn partial_processing_is_resumed() {
    // One entry per call.
    let m = ready();
    m.inject(Inject::PscEntries(1));
    m.inject(Inject::PscEntries(1));
    let entries = [e4k(0x1000), e4k(0x2000), e4k(0x3000)];
    let stats = with_session(&m, |s| page_state_change(s, &entries)).unwrap();
    assert_eq!(
        stats,
        PscStats {
            calls: 3,
            stalls: 0
        }
    );
    assert!(m.is_private(0x3000));
    m.assert_clean();

    // Part of a 2 MiB entry, then the rest.
    let m = ready();
    m.inject(Inject::PscPages(100));
    m.inject(Inject::PscPages(300));
    let entries = [e2m(4 * MIB), e4k(0x1000)];
    let stats = with_session(&m, |s| page_state_change(s, &entries)).unwrap();
    assert_eq!(stats.calls, 3);
    assert!(m.is_private(4 * MIB + 511 * 0x1000) && m.is_private(0x1000));
    m.assert_clean();
}

#[test]
fn stalls_are_bounded() {
    let m = ready();
    for _ in 0..MAX_STALLS - 1 {
        m.inject(Inject::PscEntries(0));
    }
    let stats = with_session(&m, |s| page_state_change(s, &[e4k(0x1000)])).unwrap();
    assert_eq!(
        stats,
        PscStats {
            calls: MAX_STALLS,
            stalls: MAX_STALLS - 1
        }
    );
    m.assert_clean();

    let m = ready();
    for _ in 0..MAX_STALLS {
        m.inject(Inject::PscEntries(0));
    }
    assert_eq!(
        with_session(&m, |s| page_state_change(s, &[e4k(0x1000)])),
        Err(PscError::Stalled {
            at: Progress::default()
        })
    );
    m.assert_clean();
}

#[test]
fn hypervisor_errors_and_tampering_are_refused() {
    let m = ready();
    m.inject(Inject::PscError(0x1_0000_0010));
    assert_eq!(
        with_session(&m, |s| page_state_change(s, &[e4k(0x1000)])),
        Err(PscError::Hypervisor {
            code: 0x1_0000_0010,
            at: Progress::default()
        })
    );
    m.inject(Inject::ExitInfo(2, 5));
    assert_eq!(
        with_session(&m, |s| page_state_change(s, &[e4k(0x1000)])),
        Err(PscError::Ghcb(GhcbError::Hypervisor {
            exit_code: exit_code::PSC,
            exit_info_1: 2,
            exit_info_2: 5
        }))
    );
    // The hypervisor rewrites an entry, or the header's reserved word.
    m.inject(Inject::PscRewrite {
        at: 8,
        value: e4k(0x5000).encode(1),
    });
    assert!(matches!(
        with_session(&m, |s| page_state_change(s, &[e4k(0x1000)])),
        Err(PscError::EntryChanged { index: 0, .. })
    ));
    m.inject(Inject::PscRewrite {
        at: 0,
        value: 0x0000_0001_0000_0001,
    });
    assert!(matches!(
        with_session(&m, |s| page_state_change(s, &[e4k(0x1000)])),
        Err(PscError::HeaderReserved { value: 1 })
    ));
    m.assert_clean();
}

#[test]
fn the_model_checks_the_buffer() {
    let m = ready();
    // An operation the protocol does not have, written by hand.
    let r = with_session(&m, |s| {
        let scratch = s.shared_buffer_gpa();
        let g = s.begin();
        write_request(g.shared_buffer_mut(), &[e4k(0x1000)]).unwrap();
        g.shared_buffer_mut()[8..16].copy_from_slice(&(0x3u64 << 52 | 0x1000).to_le_bytes());
        g.set(super::super::ghcb::Field::SwScratch, scratch);
        s.call(exit_code::PSC, 0, 0)
    });
    assert!(
        r.is_ok(),
        "the call itself succeeds; SW_EXITINFO2 carries the error"
    );
    assert_eq!(m.violations().len(), 1, "{:?}", m.violations());
}

proptest! {
    #[test]
    fn arbitrary_responses_never_panic(
        n in 1usize..=8,
        bytes in proptest::collection::vec(any::<u8>(), 0..80),
        before in any::<(u16, u16)>(),
    ) {
        let sent: Vec<PscEntry> = (0..n as u64).map(|i| e2m(i * 2 * MIB)).collect();
        let before = Progress { cur_entry: before.0 % 9, cur_page: before.1 % 600 };
        if let Ok(Response::Partial(p)) = check_response(&sent, before, &bytes) {
            prop_assert!(p >= before);
            prop_assert!(usize::from(p.cur_entry) < n && p.cur_page <= 512);
        }
    }
}
