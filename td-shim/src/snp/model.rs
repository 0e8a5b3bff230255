//! A model of the hypervisor (KVM/QEMU as the GHCB specification describes them) and of the
//! SNP hardware's RMP for host tests. It implements [`SevCpu`], checks every request it receives
//! (MSR-protocol sequencing, the GHCB registration, protocol version and usage, the valid bits
//! of each event's inputs, SW_SCRATCH, IOIO and MMIO encodings, the PSC buffer, PVALIDATE
//! alignment and the state of the page), answers as the hypervisor or the CPU would, tracks the
//! state of every 4 KiB page, can be told to inject answers, and records every call.
//!
//! A broken rule the real system answers with an error gives that error and is also recorded in
//! [`Model::violations`]; tests end with [`Model::assert_clean`].
//!
//! Memory model: a page is *shared* (hypervisor-owned) until a PSC makes it *private*; PVALIDATE
//! makes a private page *validated*; a PSC of any kind clears validation (RMPUPDATE does). The
//! RMP describes a 2 MiB region with one 2 MiB entry unless [`Model::map_small`] says 4 KiB
//! entries; a 2 MiB PVALIDATE of such a region gives FAIL_SIZEMISMATCH. Virtual addresses are
//! GPAs (the firmware's identity map).

extern crate std;

use super::cpu::{pvalidate_status, PageSize, PvalidateResult, SevCpu, PAGE_2M, PAGE_4K};
use super::ghcb::{event_inj, exit_code, ioio, offset, Field, Ghcb, SHARED_BUFFER_SIZE};
use super::msr_protocol::{code, GHCB_PROTOCOL_VERSION, INFO_MASK};
use super::psc::{self, Header, RawEntry};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::format;
use std::string::String;
use std::vec::Vec;

/// One call the model received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Call {
    /// An MSR-protocol exchange.
    Msr { request: u64, response: u64 },
    /// A GHCB-page event.
    Ghcb {
        exit_code: u64,
        info1: u64,
        info2: u64,
    },
    /// PVALIDATE.
    Pvalidate {
        va: u64,
        size: PageSize,
        validate: bool,
        result: PvalidateResult,
    },
    /// The cache-eviction touch.
    Touch { va: u64, pages: u64 },
}

/// A scripted answer, consumed by the next call it applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Inject {
    /// The next MSR-protocol request is answered with this raw value, with no effect.
    MsrResponse(u64),
    /// The next GHCB event is answered with these SW_EXITINFO1/2, with no effect.
    ExitInfo(u64, u64),
    /// The next GHCB event is handled, but this output's valid bit is cleared.
    DropOutput(Field),
    /// The next PVALIDATE returns this, with no effect.
    Pvalidate(PvalidateResult),
    /// The next PSC processes this many entries (0: none), then returns.
    PscEntries(u16),
    /// The next PSC processes this many 4 KiB pages of its current (2 MiB) entry, then returns.
    PscPages(u16),
    /// The next PSC fails with this SW_EXITINFO2 after processing nothing.
    PscError(u64),
    /// The next PSC is processed, then the quadword at this shared-buffer offset is replaced.
    PscRewrite { at: usize, value: u64 },
    /// The next PSC reports every entry done but changes nothing (a lying hypervisor).
    PscLie,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Page {
    Private,
    Validated,
}

#[derive(Debug)]
struct State {
    msr: u64,
    sev_info: (u16, u16, u8),
    features: u64,
    negotiated: bool,
    registered: Option<u64>,
    terminated: Option<u64>,
    calls: Vec<Call>,
    violations: Vec<String>,
    injections: VecDeque<Inject>,
    ram: Vec<(u64, u64)>,
    small: BTreeSet<u64>,
    /// 4 KiB pages assigned to the guest (absent: shared).
    pages: BTreeMap<u64, Page>,
    /// 2 MiB regions validated with one 2 MiB PVALIDATE.
    validated_2m: BTreeSet<u64>,
    touched: Vec<(u64, u64)>,
    ports: BTreeMap<u16, u64>,
    port_streams: BTreeMap<u16, Vec<u8>>,
    port_writes: Vec<(u16, u64, u64)>,
    mmio: BTreeMap<u64, u64>,
    mmio_writes: Vec<(u64, u64, u64)>,
    msrs: BTreeMap<u32, u64>,
    cpuid: BTreeMap<(u32, u32), [u32; 4]>,
    tsc: u64,
    psc_requests: Vec<Vec<u64>>,
}

