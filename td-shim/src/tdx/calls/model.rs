//! A model of the TDX module and the VMM for host tests. It implements [`Tdcall`], checks every
//! call it receives against the rules of §2/§3 of the research notes (leaf, reserved bits,
//! argument ranges, alignment, exposure bitmap, no leaked register contents), answers with the
//! statuses the real module or KVM/QEMU would give, tracks accepted and shared memory, can be
//! told to inject statuses, and records every call.
//!
//! A broken rule that the real module answers with a status gives that status and is also
//! recorded in [`Model::violations`]; rules that are ours (what the firmware promises, e.g. that
//! unused exposed registers are zero) are only recorded. Tests end with
//! [`Model::assert_clean`].

extern crate std;

use super::{leaf, status, vmcall, Digest48Aligned, Tdcall, TdcallArgs, VeInfo};
use sha2::{Digest, Sha384};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::format;
use std::string::String;
use std::vec::Vec;

const PAGE_4K: u64 = 0x1000;
const PAGE_2M: u64 = 0x20_0000;

/// One call the model received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Call {
    /// The registers as the caller passed them.
    pub input: TdcallArgs,
    /// RAX returned.
    pub status: u64,
    /// For TDVMCALL: R10 returned.
    pub vmcall_status: Option<u64>,
}

impl Call {
    /// The leaf.
    pub fn leaf(&self) -> u64 {
        self.input.rax
    }

    /// For TDVMCALL: the sub-function.
    pub fn sub_function(&self) -> Option<u64> {
        (self.input.rax == leaf::VP_VMCALL).then_some(self.input.r11)
    }
}

/// A scripted answer, consumed by the next call it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Inject {
    /// TDCALL leaves: return this status (RAX) with no effect. TDVMCALL: the VMM answers this
    /// status (R10) with no effect.
    Status(u64),
    /// TDVMCALL: the TDX module refuses the call with this RAX.
    TdcallStatus(u64),
    /// MapGPA: convert this many bytes, then answer RETRY with R11 at the next GPA.
    MapGpaPartial(u64),
    /// MapGPA: answer RETRY with R11 = this value, converting nothing.
    MapGpaResumeAt(u64),
    /// TDVMCALL reads (IO, MMIO, RDMSR): answer success with this raw R11.
    RawR11(u64),
}

/// The state of one 2 MiB region of private memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Region {
    /// Mapped by the VMM with one 2 MiB entry, accepted.
    Accepted2M,
    /// Mapped with 4 KiB entries; bit i of the bitmap: page i accepted.
    Small([u64; 8]),
}

#[derive(Debug)]
struct State {
    gpa_width: u32,
    attributes: u64,
    num_vcpus: u32,
    max_vcpus: u32,
    vcpu_index: u32,
    require_vp_info_first: bool,
    calls: Vec<Call>,
    violations: Vec<String>,
    injections: VecDeque<(u64, Option<u64>, Inject)>,
    /// Private RAM the VMM added, pending until accepted: (base, len).
    ram: Vec<(u64, u64)>,
    /// 2 MiB regions the VMM maps with 4 KiB entries although none is accepted yet.
    small_mapped: BTreeSet<u64>,
    regions: BTreeMap<u64, Region>,
    /// 4 KiB pages (private form of the GPA) currently mapped shared.
    shared: BTreeSet<u64>,
    /// Addresses the test exposed as digest buffers, with their contents.
    digests: BTreeMap<u64, [u8; 48]>,
    rtmrs: [[u8; 48]; 4],
    reports: Vec<(u64, u64)>,
    ve: Option<VeInfo>,
    ports: BTreeMap<u16, u64>,
    port_writes: Vec<(u16, u64, u64)>,
    mmio: BTreeMap<u64, u64>,
    msrs: BTreeMap<u32, u64>,
    cpuid: BTreeMap<(u32, u32), [u32; 4]>,
    fatal: Option<(u64, u64, u64, u64)>,
}

/// The model. Interior mutability because [`Tdcall::tdcall`] takes `&self`.
pub(crate) struct Model {
    s: RefCell<State>,
}

