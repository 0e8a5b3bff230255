//! QEMU's firmware configuration device (fw_cfg), through its I/O ports.
//!
//! The selector port takes a 16-bit item key; the data port then yields the item's bytes in
//! order. Item 0x0000 holds the signature "QEMU"; item 0x0019 the file directory: a big-endian
//! u32 count, then 64-byte entries (size u32 BE, select u16 BE, reserved u16, name[56] NUL
//! padded). Everything read here comes from the VMM and is bounded before use.

use crate::port_io::PortIo;
use alloc::vec::Vec;
use core::fmt;
use zerocopy::byteorder::{BigEndian, U16, U32};
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

/// I/O port of the selector register.
pub const SELECTOR_PORT: u16 = 0x510;
/// I/O port of the data register.
pub const DATA_PORT: u16 = 0x511;
/// Item key of the signature.
pub const SIGNATURE_KEY: u16 = 0x0000;
/// Item key of the file directory.
pub const FILE_DIR_KEY: u16 = 0x0019;
/// Item key of the RAM size (u64 LE), which the reset code checks before it writes any RAM.
pub const RAM_SIZE_KEY: u16 = 0x0003;
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
/// Size of one directory entry: size u32 BE, select u16 BE, reserved u16, name.
pub const DIR_ENTRY_SIZE: usize = 64;
/// Most directory entries this reader accepts (QEMU has a few dozen).
pub const MAX_FILES: u32 = 4096;
/// How many times a DMA transfer's control word is read before the transfer is declared hung.
/// QEMU completes a transfer before the write that starts it returns, so the first read
/// normally sees it done; this bound only stops a VMM that never finishes.
pub const DMA_POLL_LIMIT: u32 = 10_000_000;

