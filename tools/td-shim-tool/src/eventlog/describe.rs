//! What an event's data says, in a line: the readers of the TCG and UEFI event data structures
//! and plain text. Every reader is bounds-checked: the data is untrusted.

use std::fmt::Write as _;
use td_layout::guid::Guid;
use td_shim::eventlog::EventType;
use td_shim::measurement::{ACPI_FILE_DESCRIPTOR, TD_HOB_DESCRIPTOR};
use td_shim::tdx::hob;
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

/// Longest description printed.
const MAX_DESCRIPTION: usize = 100;

/// `TCG_PCClientTaggedEvent`'s header: u32 taggedEventID, u32 taggedEventDataSize.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct TaggedEventHeader {
    id: U32,
    size: U32,
}

/// td-shim's `TD_SHIM_PLATFORM_CONFIG_INFO` header: descriptor[16], u32 length.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct PlatformConfigHeader {
    descriptor: [u8; 16],
    length: U32,
}

/// `UEFI_PLATFORM_FIRMWARE_BLOB2` after its descriptor: u64 base, u64 length.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct Blob2 {
    base: U64,
    length: U64,
}

/// One `UEFI_HANDOFF_TABLE_POINTERS2` entry: GUID, u64 address.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct HandoffTable {
    guid: [u8; 16],
    address: U64,
}

/// `UEFI_VARIABLE_DATA`'s header: GUID, u64 name length (chars), u64 data length.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct VariableHeader {
    guid: [u8; 16],
    name_chars: U64,
    data_len: U64,
}

/// `UEFI_IMAGE_LOAD_EVENT`'s header: u64 address, u64 length, u64 link-time address, u64 device
/// path length.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct ImageLoadHeader {
    address: U64,
    length: U64,
    _link_time_address: U64,
    path_len: U64,
}

/// A device path node's header: u8 type, u8 subtype, u16 length (with this header).
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct DevicePathNode {
    kind: u8,
    subtype: u8,
    len: U16,
}

/// The start of a GPT header: signature, revision, header size.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct GptHeaderStart {
    signature: [u8; 8],
    _revision: U32,
    header_size: U32,
}

/// A `T` at the start of `d` and what follows it; `None` if `d` is too short.
fn prefix<T: FromBytes + KnownLayout + Immutable + Unaligned>(d: &[u8]) -> Option<(&T, &[u8])> {
    T::ref_from_prefix(d).ok()
}

fn byte_count(n: u64) -> String {
    if n == 1 {
        "1 byte".into()
    } else {
        format!("{n} bytes")
    }
}