impl Model {
    /// A TD with GPA width 48, one vCPU (index 0), SEPT_VE_DISABLE, no RAM.
    pub fn new() -> Self {
        Model {
            s: RefCell::new(State {
                gpa_width: 48,
                attributes: 1 << 28,
                num_vcpus: 1,
                max_vcpus: 1,
                vcpu_index: 0,
                require_vp_info_first: false,
                calls: Vec::new(),
                violations: Vec::new(),
                injections: VecDeque::new(),
                ram: Vec::new(),
                small_mapped: BTreeSet::new(),
                regions: BTreeMap::new(),
                shared: BTreeSet::new(),
                digests: BTreeMap::new(),
                rtmrs: [[0; 48]; 4],
                reports: Vec::new(),
                ve: None,
                ports: BTreeMap::new(),
                port_writes: Vec::new(),
                mmio: BTreeMap::new(),
                msrs: BTreeMap::new(),
                cpuid: BTreeMap::new(),
                fatal: None,
            }),
        }
    }

    /// Sets what TDG.VP.INFO reports (the width is reported raw, so tests can give bad ones).
    pub fn set_vp_info(&self, gpa_width: u32, attributes: u64, num: u32, max: u32, index: u32) {
        let mut s = self.s.borrow_mut();
        s.gpa_width = gpa_width;
        s.attributes = attributes;
        s.num_vcpus = num;
        s.max_vcpus = max;
        s.vcpu_index = index;
    }

    /// Makes any call before TDG.VP.INFO a violation (the firmware's own rule).
    pub fn require_vp_info_first(&self) {
        self.s.borrow_mut().require_vp_info_first = true;
    }

    /// Adds private RAM, pending acceptance.
    pub fn add_ram(&self, base: u64, len: u64) {
        self.s.borrow_mut().ram.push((base, len));
    }

    /// Makes the VMM map the 2 MiB regions covering `[base, base + len)` with 4 KiB entries.
    pub fn map_small(&self, base: u64, len: u64) {
        let mut s = self.s.borrow_mut();
        let mut r = base & !(PAGE_2M - 1);
        while r < base + len {
            s.small_mapped.insert(r);
            r += PAGE_2M;
        }
    }

    /// Marks the 4 KiB page at `gpa` accepted already (e.g. by an earlier boot stage).
    pub fn pre_accept_4k(&self, gpa: u64) {
        let mut s = self.s.borrow_mut();
        let region = gpa & !(PAGE_2M - 1);
        let i = ((gpa - region) / PAGE_4K) as usize;
        let e = s.regions.entry(region).or_insert(Region::Small([0; 8]));
        if let Region::Small(bits) = e {
            bits[i / 64] |= 1 << (i % 64);
        }
    }

    /// Marks the 2 MiB page at `gpa` accepted already as a 2 MiB page.
    pub fn pre_accept_2m(&self, gpa: u64) {
        self.s.borrow_mut().regions.insert(gpa, Region::Accepted2M);
    }

    /// Queues a scripted answer for the next call of `leaf` (and TDVMCALL `sub_function`).
    pub fn inject(&self, leaf: u64, sub_function: Option<u64>, what: Inject) {
        self.s
            .borrow_mut()
            .injections
            .push_back((leaf, sub_function, what));
    }

    /// Shows the model the contents of a digest buffer at its address, as memory would.
    pub fn expose_digest(&self, d: &Digest48Aligned) {
        let addr = core::ptr::from_ref(d) as u64;
        self.s.borrow_mut().digests.insert(addr, d.0);
    }

    /// Sets the pending #VE information.
    pub fn set_ve(&self, ve: VeInfo) {
        self.s.borrow_mut().ve = Some(ve);
    }

    /// What port `port` reads as (raw R11, upper bits included).
    pub fn set_port(&self, port: u16, value: u64) {
        self.s.borrow_mut().ports.insert(port, value);
    }

    /// What MMIO reads at `gpa` return.
    pub fn set_mmio(&self, gpa: u64, value: u64) {
        self.s.borrow_mut().mmio.insert(gpa, value);
    }

    /// Sets MSR `index` (unknown MSRs give INVALID_OPERAND).
    pub fn set_msr(&self, index: u32, value: u64) {
        self.s.borrow_mut().msrs.insert(index, value);
    }

    /// Sets the VMM's CPUID answer.
    pub fn set_cpuid(&self, leaf: u32, subleaf: u32, regs: [u32; 4]) {
        self.s.borrow_mut().cpuid.insert((leaf, subleaf), regs);
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.s.borrow().calls.clone()
    }

    /// (leaf, sub-function) of every call so far.
    pub fn sequence(&self) -> Vec<(u64, Option<u64>)> {
        self.s
            .borrow()
            .calls
            .iter()
            .map(|c| (c.leaf(), c.sub_function()))
            .collect()
    }