/// Why reading fw_cfg failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FwCfgError {
    /// The signature item is not "QEMU": no fw_cfg device.
    NotPresent,
    /// The directory claims more than [`MAX_FILES`] entries.
    TooManyFiles(u32),
    /// The directory's bytes end before the entries it claims.
    TruncatedDirectory {
        /// Entries claimed.
        count: u32,
        /// Bytes present.
        len: usize,
    },
    /// No file of that name.
    FileNotFound(&'static str),
    /// A DMA transfer reported an error.
    DmaFailed {
        /// Item key.
        key: u16,
    },
    /// A DMA transfer did not complete within [`DMA_POLL_LIMIT`] polls.
    DmaTimeout {
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
            Self::TruncatedDirectory { count, len } => write!(
                f,
                "fw_cfg: directory claims {count} files but has only {len} bytes"
            ),
            Self::FileNotFound(name) => write!(f, "fw_cfg: no file \"{name}\""),
            Self::DmaFailed { key } => write!(f, "fw_cfg: DMA read of item {key:#x} failed"),
            Self::DmaTimeout { key } => write!(
                f,
                "fw_cfg: DMA read of item {key:#x} did not complete after {DMA_POLL_LIMIT} polls"
            ),
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

/// One directory entry as the device sends it (all fields big-endian).
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct RawDirEntry {
    size: U32<BigEndian>,
    select: U16<BigEndian>,
    reserved: U16<BigEndian>,
    name: [u8; NAME_LEN],
}

/// A parsed directory entry: the name (without its NUL padding) and the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    name: [u8; NAME_LEN],
    name_len: usize,
    /// The file.
    pub file: FwCfgFile,
}

impl DirEntry {
    /// The name's bytes, up to its first NUL.
    pub fn name(&self) -> &[u8] {
        &self.name[..self.name_len]
    }
}

/// Parses the bytes of the directory item (a big-endian u32 count, then the entries). Bytes
/// after the last entry are ignored, as the device pads nothing but a reader may have read more.
pub fn parse_directory(bytes: &[u8]) -> Result<Vec<DirEntry>, FwCfgError> {
    let (count, rest) =
        U32::<BigEndian>::read_from_prefix(bytes).map_err(|_| FwCfgError::TruncatedDirectory {
            count: 0,
            len: bytes.len(),
        })?;
    let count = count.get();
    if count > MAX_FILES {
        return Err(FwCfgError::TooManyFiles(count));
    }
    let truncated = FwCfgError::TruncatedDirectory {
        count,
        len: bytes.len(),
    };
    let (entries, _) =
        <[RawDirEntry]>::ref_from_prefix_with_elems(rest, count as usize).map_err(|_| truncated)?;
    Ok(entries
        .iter()
        .map(|e| DirEntry {
            name: e.name,
            name_len: e.name.iter().position(|&b| b == 0).unwrap_or(NAME_LEN),
            file: FwCfgFile {
                select: e.select.get(),
                size: e.size.get(),
            },
        })
        .collect())
}

/// How a platform lets the fw_cfg device write guest memory by DMA. On a plain VM the device
/// writes the destination directly; under TDX and SEV-SNP it can only reach shared memory, so
/// the platform reads through a bounce buffer it has converted to shared.
pub trait FwCfgDma: Sync {
    /// Reads the first `dst.len()` bytes of item `key` into `dst` by DMA, waiting at most
    /// [`DMA_POLL_LIMIT`] polls per transfer ([`wait_for_dma`]).
    fn read(&self, io: &dyn PortIo, key: u16, dst: &mut [u8]) -> Result<(), FwCfgError>;
}

/// Waits for a DMA transfer of item `key` to finish: `control` reads the control word the
/// device writes back. Fails on the device's error bit or after [`DMA_POLL_LIMIT`] reads.
pub fn wait_for_dma(key: u16, mut control: impl FnMut() -> u32) -> Result<(), FwCfgError> {
    for _ in 0..DMA_POLL_LIMIT {
        match dma_status(control()) {
            DmaStatus::Done => return Ok(()),
            DmaStatus::Failed => return Err(FwCfgError::DmaFailed { key }),
            DmaStatus::Busy => core::hint::spin_loop(),
        }
    }
    Err(FwCfgError::DmaTimeout { key })
}

/// Splits a read of item `key` into `dst` into DMA transfers of at most `chunk` bytes each: the
/// first selects the item, the others continue where the previous one stopped. `transfer`
/// receives each control word and destination slice.
pub fn dma_chunks(
    key: u16,
    dst: &mut [u8],
    chunk: usize,
    mut transfer: impl FnMut(u32, &mut [u8]) -> Result<(), FwCfgError>,
) -> Result<(), FwCfgError> {
    if dst.is_empty() {
        return Ok(());
    }
    let chunk = chunk.clamp(1, u32::MAX as usize);
    for (i, part) in dst.chunks_mut(chunk).enumerate() {
        let control = if i == 0 {
            dma_select_read(key)
        } else {
            DMA_READ
        };
        transfer(control, part)?;
    }
    Ok(())
}

/// The fw_cfg device, probed once: its port I/O, its DMA channel if the device and the platform
/// offer one, and its file directory.
pub struct FwCfg<'a> {
    io: &'a dyn PortIo,
    dma: Option<&'a dyn FwCfgDma>,
    files: Vec<DirEntry>,
}

impl<'a> FwCfg<'a> {
    /// Checks the signature, reads the interface ID and the directory. `dma` is the platform's
    /// DMA channel; it is used only if the device advertises DMA.
    pub fn probe(io: &'a dyn PortIo, dma: Option<&'a dyn FwCfgDma>) -> Result<Self, FwCfgError> {
        let mut dev = FwCfg {
            io,
            dma: None,
            files: Vec::new(),
        };
        let mut sig = [0u8; 4];
        dev.pio_read(SIGNATURE_KEY, &mut sig);
        if &sig != b"QEMU" {
            return Err(FwCfgError::NotPresent);
        }
        let mut id = [0u8; 4];
        dev.pio_read(ID_KEY, &mut id);
        if u32::from_le_bytes(id) & ID_DMA != 0 {
            dev.dma = dma;
        }
        let mut count = [0u8; 4];
        dev.pio_read(FILE_DIR_KEY, &mut count);
        let n = u32::from_be_bytes(count);
        if n > MAX_FILES {
            return Err(FwCfgError::TooManyFiles(n));
        }
        let mut dir = alloc::vec![0u8; 4 + n as usize * DIR_ENTRY_SIZE];
        dev.read_item(FILE_DIR_KEY, &mut dir)?;
        dev.files = parse_directory(&dir)?;
        Ok(dev)
    }

