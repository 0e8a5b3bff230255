//! Secure boot's two wire formats: the signed payload and the enrolled key record.
//!
//! The full specification, with the differences from upstream td-shim and the reasons, is
//! `docs/secure-boot.md`. Everything here parses untrusted bytes and never panics.
//!
//! # The signed payload
//!
//! A signed payload is the payload (a bzImage or an ELF file, unchanged) followed by a trailer:
//!
//! ```text
//! payload (n bytes) | public key | signature | header (48 bytes, at the very end)
//! ```
//!
//! The header has upstream td-shim's fields, all little-endian:
//!
//! ```text
//! 0x00  16  type GUID fcf2d558-9df5-4f4d-b0d7-3e4b798ab066
//! 0x10   4  struct_version, 1
//! 0x14   4  length = 48 + n (header plus payload, upstream's definition)
//! 0x18   8  payload_version (informational; not compared)
//! 0x20   8  payload_svn (compared with the enrolled minimum)
//! 0x28   4  signing_algorithm: 1 = ECDSA P-384 with SHA-384
//! 0x2C   4  reserved, 0
//! ```
//!
//! For ECDSA P-384 the public key is the point's X ‖ Y (96 bytes, big-endian coordinates) and
//! the signature R ‖ S (96 bytes, big-endian, not DER). The signed message is
//! `header ‖ SHA-384(payload)`, 96 bytes, where a Linux bzImage's boot-loader fields are
//! normalized before hashing (see `td_shim::secure_boot`): the payload's digest is the one the
//! measurement records. The trailer is at the end, not in front as upstream puts it, so that a
//! signed bzImage is still a bzImage that QEMU's `-kernel` loads.
//!
//! # The enrolled key record
//!
//! 96 bytes at [`ENROLLED_KEY_BASE`], inside the image's metadata page, which TDX measures into
//! MRTD and SEV-SNP into the launch digest:
//!
//! ```text
//! 0x00  16  type GUID be8f65a3-a83b-415c-a1fb-f78e105e824e
//! 0x10   4  struct_version, 1
//! 0x14   4  length, 96
//! 0x18   4  hash_algorithm: 1 = SHA-384
//! 0x1C   4  key_algorithm: 1 = ECDSA P-384 (the key is X ‖ Y, as in the trailer)
//! 0x20   8  minimum payload SVN
//! 0x28   8  reserved, 0
//! 0x30  48  SHA-384 of the public key (X ‖ Y)
//! ```
//!
//! Ninety-six zero bytes mean no key is enrolled. Anything else that is not a valid record is an
//! error, never "no key": a damaged record must not turn secure boot off.

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::guid::Guid;
use crate::layout::{IMAGE_METADATA, PAGE_SIZE};

/// Type GUID of the signed-payload header (upstream td-shim's value).
pub const SIGNED_PAYLOAD_GUID: Guid = Guid::from_fields(
    0xFCF2_D558,
    0x9DF5,
    0x4F4D,
    [0xB0, 0xD7, 0x3E, 0x4B, 0x79, 0x8A, 0xB0, 0x66],
);

/// Type GUID of the enrolled key record (upstream td-shim's public-key file type GUID).
pub const ENROLLED_KEY_GUID: Guid = Guid::from_fields(
    0xBE8F_65A3,
    0xA83B,
    0x415C,
    [0xA1, 0xFB, 0xF7, 0x8E, 0x10, 0x5E, 0x82, 0x4E],
);

/// The only structure version of both formats.
pub const STRUCT_VERSION: u32 = 1;
/// Bytes of the signed-payload header.
pub const HEADER_SIZE: usize = 48;
/// Bytes of the enrolled key record.
pub const RECORD_SIZE: usize = 96;
/// Bytes of a SHA-384 digest.
pub const DIGEST_SIZE: usize = 48;

/// Where the enrolled key record sits: offset 0xC00 of the metadata page, after the TDX
/// metadata and the SEV metadata (at 0x800).
pub const ENROLLED_KEY_BASE: u64 = IMAGE_METADATA.base + 0xC00;

