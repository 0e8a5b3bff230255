//! SNP page state change (PSC) through the GHCB: the hypervisor updates the RMP so pages become
//! guest-owned private pages or shared pages. (One 4 KiB page at a time also works through the
//! MSR protocol: [`super::msr_protocol::page_state_change`].)
//!
//! # The buffer (Linux `struct snp_psc_desc`, `sev-common.h`)
//!
//! The GHCB shared buffer holds an 8-byte header — `cur_entry` u16, `end_entry` u16 (the index
//! of the **last** entry, inclusive), reserved u32 — and up to [`MAX_ENTRIES`] (253) entries of
//! one u64 each: bits 11:0 `cur_page` (4 KiB pages of the entry already done), 51:12 the GFN,
//! 55:52 the operation (1 private, 2 shared), 56 the page size (1 = 2 MiB), 63:57 reserved.
//! SW_SCRATCH holds the buffer's GPA; SW_EXITINFO1 and 2 are 0.
//!
//! # Partial processing (GHCB spec, as Linux `vmgexit_psc` handles it)
//!
//! The hypervisor may return before it processed every entry; it records how far it got in
//! `cur_entry` and in the current entry's `cur_page`, and the guest sends the same buffer again
//! until `cur_entry > end_entry`. A non-zero SW_EXITINFO2 is an error. Every response is
//! checked ([`check_response`]); beyond Linux's checks (reserved header bits zero; `end_entry`
//! not grown; `cur_entry` not going backwards) this module also refuses:
//!
//! * an `end_entry` other than the one sent;
//! * an entry whose GFN, operation, page size or reserved bits changed;
//! * a `cur_page` beyond the entry's page count (1 or 512);
//! * progress (`cur_entry`, then the current entry's `cur_page`) going backwards;
//! * [`MAX_STALLS`] answers in a row without progress (Linux loops forever). Since every other
//!   answer strictly advances a position bounded by 253 × 513, the loop is bounded.
//!
//! The buffer's private copy is what is sent each time, so a hypervisor changing the shared
//! page between two calls does not change what was checked.

use super::cpu::{PageSize, SevCpu};
use super::ghcb::{exit_code, Field, GhcbError, Session, SHARED_BUFFER_SIZE};
use super::msr_protocol::MAX_GFN;
use core::fmt;

/// Entries in one request: (2032 − 8) / 8.
pub const MAX_ENTRIES: usize = 253;

/// Bytes of the header.
pub const HEADER_SIZE: usize = 8;

/// Bytes of one entry.
pub const ENTRY_SIZE: usize = 8;

/// Answers in a row without progress before the change fails.
pub const MAX_STALLS: u32 = 16;

/// A page state change operation (Linux `enum psc_op`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageOp {
    /// Assign the page to the guest as a private page (1).
    Private,
    /// Make the page shared (2).
    Shared,
}

impl PageOp {
    /// The encoding.
    pub const fn code(self) -> u64 {
        match self {
            Self::Private => 1,
            Self::Shared => 2,
        }
    }

    /// The operation of encoding `code`.
    pub const fn from_code(code: u64) -> Option<PageOp> {
        match code {
            1 => Some(Self::Private),
            2 => Some(Self::Shared),
            _ => None,
        }
    }
}

impl fmt::Display for PageOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Private => "private",
            Self::Shared => "shared",
        })
    }
}

/// One page to change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PscEntry {
    gfn: u64,
    op: PageOp,
    size: PageSize,
}

impl PscEntry {
    /// The page at `gpa`, which must be aligned to `size` and below 2^52.
    pub fn new(gpa: u64, op: PageOp, size: PageSize) -> Result<PscEntry, PscError> {
        if !gpa.is_multiple_of(size.bytes()) || gpa >> 12 > MAX_GFN {
            return Err(PscError::InvalidArgument {
                what: "page is not aligned to its size or not below 2^52",
                value: gpa,
            });
        }
        Ok(PscEntry {
            gfn: gpa >> 12,
            op,
            size,
        })
    }

    /// The page's GPA.
    pub const fn gpa(&self) -> u64 {
        self.gfn << 12
    }

    /// The operation.
    pub const fn op(&self) -> PageOp {
        self.op
    }

    /// The page size.
    pub const fn size(&self) -> PageSize {
        self.size
    }

    /// The entry as it is written, with `cur_page` (bits 11:0).
    pub const fn encode(&self, cur_page: u16) -> u64 {
        (cur_page as u64 & 0xFFF) | self.gfn << 12 | self.op.code() << 52 | self.size.code() << 56
    }
}

/// An entry as the buffer holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawEntry {
    /// Bits 11:0.
    pub cur_page: u16,
    /// Bits 51:12.
    pub gfn: u64,
    /// Bits 55:52.
    pub op: u8,
    /// Bit 56.
    pub size_2m: bool,
    /// Bits 63:57.
    pub reserved: u8,
}

