//! Secure boot's untrusted inputs: `td_layout::signed::SignedPayload::parse`,
//! `EnrolledKey::parse`, and `td_shim::secure_boot::verify` against a fixed enrolled key (the
//! test key of `td-shim-tool`'s secure-boot unit tests, whose signed files are the seeds, so the
//! fuzzer starts past the key-hash check and reaches the curve arithmetic).
//!
//! Input: a signed payload (payload ‖ key ‖ signature ‖ header); its first 96 bytes are also
//! read as an enrolled key record, and a record that parses is verified against too. Checked:
//! a parsed trailer's parts are the input's bytes and add up to its length; each parse error is
//! true of the input; a record round-trips through `to_bytes`; `verify` succeeds only on what
//! parses and is signed by the enrolled key, and its SVN check is exactly `svn >= min_svn`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use td_layout::signed::{
    is_signed, Algorithm, EnrolledKey, RecordError, SignedError, SignedPayload, HEADER_SIZE,
    RECORD_SIZE,
};
use td_shim::secure_boot::{key_hash, verify, Refused};

/// X ‖ Y of the test key (`PUB_XY` in tools/td-shim-tool/src/secure_boot/tests.rs).
const TEST_KEY: &str = "aa936d7de4335c2947249ff236afce3784400b50707f9930a9523daf6d0da8ee46067769afdde07d\
                        7497900c159317e97afd38153434b5fbd15ada0246c53b14c3f9438acb07de50f27e06f9815053c5\
                        d4992603ded9a10187d804d9b2222dc1";

fn test_key() -> [u8; 96] {
    let mut k = [0u8; 96];
    for (i, b) in k.iter_mut().enumerate() {
        *b = u8::from_str_radix(&TEST_KEY[2 * i..2 * i + 2], 16).expect("hex");
    }
    k
}

fn check_verify(
    data: &[u8],
    enrolled: &EnrolledKey,
    parsed: &Result<SignedPayload<'_>, SignedError>,
) {
    match verify(data, enrolled) {
        Ok(v) => {
            let s = parsed.as_ref().expect("verified, so parsed");
            assert_eq!(v.payload, s.payload);
            assert_eq!((v.svn, v.version), (s.payload_svn, s.payload_version));
            assert_eq!(v.signer, enrolled.key_hash);
            assert_eq!(key_hash(s.public_key), enrolled.key_hash);
            assert!(v.svn >= enrolled.min_svn);
            // The SVN check is exactly `svn >= min_svn`.
            if let Some(higher) = v.svn.checked_add(1) {
                let stricter = EnrolledKey {
                    min_svn: higher,
                    ..*enrolled
                };
                assert_eq!(
                    verify(data, &stricter),
                    Err(Refused::Rollback(v.svn, higher))
                );
            }
        }
        Err(Refused::Format(e)) => assert_eq!(parsed.as_ref().err(), Some(&e)),
        Err(Refused::Algorithm(p, e)) => assert_ne!(p, e),
        Err(Refused::UnknownKey(h)) => {
            assert_ne!(h, enrolled.key_hash);
            assert_eq!(
                Some(h),
                parsed.as_ref().ok().map(|s| key_hash(s.public_key))
            );
        }
        Err(Refused::BadKey | Refused::BadSignature) => {
            let s = parsed
                .as_ref()
                .expect("the curve is reached only after parsing");
            assert_eq!(key_hash(s.public_key), enrolled.key_hash);
        }
        Err(Refused::Rollback(svn, min)) => {
            assert!(svn < min);
            assert_eq!(min, enrolled.min_svn);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let parsed = SignedPayload::parse(data);
    match &parsed {
        Ok(s) => {
            assert!(is_signed(data));
            let n = s.payload.len();
            assert_eq!(
                n + s.public_key.len() + s.signature.len() + HEADER_SIZE,
                data.len()
            );
            assert_eq!(s.payload, &data[..n]);
            assert_eq!(s.public_key, &data[n..n + s.algorithm.key_size()]);
            assert_eq!(&s.header[..], &data[data.len() - HEADER_SIZE..]);
            assert_eq!(
                u32::from_le_bytes(s.header[0x14..0x18].try_into().unwrap()) as usize,
                HEADER_SIZE + n
            );
        }
        Err(SignedError::NotSigned) => assert!(!is_signed(data)),
        Err(e) => {
            let _ = e.to_string();
            assert!(is_signed(data), "{e:?} on a file without the header GUID");
        }
    }

    match EnrolledKey::parse(data) {
        Ok(Some(k)) => {
            assert_eq!(k.to_bytes()[..], data[..RECORD_SIZE]);
            check_verify(data, &k, &parsed);
        }
        Ok(None) => assert!(data[..RECORD_SIZE].iter().all(|&b| b == 0)),
        Err(RecordError::TooShort(n)) => assert!(n < RECORD_SIZE && n == data.len()),
        Err(e) => {
            let _ = e.to_string();
            assert!(data.len() >= RECORD_SIZE);
        }
    }

    let key = test_key();
    for min_svn in [0, 1, u64::MAX] {
        let enrolled = EnrolledKey {
            algorithm: Algorithm::EcdsaP384Sha384,
            key_hash: key_hash(&key),
            min_svn,
        };
        check_verify(data, &enrolled, &parsed);
    }
});
