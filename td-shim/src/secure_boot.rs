//! Secure boot: whether a signed payload may boot under the enrolled key.
//!
//! The formats are [`td_layout::signed`]; the specification is `docs/secure-boot.md`. This
//! module is the one place that decides: the firmware calls [`verify`] before it measures or
//! runs a payload, and `td-shim-tool verify-signature` calls the same function, so the host
//! answers exactly as the firmware will. ECDSA verification is RustCrypto's pure-Rust `p384`
//! (no assembly, builds for `x86_64-unknown-none`); the host tool signs with `ring`, and the same
//! test vectors run against both.
//!
//! The order of the checks is fixed, so that a refusal names the first thing wrong:
//! 1. the trailer parses ([`SignedError`]);
//! 2. its algorithm is the enrolled key's;
//! 3. SHA-384 of its public key equals the enrolled hash (before any curve arithmetic on an
//!    untrusted key);
//! 4. the signature verifies over `header ‖ SHA-384(payload)` (a bzImage's loader fields
//!    normalized before hashing, [`payload_digest`]);
//! 5. the payload's SVN is at least the enrolled minimum. The SVN is read from the signed header,
//!    so it is checked only once the signature says the header is the signer's.

use core::fmt;

use p384::ecdsa::signature::hazmat::PrehashVerifier;
use p384::ecdsa::{Signature, VerifyingKey};
use sha2::{Digest, Sha384};
use td_layout::signed::{
    Algorithm, EnrolledKey, SignedError, SignedPayload, DIGEST_SIZE, HEADER_SIZE,
};

/// Every boot-loader field of a bzImage lies in its first 0x290 bytes.
const SETUP_HEADER_END: usize = 0x290;
/// Where a bzImage's setup header says "HdrS".
const HDRS_AT: usize = 0x202;

/// Why a payload may not boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The trailer is missing or malformed; [`SignedError::NotSigned`] for an unsigned payload.
    Format(SignedError),
    /// Signed with another algorithm than the enrolled key's: (payload's, enrolled).
    Algorithm(Algorithm, Algorithm),
    /// The signer's key is not the enrolled one; the signer's key hash.
    UnknownKey([u8; DIGEST_SIZE]),
    /// The public key is not a valid point of the curve (it matched the enrolled hash, so the
    /// enrolled key itself is bad).
    BadKey,
    /// The signature does not verify: the payload or its header was changed after signing, or
    /// the signature is not the key's.
    BadSignature,
    /// The payload's SVN is below the enrolled minimum: (payload's, minimum).
    Rollback(u64, u64),
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::Format(e) => write!(f, "{e}"),
            Refused::Algorithm(p, e) => write!(
                f,
                "the payload is signed with {}, the enrolled key is {}",
                p.name(),
                e.name()
            ),
            Refused::UnknownKey(h) => {
                write!(
                    f,
                    "the payload is signed by a key that is not enrolled (SHA-384 "
                )?;
                for b in &h[..8] {
                    write!(f, "{b:02x}")?;
                }
                write!(f, "...)")
            }
            Refused::BadKey => write!(f, "the enrolled public key is not a P-384 point"),
            Refused::BadSignature => write!(f, "the signature does not verify"),
            Refused::Rollback(svn, min) => write!(
                f,
                "payload SVN {svn} is below the enrolled minimum {min} (rollback)"
            ),
        }
    }
}

/// A payload that passed every check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified<'a> {
    /// The payload without its trailer: what boots and what is measured.
    pub payload: &'a [u8],
    /// [`payload_digest`] of `payload`, as the signature covers it; for a bzImage also its
    /// measured kernel digest.
    pub payload_digest: [u8; DIGEST_SIZE],
    /// The payload's SVN, from the signed header.
    pub svn: u64,
    /// The payload's version, from the signed header (informational).
    pub version: u64,
    /// SHA-384 of the signer's public key: the key identity that is measured.
    pub signer: [u8; DIGEST_SIZE],
}

/// SHA-384 of a public key in its trailer encoding: the identity the record enrolls and the
/// measurement records.
pub fn key_hash(public_key: &[u8]) -> [u8; DIGEST_SIZE] {
    Sha384::digest(public_key).into()
}

/// Whether `payload` is a Linux bzImage for the signed message: "HdrS" at 0x202.
fn is_bzimage(payload: &[u8]) -> bool {
    payload.get(HDRS_AT..HDRS_AT + 4) == Some(b"HdrS")
}

