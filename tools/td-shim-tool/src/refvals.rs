//! `td-shim-tool refvals`: the expected measurements of a td-shim boot as reference values for
//! Trustee's Reference Value Provider Service (RVPS), and an attestation policy that accepts
//! exactly them.
//!
//! # The RVPS message
//!
//! The "sample" provenance format, message version 0.1.0 (research/tdx-attestation.md §4.5;
//! Trustee's `rvps` crate: `Message` and the sample extractor):
//!
//! ```json
//! {"version": "0.1.0", "type": "sample", "payload": "<base64 of the provenance>"}
//! ```
//!
//! The payload is standard base64 (with padding) of a JSON object that maps each reference-value
//! ID to an array of accepted values; here each array holds the one expected value. RVPS stores
//! one reference value per ID (replacing an older one) and the attestation service's policy reads
//! it with `query_reference_value("<ID>")`. Register the message with `rvps-tool register` or
//! the KBS's `POST /kbs/v0/reference-value`.
//!
//! # Reference-value IDs
//!
//! Every value is lower-case hex. The event digests are the SHA-384 digests of the events td-shim
//! records (docs/measurement.md §2), as they appear in the CC event log.
//!
//! | ID | value |
//! |---|---|
//! | `td-shim.rtmr0` .. `td-shim.rtmr3` | RTMR0 to RTMR3 after the firmware (RTMR3: 48 zero bytes) |
//! | `td-shim.launch_params` | digest of the launch-parameters event (RTMR0) |
//! | `td-shim.kernel` | digest of the kernel event (RTMR1; Linux payloads) |
//! | `td-shim.cmdline` | digest of the command-line event (RTMR2; Linux payloads) |
//! | `td-shim.initrd` | digest of the initrd event (RTMR2; only when there is an initrd) |
//! | `td-shim.payload` | digest of the ELF payload event (RTMR1; ELF payloads) |
//! | `td-shim.secure_policy` | secure boot: digest of the `secure_policy` event (RTMR0: the enrolled key record) |
//! | `td-shim.signer` | secure boot: digest of the `payload_signer` event (RTMR1: SHA-384 of SHA-384 of the signer's key) |
//! | `td-shim.payload_svn` | secure boot: digest of the `td_payload_svn` event (RTMR1: the payload's SVN, u64 LE) |
//!
//! Secure boot (the image enrolls a key, [`is_secure_boot`]): the three IDs above are added, and
//! the policies do not pin RTMR1 or the payload's digest: the boot chain is accepted when RTMR1
//! holds exactly the firmware's four events with the signer's digest, and RTMR2 matches. That
//! is sound only because the verifier replays the event log against the quote's registers
//! before it exposes the events: Trustee's TDX verifier does (`deps/verifier/src/tdx/mod.rs`,
//! `CcEventLog::replay_and_match` of `deps/eventlog`, over RTMR0 to RTMR3, the evidence refused
//! on a mismatch). The SVN is left to the firmware's floor (the enrolled minimum, in MRTD and
//! the `secure_policy` event); `td-shim.payload_svn` is there for a verifier that raises it
//! without re-enrolling by listing the accepted SVN digests.
//!
//! On TDX ([`tdx_reference_values`]) the registers are named as Trustee's default EAR policy
//! (`ear_default_policy_cpu.rego`, research §4.4) reads them, so that policy and ours can share
//! one registration; the event digests keep their `td-shim.*` IDs (Trustee has no names for
//! them):
//!
//! | ID | value |
//! |---|---|
//! | `mr_td` ([`TDX_MRTD_ID`]) | MRTD, from the image's TDVF metadata ([`crate::mrtd`]) |
//! | `rtmr_0` .. `rtmr_2` ([`TDX_RTMR_IDS`]) | RTMR0 to RTMR2 after the firmware; `rtmr_0` only when RTMR0 can be predicted |
//! | `td-shim.td_hob` ([`TD_HOB_ID`]) | digest of the TD HOB event (RTMR0), when the HOB is given |
//!
//! `mr_td`, `rtmr_1` and `rtmr_2` are the IDs Trustee's default policy queries; `rtmr_0` follows
//! the same pattern and only our policy reads it. RTMR3 belongs to the guest OS (the attestation
//! agent extends it at run time), so there is no TDX reference value for it. These names come
//! from the research notes and were not checked against a running Trustee.
//!
//! Under TDX RTMR0 also holds the VMM's configuration (the TD HOB and, for a Linux boot, one
//! event per ACPI fw_cfg file). Without it ([`Measurement::rtmr0_unknown`]) RTMR0 cannot be
//! predicted: there is then no `rtmr_0` value, and the policy does not check RTMR0 and says so
//! in its header. The ACPI file events get no IDs of their own: `rtmr_0` covers them.
//!
//! # The policy
//!
//! [`policy`] writes a Rego policy for Trustee's attestation service (`package policy`, the EAR
//! trust claims `executables` and `configuration`, plus `allow`). Its header comment states the
//! input it assumes: the claims of Trustee's TDX verifier (research §4.3), which on td-shim's
//! Plain platform no Trustee verifier produces yet. [`tdx_policy`] writes the TDX one: it also
//! sets the `hardware` claim from MRTD and the TCB status, and reads `input.tdx.quote.body.mr_td`
//! and `rtmr_0` .. `rtmr_2` as Trustee's TDX verifier exposes them.
//!
//! SEV-SNP (`refvals --platform snp`) has no event log and no registers but the launch digest:
//! its reference values and policy are [`crate::snp::refvals`]'s, in the same message format
//! ([`rvps_message_json`]).

use crate::measure::Measurement;
use base64::Engine as _;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use td_shim::eventlog::EventType;
use td_shim::measurement::EV_SEPARATOR;

/// The IDs of RTMR0 to RTMR3.
pub const RTMR_IDS: [&str; 4] = [
    "td-shim.rtmr0",
    "td-shim.rtmr1",
    "td-shim.rtmr2",
    "td-shim.rtmr3",
];
/// The ID of the launch-parameters event's digest.
pub const LAUNCH_PARAMS_ID: &str = "td-shim.launch_params";
/// The ID of the kernel event's digest.
pub const KERNEL_ID: &str = "td-shim.kernel";
/// The ID of the command-line event's digest.
pub const CMDLINE_ID: &str = "td-shim.cmdline";
/// The ID of the initrd event's digest.
pub const INITRD_ID: &str = "td-shim.initrd";
/// The ID of the ELF payload event's digest.
pub const PAYLOAD_ID: &str = "td-shim.payload";
/// The ID of the TD HOB event's digest (TDX).
pub const TD_HOB_ID: &str = "td-shim.td_hob";
/// Secure boot: the ID of the `secure_policy` event's digest (RTMR0: the enrolled key record).
pub const SECURE_POLICY_ID: &str = "td-shim.secure_policy";
/// Secure boot: the ID of the `payload_signer` event's digest (RTMR1: the signer's key hash).
pub const SIGNER_ID: &str = "td-shim.signer";
/// Secure boot: the ID of the `td_payload_svn` event's digest (RTMR1: the payload's SVN).
pub const PAYLOAD_SVN_ID: &str = "td-shim.payload_svn";

