//! `td-shim-tool refvals --platform snp`: the expected launch digest and guest policy of an
//! SEV-SNP launch as reference values for Trustee's RVPS, under the IDs Trustee's default
//! attestation policy reads, and a Rego policy that checks them.
//!
//! # Reference-value IDs
//!
//! | ID | value | Trustee's default policy compares it with |
//! |---|---|---|
//! | `snp_launch_measurement` ([`LAUNCH_MEASUREMENT_ID`]) | `[hex, base64]` of the launch digest | `input.snp.evidence.measurement in ...` |
//! | `snp_guest_abi_major` | the guest policy's bits 15:8, a number | `policy.abi_major == ...` |
//! | `snp_guest_abi_minor` | bits 7:0, a number | `policy.abi_minor == ...` |
//! | `snp_single_socket` | bit 20, a boolean | `policy.single_socket_required == ...` |
//! | `snp_smt_allowed` | bit 16, a boolean | `policy.smt_allowed == ...` |
//!
//! The launch digest is the one `measure --platform snp` computes (mode snp). It is given in
//! lower-case hex, the encoding of Trustee's current SNP verifier, and in standard base64, the
//! encoding earlier releases used for the `measurement` claim (Trustee issue #372): the same 48
//! bytes, and a 96-character hex string can never equal a 64-character base64 one. The policy
//! fields are JSON scalars of the types the current verifier emits, because Trustee's default
//! policy compares them with `==`; the RVPS sample extractor stores any JSON value.
//!
//! Not written, because they are the host's and not the launch's: the platform's TCB
//! (`snp_bootloader`, `snp_tee_svn`, `snp_snp_svn`, `snp_microcode`: the SVNs of the AMD
//! firmware the operator accepts) and PLATFORM_INFO (`snp_smt_enabled`, `snp_tsme_enabled`).
//! Trustee's default policy and [`policy`] read the TCB IDs: register them yourself.
//!
//! The IDs and claim names come from Trustee's `ear_default_policy_cpu.rego` and
//! `deps/verifier/src/snp/mod.rs` as read in its repository (commit 238497d); they were not
//! checked against a running Trustee.

use super::report::GuestPolicy;
use base64::Engine as _;
use serde_json::Value;
use std::collections::BTreeMap;

/// The ID of the launch digest (Trustee's default policy: `executables`).
pub const LAUNCH_MEASUREMENT_ID: &str = "snp_launch_measurement";
/// The ID of the guest policy's ABI major version.
pub const ABI_MAJOR_ID: &str = "snp_guest_abi_major";
/// The ID of the guest policy's ABI minor version.
pub const ABI_MINOR_ID: &str = "snp_guest_abi_minor";
/// The ID of the guest policy's SINGLE_SOCKET bit.
pub const SINGLE_SOCKET_ID: &str = "snp_single_socket";
/// The ID of the guest policy's SMT bit.
pub const SMT_ALLOWED_ID: &str = "snp_smt_allowed";
/// The IDs of the reported TCB's boot loader, TEE, SNP and microcode SVNs: read by the policy,
/// not written by `refvals` (the operator registers the host firmware it accepts).
pub const TCB_IDS: [&str; 4] = [
    "snp_bootloader",
    "snp_tee_svn",
    "snp_snp_svn",
    "snp_microcode",
];

/// QEMU's default guest policy (`sev-snp-guest`'s `policy`): SMT allowed, the reserved bit 17.
pub const QEMU_DEFAULT_POLICY: u64 = 0x30000;

/// Why SNP reference values could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnpRefvalsError {
    /// A guest policy the written policy would refuse, or the firmware would.
    #[error("--guest-policy {policy:#x}: {reason}")]
    GuestPolicy {
        /// The policy.
        policy: u64,
        /// The rule it breaks.
        reason: &'static str,
    },
}

/// Checks that `policy` is one a launch can have and the written policy accepts.
pub fn check_guest_policy(policy: u64) -> Result<GuestPolicy, SnpRefvalsError> {
    let p = GuestPolicy(policy);
    let fail = |reason| Err(SnpRefvalsError::GuestPolicy { policy, reason });
    if policy & GuestPolicy::RESERVED_ONE == 0 {
        return fail("bit 17 is reserved and must be one (the firmware refuses the launch)");
    }
    if p.debug_allowed() {
        return fail(
            "it allows debugging (bit 19): the host could read and change the guest, and the \
             policy written requires debugging to be off",
        );
    }
    if p.migrate_ma_allowed() {
        return fail(
            "it allows a migration agent (bit 18), which the policy written (and Trustee's \
             default policy) refuses",
        );
    }
    Ok(p)
}

