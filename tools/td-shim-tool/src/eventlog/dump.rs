//! `eventlog dump`: the Spec ID event and every event, with register, type, digest and what
//! the data says.

use super::describe::ascii_z;
use super::{event_report, EventLogCommandError, EventReport};
use serde::Serialize;
use std::fmt::Write as _;
use td_shim::eventlog::{self, EventLog, LogEnd};

/// One algorithm of the Spec ID event.
#[derive(Debug, Serialize)]
pub struct AlgorithmReport {
    /// `TPM_ALG_ID`.
    pub id: u16,
    /// Its name, or the ID in hex.
    pub name: String,
    /// Bytes of its digests.
    pub digest_size: u16,
}

/// The Spec ID event.
#[derive(Debug, Serialize)]
pub struct SpecIdReport {
    /// The header's MR/PCR index.
    pub mr_index: u32,
    /// `platformClass`.
    pub platform_class: u32,
    /// `specVersionMajor.specVersionMinor`.
    pub spec_version: String,
    /// `specErrata`.
    pub spec_errata: u8,
    /// `uintnSize` (1 = UINT32, 2 = UINT64).
    pub uintn_size: u8,
    /// The declared algorithms.
    pub algorithms: Vec<AlgorithmReport>,
    /// `vendorInfo`, as text if it is text, else in hex.
    pub vendor_info: String,
}

/// `eventlog dump`: the whole log.
#[derive(Debug, Serialize)]
pub struct DumpReport {
    /// The Spec ID event.
    pub spec_id: SpecIdReport,
    /// The events, in log order.
    pub events: Vec<EventReport>,
    /// Byte offset just past the last event.
    pub end_offset: usize,
    /// What follows the last event.
    pub end: String,
}

fn end_text(end: LogEnd) -> String {
    match end {
        LogEnd::EndOfBuffer => "end of file".into(),
        LogEnd::Padding(b) => format!("{b:#04x} padding"),
    }
}

fn spec_id_report(log: &EventLog<'_>) -> SpecIdReport {
    let s = log.spec_id();
    SpecIdReport {
        mr_index: s.mr_index,
        platform_class: s.platform_class,
        spec_version: format!("{}.{}", s.spec_version_major, s.spec_version_minor),
        spec_errata: s.spec_errata,
        uintn_size: s.uintn_size,
        algorithms: s
            .algorithms
            .iter()
            .map(|a| AlgorithmReport {
                id: a.id,
                name: a
                    .name()
                    .map_or_else(|| format!("{:#06x}", a.id), str::to_owned),
                digest_size: a.digest_size,
            })
            .collect(),
        vendor_info: ascii_z(s.vendor_info).unwrap_or_else(|| hex::encode(s.vendor_info)),
    }
}

/// Parses a log for `eventlog dump`.
pub fn dump(log: &[u8]) -> Result<DumpReport, EventLogCommandError> {
    let parsed = eventlog::parse(log)?;
    Ok(DumpReport {
        spec_id: spec_id_report(&parsed),
        events: parsed.events().iter().map(event_report).collect(),
        end_offset: parsed.end_offset(),
        end: end_text(parsed.end()),
    })
}

