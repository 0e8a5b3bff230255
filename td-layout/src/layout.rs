//! Where everything is: the firmware image and the guest memory the firmware uses, as one
//! checked configuration.
//!
//! The image is mapped so that it ends at 4 GiB. Under TDX and SEV-SNP its pages are private
//! RAM that the VMM added; in a plain VM the same bytes are a read-only ROM. So everything the
//! firmware writes lives in low RAM ([`TEMP_MEM`]), never inside the image.
//!
//! Every rule of the layout is checked at compile time by the `const` assertions at the end of
//! this file: a layout that breaks one does not build.

/// A named, half-open range of guest-physical addresses `[base, base + size)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// Short name used in logs, `td-shim-tool inspect` and the docs.
    pub name: &'static str,
    /// First guest-physical address.
    pub base: u64,
    /// Size in bytes.
    pub size: u64,
}

impl Region {
    /// One past the last address. Layout regions never wrap (checked at compile time).
    pub const fn end(&self) -> u64 {
        self.base + self.size
    }

    /// Whether `[base, base + len)` lies wholly inside this region (false on overflow).
    pub const fn contains_range(&self, base: u64, len: u64) -> bool {
        match base.checked_add(len) {
            Some(end) => base >= self.base && end <= self.end(),
            None => false,
        }
    }

    /// Whether this region and `other` share at least one byte.
    pub const fn overlaps(&self, other: &Region) -> bool {
        self.base < other.end() && other.base < self.end()
    }

    /// Whether both ends are multiples of `align` (a power of two).
    pub const fn is_aligned(&self, align: u64) -> bool {
        self.base.is_multiple_of(align) && self.size.is_multiple_of(align)
    }

    /// For a region inside the image: its offset from the start of the image file.
    pub const fn image_offset(&self) -> u64 {
        self.base - IMAGE_BASE
    }
}

/// 4 KiB, the page size every region is aligned to.
pub const PAGE_SIZE: u64 = 0x1000;
/// 4 GiB: the image ends here and the reset vector sits just below.
pub const FOUR_GIB: u64 = 0x1_0000_0000;

/// Size of the firmware image file.
pub const IMAGE_SIZE: u64 = 0x100_0000;
/// Guest-physical address of the first byte of the image.
pub const IMAGE_BASE: u64 = FOUR_GIB - IMAGE_SIZE;

/// The payload table and the payloads it lists (see [`crate::payload`]). TDX metadata section
/// type CFV, without MR.EXTEND: the VMM copies it in unmeasured (QEMU accepts no Payload
/// section) and the firmware measures what it uses into RTMR1.
pub const IMAGE_PAYLOAD: Region = Region {
    name: "payload",
    base: IMAGE_BASE,
    size: 0xF0_0000,
};

/// One page holding the image's metadata for the VMM: from its start the TDX metadata (the
/// metadata GUID, then the TDVF descriptor and its sections, see [`crate::metadata`]), and at
/// [`SEV_METADATA_BASE`] the SEV metadata (see [`crate::sev`]). First page of the boot firmware
/// volume (BFV).
pub const IMAGE_METADATA: Region = Region {
    name: "metadata",
    base: IMAGE_PAYLOAD.end(),
    size: PAGE_SIZE,
};

/// Where the "ASEV" SEV metadata header sits: the second half of [`IMAGE_METADATA`], after the
/// TDX metadata (checked at compile time in [`crate::sev`]). The footer table's SEV metadata
/// entry gives its distance from the end of the image.
pub const SEV_METADATA_BASE: u64 = IMAGE_METADATA.base + PAGE_SIZE / 2;

/// The firmware: the load segments of the firmware ELF (code and data, copied to
/// [`FW_CODE`] and [`FW_DATA`] at reset; the reset code itself runs in place), the footer table
/// and the reset vector. Ends at 4 GiB.
pub const IMAGE_FIRMWARE: Region = Region {
    name: "firmware",
    base: IMAGE_METADATA.end(),
    size: FOUR_GIB - IMAGE_METADATA.end(),
};

/// The boot firmware volume as TDX sees it: metadata + firmware, measured into MRTD page by page.
pub const IMAGE_BFV: Region = Region {
    name: "bfv",
    base: IMAGE_METADATA.base,
    size: FOUR_GIB - IMAGE_METADATA.base,
};