/// The reference values of an SNP launch whose launch digest is `launch_digest` and whose guest
/// policy is `policy` (see the module documentation).
pub fn reference_values(
    launch_digest: &[u8; 48],
    policy: u64,
) -> Result<BTreeMap<String, Value>, SnpRefvalsError> {
    let p = check_guest_policy(policy)?;
    let mut values = BTreeMap::new();
    values.insert(
        LAUNCH_MEASUREMENT_ID.to_owned(),
        Value::from(vec![
            hex::encode(launch_digest),
            base64::engine::general_purpose::STANDARD.encode(launch_digest),
        ]),
    );
    values.insert(ABI_MAJOR_ID.to_owned(), Value::from(p.abi_major()));
    values.insert(ABI_MINOR_ID.to_owned(), Value::from(p.abi_minor()));
    values.insert(
        SINGLE_SOCKET_ID.to_owned(),
        Value::from(p.single_socket_required()),
    );
    values.insert(SMT_ALLOWED_ID.to_owned(), Value::from(p.smt_allowed()));
    Ok(values)
}

const POLICY: &str = r#"# Attestation policy for an SEV-SNP launch of td-shim (or any firmware measured by
# `td-shim-tool measure --platform snp`), written by `td-shim-tool refvals --platform snp --policy`.
#
# It accepts the reference values `refvals --platform snp` wrote with it, once they are
# registered in Trustee's RVPS (read with query_reference_value): the launch digest under
# "snp_launch_measurement" and the guest policy's fields under "snp_guest_abi_major",
# "snp_guest_abi_minor", "snp_single_socket" and "snp_smt_allowed", the IDs Trustee's default
# EAR policy reads, so one registration serves both.
#
# REGISTER THESE YOURSELF: "snp_bootloader", "snp_tee_svn", "snp_snp_svn" and "snp_microcode",
# each an array of the reported-TCB SVNs you accept (numbers). They describe the host's AMD
# firmware, not the launch, so refvals cannot know them; without them `hardware` stays 97 and
# nothing is allowed.
#
# ASSUMED INPUT: the claims of Trustee's SNP verifier, which has already checked the report's
# signature against the VCEK/VLEK and AMD's chain, VMPL 0, and REPORT_DATA against the KBS's
# nonce. The names follow Trustee's source (deps/verifier/src/snp/mod.rs, commit 238497d),
# which puts the decoded report under input.snp.evidence; they were NOT checked against a
# running Trustee. Older Trustee releases exposed flat claims (input.snp.measurement in
# base64, input.snp.policy_debug_allowed, ...) and need another policy:
#   evidence.measurement                   MEASUREMENT, lower-case hex
#   evidence.policy.debug_allowed          POLICY bit 19 (a boolean)
#   evidence.policy.migrate_ma_allowed     POLICY bit 18
#   evidence.policy.smt_allowed            POLICY bit 16
#   evidence.policy.single_socket_required POLICY bit 20
#   evidence.policy.abi_major, abi_minor   POLICY bits 15:8 and 7:0 (numbers)
#   evidence.vmpl                          VMPL (a number)
#   evidence.reported_tcb.bootloader, .tee, .snp, .microcode   REPORTED_TCB (numbers)
#
# Output: Trustee's EAR trust claims. executables = 3 when the launch digest matches (under SNP
# it covers the whole firmware image, the payload embedded in it, the kernel-hashes table of a
# QEMU direct boot, and the vCPUs' initial state), else 33; hardware = 2 when the reported TCB
# is one registered, else 97; configuration = 2 when the guest policy's fields match, debugging
# and a migration agent are off and the report was made at VMPL 0, else 36. allow = all three.
# The launch digest does not cover HOST_DATA or the ID block: check them separately if you use
# them.

package policy

import rego.v1

evidence := input.snp.evidence

default executables := 33

default hardware := 97

default configuration := 36

default allow := false

executables := 3 if {
	evidence.measurement in query_reference_value("snp_launch_measurement")
}

hardware := 2 if {
	evidence.reported_tcb.bootloader in query_reference_value("snp_bootloader")
	evidence.reported_tcb.tee in query_reference_value("snp_tee_svn")
	evidence.reported_tcb.snp in query_reference_value("snp_snp_svn")
	evidence.reported_tcb.microcode in query_reference_value("snp_microcode")
}

