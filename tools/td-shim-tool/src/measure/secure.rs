//! Secure boot in the host's prediction: `measure` and `refvals` switch to it by themselves when
//! the image (`--image`) enrolls a key, as the firmware does.
//!
//! The firmware reads the enrolled key record from the image (`td_layout::signed`), and with a
//! key refuses any payload `td_shim::secure_boot::verify` refuses. The host runs that same
//! function on the same file: a payload the firmware would refuse is refused here with the
//! firmware's reason (`secure boot: <reason>`), and no measurement is predicted for it (the
//! firmware's failed boot leaves the error separators, which `measure` does not predict for
//! any refused boot). A payload that verifies is measured as the firmware measures it: without
//! its trailer, plus secure boot's three events (`td_shim::measurement::plan_with_secure_boot`).

use super::MeasureError;
use td_layout::signed::{enrolled_key_image_offset, EnrolledKey, RECORD_SIZE};
use td_shim::measurement::SecureBoot;

/// The key an image enrolls: the record's bytes as the image holds them (measured as they are
/// in RTMR0's `secure_policy` event) and the key they describe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolled {
    /// The 96-byte record.
    pub record: [u8; RECORD_SIZE],
    /// What it enrolls.
    pub key: EnrolledKey,
}

/// A payload that verified: what the plan records, and the size of the whole signed file (the
/// firmware stages the whole file, so the boot's layout is checked with its size).
#[derive(Debug, Clone, Copy)]
pub struct Verified<'a> {
    /// The payload without its trailer.
    pub payload: &'a [u8],
    /// Its digest as signed (`td_shim::secure_boot::payload_digest`); for a bzImage, its
    /// measured kernel digest.
    pub payload_digest: [u8; 48],
    /// Secure boot's inputs to the plan.
    pub events: SecureBoot<'a>,
    /// The signed file's length.
    pub file_len: u64,
    /// The signed payload version (informational; not measured).
    pub version: u64,
}

/// The key `image` (a whole td-shim image) enrolls: `None` when its record is all zero (the
/// firmware then boots as without secure boot). A malformed record is refused, as the firmware
/// refuses it.
pub fn enrolled(image: &[u8]) -> Result<Option<Enrolled>, MeasureError> {
    if image.len() as u64 != td_layout::layout::IMAGE_SIZE {
        return Err(MeasureError::ImageSize(image.len()));
    }
    let at = enrolled_key_image_offset();
    let record: [u8; RECORD_SIZE] = image
        .get(at..at + RECORD_SIZE)
        .and_then(|r| r.try_into().ok())
        .ok_or(MeasureError::ImageSize(image.len()))?;
    Ok(EnrolledKey::parse(&record)
        .map_err(MeasureError::EnrolledKey)?
        .map(|key| Enrolled { record, key }))
}

