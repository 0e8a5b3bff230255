//! Parking the application processors for the OS with the ACPI multiprocessor wakeup mailbox
//! (ACPI 6.4 §5.2.12.19, MADT structure type 0x10), the way TDX requires and Linux supports on
//! any x86-64 guest (`arch/x86/kernel/acpi/boot.c`, `acpi_parse_mp_wake`, since 5.16).
//!
//! The firmware puts every AP in a loop that runs from the firmware half of a 4 KiB mailbox page
//! (`td_layout::layout::MP_MAILBOX`, ACPI NVS after hand-off) and adds the wakeup structure to
//! the MADT. To start an AP, the OS writes the AP's APIC ID and a wakeup vector, then the command
//! Wakeup (1); the AP whose APIC ID matches reads the vector, writes Noop (0) to acknowledge, and
//! jumps there in 64-bit mode with the firmware's identity page tables, interrupts off. Test (2)
//! is acknowledged the same way and the AP keeps looping. Version 0 of the structure (16 bytes,
//! no reset vector): the OS cannot hand an offlined CPU back to the firmware.
//!
//! This module holds what is host-testable: the layouts, the MADT extension and the local APIC
//! commands. The trampoline, the loop and the start-up sequence are in `arch::mp`.

use crate::acpi::{AcpiError, HEADER_SIZE};
use alloc::vec::Vec;

/// MADT structure type of the multiprocessor wakeup structure.
pub const MADT_MP_WAKEUP: u8 = 0x10;
/// Length of a version-0 wakeup structure.
pub const WAKEUP_STRUCTURE_LEN: usize = 16;
/// Offset of Command (u16) in the mailbox.
pub const MAILBOX_COMMAND: usize = 0;
/// Offset of ApicId (u32) in the mailbox.
pub const MAILBOX_APIC_ID: usize = 4;
/// Offset of WakeupVector (u64) in the mailbox.
pub const MAILBOX_WAKEUP_VECTOR: usize = 8;
/// Start of the firmware's half of the mailbox page: the parked APs' loop is copied here.
pub const MAILBOX_FIRMWARE: usize = 2048;
/// Offset of the count of APs that reached the loop (u32, firmware half).
pub const MAILBOX_ARRIVED: usize = 4096 - 8;
/// Command: nothing to do (also the acknowledgement).
pub const COMMAND_NOOP: u16 = 0;
/// Command: jump to WakeupVector.
pub const COMMAND_WAKEUP: u16 = 1;
/// Command: acknowledge and keep waiting.
pub const COMMAND_TEST: u16 = 2;
/// Offset in the rendezvous page (`td_layout::layout::AP_RENDEZVOUS`) of the go word (u64):
/// the APs wait until it holds [`RENDEZVOUS_GO`].
pub const RENDEZVOUS_GO_WORD: usize = 0;
/// Offset of the page-table root the APs load (u32: the tables are below 4 GiB).
pub const RENDEZVOUS_CR3: usize = 8;
/// Offset of the EFER bits the APs set (u32: LME, and NXE where the tables use NX). An AP
/// writes EFER only if a bit is missing: under TDX they are already set and a write that
/// changed them would raise #VE.
pub const RENDEZVOUS_EFER: usize = 12;
/// Offset of the far pointer the APs jump through to enter long mode (offset u32, then the
/// 64-bit code selector u16): the firmware's 64-bit AP entry, below 4 GiB.
pub const RENDEZVOUS_TARGET: usize = 16;
/// Offset of the AP counter (u32, 0 at go): each AP takes its index with `lock xadd`.
pub const RENDEZVOUS_INDEX: usize = 24;
/// Offset of how many APs have a stack (u32); an AP whose index is not below it stops.
pub const RENDEZVOUS_CAPACITY: usize = 28;
/// Offset of the base of the AP stacks (u64); AP `i`'s stack ends at base + (i + 1) * size.
pub const RENDEZVOUS_STACKS: usize = 32;
/// Offset of the size of one AP stack (u64).
pub const RENDEZVOUS_STACK_SIZE: usize = 40;
/// Offset of the IDT pointer the APs load (limit u16, base u64): the boot CPU's IDT, so an
/// exception on an AP (a #VE under TDX) reaches the same handlers.
pub const RENDEZVOUS_IDTR: usize = 48;
/// Bytes of the rendezvous fields.
pub const RENDEZVOUS_LEN: usize = 64;
/// The 64-bit code selector of the firmware's GDT.
pub const CODE64_SELECTOR: u16 = 0x10;
/// The go word's value, written last: "TDSHIMGO". A whole 64-bit pattern rather than a flag,
/// so stale or uninitialised memory cannot release the APs early.
pub const RENDEZVOUS_GO: u64 = u64::from_le_bytes(*b"TDSHIMGO");