fn shorten(mut text: String) -> String {
    if let Some((cut, _)) = text.char_indices().nth(MAX_DESCRIPTION) {
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// Printable ASCII (with tabs and line breaks, escaped), without trailing NULs.
fn text(d: &[u8]) -> Option<String> {
    let end = d.iter().rposition(|&b| b != 0)? + 1;
    let body = d.get(..end)?;
    if !body
        .iter()
        .all(|&b| b.is_ascii_graphic() || matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
    {
        return None;
    }
    let escaped: String = body
        .iter()
        .flat_map(|&b| char::from(b).escape_default())
        .collect();
    Some(shorten(escaped))
}

/// A NUL-terminated (or unterminated) printable ASCII string.
pub(super) fn ascii_z(d: &[u8]) -> Option<String> {
    let body = d.split(|&b| b == 0).next()?;
    if body.iter().all(|&b| b.is_ascii_graphic() || b == b' ') {
        Some(String::from_utf8_lossy(body).into_owned())
    } else {
        None
    }
}

/// UTF-16LE up to the first NUL.
fn utf16(d: &[u8]) -> String {
    let (units, _) = <[U16]>::ref_from_prefix_with_elems(d, d.len() / 2).unwrap_or_default();
    let units = units.iter().map(|u| u.get()).take_while(|&u| u != 0);
    char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

/// What the data of an event of type `event_type` says, in one line of at most
/// [`MAX_DESCRIPTION`] characters; `None` if it cannot be read.
pub(super) fn describe(event_type: EventType, d: &[u8]) -> Option<String> {
    let specific = match event_type {
        EventType::SEPARATOR => separator(d),
        EventType::EVENT_TAG => tagged_event(d),
        EventType::PLATFORM_CONFIG_FLAGS => platform_config(d),
        EventType::EFI_PLATFORM_FIRMWARE_BLOB2 => firmware_blob2(d),
        EventType::EFI_HANDOFF_TABLES2 => handoff_tables2(d),
        EventType::EFI_VARIABLE_DRIVER_CONFIG
        | EventType::EFI_VARIABLE_BOOT
        | EventType::EFI_VARIABLE_BOOT2
        | EventType::EFI_VARIABLE_AUTHORITY => variable(d),
        EventType::EFI_BOOT_SERVICES_APPLICATION
        | EventType::EFI_BOOT_SERVICES_DRIVER
        | EventType::EFI_RUNTIME_SERVICES_DRIVER => image_load(d),
        EventType::EFI_GPT_EVENT => gpt(d),
        _ => None,
    };
    specific.or_else(|| text(d)).map(shorten)
}

/// 0 closes a phase normally; 1 is td-shim's error separator.
fn separator(d: &[u8]) -> Option<String> {
    match U32::read_from_bytes(d).ok()?.get() {
        0 => Some("separator (0x00000000)".into()),
        1 => Some("error separator (0x00000001)".into()),
        v => Some(format!("separator ({v:#010x})")),
    }
}

/// `TCG_PCClientTaggedEvent`: u32 taggedEventID, u32 taggedEventDataSize, data.
fn tagged_event(d: &[u8]) -> Option<String> {
    let (header, rest) = prefix::<TaggedEventHeader>(d)?;
    let (id, size) = (header.id.get(), usize::try_from(header.size.get()).ok()?);
    let data = rest.get(..size)?;
    let what = text(data).unwrap_or_else(|| format!("{size} bytes"));
    Some(format!("tag {id:#010x}: {what}"))
}

/// td-shim's `TD_SHIM_PLATFORM_CONFIG_INFO` (descriptor[16], u32 length, info): its descriptor
/// (printable ASCII, not empty) and info, if the length is exactly the rest of `d`.
pub(super) fn config_info(d: &[u8]) -> Option<(String, &[u8])> {
    let (header, info) = prefix::<PlatformConfigHeader>(d)?;
    let descriptor = ascii_z(&header.descriptor).filter(|s| !s.is_empty())?;
    let len = usize::try_from(header.length.get()).ok()?;
    (info.len() == len).then_some((descriptor, info))
}

/// td-shim's `TD_SHIM_PLATFORM_CONFIG_INFO`, with what the TD HOB and ACPI file events hold,
/// else text (OVMF's "ACPI DATA").
fn platform_config(d: &[u8]) -> Option<String> {
    let Some((desc, info)) = config_info(d) else {
        return text(d);
    };
    let len = info.len();
    match desc.as_str() {
        TD_HOB_DESCRIPTOR => Some(td_hob(info)),
        ACPI_FILE_DESCRIPTOR => Some(match ascii_z(info).filter(|n| n.len() == len && len > 0) {
            Some(name) => format!("{desc}: fw_cfg {name}"),
            None => format!("{desc}, {len} bytes of information"),
        }),
        _ => Some(format!("{desc}, {len} bytes of information")),
    }
}

/// RAM as MiB when it is a whole number of them, else bytes.
pub(super) fn ram_text(bytes: u64) -> String {
    if bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        byte_count(bytes)
    }
}

/// The TD HOB list of a `td_hob` event, as the firmware reads it.
fn td_hob(list: &[u8]) -> String {
    let len = list.len();
    match hob::parse(list) {
        Ok(h) if h.list_len() == len => {
            let ram = h.memory_map().map_or_else(
                |_| "a memory map td-shim refuses".to_owned(),
                |m| format!("{} of RAM", ram_text(m.ram_bytes())),
            );
            format!(
                "{TD_HOB_DESCRIPTOR}: HOB list of {len} bytes, {} memory ranges, {ram}",
                h.ranges().len()
            )
        }
        Ok(h) => format!(
            "{TD_HOB_DESCRIPTOR}, {len} bytes: a HOB list of {} bytes, then other bytes",
            h.list_len()
        ),
        Err(e) => format!("{TD_HOB_DESCRIPTOR}, {len} bytes: not a TD HOB ({e})"),
    }
}

/// u8 size, descriptor; returns it and what follows it.
fn sized_descriptor(d: &[u8]) -> Option<(String, &[u8])> {
    let (&size, rest) = d.split_first()?;
    let (descriptor, rest) = rest.split_at_checked(usize::from(size))?;
    Some((ascii_z(descriptor)?, rest))
}

/// `UEFI_PLATFORM_FIRMWARE_BLOB2`: descriptor, u64 base, u64 length.
fn firmware_blob2(d: &[u8]) -> Option<String> {
    let (descriptor, rest) = sized_descriptor(d)?;
    let (blob, _) = prefix::<Blob2>(rest)?;
    let (base, length) = (blob.base.get(), blob.length.get());
    Some(format!("{descriptor}: base {base:#x}, length {length:#x}"))
}

/// `TCG_HANDOFF_TABLE_POINTERS2`: descriptor, u64 count, {GUID, u64 address} × count.
fn handoff_tables2(d: &[u8]) -> Option<String> {
    let (descriptor, rest) = sized_descriptor(d)?;
    let (count, mut rest) = prefix::<U64>(rest)?;
    let count = count.get();
    let mut tables = Vec::new();
    for _ in 0..count.min(4) {
        let (table, next) = prefix::<HandoffTable>(rest)?;
        let (guid, address) = (Guid(table.guid), table.address.get());
        tables.push(format!("{guid} at {address:#x}"));
        rest = next;
    }
    Some(format!(
        "{descriptor}: {count} table(s) {}",
        tables.join(", ")
    ))
}

/// `UEFI_VARIABLE_DATA`: GUID, u64 name length (chars), u64 data length, UTF-16 name, data.
fn variable(d: &[u8]) -> Option<String> {
    let (header, rest) = prefix::<VariableHeader>(d)?;
    let name_chars = usize::try_from(header.name_chars.get()).ok()?;
    let name = rest.get(..name_chars.checked_mul(2)?)?;
    Some(format!(
        "{}:{}, {}",
        Guid(header.guid),
        utf16(name),
        byte_count(header.data_len.get())
    ))
}

/// `UEFI_IMAGE_LOAD_EVENT`: u64 address, u64 length, u64 link-time address, u64 device path
/// length, device path; the file path nodes of the device path are shown.
fn image_load(d: &[u8]) -> Option<String> {
    let (header, rest) = prefix::<ImageLoadHeader>(d)?;
    let (address, length) = (header.address.get(), header.length.get());
    let path = rest.get(..usize::try_from(header.path_len.get()).ok()?)?;
    let mut files = Vec::new();
    let mut node = path;
    while let Some((head, _)) = prefix::<DevicePathNode>(node) {
        let len = usize::from(head.len.get());
        let Some((this, rest)) = node.split_at_checked(len) else {
            break;
        };
        if len < size_of::<DevicePathNode>() || head.kind == 0x7F {
            break;
        }
        if (head.kind, head.subtype) == (4, 4) {
            files.push(utf16(
                this.get(size_of::<DevicePathNode>()..).unwrap_or_default(),
            ));
        }
        node = rest;
    }
    let mut s = format!("image at {address:#x}, {length:#x} bytes");
    if !files.is_empty() {
        let _ = write!(s, ", {}", files.join(""));
    }
    Some(s)
}

/// `UEFI_GPT_DATA`: the GPT header (its size at offset 12), u64 number of partitions, entries.
fn gpt(d: &[u8]) -> Option<String> {
    let (header, _) = prefix::<GptHeaderStart>(d)?;
    if &header.signature != b"EFI PART" {
        return None;
    }
    let header_size = usize::try_from(header.header_size.get()).ok()?;
    let (partitions, _) = prefix::<U64>(d.get(header_size..)?)?;
    let partitions = partitions.get();
    Some(format!("GPT, {partitions} partition(s)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn descriptions_of_short_or_odd_data() {
        assert_eq!(
            separator(&[1, 0, 0, 0]).unwrap(),
            "error separator (0x00000001)"
        );
        assert_eq!(separator(&[0, 0, 0]), None);
        assert_eq!(text(b"ab\0\0").unwrap(), "ab");
        assert_eq!(text(b"\0\0"), None);
        assert_eq!(text(&[0x80]), None);
        assert_eq!(tagged_event(&[1, 0, 0, 0, 200, 0, 0, 0]), None);
        assert_eq!(gpt(b"EFI PART"), None);
        assert_eq!(image_load(&[0; 32]).unwrap(), "image at 0x0, 0x0 bytes");
        assert_eq!(describe(EventType(0x1234), b"hello").unwrap(), "hello");
        // Config info: the length must be the rest of the data; an ACPI file's info is its name.
        let info = |desc: &str, info: &[u8]| {
            let mut d = [0u8; 16];
            d[..desc.len()].copy_from_slice(desc.as_bytes());
            let mut v = d.to_vec();
            v.extend_from_slice(&(info.len() as u32).to_le_bytes());
            v.extend_from_slice(info);
            v
        };
        assert_eq!(
            platform_config(&info("td_acpi_file", b"etc/acpi/tables")).unwrap(),
            "td_acpi_file: fw_cfg etc/acpi/tables"
        );
        assert_eq!(
            platform_config(&info("td_acpi_file", b"a\0b")).unwrap(),
            "td_acpi_file, 3 bytes of information"
        );
        assert_eq!(
            platform_config(&info("td_cmdline", b"quiet")).unwrap(),
            "td_cmdline, 5 bytes of information"
        );
        let mut short = info("td_cmdline", b"quiet");
        short.pop();
        assert_eq!(config_info(&short), None);
        let hob = crate::measure::vmm::tests::qemu_hob(512 << 20);
        assert_eq!(
            platform_config(&info("td_hob", &hob)).unwrap(),
            "td_hob: HOB list of 256 bytes, 4 memory ranges, 512 MiB of RAM"
        );
        let mut padded = hob.clone();
        padded.extend_from_slice(&[0; 8]);
        assert_eq!(
            platform_config(&info("td_hob", &padded)).unwrap(),
            "td_hob, 264 bytes: a HOB list of 256 bytes, then other bytes"
        );
        let text = platform_config(&info("td_hob", &hob[..100])).unwrap();
        assert!(
            text.starts_with("td_hob, 100 bytes: not a TD HOB ("),
            "{text}"
        );
        assert_eq!(shorten("x".repeat(101)).chars().count(), 101);
    }

    proptest! {
        #[test]
        fn describing_any_data_never_panics(
            t in prop::sample::select(vec![4u32, 6, 0xA, 0xD, 0x8000_0001, 0x8000_0003, 0x8000_0006,
                0x8000_000A, 0x8000_000B, 0x8000_00E0, 7]),
            data in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let _ = describe(EventType(t), &data);
        }
    }
}