configuration := 2 if {
	evidence.vmpl == 0
	evidence.policy.debug_allowed == false
	evidence.policy.migrate_ma_allowed == false
	evidence.policy.abi_major == query_reference_value("snp_guest_abi_major")
	evidence.policy.abi_minor == query_reference_value("snp_guest_abi_minor")
	evidence.policy.single_socket_required == query_reference_value("snp_single_socket")
	evidence.policy.smt_allowed == query_reference_value("snp_smt_allowed")
}

allow if {
	executables == 3
	hardware == 2
	configuration == 2
}
"#;

/// The Rego policy for the reference values of [`reference_values`] (its header states the
/// claims it assumes and the TCB IDs to register).
pub fn policy() -> &'static str {
    POLICY
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snp::report;

    const DIGEST: [u8; 48] = [0xab; 48];

    #[test]
    fn ids_and_values() {
        let values = reference_values(&DIGEST, QEMU_DEFAULT_POLICY).unwrap();
        let ids: Vec<_> = values.keys().map(String::as_str).collect();
        assert_eq!(
            ids,
            [
                "snp_guest_abi_major",
                "snp_guest_abi_minor",
                "snp_launch_measurement",
                "snp_single_socket",
                "snp_smt_allowed",
            ]
        );
        let base64 = base64::engine::general_purpose::STANDARD.encode(DIGEST);
        assert_eq!(
            values[LAUNCH_MEASUREMENT_ID],
            serde_json::json!(["ab".repeat(48), base64])
        );
        assert_eq!(values[ABI_MAJOR_ID], 0);
        assert_eq!(values[ABI_MINOR_ID], 0);
        assert_eq!(values[SINGLE_SOCKET_ID], false);
        assert_eq!(values[SMT_ALLOWED_ID], true);
        let other = reference_values(&DIGEST, 0x13_1F05).unwrap();
        assert_eq!(other[ABI_MAJOR_ID], 0x1F);
        assert_eq!(other[ABI_MINOR_ID], 5);
        assert_eq!(other[SINGLE_SOCKET_ID], true);
        assert_eq!(other[SMT_ALLOWED_ID], true);
        assert_eq!(
            reference_values(&DIGEST, 0x2_0000).unwrap()[SMT_ALLOWED_ID],
            false
        );
    }

    #[test]
    fn impossible_or_unsafe_guest_policies_are_refused() {
        for (policy, why) in [
            (0x1_0000, "bit 17"),
            (0x3_0000 | GuestPolicy::DEBUG, "debugging"),
            (0x3_0000 | GuestPolicy::MIGRATE_MA, "migration agent"),
        ] {
            let err = reference_values(&DIGEST, policy).unwrap_err().to_string();
            assert!(err.contains(why), "{policy:#x}: {err}");
        }
    }

    /// Trustee's engine (regorus) with `values` behind `query_reference_value` (null for an
    /// unknown ID) and `input`; (hardware, executables, configuration, allow).
    fn evaluate(values: &BTreeMap<String, Value>, input: &Value) -> (i64, i64, i64, bool) {
        let mut engine = regorus::Engine::new();
        let values = values.clone();
        engine
            .add_extension(
                "query_reference_value".into(),
                1,
                Box::new(move |args: Vec<regorus::Value>| {
                    let id = args[0].as_string()?.to_string();
                    let value = values.get(&id).cloned().unwrap_or(Value::Null);
                    regorus::Value::from_json_str(&value.to_string())
                }),
            )
            .unwrap();
        engine
            .add_policy("snp.rego".into(), policy().into())
            .unwrap();
        engine.set_input(regorus::Value::from_json_str(&input.to_string()).unwrap());
        let mut rule = |name: &str| engine.eval_rule(format!("data.policy.{name}")).unwrap();
        (
            rule("hardware").as_i64().unwrap(),
            rule("executables").as_i64().unwrap(),
            rule("configuration").as_i64().unwrap(),
            *rule("allow").as_bool().unwrap(),
        )
    }

    /// The claims Trustee's SNP verifier makes of `r` (the part the policy reads, in the
    /// shape of its `evidence` object).
    fn claims(r: &report::AttestationReport) -> Value {
        let tcb = |t: report::TcbVersion| {
            serde_json::json!({
                "fmc": t.fmc, "bootloader": t.bootloader, "tee": t.tee, "snp": t.snp,
                "microcode": t.microcode,
            })
        };
        serde_json::json!({"snp": {
            "measurement": hex::encode(r.measurement),
            "evidence": {
                "version": r.version,
                "vmpl": r.vmpl,
                "measurement": hex::encode(r.measurement),
                "report_data": hex::encode(r.report_data),
                "policy": {
                    "abi_major": r.policy.abi_major(),
                    "abi_minor": r.policy.abi_minor(),
                    "smt_allowed": r.policy.smt_allowed(),
                    "migrate_ma_allowed": r.policy.migrate_ma_allowed(),
                    "debug_allowed": r.policy.debug_allowed(),
                    "single_socket_required": r.policy.single_socket_required(),
                },
                "reported_tcb": tcb(r.reported_tcb),
                "plat_info": {
                    "smt_enabled": r.platform_info.smt_enabled(),
                    "tsme_enabled": r.platform_info.tsme_enabled(),
                },
            },
        }})
    }

    fn milan() -> Vec<u8> {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../testdata/sev-snp/virtee-report_milan.hex"),
        )
        .unwrap();
        hex::decode(text.trim()).unwrap()
    }

    /// The reference values for the real report's launch, with its TCB registered.
    fn registered(r: &report::AttestationReport, policy: u64) -> BTreeMap<String, Value> {
        let mut values = reference_values(&r.measurement, policy).unwrap();
        let t = r.reported_tcb;
        for (id, svn) in TCB_IDS
            .iter()
            .zip([t.bootloader, t.tee, t.snp, t.microcode])
        {
            values.insert((*id).to_owned(), serde_json::json!([svn]));
        }
        values
    }

    #[test]
    fn the_policy_accepts_the_real_report_with_its_values() {
        let r = report::parse(&milan()).unwrap();
        let values = registered(&r, r.policy.0);
        let good = claims(&r);
        assert_eq!(evaluate(&values, &good), (2, 3, 2, true));
        // The base64 form is accepted too (an older verifier's encoding).
        let mut old = good.clone();
        old["snp"]["evidence"]["measurement"] = base64::engine::general_purpose::STANDARD
            .encode(r.measurement)
            .into();
        assert_eq!(evaluate(&values, &old), (2, 3, 2, true));
    }

    #[test]
    fn the_policy_refuses_each_difference() {
        let bytes = milan();
        let r = report::parse(&bytes).unwrap();
        let values = registered(&r, r.policy.0);
        let run = |edit: &dyn Fn(&mut Vec<u8>)| {
            let mut b = bytes.clone();
            edit(&mut b);
            evaluate(&values, &claims(&report::parse(&b).unwrap()))
        };
        // Another launch digest.
        assert_eq!(
            run(&|b| b[report::layout::MEASUREMENT] ^= 1),
            (2, 33, 2, false)
        );
        // Debugging, a migration agent, another ABI, single socket, no SMT, VMPL 1.
        let policy_byte = report::layout::POLICY;
        assert_eq!(run(&|b| b[policy_byte + 2] |= 0x08), (2, 3, 36, false));
        assert_eq!(run(&|b| b[policy_byte + 2] |= 0x04), (2, 3, 36, false));
        assert_eq!(run(&|b| b[policy_byte + 1] = 1), (2, 3, 36, false));
        assert_eq!(run(&|b| b[policy_byte] = 1), (2, 3, 36, false));
        assert_eq!(run(&|b| b[policy_byte + 2] |= 0x10), (2, 3, 36, false));
        assert_eq!(run(&|b| b[policy_byte + 2] &= !0x01), (2, 3, 36, false));
        assert_eq!(run(&|b| b[report::layout::VMPL] = 1), (2, 3, 36, false));
        // An older SNP firmware SVN than registered.
        assert_eq!(
            run(&|b| b[report::layout::REPORTED_TCB + 6] = 7),
            (97, 3, 2, false)
        );
        // Without the TCB registration, or without any claims, nothing passes.
        let unregistered = reference_values(&r.measurement, r.policy.0).unwrap();
        assert_eq!(evaluate(&unregistered, &claims(&r)), (97, 3, 2, false));
        assert_eq!(
            evaluate(&values, &serde_json::json!({"tdx": {}})),
            (97, 33, 36, false)
        );
        // Values for another guest policy: the configuration is not the approved one.
        let single = registered(&r, r.policy.0 | GuestPolicy::SINGLE_SOCKET);
        assert_eq!(evaluate(&single, &claims(&r)), (2, 3, 36, false));
    }

    #[test]
    fn the_policy_text_reads_the_default_policy_ids() {
        let text = policy();
        for line in [
            "evidence := input.snp.evidence",
            "\tevidence.measurement in query_reference_value(\"snp_launch_measurement\")",
            "\tevidence.policy.abi_major == query_reference_value(\"snp_guest_abi_major\")",
            "\tevidence.reported_tcb.snp in query_reference_value(\"snp_snp_svn\")",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} missing:\n{text}");
        }
    }
}