/// EFER.LME.
pub const EFER_LME: u32 = 1 << 8;
/// EFER.NXE.
pub const EFER_NXE: u32 = 1 << 11;

/// What the boot CPU gives the APs through the rendezvous page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rendezvous {
    /// The page-table root the APs load (below 4 GiB, 4 KiB aligned).
    pub cr3: u64,
    /// Whether the APs set EFER.NXE (the tables use NX bits).
    pub nxe: bool,
    /// The 64-bit entry the APs jump to (below 4 GiB).
    pub entry: u64,
    /// Base of the AP stacks (16-byte aligned).
    pub stacks: u64,
    /// Bytes of one stack (a multiple of 16).
    pub stack_size: u64,
    /// How many APs have a stack.
    pub capacity: u32,
    /// The IDT: limit and base.
    pub idt: (u16, u64),
}

impl Rendezvous {
    /// The rendezvous fields as bytes, go word zero (the caller writes these first and the go
    /// word last). `None` if a field does not fit what the 32-bit code reads or the stacks wrap.
    pub fn fields(&self) -> Option<[u8; RENDEZVOUS_LEN]> {
        let cr3 = u32::try_from(self.cr3).ok()?;
        let entry = u32::try_from(self.entry).ok()?;
        let stacks_end = self
            .stack_size
            .checked_mul(u64::from(self.capacity))?
            .checked_add(self.stacks)?;
        if !cr3.is_multiple_of(0x1000)
            || !self.stacks.is_multiple_of(16)
            || !self.stack_size.is_multiple_of(16)
            || self.stack_size == 0
            || self.capacity == 0
            || stacks_end == 0
        {
            return None;
        }
        let mut f = [0u8; RENDEZVOUS_LEN];
        let efer = EFER_LME | if self.nxe { EFER_NXE } else { 0 };
        f[RENDEZVOUS_CR3..][..4].copy_from_slice(&cr3.to_le_bytes());
        f[RENDEZVOUS_EFER..][..4].copy_from_slice(&efer.to_le_bytes());
        f[RENDEZVOUS_TARGET..][..4].copy_from_slice(&entry.to_le_bytes());
        f[RENDEZVOUS_TARGET + 4..][..2].copy_from_slice(&CODE64_SELECTOR.to_le_bytes());
        f[RENDEZVOUS_CAPACITY..][..4].copy_from_slice(&self.capacity.to_le_bytes());
        f[RENDEZVOUS_STACKS..][..8].copy_from_slice(&self.stacks.to_le_bytes());
        f[RENDEZVOUS_STACK_SIZE..][..8].copy_from_slice(&self.stack_size.to_le_bytes());
        f[RENDEZVOUS_IDTR..][..2].copy_from_slice(&self.idt.0.to_le_bytes());
        f[RENDEZVOUS_IDTR + 2..][..8].copy_from_slice(&self.idt.1.to_le_bytes());
        Some(f)
    }
}

/// MADT offset of the first interrupt controller structure (after the header, the local APIC
/// address and the flags).
pub const MADT_STRUCTURES: usize = HEADER_SIZE + 8;

/// The version-0 wakeup structure for a mailbox at `mailbox`.
pub fn wakeup_structure(mailbox: u64) -> [u8; WAKEUP_STRUCTURE_LEN] {
    let mut s = [0u8; WAKEUP_STRUCTURE_LEN];
    s[0] = MADT_MP_WAKEUP;
    s[1] = WAKEUP_STRUCTURE_LEN as u8;
    // MailboxVersion 0 (2..4) and Reserved (4..8) stay zero.
    s[8..16].copy_from_slice(&mailbox.to_le_bytes());
    s
}