/// On TDX, the ID of MRTD: the one Trustee's default EAR policy queries
/// (`query_reference_value("mr_td")`, research §4.4).
pub const TDX_MRTD_ID: &str = "mr_td";
/// On TDX, the IDs of RTMR0 to RTMR2: Trustee's default EAR policy queries `rtmr_1` and
/// `rtmr_2` (research §4.4); `rtmr_0` follows their pattern.
pub const TDX_RTMR_IDS: [&str; 3] = ["rtmr_0", "rtmr_1", "rtmr_2"];

/// RVPS message version the sample extractor accepts.
pub const RVPS_MESSAGE_VERSION: &str = "0.1.0";
/// Provenance type of the sample extractor.
pub const RVPS_SAMPLE_TYPE: &str = "sample";

/// Why reference values could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RefvalsError {
    /// The measurement plan has an event this module has no ID for (the plan changed).
    #[error("the measurement plan's event {0:?} has no reference-value ID")]
    UnknownEvent(&'static str),
}

/// The ID of a planned event's digest (`None` for separators, which carry no input).
fn event_id(name: &'static str, event_type: u32) -> Result<Option<&'static str>, RefvalsError> {
    if event_type == EV_SEPARATOR {
        return Ok(None);
    }
    match name {
        "launch_params" => Ok(Some(LAUNCH_PARAMS_ID)),
        "kernel" => Ok(Some(KERNEL_ID)),
        "cmdline" => Ok(Some(CMDLINE_ID)),
        "initrd" => Ok(Some(INITRD_ID)),
        "payload" => Ok(Some(PAYLOAD_ID)),
        "td_hob" => Ok(Some(TD_HOB_ID)),
        "secure_policy" => Ok(Some(SECURE_POLICY_ID)),
        "payload_signer" => Ok(Some(SIGNER_ID)),
        "payload_svn" => Ok(Some(PAYLOAD_SVN_ID)),
        // One event per file, all covered by RTMR0's value: no ID of their own.
        "acpi_file" => Ok(None),
        other => Err(RefvalsError::UnknownEvent(other)),
    }
}

/// An event the policy checks: its CC MR index, type name, and the ID of its digest.
struct CheckedEvent {
    mr_index: u32,
    type_name: String,
    id: &'static str,
}

fn checked_events(m: &Measurement) -> Result<Vec<CheckedEvent>, RefvalsError> {
    let mut checked = Vec::new();
    for e in &m.planned {
        if let Some(id) = event_id(e.name, e.event_type)? {
            checked.push(CheckedEvent {
                mr_index: e.mr_index,
                type_name: EventType(e.event_type).to_string(),
                id,
            });
        }
    }
    Ok(checked)
}

/// Adds the digest of each planned event under its ID.
fn insert_events(
    m: &Measurement,
    values: &mut BTreeMap<String, Vec<String>>,
) -> Result<(), RefvalsError> {
    for e in &m.planned {
        if let Some(id) = event_id(e.name, e.event_type)? {
            values.insert(id.to_owned(), vec![hex::encode(e.digest)]);
        }
    }
    Ok(())
}

/// The reference values: ID → the accepted values (one each).
pub fn reference_values(m: &Measurement) -> Result<BTreeMap<String, Vec<String>>, RefvalsError> {
    let mut values = BTreeMap::new();
    for (id, rtmr) in RTMR_IDS.iter().zip(&m.rtmrs) {
        values.insert((*id).to_owned(), vec![hex::encode(rtmr)]);
    }
    insert_events(m, &mut values)?;
    Ok(values)
}

/// The reference values of a TD booted from an image whose MRTD is `mrtd`, with the boot `m`
/// (its launch parameters say platform=tdx): MRTD under [`TDX_MRTD_ID`], RTMR0 to RTMR2 under
/// [`TDX_RTMR_IDS`] (RTMR0 only when it is known), and the event digests as
/// [`reference_values`] has them. No RTMR3: the guest OS extends it.
pub fn tdx_reference_values(
    m: &Measurement,
    mrtd: &[u8; 48],
) -> Result<BTreeMap<String, Vec<String>>, RefvalsError> {
    let mut values = BTreeMap::new();
    values.insert(TDX_MRTD_ID.to_owned(), vec![hex::encode(mrtd)]);
    for (i, (id, rtmr)) in TDX_RTMR_IDS.iter().zip(&m.rtmrs).enumerate() {
        if i == 0 && m.rtmr0_unknown.is_some() {
            continue;
        }
        values.insert((*id).to_owned(), vec![hex::encode(rtmr)]);
    }
    insert_events(m, &mut values)?;
    Ok(values)
}

/// An RVPS message.
#[derive(Debug, Serialize)]
pub struct RvpsMessage {
    /// [`RVPS_MESSAGE_VERSION`].
    pub version: &'static str,
    /// [`RVPS_SAMPLE_TYPE`].
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Base64 of the provenance JSON.
    pub payload: String,
}

/// The sample-provenance message that registers `values`.
pub fn rvps_message(values: &BTreeMap<String, Vec<String>>) -> RvpsMessage {
    // Serializing a map of strings cannot fail.
    sample_message(serde_json::to_vec(values).unwrap_or_default())
}

/// The sample-provenance message that registers `values`, each any JSON value (the sample
/// extractor stores what it is given; `refvals --platform snp` registers numbers and booleans,
/// which Trustee's default SNP policy compares with `==`).
pub fn rvps_message_json(values: &BTreeMap<String, serde_json::Value>) -> RvpsMessage {
    // Serializing JSON values with string keys cannot fail.
    sample_message(serde_json::to_vec(values).unwrap_or_default())
}

fn sample_message(provenance: Vec<u8>) -> RvpsMessage {
    RvpsMessage {
        version: RVPS_MESSAGE_VERSION,
        kind: RVPS_SAMPLE_TYPE,
        payload: base64::engine::general_purpose::STANDARD.encode(provenance),
    }
}

const POLICY_HEADER: &str = r#"# Attestation policy for a td-shim boot, written by `td-shim-tool refvals --policy`.
#
# It accepts exactly the reference values `td-shim-tool refvals` wrote with it, once they are
# registered in Trustee's RVPS: each RTMR, and the digest of each event td-shim records, must
# equal the value under its td-shim.* ID (read with Trustee's query_reference_value).
#
# ASSUMED INPUT: the claims of Trustee's TDX verifier (quote and CC event log):
#   input.tdx.quote.body.rtmr_0 .. rtmr_3   RTMR0..RTMR3, lower-case hex
#   input.tdx.uefi_event_logs[]             the CC event log, replayed against those RTMRs;
#                                           each event has index (the CC MR index: 1 = RTMR0,
#                                           2 = RTMR1, 3 = RTMR2), type_name (TCG/UEFI name)
#                                           and digests[] = {"alg": "SHA-384", "digest": hex}
# Under TDX, Trustee's TDX verifier produces exactly these from a quote and the CCEL. On
# td-shim's Plain platform (no TEE) no Trustee verifier takes the guest agent's evidence yet:
# this policy assumes the verifier that does presents the agent's registers (the emulated
# RTMRs, equal to the log's replay) and its event log in the same shape. If yours puts them
# elsewhere, change `evidence` below. The Plain platform's registers are emulated and protect
# nothing; this policy judges the boot chain only, not the hardware (no `hardware` claim: check
# MRTD and the TCB status as Trustee's default policy does).
#
# Output: Trustee's EAR trust claims. executables = 3 (approved boot chain) when RTMR1-RTMR3
# and the payload events match, else 33; configuration = 2 (approved configuration) when RTMR0
# and the launch-parameters event match, else 36. allow = both. RTMR3 is expected as the
# firmware leaves it (zero): a guest that extends RTMR3 before it attests needs another value.

package policy

import rego.v1

evidence := input.tdx

default executables := 33

default configuration := 36

default allow := false
"#;

const TDX_POLICY_HEADER: &str = r#"# Attestation policy for a td-shim boot on Intel TDX, written by
# `td-shim-tool refvals --platform tdx --policy`.
#
# It accepts exactly the reference values `td-shim-tool refvals --platform tdx` wrote with it,
# once they are registered in Trustee's RVPS (read with Trustee's query_reference_value): MRTD
# under "mr_td", RTMR0..RTMR2 under "rtmr_0".."rtmr_2" ("mr_td", "rtmr_1" and "rtmr_2" are the
# IDs Trustee's default EAR policy reads), and the digest of each event td-shim records under
# its td-shim.* ID. RTMR3 is not checked: the guest OS extends it (e.g. the attestation agent).
#
# ASSUMED INPUT: the claims of Trustee's TDX verifier (quote, DCAP collateral, CC event log).
# The names follow research notes on Trustee's source; they were NOT checked against a running
# Trustee:
#   input.tdx.quote.header.tee_type          "81000000" (a TDX quote)
#   input.tdx.quote.body.mr_td               MRTD, lower-case hex
#   input.tdx.quote.body.rtmr_0 .. rtmr_2    RTMR0..RTMR2, lower-case hex
#   input.tdx.td_attributes.debug            the TD's DEBUG attribute (a boolean)
#   input.tdx.tcb_status                     "UpToDate" when the platform's TCB is current
#   input.tdx.collateral_expiration_status   "0" while Intel's collateral is valid
#   input.tdx.uefi_event_logs[]              the CC event log (CCEL), replayed by the verifier
#                                            against RTMR0..RTMR3; each event has index (the CC
#                                            MR index: 1 = RTMR0, 2 = RTMR1, 3 = RTMR2),
#                                            type_name (TCG/UEFI name) and
#                                            digests[] = {"alg": "SHA-384", "digest": hex}
# The verifier exposes uefi_event_logs only when the attester sends the CCEL: without it the
# event checks, and so executables and configuration, fail. If your verifier puts the claims
# elsewhere, change `evidence` below.
#
# Output: Trustee's EAR trust claims. hardware = 2 when the quote is a TDX quote, MRTD matches,
# the TCB is up to date and the collateral valid, else 97; executables = 3 (approved boot chain)
# when RTMR1, RTMR2 and the payload events match, else 33; configuration = 2 (approved
# configuration) when RTMR0 and RTMR0's events (the launch parameters; the TD HOB when it was
# given) match and the TD is not a debug TD, else 36. allow = all three. Under TDX, RTMR0 also
# holds the VMM's configuration: the TD HOB and one event per ACPI fw_cfg file, all of the type
# of the launch-parameters event, so each RTMR0 event is found by its digest.
"#;

const TDX_POLICY_BODY: &str = r#"
package policy

import rego.v1

evidence := input.tdx

default hardware := 97

default executables := 33

default configuration := 36

default allow := false
"#;

/// The header paragraph of a TDX policy whose RTMR0 could not be predicted (`why`).
fn rtmr0_unchecked(why: &str) -> String {
    format!(
        r#"#
# RTMR0 IS NOT CHECKED: refvals could not predict it ({why}).
# The TD's RTMR0 also holds the VMM's configuration (the TD HOB: the memory map; the ACPI
# tables: vCPUs and devices). This policy does NOT judge the parts it has no reference value
# for; it checks only the RTMR0 events listed under `configuration` below, by digest (the
# verifier's replay of the event log against the quote's RTMR0 makes them authentic). To pin
# RTMR0, run refvals with --td-hob and --acpi-dir (docs/tdx-measurement.md).
"#
    )
}

const PLAIN_ALLOW: &str = r#"
allow if {
	executables == 3
	configuration == 2
}
"#;

const TDX_ALLOW: &str = r#"
allow if {
	hardware == 2
	executables == 3
	configuration == 2
}
"#;

const POLICY_HELPERS: &str = r#"
# The SHA-384 digests of the events of type `type_name` in CC MR `index`.
digests(index, type_name) := [d.digest |
	some event in evidence.uefi_event_logs
	event.index == index
	event.type_name == type_name
	some d in event.digests
	d.alg == "SHA-384"
]

# There is exactly one such event, and its digest is the reference value `id`.
event_matches(index, type_name, id) if {
	found := digests(index, type_name)
	count(found) == 1
	found[0] in query_reference_value(id)
}
"#;

/// The condition that the quote-body claim `claim` is the reference value `id`.
fn register(claim: &str, id: &str) -> String {
    format!("evidence.quote.body.{claim} in query_reference_value(\"{id}\")")
}

/// The condition that `e`'s single event has its reference digest.
fn event(e: &CheckedEvent) -> String {
    format!(
        "event_matches({}, \"{}\", \"{}\")",
        e.mr_index, e.type_name, e.id
    )
}

/// The condition that exactly one event of `e`'s register and type has `e`'s reference digest
/// (TDX RTMR0, where the TD HOB and ACPI events share the launch parameters' type).
fn listed_event(e: &CheckedEvent) -> String {
    format!(
        "event_listed({}, \"{}\", \"{}\")",
        e.mr_index, e.type_name, e.id
    )
}

const TDX_HELPERS: &str = r#"
# Exactly one event of `type_name` in CC MR `index` has the reference digest `id` (other events
# of that type may be there: under TDX RTMR0 holds the TD HOB and ACPI file events too).
event_listed(index, type_name, id) if {
	found := [d | some d in digests(index, type_name); d in query_reference_value(id)]
	count(found) == 1
}
"#;

/// Appends the rule `claim := value if { conditions }`.
fn rule(s: &mut String, claim: &str, value: u8, conditions: &[String]) {
    let _ = writeln!(s, "\n{claim} := {value} if {{");
    for c in conditions {
        let _ = writeln!(s, "\t{c}");
    }
    s.push_str("}\n");
}

/// Whether `m` is a secure-boot measurement (the image enrolls a key): its plan has the
/// `payload_signer` event.
pub fn is_secure_boot(m: &Measurement) -> bool {
    m.planned.iter().any(|e| e.name == "payload_signer")
}

/// The checked events of `m`, split into RTMR0's (configuration, each written by `rtmr0`) and
/// the others (boot chain). Under secure boot ([`is_secure_boot`]) RTMR0 holds two events of
/// the launch parameters' type, so each is found by its digest; RTMR1's events are not pinned
/// one by one but by [`SECURE_BOOT_CHAIN`] (the signer), and RTMR2's stay pinned.
fn split_events(
    m: &Measurement,
    rtmr0: fn(&CheckedEvent) -> String,
) -> Result<(Vec<String>, Vec<String>), RefvalsError> {
    let secure = is_secure_boot(m);
    let rtmr0 = if secure { listed_event } else { rtmr0 };
    let events = checked_events(m)?;
    let (config, boot): (Vec<&CheckedEvent>, Vec<&CheckedEvent>) =
        events.iter().partition(|e| e.mr_index == 1);
    let boot: Vec<String> = if secure {
        std::iter::once(format!("secure_boot_chain(\"{SIGNER_ID}\")"))
            .chain(boot.into_iter().filter(|e| e.mr_index != 2).map(event))
            .collect()
    } else {
        boot.into_iter().map(event).collect()
    };
    Ok((config.into_iter().map(rtmr0).collect(), boot))
}

/// The header paragraph of a secure-boot policy.
const SECURE_BOOT_HEADER: &str = r#"#
# SECURE BOOT: the image enrolls a payload-signing key, so RTMR1 is NOT pinned to one kernel.
# The firmware boots only payloads signed by the enrolled key with an SVN at least the enrolled
# minimum (td_shim::secure_boot::verify); the key hash and the minimum are in the image (MRTD /
# the launch digest) and in RTMR0's secure_policy event, which `configuration` pins. The boot
# chain is accepted when RTMR1 holds exactly the firmware's four events (payload_signer,
# td_payload_svn, one payload blob, the normal separator) with the signer's digest under
# "td-shim.signer", and RTMR2 and its events match. This relies on the verifier replaying the
# event log against the quote's registers before it exposes uefi_event_logs: Trustee's TDX
# verifier does (deps/verifier/src/tdx/mod.rs: CcEventLog::replay_and_match over RTMR0..RTMR3,
# evidence refused on a mismatch). The payload's SVN is not checked here: the firmware's floor
# applies. To accept only some SVNs above it without re-enrolling, register the accepted
# td_payload_svn digests under "td-shim.payload_svn" and add
# event_listed(2, "EV_PLATFORM_CONFIG_FLAGS", "td-shim.payload_svn") to `executables`.
"#;

/// The Rego rule of a secure-boot chain in RTMR1.
const SECURE_BOOT_CHAIN: &str = r#"
# Secure boot: RTMR1 holds exactly the firmware's events (payload_signer, td_payload_svn, one
# payload blob, the normal separator), and one of them has the signer's reference digest `id`.
secure_boot_chain(id) if {
	count([e | some e in evidence.uefi_event_logs; e.index == 2]) == 4
	count(digests(2, "EV_PLATFORM_CONFIG_FLAGS")) == 2
	count(digests(2, "EV_EFI_PLATFORM_FIRMWARE_BLOB2")) == 1
	digests(2, "EV_SEPARATOR") == [SEPARATOR_DIGEST]
	event_listed(2, "EV_PLATFORM_CONFIG_FLAGS", id)
}
"#;

/// The Rego constant of the normal separator's digest.
fn separator_constant() -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha384::digest(td_shim::measurement::SEPARATOR);
    format!("\nSEPARATOR_DIGEST := \"{}\"\n", hex::encode(digest))
}