/// The record's offset in the image file.
pub const fn enrolled_key_image_offset() -> usize {
    (ENROLLED_KEY_BASE - crate::layout::IMAGE_BASE) as usize
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<Header>() == HEADER_SIZE);
    assert!(offset_of!(Header, struct_version) == 0x10);
    assert!(offset_of!(Header, length) == 0x14);
    assert!(offset_of!(Header, payload_version) == 0x18);
    assert!(offset_of!(Header, payload_svn) == 0x20);
    assert!(offset_of!(Header, signing_algorithm) == 0x28);
    assert!(offset_of!(Header, reserved) == 0x2C);
    assert!(size_of::<Record>() == RECORD_SIZE);
    assert!(offset_of!(Record, hash_algorithm) == 0x18);
    assert!(offset_of!(Record, key_algorithm) == 0x1C);
    assert!(offset_of!(Record, min_svn) == 0x20);
    assert!(offset_of!(Record, key_hash) == 0x30);
    // The record stays inside the metadata page, after the SEV metadata's half-page start.
    assert!(ENROLLED_KEY_BASE >= crate::layout::SEV_METADATA_BASE + 0x100);
    assert!(ENROLLED_KEY_BASE + RECORD_SIZE as u64 <= IMAGE_METADATA.base + PAGE_SIZE);
};

/// A signature algorithm code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// ECDSA over NIST P-384 with SHA-384; key X ‖ Y, signature R ‖ S, 96 bytes each.
    EcdsaP384Sha384,
}

impl Algorithm {
    /// The code stored in headers and records.
    pub const fn code(self) -> u32 {
        match self {
            Algorithm::EcdsaP384Sha384 => 1,
        }
    }

    /// The algorithm a code names, if this crate knows it. Code 2 is upstream's RSA-PSS-3072,
    /// which td-shim does not implement.
    pub const fn from_code(code: u32) -> Option<Self> {
        match code {
            1 => Some(Algorithm::EcdsaP384Sha384),
            _ => None,
        }
    }

    /// Bytes of the public key in the trailer.
    pub const fn key_size(self) -> usize {
        match self {
            Algorithm::EcdsaP384Sha384 => 96,
        }
    }

    /// Bytes of the signature in the trailer.
    pub const fn signature_size(self) -> usize {
        match self {
            Algorithm::EcdsaP384Sha384 => 96,
        }
    }

    /// Name used in messages and tool output.
    pub const fn name(self) -> &'static str {
        match self {
            Algorithm::EcdsaP384Sha384 => "ecdsa-p384-sha384",
        }
    }
}

#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct Header {
    guid: [u8; 16],
    struct_version: U32,
    length: U32,
    payload_version: U64,
    payload_svn: U64,
    signing_algorithm: U32,
    reserved: U32,
}

#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct Record {
    guid: [u8; 16],
    struct_version: U32,
    length: U32,
    hash_algorithm: U32,
    key_algorithm: U32,
    min_svn: U64,
    reserved: U64,
    key_hash: [u8; DIGEST_SIZE],
}

/// Why bytes are not a signed payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignedError {
    /// Shorter than a header, or the last 48 bytes do not start with [`SIGNED_PAYLOAD_GUID`]:
    /// the payload is not signed.
    NotSigned,
    /// `struct_version` is not 1.
    Version(u32),
    /// `signing_algorithm` is not one td-shim implements.
    Algorithm(u32),
    /// `reserved` is not 0.
    Reserved(u32),
    /// `length` is below 48 (a header cannot be shorter than itself).
    Length(u32),
    /// The file's size is not `length` plus the key, the signature and the header's copy at
    /// the end: (size, expected).
    Size(usize, u64),
}

impl core::fmt::Display for SignedError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            SignedError::NotSigned => write!(f, "the payload is not signed (no signature header)"),
            SignedError::Version(v) => {
                write!(f, "signature header version {v} is not supported (1)")
            }
            SignedError::Algorithm(a) => write!(
                f,
                "signing algorithm {a} is not supported (1 = ecdsa-p384-sha384)"
            ),
            SignedError::Reserved(r) => {
                write!(f, "signature header reserved field is {r:#x}, not 0")
            }
            SignedError::Length(l) => {
                write!(
                    f,
                    "signature header length {l} is below the header's 48 bytes"
                )
            }
            SignedError::Size(n, e) => write!(
                f,
                "signed payload is {n} bytes, its header says {e} (payload, key, signature, header)"
            ),
        }
    }
}

/// A signed payload, split into its parts. Nothing is verified yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedPayload<'a> {
    /// The header's 48 bytes, as stored (the first part of the signed message).
    pub header: &'a [u8; HEADER_SIZE],
    /// The payload, without the trailer.
    pub payload: &'a [u8],
    /// The signer's public key, in the algorithm's encoding.
    pub public_key: &'a [u8],
    /// The signature, in the algorithm's encoding.
    pub signature: &'a [u8],
    /// The signature algorithm.
    pub algorithm: Algorithm,
    /// The payload's version (informational).
    pub payload_version: u64,
    /// The payload's security version number.
    pub payload_svn: u64,
}