/// Bytes at the end of the firmware that `td-shim-tool build` writes and the firmware ELF must
/// leave alone: the OVMF-style footer GUID table (ending at [`FOOTER_TABLE_END`]) and the legacy
/// TDX metadata pointer at [`LEGACY_METADATA_POINTER`].
pub const IMAGE_FOOTER: Region = Region {
    name: "footer",
    base: FOUR_GIB - 0x100,
    size: 0xE8,
};

/// The reset code (its 16-, 32- and 64-bit parts) and its GDT. It must sit in the last 64 KiB, the real-mode
/// code segment at reset (CS base 0xFFFF0000).
pub const IMAGE_RESET_CODE: Region = Region {
    name: "reset-code",
    base: FOUR_GIB - PAGE_SIZE,
    size: 0xF00,
};

/// The reset entry: a 32-bit jump, then the 16 bytes at the architectural reset vector.
pub const IMAGE_RESET_ENTRY: Region = Region {
    name: "reset-entry",
    base: IMAGE_FOOTER.end(),
    size: FOUR_GIB - IMAGE_FOOTER.end(),
};

/// The architectural reset vector (CS:IP F000:FFF0 in real mode, EIP in TDX's 32-bit entry).
pub const RESET_VECTOR: u64 = FOUR_GIB - 0x10;
/// The OVMF footer GUID table ends here (its last 18 bytes are the footer entry).
pub const FOOTER_TABLE_END: u64 = FOUR_GIB - 0x20;
/// The legacy u32 TDX metadata pointer (offset of the TDVF descriptor from the image start),
/// read by upstream td-shim tools and Cloud Hypervisor.
pub const LEGACY_METADATA_POINTER: u64 = FOUR_GIB - 0x20;

/// Real-mode and legacy BIOS area `[0xA0000, 0x100000)`: never handed out as usable RAM.
pub const LEGACY_HOLE: Region = Region {
    name: "legacy",
    base: 0xA_0000,
    size: 0x6_0000,
};

/// All of the firmware's working memory in RAM. TDX metadata section TempMem: the VMM adds these
/// pages before the first instruction runs, so they need no acceptance.
pub const TEMP_MEM: Region = Region {
    name: "temp-mem",
    base: 0x10_0000,
    size: 0x70_0000,
};

/// The firmware's `.data` and `.bss` (initialised by the reset code from the image).
pub const FW_DATA: Region = Region {
    name: "fw-data",
    base: TEMP_MEM.base,
    size: 0x4_0000,
};

/// The firmware's stack; it grows down from `FW_STACK.end()`.
pub const FW_STACK: Region = Region {
    name: "fw-stack",
    base: FW_DATA.end(),
    size: 0x4_0000,
};

/// Identity page tables the reset code builds to reach long mode: PML4, PDPT and four page
/// directories of 2 MiB pages mapping `[0, 4 GiB)`.
pub const RESET_PAGE_TABLES: Region = Region {
    name: "reset-page-tables",
    base: FW_STACK.end(),
    size: 6 * PAGE_SIZE,
};

/// Where the application processors wait before they go to the multiprocessor wakeup loop:
/// under TDX they start at the reset vector with the boot CPU and spin here in 32-bit mode
/// (this page is in [`TEMP_MEM`], so it is accepted before the first instruction); on a plain
/// VM they arrive here from the start-up IPI trampoline. The boot CPU writes the page-table
/// root and the loop's address, then the go word (see `td_shim::mp`).
pub const AP_RENDEZVOUS: Region = Region {
    name: "ap-rendezvous",
    base: RESET_PAGE_TABLES.end(),
    size: PAGE_SIZE,
};

/// A spare page table: the 2 MiB page holding [`FW_CFG_BOUNCE`] is split into 4 KiB pages here
/// when the bounce buffer is mapped shared under TDX or SEV-SNP (under SNP the GHCB page, in the
/// same 2 MiB page, splits it first; the reset page tables have only 2 MiB pages).
pub const BOUNCE_PAGE_TABLE: Region = Region {
    name: "bounce-page-table",
    base: AP_RENDEZVOUS.end(),
    size: PAGE_SIZE,
};

