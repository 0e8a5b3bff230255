//! QEMU's firmware configuration device (fw_cfg), through its I/O ports.
//!
//! The selector port takes a 16-bit item key; the data port then yields the item's bytes in
//! order. Item 0x0000 holds the signature "QEMU"; item 0x0019 the file directory: a big-endian
//! u32 count, then 64-byte entries (size u32 BE, select u16 BE, reserved u16, name[56] NUL
//! padded). Everything read here comes from the VMM and is bounded before use.

use crate::platform::PortIo;
use alloc::vec::Vec;
use core::fmt;

/// I/O port of the selector register.
pub const SELECTOR_PORT: u16 = 0x510;
/// I/O port of the data register.
pub const DATA_PORT: u16 = 0x511;
/// Item key of the signature.
pub const SIGNATURE_KEY: u16 = 0x0000;
/// Item key of the file directory.
pub const FILE_DIR_KEY: u16 = 0x0019;
/// Item key of the interface ID: bit 0 traditional interface, bit 1 DMA.
pub const ID_KEY: u16 = 0x0001;
/// `ID_KEY` bit saying the DMA interface exists.
pub const ID_DMA: u32 = 1 << 1;
/// Item keys of QEMU's direct Linux boot (`-kernel`, `-initrd`, `-append`). Sizes are u32 LE.
pub mod linux_boot {
    /// Size of the protected-mode kernel.
    pub const KERNEL_SIZE: u16 = 0x08;
    /// Size of the initrd.
    pub const INITRD_SIZE: u16 = 0x0B;
    /// The protected-mode kernel: the bzImage after its setup sectors.
    pub const KERNEL_DATA: u16 = 0x11;
    /// The initrd.
    pub const INITRD_DATA: u16 = 0x12;
    /// Size of the command line, including its NUL.
    pub const CMDLINE_SIZE: u16 = 0x14;
    /// The command line, NUL-terminated.
    pub const CMDLINE_DATA: u16 = 0x15;
    /// Size of the setup sectors (boot sector + real-mode setup, with the setup header).
    pub const SETUP_SIZE: u16 = 0x17;
    /// The setup sectors.
    pub const SETUP_DATA: u16 = 0x18;
}

/// I/O port of the high half of the 64-bit big-endian DMA address register.
pub const DMA_ADDRESS_HIGH_PORT: u16 = 0x514;
/// I/O port of the low half; writing it starts the transfer.
pub const DMA_ADDRESS_LOW_PORT: u16 = 0x518;
/// DMA control bit: the transfer failed.
pub const DMA_ERROR: u32 = 0x01;
/// DMA control bit: read from the item.
pub const DMA_READ: u32 = 0x02;
/// DMA control bit: select the item in bits 31:16 first.
pub const DMA_SELECT: u32 = 0x08;

/// The control word of a DMA request that selects `key` and reads from its start.
pub const fn dma_select_read(key: u16) -> u32 {
    ((key as u32) << 16) | DMA_SELECT | DMA_READ
}

/// The 16-byte `FWCfgDmaAccess` descriptor the device reads: control, length, address, all
/// big-endian.
pub fn dma_descriptor(control: u32, length: u32, address: u64) -> [u8; 16] {
    let mut d = [0u8; 16];
    d[0..4].copy_from_slice(&control.to_be_bytes());
    d[4..8].copy_from_slice(&length.to_be_bytes());
    d[8..16].copy_from_slice(&address.to_be_bytes());
    d
}

/// What the control word says once the device has written it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmaStatus {
    /// Still running.
    Busy,
    /// Finished.
    Done,
    /// The device reported an error.
    Failed,
}

/// Decodes the control word the device writes back (big-endian on the wire, given here as read).
pub const fn dma_status(control: u32) -> DmaStatus {
    if control & DMA_ERROR != 0 {
        DmaStatus::Failed
    } else if control == 0 {
        DmaStatus::Done
    } else {
        DmaStatus::Busy
    }
}

/// Length of a name in a directory entry.
pub const NAME_LEN: usize = 56;
/// Most directory entries this reader walks (QEMU has a few dozen).
pub const MAX_FILES: u32 = 4096;

/// Why reading fw_cfg failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FwCfgError {
    /// The signature item is not "QEMU": no fw_cfg device.
    NotPresent,
    /// The directory claims more than [`MAX_FILES`] entries.
    TooManyFiles(u32),
    /// No file of that name.
    FileNotFound(&'static str),
    /// A DMA transfer reported an error.
    DmaFailed {
        /// Item key.
        key: u16,
    },
    /// An item is larger than the buffer given for it.
    ItemTooLarge {
        /// Item key.
        key: u16,
        /// Its size.
        size: u32,
        /// The buffer's size.
        max: usize,
    },
    /// The file is larger than the caller allows.
    FileTooLarge {
        /// File name.
        name: &'static str,
        /// Size the directory gives.
        size: u32,
        /// Largest size accepted.
        max: u32,
    },
}

