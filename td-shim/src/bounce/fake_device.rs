//! A fake fw_cfg device for the bounce-buffer tests of both TEEs: QEMU's port interface and its
//! DMA interface over a buffer's memory. The test says where the device can reach (`reach`:
//! TDX's shared alias and the TD model's shared pages, SNP's RMP model), so a transfer to
//! memory the VMM could not touch fails as QEMU's would.

extern crate std;

use crate::fw_cfg::{self, DATA_PORT, FILE_DIR_KEY, ID_KEY, SELECTOR_PORT, SIGNATURE_KEY};
use crate::port_io::PortIo;
use std::boxed::Box;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::vec::Vec;

/// A test buffer's bounds-checked write: `src` at `offset` of `mem`, or false.
pub(crate) fn copy_in(mem: &Mutex<Vec<u8>>, offset: usize, src: &[u8]) -> bool {
    let mut m = mem.lock().unwrap();
    match offset
        .checked_add(src.len())
        .and_then(|end| m.get_mut(offset..end))
    {
        Some(dst) => {
            dst.copy_from_slice(src);
            true
        }
        None => false,
    }
}

/// A test buffer's bounds-checked read: `dst.len()` bytes at `offset` of `mem`, or false.
pub(crate) fn copy_out(mem: &Mutex<Vec<u8>>, offset: usize, dst: &mut [u8]) -> bool {
    let m = mem.lock().unwrap();
    match offset
        .checked_add(dst.len())
        .and_then(|end| m.get(offset..end))
    {
        Some(src) => {
            dst.copy_from_slice(src);
            true
        }
        None => false,
    }
}

/// Where the device may reach: the buffer offset of device address `addr` for `len` bytes.
pub(crate) type Reach<'a> = Box<dyn Fn(u64, usize) -> Option<usize> + 'a>;

/// fw_cfg with the port and DMA interfaces, over `mem`.
pub(crate) struct FakeFwCfg<'a> {
    items: BTreeMap<u16, Vec<u8>>,
    mem: Arc<Mutex<Vec<u8>>>,
    reach: Reach<'a>,
    /// (selected item, offset in it, DMA address high half)
    state: RefCell<(u16, usize, u32)>,
    /// Every descriptor the device read: (control, length, address).
    pub transfers: RefCell<Vec<(u32, u32, u64)>>,
    /// Answer the next transfer with the error bit.
    pub fail_next: RefCell<bool>,
}

impl<'a> FakeFwCfg<'a> {
    /// A device with the signature, the DMA feature and `files` in its directory.
    pub(crate) fn new(
        mem: Arc<Mutex<Vec<u8>>>,
        reach: Reach<'a>,
        files: &[(&str, Vec<u8>)],
    ) -> Self {
        let mut items = BTreeMap::new();
        items.insert(SIGNATURE_KEY, b"QEMU".to_vec());
        items.insert(ID_KEY, 3u32.to_le_bytes().to_vec());
        let mut dir = (files.len() as u32).to_be_bytes().to_vec();
        for (i, (name, data)) in files.iter().enumerate() {
            let key = 0x20 + i as u16;
            let mut e = [0u8; 64];
            e[0..4].copy_from_slice(&(data.len() as u32).to_be_bytes());
            e[4..6].copy_from_slice(&key.to_be_bytes());
            e[8..8 + name.len()].copy_from_slice(name.as_bytes());
            dir.extend_from_slice(&e);
            items.insert(key, data.clone());
        }
        items.insert(FILE_DIR_KEY, dir);
        FakeFwCfg {
            items,
            mem,
            reach,
            state: RefCell::new((0, 0, 0)),
            transfers: RefCell::new(Vec::new()),
            fail_next: RefCell::new(false),
        }
    }

    fn dma(&self, addr: u64) {
        let Some(d) = (self.reach)(addr, 16) else {
            return; // QEMU cannot read the descriptor: nothing is written back
        };
        let desc: [u8; 16] = self.mem.lock().unwrap()[d..d + 16].try_into().unwrap();
        let control = u32::from_be_bytes(desc[0..4].try_into().unwrap());
        let length = u32::from_be_bytes(desc[4..8].try_into().unwrap());
        let address = u64::from_be_bytes(desc[8..16].try_into().unwrap());
        self.transfers.borrow_mut().push((control, length, address));
        let mut st = self.state.borrow_mut();
        if control & fw_cfg::DMA_SELECT != 0 {
            *st = ((control >> 16) as u16, 0, st.2);
        }
        let mut result = 0u32;
        if std::mem::take(&mut *self.fail_next.borrow_mut()) {
            result = fw_cfg::DMA_ERROR;
        } else if control & fw_cfg::DMA_READ != 0 {
            match (self.reach)(address, length as usize) {
                Some(o) => {
                    let item = self.items.get(&st.0).cloned().unwrap_or_default();
                    let mut mem = self.mem.lock().unwrap();
                    for i in 0..length as usize {
                        mem[o + i] = item.get(st.1 + i).copied().unwrap_or(0);
                    }
                    st.1 += length as usize;
                }
                None => result = fw_cfg::DMA_ERROR,
            }
        }
        self.mem.lock().unwrap()[d..d + 4].copy_from_slice(&result.to_be_bytes());
    }
}

impl PortIo for FakeFwCfg<'_> {
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
    fn outb(&self, _: u16, _: u8) {
        panic!("unexpected outb");
    }
    fn outw(&self, port: u16, value: u16) {
        assert_eq!(port, SELECTOR_PORT);
        let mut st = self.state.borrow_mut();
        *st = (value, 0, st.2);
    }
    fn outl(&self, port: u16, value: u32) {
        let value = u32::from_be(value);
        match port {
            fw_cfg::DMA_ADDRESS_HIGH_PORT => self.state.borrow_mut().2 = value,
            fw_cfg::DMA_ADDRESS_LOW_PORT => {
                let high = self.state.borrow().2;
                self.dma((u64::from(high) << 32) | u64::from(value));
            }
            _ => panic!("unexpected outl to {port:#x}"),
        }
    }
    fn inl(&self, _: u16) -> u32 {
        panic!("unexpected inl");
    }
}