    fn pio_read(&self, key: u16, buf: &mut [u8]) {
        self.io.outw(SELECTOR_PORT, key);
        self.io.read_bytes(DATA_PORT, buf);
    }

    /// Whether reads go through DMA.
    pub fn has_dma(&self) -> bool {
        self.dma.is_some()
    }

    /// Reads the first `dst.len()` bytes of item `key` (by DMA where available).
    pub fn read_item(&self, key: u16, dst: &mut [u8]) -> Result<(), FwCfgError> {
        match self.dma {
            Some(dma) => dma.read(self.io, key, dst),
            None => {
                self.pio_read(key, dst);
                Ok(())
            }
        }
    }

    /// Reads a little-endian u32 item (the sizes of the Linux boot items).
    pub fn read_u32(&self, key: u16) -> Result<u32, FwCfgError> {
        let mut v = [0u8; 4];
        self.read_item(key, &mut v)?;
        Ok(u32::from_le_bytes(v))
    }

    /// Reads a little-endian u16 item (the number of vCPUs).
    pub fn read_u16(&self, key: u16) -> Result<u16, FwCfgError> {
        let mut v = [0u8; 2];
        self.read_item(key, &mut v)?;
        Ok(u16::from_le_bytes(v))
    }

    /// The file named `name`, or an error if there is none.
    pub fn find(&self, name: &'static str) -> Result<FwCfgFile, FwCfgError> {
        self.lookup(name).ok_or(FwCfgError::FileNotFound(name))
    }

    /// The file named `name`, if the directory has one (the first of that name).
    pub fn lookup(&self, name: &str) -> Option<FwCfgFile> {
        self.files
            .iter()
            .find(|e| e.name() == name.as_bytes())
            .map(|e| e.file)
    }

    /// Reads the whole file `name` into a new buffer, refusing files over `max` bytes.
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
        self.read_item(file.select, &mut data)?;
        Ok(data)
    }
}

#[cfg(test)]
pub(crate) mod fake {
    //! A fw_cfg device in memory, speaking the port protocol, for host tests.
    extern crate std;
    use super::*;
    use std::collections::BTreeMap;