    /// Rules broken so far.
    pub fn violations(&self) -> Vec<String> {
        self.s.borrow().violations.clone()
    }

    /// Fails the test if any rule was broken or a scripted answer was not used.
    pub fn assert_clean(&self) {
        let s = self.s.borrow();
        assert!(s.violations.is_empty(), "violations: {:#?}", s.violations);
        assert!(
            s.injections.is_empty(),
            "unused injections: {:?}",
            s.injections
        );
    }

    /// The RTMR values.
    pub fn rtmr(&self, i: usize) -> [u8; 48] {
        self.s.borrow().rtmrs[i]
    }

    /// (report GPA, report-data GPA) of every TDG.MR.REPORT that succeeded.
    pub fn reports(&self) -> Vec<(u64, u64)> {
        self.s.borrow().reports.clone()
    }

    /// (port, size, value) of every port write.
    pub fn port_writes(&self) -> Vec<(u16, u64, u64)> {
        self.s.borrow().port_writes.clone()
    }

    /// (R12, R13, R14, R15) of the ReportFatalError received.
    pub fn fatal(&self) -> Option<(u64, u64, u64, u64)> {
        self.s.borrow().fatal
    }

    /// Whether the 4 KiB page at `gpa` is accepted.
    pub fn is_accepted(&self, gpa: u64) -> bool {
        self.s.borrow().accepted_4k(gpa)
    }

    /// The number of accepted 4 KiB pages.
    pub fn accepted_pages(&self) -> u64 {
        self.s
            .borrow()
            .regions
            .values()
            .map(|r| match r {
                Region::Accepted2M => 512,
                Region::Small(b) => b.iter().map(|w| u64::from(w.count_ones())).sum(),
            })
            .sum()
    }

    /// Whether the 4 KiB page at `gpa` (private form) is shared.
    pub fn is_shared(&self, gpa: u64) -> bool {
        self.s.borrow().shared.contains(&gpa)
    }
}

impl State {
    fn shared_bit(&self) -> u64 {
        1 << (self.gpa_width.clamp(1, 64) - 1)
    }

    fn violation(&mut self, what: String) {
        self.violations.push(what);
    }

    fn take_injection(&mut self, leaf: u64, sub: Option<u64>) -> Option<Inject> {
        let i = self
            .injections
            .iter()
            .position(|(l, s, _)| *l == leaf && (s.is_none() || *s == sub))?;
        self.injections.remove(i).map(|(_, _, w)| w)
    }

    fn in_ram(&self, base: u64, len: u64) -> bool {
        self.ram
            .iter()
            .any(|&(b, l)| base >= b && base + len <= b + l)
    }

    fn accepted_4k(&self, gpa: u64) -> bool {
        let region = gpa & !(PAGE_2M - 1);
        let i = ((gpa - region) / PAGE_4K) as usize;
        match self.regions.get(&region) {
            Some(Region::Accepted2M) => true,
            Some(Region::Small(b)) => b[i / 64] & (1 << (i % 64)) != 0,
            None => false,
        }
    }

    fn unaccept(&mut self, gpa: u64) {
        let region = gpa & !(PAGE_2M - 1);
        let i = ((gpa - region) / PAGE_4K) as usize;
        match self.regions.get_mut(&region) {
            Some(Region::Small(b)) => b[i / 64] &= !(1 << (i % 64)),
            Some(r @ Region::Accepted2M) => {
                let mut b = [u64::MAX; 8];
                b[i / 64] &= !(1 << (i % 64));
                *r = Region::Small(b);
            }
            None => {}
        }
    }