/// Whether `file` ends in a signed-payload header (by its GUID alone).
pub fn is_signed(file: &[u8]) -> bool {
    file.len() >= HEADER_SIZE
        && file[file.len() - HEADER_SIZE..file.len() - HEADER_SIZE + 16]
            == *SIGNED_PAYLOAD_GUID.as_bytes()
}

impl<'a> SignedPayload<'a> {
    /// Splits a signed payload. Checks every header field and that the sizes add up to the
    /// file's exactly.
    pub fn parse(file: &'a [u8]) -> Result<Self, SignedError> {
        let n = file.len();
        let at = n.checked_sub(HEADER_SIZE).ok_or(SignedError::NotSigned)?;
        let header: &[u8; HEADER_SIZE] =
            file[at..].try_into().map_err(|_| SignedError::NotSigned)?;
        let h = Header::read_from_bytes(header).map_err(|_| SignedError::NotSigned)?;
        if h.guid != *SIGNED_PAYLOAD_GUID.as_bytes() {
            return Err(SignedError::NotSigned);
        }
        if h.struct_version.get() != STRUCT_VERSION {
            return Err(SignedError::Version(h.struct_version.get()));
        }
        let algorithm = Algorithm::from_code(h.signing_algorithm.get())
            .ok_or(SignedError::Algorithm(h.signing_algorithm.get()))?;
        if h.reserved.get() != 0 {
            return Err(SignedError::Reserved(h.reserved.get()));
        }
        let length = h.length.get();
        let payload_len = (length as usize)
            .checked_sub(HEADER_SIZE)
            .ok_or(SignedError::Length(length))?;
        let expected =
            u64::from(length) + (algorithm.key_size() + algorithm.signature_size()) as u64;
        if n as u64 != expected {
            return Err(SignedError::Size(n, expected));
        }
        let key_at = payload_len;
        let sig_at = key_at + algorithm.key_size();
        Ok(SignedPayload {
            header,
            payload: &file[..key_at],
            public_key: &file[key_at..sig_at],
            signature: &file[sig_at..at],
            algorithm,
            payload_version: h.payload_version.get(),
            payload_svn: h.payload_svn.get(),
        })
    }
}

/// The header for a payload of `payload_len` bytes, or `None` if it is too large for the
/// header's 32-bit length.
pub fn header(
    payload_len: usize,
    payload_version: u64,
    payload_svn: u64,
    algorithm: Algorithm,
) -> Option<[u8; HEADER_SIZE]> {
    let length = u32::try_from(payload_len.checked_add(HEADER_SIZE)?).ok()?;
    let h = Header {
        guid: *SIGNED_PAYLOAD_GUID.as_bytes(),
        struct_version: STRUCT_VERSION.into(),
        length: length.into(),
        payload_version: payload_version.into(),
        payload_svn: payload_svn.into(),
        signing_algorithm: algorithm.code().into(),
        reserved: 0.into(),
    };
    let mut out = [0; HEADER_SIZE];
    out.copy_from_slice(h.as_bytes());
    Some(out)
}

/// Why the enrolled key record is not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordError {
    /// Fewer than 96 bytes were given.
    TooShort(usize),
    /// Not all zero and not starting with [`ENROLLED_KEY_GUID`].
    Guid,
    /// `struct_version` is not 1.
    Version(u32),
    /// `length` is not 96.
    Length(u32),
    /// `hash_algorithm` is not 1 (SHA-384).
    HashAlgorithm(u32),
    /// `key_algorithm` is not one td-shim implements.
    KeyAlgorithm(u32),
    /// `reserved` is not 0.
    Reserved(u64),
}

impl core::fmt::Display for RecordError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            RecordError::TooShort(n) => {
                write!(f, "enrolled key record: {n} bytes, needs {RECORD_SIZE}")
            }
            RecordError::Guid => write!(f, "enrolled key record: neither empty nor a record"),
            RecordError::Version(v) => {
                write!(f, "enrolled key record: version {v} is not supported (1)")
            }
            RecordError::Length(l) => {
                write!(f, "enrolled key record: length {l} is not {RECORD_SIZE}")
            }
            RecordError::HashAlgorithm(a) => {
                write!(
                    f,
                    "enrolled key record: hash algorithm {a} is not SHA-384 (1)"
                )
            }
            RecordError::KeyAlgorithm(a) => write!(
                f,
                "enrolled key record: key algorithm {a} is not supported (1 = ecdsa-p384-sha384)"
            ),
            RecordError::Reserved(r) => {
                write!(f, "enrolled key record: reserved field is {r:#x}, not 0")
            }
        }
    }
}