impl RawEntry {
    /// Decodes an entry.
    pub const fn decode(v: u64) -> RawEntry {
        RawEntry {
            cur_page: (v & 0xFFF) as u16,
            gfn: (v >> 12) & MAX_GFN,
            op: ((v >> 52) & 0xF) as u8,
            size_2m: (v >> 56) & 1 != 0,
            reserved: (v >> 57) as u8,
        }
    }
}

/// The header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The next entry to process.
    pub cur_entry: u16,
    /// The last entry (inclusive).
    pub end_entry: u16,
    /// Reserved, zero.
    pub reserved: u32,
}

impl Header {
    /// Reads the header at the start of `buf`.
    pub fn read(buf: &[u8]) -> Option<Header> {
        let b = buf.get(..HEADER_SIZE)?;
        Some(Header {
            cur_entry: u16::from_le_bytes([b[0], b[1]]),
            end_entry: u16::from_le_bytes([b[2], b[3]]),
            reserved: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        })
    }
}

/// Entry `index` of `buf`, if it fits.
pub fn read_entry(buf: &[u8], index: usize) -> Option<u64> {
    let at = index.checked_mul(ENTRY_SIZE)?.checked_add(HEADER_SIZE)?;
    let b = buf.get(at..at.checked_add(ENTRY_SIZE)?)?;
    let mut q = [0u8; 8];
    q.copy_from_slice(b);
    Some(u64::from_le_bytes(q))
}

/// How far the hypervisor got: entries before `cur_entry` are done, and `cur_page` pages of
/// entry `cur_entry`. Ordered lexicographically.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Progress {
    /// The header's `cur_entry`.
    pub cur_entry: u16,
    /// That entry's `cur_page`.
    pub cur_page: u16,
}

/// What one response says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response {
    /// Every entry was processed.
    Done,
    /// Not yet: send the buffer again.
    Partial(Progress),
}

/// Why a page state change failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PscError {
    /// An argument was refused before any call was made.
    InvalidArgument {
        /// What was wrong.
        what: &'static str,
        /// The offending value.
        value: u64,
    },
    /// The GHCB call itself failed.
    Ghcb(GhcbError),
    /// The hypervisor reported an error in SW_EXITINFO2.
    Hypervisor {
        /// SW_EXITINFO2.
        code: u64,
        /// Where it stopped.
        at: Progress,
    },
    /// The response buffer is shorter than the request.
    Truncated {
        /// Its length.
        len: usize,
    },
    /// The header's reserved bits are set.
    HeaderReserved {
        /// Their value.
        value: u32,
    },
    /// `end_entry` is not the one sent.
    EndChanged {
        /// Sent.
        sent: u16,
        /// Returned.
        got: u16,
    },
    /// An entry's page, operation, size or reserved bits changed.
    EntryChanged {
        /// Its index.
        index: usize,
        /// Sent (with `cur_page` 0).
        sent: u64,
        /// Returned.
        got: u64,
    },
    /// An entry's `cur_page` is beyond its page count.
    CurPage {
        /// Its index.
        index: usize,
        /// The value.
        cur_page: u16,
    },
    /// The progress went backwards.
    Backwards {
        /// Before.
        before: Progress,
        /// After.
        after: Progress,
    },
    /// [`MAX_STALLS`] answers in a row made no progress.
    Stalled {
        /// Where.
        at: Progress,
    },
}

impl From<GhcbError> for PscError {
    fn from(e: GhcbError) -> Self {
        PscError::Ghcb(e)
    }
}

impl fmt::Display for PscError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::InvalidArgument { what, value } => {
                write!(f, "snp: page state change: {what} ({value:#x})")
            }
            Self::Ghcb(e) => write!(f, "{e}"),
            Self::Hypervisor { code, at } => write!(
                f,
                "snp: page state change failed at entry {} page {}: SW_EXITINFO2 {code:#x}",
                at.cur_entry, at.cur_page
            ),
            Self::Truncated { len } => {
                write!(f, "snp: page state change: response of {len} bytes is truncated")
            }
            Self::HeaderReserved { value } => write!(
                f,
                "snp: page state change: the hypervisor set reserved header bits ({value:#x})"
            ),
            Self::EndChanged { sent, got } => write!(
                f,
                "snp: page state change: the hypervisor changed end_entry from {sent} to {got}"
            ),
            Self::EntryChanged { index, sent, got } => write!(
                f,
                "snp: page state change: the hypervisor changed entry {index} from {sent:#x} to {got:#x}"
            ),
            Self::CurPage { index, cur_page } => write!(
                f,
                "snp: page state change: entry {index} reports {cur_page} pages done, more than it has"
            ),
            Self::Backwards { before, after } => write!(
                f,
                "snp: page state change went backwards: entry {} page {} after entry {} page {}",
                after.cur_entry, after.cur_page, before.cur_entry, before.cur_page
            ),
            Self::Stalled { at } => write!(
                f,
                "snp: page state change made no progress at entry {} page {} in {MAX_STALLS} answers",
                at.cur_entry, at.cur_page
            ),
        }
    }
}