/// Bytes of the signed message: the header, then the payload's digest.
pub const MESSAGE_SIZE: usize = HEADER_SIZE + DIGEST_SIZE;

/// SHA-384 of the payload as it is signed and measured: for a bzImage, the kernel digest the
/// measurement records ([`crate::measurement::kernel_digest`]: the boot-loader fields QEMU's
/// `-kernel` writes normalized, as [`normalized_head`] shows them), so the firmware hashes the
/// kernel once for both; any other payload as it is.
pub fn payload_digest(payload: &[u8]) -> [u8; DIGEST_SIZE] {
    if is_bzimage(payload) {
        crate::measurement::kernel_digest(payload)
    } else {
        Sha384::digest(payload).into()
    }
}

/// The signed message: the 48 header bytes as stored, then the payload's digest
/// ([`payload_digest`]). 96 bytes, so an external signer (an HSM) never needs the payload.
pub fn message(
    header: &[u8; HEADER_SIZE],
    payload_digest: &[u8; DIGEST_SIZE],
) -> [u8; MESSAGE_SIZE] {
    let mut m = [0u8; MESSAGE_SIZE];
    m[..HEADER_SIZE].copy_from_slice(header);
    m[HEADER_SIZE..].copy_from_slice(payload_digest);
    m
}

/// SHA-384 of the signed message for `payload` under `header`: what ECDSA P-384 signs.
pub fn message_digest(header: &[u8; HEADER_SIZE], payload: &[u8]) -> [u8; DIGEST_SIZE] {
    Sha384::digest(message(header, &payload_digest(payload))).into()
}

/// The start of a payload as it is hashed: for a bzImage, its first `min(len, 0x290)` bytes
/// with the boot-loader fields normalized; for any other payload, nothing. [`payload_digest`]
/// hashes `head ‖ payload[head.len()..]`.
#[derive(Clone, Copy)]
pub struct NormalizedHead {
    bytes: [u8; SETUP_HEADER_END],
    len: usize,
}

impl NormalizedHead {
    /// The normalized bytes, which replace the payload's first [`Self::len`] bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// How many of the payload's first bytes the head replaces (0 for a non-bzImage).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.len
    }
}

/// The head of the signed message for `payload` (see [`NormalizedHead`]).
pub fn normalized_head(payload: &[u8]) -> NormalizedHead {
    let mut head = NormalizedHead {
        bytes: [0; SETUP_HEADER_END],
        len: 0,
    };
    if is_bzimage(payload) {
        let n = payload.len().min(SETUP_HEADER_END);
        head.bytes[..n].copy_from_slice(&payload[..n]);
        td_loader::linux::normalize_setup_header(&mut head.bytes[..n]);
        head.len = n;
    }
    head
}

/// Verifies an ECDSA P-384 signature (R ‖ S, 96 bytes) by the key X ‖ Y (96 bytes) over a
/// SHA-384 `digest`. Both encodings are checked: a key off the curve or a signature with R or
/// S out of [1, n) is refused, never an error path that panics.
pub fn verify_p384(
    public_key: &[u8],
    signature: &[u8],
    digest: &[u8; DIGEST_SIZE],
) -> Result<(), Refused> {
    if public_key.len() != 96 {
        return Err(Refused::BadKey);
    }
    let mut sec1 = [0u8; 97];
    sec1[0] = 0x04;
    sec1[1..].copy_from_slice(public_key);
    let key = VerifyingKey::from_sec1_bytes(&sec1).map_err(|_| Refused::BadKey)?;
    let sig = Signature::from_slice(signature).map_err(|_| Refused::BadSignature)?;
    key.verify_prehash(digest, &sig)
        .map_err(|_| Refused::BadSignature)
}

/// Decides whether `file` (a payload with its signature trailer) may boot under `enrolled`.
pub fn verify<'a>(file: &'a [u8], enrolled: &EnrolledKey) -> Result<Verified<'a>, Refused> {
    let s = SignedPayload::parse(file).map_err(Refused::Format)?;
    if s.algorithm != enrolled.algorithm {
        return Err(Refused::Algorithm(s.algorithm, enrolled.algorithm));
    }
    let signer = key_hash(s.public_key);
    if !ct_eq(&signer, &enrolled.key_hash) {
        return Err(Refused::UnknownKey(signer));
    }
    let payload_digest = payload_digest(s.payload);
    let digest: [u8; DIGEST_SIZE] = Sha384::digest(message(s.header, &payload_digest)).into();
    match s.algorithm {
        Algorithm::EcdsaP384Sha384 => verify_p384(s.public_key, s.signature, &digest)?,
    }
    if s.payload_svn < enrolled.min_svn {
        return Err(Refused::Rollback(s.payload_svn, enrolled.min_svn));
    }
    Ok(Verified {
        payload: s.payload,
        payload_digest,
        svn: s.payload_svn,
        version: s.payload_version,
        signer,
    })
}