impl Enrolled {
    /// `file` (a payload with its signature trailer) checked by the firmware's function.
    pub fn verify<'a>(&'a self, file: &'a [u8]) -> Result<Verified<'a>, MeasureError> {
        let v = td_shim::secure_boot::verify(file, &self.key).map_err(MeasureError::SecureBoot)?;
        Ok(Verified {
            payload: v.payload,
            payload_digest: v.payload_digest,
            events: SecureBoot {
                record: &self.record,
                signer: v.signer,
                svn: v.svn,
            },
            file_len: file.len() as u64,
            version: v.version,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::measure::tests::{synthetic_kernel, PARAMS};
    use crate::measure::{measure, measure_boot, KernelFiles, VmmInputs};
    use p384::ecdsa::signature::hazmat::PrehashSigner;
    use p384::ecdsa::{Signature, SigningKey};
    use sha2::Digest;
    use td_layout::layout::{IMAGE_PAYLOAD, IMAGE_SIZE};
    use td_layout::payload::PayloadKind;
    use td_layout::signed::{header, Algorithm};
    use td_shim::measurement::{kernel_digest, Payload};
    use td_shim::secure_boot::{key_hash, message_digest, Refused};

    /// A fixed test key (`seed` varies it).
    pub(crate) fn key(seed: u8) -> SigningKey {
        let mut k = [0u8; 48];
        k[0] = 0x11;
        k[47] = seed;
        SigningKey::from_slice(&k).unwrap()
    }

    fn public(k: &SigningKey) -> Vec<u8> {
        k.verifying_key().to_sec1_point(false).as_bytes()[1..].to_vec()
    }

    /// `payload` signed by `k` with `svn`, as `td-shim-tool sign` makes it.
    pub(crate) fn sign(k: &SigningKey, payload: &[u8], svn: u64) -> Vec<u8> {
        let h = header(payload.len(), 7, svn, Algorithm::EcdsaP384Sha384).unwrap();
        let sig: Signature = k.sign_prehash(&message_digest(&h, payload)).unwrap();
        let mut f = payload.to_vec();
        f.extend_from_slice(&public(k));
        f.extend_from_slice(&sig.to_bytes());
        f.extend_from_slice(&h);
        f
    }

    /// The record enrolling `k` with `min_svn`.
    pub(crate) fn record(k: &SigningKey, min_svn: u64) -> [u8; RECORD_SIZE] {
        EnrolledKey {
            algorithm: Algorithm::EcdsaP384Sha384,
            key_hash: key_hash(&public(k)),
            min_svn,
        }
        .to_bytes()
    }

    /// A td-shim image with `entries` in its payload table and `record` enrolled.
    pub(crate) fn image(entries: &[(PayloadKind, &[u8])], record: [u8; RECORD_SIZE]) -> Vec<u8> {
        let mut image = vec![0u8; IMAGE_SIZE as usize];
        let start = IMAGE_PAYLOAD.image_offset() as usize;
        td_layout::payload::write_payload_table(
            &mut image[start..start + IMAGE_PAYLOAD.size as usize],
            entries,
        )
        .unwrap();
        let at = enrolled_key_image_offset();
        image[at..at + RECORD_SIZE].copy_from_slice(&record);
        image
    }

    fn names(m: &crate::measure::Measurement) -> Vec<&'static str> {
        m.planned.iter().map(|e| e.name).collect()
    }

    #[test]
    fn an_enrolled_image_measures_the_verified_kernel_with_the_three_events() {
        let kernel = synthetic_kernel(0x3000);
        let signed = sign(&key(1), &kernel, 3);
        let rec = record(&key(1), 2);
        let img = image(
            &[
                (PayloadKind::Kernel, &signed),
                (PayloadKind::Initrd, b"initrd"),
                (PayloadKind::Cmdline, b"console=ttyS0"),
            ],
            rec,
        );
        let m = measure_boot(&PARAMS, &VmmInputs::default(), None, Some(&img)).unwrap();
        assert_eq!(
            names(&m),
            [
                "launch_params",
                "secure_policy",
                "separator",
                "payload_signer",
                "payload_svn",
                "kernel",
                "separator",
                "cmdline",
                "initrd"
            ]
        );
        let digest = |n: &str| m.planned.iter().find(|e| e.name == n).unwrap().digest;
        // The kernel is measured without its trailer: the unsigned file's digest.
        assert_eq!(digest("kernel"), kernel_digest(&kernel));
        let sha = |b: &[u8]| -> [u8; 48] { sha2::Sha384::digest(b).into() };
        assert_eq!(digest("secure_policy"), sha(&rec));
        assert_eq!(digest("payload_signer"), sha(&key_hash(&public(&key(1)))));
        assert_eq!(digest("payload_svn"), sha(&3u64.to_le_bytes()));
        // RTMR2 is the unsigned boot's; RTMR0 and RTMR1 carry the secure-boot events.
        let unsigned = measure(
            &PARAMS,
            &crate::measure::linux_payload(&kernel, Some(b"initrd"), b"console=ttyS0").unwrap(),
        )
        .unwrap();
        assert_eq!(m.rtmrs[2], unsigned.rtmrs[2]);
        assert_ne!(m.rtmrs[0], unsigned.rtmrs[0]);
        assert_ne!(m.rtmrs[1], unsigned.rtmrs[1]);
        // The log replays to the registers (measure's self-check), and the same kernel given
        // as a file (QEMU's -kernel) measures the same.
        let dir = tempfile::tempdir().unwrap();
        let (kpath, ipath) = (dir.path().join("k"), dir.path().join("i"));
        std::fs::write(&kpath, &signed).unwrap();
        std::fs::write(&ipath, b"initrd").unwrap();
        let files = KernelFiles {
            kernel: &kpath,
            initrd: Some(&ipath),
            cmdline: b"console=ttyS0",
        };
        let from_files =
            measure_boot(&PARAMS, &VmmInputs::default(), Some(files), Some(&img)).unwrap();
        assert_eq!(from_files.log, m.log);
        assert_eq!(from_files.rtmrs, m.rtmrs);
    }

    #[test]
    fn an_elf_payload_is_verified_too() {
        let img = image(
            &[(PayloadKind::Elf, b"\x7fELF unsigned")],
            record(&key(1), 0),
        );
        let err = measure_boot(&PARAMS, &VmmInputs::default(), None, Some(&img)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "secure boot: the payload is not signed (no signature header) (the firmware \
             refuses this payload)"
        );
        // Verified first, then checked as an ELF file without its trailer.
        let signed = sign(&key(1), b"not an ELF file", 0);
        let img = image(&[(PayloadKind::Elf, &signed)], record(&key(1), 0));
        let err = measure_boot(&PARAMS, &VmmInputs::default(), None, Some(&img)).unwrap_err();
        assert!(matches!(err, MeasureError::Elf(_)), "{err}");
    }

    #[test]
    fn what_the_firmware_refuses_is_refused_with_its_reason() {
        let kernel = synthetic_kernel(0x3000);
        let signed = sign(&key(1), &kernel, 3);
        let refused = |file: &[u8], rec: [u8; RECORD_SIZE]| {
            let img = image(&[(PayloadKind::Kernel, file)], rec);
            measure_boot(&PARAMS, &VmmInputs::default(), None, Some(&img)).unwrap_err()
        };
        let mut flipped = signed.clone();
        flipped[0x1000] ^= 1;
        assert!(matches!(
            refused(&flipped, record(&key(1), 0)),
            MeasureError::SecureBoot(Refused::BadSignature)
        ));
        assert!(matches!(
            refused(&sign(&key(2), &kernel, 3), record(&key(1), 0)),
            MeasureError::SecureBoot(Refused::UnknownKey(_))
        ));
        assert!(matches!(
            refused(&kernel, record(&key(1), 0)),
            MeasureError::SecureBoot(Refused::Format(_))
        ));
        let e = refused(&signed, record(&key(1), 4));
        assert_eq!(
            e.to_string(),
            "secure boot: payload SVN 3 is below the enrolled minimum 4 (rollback) (the \
             firmware refuses this payload)"
        );
        // A damaged record is refused, never read as "no key".
        let mut bad = record(&key(1), 0);
        bad[0x10] = 2;
        let e = refused(&signed, bad);
        assert!(matches!(e, MeasureError::EnrolledKey(_)), "{e}");
        assert_eq!(
            e.to_string(),
            "secure boot: enrolled key record: version 2 is not supported (1) (the firmware \
             refuses this image)"
        );
    }

    #[test]
    fn without_a_key_nothing_changes() {
        let kernel = synthetic_kernel(0x3000);
        let img = image(&[(PayloadKind::Kernel, &kernel)], [0; RECORD_SIZE]);
        let m = measure_boot(&PARAMS, &VmmInputs::default(), None, Some(&img)).unwrap();
        let plain = measure(
            &PARAMS,
            &Payload::Linux {
                kernel: td_shim::measurement::Blob::Bytes(&kernel),
                cmdline: b"",
                initrd: None,
            },
        )
        .unwrap();
        assert_eq!(m.log, plain.log);
        assert_eq!(enrolled(&img).unwrap(), None);
        // A signed kernel without a key boots as the file it is (trailer and all).
        let signed = sign(&key(1), &kernel, 3);
        let img = image(&[(PayloadKind::Kernel, &signed)], [0; RECORD_SIZE]);
        let m = measure_boot(&PARAMS, &VmmInputs::default(), None, Some(&img)).unwrap();
        assert_eq!(m.planned[2].digest, kernel_digest(&signed));
    }
}