/// The model. Interior mutability because [`SevCpu`] takes `&self`.
pub(crate) struct Model {
    s: RefCell<State>,
}

impl Model {
    /// A hypervisor speaking GHCB versions 1..=2 with C-bit 51 and features SNP + AP creation;
    /// no RAM.
    pub fn new() -> Self {
        Model {
            s: RefCell::new(State {
                msr: 0,
                sev_info: (2, 1, 51),
                features: 0b11,
                negotiated: false,
                registered: None,
                terminated: None,
                calls: Vec::new(),
                violations: Vec::new(),
                injections: VecDeque::new(),
                ram: Vec::new(),
                small: BTreeSet::new(),
                pages: BTreeMap::new(),
                validated_2m: BTreeSet::new(),
                touched: Vec::new(),
                ports: BTreeMap::new(),
                port_streams: BTreeMap::new(),
                port_writes: Vec::new(),
                mmio: BTreeMap::new(),
                mmio_writes: Vec::new(),
                msrs: BTreeMap::new(),
                cpuid: BTreeMap::new(),
                tsc: 0x1234_5678_9ABC,
                psc_requests: Vec::new(),
            }),
        }
    }

    /// A model that has negotiated and registered a GHCB at `gpa` (shared), as the firmware
    /// would have before anything else.
    pub fn ready(ghcb_gpa: u64) -> Self {
        let m = Self::new();
        {
            let mut s = m.s.borrow_mut();
            s.negotiated = true;
            s.registered = Some(ghcb_gpa);
        }
        m
    }

    /// What the SEV information response says.
    pub fn set_sev_info(&self, max: u16, min: u16, c_bit: u8) {
        self.s.borrow_mut().sev_info = (max, min, c_bit);
    }

    /// The hypervisor feature bitmap.
    pub fn set_features(&self, f: u64) {
        self.s.borrow_mut().features = f;
    }

    /// Adds guest RAM (shared until a PSC).
    pub fn add_ram(&self, base: u64, len: u64) {
        self.s.borrow_mut().ram.push((base, len));
    }

    /// The RMP describes the 2 MiB regions covering `[base, base + len)` with 4 KiB entries.
    pub fn map_small(&self, base: u64, len: u64) {
        let mut s = self.s.borrow_mut();
        let mut r = base & !(PAGE_2M - 1);
        while r < base + len {
            s.small.insert(r);
            r += PAGE_2M;
        }
    }

    /// Marks `[base, base + len)` private and validated (launch-time pages).
    pub fn pre_validate(&self, base: u64, len: u64) {
        let mut s = self.s.borrow_mut();
        let mut p = base;
        while p < base + len {
            s.pages.insert(p, Page::Validated);
            p += PAGE_4K;
        }
    }

    /// Queues a scripted answer.
    pub fn inject(&self, what: Inject) {
        self.s.borrow_mut().injections.push_back(what);
    }

    /// What port `port` reads as (raw, upper bits included).
    pub fn set_port(&self, port: u16, value: u64) {
        self.s.borrow_mut().ports.insert(port, value);
    }

    /// The bytes successive byte INs (string or not) of `port` return, in order (then zeros).
    pub fn set_port_stream(&self, port: u16, bytes: &[u8]) {
        self.s
            .borrow_mut()
            .port_streams
            .insert(port, bytes.to_vec());
    }

    /// What an MMIO read at `gpa` returns (raw, cut to the access size by the model).
    pub fn set_mmio(&self, gpa: u64, value: u64) {
        self.s.borrow_mut().mmio.insert(gpa, value);
    }

    /// Sets MSR `index` (reads of unknown MSRs inject #GP).
    pub fn set_msr(&self, index: u32, value: u64) {
        self.s.borrow_mut().msrs.insert(index, value);
    }