/// The registers the boot chain pins: all of `all` but RTMR1 under secure boot.
fn chain_registers(m: &Measurement, all: &[usize]) -> Vec<usize> {
    all.iter()
        .copied()
        .filter(|&r| !(r == 1 && is_secure_boot(m)))
        .collect()
}

/// The Rego policy that accepts exactly the reference values of `m` (see the module
/// documentation); under secure boot RTMR1 is accepted by its signer instead
/// ([`SECURE_BOOT_HEADER`]).
pub fn policy(m: &Measurement) -> Result<String, RefvalsError> {
    let (config, boot) = split_events(m, event)?;
    let rtmr = |r: usize| register(&format!("rtmr_{r}"), RTMR_IDS[r]);
    let mut s = String::from(POLICY_HEADER);
    if is_secure_boot(m) {
        let at = s.find("\npackage policy").unwrap_or(s.len());
        s.insert_str(at, SECURE_BOOT_HEADER);
    }
    let executables: Vec<String> = chain_registers(m, &[1, 2, 3])
        .into_iter()
        .map(rtmr)
        .chain(boot)
        .collect();
    rule(&mut s, "executables", 3, &executables);
    let configuration: Vec<String> = std::iter::once(rtmr(0)).chain(config).collect();
    rule(&mut s, "configuration", 2, &configuration);
    s.push_str(PLAIN_ALLOW);
    s.push_str(POLICY_HELPERS);
    if is_secure_boot(m) {
        s.push_str(TDX_HELPERS);
        s.push_str(SECURE_BOOT_CHAIN);
        s.push_str(&separator_constant());
    }
    Ok(s)
}