impl DumpReport {
    /// The human-readable form.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let sp = &self.spec_id;
        let _ = writeln!(
            s,
            "Spec ID event: MR index {}, spec {} errata {}, platform class {}, uintn size {}, vendor info {:?}",
            sp.mr_index, sp.spec_version, sp.spec_errata, sp.platform_class, sp.uintn_size, sp.vendor_info
        );
        for a in &sp.algorithms {
            let _ = writeln!(
                s,
                "  algorithm {} ({:#06x}), {} bytes",
                a.name, a.id, a.digest_size
            );
        }
        let _ = writeln!(
            s,
            "{} events; the log ends at offset {:#x} ({})",
            self.events.len(),
            self.end_offset,
            self.end
        );
        for e in &self.events {
            let _ = writeln!(
                s,
                "{:>4} {:#08x} {:<5} {:<32} {:>6} bytes  {}",
                e.index,
                e.offset,
                e.register.as_deref().unwrap_or("-"),
                e.type_name,
                e.data_length,
                e.description.as_deref().unwrap_or("")
            );
            let _ = writeln!(s, "     sha384 {}", e.digest);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eventlog::tests::testdata;

    #[test]
    fn dump_describes_the_gotdx_log() {
        let report = dump(&testdata("gotdx-ccel_data.dat")).unwrap();
        assert_eq!(report.events.len(), 43);
        assert_eq!(report.end_offset, 0x46b5);
        assert_eq!(report.end, "0xff padding");
        assert_eq!(report.spec_id.algorithms[0].name, "sha384");
        assert_eq!(report.spec_id.spec_version, "2.0");
        let d = |i: usize| report.events[i].description.clone().unwrap_or_default();
        let e = &report.events[0];
        assert_eq!(
            (e.index, e.offset, e.register.as_deref()),
            (1, 0x41, Some("RTMR0"))
        );
        assert_eq!(e.type_name, "EV_EFI_HANDOFF_TABLES2");
        assert_eq!(
            d(0),
            "TdxTable: 1 table(s) 93bb96af-b9f2-4eb8-9462-e0ba74564236 at 0x809000"
        );
        assert_eq!(
            d(1),
            "Fv(48DB5E17-707C-472D-91CD-1613E7EF51B0): base 0xffe00000, length 0x20000"
        );
        assert_eq!(
            d(2),
            "8be4df61-93ca-11d2-aa0d-00e098032b8c:SecureBoot, 1 byte"
        );
        assert_eq!(d(6), "d719b2cb-3d3a-4596-a3bc-dad00e67656f:dbx, 4461 bytes");
        assert_eq!(d(7), "separator (0x00000000)");
        assert_eq!(d(8), "ACPI DATA");
        assert_eq!(d(14), "Calling EFI Application from Boot Option");
        assert_eq!(d(16), "GPT, 12 partition(s)");
        assert_eq!(
            d(17),
            "image at 0xbcb5c018, 0xe1c10 bytes, \\EFI\\BOOT\\BOOTX64.EFI"
        );
        assert_eq!(d(18), "MokList");
        assert_eq!(
            d(20),
            "605dab50-e046-4300-abb6-3dd810dd8b23:SbatLevel, 18 bytes"
        );
        assert_eq!(d(24), "/efi/boot/grub.cfg");
        assert!(
            d(32).starts_with("grub_cmd: menuentry local image A {\\n  linux /syslinux/vmlinuz.A"),
            "{}",
            d(32)
        );
        assert!(d(32).ends_with('…'));
        assert_eq!(report.events[42].register.as_deref(), Some("RTMR1"));
        let text = report.to_text();
        assert!(text.contains("Spec ID event: MR index 1, spec 2.0 errata 0"));
        assert!(text.contains("43 events; the log ends at offset 0x46b5 (0xff padding)"));
        assert!(text.contains("algorithm sha384 (0x000c), 48 bytes"));
        assert!(text.contains(
            "   8 0x002181 RTMR0 EV_SEPARATOR                          4 bytes  separator (0x00000000)\n     sha384 394341b7182cd227c5c6b07ef8000cdfd86136c4292b8e576573ad7ed9ae41019f5818b4b971c9effc60e1ad9f1289f0"
        ));
    }

    #[test]
    fn dump_describes_the_tdshim_and_ovmf_logs() {
        let tdshim = dump(&testdata("trustee-CCEL_data")).unwrap();
        assert_eq!(tdshim.events.len(), 5);
        assert_eq!(tdshim.spec_id.vendor_info, "td-shim");
        assert_eq!(tdshim.spec_id.spec_errata, 105);
        assert_eq!(tdshim.end, "0x00 padding");
        let d: Vec<String> = tdshim
            .events
            .iter()
            .map(|e| e.description.clone().unwrap_or_default())
            .collect();
        assert_eq!(
            d[0],
            "td_hob: HOB list of 5248 bytes, 6 memory ranges, a memory map td-shim refuses"
        );
        assert_eq!(d[1], "separator (0x00000000)");
        assert_eq!(d[3], "td_payload: base 0x901000, length 0x10000000");
        assert_eq!(d[4], "td_payload_info, 4096 bytes of information");
        let registers: Vec<&str> = tdshim
            .events
            .iter()
            .map(|e| e.register.as_deref().unwrap_or("-"))
            .collect();
        assert_eq!(registers, ["RTMR0", "RTMR0", "RTMR1", "RTMR1", "RTMR1"]);

        let ovmf = dump(&testdata("trustee-CCEL_data_ovmf")).unwrap();
        assert_eq!(ovmf.events.len(), 20);
        assert_eq!(
            ovmf.events[16].description.as_deref(),
            Some("tag 0x8f3b22ed: LOADED_IMAGE::LoadOptions")
        );
        assert_eq!(
            ovmf.events[17].description.as_deref(),
            Some("tag 0x8f3b22ec: Linux initrd")
        );
        let grub = dump(&testdata("trustee-CCEL_data_grub")).unwrap();
        assert_eq!(grub.events.len(), 37);
        for r in [&tdshim, &ovmf, &grub] {
            assert!(r.events.iter().all(|e| e.type_name.starts_with("EV_")));
            assert!(r.events.iter().all(|e| e.description.is_some()));
        }
    }
}
