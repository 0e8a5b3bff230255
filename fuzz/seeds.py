#!/usr/bin/env python3
"""Writes the committed seed corpus of the fuzz targets (fuzz/corpus/<target>/seed-*).

Run from anywhere: `python3 fuzz/seeds.py`. Real inputs it reads (README.md says where each
seed comes from):

- testdata/eventlogs/ (else ../shared/testdata/eventlogs/): real CC event logs;
- target/images/td-shim.bin (`cargo xtask build`): the payload table, the test payload ELF and
  the TDX metadata / footer table of a real image;
- target/kernel/vmlinuz (`cargo xtask ci` downloads it): the setup header of a real kernel.

Seeds whose input is missing are skipped with a message. The others are built from the formats.
"""

import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    assert len(data) <= 64 * 1024, (target, name, len(data))
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def read(*candidates):
    for c in candidates:
        p = os.path.join(ROOT, c)
        if os.path.isfile(p):
            with open(p, "rb") as f:
                return f.read()
    print("seeds.py: none of %s: skipped" % (candidates,), file=sys.stderr)
    return None


def guid(fields):
    a, b, c, d = fields
    return struct.pack("<IHH", a, b, c) + bytes(d)


# ---------------------------------------------------------------------------------------------
# E820 (QEMU's fw_cfg etc/e820 for q35: RAM below 4 GiB, RAM above, the reserved TSS page)

def e820(records):
    return b"".join(struct.pack("<QQI", b, l, t) for b, l, t in records)


write("e820", "qemu-q35-2g", e820([(0, 0x8000_0000, 1), (0xFEFF_C000, 0x4000, 2)]))
write("e820", "qemu-q35-8g", e820([(0, 0x8000_0000, 1), (0xFEFF_C000, 0x4000, 2),
                                   (0x1_0000_0000, 0x1_8000_0000, 1)]))
# Trailing bytes choose the range the target carves and releases.
write("e820", "qemu-q35-512m-tail", e820([(0, 0x2000_0000, 1), (0xFEFF_C000, 0x4000, 2)])
      + struct.pack("<Q", 0x0000_1000_0012_3400))

# ---------------------------------------------------------------------------------------------
# fw_cfg file directory: the files of a q35 guest with -kernel, sorted by name as QEMU sorts
# them, selectors from 0x20 (FW_CFG_FILE_FIRST).

QEMU_FILES = [
    ("bios-geometry", 0),
    ("bootorder", 0),
    ("etc/acpi/rsdp", 36),
    ("etc/acpi/tables", 131072),
    ("etc/boot-fail-wait", 4),
    ("etc/e820", 40),
    ("etc/msr_feature_control", 8),
    ("etc/smbios/smbios-anchor", 31),
    ("etc/smbios/smbios-tables", 354),
    ("etc/system-states", 6),
    ("etc/table-loader", 4096),
    ("etc/tpm/log", 0),
    ("genroms/kvmvapic.bin", 9216),
    ("genroms/linuxboot_dma.bin", 1536),
]


def fw_cfg_dir(files):
    out = struct.pack(">I", len(files))
    for i, (name, size) in enumerate(files):
        out += struct.pack(">IHH", size, 0x20 + i, 0) + name.encode().ljust(56, b"\0")
    return out


write("fw_cfg_dir", "qemu-q35", fw_cfg_dir(QEMU_FILES))
write("fw_cfg_dir", "empty", struct.pack(">I", 0))

# ---------------------------------------------------------------------------------------------
# ACPI: tables and the table-loader script the way QEMU's bios_linker_loader builds them
# (hw/acpi/bios-linker-loader.c): ALLOCATE rsdp (align 16, FSEG) and tables (align 64, HIGH),
# ADD_POINTER for every table-to-table pointer, ADD_CHECKSUM for every table.

def acpi_table(sig, rev, body):
    t = bytearray(sig + struct.pack("<IBB", 36 + len(body), rev, 0) + b"BOCHS " + b"BXPC    "
                  + struct.pack("<I", 1) + b"BXPC" + struct.pack("<I", 1) + body)
    t[9] = (-sum(t)) & 0xFF
    return bytes(t)


def cmd_allocate(name, align, zone):
    return (struct.pack("<I", 1) + name.encode().ljust(56, b"\0") + struct.pack("<IB", align, zone)).ljust(128, b"\0")


def cmd_pointer(dest, src, offset, size):
    return (struct.pack("<I", 2) + dest.encode().ljust(56, b"\0") + src.encode().ljust(56, b"\0")
            + struct.pack("<IB", offset, size)).ljust(128, b"\0")


