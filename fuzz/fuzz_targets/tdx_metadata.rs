//! The image's self-description as a VMM or a measuring tool reads it: the footer GUID table
//! (`td_layout::footer::parse_footer_table`), the legacy metadata pointer, and the TDX metadata
//! (`td_layout::metadata::parse_metadata`), with round trips through their writers.
//!
//! Input: the image (any length; a VMM reads it from its end).
#![no_main]

use libfuzzer_sys::fuzz_target;
use td_layout::footer::{
    parse_footer_table, read_legacy_metadata_pointer, write_footer_table, FooterEntry,
    TABLE_END_FROM_IMAGE_END,
};
use td_layout::metadata::{
    encoded_len, locate_descriptor, parse_metadata, validate_sections, write_metadata,
    MetadataSource, GUID_SIZE, MAX_SECTIONS, TDX_METADATA_GUID,
};

fuzz_target!(|data: &[u8]| {
    assert_eq!(
        read_legacy_metadata_pointer(data).is_ok(),
        data.len() >= 0x20
    );

    if let Ok(table) = parse_footer_table(data) {
        assert_eq!(
            table.offset() + table.len(),
            data.len() - TABLE_END_FROM_IMAGE_END
        );
        assert!(!table.is_empty());
        let entries: Vec<FooterEntry<'_>> = table.entries().collect();
        let walked: usize = entries.iter().map(|e| e.data.len() + 18).sum::<usize>() + 18;
        assert_eq!(walked, table.len(), "the entries do not fill the table");
        // Writing the entries back reproduces the image byte for byte.
        let mut copy = data.to_vec();
        assert_eq!(write_footer_table(&mut copy, &entries), Ok(table.len()));
        assert!(copy == data, "footer table round trip changed the image");
    }

    let located = locate_descriptor(data);
    let Ok(m) = parse_metadata(data) else { return };
    assert_eq!(located, Ok((m.descriptor_offset(), m.source())));
    if m.source() == MetadataSource::LegacyPointer {
        let p = read_legacy_metadata_pointer(data).unwrap();
        assert_eq!(p as usize, m.descriptor_offset());
    }
    let guid_at = m.descriptor_offset() - GUID_SIZE;
    assert_eq!(
        &data[guid_at..m.descriptor_offset()],
        TDX_METADATA_GUID.as_bytes()
    );
    let n = m.section_count();
    assert!(n >= 1 && n <= MAX_SECTIONS);
    assert_eq!(m.sections().count(), n);
    assert!(m.sections().all(|s| s.kind().is_some()));
    assert_eq!(validate_sections(m.sections(), data.len() as u64), Ok(()));
    // Writing the sections back gives the GUID, descriptor and sections as stored.
    let sections: Vec<_> = m.sections().collect();
    let mut out = vec![0u8; encoded_len(n)];
    assert_eq!(write_metadata(&sections, &mut out), Ok(encoded_len(n)));
    assert!(
        out == data[guid_at..guid_at + encoded_len(n)],
        "metadata round trip differs"
    );
});
