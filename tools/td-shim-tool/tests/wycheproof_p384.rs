//! Cross-implementation check of ECDSA P-384 with SHA-384: Wycheproof's P1363 (raw R ‖ S)
//! vectors (a documented subset, testdata/README.md) against both verifiers secure boot uses:
//! `ring` (the host tool, which signs) and RustCrypto's `p384` through
//! `td_shim::secure_boot::verify_p384` (the firmware). Each must give each vector's expected
//! result. "acceptable" vectors (none in this subset) are expected to be refused: the firmware
//! boots only what every implementation accepts.

use ring::signature::{UnparsedPublicKey, ECDSA_P384_SHA384_FIXED};
use serde_json::Value;
use sha2::{Digest, Sha384};
use std::collections::BTreeSet;
use std::path::Path;

fn vectors() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/secure-boot/ecdsa_secp384r1_sha384_p1363_subset.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("the vectors are JSON")
}

fn hex(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("a hex string")).expect("valid hex")
}

#[test]
fn both_verifiers_agree_with_every_wycheproof_vector() {
    let doc = vectors();
    assert_eq!(doc["algorithm"], "ECDSA");
    assert_eq!(doc["schema"], "ecdsa_p1363_verify_schema.json");
    let mut counted = 0;
    let mut valid = 0;
    let mut flags = BTreeSet::new();
    let mut wrong = Vec::new();
    for group in doc["testGroups"].as_array().expect("testGroups") {
        assert_eq!(group["type"], "EcdsaP1363Verify");
        assert_eq!(group["sha"], "SHA-384");
        assert_eq!(group["publicKey"]["curve"], "secp384r1");
        let key = hex(&group["publicKey"]["uncompressed"]);
        assert_eq!((key.len(), key[0]), (97, 4), "an uncompressed P-384 point");
        for test in group["tests"].as_array().expect("tests") {
            let id = &test["tcId"];
            let msg = hex(&test["msg"]);
            let sig = hex(&test["sig"]);
            let expected = match test["result"].as_str() {
                Some("valid") => true,
                Some("invalid") | Some("acceptable") => false,
                other => panic!("tcId {id}: result {other:?}"),
            };
            let by_ring = UnparsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, &key)
                .verify(&msg, &sig)
                .is_ok();
            let digest: [u8; 48] = Sha384::digest(&msg).into();
            let by_firmware = td_shim::secure_boot::verify_p384(&key[1..], &sig, &digest).is_ok();
            if by_ring != expected || by_firmware != expected {
                wrong.push(format!(
                    "tcId {id} ({}): expected {}, ring {by_ring}, firmware {by_firmware}",
                    test["comment"], test["result"]
                ));
            }
            // A signature that verifies also attaches through the tool's parser, raw or DER.
            if expected {
                let raw: [u8; 96] = sig.clone().try_into().expect("96 bytes");
                let der = td_shim_tool::secure_boot::signature_der(&raw);
                assert_eq!(
                    td_shim_tool::secure_boot::parse_signature(&der).unwrap(),
                    raw
                );
                valid += 1;
            }
            for f in test["flags"].as_array().expect("flags") {
                flags.insert(f.as_str().expect("a flag").to_owned());
            }
            counted += 1;
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(
        Some(counted),
        doc["numberOfTests"].as_u64().map(|n| n as usize)
    );
    // The subset is what testdata/README.md says: 47 vectors, 23 valid, every kind of edge case.
    assert_eq!((counted, valid), (47, 23));
    for f in [
        "ValidSignature",
        "RangeCheck",
        "IntegerOverflow",
        "ModifiedInteger",
        "InvalidSignature",
        "EdgeCaseShamirMultiplication",
        "SpecialCaseHash",
        "ArithmeticError",
        "SmallRandS",
        "SignatureSize",
        "PointDuplication",
        "EdgeCasePublicKey",
    ] {
        assert!(flags.contains(f), "no {f} vector");
    }
}