/// A copy of the VMM's MADT (`madt`, its whole Length) with `structure` appended, its Length
/// and checksum fixed. Refuses a table that is not an MADT or whose Length is not its size, and
/// an MADT that already has a wakeup structure (two would leave the OS to pick one).
pub fn extend_madt(madt: &[u8], structure: &[u8]) -> Result<Vec<u8>, AcpiError> {
    if madt.len() < MADT_STRUCTURES || madt.get(..4) != Some(b"APIC") {
        return Err(AcpiError::BadMadt);
    }
    let length = u32::from_le_bytes([madt[4], madt[5], madt[6], madt[7]]);
    if usize::try_from(length).ok() != Some(madt.len()) {
        return Err(AcpiError::BadMadt);
    }
    // Walk the structures: each has a type and a length of at least 2.
    let mut at = MADT_STRUCTURES;
    while at < madt.len() {
        let (kind, len) = match (madt.get(at), madt.get(at + 1)) {
            (Some(&k), Some(&l)) if l >= 2 => (k, usize::from(l)),
            _ => return Err(AcpiError::BadMadt),
        };
        if kind == MADT_MP_WAKEUP {
            return Err(AcpiError::BadMadt);
        }
        at = at.checked_add(len).ok_or(AcpiError::BadMadt)?;
    }
    if at != madt.len() {
        return Err(AcpiError::BadMadt);
    }
    let new_len = madt
        .len()
        .checked_add(structure.len())
        .and_then(|l| u32::try_from(l).ok())
        .ok_or(AcpiError::BadMadt)?;
    let mut out = Vec::with_capacity(new_len as usize);
    out.extend_from_slice(madt);
    out.extend_from_slice(structure);
    out[4..8].copy_from_slice(&new_len.to_le_bytes());
    out[9] = 0;
    out[9] = 0u8.wrapping_sub(out.iter().fold(0u8, |a, &b| a.wrapping_add(b)));
    Ok(out)
}

/// The local APIC's MMIO base (xAPIC mode, the reset default).
pub const LAPIC_BASE: u64 = 0xFEE0_0000;
/// Offset of the interrupt command register's low half (writing it sends the IPI).
pub const ICR_LOW: u64 = 0x300;
/// Offset of the ICR's high half (the destination, unused with a shorthand).
pub const ICR_HIGH: u64 = 0x310;
/// ICR bit 12: the previous IPI is still being delivered.
pub const ICR_DELIVERY_PENDING: u32 = 1 << 12;
/// ICR: INIT (delivery mode 101b), level assert, to all processors but the sender.
pub const ICR_INIT_ALL_BUT_SELF: u32 = 0x000C_4500;

/// ICR: Start-up (delivery mode 110b), level assert, to all but the sender, starting at
/// `page << 12` in real mode.
pub const fn icr_sipi_all_but_self(page: u8) -> u32 {
    0x000C_4600 | page as u32
}

/// Why the APs could not be parked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MpError {
    /// The trampoline or the loop does not fit its page (a build error).
    CodeTooLarge,
    /// The trampoline page or the mailbox page is not a whole page.
    BadPage,
    /// Not every AP reached the loop in time.
    Missing {
        /// APs expected (vCPUs minus the boot CPU).
        expected: u32,
        /// APs that arrived.
        arrived: u32,
    },
}