    /// The hypervisor's CPUID answer for `leaf`/`subleaf` (others: zeros).
    pub fn set_cpuid(&self, leaf: u32, subleaf: u32, regs: [u32; 4]) {
        self.s.borrow_mut().cpuid.insert((leaf, subleaf), regs);
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.s.borrow().calls.clone()
    }

    /// Rules broken so far.
    pub fn violations(&self) -> Vec<String> {
        self.s.borrow().violations.clone()
    }

    /// Fails the test if a rule was broken or a scripted answer was not used.
    pub fn assert_clean(&self) {
        let s = self.s.borrow();
        assert!(s.violations.is_empty(), "violations: {:#?}", s.violations);
        assert!(
            s.injections.is_empty(),
            "unused injections: {:?}",
            s.injections
        );
    }

    /// Whether the 4 KiB page at `gpa` is private and validated.
    pub fn is_validated(&self, gpa: u64) -> bool {
        self.s.borrow().pages.get(&gpa) == Some(&Page::Validated)
    }

    /// Whether the 4 KiB page at `gpa` is private (validated or not).
    pub fn is_private(&self, gpa: u64) -> bool {
        self.s.borrow().pages.contains_key(&gpa)
    }

    /// Validated 4 KiB pages.
    pub fn validated_pages(&self) -> u64 {
        self.s
            .borrow()
            .pages
            .values()
            .filter(|p| **p == Page::Validated)
            .count() as u64
    }

    /// The (va, pages) of every cache-eviction touch.
    pub fn touched(&self) -> Vec<(u64, u64)> {
        self.s.borrow().touched.clone()
    }

    /// (port, size, value) of every OUT.
    pub fn port_writes(&self) -> Vec<(u16, u64, u64)> {
        self.s.borrow().port_writes.clone()
    }

    /// (gpa, size, value) of every MMIO write.
    pub fn mmio_writes(&self) -> Vec<(u64, u64, u64)> {
        self.s.borrow().mmio_writes.clone()
    }

    /// MSR `index` as last written.
    pub fn msr(&self, index: u32) -> Option<u64> {
        self.s.borrow().msrs.get(&index).copied()
    }

    /// The termination request received, if any.
    pub fn terminated(&self) -> Option<u64> {
        self.s.borrow().terminated
    }

    /// The registered GHCB GPA.
    pub fn registered(&self) -> Option<u64> {
        self.s.borrow().registered
    }

    /// The entries of every PSC buffer received (as sent, before processing).
    pub fn psc_requests(&self) -> Vec<Vec<u64>> {
        self.s.borrow().psc_requests.clone()
    }
}

impl State {
    fn violation(&mut self, what: String) {
        self.violations.push(what);
    }

    fn take<F: Fn(&Inject) -> bool>(&mut self, applies: F) -> Option<Inject> {
        let i = self.injections.iter().position(applies)?;
        self.injections.remove(i)
    }

    fn in_ram(&self, base: u64, len: u64) -> bool {
        self.ram
            .iter()
            .any(|&(b, l)| base >= b && base.saturating_add(len) <= b + l)
    }

    fn check_live(&mut self, what: &str) {
        if let Some(t) = self.terminated {
            self.violation(format!("{what} after the termination request {t:#x}"));
        }
    }

    /// RMPUPDATE of one 4 KiB page to `op` (private: assigned, not validated; shared: gone).
    fn set_page(&mut self, gpa: u64, private: bool) {
        self.validated_2m.remove(&(gpa & !(PAGE_2M - 1)));
        if private {
            self.pages.insert(gpa, Page::Private);
        } else {
            self.pages.remove(&gpa);
        }
    }

    // ------------------------------------------------------------------------------------
    // MSR protocol