def cmd_checksum(name, offset, start, length):
    return (struct.pack("<I", 3) + name.encode().ljust(56, b"\0")
            + struct.pack("<III", offset, start, length)).ljust(128, b"\0")


def cmd_write_pointer(dest, src, dest_offset, src_offset, size):
    return (struct.pack("<I", 4) + dest.encode().ljust(56, b"\0") + src.encode().ljust(56, b"\0")
            + struct.pack("<IIB", dest_offset, src_offset, size)).ljust(128, b"\0")


def qemu_acpi(revision):
    """(script, tables file, rsdp file): FACS, DSDT, FADT, APIC, then RSDT (and XSDT)."""
    tables = bytearray()
    script = [cmd_allocate("etc/acpi/rsdp", 16, 2), cmd_allocate("etc/acpi/tables", 64, 1)]
    checks = []

    def add(t):
        at = len(tables)
        tables.extend(t)
        return at

    facs = add(b"FACS" + struct.pack("<I", 64) + bytes(56))
    dsdt = add(acpi_table(b"DSDT", 1, bytes.fromhex("5b8252045f534230") + bytes(24)))
    checks.append((dsdt, 36 + 32))
    fadt_body = bytearray(244 - 36)
    fadt = add(acpi_table(b"FACP", 3, bytes(fadt_body)))
    # FIRMWARE_CTRL @36 (u32) and DSDT @40 (u32), X_DSDT @140 (u64) point into the tables.
    struct.pack_into("<II", tables, fadt + 36, facs, dsdt)
    struct.pack_into("<Q", tables, fadt + 140, dsdt)
    script += [cmd_pointer("etc/acpi/tables", "etc/acpi/tables", fadt + 36, 4),
               cmd_pointer("etc/acpi/tables", "etc/acpi/tables", fadt + 40, 4),
               cmd_pointer("etc/acpi/tables", "etc/acpi/tables", fadt + 140, 8)]
    checks.append((fadt, 244))
    apic_body = struct.pack("<II", 0xFEE0_0000, 1) + bytes([0, 8, 0, 0, 1, 0, 0, 0]) \
        + bytes([1, 12, 0, 0]) + struct.pack("<II", 0xFEC0_0000, 0)
    apic = add(acpi_table(b"APIC", 3, apic_body))
    checks.append((apic, 36 + len(apic_body)))
    listed = [fadt, apic]
    rsdt = add(acpi_table(b"RSDT", 1, b"".join(struct.pack("<I", t) for t in listed)))
    for i in range(len(listed)):
        script.append(cmd_pointer("etc/acpi/tables", "etc/acpi/tables", rsdt + 36 + 4 * i, 4))
    checks.append((rsdt, 36 + 4 * len(listed)))
    xsdt = None
    if revision >= 2:
        xsdt = add(acpi_table(b"XSDT", 1, b"".join(struct.pack("<Q", t) for t in listed)))
        for i in range(len(listed)):
            script.append(cmd_pointer("etc/acpi/tables", "etc/acpi/tables", xsdt + 36 + 8 * i, 8))
        checks.append((xsdt, 36 + 8 * len(listed)))
    for at, length in checks:
        tables[at + 9] = 0
        script.append(cmd_checksum("etc/acpi/tables", at + 9, at, length))
    rsdp = bytearray(b"RSD PTR " + bytes(1) + b"BOCHS " + bytes([revision]) + struct.pack("<I", rsdt))
    script.append(cmd_pointer("etc/acpi/rsdp", "etc/acpi/tables", 16, 4))
    if revision >= 2:
        rsdp += struct.pack("<IQ", 36, xsdt) + bytes(4)
        script.append(cmd_pointer("etc/acpi/rsdp", "etc/acpi/tables", 24, 8))
    script.append(cmd_checksum("etc/acpi/rsdp", 8, 0, 20))
    if revision >= 2:
        script.append(cmd_checksum("etc/acpi/rsdp", 32, 0, 36))
    return b"".join(script), bytes(tables), bytes(rsdp)


def loader_input(base, script, files):
    out = struct.pack("<IH", base, len(script)) + script
    for name, data in files:
        out += bytes([len(name)]) + name.encode() + struct.pack("<H", len(data)) + data
    return out


for rev in (0, 2):
    script, tables, rsdp = qemu_acpi(rev)
    files = [("etc/acpi/rsdp", rsdp), ("etc/acpi/tables", tables)]
    write("acpi_loader", "qemu-rsdp-rev%d" % rev, loader_input(0x7FFF_0000, script, files))