impl core::fmt::Display for MpError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::CodeTooLarge => write!(f, "mp: the AP trampoline or loop does not fit its page"),
            Self::BadPage => write!(f, "mp: the trampoline or mailbox page is not 4 KiB"),
            Self::Missing { expected, arrived } => write!(
                f,
                "mp: {arrived} of {expected} application processors reached the wakeup loop"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    /// A small MADT as QEMU builds it: header, LAPIC address, flags, two local APICs, an IOAPIC.
    fn qemu_madt() -> Vec<u8> {
        let mut body = std::vec::Vec::new();
        body.extend_from_slice(&0xFEE0_0000u32.to_le_bytes());
        body.extend_from_slice(&1u32.to_le_bytes());
        for id in 0..2u8 {
            body.extend_from_slice(&[0, 8, id, id, 1, 0, 0, 0]);
        }
        body.extend_from_slice(&[1, 12, 0, 0, 0, 0, 0xC0, 0xFE, 0, 0, 0, 0]);
        crate::acpi::table(*b"APIC", 3, &body)
    }

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |a, &x| a.wrapping_add(x))
    }

    #[test]
    fn the_rendezvous_fields_are_where_the_ap_code_reads_them() {
        let r = Rendezvous {
            cr3: 0x18_0000,
            nxe: true,
            entry: 0x20_1234,
            stacks: 0x60_0000,
            stack_size: 0x2000,
            capacity: 3,
            idt: (0xFFF, 0x10_2000),
        };
        let f = r.fields().unwrap();
        let u32_at = |o: usize| u32::from_le_bytes(f[o..o + 4].try_into().unwrap());
        let u64_at = |o: usize| u64::from_le_bytes(f[o..o + 8].try_into().unwrap());
        assert_eq!(
            u64_at(RENDEZVOUS_GO_WORD),
            0,
            "the go word is written separately, last"
        );
        assert_eq!(u32_at(RENDEZVOUS_CR3), 0x18_0000);
        assert_eq!(u32_at(RENDEZVOUS_EFER), 0x900);
        assert_eq!(u32_at(RENDEZVOUS_TARGET), 0x20_1234);
        assert_eq!(&f[RENDEZVOUS_TARGET + 4..RENDEZVOUS_TARGET + 6], &[0x10, 0]);
        assert_eq!(u32_at(RENDEZVOUS_INDEX), 0);
        assert_eq!(u32_at(RENDEZVOUS_CAPACITY), 3);
        assert_eq!(u64_at(RENDEZVOUS_STACKS), 0x60_0000);
        assert_eq!(u64_at(RENDEZVOUS_STACK_SIZE), 0x2000);
        assert_eq!(&f[RENDEZVOUS_IDTR..RENDEZVOUS_IDTR + 2], &[0xFF, 0x0F]);
        assert_eq!(u64_at(RENDEZVOUS_IDTR + 2), 0x10_2000);
        assert_eq!(RENDEZVOUS_GO.to_le_bytes(), *b"TDSHIMGO");
        let without_nx = Rendezvous { nxe: false, ..r }.fields().unwrap();
        assert_eq!(without_nx[RENDEZVOUS_EFER..][..4], 0x100u32.to_le_bytes());
        // What the 32-bit code cannot load, or stacks that wrap or do not exist, is refused.
        for bad in [
            Rendezvous { cr3: 1 << 32, ..r },
            Rendezvous {
                cr3: 0x18_0800,
                ..r
            },
            Rendezvous {
                entry: 1 << 32,
                ..r
            },
            Rendezvous {
                stacks: 0x60_0008,
                ..r
            },
            Rendezvous { stack_size: 0, ..r },
            Rendezvous {
                stack_size: 0x2008,
                ..r
            },
            Rendezvous { capacity: 0, ..r },
            Rendezvous {
                stacks: u64::MAX - 15,
                ..r
            },
        ] {
            assert_eq!(bad.fields(), None, "{bad:?}");
        }
    }

    #[test]
    fn the_wakeup_structure_is_appended_with_length_and_checksum() {
        let madt = qemu_madt();
        let s = wakeup_structure(0x1B_0000);
        assert_eq!(s[..2], [0x10, 16]);
        assert_eq!(u64::from_le_bytes(s[8..16].try_into().unwrap()), 0x1B_0000);
        let out = extend_madt(&madt, &s).unwrap();
        assert_eq!(out.len(), madt.len() + 16);
        assert_eq!(
            u32::from_le_bytes(out[4..8].try_into().unwrap()) as usize,
            out.len()
        );
        assert_eq!(sum(&out), 0, "checksum");
        assert_eq!(&out[..4], b"APIC");
        assert_eq!(&out[madt.len()..], &s);
        // The VMM's structures are kept byte for byte.
        assert_eq!(out[10..madt.len()], madt[10..]);
    }

    #[test]
    fn malformed_madts_are_refused() {
        let madt = qemu_madt();
        let s = wakeup_structure(0x1000);
        let mut wrong_sig = madt.clone();
        wrong_sig[0] = b'X';
        assert_eq!(extend_madt(&wrong_sig, &s), Err(AcpiError::BadMadt));
        let mut long = madt.clone();
        long[4] = long[4].wrapping_add(1);
        assert_eq!(extend_madt(&long, &s), Err(AcpiError::BadMadt));
        let mut zero_len = madt.clone();
        zero_len[MADT_STRUCTURES + 1] = 0;
        assert_eq!(extend_madt(&zero_len, &s), Err(AcpiError::BadMadt));
        let mut overrun = madt.clone();
        overrun[MADT_STRUCTURES + 1] = 200;
        assert_eq!(extend_madt(&overrun, &s), Err(AcpiError::BadMadt));
        let twice = extend_madt(&madt, &s).unwrap();
        assert_eq!(extend_madt(&twice, &s), Err(AcpiError::BadMadt));
        assert_eq!(extend_madt(&madt[..20], &s), Err(AcpiError::BadMadt));
    }

    #[test]
    fn ipi_commands() {
        assert_eq!(ICR_INIT_ALL_BUT_SELF, 0xC4500);
        assert_eq!(icr_sipi_all_but_self(0x08), 0xC4608);
    }

    proptest::proptest! {
        #[test]
        fn any_madt_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = extend_madt(&bytes, &wakeup_structure(0x1000));
        }
    }
}
