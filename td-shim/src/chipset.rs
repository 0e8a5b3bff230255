//! The little chipset set-up the VMM's ACPI tables depend on.
//!
//! QEMU builds its ACPI tables when the firmware first reads them through fw_cfg, from the
//! machine's state at that moment. On q35 the ACPI power-management registers (PM1 event and
//! control blocks, PM timer, GPE0) live at the I/O base programmed in the ICH9 LPC bridge
//! (bus 0, device 0x1f, function 0): until the firmware sets PMBASE and enables the ACPI I/O
//! decode, the FADT describes them at address 0 and Linux can neither enter ACPI mode nor power
//! off. So this runs before the tables are read.
//!
//! PCI configuration space is reached through the legacy mechanism (ports 0xCF8/0xCFC), which
//! every platform offers through its port I/O (directly, or by #VE/#VC under TDX/SNP).

use crate::port_io::PortIo;

/// The configuration address port.
pub const CONFIG_ADDRESS: u16 = 0xCF8;
/// The configuration data port.
pub const CONFIG_DATA: u16 = 0xCFC;

/// Intel's PCI vendor ID.
pub const VENDOR_INTEL: u16 = 0x8086;
/// Device ID of QEMU q35's ICH9 LPC bridge.
pub const ICH9_LPC: u16 = 0x2918;
/// ICH9 LPC: the ACPI PM I/O base register (bits 15:7, bit 0 reads as 1 for I/O).
pub const ICH9_PMBASE: u8 = 0x40;
/// ICH9 LPC: ACPI control; bit 7 enables the PM I/O decode.
pub const ICH9_ACPI_CNTL: u8 = 0x44;
/// ICH9 ACPI control bit: ACPI I/O enable.
pub const ICH9_ACPI_EN: u8 = 0x80;
/// The PM I/O base this firmware programs (the one SeaBIOS and OVMF use on q35).
pub const PM_IO_BASE: u16 = 0x600;

/// A function's location on bus 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Function {
    /// Device number (0..32).
    pub device: u8,
    /// Function number (0..8).
    pub function: u8,
}

fn address(f: Function, offset: u8) -> u32 {
    0x8000_0000
        | (u32::from(f.device & 0x1F) << 11)
        | (u32::from(f.function & 0x7) << 8)
        | u32::from(offset & 0xFC)
}

/// PCI configuration access on bus 0 through ports 0xCF8/0xCFC.
pub struct PciConfig<'a, P: PortIo + ?Sized> {
    io: &'a P,
}

impl<'a, P: PortIo + ?Sized> PciConfig<'a, P> {
    /// Access through `io`.
    pub fn new(io: &'a P) -> Self {
        PciConfig { io }
    }

    /// Reads the aligned dword holding `offset`.
    pub fn read32(&self, f: Function, offset: u8) -> u32 {
        self.io.outl(CONFIG_ADDRESS, address(f, offset));
        self.io.inl(CONFIG_DATA)
    }

    /// Writes the aligned dword holding `offset`.
    pub fn write32(&self, f: Function, offset: u8, value: u32) {
        self.io.outl(CONFIG_ADDRESS, address(f, offset));
        self.io.outl(CONFIG_DATA, value);
    }

    /// Vendor and device ID, or `None` if nothing answers there.
    pub fn ids(&self, f: Function) -> Option<(u16, u16)> {
        let v = self.read32(f, 0);
        let vendor = v as u16;
        (vendor != 0xFFFF && vendor != 0).then_some((vendor, (v >> 16) as u16))
    }
}

/// What [`enable_acpi_pm`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcpiPm {
    /// q35: ICH9 LPC programmed with PMBASE = [`PM_IO_BASE`] and ACPI decode on.
    Ich9 {
        /// The PM I/O base now in effect.
        base: u16,
    },
    /// No chipset this firmware knows: the VMM's tables are used as they come.
    Unknown,
}

/// Programs the ACPI PM I/O base of the machine's chipset, if it is one this firmware knows.
pub fn enable_acpi_pm<P: PortIo + ?Sized>(io: &P) -> AcpiPm {
    let pci = PciConfig::new(io);
    let lpc = Function {
        device: 0x1F,
        function: 0,
    };
    if pci.ids(lpc) != Some((VENDOR_INTEL, ICH9_LPC)) {
        return AcpiPm::Unknown;
    }
    pci.write32(lpc, ICH9_PMBASE, u32::from(PM_IO_BASE) | 1);
    let cntl = pci.read32(lpc, ICH9_ACPI_CNTL);
    pci.write32(lpc, ICH9_ACPI_CNTL, cntl | u32::from(ICH9_ACPI_EN));
    let base = (pci.read32(lpc, ICH9_PMBASE) & 0xFF80) as u16;
    AcpiPm::Ich9 { base }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use core::cell::RefCell;
    use std::collections::BTreeMap;

    /// A bus-0 configuration space of dwords, behind the 0xCF8/0xCFC ports.
    #[derive(Default)]
    struct FakePci {
        address: RefCell<u32>,
        space: RefCell<BTreeMap<u32, u32>>,
    }

    impl PortIo for FakePci {
        fn inb(&self, _port: u16) -> u8 {
            0xFF
        }
        fn outb(&self, _port: u16, _value: u8) {}
        fn outw(&self, _port: u16, _value: u16) {}
        fn outl(&self, port: u16, value: u32) {
            match port {
                CONFIG_ADDRESS => *self.address.borrow_mut() = value,
                CONFIG_DATA => {
                    let a = *self.address.borrow();
                    let v = if a & 0xFC == u32::from(ICH9_PMBASE) {
                        // PMBASE: bits 15:7 writable, bit 0 hard-wired to 1.
                        (value & 0xFF80) | 1
                    } else {
                        value
                    };
                    self.space.borrow_mut().insert(a, v);
                }
                _ => {}
            }
        }
        fn inl(&self, port: u16) -> u32 {
            assert_eq!(port, CONFIG_DATA);
            let a = *self.address.borrow();
            *self.space.borrow().get(&a).unwrap_or(&0xFFFF_FFFF)
        }
    }

    #[test]
    fn programs_the_ich9_pm_base() {
        let pci = FakePci::default();
        let lpc = Function {
            device: 0x1F,
            function: 0,
        };
        pci.space.borrow_mut().insert(
            address(lpc, 0),
            u32::from(ICH9_LPC) << 16 | u32::from(VENDOR_INTEL),
        );
        pci.space
            .borrow_mut()
            .insert(address(lpc, ICH9_ACPI_CNTL), 0x0000_0004);
        assert_eq!(enable_acpi_pm(&pci), AcpiPm::Ich9 { base: 0x600 });
        let cfg = PciConfig::new(&pci);
        assert_eq!(
            cfg.read32(lpc, ICH9_ACPI_CNTL),
            0x84,
            "enable added, other bits kept"
        );
        assert_eq!(address(lpc, ICH9_PMBASE), 0x8000_F840);
    }

    #[test]
    fn leaves_unknown_chipsets_alone() {
        let pci = FakePci::default();
        assert_eq!(enable_acpi_pm(&pci), AcpiPm::Unknown);
        assert!(pci.space.borrow().is_empty(), "nothing written");
    }
}
