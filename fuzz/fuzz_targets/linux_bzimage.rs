//! Linux bzImage payloads: `td_loader::linux::parse`, `check_header`, `BzImage::place_kernel`,
//! `build_boot_params` and `write_setup_data` with fuzzed addresses.
//!
//! Input: 64 bytes of parameters (zero-padded if shorter), then the bzImage.
//!
//! ```text
//! 0x00 u64 candidate 0 base   0x08 u64 candidate 0 length   free RAM for place_kernel
//! 0x10 u64 candidate 1 base   0x18 u64 candidate 1 length
//! 0x20 u64 cmdline address    0x28 u32 cmdline length
//! 0x2C u64 initrd address     0x34 u32 initrd size (0: none)
//! 0x38 u8  E820 entries       0x39 u8 flags: bit 0 load at candidate 0's base, not the placed address
//! 0x3A u16 setup_data buffer length / 4
//! 0x3C u32 ACPI RSDP address
//! ```
#![no_main]

use libfuzzer_sys::fuzz_target;
use td_loader::linux::{
    build_boot_params, check_header, normalize_setup_header, parse, write_setup_data,
    BootParamsInput, E820Entry, LinuxError, BOOT_PARAMS_SIZE, E820_MAX_ENTRIES, LOADED_HIGH,
    LOADER_FIELDS, LOADER_TYPE_UNDEFINED, MAX_HEADER_END, MIN_HEADER_END, SETUP_DATA_HEADER_SIZE,
};

const PARAMS: usize = 64;

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn overlaps(a: u64, a_end: u64, b: u64, b_end: u64) -> bool {
    a < b_end && b < a_end
}

