#!/usr/bin/env python3
"""Second, stdlib-only implementation of TDX MRTD for a TDVF firmware image.

Written from the specification text (TDX module: TDH.MEM.PAGE.ADD and TDH.MR.EXTEND update
MRTD with 128-byte buffers; td-shim spec / TDVF design guide: the TDVF metadata and its
sections; OVMF: the footer GUID table), not from td-shim-tool's Rust code. Used by
tools/td-shim-tool/tests/mrtd_cli.rs as a cross-check; see docs/tdx-measurement.md.

usage: mrtd.py IMAGE [qemu|two-pass]   prints MRTD as 96 lower-case hex digits
"""
import hashlib
import struct
import sys
import uuid

FOOTER_GUID = uuid.UUID("96b582de-1fb2-45f7-baea-a366c55a082d").bytes_le
TDX_OFFSET_GUID = uuid.UUID("e47a6535-984a-4798-865e-4685a7bf8ec2").bytes_le
TDX_METADATA_GUID = uuid.UUID("e9eaf9f3-168e-44d5-a8eb-7f4d8738f6ae").bytes_le
PAGE = 4096
CHUNK = 256


def find_descriptor(img):
    """Offset of the TDVF descriptor: the footer table's TDX entry, else the legacy pointer."""
    n = len(img)
    if n >= 0x32 and img[n - 0x30:n - 0x20] == FOOTER_GUID:
        (table_len,) = struct.unpack_from("<H", img, n - 0x32)
        start = n - 0x20 - table_len
        if start < 0:
            raise ValueError("footer table longer than the image")
        end = n - 0x20 - 18  # the footer entry itself
        while end - 18 >= start:
            guid = img[end - 16:end]
            (entry_len,) = struct.unpack_from("<H", img, end - 18)
            if entry_len < 18 or end - entry_len < start:
                raise ValueError("malformed footer table")
            data = img[end - entry_len:end - 18]
            if guid == TDX_OFFSET_GUID:
                if len(data) != 4:
                    raise ValueError("TDX footer entry is not a u32")
                return n - struct.unpack("<I", data)[0]
            end -= entry_len
    if n < 0x20:
        raise ValueError("no TDVF metadata")
    (ptr,) = struct.unpack_from("<I", img, n - 0x20)
    if ptr in (0, 0xFFFFFFFF) or ptr < 16 or ptr > n:
        raise ValueError("no TDVF metadata")
    return ptr


def sections(img):
    off = find_descriptor(img)
    if img[off - 16:off] != TDX_METADATA_GUID:
        raise ValueError("no TDX metadata GUID before the descriptor")
    sig, length, version, count = struct.unpack_from("<4sIII", img, off)
    if sig != b"TDVF" or version != 1 or count == 0 or length != 16 + 32 * count:
        raise ValueError("bad TDVF descriptor")
    if off + length > len(img):
        raise ValueError("descriptor outside the image")
    out = []
    for i in range(count):
        out.append(struct.unpack_from("<IIQQII", img, off + 16 + 32 * i))
    return out


def mrtd(img, order="qemu"):
    h = hashlib.sha384()

    def page_add(gpa):
        h.update(b"MEM.PAGE.ADD".ljust(16, b"\0") + struct.pack("<Q", gpa) + bytes(104))

    def extend(gpa, mem, page):
        for c in range(PAGE // CHUNK):
            at = page * PAGE + c * CHUNK
            h.update(b"MR.EXTEND".ljust(16, b"\0") + struct.pack("<Q", gpa + c * CHUNK) + bytes(104))
            h.update(mem[at:at + CHUNK])

    for data_offset, raw_size, address, mem_size, _kind, attributes in sections(img):
        if attributes & ~3:
            raise ValueError("reserved attribute bits")
        if address % PAGE or mem_size % PAGE:
            raise ValueError("unaligned section")
        if data_offset + raw_size > len(img) or (mem_size and raw_size > mem_size):
            raise ValueError("section raw data outside the image or larger than its memory")
        add = not attributes & 2
        ext = bool(attributes & 1)
        pages = mem_size // PAGE
        mem = b""
        if ext:
            mem = img[data_offset:data_offset + raw_size] + bytes(mem_size - raw_size)
        if order == "qemu":
            for p in range(pages):
                if add:
                    page_add(address + p * PAGE)
                if ext:
                    extend(address + p * PAGE, mem, p)
        elif order == "two-pass":
            if add:
                for p in range(pages):
                    page_add(address + p * PAGE)
            if ext:
                for p in range(pages):
                    extend(address + p * PAGE, mem, p)
        else:
            raise ValueError("order is qemu or two-pass")
    return h.hexdigest()


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__.strip().splitlines()[-1])
    with open(sys.argv[1], "rb") as f:
        image = f.read()
    print(mrtd(image, sys.argv[2] if len(sys.argv) == 3 else "qemu"))