impl fmt::Display for FwCfgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotPresent => write!(f, "fw_cfg: no device (signature is not \"QEMU\")"),
            Self::TooManyFiles(n) => {
                write!(
                    f,
                    "fw_cfg: directory claims {n} files (more than {MAX_FILES})"
                )
            }
            Self::FileNotFound(name) => write!(f, "fw_cfg: no file \"{name}\""),
            Self::DmaFailed { key } => write!(f, "fw_cfg: DMA read of item {key:#x} failed"),
            Self::ItemTooLarge { key, size, max } => write!(
                f,
                "fw_cfg: item {key:#x} has {size} bytes, more than the {max} bytes of room for it"
            ),
            Self::FileTooLarge { name, size, max } => write!(
                f,
                "fw_cfg: file \"{name}\" has {size} bytes, more than the {max} accepted"
            ),
        }
    }
}

/// A file in the fw_cfg directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FwCfgFile {
    /// Item key to select it.
    pub select: u16,
    /// Size in bytes.
    pub size: u32,
}

/// The fw_cfg device over some port I/O.
pub struct FwCfg<'a, P: PortIo + ?Sized> {
    io: &'a P,
}

impl<'a, P: PortIo + ?Sized> FwCfg<'a, P> {
    /// Checks the signature and returns the device.
    pub fn probe(io: &'a P) -> Result<Self, FwCfgError> {
        let dev = FwCfg { io };
        let mut sig = [0u8; 4];
        dev.select(SIGNATURE_KEY);
        dev.read(&mut sig);
        if &sig != b"QEMU" {
            return Err(FwCfgError::NotPresent);
        }
        Ok(dev)
    }

    fn select(&self, key: u16) {
        self.io.outw(SELECTOR_PORT, key);
    }

    fn read(&self, buf: &mut [u8]) {
        for b in buf {
            *b = self.io.inb(DATA_PORT);
        }
    }

    /// Whether the device offers the DMA interface.
    pub fn has_dma(&self) -> bool {
        self.read_u32(ID_KEY) & ID_DMA != 0
    }

    /// Reads a little-endian u32 item (the sizes of the Linux boot items, the interface ID).
    pub fn read_u32(&self, key: u16) -> u32 {
        let mut v = [0u8; 4];
        self.select(key);
        self.read(&mut v);
        u32::from_le_bytes(v)
    }

    /// Reads the first `dst.len()` bytes of item `key` through the data port.
    pub fn read_item(&self, key: u16, dst: &mut [u8]) {
        self.select(key);
        self.read(dst);
    }

    /// Looks `name` up in the file directory.
    pub fn find(&self, name: &'static str) -> Result<FwCfgFile, FwCfgError> {
        self.lookup(name)?.ok_or(FwCfgError::FileNotFound(name))
    }

    /// Looks `name` up in the file directory; `None` if there is no such file.
    pub fn lookup(&self, name: &str) -> Result<Option<FwCfgFile>, FwCfgError> {
        self.select(FILE_DIR_KEY);
        let mut count = [0u8; 4];
        self.read(&mut count);
        let count = u32::from_be_bytes(count);
        if count > MAX_FILES {
            return Err(FwCfgError::TooManyFiles(count));
        }
        for _ in 0..count {
            let mut entry = [0u8; 64];
            self.read(&mut entry);
            let name_field = &entry[8..8 + NAME_LEN];
            let len = name_field.iter().position(|&b| b == 0).unwrap_or(NAME_LEN);
            if &name_field[..len] == name.as_bytes() {
                return Ok(Some(FwCfgFile {
                    size: u32::from_be_bytes([entry[0], entry[1], entry[2], entry[3]]),
                    select: u16::from_be_bytes([entry[4], entry[5]]),
                }));
            }
        }
        Ok(None)
    }

    /// Reads the whole file `name`, refusing files larger than `max` bytes.
    pub fn read_file(&self, name: &'static str, max: u32) -> Result<Vec<u8>, FwCfgError> {
        let file = self.find(name)?;
        if file.size > max {
            return Err(FwCfgError::FileTooLarge {
                name,
                size: file.size,
                max,
            });
        }
        let mut data = alloc::vec![0u8; file.size as usize];
        self.select(file.select);
        self.read(&mut data);
        Ok(data)
    }
}

#[cfg(test)]
pub(crate) mod fake {
    //! A fw_cfg device in memory, speaking the port protocol, for host tests.
    extern crate std;
    use super::*;
    use core::cell::RefCell;
    use std::collections::BTreeMap;

    /// Items by key; the selected key and read offset.
    pub struct FakeFwCfg {
        items: BTreeMap<u16, Vec<u8>>,
        state: RefCell<(u16, usize)>,
    }