/// Constant-time equality of two digests (the key hash is not secret, but a comparison that
/// leaks nothing costs nothing here).
fn ct_eq(a: &[u8; DIGEST_SIZE], b: &[u8; DIGEST_SIZE]) -> bool {
    let mut d = 0u8;
    for (x, y) in a.iter().zip(b) {
        d |= x ^ y;
    }
    core::hint::black_box(d) == 0
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use p384::ecdsa::signature::hazmat::PrehashSigner;
    use p384::ecdsa::SigningKey;
    use std::vec::Vec;
    use td_layout::signed::header;

    fn key(seed: u8) -> SigningKey {
        let mut k = [0u8; 48];
        k[47] = seed;
        k[0] = 0x11;
        SigningKey::from_slice(&k).unwrap()
    }

    fn public(k: &SigningKey) -> Vec<u8> {
        let p = k.verifying_key().to_sec1_point(false);
        p.as_bytes()[1..].to_vec()
    }

    /// A signed file as `td-shim-tool sign` makes it.
    fn sign(k: &SigningKey, payload: &[u8], svn: u64) -> Vec<u8> {
        let h = header(payload.len(), 1, svn, Algorithm::EcdsaP384Sha384).unwrap();
        let digest = message_digest(&h, payload);
        let sig: Signature = k.sign_prehash(&digest).unwrap();
        let mut f = payload.to_vec();
        f.extend_from_slice(&public(k));
        f.extend_from_slice(&sig.to_bytes());
        f.extend_from_slice(&h);
        f
    }

    fn enrolled(k: &SigningKey, min_svn: u64) -> EnrolledKey {
        EnrolledKey {
            algorithm: Algorithm::EcdsaP384Sha384,
            key_hash: key_hash(&public(k)),
            min_svn,
        }
    }

    fn bzimage() -> Vec<u8> {
        let mut b = std::vec![0x5Au8; 0x1000];
        b[HDRS_AT..HDRS_AT + 4].copy_from_slice(b"HdrS");
        b
    }

    #[test]
    fn a_payload_signed_by_the_enrolled_key_verifies() {
        let k = key(1);
        let f = sign(&k, b"an ELF payload", 5);
        let v = verify(&f, &enrolled(&k, 5)).unwrap();
        assert_eq!(v.payload, b"an ELF payload");
        assert_eq!(v.svn, 5);
        assert_eq!(v.version, 1);
        assert_eq!(v.signer, key_hash(&public(&k)));
    }

    #[test]
    fn each_tampering_is_refused_with_its_reason() {
        let k = key(1);
        let f = sign(&k, b"an ELF payload", 5);
        let e = enrolled(&k, 5);
        // One flipped payload byte.
        let mut g = f.clone();
        g[3] ^= 1;
        assert_eq!(verify(&g, &e), Err(Refused::BadSignature));
        // One flipped signature byte.
        let mut g = f.clone();
        let sig_at = f.len() - 48 - 96;
        g[sig_at + 10] ^= 1;
        assert_eq!(verify(&g, &e), Err(Refused::BadSignature));
        // The SVN raised in the header after signing.
        let mut g = f.clone();
        let svn_at = f.len() - 48 + 0x20;
        g[svn_at] = 9;
        assert_eq!(verify(&g, &e), Err(Refused::BadSignature));
        // Another key, even a valid signature by it.
        let other = sign(&key(2), b"an ELF payload", 5);
        assert_eq!(
            verify(&other, &e),
            Err(Refused::UnknownKey(key_hash(&public(&key(2)))))
        );
        // Unsigned.
        assert_eq!(
            verify(b"an ELF payload", &e),
            Err(Refused::Format(SignedError::NotSigned))
        );
        // Rolled back.
        assert_eq!(verify(&f, &enrolled(&k, 6)), Err(Refused::Rollback(5, 6)));
    }

    #[test]
    fn a_bzimage_verifies_after_the_loader_writes_its_fields() {
        let k = key(3);
        let kernel = bzimage();
        let f = sign(&k, &kernel, 0);
        let mut loaded = f.clone();
        // What QEMU's direct boot writes: type_of_loader, loadflags, heap_end_ptr, cmd_line_ptr.
        loaded[0x210] = 0xB0;
        loaded[0x211] |= 0x80;
        loaded[0x224..0x226].copy_from_slice(&0xFE00u16.to_le_bytes());
        loaded[0x228..0x22C].copy_from_slice(&0x20000u32.to_le_bytes());
        assert!(verify(&loaded, &enrolled(&k, 0)).is_ok());
        // A byte outside the loader fields is still covered.
        loaded[0x230] ^= 1;
        assert_eq!(
            verify(&loaded, &enrolled(&k, 0)),
            Err(Refused::BadSignature)
        );
    }

    #[test]
    fn the_message_is_the_header_and_the_payload_digest() {
        let h = header(0x1000, 1, 0, Algorithm::EcdsaP384Sha384).unwrap();
        let mut kernel = bzimage();
        kernel[0x210] = 0xB0; // type_of_loader, a loader field
        let head = normalized_head(&kernel);
        assert_eq!(head.len(), SETUP_HEADER_END);
        assert_eq!(head.as_bytes()[0x210], 0);
        assert_eq!(head.as_bytes()[0x202..0x206], *b"HdrS");
        let mut hashed = head.as_bytes().to_vec();
        hashed.extend_from_slice(&kernel[head.len()..]);
        let pd: [u8; DIGEST_SIZE] = Sha384::digest(&hashed).into();
        assert_eq!(payload_digest(&kernel), pd);
        // What the firmware relies on to hash a verified kernel once: the signed digest is the
        // measured kernel digest.
        assert_eq!(pd, crate::measurement::kernel_digest(&kernel));
        let mut expected = h.to_vec();
        expected.extend_from_slice(&pd);
        assert_eq!(message(&h, &pd).as_slice(), expected.as_slice());
        let direct: [u8; DIGEST_SIZE] = Sha384::digest(&expected).into();
        assert_eq!(message_digest(&h, &kernel), direct);
        // Not a bzImage: the payload is hashed as it is.
        assert_eq!(normalized_head(b"ELF").len(), 0);
        let elf: [u8; DIGEST_SIZE] = Sha384::digest(b"ELF").into();
        assert_eq!(payload_digest(b"ELF"), elf);
        // A bzImage shorter than the setup header: the head is all of it, and the measurement
        // agrees there too.
        let short = &kernel[..0x220];
        assert_eq!(normalized_head(short).len(), 0x220);
        assert_eq!(
            payload_digest(short),
            crate::measurement::kernel_digest(short)
        );
    }

    #[test]
    fn a_verified_payload_carries_its_digest() {
        let k = key(4);
        let kernel = bzimage();
        let signed = sign(&k, &kernel, 0);
        let v = verify(&signed, &enrolled(&k, 0)).unwrap();
        assert_eq!(v.payload_digest, payload_digest(&kernel));
    }

    #[test]
    fn the_enrolled_hash_is_checked_before_the_curve() {
        // A key that is not a point, but whose hash is enrolled: the record is what is wrong.
        let k = key(1);
        let mut f = sign(&k, b"x", 0);
        let key_at = f.len() - 48 - 192;
        f[key_at..key_at + 96].fill(0xFF);
        let bad = key_hash(&f[key_at..key_at + 96]);
        let e = EnrolledKey {
            algorithm: Algorithm::EcdsaP384Sha384,
            key_hash: bad,
            min_svn: 0,
        };
        assert_eq!(verify(&f, &e), Err(Refused::BadKey));
    }

    #[test]
    fn out_of_range_signatures_are_refused_without_panicking() {
        let k = key(1);
        let f = sign(&k, b"x", 0);
        let sig_at = f.len() - 48 - 96;
        for fill in [0x00u8, 0xFF] {
            let mut g = f.clone();
            g[sig_at..sig_at + 96].fill(fill);
            assert_eq!(verify(&g, &enrolled(&k, 0)), Err(Refused::BadSignature));
        }
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        assert_eq!(
            std::format!("{}", Refused::Rollback(1, 2)),
            "payload SVN 1 is below the enrolled minimum 2 (rollback)"
        );
        assert_eq!(
            std::format!("{}", Refused::Format(SignedError::NotSigned)),
            "the payload is not signed (no signature header)"
        );
        assert!(std::format!("{}", Refused::UnknownKey([0xAB; 48]))
            .contains("not enrolled (SHA-384 abababababababab...)"));
    }
}