/// An enrolled key: whose signatures a payload must carry, and the lowest SVN accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnrolledKey {
    /// The key's algorithm.
    pub algorithm: Algorithm,
    /// SHA-384 of the public key's trailer encoding (X ‖ Y for ECDSA P-384).
    pub key_hash: [u8; DIGEST_SIZE],
    /// Payloads with a lower SVN are refused.
    pub min_svn: u64,
}

impl EnrolledKey {
    /// Reads the record from its 96 bytes: `Ok(None)` when all are zero (no key enrolled).
    pub fn parse(bytes: &[u8]) -> Result<Option<Self>, RecordError> {
        let raw = bytes
            .get(..RECORD_SIZE)
            .ok_or(RecordError::TooShort(bytes.len()))?;
        if raw.iter().all(|&b| b == 0) {
            return Ok(None);
        }
        let r = Record::read_from_bytes(raw).map_err(|_| RecordError::TooShort(bytes.len()))?;
        if r.guid != *ENROLLED_KEY_GUID.as_bytes() {
            return Err(RecordError::Guid);
        }
        if r.struct_version.get() != STRUCT_VERSION {
            return Err(RecordError::Version(r.struct_version.get()));
        }
        if r.length.get() != RECORD_SIZE as u32 {
            return Err(RecordError::Length(r.length.get()));
        }
        if r.hash_algorithm.get() != 1 {
            return Err(RecordError::HashAlgorithm(r.hash_algorithm.get()));
        }
        let algorithm = Algorithm::from_code(r.key_algorithm.get())
            .ok_or(RecordError::KeyAlgorithm(r.key_algorithm.get()))?;
        if r.reserved.get() != 0 {
            return Err(RecordError::Reserved(r.reserved.get()));
        }
        Ok(Some(EnrolledKey {
            algorithm,
            key_hash: r.key_hash,
            min_svn: r.min_svn.get(),
        }))
    }