    impl FakeFwCfg {
        /// A device with the signature and the given files (keys from 0x20 up).
        pub fn with_files(files: &[(&str, &[u8])]) -> Self {
            let mut items = BTreeMap::new();
            items.insert(SIGNATURE_KEY, b"QEMU".to_vec());
            let mut dir = (files.len() as u32).to_be_bytes().to_vec();
            for (i, (name, data)) in files.iter().enumerate() {
                let key = 0x20 + i as u16;
                let mut entry = [0u8; 64];
                entry[0..4].copy_from_slice(&(data.len() as u32).to_be_bytes());
                entry[4..6].copy_from_slice(&key.to_be_bytes());
                entry[8..8 + name.len()].copy_from_slice(name.as_bytes());
                dir.extend_from_slice(&entry);
                items.insert(key, data.to_vec());
            }
            items.insert(FILE_DIR_KEY, dir);
            FakeFwCfg {
                items,
                state: RefCell::new((0, 0)),
            }
        }

        /// Replaces an item's raw bytes (to corrupt the directory or signature).
        pub fn set_item(&mut self, key: u16, bytes: Vec<u8>) {
            self.items.insert(key, bytes);
        }
    }

    impl PortIo for FakeFwCfg {
        fn inb(&self, port: u16) -> u8 {
            assert_eq!(port, DATA_PORT);
            let mut st = self.state.borrow_mut();
            let b = self
                .items
                .get(&st.0)
                .and_then(|v| v.get(st.1).copied())
                .unwrap_or(0);
            st.1 += 1;
            b
        }
        fn outb(&self, _port: u16, _value: u8) {}
        fn outl(&self, _port: u16, _value: u32) {}
        fn inl(&self, _port: u16) -> u32 {
            u32::MAX
        }
        fn outw(&self, port: u16, value: u16) {
            assert_eq!(port, SELECTOR_PORT);
            *self.state.borrow_mut() = (value, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::FakeFwCfg;
    use super::*;

    #[test]
    fn reads_a_file_by_name() {
        let dev = FakeFwCfg::with_files(&[("etc/boot-fail-wait", b"\x05"), ("etc/e820", b"abc")]);
        let fw = FwCfg::probe(&dev).unwrap();
        assert_eq!(fw.read_file("etc/e820", 16).unwrap(), b"abc");
        assert_eq!(
            fw.read_file("etc/e820", 2).unwrap_err(),
            FwCfgError::FileTooLarge {
                name: "etc/e820",
                size: 3,
                max: 2
            }
        );
        assert_eq!(
            fw.find("etc/e82").unwrap_err(),
            FwCfgError::FileNotFound("etc/e82")
        );
    }

    #[test]
    fn dma_descriptor_is_big_endian() {
        let d = dma_descriptor(dma_select_read(0x11), 0x1234, 0x0102_0304_0506_0708);
        assert_eq!(d[0..4], [0x00, 0x11, 0x00, 0x0A]);
        assert_eq!(d[4..8], [0, 0, 0x12, 0x34]);
        assert_eq!(d[8..16], [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(dma_status(0), DmaStatus::Done);
        assert_eq!(dma_status(DMA_READ), DmaStatus::Busy);
        assert_eq!(dma_status(DMA_READ | DMA_ERROR), DmaStatus::Failed);
    }

    #[test]
    fn reads_u32_items_and_the_dma_bit() {
        let mut dev = FakeFwCfg::with_files(&[]);
        dev.set_item(ID_KEY, 3u32.to_le_bytes().to_vec());
        dev.set_item(
            linux_boot::KERNEL_SIZE,
            0x00C0_FFEEu32.to_le_bytes().to_vec(),
        );
        let fw = FwCfg::probe(&dev).unwrap();
        assert!(fw.has_dma());
        assert_eq!(fw.read_u32(linux_boot::KERNEL_SIZE), 0x00C0_FFEE);
        let mut two = [0u8; 2];
        fw.read_item(linux_boot::KERNEL_SIZE, &mut two);
        assert_eq!(two, [0xEE, 0xFF]);
        dev.set_item(ID_KEY, 1u32.to_le_bytes().to_vec());
        assert!(!FwCfg::probe(&dev).unwrap().has_dma());
    }

    #[test]
    fn refuses_missing_device_and_absurd_directory() {
        let mut dev = FakeFwCfg::with_files(&[]);
        dev.set_item(SIGNATURE_KEY, b"BOCH".to_vec());
        assert_eq!(FwCfg::probe(&dev).err(), Some(FwCfgError::NotPresent));
        let mut dev = FakeFwCfg::with_files(&[]);
        dev.set_item(FILE_DIR_KEY, u32::MAX.to_be_bytes().to_vec());
        let fw = FwCfg::probe(&dev).unwrap();
        assert_eq!(
            fw.find("etc/e820").unwrap_err(),
            FwCfgError::TooManyFiles(u32::MAX)
        );
    }
}