    fn msr_protocol(&mut self) {
        let request = self.msr;
        self.check_live("MSR-protocol request");
        if let Some(Inject::MsrResponse(v)) = self.take(|i| matches!(i, Inject::MsrResponse(_))) {
            self.msr = v;
            self.calls.push(Call::Msr {
                request,
                response: v,
            });
            return;
        }
        let c = request & INFO_MASK;
        if c != code::SEV_INFO_REQ && c != code::TERM_REQ && !self.negotiated {
            self.violation(format!(
                "MSR-protocol request {request:#x} before the SEV information exchange"
            ));
        }
        let response = match c {
            code::SEV_INFO_REQ => {
                if request >> 12 != 0 {
                    self.violation(format!("SEV information request {request:#x} carries data"));
                }
                self.negotiated = true;
                let (max, min, cbit) = self.sev_info;
                u64::from(max) << 48
                    | u64::from(min) << 32
                    | u64::from(cbit) << 24
                    | code::SEV_INFO_RESP
            }
            code::CPUID_REQ => {
                let leaf = (request >> 32) as u32;
                let reg = ((request >> 30) & 3) as usize;
                if request & 0x3FFF_F000 != 0 {
                    self.violation(format!("CPUID request {request:#x}: reserved bits"));
                }
                let v = self.cpuid.get(&(leaf, 0)).copied().unwrap_or([0; 4])[reg];
                // KVM updates the value and code in place: bits 31:30 keep the register.
                (u64::from(v) << 32) | (request & 0xC000_0000) | code::CPUID_RESP
            }
            code::HV_FEATURES_REQ => self.features << 12 | code::HV_FEATURES_RESP,
            code::REGISTER_GHCB_REQ => {
                let gfn = request >> 12;
                let gpa = gfn << 12;
                if self.pages.contains_key(&gpa) {
                    self.violation(format!("GHCB at {gpa:#x} is a private page"));
                }
                if !self.in_ram(gpa, PAGE_4K) {
                    self.violation(format!("GHCB at {gpa:#x} is not RAM"));
                    !INFO_MASK | code::REGISTER_GHCB_RESP
                } else {
                    self.registered = Some(gpa);
                    gfn << 12 | code::REGISTER_GHCB_RESP
                }
            }
            code::PSC_REQ => {
                let gpa = ((request >> 12) & super::msr_protocol::MAX_GFN) << 12;
                let op = (request >> 52) & 0xF;
                if request >> 56 != 0 {
                    self.violation(format!("PSC request {request:#x}: reserved bits"));
                }
                let err = if !self.in_ram(gpa, PAGE_4K) || !(op == 1 || op == 2) {
                    self.violation(format!("PSC request {request:#x}: not RAM or bad op"));
                    1
                } else {
                    self.set_page(gpa, op == 1);
                    0
                };
                (err << 32) | code::PSC_RESP
            }
            code::TERM_REQ => {
                if request >> 24 != 0 {
                    self.violation(format!("termination request {request:#x}: reserved bits"));
                }
                self.terminated = Some(request);
                // The guest is not resumed; if the test's code goes on, the MSR is unchanged.
                request
            }
            _ => {
                self.violation(format!("unknown MSR-protocol request {request:#x}"));
                request
            }
        };
        self.msr = response;
        self.calls.push(Call::Msr { request, response });
    }

    // ------------------------------------------------------------------------------------
    // GHCB page

