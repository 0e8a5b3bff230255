//! ELF64 payloads: `td_loader::elf::ElfFile::parse`, then `load` (with relocation) at the
//! addresses the firmware may pick.
//!
//! Input: the ELF file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use td_loader::elf::{ElfError, ElfFile, ElfType, IMAGE_ALIGN, PF_X};

/// Largest image span the target loads (bigger spans are parsed only).
const MAX_LOAD: u64 = 4 << 20;
/// Bytes after the span in the load buffer, which `load` must leave alone.
const GUARD: usize = 64;

fuzz_target!(|data: &[u8]| {
    let Ok(elf) = ElfFile::parse(data) else {
        return;
    };
    let (start, size) = elf.image_span();
    assert!(start.is_multiple_of(IMAGE_ALIGN) && size.is_multiple_of(IMAGE_ALIGN) && size > 0);
    let end = start.checked_add(size).expect("span wraps");
    let segments: Vec<_> = elf.load_segments().collect();
    assert!(!segments.is_empty());
    for s in &segments {
        assert!(s.data.len() as u64 <= s.memsz);
        assert!(
            s.vaddr >= start && s.vaddr + s.memsz <= end,
            "segment outside the span"
        );
    }
    for (i, a) in segments.iter().enumerate() {
        for b in &segments[i + 1..] {
            let disjoint = a.vaddr + a.memsz <= b.vaddr || b.vaddr + b.memsz <= a.vaddr;
            assert!(
                disjoint || a.memsz == 0 || b.memsz == 0,
                "overlapping segments"
            );
        }
    }
    assert!(
        segments.iter().any(|s| s.flags & PF_X != 0
            && s.vaddr <= elf.entry()
            && elf.entry() < s.vaddr + s.memsz),
        "entry not in an executable segment"
    );
    if size > MAX_LOAD {
        return;
    }

    let len = size as usize;
    let load = |base: u64| {
        let mut buf = vec![0xA5u8; len + GUARD];
        let loaded = elf
            .load(&mut buf, base)
            .expect("a parsed file loads into a large enough buffer");
        assert_eq!((loaded.base, loaded.size), (base, size));
        assert_eq!(loaded.entry, base + (elf.entry() - start));
        assert!(
            buf[len..].iter().all(|&b| b == 0xA5),
            "load wrote past the span"
        );
        buf.truncate(len);
        (buf, loaded.relocations)
    };
    let (image, relocations) = load(start);
    if relocations == 0 {
        // Nothing patched: the image is the segments' bytes, zeroes elsewhere.
        let mut expected = vec![0u8; len];
        for s in &segments {
            let at = (s.vaddr - start) as usize;
            expected[at..at + s.data.len()].copy_from_slice(s.data);
        }
        assert!(image == expected, "loaded image differs from its segments");
    }

    // The buffer is checked before anything is written.
    let mut small = vec![0xA5u8; len - 1];
    assert!(matches!(
        elf.load(&mut small, start),
        Err(ElfError::BufferTooSmall { .. })
    ));
    assert!(
        small.iter().all(|&b| b == 0xA5),
        "load wrote into a buffer it refused"
    );
    assert!(matches!(
        elf.load(&mut vec![0; len], start + 1),
        Err(ElfError::UnalignedLoadBase { .. })
    ));

    match elf.elf_type() {
        ElfType::Executable => {
            let other = start ^ 0x20_0000;
            assert!(matches!(
                elf.load(&mut vec![0; len], other),
                Err(ElfError::NotRelocatable { .. })
            ));
        }
        ElfType::PositionIndependent => {
            // Relocated elsewhere: only the relocated slots differ, 8 bytes each at most.
            let other = if start >= 0x1_0000_0000 {
                0x20_0000
            } else {
                start + 0x1_0000_0000
            };
            let (moved, again) = load(other);
            assert_eq!(again, relocations);
            let differing = image.iter().zip(&moved).filter(|(a, b)| a != b).count();
            assert!(
                differing <= 8 * relocations,
                "bytes other than relocations moved"
            );
        }
    }
});