    /// The record's 96 bytes.
    pub fn to_bytes(&self) -> [u8; RECORD_SIZE] {
        let r = Record {
            guid: *ENROLLED_KEY_GUID.as_bytes(),
            struct_version: STRUCT_VERSION.into(),
            length: (RECORD_SIZE as u32).into(),
            hash_algorithm: 1.into(),
            key_algorithm: self.algorithm.code().into(),
            min_svn: self.min_svn.into(),
            reserved: 0.into(),
            key_hash: self.key_hash,
        };
        let mut out = [0; RECORD_SIZE];
        out.copy_from_slice(r.as_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    fn signed(payload: &[u8], svn: u64) -> Vec<u8> {
        let mut f = payload.to_vec();
        f.extend_from_slice(&[0x11; 96]);
        f.extend_from_slice(&[0x22; 96]);
        f.extend_from_slice(&header(payload.len(), 7, svn, Algorithm::EcdsaP384Sha384).unwrap());
        f
    }

    #[test]
    fn a_signed_file_splits_into_its_parts() {
        let f = signed(b"payload bytes", 3);
        assert!(is_signed(&f));
        let s = SignedPayload::parse(&f).unwrap();
        assert_eq!(s.payload, b"payload bytes");
        assert_eq!(s.public_key, &[0x11; 96][..]);
        assert_eq!(s.signature, &[0x22; 96][..]);
        assert_eq!(s.payload_svn, 3);
        assert_eq!(s.payload_version, 7);
        assert_eq!(s.algorithm, Algorithm::EcdsaP384Sha384);
        assert_eq!(&s.header[..], &f[f.len() - 48..]);
        // Upstream's length: header plus payload.
        assert_eq!(
            u32::from_le_bytes(s.header[0x14..0x18].try_into().unwrap()),
            48 + 13
        );
    }

    #[test]
    fn an_empty_payload_is_still_a_signed_file() {
        let f = signed(b"", 0);
        assert_eq!(SignedPayload::parse(&f).unwrap().payload, b"");
    }

    #[test]
    fn every_header_field_is_checked() {
        let f = signed(b"abc", 1);
        let at = f.len() - 48;
        let with = |off: usize, bytes: &[u8]| {
            let mut g = f.clone();
            g[at + off..at + off + bytes.len()].copy_from_slice(bytes);
            SignedPayload::parse(&g).unwrap_err()
        };
        assert_eq!(with(0, &[0]), SignedError::NotSigned);
        assert_eq!(with(0x10, &2u32.to_le_bytes()), SignedError::Version(2));
        assert_eq!(with(0x28, &2u32.to_le_bytes()), SignedError::Algorithm(2));
        assert_eq!(with(0x2C, &1u32.to_le_bytes()), SignedError::Reserved(1));
        assert_eq!(with(0x14, &47u32.to_le_bytes()), SignedError::Length(47));
        assert_eq!(
            with(0x14, &52u32.to_le_bytes()),
            SignedError::Size(f.len(), 52 + 192)
        );
        let mut longer = f.clone();
        longer.insert(0, 0);
        assert!(matches!(
            SignedPayload::parse(&longer),
            Err(SignedError::Size(..))
        ));
        assert_eq!(SignedPayload::parse(&f[..47]), Err(SignedError::NotSigned));
        assert!(!is_signed(b"short"));
    }

    #[test]
    fn an_unsigned_file_is_not_signed() {
        let f = [0x7fu8; 4096];
        assert!(!is_signed(&f));
        assert_eq!(SignedPayload::parse(&f), Err(SignedError::NotSigned));
    }

    #[test]
    fn a_header_for_more_than_4_gib_is_refused() {
        assert!(header(u32::MAX as usize, 0, 0, Algorithm::EcdsaP384Sha384).is_none());
        assert!(header(u32::MAX as usize - 48, 0, 0, Algorithm::EcdsaP384Sha384).is_some());
    }

    #[test]
    fn the_record_round_trips_and_zero_means_none() {
        let k = EnrolledKey {
            algorithm: Algorithm::EcdsaP384Sha384,
            key_hash: [0xAB; 48],
            min_svn: 0x0102_0304_0506_0708,
        };
        let b = k.to_bytes();
        assert_eq!(&b[..16], ENROLLED_KEY_GUID.as_bytes());
        assert_eq!(&b[0x20..0x28], &0x0102_0304_0506_0708u64.to_le_bytes());
        assert_eq!(EnrolledKey::parse(&b), Ok(Some(k)));
        assert_eq!(EnrolledKey::parse(&[0; 96]), Ok(None));
        assert_eq!(EnrolledKey::parse(&[0; 95]), Err(RecordError::TooShort(95)));
    }

    #[test]
    fn a_damaged_record_is_an_error_not_no_key() {
        let b = EnrolledKey {
            algorithm: Algorithm::EcdsaP384Sha384,
            key_hash: [1; 48],
            min_svn: 0,
        }
        .to_bytes();
        let with = |off: usize, bytes: &[u8]| {
            let mut g = b;
            g[off..off + bytes.len()].copy_from_slice(bytes);
            EnrolledKey::parse(&g).unwrap_err()
        };
        assert_eq!(with(0, &[0]), RecordError::Guid);
        assert_eq!(with(0x10, &2u32.to_le_bytes()), RecordError::Version(2));
        assert_eq!(with(0x14, &95u32.to_le_bytes()), RecordError::Length(95));
        assert_eq!(
            with(0x18, &2u32.to_le_bytes()),
            RecordError::HashAlgorithm(2)
        );
        assert_eq!(
            with(0x1C, &2u32.to_le_bytes()),
            RecordError::KeyAlgorithm(2)
        );
        assert_eq!(with(0x28, &[1]), RecordError::Reserved(1));
        // One stray non-zero byte in an otherwise empty record.
        let mut stray = [0u8; 96];
        stray[50] = 1;
        assert_eq!(EnrolledKey::parse(&stray), Err(RecordError::Guid));
    }

    #[test]
    fn the_record_sits_in_the_measured_metadata_page() {
        assert_eq!(enrolled_key_image_offset(), 0xF00C00);
        assert!(crate::layout::IMAGE_BFV.contains_range(ENROLLED_KEY_BASE, RECORD_SIZE as u64));
    }

    proptest! {
        #[test]
        fn parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = SignedPayload::parse(&bytes);
            let _ = EnrolledKey::parse(&bytes);
            let _ = is_signed(&bytes);
        }

        #[test]
        fn any_payload_round_trips(payload in proptest::collection::vec(any::<u8>(), 0..300), svn: u64) {
            let f = signed(&payload, svn);
            let s = SignedPayload::parse(&f).unwrap();
            prop_assert_eq!(s.payload, &payload[..]);
            prop_assert_eq!(s.payload_svn, svn);
        }
    }
}