    fn ghcb_event(&mut self, g: &mut Ghcb) {
        let code_ = g.get(Field::SwExitCode);
        let info1 = g.get(Field::SwExitInfo1);
        let info2 = g.get(Field::SwExitInfo2);
        self.calls.push(Call::Ghcb {
            exit_code: code_,
            info1,
            info2,
        });
        self.check_live("GHCB event");
        let Some(gpa) = self.registered else {
            self.violation(format!(
                "GHCB event {code_:#x} before the GHCB was registered"
            ));
            respond(g, 2, 1);
            return;
        };
        if self.msr != gpa {
            self.violation(format!(
                "GHCB event {code_:#x} with the GHCB MSR at {:#x}, not the GHCB GPA {gpa:#x}",
                self.msr
            ));
            respond(g, 2, 1);
            return;
        }
        if g.protocol_version() != GHCB_PROTOCOL_VERSION || g.usage() != 0 {
            self.violation(format!(
                "GHCB version {} usage {}",
                g.protocol_version(),
                g.usage()
            ));
            respond(g, 2, 2);
            return;
        }
        for f in [Field::SwExitCode, Field::SwExitInfo1, Field::SwExitInfo2] {
            if !g.is_valid(f) {
                self.violation(format!("GHCB event {code_:#x}: {} not valid", f.name()));
            }
        }
        if let Some(Inject::ExitInfo(a, b)) = self.take(|i| matches!(i, Inject::ExitInfo(..))) {
            respond(g, a, b);
            return;
        }
        let inputs = g.valid_bitmap();
        let valid = |f: Field| inputs >> f.valid_bit() & 1 != 0;
        let mut out: Vec<(Field, u64)> = Vec::new();
        let mut result = (0u64, 0u64);
        match code_ {
            exit_code::CPUID => {
                if !(valid(Field::Rax) && valid(Field::Rcx) && valid(Field::Xcr0)) {
                    self.violation(format!("CPUID inputs not valid: bitmap {inputs:#x}"));
                }
                let key = (g.get(Field::Rax) as u32, g.get(Field::Rcx) as u32);
                let r = self.cpuid.get(&key).copied().unwrap_or([0; 4]);
                out = [Field::Rax, Field::Rbx, Field::Rcx, Field::Rdx]
                    .into_iter()
                    .zip(r)
                    .map(|(f, v)| (f, u64::from(v)))
                    .collect();
            }
            exit_code::IOIO if info1 & (ioio::TYPE_STR | ioio::REP) != 0 => {
                // REP INSB into the shared buffer (Linux vc_handle_ioio, KVM
                // sev_es_string_io): SW_SCRATCH is the shared buffer's GPA, SW_EXITINFO2 the
                // count; only the byte IN form is modelled.
                let port = (info1 >> ioio::PORT_SHIFT & 0xFFFF) as u16;
                let want = ioio::TYPE_STR
                    | ioio::REP
                    | ioio::TYPE_IN
                    | ioio::DATA_8
                    | ioio::ADDR_64
                    | u64::from(port) << ioio::PORT_SHIFT;
                let scratch = gpa | 0x800;
                if info1 != want {
                    self.violation(format!("string IOIO info {info1:#x}: only REP INSB"));
                } else if !valid(Field::SwScratch) || g.get(Field::SwScratch) != scratch {
                    self.violation(format!(
                        "string IOIO without SW_SCRATCH at the shared buffer ({scratch:#x})"
                    ));
                } else if info2 == 0 || info2 > 2032 {
                    self.violation(format!("string IOIO count {info2}"));
                } else {
                    let stream = self.port_streams.entry(port).or_default();
                    let n = info2 as usize;
                    let take = n.min(stream.len());
                    let mut bytes: Vec<u8> = stream.drain(..take).collect();
                    bytes.resize(n, 0);
                    g.shared_buffer_mut()[..n].copy_from_slice(&bytes);
                }
            }
            exit_code::IOIO => {
                if !valid(Field::Rax) {
                    self.violation("IOIO without RAX".into());
                }
                let port = (info1 >> ioio::PORT_SHIFT & 0xFFFF) as u16;
                let size = match info1 & (ioio::DATA_8 | ioio::DATA_16 | ioio::DATA_32) {
                    ioio::DATA_8 => 1,
                    ioio::DATA_16 => 2,
                    ioio::DATA_32 => 4,
                    _ => {
                        self.violation(format!("IOIO info {info1:#x}: size bits"));
                        0
                    }
                };
                let addr = info1 & (ioio::ADDR_16 | ioio::ADDR_32 | ioio::ADDR_64);
                if ![ioio::ADDR_16, ioio::ADDR_32, ioio::ADDR_64].contains(&addr)
                    || info1 & (ioio::TYPE_STR | ioio::REP) != 0
                    || info1 >> 32 != 0
                    || info2 != 0
                {
                    self.violation(format!("IOIO info {info1:#x}/{info2:#x}"));
                }
                let mask = if size == 0 {
                    0
                } else {
                    (1u64 << (size * 8)) - 1
                };
                if info1 & ioio::TYPE_IN != 0 {
                    if g.get(Field::Rax) != 0 {
                        self.violation(format!("IN with RAX {:#x}", g.get(Field::Rax)));
                    }
                    let streamed = match self.port_streams.get_mut(&port) {
                        Some(s) if size == 1 && !s.is_empty() => Some(u64::from(s.remove(0))),
                        _ => None,
                    };
                    let v = streamed.unwrap_or_else(|| self.ports.get(&port).copied().unwrap_or(0));
                    out.push((Field::Rax, v));
                } else {
                    let v = g.get(Field::Rax);
                    if v & !mask != 0 {
                        self.violation(format!("OUT of {v:#x} wider than {size} bytes"));
                    }
                    self.port_writes.push((port, size, v));
                }
            }
            exit_code::MSR => {
                if !valid(Field::Rcx) {
                    self.violation("MSR without RCX".into());
                }
                let index = g.get(Field::Rcx);
                match info1 {
                    0 => match self.msrs.get(&(index as u32)) {
                        Some(&v) if index >> 32 == 0 => {
                            out.push((Field::Rax, v & 0xFFFF_FFFF));
                            out.push((Field::Rdx, v >> 32));
                        }
                        _ => {
                            result = (
                                1,
                                event_inj::VALID
                                    | event_inj::TYPE_EXCEPTION
                                    | event_inj::VALID_ERR
                                    | u64::from(event_inj::GP),
                            )
                        }
                    },
                    1 => {
                        if !(valid(Field::Rax) && valid(Field::Rdx)) {
                            self.violation("WRMSR without RAX/RDX".into());
                        }
                        let (lo, hi) = (g.get(Field::Rax), g.get(Field::Rdx));
                        if lo >> 32 != 0 || hi >> 32 != 0 {
                            self.violation(format!("WRMSR RAX {lo:#x} RDX {hi:#x}"));
                        }
                        self.msrs.insert(index as u32, hi << 32 | lo);
                    }
                    _ => self.violation(format!("MSR info1 {info1}")),
                }
            }
            exit_code::RDTSC | exit_code::RDTSCP => {
                out.push((Field::Rax, self.tsc & 0xFFFF_FFFF));
                out.push((Field::Rdx, self.tsc >> 32));
                if code_ == exit_code::RDTSCP {
                    out.push((Field::Rcx, 7));
                }
            }
            exit_code::MMIO_READ | exit_code::MMIO_WRITE => {
                if !valid(Field::SwScratch) || g.get(Field::SwScratch) != gpa + 0x800 {
                    self.violation(format!(
                        "MMIO SW_SCRATCH {:#x} is not the shared buffer",
                        g.get(Field::SwScratch)
                    ));
                }
                if ![1, 2, 4, 8].contains(&info2) || !info1.is_multiple_of(info2.max(1)) {
                    self.violation(format!("MMIO at {info1:#x} of {info2} bytes"));
                }
                if self.pages.contains_key(&(info1 & !0xFFF)) {
                    self.violation(format!("MMIO at {info1:#x}: a private page"));
                }
                let n = (info2 as usize).min(8);
                if code_ == exit_code::MMIO_READ {
                    let v = self.mmio.get(&info1).copied().unwrap_or(0);
                    g.shared_buffer_mut()[..n].copy_from_slice(&v.to_le_bytes()[..n]);
                } else {
                    let mut b = [0u8; 8];
                    b[..n].copy_from_slice(&g.shared_buffer()[..n]);
                    self.mmio_writes.push((info1, info2, u64::from_le_bytes(b)));
                }
            }
            exit_code::PSC => {
                if !valid(Field::SwScratch) || g.get(Field::SwScratch) != gpa + 0x800 {
                    self.violation(format!(
                        "PSC SW_SCRATCH {:#x} is not the shared buffer",
                        g.get(Field::SwScratch)
                    ));
                }
                if info1 != 0 || info2 != 0 {
                    self.violation(format!("PSC info {info1:#x}/{info2:#x}"));
                }
                result.1 = self.psc(g);
            }
            other => self.violation(format!("unsupported GHCB event {other:#x}")),
        }
        // KVM: the valid bitmap is cleared after the inputs are read; outputs are set with
        // their valid bits.
        let dropped = match self.take(|i| matches!(i, Inject::DropOutput(_))) {
            Some(Inject::DropOutput(f)) => Some(f),
            _ => None,
        };
        g.invalidate();
        g.write_u64(offset::SW_EXIT_CODE, code_);
        for (f, v) in out {
            g.set(f, v);
        }
        if let Some(f) = dropped {
            g.clear_valid(f);
        }
        respond(g, result.0, result.1);
    }