# With vmgenid: an extra file and a WRITE_POINTER the firmware skips.
script, tables, rsdp = qemu_acpi(2)
script += cmd_allocate("etc/vmgenid_guid", 4096, 1)
script += cmd_write_pointer("etc/vmgenid_addr", "etc/vmgenid_guid", 0, 40, 8)
write("acpi_loader", "qemu-vmgenid", loader_input(0x7FF0_0000, script + bytes(128),
      [("etc/acpi/rsdp", rsdp), ("etc/acpi/tables", tables), ("etc/vmgenid_guid", bytes(4096))]))


def linked_region(revision, base):
    """The region after link(): tables at 0 (align 64), the RSDP after them (align 16)."""
    _, tables, rsdp = qemu_acpi(revision)
    tables = bytearray(tables)
    rsdp_off = (len(tables) + 15) // 16 * 16
    # Apply the pointers the script would: every table-internal pointer gets `base`.
    region = bytearray(tables.ljust(rsdp_off, b"\0") + rsdp)

    def patch(at, size):
        v = int.from_bytes(region[at:at + size], "little") + base
        region[at:at + size] = v.to_bytes(size, "little")

    def fix(at, length, field):
        region[field] = 0
        region[field] = (-sum(region[at:at + length])) & 0xFF

    pos = 0
    tables_list = []
    while pos < len(tables):
        sig = bytes(region[pos:pos + 4])
        length = struct.unpack_from("<I", region, pos + 4)[0]
        tables_list.append((sig, pos, length))
        pos += length
    for sig, at, length in tables_list:
        if sig == b"FACP":
            patch(at + 36, 4), patch(at + 40, 4), patch(at + 140, 8)
        if sig == b"RSDT":
            for i in range((length - 36) // 4):
                patch(at + 36 + 4 * i, 4)
        if sig == b"XSDT":
            for i in range((length - 36) // 8):
                patch(at + 36 + 8 * i, 8)
        if sig != b"FACS":
            fix(at, length, at + 9)
    patch(rsdp_off + 16, 4)
    if revision >= 2:
        patch(rsdp_off + 24, 8)
    fix(rsdp_off, 20, rsdp_off + 8)
    if revision >= 2:
        fix(rsdp_off, 36, rsdp_off + 32)
    return bytes(region), rsdp_off


for rev in (0, 2):
    base = 0x7FFF_0000
    region, rsdp_off = linked_region(rev, base)
    at = (len(region) + 4095) // 4096 * 4096
    head = struct.pack("<IHHBB", base, rsdp_off, at, 2, 36 if rev >= 2 else 20)
    write("acpi_add_tables", "qemu-rsdp-rev%d" % rev, head + region.ljust(at, b"\0"))

# ---------------------------------------------------------------------------------------------
# Linux bzImage: 64 bytes of parameters (see fuzz_targets/linux_bzimage.rs), then the image.

def linux_params(cmdline_len=20, initrd=(0x3000_0000, 0x10_0000), e820_entries=3):
    p = bytearray(64)
    struct.pack_into("<QQQQ", p, 0, 0x10_0000, 0x7FF0_0000, 0x1_0000_0000, 0x1_0000_0000)
    struct.pack_into("<QI", p, 0x20, 0x2_0000, cmdline_len)
    struct.pack_into("<QI", p, 0x2C, initrd[0], initrd[1])
    p[0x38] = e820_entries
    p[0x39] = 0
    struct.pack_into("<HI", p, 0x3A, 64, 0x000F_E000)
    return bytes(p)


def small_bzimage(kernel_len=0x600):
    b = bytearray(0xA00 + kernel_len)
    b[0x1F1] = 4                                   # setup_sects
    struct.pack_into("<I", b, 0x1F4, kernel_len // 16)   # syssize
    struct.pack_into("<H", b, 0x1FE, 0xAA55)
    b[0x200:0x202] = bytes([0xEB, 0x6A])           # header ends at 0x26C
    b[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", b, 0x206, 0x020F)
    b[0x211] = 1                                   # LOADED_HIGH
    struct.pack_into("<I", b, 0x22C, 0x7FFF_FFFF)  # initrd_addr_max
    struct.pack_into("<I", b, 0x230, 0x20_0000)    # kernel_alignment
    b[0x234] = 1                                   # relocatable
    b[0x235] = 21                                  # min_alignment
    struct.pack_into("<H", b, 0x236, 0x7F)         # xloadflags
    struct.pack_into("<I", b, 0x238, 2047)         # cmdline_size
    struct.pack_into("<Q", b, 0x258, 0x100_0000)   # pref_address
    struct.pack_into("<I", b, 0x260, 0x40_0000)    # init_size
    return bytes(b)


write("linux_bzimage", "synthetic", linux_params() + small_bzimage())
write("linux_bzimage", "synthetic-no-initrd", linux_params(0, (0, 0), 0) + small_bzimage(0x10))
vmlinuz = read("target/kernel/vmlinuz")
if vmlinuz is not None:
    sects = vmlinuz[0x1F1] or 4
    setup = bytearray(vmlinuz[:(sects + 1) * 512 + 512])
    struct.pack_into("<I", setup, 0x1F4, 512 // 16)  # syssize of the 512 kernel bytes kept
    write("linux_bzimage", "debian-6.1-cloud-head", linux_params() + bytes(setup))

# ---------------------------------------------------------------------------------------------
# Image parts: the payload table and ELF of a built td-shim.bin, its footer table and metadata.

image = read("target/images/td-shim.bin")
if image is not None:
    magic, version, count = struct.unpack_from("<8sII", image, 0)
    assert magic == b"TDSHPAYL" and count >= 1
    kind, _, offset, size = struct.unpack_from("<IIQQ", image, 16)
    payload_end = max(struct.unpack_from("<IIQQ", image, 16 + 24 * i)[2]
                      + struct.unpack_from("<IIQQ", image, 16 + 24 * i)[3] for i in range(count))
    write("payload_table", "td-shim-test-payload", image[:payload_end])
    if kind == 1:
        write("elf", "test-payload", image[offset:offset + size])
    write("tdx_metadata", "td-shim-last-4k", image[-4096:])

    # A compact image with the real descriptor: the same four sections, rescaled to a 16 KiB
    # image, found through the footer table and through the legacy pointer.
    end_off = struct.unpack_from("<I", image, len(image) - 0x20 - 18 - 16 - 2 - 4)[0]
    desc = len(image) - end_off
    sig, length, ver, n = struct.unpack_from("<4I", image, desc)
    sections = [list(struct.unpack_from("<IIQQII", image, desc + 16 + 32 * i)) for i in range(n)]
    small = bytearray(0x4000)
    meta = 0x1000
    small[meta - 16:meta] = image[desc - 16:desc]
    struct.pack_into("<4I", small, meta, sig, length, ver, n)
    for i, s in enumerate(sections):
        if s[1]:                      # raw data: into the last 8 KiB of the small image
            s[0], s[1] = 0x2000, 0x2000
            s[3] = max(s[3], 0x2000)
        struct.pack_into("<IIQQII", small, meta + 16 + 32 * i, *s)
    legacy = bytearray(small)
    struct.pack_into("<I", legacy, len(legacy) - 0x20, meta)
    write("tdx_metadata", "compact-legacy-pointer", bytes(legacy))
    tdx_offset_guid = guid((0xE47A_6535, 0x984A, 0x4798, [0x86, 0x5E, 0x46, 0x85, 0xA7, 0xBF, 0x8E, 0xC2]))
    footer_guid = guid((0x96B5_82DE, 0x1FB2, 0x45F7, [0xBA, 0xEA, 0xA3, 0x66, 0xC5, 0x5A, 0x08, 0x2D]))
    table = struct.pack("<I", len(small) - meta) + struct.pack("<H", 22) + tdx_offset_guid
    table += struct.pack("<H", len(table) + 18) + footer_guid
    end = len(small) - 0x20
    small[end - len(table):end] = table
    write("tdx_metadata", "compact-footer-table", bytes(small))

# ---------------------------------------------------------------------------------------------
# CC event logs: the real logs, cut after the last event plus 64 bytes of their padding.

def log_end(log):
    """Offset just past the last event (TCG crypto-agile layout; see td-shim/src/eventlog.rs)."""
    size = struct.unpack_from("<I", log, 28)[0]
    spec = log[32:32 + size]
    n = struct.unpack_from("<I", spec, 24)[0]
    sizes = dict(struct.unpack_from("<HH", spec, 28 + 4 * i) for i in range(n))
    at = 32 + size
    while at + 8 <= len(log) and log[at:at + 8] not in (b"\xff" * 8, bytes(8)):
        count = struct.unpack_from("<I", log, at + 8)[0]
        at += 12
        for _ in range(count):
            at += 2 + sizes[struct.unpack_from("<H", log, at)[0]]
        at += 4 + struct.unpack_from("<I", log, at)[0]
    return at


def cut_log(log):
    return log[:min(len(log), log_end(log) + 64)]


for name in ["gotdx-ccel_data.dat", "trustee-CCEL_data", "trustee-CCEL_data_ovmf",
             "trustee-CCEL_data_grub"]:
    log = read("testdata/eventlogs/" + name, "../shared/testdata/eventlogs/" + name)
    if log is not None:
        write("eventlog", name.replace(".dat", ""), cut_log(log))