/// The SEV-SNP secrets page: the AMD-SP fills it at launch (VMPCKs, the guest OS area); SEV
/// metadata section SNP_SECRETS ([`crate::sev`]). Unused under TDX and on a plain VM.
pub const SNP_SECRETS: Region = Region {
    name: "snp-secrets",
    base: BOUNCE_PAGE_TABLE.end(),
    size: PAGE_SIZE,
};

/// The SEV-SNP CPUID page: the VMM fills it with its CPUID table and the AMD-SP checks it
/// against the platform at launch; SEV metadata section CPUID ([`crate::sev`]).
pub const SNP_CPUID: Region = Region {
    name: "snp-cpuid",
    base: SNP_SECRETS.end(),
    size: PAGE_SIZE,
};

/// The SEV-SNP kernel-hashes page: QEMU (`kernel-hashes=on`) writes the hashes of the kernel,
/// initrd and command line of a direct boot at [`crate::sev::SEV_HASH_TABLE_OFFSET`] in it and
/// the page is measured; SEV metadata section SNP_KERNEL_HASHES ([`crate::sev`]).
pub const SNP_KERNEL_HASHES: Region = Region {
    name: "snp-kernel-hashes",
    base: SNP_CPUID.end(),
    size: PAGE_SIZE,
};

/// Reserved for the firmware's GHCB under SEV-SNP (made shared at run time). Not a metadata
/// section of its own: it is validated zero memory like the rest of [`TEMP_MEM`].
pub const SNP_GHCB: Region = Region {
    name: "snp-ghcb",
    base: SNP_KERNEL_HASHES.end(),
    size: PAGE_SIZE,
};

/// What the firmware hands an ELF payload: the [`crate::handoff::BootInfo`] and its memory map.
pub const HANDOFF: Region = Region {
    name: "handoff",
    base: 0x19_0000,
    size: 0x1_0000,
};

/// The CC event log: the firmware's measurements, announced to the OS by the CCEL ACPI table
/// (LASA = base, LAML = size) and kept reserved after hand-off.
pub const EVENT_LOG: Region = Region {
    name: "event-log",
    base: HANDOFF.end(),
    size: 0x1_0000,
};

/// The fw_cfg DMA bounce buffer under TDX: converted to shared memory at entry, back to
/// private and accepted again before hand-off. Unused on a plain VM. It lies in one 2 MiB page,
/// so one spare page table ([`BOUNCE_PAGE_TABLE`]) can map it at 4 KiB granularity.
pub const FW_CFG_BOUNCE: Region = Region {
    name: "fw-cfg-bounce",
    base: EVENT_LOG.end(),
    size: 0x4_0000,
};

/// The multiprocessor wakeup mailbox (ACPI 6.4 §5.2.12.19, MADT structure type 0x10): the OS
/// writes Command/ApicId/WakeupVector in its first half; the firmware's half holds the loop the
/// parked application processors run. ACPI NVS after hand-off. Below 1 MiB: in the first 2 MiB,
/// which a Linux hand-off maps executable, so the parked APs can run from it, and readable
/// through Linux's `/dev/mem` (low memory bypasses its iomem restrictions), so the guest agent
/// can show what the OS left there. Taken from the VMM's RAM, not part of [`TEMP_MEM`].
pub const MP_MAILBOX: Region = Region {
    name: "mp-mailbox",
    base: 0x9_E000,
    size: PAGE_SIZE,
};
/// Where the application processors start in real mode (a start-up IPI's vector page), during
/// the firmware's life only: RAM again for the OS afterwards.
pub const AP_TRAMPOLINE: Region = Region {
    name: "ap-trampoline",
    base: 0x8000,
    size: PAGE_SIZE,
};
const _: () = assert!(
    MP_MAILBOX.is_aligned(PAGE_SIZE)
        && AP_TRAMPOLINE.is_aligned(PAGE_SIZE)
        && MP_MAILBOX.end() <= LEGACY_HOLE.base
        && AP_TRAMPOLINE.base >= PAGE_SIZE
        && !AP_TRAMPOLINE.overlaps(&MP_MAILBOX)
);