    /// Processes a PSC buffer; returns SW_EXITINFO2.
    fn psc(&mut self, g: &mut Ghcb) -> u64 {
        let inject = self.take(|i| {
            matches!(
                i,
                Inject::PscEntries(_)
                    | Inject::PscPages(_)
                    | Inject::PscError(_)
                    | Inject::PscRewrite { .. }
                    | Inject::PscLie
            )
        });
        let buf = g.shared_buffer_mut();
        let Some(h) = Header::read(buf) else {
            return 1;
        };
        if h.reserved != 0 || usize::from(h.end_entry) >= psc::MAX_ENTRIES {
            self.violation(format!("PSC header {h:?}"));
            return 1;
        }
        let entries: Vec<u64> = (0..=usize::from(h.end_entry))
            .map(|i| psc::read_entry(buf, i).unwrap_or(0))
            .collect();
        if h.cur_entry == 0 && entries.iter().all(|e| e & 0xFFF == 0) {
            self.psc_requests.push(entries.clone());
        }
        for (i, &e) in entries.iter().enumerate() {
            let r = RawEntry::decode(e);
            let pages = if r.size_2m { 512 } else { 1 };
            if r.reserved != 0
                || !(r.op == 1 || r.op == 2)
                || (r.size_2m && !r.gfn.is_multiple_of(512))
                || u64::from(r.cur_page) > pages
                || !self.in_ram(r.gfn << 12, pages * PAGE_4K)
            {
                self.violation(format!("PSC entry {i}: {e:#x} ({r:?})"));
                return 1;
            }
        }
        if let Some(Inject::PscError(code_)) = inject {
            return code_;
        }
        if inject == Some(Inject::PscLie) {
            let past = h.end_entry + 1;
            buf[..2].copy_from_slice(&past.to_le_bytes());
            return 0;
        }
        let mut budget_entries = match inject {
            Some(Inject::PscEntries(n)) => Some(n),
            _ => None,
        };
        let mut budget_pages = match inject {
            Some(Inject::PscPages(n)) => Some(u64::from(n)),
            _ => None,
        };
        let mut cur = h.cur_entry;
        while cur <= h.end_entry {
            if budget_entries == Some(0) {
                break;
            }
            let i = usize::from(cur);
            let r = RawEntry::decode(entries[i]);
            let pages = if r.size_2m { 512 } else { 1 };
            let mut done = u64::from(r.cur_page);
            while done < pages {
                if budget_pages == Some(0) {
                    break;
                }
                self.set_page((r.gfn << 12) + done * PAGE_4K, r.op == 1);
                done += 1;
                budget_pages = budget_pages.map(|b| b - 1);
            }
            let e = entries[i] & !0xFFF | done;
            let at = psc::HEADER_SIZE + i * psc::ENTRY_SIZE;
            buf[at..at + 8].copy_from_slice(&e.to_le_bytes());
            if done < pages {
                break;
            }
            cur += 1;
            budget_entries = budget_entries.map(|b| b - 1);
        }
        buf[..2].copy_from_slice(&cur.to_le_bytes());
        if let Some(Inject::PscRewrite { at, value }) = inject {
            if at + 8 <= SHARED_BUFFER_SIZE {
                buf[at..at + 8].copy_from_slice(&value.to_le_bytes());
            }
        }
        0
    }