/// The Rego policy for a TD that accepts exactly the reference values of
/// [`tdx_reference_values`] for `m`: `hardware` from MRTD, the TEE type and the TCB status;
/// `executables` from RTMR1, RTMR2 and the payload events (under secure boot RTMR1 by its
/// signer instead, [`SECURE_BOOT_HEADER`]); `configuration` from RTMR0 (when it is known: else
/// the header says it is not checked), RTMR0's events (each by its digest) and the DEBUG
/// attribute. Its header states the claims it assumes.
pub fn tdx_policy(m: &Measurement) -> Result<String, RefvalsError> {
    let (config, boot) = split_events(m, listed_event)?;
    let rtmr = |r: usize| register(&format!("rtmr_{r}"), TDX_RTMR_IDS[r]);
    let mut s = String::from(TDX_POLICY_HEADER);
    if let Some(why) = &m.rtmr0_unknown {
        s.push_str(&rtmr0_unchecked(why));
    }
    if is_secure_boot(m) {
        s.push_str(SECURE_BOOT_HEADER);
    }
    s.push_str(TDX_POLICY_BODY);
    let hardware = [
        "evidence.quote.header.tee_type == \"81000000\"".to_owned(),
        register("mr_td", TDX_MRTD_ID),
        "evidence.tcb_status == \"UpToDate\"".to_owned(),
        "evidence.collateral_expiration_status == \"0\"".to_owned(),
    ];
    rule(&mut s, "hardware", 2, &hardware);
    let executables: Vec<String> = chain_registers(m, &[1, 2])
        .into_iter()
        .map(rtmr)
        .chain(boot)
        .collect();
    rule(&mut s, "executables", 3, &executables);
    let configuration: Vec<String> = m
        .rtmr0_unknown
        .is_none()
        .then(|| rtmr(0))
        .into_iter()
        .chain(config)
        .chain(std::iter::once(
            "evidence.td_attributes.debug == false".to_owned(),
        ))
        .collect();
    rule(&mut s, "configuration", 2, &configuration);
    s.push_str(TDX_ALLOW);
    s.push_str(POLICY_HELPERS);
    s.push_str(TDX_HELPERS);
    if is_secure_boot(m) {
        s.push_str(SECURE_BOOT_CHAIN);
        s.push_str(&separator_constant());
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::tests::{synthetic_kernel, PARAMS};
    use crate::measure::{linux_payload, measure, LaunchParams, Payload};

    fn linux(initrd: Option<&[u8]>) -> Measurement {
        let kernel = synthetic_kernel(0x3000);
        measure(
            &PARAMS,
            &linux_payload(&kernel, initrd, b"console=ttyS0").unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn ids_and_values() {
        let m = linux(Some(b"initrd"));
        let values = reference_values(&m).unwrap();
        let ids: Vec<_> = values.keys().map(String::as_str).collect();
        assert_eq!(
            ids,
            [
                "td-shim.cmdline",
                "td-shim.initrd",
                "td-shim.kernel",
                "td-shim.launch_params",
                "td-shim.rtmr0",
                "td-shim.rtmr1",
                "td-shim.rtmr2",
                "td-shim.rtmr3",
            ]
        );
        let report = m.report();
        assert_eq!(values["td-shim.rtmr0"], [report.rtmr0.unwrap()]);
        assert_eq!(values["td-shim.rtmr3"], ["0".repeat(96)]);
        let by_name = |name: &str| {
            report
                .events
                .iter()
                .find(|e| e.name == name)
                .unwrap()
                .digest
                .clone()
        };
        assert_eq!(values["td-shim.launch_params"], [by_name("launch_params")]);
        assert_eq!(values["td-shim.kernel"], [by_name("kernel")]);
        assert_eq!(values["td-shim.cmdline"], [by_name("cmdline")]);
        assert_eq!(values["td-shim.initrd"], [by_name("initrd")]);
        // No initrd, no initrd ID; an ELF payload has its own.
        assert!(!reference_values(&linux(None))
            .unwrap()
            .contains_key("td-shim.initrd"));
        let elf = measure(&PARAMS, &Payload::Elf(b"\x7fELF")).unwrap();
        let ids: Vec<_> = reference_values(&elf).unwrap().into_keys().collect();
        assert_eq!(
            ids,
            [
                "td-shim.launch_params",
                "td-shim.payload",
                "td-shim.rtmr0",
                "td-shim.rtmr1",
                "td-shim.rtmr2",
                "td-shim.rtmr3"
            ]
        );
    }

    #[test]
    fn the_message_is_the_sample_format() {
        let values = reference_values(&linux(None)).unwrap();
        let message = serde_json::to_value(rvps_message(&values)).unwrap();
        let object = message.as_object().unwrap();
        assert_eq!(object.len(), 3);
        assert_eq!(message["version"], "0.1.0");
        assert_eq!(message["type"], "sample");
        let payload = base64::engine::general_purpose::STANDARD
            .decode(message["payload"].as_str().unwrap())
            .unwrap();
        let decoded: BTreeMap<String, Vec<String>> = serde_json::from_slice(&payload).unwrap();
        assert_eq!(decoded, values);
    }

    #[test]
    fn the_policy_checks_every_register_and_event() {
        let text = policy(&linux(Some(b"initrd"))).unwrap();
        for line in [
            "evidence := input.tdx",
            "\tevidence.quote.body.rtmr_0 in query_reference_value(\"td-shim.rtmr0\")",
            "\tevidence.quote.body.rtmr_3 in query_reference_value(\"td-shim.rtmr3\")",
            "\tevent_matches(1, \"EV_PLATFORM_CONFIG_FLAGS\", \"td-shim.launch_params\")",
            "\tevent_matches(2, \"EV_EFI_PLATFORM_FIRMWARE_BLOB2\", \"td-shim.kernel\")",
            "\tevent_matches(3, \"EV_PLATFORM_CONFIG_FLAGS\", \"td-shim.cmdline\")",
            "\tevent_matches(3, \"EV_EFI_PLATFORM_FIRMWARE_BLOB2\", \"td-shim.initrd\")",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} missing:\n{text}");
        }
        assert!(!policy(&linux(None)).unwrap().contains("td-shim.initrd"));
    }

    /// Claims in the shape the policy assumes (Trustee's TDX verifier), from a measurement's
    /// registers and log.
    pub(crate) fn tdx_claims(m: &Measurement) -> serde_json::Value {
        let log = td_shim::eventlog::parse(&m.log).unwrap();
        let events: Vec<_> = log
            .events()
            .iter()
            .map(|e| {
                serde_json::json!({
                    "index": e.mr_index(),
                    "type_name": e.event_type().to_string(),
                    "digests": [{"alg": "SHA-384", "digest": hex::encode(e.digest())}],
                })
            })
            .collect();
        let [r0, r1, r2, r3] = m.rtmrs.map(hex::encode);
        serde_json::json!({"tdx": {
            "quote": {"body": {"rtmr_0": r0, "rtmr_1": r1, "rtmr_2": r2, "rtmr_3": r3}},
            "uefi_event_logs": events,
        }})
    }

    /// Trustee's engine (regorus) loaded with `policy`, `values` behind
    /// `query_reference_value` (null for an unknown ID, as the RVPS answers), and `input`.
    fn engine(
        policy: &str,
        values: &BTreeMap<String, Vec<String>>,
        input: &serde_json::Value,
    ) -> regorus::Engine {
        let mut engine = regorus::Engine::new();
        let values = values.clone();
        engine
            .add_extension(
                "query_reference_value".into(),
                1,
                Box::new(move |args: Vec<regorus::Value>| {
                    let id = args[0].as_string()?.to_string();
                    Ok(match values.get(&id) {
                        Some(v) => regorus::Value::from_json_str(&serde_json::to_string(v)?)?,
                        None => regorus::Value::Null,
                    })
                }),
            )
            .unwrap();
        engine
            .add_policy("td-shim.rego".into(), policy.into())
            .unwrap();
        engine.set_input(regorus::Value::from_json_str(&input.to_string()).unwrap());
        engine
    }

    /// Evaluates `policy` (see [`engine`]): (executables, configuration, allow).
    pub(crate) fn evaluate(
        policy: &str,
        values: &BTreeMap<String, Vec<String>>,
        input: &serde_json::Value,
    ) -> (i64, i64, bool) {
        let mut engine = engine(policy, values, input);
        let mut rule = |name: &str| engine.eval_rule(format!("data.policy.{name}")).unwrap();
        (
            rule("executables").as_i64().unwrap(),
            rule("configuration").as_i64().unwrap(),
            *rule("allow").as_bool().unwrap(),
        )
    }

    /// Evaluates a TDX `policy` (see [`engine`]): (hardware, executables, configuration, allow).
    fn evaluate_tdx(
        policy: &str,
        values: &BTreeMap<String, Vec<String>>,
        input: &serde_json::Value,
    ) -> (i64, i64, i64, bool) {
        let mut engine = engine(policy, values, input);
        let mut rule = |name: &str| engine.eval_rule(format!("data.policy.{name}")).unwrap();
        (
            rule("hardware").as_i64().unwrap(),
            rule("executables").as_i64().unwrap(),
            rule("configuration").as_i64().unwrap(),
            *rule("allow").as_bool().unwrap(),
        )
    }

    /// [`tdx_claims`] with what a TDX quote of an up-to-date, non-debug TD adds: the TEE type,
    /// MRTD, the DEBUG attribute and the collateral's verdict.
    fn full_tdx_claims(m: &Measurement, mrtd: &[u8; 48]) -> serde_json::Value {
        let mut claims = tdx_claims(m);
        let tdx = &mut claims["tdx"];
        tdx["quote"]["header"] = serde_json::json!({"tee_type": "81000000"});
        tdx["quote"]["body"]["mr_td"] = hex::encode(mrtd).into();
        tdx["td_attributes"] = serde_json::json!({"debug": false});
        tdx["tcb_status"] = "UpToDate".into();
        tdx["collateral_expiration_status"] = "0".into();
        claims
    }

    const MRTD: [u8; 48] = [0xab; 48];

    #[test]
    fn tdx_ids_and_values() {
        let m = linux(Some(b"initrd"));
        let values = tdx_reference_values(&m, &MRTD).unwrap();
        let ids: Vec<_> = values.keys().map(String::as_str).collect();
        assert_eq!(
            ids,
            [
                "mr_td",
                "rtmr_0",
                "rtmr_1",
                "rtmr_2",
                "td-shim.cmdline",
                "td-shim.initrd",
                "td-shim.kernel",
                "td-shim.launch_params",
            ]
        );
        assert_eq!(values["mr_td"], ["ab".repeat(48)]);
        let plain = reference_values(&m).unwrap();
        for i in 0..3 {
            assert_eq!(values[&format!("rtmr_{i}")], plain[RTMR_IDS[i]]);
        }
        for id in [LAUNCH_PARAMS_ID, KERNEL_ID, CMDLINE_ID, INITRD_ID] {
            assert_eq!(values[id], plain[id]);
        }
        let text = tdx_policy(&m).unwrap();
        for line in [
            "	evidence.quote.body.mr_td in query_reference_value(\"mr_td\")",
            "	evidence.quote.body.rtmr_0 in query_reference_value(\"rtmr_0\")",
            "	evidence.quote.body.rtmr_1 in query_reference_value(\"rtmr_1\")",
            "	evidence.quote.body.rtmr_2 in query_reference_value(\"rtmr_2\")",
            "	evidence.td_attributes.debug == false",
            "	evidence.tcb_status == \"UpToDate\"",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} missing:\n{text}");
        }
        assert!(!text.contains("rtmr_3"), "{text}");
    }

    #[test]
    fn the_tdx_policy_accepts_exactly_the_reference_values() {
        let expected = linux(Some(b"initrd"));
        let values = tdx_reference_values(&expected, &MRTD).unwrap();
        let text = tdx_policy(&expected).unwrap();
        let run = |input: &serde_json::Value| evaluate_tdx(&text, &values, input);
        let good = full_tdx_claims(&expected, &MRTD);
        assert_eq!(run(&good), (2, 3, 2, true));
        // RTMR3 is the OS's: not checked.
        let mut claims = good.clone();
        claims["tdx"]["quote"]["body"]["rtmr_3"] = "11".repeat(48).into();
        assert_eq!(run(&claims), (2, 3, 2, true));
        // Another MRTD, RTMR0, RTMR1 or RTMR2.
        let changed = |field: &str, value: &str| {
            let mut claims = good.clone();
            claims["tdx"]["quote"]["body"][field] = value.repeat(48).into();
            run(&claims)
        };
        assert_eq!(changed("mr_td", "ac"), (97, 3, 2, false));
        assert_eq!(changed("rtmr_0", "22"), (2, 3, 36, false));
        assert_eq!(changed("rtmr_1", "33"), (2, 33, 2, false));
        assert_eq!(changed("rtmr_2", "44"), (2, 33, 2, false));
        // Another boot with the same firmware: the boot chain is not the approved one.
        let other = linux(None);
        assert_eq!(run(&full_tdx_claims(&other, &MRTD)), (2, 33, 2, false));
        // A debug TD, an out-of-date TCB, expired collateral, a non-TDX quote.
        let mut claims = good.clone();
        claims["tdx"]["td_attributes"]["debug"] = true.into();
        assert_eq!(run(&claims), (2, 3, 36, false));
        let mut claims = good.clone();
        claims["tdx"]["tcb_status"] = "OutOfDate".into();
        assert_eq!(run(&claims), (97, 3, 2, false));
        let mut claims = good.clone();
        claims["tdx"]["collateral_expiration_status"] = "1".into();
        assert_eq!(run(&claims), (97, 3, 2, false));
        let mut claims = good.clone();
        claims["tdx"]["quote"]["header"]["tee_type"] = "00000000".into();
        assert_eq!(run(&claims), (97, 3, 2, false));
        // No event log, no MRTD reference value, or the plain claims: nothing passes.
        let mut claims = good.clone();
        claims["tdx"]
            .as_object_mut()
            .unwrap()
            .remove("uefi_event_logs");
        assert_eq!(run(&claims), (2, 33, 36, false));
        let mut partial = values.clone();
        partial.remove("mr_td");
        assert_eq!(evaluate_tdx(&text, &partial, &good), (97, 3, 2, false));
        assert_eq!(run(&tdx_claims(&expected)), (97, 3, 36, false));
        assert_eq!(
            run(&serde_json::json!({"sample": {"svn": "1"}})),
            (97, 33, 36, false)
        );
    }

    #[test]
    fn the_policy_accepts_exactly_the_reference_values() {
        let kernel = synthetic_kernel(0x3000);
        let boot = |params: &LaunchParams, cmdline: &'static [u8], initrd: Option<&[u8]>| {
            measure(params, &linux_payload(&kernel, initrd, cmdline).unwrap()).unwrap()
        };
        let expected = boot(&PARAMS, b"console=ttyS0", Some(b"initrd"));
        let values = reference_values(&expected).unwrap();
        let text = policy(&expected).unwrap();
        let run = |input: &serde_json::Value| evaluate(&text, &values, input);

        assert_eq!(run(&tdx_claims(&expected)), (3, 2, true));
        // Another command line, initrd, or none: the boot chain is not the approved one.
        let other_cmdline = boot(&PARAMS, b"console=ttyS1", Some(b"initrd"));
        assert_eq!(run(&tdx_claims(&other_cmdline)), (33, 2, false));
        let other_initrd = boot(&PARAMS, b"console=ttyS0", Some(b"initrd2"));
        assert_eq!(run(&tdx_claims(&other_initrd)), (33, 2, false));
        let no_initrd = boot(&PARAMS, b"console=ttyS0", None);
        assert_eq!(run(&tdx_claims(&no_initrd)), (33, 2, false));
        // Other launch parameters: the configuration is not the approved one.
        let more_ram = LaunchParams {
            ram_bytes: 1 << 30,
            ..PARAMS
        };
        let other_params = boot(&more_ram, b"console=ttyS0", Some(b"initrd"));
        assert_eq!(run(&tdx_claims(&other_params)), (3, 36, false));
        // A register alone, an event digest alone, or a repeated event are caught too.
        let mut claims = tdx_claims(&expected);
        claims["tdx"]["quote"]["body"]["rtmr_3"] = "11".repeat(48).into();
        assert_eq!(run(&claims), (33, 2, false));
        let mut claims = tdx_claims(&expected);
        claims["tdx"]["uefi_event_logs"][2]["digests"][0]["digest"] = "22".repeat(48).into();
        assert_eq!(run(&claims), (33, 2, false));
        let mut claims = tdx_claims(&expected);
        let first = claims["tdx"]["uefi_event_logs"][0].clone();
        claims["tdx"]["uefi_event_logs"]
            .as_array_mut()
            .unwrap()
            .push(first);
        assert_eq!(run(&claims), (3, 36, false));
        // A reference value missing from the RVPS fails its check; no evidence, nothing passes.
        let mut partial = values.clone();
        partial.remove("td-shim.kernel");
        assert_eq!(
            evaluate(&text, &partial, &tdx_claims(&expected)),
            (33, 2, false)
        );
        assert_eq!(
            run(&serde_json::json!({"sample": {"svn": "1"}})),
            (33, 36, false)
        );
        // An ELF payload's policy.
        let elf = measure(&PARAMS, &Payload::Elf(b"\x7fELF")).unwrap();
        let elf_values = reference_values(&elf).unwrap();
        let elf_policy = policy(&elf).unwrap();
        assert_eq!(
            evaluate(&elf_policy, &elf_values, &tdx_claims(&elf)),
            (3, 2, true)
        );
        assert_eq!(
            evaluate(&elf_policy, &elf_values, &tdx_claims(&expected)),
            (33, 2, false)
        );
    }

    /// A TDX boot of the synthetic kernel with 512 MiB, `hob` of that size (if given) and the
    /// ACPI files `acpi` (if given).
    fn tdx_boot(hob: Option<Vec<u8>>, acpi: Option<&[(&str, &[u8])]>) -> Measurement {
        use crate::measure::{measure_with, vmm::TdHob, VmmInputs};
        use td_shim::measurement::ConfigFile;
        let params = LaunchParams {
            platform: td_layout::handoff::PlatformKind::Tdx,
            ..PARAMS
        };
        let kernel = synthetic_kernel(0x3000);
        let inputs = VmmInputs {
            td_hob: hob.map(|h| TdHob::parse(h).unwrap()),
            acpi: acpi.map(|files| files.iter().map(|(n, b)| ConfigFile::of(n, b)).collect()),
        };
        let payload = linux_payload(&kernel, Some(b"initrd"), b"console=ttyS0").unwrap();
        measure_with(&params, &inputs, &payload, None).unwrap()
    }

    const ACPI: &[(&str, &[u8])] = &[
        ("etc/table-loader", b"script"),
        ("etc/acpi/tables", b"tables"),
        ("etc/acpi/rsdp", b"rsdp"),
    ];

    #[test]
    fn tdx_with_the_vmm_configuration_pins_rtmr0() {
        let hob = crate::measure::vmm::tests::qemu_hob(512 << 20);
        let td = tdx_boot(Some(hob.clone()), Some(ACPI));
        assert_eq!(td.rtmr0_unknown, None);
        let values = tdx_reference_values(&td, &MRTD).unwrap();
        assert_eq!(values["rtmr_0"], [hex::encode(td.rtmrs[0])]);
        let hob_digest = td
            .planned
            .iter()
            .find(|e| e.name == "td_hob")
            .unwrap()
            .digest;
        assert_eq!(values[TD_HOB_ID], [hex::encode(hob_digest)]);
        let text = tdx_policy(&td).unwrap();
        assert!(!text.contains("RTMR0 IS NOT CHECKED"), "{text}");
        for line in [
            "\tevidence.quote.body.rtmr_0 in query_reference_value(\"rtmr_0\")",
            "\tevent_listed(1, \"EV_PLATFORM_CONFIG_FLAGS\", \"td-shim.launch_params\")",
            "\tevent_listed(1, \"EV_PLATFORM_CONFIG_FLAGS\", \"td-shim.td_hob\")",
            "\tevent_matches(2, \"EV_EFI_PLATFORM_FIRMWARE_BLOB2\", \"td-shim.kernel\")",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} missing:\n{text}");
        }
        let run = |input: &serde_json::Value| evaluate_tdx(&text, &values, input);
        assert_eq!(run(&full_tdx_claims(&td, &MRTD)), (2, 3, 2, true));
        // Another HOB (one attribute byte) or another ACPI file: another RTMR0.
        let mut other_hob = hob.clone();
        other_hob[56 + 28] ^= 1;
        let other = tdx_boot(Some(other_hob), Some(ACPI));
        assert_eq!(run(&full_tdx_claims(&other, &MRTD)), (2, 3, 36, false));
        let other = tdx_boot(
            Some(hob.clone()),
            Some(&[ACPI[0], ACPI[1], ("etc/acpi/rsdp", b"RSDP")]),
        );
        assert_eq!(run(&full_tdx_claims(&other, &MRTD)), (2, 3, 36, false));
    }

    #[test]
    fn tdx_without_the_vmm_configuration_leaves_rtmr0_out() {
        let hob = crate::measure::vmm::tests::qemu_hob(512 << 20);
        let unknown = tdx_boot(None, None);
        assert!(unknown.rtmr0_unknown.is_some());
        let values = tdx_reference_values(&unknown, &MRTD).unwrap();
        let ids: Vec<_> = values.keys().map(String::as_str).collect();
        assert_eq!(
            ids,
            [
                "mr_td",
                "rtmr_1",
                "rtmr_2",
                "td-shim.cmdline",
                "td-shim.initrd",
                "td-shim.kernel",
                "td-shim.launch_params",
            ]
        );
        let text = tdx_policy(&unknown).unwrap();
        assert!(
            text.contains("# RTMR0 IS NOT CHECKED: refvals could not predict it (needs --td-hob"),
            "{text}"
        );
        assert!(!text.contains("rtmr_0 in"), "{text}");
        // The TD, whose RTMR0 holds its HOB and ACPI files: accepted on everything else.
        let td = tdx_boot(Some(hob.clone()), Some(ACPI));
        let run = |input: &serde_json::Value| evaluate_tdx(&text, &values, input);
        assert_eq!(run(&full_tdx_claims(&td, &MRTD)), (2, 3, 2, true));
        // Its launch parameters are still checked: another vCPU count is refused.
        let params = LaunchParams {
            platform: td_layout::handoff::PlatformKind::Tdx,
            vcpus: 4,
            ..PARAMS
        };
        let kernel = synthetic_kernel(0x3000);
        let payload = linux_payload(&kernel, Some(b"initrd"), b"console=ttyS0").unwrap();
        let four = crate::measure::measure_with(
            &params,
            &crate::measure::VmmInputs {
                td_hob: Some(crate::measure::vmm::TdHob::parse(hob.clone()).unwrap()),
                acpi: None,
            },
            &payload,
            None,
        )
        .unwrap();
        assert_eq!(run(&full_tdx_claims(&four, &MRTD)), (2, 3, 36, false));
        // With the HOB alone, RTMR0 is still unknown but the HOB event is checked.
        let hob_only = tdx_boot(Some(hob.clone()), None);
        let values = tdx_reference_values(&hob_only, &MRTD).unwrap();
        assert!(!values.contains_key("rtmr_0"));
        assert!(values.contains_key(TD_HOB_ID));
        let text = tdx_policy(&hob_only).unwrap();
        let run = |input: &serde_json::Value| evaluate_tdx(&text, &values, input);
        assert_eq!(run(&full_tdx_claims(&td, &MRTD)), (2, 3, 2, true));
        let mut other_hob = hob.clone();
        other_hob[56 + 28] ^= 1;
        let other = tdx_boot(Some(other_hob), Some(ACPI));
        assert_eq!(run(&full_tdx_claims(&other, &MRTD)), (2, 3, 36, false));
    }

    #[test]
    fn an_unknown_event_is_refused() {
        assert!(matches!(
            event_id("something new", 0xA),
            Err(RefvalsError::UnknownEvent("something new"))
        ));
        assert_eq!(event_id("separator", EV_SEPARATOR).unwrap(), None);
        assert_eq!(event_id("td_hob", 0xA).unwrap(), Some(TD_HOB_ID));
        assert_eq!(event_id("acpi_file", 0xA).unwrap(), None);
    }

    /// A secure-boot boot: an image enrolling `enrolled` (key seed) whose kernel (the synthetic
    /// kernel with byte 0x1000 set to `variant`) is signed by `signer` with `svn`.
    fn secure_boot(enrolled: u8, signer: u8, variant: u8, svn: u64, cmdline: &[u8]) -> Measurement {
        use crate::measure::secure::tests::{image, key, record, sign};
        use td_layout::payload::PayloadKind;
        let mut kernel = synthetic_kernel(0x3000);
        kernel[0x1000] = variant;
        let signed = sign(&key(signer), &kernel, svn);
        let img = image(
            &[
                (PayloadKind::Kernel, &signed),
                (PayloadKind::Initrd, b"initrd"),
                (PayloadKind::Cmdline, cmdline),
            ],
            record(&key(enrolled), 1),
        );
        crate::measure::measure_boot(&PARAMS, &Default::default(), None, Some(&img)).unwrap()
    }

    #[test]
    fn under_secure_boot_the_policy_accepts_any_kernel_of_the_signer() {
        let expected = secure_boot(1, 1, 0x90, 3, b"console=ttyS0");
        assert!(is_secure_boot(&expected));
        let values = reference_values(&expected).unwrap();
        for id in [SECURE_POLICY_ID, SIGNER_ID, PAYLOAD_SVN_ID] {
            assert!(values.contains_key(id), "{id}");
        }
        let digest = |name: &str| {
            hex::encode(
                expected
                    .planned
                    .iter()
                    .find(|e| e.name == name)
                    .unwrap()
                    .digest,
            )
        };
        assert_eq!(values[SECURE_POLICY_ID], [digest("secure_policy")]);
        assert_eq!(values[SIGNER_ID], [digest("payload_signer")]);
        assert_eq!(values[PAYLOAD_SVN_ID], [digest("payload_svn")]);
        let text = policy(&expected).unwrap();
        assert!(text.contains("SECURE BOOT: the image enrolls"), "{text}");
        assert!(!text.contains("rtmr_1 in"), "RTMR1 is not pinned:\n{text}");
        assert!(
            !text.contains(KERNEL_ID),
            "the kernel is not pinned:\n{text}"
        );
        let run = |m: &Measurement| evaluate(&text, &values, &tdx_claims(m));
        assert_eq!(run(&expected), (3, 2, true));
        // An update: another kernel by the same signer, another SVN: accepted.
        let update = secure_boot(1, 1, 0x91, 4, b"console=ttyS0");
        assert_ne!(update.rtmrs[1], expected.rtmrs[1]);
        assert_eq!(run(&update), (3, 2, true));
        // Another command line (RTMR2): refused.
        assert_eq!(
            run(&secure_boot(1, 1, 0x90, 3, b"console=ttyS1")),
            (33, 2, false)
        );
        // Another enrolled key and signer: both the chain and the configuration are refused.
        assert_eq!(
            run(&secure_boot(2, 2, 0x90, 3, b"console=ttyS0")),
            (33, 36, false)
        );
        // The same kernel without secure boot: no signer event, no secure_policy.
        let mut kernel = synthetic_kernel(0x3000);
        kernel[0x1000] = 0x90;
        let unsigned = measure(
            &PARAMS,
            &linux_payload(&kernel, Some(b"initrd"), b"console=ttyS0").unwrap(),
        )
        .unwrap();
        assert_eq!(run(&unsigned), (33, 36, false));
        // One more event in RTMR1 (a later extension), or a changed signer digest: refused.
        let mut claims = tdx_claims(&expected);
        let blob = claims["tdx"]["uefi_event_logs"][5].clone();
        assert_eq!(blob["index"], 2);
        claims["tdx"]["uefi_event_logs"]
            .as_array_mut()
            .unwrap()
            .push(blob);
        assert_eq!(evaluate(&text, &values, &claims), (33, 2, false));
        let mut claims = tdx_claims(&expected);
        claims["tdx"]["uefi_event_logs"][3]["digests"][0]["digest"] = "22".repeat(48).into();
        assert_eq!(evaluate(&text, &values, &claims), (33, 2, false));
        // The error separator in RTMR1 (a failed boot) is not the firmware's normal chain.
        let mut claims = tdx_claims(&expected);
        claims["tdx"]["uefi_event_logs"][6]["digests"][0]["digest"] =
            hex::encode(td_shim::measurement::error_separators()[1].digest).into();
        assert_eq!(evaluate(&text, &values, &claims), (33, 2, false));

        // TDX: the same, with MRTD and the TDX register IDs.
        let values = tdx_reference_values(&expected, &MRTD).unwrap();
        for id in [SECURE_POLICY_ID, SIGNER_ID, PAYLOAD_SVN_ID, "rtmr_1"] {
            assert!(values.contains_key(id), "{id}");
        }
        let text = tdx_policy(&expected).unwrap();
        assert!(!text.contains("rtmr_1 in"), "{text}");
        let run = |m: &Measurement| evaluate_tdx(&text, &values, &full_tdx_claims(m, &MRTD));
        assert_eq!(run(&expected), (2, 3, 2, true));
        assert_eq!(run(&update), (2, 3, 2, true));
        assert_eq!(
            run(&secure_boot(2, 2, 0x90, 3, b"console=ttyS0")),
            (2, 33, 36, false)
        );
    }
}
