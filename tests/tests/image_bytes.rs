//! The built image's self-description, read by raw byte offsets as research/tdx-attestation.md
//! §1.2-1.3 and research/td-shim.md §3.2-3.4 give them, without td-layout's parsers: a VMM or
//! MRTD tool that knows only the spec must find the same things. The section checks are upstream
//! QEMU's TDX loader rules (research/tdx-boot.md §6.2), restated from the notes.

use tests::artifacts;

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

const FOOTER_GUID: [u8; 16] = [
    0xde, 0x82, 0xb5, 0x96, 0xb2, 0x1f, 0xf7, 0x45, 0xba, 0xea, 0xa3, 0x66, 0xc5, 0x5a, 0x08, 0x2d,
];
// e47a6535-984a-4798-865e-4685a7bf8ec2
const TDX_OFFSET_GUID: [u8; 16] = [
    0x35, 0x65, 0x7a, 0xe4, 0x4a, 0x98, 0x98, 0x47, 0x86, 0x5e, 0x46, 0x85, 0xa7, 0xbf, 0x8e, 0xc2,
];
// e9eaf9f3-168e-44d5-a8eb-7f4d8738f6ae
const TDX_METADATA_GUID: [u8; 16] = [
    0xf3, 0xf9, 0xea, 0xe9, 0x8e, 0x16, 0xd5, 0x44, 0xa8, 0xeb, 0x7f, 0x4d, 0x87, 0x38, 0xf6, 0xae,
];