    // ------------------------------------------------------------------------------------
    // PVALIDATE

    fn pvalidate(&mut self, va: u64, size: PageSize, validate: bool) -> PvalidateResult {
        self.check_live("PVALIDATE");
        if let Some(Inject::Pvalidate(r)) = self.take(|i| matches!(i, Inject::Pvalidate(_))) {
            return r;
        }
        let fail = |eax| PvalidateResult { eax, cf: false };
        if !va.is_multiple_of(size.bytes()) {
            self.violation(format!("PVALIDATE {va:#x} not aligned to {size:?}"));
            return fail(pvalidate_status::FAIL_INPUT);
        }
        if !self.in_ram(va, size.bytes()) {
            self.violation(format!("PVALIDATE {va:#x} {size:?}: not RAM"));
            return fail(pvalidate_status::FAIL_INPUT);
        }
        let region = va & !(PAGE_2M - 1);
        let want = if validate {
            Page::Validated
        } else {
            Page::Private
        };
        match size {
            PageSize::Size4K => {
                let Some(&state) = self.pages.get(&va) else {
                    // Real hardware: an RMP fault the hypervisor sees; no return code.
                    self.violation(format!("PVALIDATE of the shared page {va:#x}"));
                    return fail(pvalidate_status::FAIL_INPUT);
                };
                if self.validated_2m.contains(&region) {
                    return fail(pvalidate_status::FAIL_SIZEMISMATCH);
                }
                if state == want {
                    return PvalidateResult { eax: 0, cf: true };
                }
                self.pages.insert(va, want);
                PvalidateResult::CHANGED
            }
            PageSize::Size2M => {
                if self.small.contains(&va) {
                    return fail(pvalidate_status::FAIL_SIZEMISMATCH);
                }
                let states: Vec<Option<Page>> = (0..512)
                    .map(|i| self.pages.get(&(va + i * PAGE_4K)).copied())
                    .collect();
                if states.iter().any(Option::is_none) {
                    self.violation(format!("PVALIDATE 2M {va:#x}: part of it is shared"));
                    return fail(pvalidate_status::FAIL_INPUT);
                }
                let validated_2m = self.validated_2m.contains(&va);
                if (validate && validated_2m)
                    || (!validate && states.iter().all(|s| *s == Some(Page::Private)))
                {
                    return PvalidateResult { eax: 0, cf: true };
                }
                if validate && states.contains(&Some(Page::Validated)) {
                    // Validated 4 KiB pages inside: the RMP has 4 KiB entries here.
                    return fail(pvalidate_status::FAIL_SIZEMISMATCH);
                }
                for i in 0..512 {
                    self.pages.insert(va + i * PAGE_4K, want);
                }
                if validate {
                    self.validated_2m.insert(va);
                } else {
                    self.validated_2m.remove(&va);
                }
                PvalidateResult::CHANGED
            }
        }
    }
}