/// The firmware's code and read-only data, copied here from the image by the reset code and run
/// from here: RIP-relative code must sit within 2 GiB of the `.data` and `.bss` it uses, which
/// the top of 4 GiB is not. 2 MiB aligned so it can be mapped read-only and executable while
/// everything else stays non-executable.
pub const FW_CODE: Region = Region {
    name: "fw-code",
    base: 0x20_0000,
    size: 0x20_0000,
};

/// The page tables the firmware builds in Rust (identity map of all RAM and the 32-bit MMIO
/// window); they stay in use by the payload.
pub const PAGE_TABLES: Region = Region {
    name: "page-tables",
    base: FW_CODE.end(),
    size: 0x10_0000,
};

/// The firmware heap.
pub const HEAP: Region = Region {
    name: "heap",
    base: PAGE_TABLES.end(),
    size: TEMP_MEM.end() - PAGE_TABLES.end(),
};

/// Where a TDX VMM writes the TD HOB (TDX metadata section TD_HOB).
pub const TD_HOB: Region = Region {
    name: "td-hob",
    base: TEMP_MEM.end(),
    size: 0x2_0000,
};

/// Where an ELF payload is loaded and relocated.
pub const PAYLOAD_LOAD: Region = Region {
    name: "payload-load",
    base: 0x100_0000,
    size: 0x200_0000,
};

/// The least RAM the firmware can boot with: everything above must be RAM.
pub const MIN_RAM_TOP: u64 = PAYLOAD_LOAD.end();

/// The firmware's own regions inside [`TEMP_MEM`], in address order. The gaps between them are
/// unused.
pub const TEMP_MEM_REGIONS: [Region; 15] = [
    FW_DATA,
    FW_STACK,
    RESET_PAGE_TABLES,
    AP_RENDEZVOUS,
    BOUNCE_PAGE_TABLE,
    SNP_SECRETS,
    SNP_CPUID,
    SNP_KERNEL_HASHES,
    SNP_GHCB,
    HANDOFF,
    EVENT_LOG,
    FW_CFG_BOUNCE,
    FW_CODE,
    PAGE_TABLES,
    HEAP,
];

/// The image regions, in address order.
pub const IMAGE_REGIONS: [Region; 3] = [IMAGE_PAYLOAD, IMAGE_METADATA, IMAGE_FIRMWARE];

// ---------------------------------------------------------------------------------------------
// Compile-time checks. Each `assert!` states one rule of the layout.

const fn sorted_disjoint_inside(regions: &[Region], outer: &Region) -> bool {
    let mut i = 0;
    while i < regions.len() {
        let r = &regions[i];
        if r.size == 0 || !r.is_aligned(PAGE_SIZE) || !outer.contains_range(r.base, r.size) {
            return false;
        }
        if i > 0 && regions[i - 1].end() > r.base {
            return false;
        }
        i += 1;
    }
    true
}

const IMAGE: Region = Region {
    name: "image",
    base: IMAGE_BASE,
    size: IMAGE_SIZE,
};

