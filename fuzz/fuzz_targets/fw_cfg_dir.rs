//! The fw_cfg file directory (item 0x0019) as the VMM serves it:
//! `td_shim::fw_cfg::parse_directory` on the bytes, and `FwCfg::probe` / `lookup` /
//! `read_file` through an in-memory device that serves the input over port I/O (the same
//! protocol as td-shim's test double, which is `#[cfg(test)]`). Past the end of an item the
//! device returns 0, as QEMU does.
//!
//! Input: the directory item's bytes (big-endian u32 count, then 64-byte entries); the device
//! serves every other item (the files) as the same bytes.
#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use td_shim::fw_cfg::{
    parse_directory, FwCfg, FwCfgError, DATA_PORT, DIR_ENTRY_SIZE, FILE_DIR_KEY, MAX_FILES,
    NAME_LEN, SELECTOR_PORT, SIGNATURE_KEY,
};
use td_shim::port_io::PortIo;

struct Device<'a> {
    directory: &'a [u8],
    /// Selected key, read offset.
    state: RefCell<(u16, usize)>,
}

impl PortIo for Device<'_> {
    fn inb(&self, port: u16) -> u8 {
        assert_eq!(port, DATA_PORT, "fw_cfg reads only the data port");
        let mut st = self.state.borrow_mut();
        let item: &[u8] = match st.0 {
            SIGNATURE_KEY => b"QEMU",
            FILE_DIR_KEY => self.directory,
            _ => self.directory,
        };
        let b = item.get(st.1).copied().unwrap_or(0);
        st.1 += 1;
        b
    }
    fn outb(&self, _port: u16, _value: u8) {}
    fn outw(&self, port: u16, value: u16) {
        assert_eq!(
            port, SELECTOR_PORT,
            "fw_cfg selects through the selector port"
        );
        *self.state.borrow_mut() = (value, 0);
    }
    fn outl(&self, _port: u16, _value: u32) {}
    fn inl(&self, _port: u16) -> u32 {
        u32::MAX
    }
}

/// The directory read the obvious way: (name, select, size) per entry.
fn reference(dir: &[u8], count: usize) -> Vec<(Vec<u8>, u16, u32)> {
    dir[4..4 + count * DIR_ENTRY_SIZE]
        .chunks_exact(DIR_ENTRY_SIZE)
        .map(|e| {
            let name = &e[8..8 + NAME_LEN];
            let len = name.iter().position(|&b| b == 0).unwrap_or(NAME_LEN);
            (
                name[..len].to_vec(),
                u16::from_be_bytes([e[4], e[5]]),
                u32::from_be_bytes([e[0], e[1], e[2], e[3]]),
            )
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let count = u32::from_be_bytes([0, 1, 2, 3].map(|i| data.get(i).copied().unwrap_or(0)));
    let needed = 4 + count as usize * DIR_ENTRY_SIZE;

    // The pure parser.
    match parse_directory(data) {
        Ok(entries) => {
            assert!(count <= MAX_FILES && data.len() >= needed);
            let want = reference(data, count as usize);
            assert_eq!(entries.len(), want.len());
            for (e, (name, select, size)) in entries.iter().zip(&want) {
                assert_eq!(
                    (e.name(), e.file.select, e.file.size),
                    (&name[..], *select, *size)
                );
            }
        }
        Err(FwCfgError::TooManyFiles(n)) => assert!(n == count && count > MAX_FILES),
        Err(FwCfgError::TruncatedDirectory { .. }) => {
            assert!(data.len() < 4 || (count <= MAX_FILES && data.len() < needed))
        }
        Err(e) => panic!("unexpected {e:?}"),
    }

    // Through the device: it reads as many entries as the count claims (zeroes past the end).
    let dev = Device {
        directory: data,
        state: RefCell::new((0, 0)),
    };
    let fw = match FwCfg::probe(&dev, None) {
        Ok(fw) => fw,
        Err(FwCfgError::TooManyFiles(_)) => return assert!(count > MAX_FILES),
        Err(e) => panic!("probe: {e:?}"),
    };
    let mut padded = data.to_vec();
    padded.resize(padded.len().max(needed), 0);
    let entries = reference(&padded, count as usize);
    let mut names: Vec<String> = entries
        .iter()
        .take(64)
        .filter_map(|(n, _, _)| String::from_utf8(n.clone()).ok())
        .collect();
    names.extend(["etc/e820", "etc/table-loader", "etc/acpi/rsdp", ""].map(String::from));
    for name in &names {
        let want = entries.iter().find(|(n, _, _)| n == name.as_bytes());
        match (fw.lookup(name), want) {
            (None, None) => {}
            (Some(f), Some(&(_, select, size))) => {
                assert_eq!((f.select, f.size), (select, size), "{name:?}");
            }
            (got, want) => panic!("{name:?}: lookup {got:?}, directory {want:?}"),
        }
    }
    match fw.read_file("etc/e820", 1 << 16) {
        Ok(bytes) => {
            let (_, _, size) = entries.iter().find(|(n, _, _)| n == b"etc/e820").unwrap();
            assert_eq!(bytes.len(), *size as usize);
        }
        Err(FwCfgError::FileNotFound(_) | FwCfgError::FileTooLarge { .. }) => {}
        Err(e) => panic!("unexpected {e:?}"),
    }
});