fn respond(g: &mut Ghcb, info1: u64, info2: u64) {
    g.set(Field::SwExitInfo1, info1);
    g.set(Field::SwExitInfo2, info2);
}

impl SevCpu for Model {
    fn ghcb_msr_read(&self) -> u64 {
        self.s.borrow().msr
    }

    fn ghcb_msr_write(&self, value: u64) {
        self.s.borrow_mut().msr = value;
    }

    fn vmgexit(&self, ghcb: Option<&mut Ghcb>) {
        let mut s = self.s.borrow_mut();
        match ghcb {
            None => s.msr_protocol(),
            Some(g) => s.ghcb_event(g),
        }
    }

    fn pvalidate(&self, va: u64, size: PageSize, validate: bool) -> PvalidateResult {
        let mut s = self.s.borrow_mut();
        let result = s.pvalidate(va, size, validate);
        s.calls.push(Call::Pvalidate {
            va,
            size,
            validate,
            result,
        });
        result
    }

    fn touch_pages(&self, va: u64, pages: u64) {
        let mut s = self.s.borrow_mut();
        for i in 0..pages {
            if s.pages.get(&(va + i * PAGE_4K)) != Some(&Page::Validated) {
                let p = va + i * PAGE_4K;
                s.violation(format!(
                    "cache-eviction touch of {p:#x}, not a validated page"
                ));
            }
        }
        s.touched.push((va, pages));
        s.calls.push(Call::Touch { va, pages });
    }
}