const _: () = {
    // The image ends exactly at 4 GiB and is a whole number of 64 KiB blocks (QEMU's -bios rule).
    assert!(IMAGE_BASE + IMAGE_SIZE == FOUR_GIB);
    assert!(IMAGE_SIZE.is_multiple_of(0x1_0000));
    // Image regions: page aligned, disjoint, inside the image and covering all of it.
    assert!(sorted_disjoint_inside(&IMAGE_REGIONS, &IMAGE));
    assert!(IMAGE_PAYLOAD.base == IMAGE_BASE);
    assert!(IMAGE_PAYLOAD.end() == IMAGE_METADATA.base);
    assert!(IMAGE_METADATA.end() == IMAGE_FIRMWARE.base);
    assert!(IMAGE_FIRMWARE.end() == FOUR_GIB);
    assert!(IMAGE_BFV.base == IMAGE_METADATA.base && IMAGE_BFV.end() == FOUR_GIB);
    // The footer and the reset entry sit at the very top, inside the firmware, in the last 64 KiB
    // (the real-mode code segment at reset covers 0xFFFF0000..4 GiB).
    assert!(IMAGE_FIRMWARE.contains_range(IMAGE_FOOTER.base, IMAGE_FOOTER.size));
    assert!(IMAGE_FOOTER.base >= FOUR_GIB - 0x1_0000);
    assert!(IMAGE_FOOTER.contains_range(FOOTER_TABLE_END - 18, 18));
    assert!(IMAGE_FOOTER.contains_range(LEGACY_METADATA_POINTER, 4));
    assert!(IMAGE_RESET_ENTRY.end() == FOUR_GIB);
    assert!(IMAGE_RESET_CODE.base >= FOUR_GIB - 0x1_0000);
    assert!(IMAGE_RESET_CODE.end() == IMAGE_FOOTER.base);
    assert!(IMAGE_RESET_ENTRY.contains_range(RESET_VECTOR, 0x10));
    // Firmware RAM: page aligned, disjoint, in address order, inside TempMem, above the legacy hole.
    assert!(sorted_disjoint_inside(&TEMP_MEM_REGIONS, &TEMP_MEM));
    assert!(TEMP_MEM.is_aligned(PAGE_SIZE) && TEMP_MEM.base >= LEGACY_HOLE.end());
    assert!(!TD_HOB.overlaps(&TEMP_MEM) && TD_HOB.is_aligned(PAGE_SIZE));
    // The payload is loaded above all firmware memory, 2 MiB aligned so it can be mapped
    // executable with large pages while firmware data stays non-executable.
    assert!(PAYLOAD_LOAD.base >= TD_HOB.end() && PAYLOAD_LOAD.is_aligned(0x20_0000));
    // Everything the reset code touches in 32-bit mode is below 4 GiB and 4 KiB aligned.
    assert!(RESET_PAGE_TABLES.size == 6 * PAGE_SIZE);
    assert!(AP_RENDEZVOUS.end() <= FOUR_GIB && AP_RENDEZVOUS.is_aligned(PAGE_SIZE));
    // The SEV-SNP pages sit in the free pages between the bounce page table and the hand-off
    // area (their order in TEMP_MEM_REGIONS makes them disjoint from every other region).
    assert!(SNP_SECRETS.base == 0x18_8000 && SNP_GHCB.end() <= HANDOFF.base);
    assert!(SNP_SECRETS.size == PAGE_SIZE && SNP_CPUID.size == PAGE_SIZE);
    assert!(SNP_KERNEL_HASHES.size == PAGE_SIZE && SNP_GHCB.size == PAGE_SIZE);
    assert!(IMAGE_METADATA.contains_range(SEV_METADATA_BASE, 16));
    // The bounce buffer lies inside one 2 MiB page (one spare table splits it).
    assert!(FW_CFG_BOUNCE.base / 0x20_0000 == (FW_CFG_BOUNCE.end() - 1) / 0x20_0000);
    assert!(FW_STACK.end().is_multiple_of(16));
    // The firmware's RAM copy is executable and read-only in its own 2 MiB page, and anything
    // that fits the image's firmware region fits it.
    assert!(FW_CODE.is_aligned(0x20_0000) && FW_CODE.size >= IMAGE_FIRMWARE.size);
    // Code and data are within 2 GiB of each other (RIP-relative addressing).
    assert!(FW_CODE.end() - FW_DATA.base < 0x8000_0000);
    // The RAM the firmware needs fits the smallest supported guest (128 MiB).
    assert!(MIN_RAM_TOP <= 128 * 0x10_0000);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_range_rejects_overflow_and_outside() {
        assert!(HEAP.contains_range(HEAP.base, HEAP.size));
        assert!(!HEAP.contains_range(HEAP.base, HEAP.size + 1));
        assert!(!HEAP.contains_range(HEAP.base - 1, 1));
        assert!(!HEAP.contains_range(u64::MAX, 2));
    }

    #[test]
    fn overlaps_is_half_open() {
        assert!(!FW_DATA.overlaps(&FW_STACK));
        assert!(TEMP_MEM.overlaps(&HEAP));
    }

    #[test]
    fn image_offsets_match_the_file() {
        assert_eq!(IMAGE_PAYLOAD.image_offset(), 0);
        assert_eq!(IMAGE_FIRMWARE.end() - IMAGE_BASE, IMAGE_SIZE);
        assert_eq!(RESET_VECTOR - IMAGE_BASE, IMAGE_SIZE - 0x10);
    }
}