/// Writes the request for `entries` (1..=[`MAX_ENTRIES`]) into `buf` (at least
/// [`HEADER_SIZE`] + 8 per entry): header `cur_entry` 0, `end_entry` the last index, reserved
/// 0; every entry with `cur_page` 0.
pub fn write_request(buf: &mut [u8], entries: &[PscEntry]) -> Result<(), PscError> {
    let n = entries.len();
    if n == 0 || n > MAX_ENTRIES {
        return Err(PscError::InvalidArgument {
            what: "a request holds 1 to 253 entries",
            value: n as u64,
        });
    }
    let need = HEADER_SIZE + n * ENTRY_SIZE;
    let Some(dst) = buf.get_mut(..need) else {
        return Err(PscError::InvalidArgument {
            what: "buffer too small for the request",
            value: need as u64,
        });
    };
    let end = (n - 1) as u16;
    dst[..2].copy_from_slice(&0u16.to_le_bytes());
    dst[2..4].copy_from_slice(&end.to_le_bytes());
    dst[4..8].copy_from_slice(&0u32.to_le_bytes());
    for (chunk, e) in dst[HEADER_SIZE..].chunks_exact_mut(ENTRY_SIZE).zip(entries) {
        chunk.copy_from_slice(&e.encode(0).to_le_bytes());
    }
    Ok(())
}

/// Checks the buffer the hypervisor left after one call for the request `sent`, given the
/// progress `before` it (see the module documentation for what is refused). Does not count
/// stalls: a [`Response::Partial`] equal to `before` is one.
pub fn check_response(
    sent: &[PscEntry],
    before: Progress,
    buf: &[u8],
) -> Result<Response, PscError> {
    if sent.is_empty() || sent.len() > MAX_ENTRIES {
        return Err(PscError::InvalidArgument {
            what: "a request holds 1 to 253 entries",
            value: sent.len() as u64,
        });
    }
    let h = Header::read(buf).ok_or(PscError::Truncated { len: buf.len() })?;
    if h.reserved != 0 {
        return Err(PscError::HeaderReserved { value: h.reserved });
    }
    let end = (sent.len() - 1) as u16;
    if h.end_entry != end {
        return Err(PscError::EndChanged {
            sent: end,
            got: h.end_entry,
        });
    }
    let mut cur_page_of_cur: u16 = 0;
    for (index, e) in sent.iter().enumerate() {
        let got = read_entry(buf, index).ok_or(PscError::Truncated { len: buf.len() })?;
        let want = e.encode(0);
        if got & !0xFFF != want {
            return Err(PscError::EntryChanged {
                index,
                sent: want,
                got,
            });
        }
        let cur_page = RawEntry::decode(got).cur_page;
        if u64::from(cur_page) > e.size.pages_4k() {
            return Err(PscError::CurPage { index, cur_page });
        }
        if index == usize::from(h.cur_entry) {
            cur_page_of_cur = cur_page;
        }
    }
    if h.cur_entry > h.end_entry {
        return Ok(Response::Done);
    }
    let after = Progress {
        cur_entry: h.cur_entry,
        cur_page: cur_page_of_cur,
    };
    if after < before {
        return Err(PscError::Backwards { before, after });
    }
    Ok(Response::Partial(after))
}

/// Statistics of one change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PscStats {
    /// VMGEXITs made.
    pub calls: u32,
    /// Of those, answers that made no progress.
    pub stalls: u32,
}

/// Changes the state of `entries` (1..=[`MAX_ENTRIES`]) through the GHCB, resending the buffer
/// until the hypervisor has processed every entry (see the module documentation).
pub fn page_state_change<C: SevCpu + ?Sized>(
    s: &mut Session<'_, C>,
    entries: &[PscEntry],
) -> Result<PscStats, PscError> {
    let scratch = s.shared_buffer_gpa();
    let g = s.begin();
    write_request(g.shared_buffer_mut(), entries)?;
    let mut stats = PscStats::default();
    let mut progress = Progress::default();
    let mut stalls_in_a_row: u32 = 0;
    loop {
        let g = s.ghcb_mut();
        g.invalidate();
        g.set(Field::SwScratch, scratch);
        stats.calls = stats.calls.saturating_add(1);
        s.call(exit_code::PSC, 0, 0)?;
        let code = s.ghcb().get(Field::SwExitInfo2);
        if code != 0 {
            return Err(PscError::Hypervisor { code, at: progress });
        }
        let buf = s.ghcb().shared_buffer();
        debug_assert_eq!(buf.len(), SHARED_BUFFER_SIZE);
        match check_response(entries, progress, buf)? {
            Response::Done => return Ok(stats),
            Response::Partial(p) if p == progress => {
                stats.stalls = stats.stalls.saturating_add(1);
                stalls_in_a_row = stalls_in_a_row.saturating_add(1);
                if stalls_in_a_row >= MAX_STALLS {
                    return Err(PscError::Stalled { at: p });
                }
            }
            Response::Partial(p) => {
                stalls_in_a_row = 0;
                progress = p;
            }
        }
    }
}