#[test]
fn footer_table_and_tdvf_descriptor_at_their_spec_offsets() {
    let img = std::fs::read(&artifacts().image).unwrap();
    let len = img.len();
    assert_eq!(len % 0x1_0000, 0, "QEMU maps -bios images in 64 KiB blocks");

    // Footer entry: GUID at len-0x30, total table length u16 at len-0x32.
    assert_eq!(img[len - 0x30..len - 0x20], FOOTER_GUID);
    let table_len = u16_at(&img, len - 0x32) as usize;
    // The footer entry (18), the TDX metadata offset (22), then SEV's: the metadata offset
    // (22), the SEV-ES reset block (22) and the kernel-hashes table (26), walked from the end.
    assert_eq!(
        table_len,
        18 + 22 + 22 + 22 + 26,
        "footer, TDX and three SEV entries"
    );
    // Each entry is data, u16 length, GUID: walk them from the footer entry down to the
    // table's start, which they must fill exactly.
    let table_start = len - 0x20 - table_len;
    let mut end = len - 0x32;
    let mut guids = Vec::new();
    while end > table_start {
        guids.push(img[end - 16..end].to_vec());
        let entry_len = u16_at(&img, end - 18) as usize;
        assert!(entry_len >= 18 && entry_len <= end - table_start);
        end -= entry_len;
    }
    assert_eq!(end, table_start, "the entries fill the table");
    let guid = |s: &str| {
        // Mixed-endian GUID bytes from the canonical text.
        let h: Vec<u8> = (0..s.len())
            .step_by(2)
            .filter_map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
            .collect();
        let mut g = vec![h[3], h[2], h[1], h[0], h[5], h[4], h[7], h[6]];
        g.extend_from_slice(&h[8..16]);
        g
    };
    assert_eq!(
        guids,
        [
            TDX_OFFSET_GUID.to_vec(),
            guid("dc886566984a4798a75e5585a7bf67cc"),
            guid("00f771de1a7e4fcb890e68c77e2fb44e"),
            guid("7255371f3a3b4b04927b1da6efa8d454"),
        ],
        "TDX metadata offset, SEV metadata offset, SEV-ES reset block, kernel-hashes table"
    );
    // The TDX entry just before: GUID, u16 length 22, then 4 bytes of data before that.
    let guid_at = len - 0x32 - 16;
    assert_eq!(img[guid_at..guid_at + 16], TDX_OFFSET_GUID);
    assert_eq!(u16_at(&img, guid_at - 2), 22);
    let from_end = u32_at(&img, guid_at - 2 - 4) as usize;
    let descriptor = len - from_end;

    // The legacy pointer at len-0x20 names the same descriptor from the start.
    assert_eq!(u32_at(&img, len - 0x20) as usize, descriptor);
    assert_eq!(img[descriptor - 16..descriptor], TDX_METADATA_GUID);

    // TDVF_DESCRIPTOR: "TDVF", length 16 + 32n, version 1, n sections.
    assert_eq!(&img[descriptor..descriptor + 4], b"TDVF");
    let n = u32_at(&img, descriptor + 12) as usize;
    assert_eq!(u32_at(&img, descriptor + 4) as usize, 16 + 32 * n);
    assert_eq!(u32_at(&img, descriptor + 8), 1);
    assert!(n >= 2, "QEMU's TDX loader wants at least two sections");

    let mut types = Vec::new();
    let bios_base = (1u64 << 32) - len as u64;
    for i in 0..n {
        let s = descriptor + 16 + 32 * i;
        let (data_offset, raw) = (u32_at(&img, s) as usize, u32_at(&img, s + 4) as usize);
        let (addr, size) = (u64_at(&img, s + 8), u64_at(&img, s + 16));
        let (kind, attr) = (u32_at(&img, s + 24), u32_at(&img, s + 28));
        // QEMU: MemoryAddress and MemoryDataSize 4 KiB aligned, MemoryDataSize >= RawDataSize.
        assert_eq!(addr % 0x1000, 0);
        assert_eq!(size % 0x1000, 0);
        assert!(raw as u64 <= size && data_offset + raw <= len);
        if raw > 0 {
            // File data maps to the GPA where the image sits below 4 GiB.
            assert_eq!(addr, bios_base + data_offset as u64);
        }
        match kind {
            // QEMU: BFV and CFV are copied from the image, RawDataSize != 0.
            0 => assert!(raw > 0 && attr == 1, "BFV is copied in and MR.EXTENDed"),
            1 => assert!(
                raw > 0 && attr == 0,
                "CFV (the payload region) is copied in, not extended: the firmware measures the \
                 payload"
            ),
            // QEMU: TD_HOB and TempMem are zero pages, RawDataSize 0, in RAM (not the -bios
            // mapping).
            2 | 3 => {
                assert_eq!((data_offset, raw, attr), (0, 0, 0));
                assert!(
                    addr + size <= bios_base,
                    "section {i} lies in the -bios mapping"
                );
            }
            other => panic!("section type {other}: QEMU accepts only BFV, CFV, TD_HOB, TempMem"),
        }
        types.push(kind);
    }
    assert_eq!(types, [0, 3, 2, 1], "BFV, TempMem, TD_HOB, CFV");
    // The BFV holds the reset vector: it covers the end of the image.
    let bfv = descriptor + 16;
    assert_eq!(
        u32_at(&img, bfv) as usize + u32_at(&img, bfv + 4) as usize,
        len
    );
    // The CFV is the payload region: it starts with the payload table and ends at the BFV.
    let cfv = descriptor + 16 + 32 * 3;
    assert_eq!(u32_at(&img, cfv), 0);
    assert_eq!(&img[..8], b"TDSHPAYL");
    assert_eq!(u32_at(&img, cfv + 4), u32_at(&img, bfv));
}

#[test]
fn reset_vector_bytes_decode_in_both_modes() {
    let img = std::fs::read(&artifacts().image).unwrap();
    let len = img.len();
    // mov eax, cr0 ; test al, 1 ; jnz rel8 back to the 32-bit jump at len-0x18 ; jmp rel16
    assert_eq!(
        img[len - 0x10..len - 0x07],
        [
            0x0f,
            0x20,
            0xc0,
            0xa8,
            0x01,
            0x75,
            0xf1,
            0xe9,
            img[len - 0x08]
        ]
    );
    assert_eq!(img[len - 0x18], 0xe9, "32-bit near jump at len-0x18");
}