    fn dispatch(&mut self, r: &mut TdcallArgs) -> (u64, Option<u64>) {
        let l = r.rax;
        if l >> 16 != 0 {
            self.violation(format!("RAX {l:#x}: version or reserved bits set"));
            return (status::OPERAND_INVALID, None);
        }
        if self.require_vp_info_first
            && l != leaf::VP_INFO
            && !self.calls.iter().any(|c| c.leaf() == leaf::VP_INFO)
        {
            self.violation(format!("{} before TDG.VP.INFO", leaf::name(l)));
        }
        if l == leaf::VP_VMCALL {
            return self.vmcall(r);
        }
        if let Some(inj) = self.take_injection(l, None) {
            return match inj {
                Inject::Status(s) => (s, None),
                other => {
                    self.violation(format!("injection {other:?} does not apply to leaf {l}"));
                    (status::OPERAND_INVALID, None)
                }
            };
        }
        let s = match l {
            leaf::VP_INFO => {
                self.expect_zero(r, &["rcx", "rdx", "r8", "r9", "r10", "r11"], l);
                r.rcx = u64::from(self.gpa_width);
                r.rdx = self.attributes;
                r.r8 = u64::from(self.num_vcpus) | u64::from(self.max_vcpus) << 32;
                r.r9 = u64::from(self.vcpu_index);
                r.r10 = 1;
                r.r11 = 0;
                status::SUCCESS
            }
            leaf::MR_RTMR_EXTEND => self.rtmr_extend(r),
            leaf::VP_VEINFO_GET => match self.ve.take() {
                Some(ve) => {
                    r.rcx = u64::from(ve.exit_reason);
                    r.rdx = ve.exit_qualification;
                    r.r8 = ve.guest_linear_address;
                    r.r9 = ve.guest_physical_address;
                    r.r10 = u64::from(ve.instruction_length) | u64::from(ve.instruction_info) << 32;
                    status::SUCCESS
                }
                None => status::NO_VALID_VE_INFO,
            },
            leaf::MR_REPORT => self.mr_report(r),
            leaf::MEM_PAGE_ACCEPT => self.accept(r),
            _ => {
                self.violation(format!("unsupported leaf {l}"));
                status::OPERAND_INVALID
            }
        };
        (s, None)
    }

    fn expect_zero(&mut self, r: &TdcallArgs, names: &[&str], l: u64) {
        for n in names {
            let v = match *n {
                "rcx" => r.rcx,
                "rdx" => r.rdx,
                "r8" => r.r8,
                "r9" => r.r9,
                "r10" => r.r10,
                "r11" => r.r11,
                "r12" => r.r12,
                "r13" => r.r13,
                "r14" => r.r14,
                "r15" => r.r15,
                _ => 0,
            };
            if v != 0 {
                self.violation(format!(
                    "{} (leaf {l:#x}, R11 {:#x}): unused register {n} = {v:#x} is not zero",
                    leaf::name(l),
                    r.r11
                ));
            }
        }
    }

    fn rtmr_extend(&mut self, r: &mut TdcallArgs) -> u64 {
        self.expect_zero(
            r,
            &["r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"],
            2,
        );
        if !r.rcx.is_multiple_of(64) || r.rcx & self.shared_bit() != 0 {
            self.violation(format!(
                "RTMR.EXTEND buffer {:#x} misaligned or shared",
                r.rcx
            ));
            return status::OPERAND_INVALID | status::OPERAND_RCX;
        }
        if r.rdx > 3 {
            self.violation(format!("RTMR.EXTEND index {}", r.rdx));
            return status::OPERAND_INVALID | status::OPERAND_RDX;
        }
        let Some(data) = self.digests.get(&r.rcx).copied() else {
            self.violation(format!("RTMR.EXTEND of unexposed buffer {:#x}", r.rcx));
            return status::OPERAND_INVALID | status::OPERAND_RCX;
        };
        let i = r.rdx as usize;
        let mut h = Sha384::new();
        h.update(self.rtmrs[i]);
        h.update(data);
        self.rtmrs[i].copy_from_slice(&h.finalize());
        status::SUCCESS
    }

    fn mr_report(&mut self, r: &mut TdcallArgs) -> u64 {
        self.expect_zero(r, &["r9", "r10", "r11", "r12", "r13", "r14", "r15"], 4);
        if !r.rcx.is_multiple_of(1024) {
            self.violation(format!(
                "MR.REPORT report buffer {:#x} not 1024-aligned",
                r.rcx
            ));
            return status::OPERAND_INVALID | status::OPERAND_RCX;
        }
        if !r.rdx.is_multiple_of(64) {
            self.violation(format!("MR.REPORT data {:#x} not 64-aligned", r.rdx));
            return status::OPERAND_INVALID | status::OPERAND_RDX;
        }
        if r.r8 != 0 {
            self.violation(format!("MR.REPORT subtype {}", r.r8));
            return status::OPERAND_INVALID | status::OPERAND_R8;
        }
        self.reports.push((r.rcx, r.rdx));
        status::SUCCESS
    }