    /// Items by key; the selected key and read offset.
    #[derive(Clone)]
    pub struct FakeFwCfg {
        items: BTreeMap<u16, Vec<u8>>,
        state: std::sync::Arc<spin::Mutex<(u16, usize)>>,
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
                state: std::sync::Arc::new(spin::Mutex::new((0, 0))),
            }
        }

        /// Copies the start of item `key` into `dst` (zeros past its end), as a DMA read does.
        pub fn copy_item(&self, key: u16, dst: &mut [u8]) {
            let item = self.items.get(&key).map(Vec::as_slice).unwrap_or(&[]);
            for (i, b) in dst.iter_mut().enumerate() {
                *b = item.get(i).copied().unwrap_or(0);
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
            let mut st = self.state.lock();
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
            *self.state.lock() = (value, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::fake::FakeFwCfg;
    use super::*;
    use core::cell::Cell;
    use core::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn reads_a_file_by_name() {
        let dev = FakeFwCfg::with_files(&[("etc/boot-fail-wait", b"\x05"), ("etc/e820", b"abc")]);
        let fw = FwCfg::probe(&dev, None).unwrap();
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

    /// A DMA channel that copies from the fake device and counts its transfers.
    struct FakeDma<'a>(&'a FakeFwCfg, AtomicUsize);
    impl FwCfgDma for FakeDma<'_> {
        fn read(&self, _io: &dyn PortIo, key: u16, dst: &mut [u8]) -> Result<(), FwCfgError> {
            self.1.fetch_add(1, Ordering::Relaxed);
            self.0.copy_item(key, dst);
            Ok(())
        }
    }

    #[test]
    fn reads_u32_items_and_uses_dma_only_when_the_device_offers_it() {
        let mut dev = FakeFwCfg::with_files(&[("etc/e820", b"abc")]);
        dev.set_item(ID_KEY, 3u32.to_le_bytes().to_vec());
        dev.set_item(
            linux_boot::KERNEL_SIZE,
            0x00C0_FFEEu32.to_le_bytes().to_vec(),
        );
        let probe_dev = dev.clone();
        let dma = FakeDma(&probe_dev, AtomicUsize::new(0));
        let fw = FwCfg::probe(&probe_dev, Some(&dma)).unwrap();
        assert!(fw.has_dma());
        assert_eq!(fw.read_u32(linux_boot::KERNEL_SIZE).unwrap(), 0x00C0_FFEE);
        let mut two = [0u8; 2];
        fw.read_item(linux_boot::KERNEL_SIZE, &mut two).unwrap();
        assert_eq!(two, [0xEE, 0xFF]);
        assert_eq!(fw.read_file("etc/e820", 8).unwrap(), b"abc");
        // The directory, the u32, the two bytes and the file.
        assert_eq!(dma.1.load(Ordering::Relaxed), 4);
        dev.set_item(ID_KEY, 1u32.to_le_bytes().to_vec());
        let dma = FakeDma(&dev, AtomicUsize::new(0));
        let fw = FwCfg::probe(&dev, Some(&dma)).unwrap();
        assert!(!fw.has_dma());
        assert_eq!(fw.read_u32(linux_boot::KERNEL_SIZE).unwrap(), 0x00C0_FFEE);
        assert_eq!(dma.1.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn refuses_missing_device_and_absurd_directory() {
        let mut dev = FakeFwCfg::with_files(&[]);
        dev.set_item(SIGNATURE_KEY, b"BOCH".to_vec());
        assert_eq!(FwCfg::probe(&dev, None).err(), Some(FwCfgError::NotPresent));
        let mut dev = FakeFwCfg::with_files(&[]);
        dev.set_item(FILE_DIR_KEY, u32::MAX.to_be_bytes().to_vec());
        assert_eq!(
            FwCfg::probe(&dev, None).err(),
            Some(FwCfgError::TooManyFiles(u32::MAX))
        );
    }

    #[test]
    fn directory_parsing_is_bounded() {
        assert!(matches!(
            parse_directory(&[0, 0]),
            Err(FwCfgError::TruncatedDirectory { .. })
        ));
        let mut dir = 2u32.to_be_bytes().to_vec();
        dir.extend_from_slice(&[0u8; 64]);
        assert_eq!(
            parse_directory(&dir),
            Err(FwCfgError::TruncatedDirectory { count: 2, len: 68 })
        );
        let mut entry = [0u8; 64];
        entry[0..4].copy_from_slice(&7u32.to_be_bytes());
        entry[4..6].copy_from_slice(&0x21u16.to_be_bytes());
        entry[8..].copy_from_slice(&[b'x'; NAME_LEN]); // no NUL: the whole field is the name
        dir.extend_from_slice(&entry);
        let files = parse_directory(&dir).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(files[1].name(), &[b'x'; NAME_LEN]);
        assert_eq!(
            files[1].file,
            FwCfgFile {
                select: 0x21,
                size: 7
            }
        );
    }

    #[test]
    fn dma_waits_are_bounded_and_chunks_continue() {
        assert_eq!(wait_for_dma(5, || 0), Ok(()));
        assert_eq!(
            wait_for_dma(5, || DMA_READ | DMA_ERROR),
            Err(FwCfgError::DmaFailed { key: 5 })
        );
        let polls = Cell::new(0u32);
        assert_eq!(
            wait_for_dma(5, || {
                polls.set(polls.get() + 1);
                DMA_READ
            }),
            Err(FwCfgError::DmaTimeout { key: 5 })
        );
        assert_eq!(polls.get(), DMA_POLL_LIMIT);

        let mut dst = [0u8; 10];
        let mut controls = std::vec::Vec::new();
        dma_chunks(0x11, &mut dst, 4, |c, part| {
            controls.push((c, part.len()));
            Ok(())
        })
        .unwrap();
        assert_eq!(
            controls,
            [(dma_select_read(0x11), 4), (DMA_READ, 4), (DMA_READ, 2)]
        );
    }

    proptest::proptest! {
        #[test]
        fn any_directory_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            if let Ok(files) = parse_directory(&bytes) {
                proptest::prop_assert!(4 + files.len() * DIR_ENTRY_SIZE <= bytes.len());
            }
        }
    }
}