fuzz_target!(|data: &[u8]| {
    let mut params = [0u8; PARAMS];
    let n = data.len().min(PARAMS);
    params[..n].copy_from_slice(&data[..n]);
    let kernel = &data[n..];

    // check_header on the first bytes agrees with parse on the whole file.
    let head = &kernel[..kernel.len().min(MAX_HEADER_END)];
    let parsed = parse(kernel);
    assert_eq!(
        check_header(head, kernel.len()),
        parsed.map(|bz| bz.cmdline_size()),
        "check_header and parse disagree"
    );

    // Normalizing the header is idempotent and touches only the loader's fields.
    let mut once = head.to_vec();
    normalize_setup_header(&mut once);
    let mut twice = once.clone();
    normalize_setup_header(&mut twice);
    assert_eq!(once, twice);

    let Ok(bz) = parsed else { return };
    assert!(bz.version() >= 0x020C);
    let offset = (usize::from(bz.setup_sects()) + 1) * 512;
    assert_eq!(bz.kernel(), &kernel[offset..]);
    assert!(!bz.kernel().is_empty());
    assert!(u64::from(bz.init_size()) >= bz.kernel().len() as u64);
    assert!(bz.kernel_alignment().is_power_of_two() && bz.kernel_alignment() >= 0x1000);
    let header_end = 0x1F1 + bz.setup_header().len();
    assert!((MIN_HEADER_END..=MAX_HEADER_END).contains(&header_end));
    assert_eq!(bz.setup_header(), &kernel[0x1F1..header_end]);
    let limit = if bz.can_load_above_4g() {
        u64::MAX
    } else {
        1 << 32
    };
    let size = u64::from(bz.init_size());

    let candidates = [
        (u64_at(&params, 0x00), u64_at(&params, 0x08)),
        (u64_at(&params, 0x10), u64_at(&params, 0x18)),
    ];
    let placed = bz.place_kernel(&candidates);
    if let Ok(addr) = placed {
        assert!(addr.is_multiple_of(u64::from(bz.kernel_alignment())));
        let end = addr.checked_add(size).expect("placed window wraps");
        assert!(end <= limit, "placed above the kernel's limit");
        assert!(
            candidates
                .iter()
                .any(|&(b, l)| addr >= b && end <= b.saturating_add(l)),
            "placed outside every candidate"
        );
    }

    let kernel_load = match (params[0x39] & 1, placed) {
        (0, Ok(addr)) => addr,
        _ => candidates[0].0,
    };
    let e820: Vec<E820Entry> = (0..usize::from(params[0x38]) % (E820_MAX_ENTRIES + 2))
        .map(|i| E820Entry {
            addr: (i as u64) << 20,
            size: 1 << 20,
            kind: (i % 5) as u32 + 1,
        })
        .collect();
    let initrd_size = u64::from(u32_at(&params, 0x34));
    let p = BootParamsInput {
        kernel_load,
        cmdline_addr: u64_at(&params, 0x20),
        cmdline_len: u32_at(&params, 0x28),
        initrd: (initrd_size != 0).then(|| (u64_at(&params, 0x2C), initrd_size)),
        acpi_rsdp: u64::from(u32_at(&params, 0x3C)),
        e820: &e820,
        setup_data: u64_at(&params, 0x00) ^ u64_at(&params, 0x20),
    };
    let mut out = [0xA5u8; BOOT_PARAMS_SIZE];
    match build_boot_params(&mut out, &bz, &p) {
        Err(_) => assert!(
            out.iter().all(|&b| b == 0xA5),
            "boot_params changed on an error"
        ),
        Ok(()) => {
            // What was accepted honours the kernel's limits.
            let kernel_end = kernel_load + size;
            assert!(kernel_end <= limit);
            assert!(p.cmdline_len <= bz.cmdline_size());
            let cmdline_end = p.cmdline_addr + u64::from(p.cmdline_len) + 1;
            assert!(cmdline_end <= limit);
            assert!(!overlaps(
                p.cmdline_addr,
                cmdline_end,
                kernel_load,
                kernel_end
            ));
            if let Some((addr, len)) = p.initrd {
                let end = addr.checked_add(len).unwrap();
                assert!(!overlaps(addr, end, kernel_load, kernel_end));
                if !bz.can_load_above_4g() {
                    assert!(end - 1 <= u64::from(bz.initrd_addr_max()));
                }
            }
            // What was written.
            assert_eq!(out[0x210], LOADER_TYPE_UNDEFINED);
            assert_eq!(out[0x211], LOADED_HIGH);
            assert_eq!(out[0x1EF], 0, "sentinel");
            let cmdline = u64::from(u32_at(&out, 0x228)) | u64::from(u32_at(&out, 0xC8)) << 32;
            assert_eq!(cmdline, p.cmdline_addr);
            let (ia, is) = p.initrd.unwrap_or((0, 0));
            assert_eq!(
                u64::from(u32_at(&out, 0x218)) | u64::from(u32_at(&out, 0xC0)) << 32,
                ia
            );
            assert_eq!(
                u64::from(u32_at(&out, 0x21C)) | u64::from(u32_at(&out, 0xC4)) << 32,
                is
            );
            assert_eq!(u64_at(&out, 0x250), p.setup_data);
            assert_eq!(u64_at(&out, 0x070), p.acpi_rsdp);
            assert_eq!(usize::from(out[0x1E8]), e820.len());
            for (i, e) in e820.iter().enumerate() {
                let at = 0x2D0 + 20 * i;
                assert_eq!((u64_at(&out, at), u64_at(&out, at + 8)), (e.addr, e.size));
                assert_eq!(u32_at(&out, at + 16), e.kind);
            }
            // Every other byte of the setup header is the kernel's own.
            for i in 0x1F1..header_end {
                let loader = LOADER_FIELDS
                    .iter()
                    .any(|&(at, len)| (at..at + len).contains(&i));
                if !loader {
                    assert_eq!(out[i], kernel[i], "setup header byte {i:#x} changed");
                }
            }
            assert!(out[header_end..0x290.max(header_end)]
                .iter()
                .all(|&b| b == 0));
        }
    }

    // A setup_data node over the kernel's bytes, into a buffer of fuzzed length.
    let room = usize::from(u16::from_le_bytes([params[0x3A], params[0x3B]])) * 4;
    let node_data = &bz.kernel()[..bz.kernel().len().min(room)];
    let mut buf = vec![0x5Au8; room];
    let next = u64_at(&params, 0x08);
    let kind = u32_at(&params, 0x28);
    match write_setup_data(&mut buf, next, kind, node_data) {
        Ok(n) => {
            assert_eq!(n, SETUP_DATA_HEADER_SIZE + node_data.len());
            assert_eq!(u64_at(&buf, 0), next);
            assert_eq!(u32_at(&buf, 8), kind);
            assert_eq!(u32_at(&buf, 12) as usize, node_data.len());
            assert_eq!(&buf[16..n], node_data);
            assert!(buf[n..].iter().all(|&b| b == 0x5A));
        }
        Err(LinuxError::SetupDataBufferTooSmall { needed, available }) => {
            assert!(needed > available && available == room);
            assert!(buf.iter().all(|&b| b == 0x5A), "buffer changed on an error");
        }
        Err(e) => panic!("unexpected {e:?}"),
    }
});