    fn accept(&mut self, r: &mut TdcallArgs) -> u64 {
        self.expect_zero(
            r,
            &["rdx", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"],
            6,
        );
        let level = r.rcx & 7;
        let gpa = r.rcx & 0x000F_FFFF_FFFF_F000;
        let invalid = status::OPERAND_INVALID | status::OPERAND_RCX;
        if r.rcx & 0xFF8 != 0 || r.rcx >> 52 != 0 || level > 1 {
            self.violation(format!("ACCEPT RCX {:#x}: reserved bits or level", r.rcx));
            return invalid;
        }
        let size = if level == 1 { PAGE_2M } else { PAGE_4K };
        if !gpa.is_multiple_of(size) || gpa >= self.shared_bit() {
            self.violation(format!(
                "ACCEPT {gpa:#x} level {level}: misaligned or not private"
            ));
            return invalid;
        }
        if !self.in_ram(gpa, size) {
            // The real module exits to the VMM (EPT violation); no status comes back.
            self.violation(format!(
                "ACCEPT {gpa:#x} level {level}: not RAM the VMM added"
            ));
            return invalid;
        }
        let region = gpa & !(PAGE_2M - 1);
        if (gpa..gpa + size)
            .step_by(PAGE_4K as usize)
            .any(|p| self.shared.contains(&p))
        {
            self.violation(format!("ACCEPT {gpa:#x}: page is mapped shared"));
            return invalid;
        }
        let existing = self.regions.get(&region).copied();
        if level == 1 {
            match existing {
                Some(Region::Accepted2M) => status::PAGE_ALREADY_ACCEPTED | 1,
                Some(Region::Small(_)) => status::PAGE_SIZE_MISMATCH | 1,
                None if self.small_mapped.contains(&region) => status::PAGE_SIZE_MISMATCH | 1,
                None => {
                    self.regions.insert(region, Region::Accepted2M);
                    status::SUCCESS
                }
            }
        } else {
            let i = ((gpa - region) / PAGE_4K) as usize;
            match existing {
                Some(Region::Accepted2M) => status::PAGE_ALREADY_ACCEPTED | 1,
                Some(Region::Small(b)) if b[i / 64] & (1 << (i % 64)) != 0 => {
                    status::PAGE_ALREADY_ACCEPTED
                }
                _ => {
                    let e = self.regions.entry(region).or_insert(Region::Small([0; 8]));
                    if let Region::Small(b) = e {
                        b[i / 64] |= 1 << (i % 64);
                    }
                    status::SUCCESS
                }
            }
        }
    }

    fn vmcall(&mut self, r: &mut TdcallArgs) -> (u64, Option<u64>) {
        let mask = r.rcx;
        let gprs = mask & 0xFFFF;
        if mask >> 32 != 0 || gprs & 0b1_0011 != 0 || mask & 0xFFFF_0000 != 0 {
            // Bits 0/1/4 (RAX, RCX, RSP) and 63:32: the module refuses. XMM: we never expose.
            self.violation(format!("TDVMCALL bitmap {mask:#x} invalid"));
            return (status::OPERAND_INVALID | status::OPERAND_RCX, None);
        }
        if gprs & !vmcall::EXPOSABLE != 0 {
            self.violation(format!(
                "TDVMCALL bitmap {mask:#x} exposes registers the primitive does not carry"
            ));
        }
        let exposed = |bit: u32| gprs & (1 << bit) != 0;
        for (bit, name) in [(10, "R10"), (11, "R11")] {
            if !exposed(bit) {
                self.violation(format!("TDVMCALL bitmap {mask:#x} does not expose {name}"));
            }
        }
        // What the VMM sees: exposed registers, zero elsewhere.
        let seen = |v: u64, bit: u32| if exposed(bit) { v } else { 0 };
        let v = TdcallArgs {
            rax: 0,
            rcx: mask,
            rdx: seen(r.rdx, 2),
            r8: seen(r.r8, 8),
            r9: seen(r.r9, 9),
            r10: seen(r.r10, 10),
            r11: seen(r.r11, 11),
            r12: seen(r.r12, 12),
            r13: seen(r.r13, 13),
            r14: seen(r.r14, 14),
            r15: seen(r.r15, 15),
        };
        if v.r10 != 0 {
            self.violation(format!("TDVMCALL R10 = {:#x}: not a standard call", v.r10));
        }
        // Registers no sub-function here uses must carry nothing.
        self.expect_zero(&v, &["rdx", "r8", "r9"], 0);
        let sub = v.r11;
        let mut out = v;
        let r10 = match self.take_injection(leaf::VP_VMCALL, Some(sub)) {
            Some(Inject::TdcallStatus(s)) => return (s, None),
            Some(Inject::Status(s)) => s,
            Some(Inject::RawR11(x)) => {
                out.r11 = x;
                vmcall::SUCCESS
            }
            Some(Inject::MapGpaPartial(bytes)) if sub == vmcall::MAP_GPA => {
                match self.map_gpa(&v, Some(bytes)) {
                    Ok(next) => {
                        out.r11 = next;
                        vmcall::RETRY
                    }
                    Err(s) => s,
                }
            }
            Some(Inject::MapGpaResumeAt(x)) if sub == vmcall::MAP_GPA => {
                out.r11 = x;
                vmcall::RETRY
            }
            Some(other) => {
                self.violation(format!("injection {other:?} does not apply to {sub:#x}"));
                vmcall::INVALID_OPERAND
            }
            None => self.vmm(&v, &mut out),
        };
        // The module hands back the VMM's values in exposed registers only; the others keep
        // the TD's values.
        let back = |vmm: u64, td: u64, bit: u32| if exposed(bit) { vmm } else { td };
        r.rdx = back(out.rdx, r.rdx, 2);
        r.r8 = back(out.r8, r.r8, 8);
        r.r9 = back(out.r9, r.r9, 9);
        r.r10 = back(r10, r.r10, 10);
        r.r11 = back(out.r11, r.r11, 11);
        r.r12 = back(out.r12, r.r12, 12);
        r.r13 = back(out.r13, r.r13, 13);
        r.r14 = back(out.r14, r.r14, 14);
        r.r15 = back(out.r15, r.r15, 15);
        (status::SUCCESS, Some(r10))
    }

    /// The VMM (KVM + QEMU rules of §3.3).
    fn vmm(&mut self, v: &TdcallArgs, out: &mut TdcallArgs) -> u64 {
        let fits = |value: u64, size: u64| size >= 8 || value >> (size * 8) == 0;
        match v.r11 {
            vmcall::IO => {
                let (size, dir, port, value) = (v.r12, v.r13, v.r14, v.r15);
                if ![1, 2, 4].contains(&size) || dir > 1 || port > 0xFFFF {
                    self.violation(format!("IO size {size} dir {dir} port {port:#x}"));
                    return vmcall::INVALID_OPERAND;
                }
                if dir == 0 {
                    if value != 0 {
                        self.violation(format!("IO read with R15 = {value:#x}"));
                    }
                    out.r11 = self.ports.get(&(port as u16)).copied().unwrap_or(0);
                } else {
                    if !fits(value, size) {
                        self.violation(format!("IO write of {value:#x} wider than {size}"));
                    }
                    self.port_writes.push((port as u16, size, value));
                }
                vmcall::SUCCESS
            }
            vmcall::MMIO => {
                let (size, dir, gpa, value) = (v.r12, v.r13, v.r14, v.r15);
                if ![1, 2, 4, 8].contains(&size) || dir > 1 {
                    self.violation(format!("MMIO size {size} dir {dir}"));
                    return vmcall::INVALID_OPERAND;
                }
                if gpa & self.shared_bit() == 0 {
                    // KVM refuses private GPAs.
                    self.violation(format!("MMIO at private GPA {gpa:#x}"));
                    return vmcall::INVALID_OPERAND;
                }
                if !gpa.is_multiple_of(size) {
                    self.violation(format!("MMIO at {gpa:#x} not aligned to {size}"));
                }
                if dir == 0 {
                    out.r11 = self.mmio.get(&gpa).copied().unwrap_or(0);
                } else {
                    if !fits(value, size) {
                        self.violation(format!("MMIO write of {value:#x} wider than {size}"));
                    }
                    self.mmio.insert(gpa, value);
                }
                vmcall::SUCCESS
            }
            vmcall::CPUID => {
                if v.r12 >> 32 != 0 || v.r13 >> 32 != 0 || v.r14 != 0 || v.r15 != 0 {
                    self.violation(format!("CPUID R12 {:#x} R13 {:#x}", v.r12, v.r13));
                }
                let a = self
                    .cpuid
                    .get(&(v.r12 as u32, v.r13 as u32))
                    .copied()
                    .unwrap_or([0; 4]);
                out.r12 = u64::from(a[0]);
                out.r13 = u64::from(a[1]);
                out.r14 = u64::from(a[2]);
                out.r15 = u64::from(a[3]);
                vmcall::SUCCESS
            }
            vmcall::RDMSR => {
                self.expect_zero(v, &["r13", "r14", "r15"], 0);
                match self.msrs.get(&(v.r12 as u32)) {
                    Some(&x) if v.r12 >> 32 == 0 => {
                        out.r11 = x;
                        vmcall::SUCCESS
                    }
                    _ => vmcall::INVALID_OPERAND,
                }
            }
            vmcall::WRMSR => {
                self.expect_zero(v, &["r14", "r15"], 0);
                if v.r12 >> 32 != 0 {
                    return vmcall::INVALID_OPERAND;
                }
                self.msrs.insert(v.r12 as u32, v.r13);
                vmcall::SUCCESS
            }
            vmcall::MAP_GPA => {
                self.expect_zero(v, &["r14", "r15"], 0);
                match self.map_gpa(v, None) {
                    Ok(_) => vmcall::SUCCESS,
                    Err(s) => s,
                }
            }
            vmcall::REPORT_FATAL_ERROR => {
                if v.r12 & 0xFFFF != 0 {
                    self.violation(format!("ReportFatalError code {:#x}: bits 15:0 set", v.r12));
                    return vmcall::INVALID_OPERAND;
                }
                if v.r12 & 0x7FFF_FFFF_0000_0000 != 0 {
                    self.violation(format!("ReportFatalError R12 {:#x}: reserved bits", v.r12));
                }
                if v.r12 >> 63 == 0 && v.r13 != 0 {
                    self.violation(format!("ReportFatalError R13 {:#x} without bit 63", v.r13));
                }
                if v.r12 >> 63 == 1 {
                    // R13: a shared page, named by its shared GPA.
                    let bit = self.shared_bit();
                    let page = v.r13 & !bit;
                    if v.r13 & bit == 0
                        || !page.is_multiple_of(0x1000)
                        || !self.shared.contains(&page)
                    {
                        self.violation(format!(
                            "ReportFatalError R13 {:#x}: not the shared GPA of a shared page",
                            v.r13
                        ));
                    }
                }
                self.fatal = Some((v.r12, v.r13, v.r14, v.r15));
                vmcall::SUCCESS
            }
            other => {
                self.violation(format!("unknown TDVMCALL sub-function {other:#x}"));
                vmcall::SUBFUNC_UNSUPPORTED
            }
        }
    }

    /// KVM's MapGPA checks; converts at most `limit` bytes. Returns the next GPA when it stopped
    /// early, or the TDVMCALL error status.
    fn map_gpa(&mut self, v: &TdcallArgs, limit: Option<u64>) -> Result<u64, u64> {
        let (start, size) = (v.r12, v.r13);
        let bit = self.shared_bit();
        if !start.is_multiple_of(PAGE_4K) || !size.is_multiple_of(PAGE_4K) {
            self.violation(format!("MapGPA {start:#x}+{size:#x} unaligned"));
            return Err(vmcall::ALIGN_ERROR);
        }
        let Some(end) = start.checked_add(size) else {
            self.violation(format!("MapGPA {start:#x}+{size:#x} wraps"));
            return Err(vmcall::INVALID_OPERAND);
        };
        let max = 1u64 << self.gpa_width;
        if size == 0 || end > max || (start & bit) != ((end - 1) & bit) {
            self.violation(format!("MapGPA {start:#x}..{end:#x} invalid"));
            return Err(vmcall::INVALID_OPERAND);
        }
        let shared = start & bit != 0;
        let todo = limit.map_or(size, |l| l.min(size));
        let mut p = start;
        while p < start + todo {
            let private = p & !bit;
            if shared {
                self.shared.insert(private);
                self.unaccept(private);
            } else {
                self.shared.remove(&private);
            }
            p += PAGE_4K;
        }
        Ok(p)
    }
}

impl Tdcall for Model {
    fn tdcall(&self, regs: &mut TdcallArgs) -> u64 {
        let mut s = self.s.borrow_mut();
        let input = *regs;
        let (status, vmcall_status) = s.dispatch(regs);
        regs.rax = status;
        s.calls.push(Call {
            input,
            status,
            vmcall_status,
        });
        status
    }
}

/// The address of a report-data buffer, as the model sees it.
pub(crate) fn addr_of<T>(x: &T) -> u64 {
    core::ptr::from_ref(x) as u64
}
