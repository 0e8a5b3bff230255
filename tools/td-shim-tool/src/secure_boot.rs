//! The host side of secure boot: `keygen`, `sign`, `enroll` and `verify-signature`.
//!
//! The formats are [`td_layout::signed`] (the signed-payload trailer and the enrolled key record);
//! the decision is [`td_shim::secure_boot::verify`], the function the firmware runs, which
//! `verify-signature` calls unchanged so that the host answers as the firmware will. Keys are
//! ECDSA P-384. This module generates them and signs with `ring`; it reads the key files other
//! tools write (OpenSSL's PKCS#8 and SEC1, PEM or DER; SubjectPublicKeyInfo) with a small DER
//! reader of its own, so that a key on another curve or of another algorithm is named in the
//! error instead of being "rejected".
//!
//! What is signed is the message of `td_shim::secure_boot`: the 48-byte header, then the
//! payload's SHA-384 (a bzImage's loader fields normalized first,
//! [`td_shim::secure_boot::payload_digest`]), 96 bytes in all. `ring` hashes the message itself,
//! so [`signed_message`] builds those exact bytes; `sign --print-message` writes them for a
//! signer outside this tool (an HSM, `openssl dgst -sha384 -sign`).
//!
//! Every input here (key files, signatures, payloads, images) is untrusted: errors are typed,
//! nothing panics.

use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P384_SHA384_FIXED_SIGNING};
use serde::Serialize;
use std::fmt::Write as _;
use td_layout::layout::IMAGE_SIZE;
use td_layout::payload::PAYLOAD_TABLE_MAGIC;
use td_layout::signed::{
    self, enrolled_key_image_offset, Algorithm, EnrolledKey, RecordError, SignedPayload,
    HEADER_SIZE, RECORD_SIZE,
};
use td_shim::secure_boot::{self as firmware, Refused};

use crate::files::Limit;

pub mod cli;

/// Bytes of a P-384 public key in the trailer (X ‖ Y) and of a signature (R ‖ S).
pub const P384_KEY_SIZE: usize = 96;
/// Bytes of a P-384 scalar or coordinate.
const SCALAR_SIZE: usize = 48;

/// A key file: PEM or DER, a few hundred bytes.
pub const KEY_FILE: Limit = Limit {
    what: "key file",
    max: 64 << 10,
    regular_only: false,
    rule: "a P-384 key file is a few hundred bytes; at most 64 KiB is read",
};

/// A detached signature file (DER or raw R ‖ S).
pub const SIGNATURE_FILE: Limit = Limit {
    what: "signature file",
    max: 64 << 10,
    regular_only: false,
    rule: "an ECDSA P-384 signature is at most 104 bytes; at most 64 KiB is read",
};

/// A payload to sign, or a signed payload: the header's 32-bit length covers header and payload.
pub const PAYLOAD_FILE: Limit = Limit {
    what: "payload",
    max: u32::MAX as u64,
    regular_only: false,
    rule: "the signature header's 32-bit length covers the header and the payload: under 4 GiB",
};

/// Why a key, a signature, a payload or an image was refused.
#[derive(Debug, thiserror::Error)]
pub enum SecureBootError {
    /// The key file is not a key this tool reads (the message says what it is instead).
    #[error("key: {0}")]
    Key(String),
    /// An EC key on another curve than P-384.
    #[error(
        "key: the key is on curve {0}; td-shim secure boot uses P-384 (secp384r1): make one with \
         `td-shim-tool keygen` or `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384`"
    )]
    Curve(String),
    /// A password-protected private key.
    #[error(
        "key: the private key is encrypted; decrypt it first (openssl pkcs8 -in KEY -out PLAIN), \
         or sign with --print-message and your own signer"
    )]
    Encrypted,
    /// A private key was needed and a public key was given.
    #[error("key: this is a public key; signing needs the private key")]
    NotPrivate,
    /// The system's random number generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// The input already ends in a signature trailer.
    #[error(
        "the input is already signed (it ends in a signature header); sign the unsigned payload"
    )]
    AlreadySigned,
    /// The payload is too large for the header's 32-bit length.
    #[error("the payload is {0} bytes: the signature header's length must fit 32 bits")]
    TooLarge(usize),
    /// A detached signature that is neither DER nor 96 raw bytes.
    #[error("signature: {0}")]
    Signature(String),
    /// The signed file does not verify: never written.
    #[error("the signed file does not verify ({0}); nothing written")]
    SelfCheck(Refused),
    /// The image is not a td-shim image.
    #[error("image: {0}")]
    Image(String),
    /// The image's enrolled key record is damaged.
    #[error(
        "image: {0} (the firmware refuses to boot such an image; the bytes at file offset \
         0xF00C00 are neither zero nor a valid record: rebuild the image with `build`)"
    )]
    Record(RecordError),
}

type Result<T> = std::result::Result<T, SecureBootError>;

fn key_err(m: impl Into<String>) -> SecureBootError {
    SecureBootError::Key(m.into())
}

/// A minimal DER reader and writer: definite lengths only, in their shortest form, every length
/// checked against the bytes left.
mod der {
    pub const INTEGER: u8 = 0x02;
    pub const BIT_STRING: u8 = 0x03;
    pub const OCTET_STRING: u8 = 0x04;
    pub const OID: u8 = 0x06;
    pub const SEQUENCE: u8 = 0x30;
    pub const CONTEXT_0: u8 = 0xA0;
    pub const CONTEXT_1: u8 = 0xA1;

    /// Reads TLVs from a byte string.
    pub struct Reader<'a>(&'a [u8]);

    impl<'a> Reader<'a> {
        pub fn new(bytes: &'a [u8]) -> Self {
            Reader(bytes)
        }

        pub fn is_empty(&self) -> bool {
            self.0.is_empty()
        }

        pub fn peek(&self) -> Option<u8> {
            self.0.first().copied()
        }

        /// The next TLV's tag and contents.
        pub fn read(&mut self) -> Result<(u8, &'a [u8]), &'static str> {
            let (&tag, rest) = self.0.split_first().ok_or("truncated DER")?;
            if tag & 0x1F == 0x1F {
                return Err("DER tag in long form");
            }
            let (&first, mut rest) = rest.split_first().ok_or("truncated DER length")?;
            let len = match first {
                0..=0x7F => usize::from(first),
                0x81 => {
                    let (&b, r) = rest.split_first().ok_or("truncated DER length")?;
                    rest = r;
                    if b < 0x80 {
                        return Err("DER length not in its shortest form");
                    }
                    usize::from(b)
                }
                0x82 => {
                    let b = rest.get(..2).ok_or("truncated DER length")?;
                    rest = &rest[2..];
                    let n = usize::from(u16::from_be_bytes([b[0], b[1]]));
                    if n < 0x100 {
                        return Err("DER length not in its shortest form");
                    }
                    n
                }
                0x80 => return Err("indefinite BER length (not DER)"),
                _ => return Err("DER length too large for a key"),
            };
            let value = rest
                .get(..len)
                .ok_or("DER length past the end of the data")?;
            self.0 = &rest[len..];
            Ok((tag, value))
        }

        /// The next TLV's contents, which must have `tag`.
        pub fn expect(&mut self, tag: u8, what: &'static str) -> Result<&'a [u8], &'static str> {
            match self.read()? {
                (t, v) if t == tag => Ok(v),
                _ => Err(what),
            }
        }

        /// The next TLV's contents if it has `tag`.
        pub fn optional(&mut self, tag: u8) -> Result<Option<&'a [u8]>, &'static str> {
            if self.peek() == Some(tag) {
                Ok(Some(self.read()?.1))
            } else {
                Ok(None)
            }
        }
    }

    /// The contents of `bytes`, which must be exactly one TLV with `tag`.
    pub fn whole<'a>(
        bytes: &'a [u8],
        tag: u8,
        what: &'static str,
    ) -> Result<&'a [u8], &'static str> {
        let mut r = Reader::new(bytes);
        let v = r.expect(tag, what)?;
        if !r.is_empty() {
            return Err("data after the DER structure");
        }
        Ok(v)
    }

    /// A TLV.
    pub fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let n = contents.len();
        if n < 0x80 {
            out.push(n as u8);
        } else if n < 0x100 {
            out.extend_from_slice(&[0x81, n as u8]);
        } else {
            out.push(0x82);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        out.extend_from_slice(contents);
        out
    }

    /// A non-negative INTEGER's magnitude, without leading zeros; refuses a negative or
    /// non-minimal encoding.
    pub fn unsigned(contents: &[u8]) -> Result<&[u8], &'static str> {
        match contents {
            [] => Err("empty DER INTEGER"),
            [b, ..] if b & 0x80 != 0 => Err("negative DER INTEGER"),
            [0, b, ..] if b & 0x80 == 0 => Err("DER INTEGER not in its shortest form"),
            [0, rest @ ..] => Ok(rest),
            _ => Ok(contents),
        }
    }

    /// An INTEGER holding `magnitude` (big-endian, any leading zeros).
    pub fn integer(magnitude: &[u8]) -> Vec<u8> {
        let m = match magnitude.iter().position(|&b| b != 0) {
            Some(i) => &magnitude[i..],
            None => &[0u8][..],
        };
        let mut v = Vec::with_capacity(m.len() + 1);
        if m[0] & 0x80 != 0 {
            v.push(0);
        }
        v.extend_from_slice(m);
        tlv(INTEGER, &v)
    }
}

/// id-ecPublicKey (1.2.840.10045.2.1), contents.
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
/// secp384r1 (1.3.132.0.34), contents.
const OID_SECP384R1: &[u8] = &[0x2B, 0x81, 0x04, 0x00, 0x22];

/// A name for a curve OID in messages.
fn curve_name(oid: &[u8]) -> String {
    match oid {
        [0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07] => "P-256 (prime256v1)".into(),
        [0x2B, 0x81, 0x04, 0x00, 0x23] => "P-521 (secp521r1)".into(),
        [0x2B, 0x81, 0x04, 0x00, 0x0A] => "secp256k1".into(),
        [0x2B, 0x24, 0x03, 0x03, 0x02, 0x08, 0x01, 0x01, 0x0B] => "brainpoolP384r1".into(),
        _ => format!("with OID contents {}", hex::encode(oid)),
    }
}

/// A name for a public-key algorithm OID in messages.
fn algorithm_name(oid: &[u8]) -> String {
    match oid {
        [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01] => "RSA".into(),
        [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0A] => "RSA-PSS".into(),
        [0x2B, 0x65, 0x70] => "Ed25519".into(),
        [0x2B, 0x65, 0x71] => "Ed448".into(),
        _ => format!("OID contents {}", hex::encode(oid)),
    }
}

fn require_p384(curve: &[u8]) -> Result<()> {
    if curve == OID_SECP384R1 {
        Ok(())
    } else {
        Err(SecureBootError::Curve(curve_name(curve)))
    }
}

/// An AlgorithmIdentifier's contents: id-ecPublicKey with a named curve, the curve's OID.
fn ec_algorithm(contents: &[u8]) -> Result<&[u8]> {
    let mut r = der::Reader::new(contents);
    let alg = r
        .expect(der::OID, "the algorithm identifier has no OID")
        .map_err(key_err)?;
    if alg != OID_EC_PUBLIC_KEY {
        return Err(key_err(format!(
            "an {} key, not an EC key; td-shim secure boot uses ECDSA P-384",
            algorithm_name(alg)
        )));
    }
    let curve = r
        .expect(
            der::OID,
            "the EC key's parameters are not a named curve (explicit parameters are not supported)",
        )
        .map_err(key_err)?;
    Ok(curve)
}

/// A public point (SEC1: 0x04 ‖ X ‖ Y, or compressed 0x02/0x03 ‖ X) as the trailer's X ‖ Y,
/// checked to be on P-384.
pub fn point_to_xy(point: &[u8]) -> Result<[u8; P384_KEY_SIZE]> {
    match (point.first(), point.len()) {
        (Some(0x04), 97) | (Some(0x02 | 0x03), 49) => {}
        _ => {
            return Err(key_err(format!(
            "a {}-byte public point is not a P-384 point (97 bytes uncompressed, 49 compressed)",
            point.len()
        )))
        }
    }
    let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(point)
        .map_err(|_| key_err("the public key is not a point of P-384"))?;
    let uncompressed = key.to_sec1_point(false);
    let mut xy = [0u8; P384_KEY_SIZE];
    xy.copy_from_slice(uncompressed.as_bytes().get(1..).unwrap_or_default());
    Ok(xy)
}

/// A private key: the ring key pair that signs, and the public key X ‖ Y.
pub struct SigningKey {
    pair: EcdsaKeyPair,
    public: [u8; P384_KEY_SIZE],
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("public", &hex::encode(self.public))
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// The public key, X ‖ Y.
    pub fn public(&self) -> &[u8; P384_KEY_SIZE] {
        &self.public
    }

    /// From the private scalar (any length up to 48 bytes, big-endian) and, if the file had it,
    /// the public point; a missing public key is derived.
    fn from_scalar(d: &[u8], point: Option<&[u8]>) -> Result<Self> {
        if d.is_empty() || d.len() > SCALAR_SIZE {
            return Err(key_err(format!(
                "a {}-byte private scalar is not a P-384 private key (48 bytes)",
                d.len()
            )));
        }
        let mut scalar = [0u8; SCALAR_SIZE];
        scalar[SCALAR_SIZE - d.len()..].copy_from_slice(d);
        let public = match point {
            Some(p) => point_to_xy(p)?,
            None => {
                let k = p384::ecdsa::SigningKey::from_slice(&scalar)
                    .map_err(|_| key_err("the private scalar is not in [1, n) of P-384"))?;
                let p = k.verifying_key().to_sec1_point(false);
                point_to_xy(p.as_bytes())?
            }
        };
        let mut uncompressed = [0u8; 97];
        uncompressed[0] = 0x04;
        uncompressed[1..].copy_from_slice(&public);
        let pair = EcdsaKeyPair::from_private_key_and_public_key(
            &ECDSA_P384_SHA384_FIXED_SIGNING,
            &scalar,
            &uncompressed,
            &SystemRandom::new(),
        )
        .map_err(|e| {
            key_err(format!(
                "the private and public keys in the file are not a P-384 key pair ({e})"
            ))
        })?;
        Ok(SigningKey { pair, public })
    }

    /// Signs `message` (ring hashes it with SHA-384): R ‖ S.
    pub fn sign(&self, message: &[u8]) -> Result<[u8; P384_KEY_SIZE]> {
        let sig = self
            .pair
            .sign(&SystemRandom::new(), message)
            .map_err(|_| SecureBootError::Random)?;
        sig.as_ref().try_into().map_err(|_| {
            SecureBootError::Signature("ring returned a signature of another size".into())
        })
    }
}

/// What a key file holds.
#[derive(Debug)]
pub enum Key {
    /// A private key (its public key included).
    Private(Box<SigningKey>),
    /// A public key, X ‖ Y.
    Public([u8; P384_KEY_SIZE]),
}

impl Key {
    /// The public key, X ‖ Y.
    pub fn public(&self) -> &[u8; P384_KEY_SIZE] {
        match self {
            Key::Private(k) => k.public(),
            Key::Public(p) => p,
        }
    }
}

/// An SEC1 ECPrivateKey (RFC 5915); `curve` is the PKCS#8 wrapper's, if any.
fn sec1_private_key(bytes: &[u8], curve: Option<&[u8]>) -> Result<SigningKey> {
    let body =
        der::whole(bytes, der::SEQUENCE, "an EC private key is a DER SEQUENCE").map_err(key_err)?;
    let mut r = der::Reader::new(body);
    let version = r
        .expect(der::INTEGER, "the EC private key has no version")
        .map_err(key_err)?;
    if version != [1] {
        return Err(key_err("the EC private key's version is not 1 (RFC 5915)"));
    }
    let d = r
        .expect(
            der::OCTET_STRING,
            "the EC private key has no private scalar",
        )
        .map_err(key_err)?;
    let params = r.optional(der::CONTEXT_0).map_err(key_err)?;
    let public = r.optional(der::CONTEXT_1).map_err(key_err)?;
    let inner_curve = params
        .map(|p| {
            der::whole(
                p,
                der::OID,
                "the EC private key's parameters are not a named curve",
            )
        })
        .transpose()
        .map_err(key_err)?;
    match (curve, inner_curve) {
        (Some(a), Some(b)) if a != b => {
            return Err(key_err(
                "the PKCS#8 wrapper and the EC private key name different curves",
            ))
        }
        (Some(c), _) | (None, Some(c)) => require_p384(c)?,
        (None, None) => return Err(key_err("the EC private key names no curve")),
    }
    let point = public
        .map(|p| {
            let bits = der::whole(
                p,
                der::BIT_STRING,
                "the EC private key's public key is not a BIT STRING",
            )?;
            match bits.split_first() {
                Some((0, point)) => Ok(point),
                _ => Err("the EC private key's public key BIT STRING has unused bits"),
            }
        })
        .transpose()
        .map_err(key_err)?;
    SigningKey::from_scalar(d, point)
}

/// A PKCS#8 PrivateKeyInfo (RFC 5208) or OneAsymmetricKey (RFC 5958) holding an EC key.
fn pkcs8_private_key(bytes: &[u8]) -> Result<SigningKey> {
    let body =
        der::whole(bytes, der::SEQUENCE, "a PKCS#8 key is a DER SEQUENCE").map_err(key_err)?;
    let mut r = der::Reader::new(body);
    let version = r
        .expect(der::INTEGER, "the PKCS#8 key has no version")
        .map_err(key_err)?;
    if version != [0] && version != [1] {
        return Err(key_err("the PKCS#8 key's version is not 0 or 1"));
    }
    let alg = r
        .expect(der::SEQUENCE, "the PKCS#8 key has no algorithm identifier")
        .map_err(key_err)?;
    let curve = ec_algorithm(alg)?;
    require_p384(curve)?;
    let inner = r
        .expect(der::OCTET_STRING, "the PKCS#8 key has no private key")
        .map_err(key_err)?;
    sec1_private_key(inner, Some(curve))
}

/// A SubjectPublicKeyInfo (RFC 5480) holding a P-384 point.
fn spki_public_key(bytes: &[u8]) -> Result<[u8; P384_KEY_SIZE]> {
    let body =
        der::whole(bytes, der::SEQUENCE, "a public key is a DER SEQUENCE").map_err(key_err)?;
    let mut r = der::Reader::new(body);
    let alg = r
        .expect(der::SEQUENCE, "the public key has no algorithm identifier")
        .map_err(key_err)?;
    require_p384(ec_algorithm(alg)?)?;
    let bits = r
        .expect(der::BIT_STRING, "the public key has no BIT STRING")
        .map_err(key_err)?;
    if !r.is_empty() {
        return Err(key_err("data after the public key's BIT STRING"));
    }
    match bits.split_first() {
        Some((0, point)) => point_to_xy(point),
        _ => Err(key_err("the public key's BIT STRING has unused bits")),
    }
}

/// The SubjectPublicKeyInfo DER of a P-384 public key (uncompressed point).
pub fn spki_der(public: &[u8; P384_KEY_SIZE]) -> Vec<u8> {
    let mut alg = der::tlv(der::OID, OID_EC_PUBLIC_KEY);
    alg.extend(der::tlv(der::OID, OID_SECP384R1));
    let mut point = vec![0u8, 0x04];
    point.extend_from_slice(public);
    let mut body = der::tlv(der::SEQUENCE, &alg);
    body.extend(der::tlv(der::BIT_STRING, &point));
    der::tlv(der::SEQUENCE, &body)
}

/// One PEM block: its label and its DER bytes.
struct Pem {
    label: String,
    der: Vec<u8>,
}

/// The PEM blocks of `text`, in order. `Ok(None)` if it has no "-----BEGIN " line at all.
fn pem_blocks(text: &[u8]) -> Result<Option<Vec<Pem>>> {
    use base64::Engine as _;
    let Ok(text) = std::str::from_utf8(text) else {
        return Ok(None);
    };
    if !text.contains("-----BEGIN ") {
        return Ok(None);
    }
    let mut blocks = Vec::new();
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let mut b64 = String::new();
        let mut closed = false;
        for line in lines.by_ref() {
            if line == end {
                closed = true;
                break;
            }
            if line.contains(':') {
                // An RFC 1421 header: OpenSSL's "Proc-Type: 4,ENCRYPTED" and "DEK-Info".
                if line.starts_with("Proc-Type:") && line.contains("ENCRYPTED") {
                    return Err(SecureBootError::Encrypted);
                }
                continue;
            }
            b64.push_str(line);
        }
        if !closed {
            return Err(key_err(format!("PEM block {label:?} has no END line")));
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64.as_bytes())
            .map_err(|e| key_err(format!("PEM block {label:?}: bad base64 ({e})")))?;
        blocks.push(Pem {
            label: label.to_owned(),
            der,
        });
    }
    Ok(Some(blocks))
}

/// PEM text for `der` under `label`, 64 characters a line.
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    let _ = writeln!(out, "-----END {label}-----");
    out
}

/// Reads a key file: a private key (PKCS#8 "PRIVATE KEY" or SEC1 "EC PRIVATE KEY", PEM or DER)
/// or a public key (SubjectPublicKeyInfo "PUBLIC KEY", PEM or DER), P-384 only.
pub fn read_key(bytes: &[u8]) -> Result<Key> {
    if let Some(blocks) = pem_blocks(bytes)? {
        for b in &blocks {
            return match b.label.as_str() {
                "PRIVATE KEY" => pkcs8_private_key(&b.der).map(|k| Key::Private(Box::new(k))),
                "EC PRIVATE KEY" => {
                    sec1_private_key(&b.der, None).map(|k| Key::Private(Box::new(k)))
                }
                "PUBLIC KEY" => spki_public_key(&b.der).map(Key::Public),
                "ENCRYPTED PRIVATE KEY" => Err(SecureBootError::Encrypted),
                // `openssl ecparam -genkey` writes the curve before the key.
                "EC PARAMETERS" => continue,
                "RSA PRIVATE KEY" | "RSA PUBLIC KEY" => {
                    Err(key_err("an RSA key; td-shim secure boot uses ECDSA P-384"))
                }
                other => Err(key_err(format!(
                    "a PEM {other:?} block is not a key (expected PRIVATE KEY, EC PRIVATE KEY or \
                     PUBLIC KEY)"
                ))),
            };
        }
        return Err(key_err("the PEM file holds no key"));
    }
    // DER: the first element of the outer SEQUENCE tells which structure it is.
    let body = der::whole(
        bytes,
        der::SEQUENCE,
        "neither PEM nor a DER key (PKCS#8, SEC1 or SubjectPublicKeyInfo)",
    )
    .map_err(key_err)?;
    let mut r = der::Reader::new(body);
    match r.read().map_err(key_err)? {
        (der::SEQUENCE, _) => spki_public_key(bytes).map(Key::Public),
        (der::INTEGER, [1]) if r.peek() == Some(der::OCTET_STRING) => {
            sec1_private_key(bytes, None).map(|k| Key::Private(Box::new(k)))
        }
        (der::INTEGER, _) => pkcs8_private_key(bytes).map(|k| Key::Private(Box::new(k))),
        _ => Err(key_err(
            "neither PEM nor a DER key (PKCS#8, SEC1 or SubjectPublicKeyInfo)",
        )),
    }
}

/// Reads a private key file (see [`read_key`]).
pub fn read_private_key(bytes: &[u8]) -> Result<SigningKey> {
    match read_key(bytes)? {
        Key::Private(k) => Ok(*k),
        Key::Public(_) => Err(SecureBootError::NotPrivate),
    }
}

/// A new key pair: the private key's PKCS#8 DER (ring's, public key included) and X ‖ Y.
pub fn generate() -> Result<(Vec<u8>, [u8; P384_KEY_SIZE])> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &rng)
        .map_err(|_| SecureBootError::Random)?;
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, pkcs8.as_ref(), &rng)
        .map_err(|e| key_err(format!("ring cannot read the key it generated ({e})")))?;
    let public = point_to_xy(pair.public_key().as_ref())?;
    Ok((pkcs8.as_ref().to_vec(), public))
}

/// The header of a signature over `payload`.
pub fn header_for(payload: &[u8], version: u64, svn: u64) -> Result<[u8; HEADER_SIZE]> {
    if signed::is_signed(payload) {
        return Err(SecureBootError::AlreadySigned);
    }
    signed::header(payload.len(), version, svn, Algorithm::EcdsaP384Sha384)
        .ok_or(SecureBootError::TooLarge(payload.len()))
}

/// The exact bytes that are signed: the header, then the payload's SHA-384 with a bzImage's
/// loader fields normalized ([`td_shim::secure_boot::message`] and
/// [`td_shim::secure_boot::payload_digest`]), 96 bytes. Their SHA-384 is
/// [`td_shim::secure_boot::message_digest`].
pub fn signed_message(header: &[u8; HEADER_SIZE], payload: &[u8]) -> Vec<u8> {
    firmware::message(header, &firmware::payload_digest(payload)).to_vec()
}

/// The message to sign for `payload` with this version and SVN (`sign --print-message`).
pub fn message_to_sign(payload: &[u8], version: u64, svn: u64) -> Result<Vec<u8>> {
    Ok(signed_message(&header_for(payload, version, svn)?, payload))
}

/// The enrolled key that accepts signatures by `public` (any SVN from `min_svn`).
pub fn enrolled_key(public: &[u8; P384_KEY_SIZE], min_svn: u64) -> EnrolledKey {
    EnrolledKey {
        algorithm: Algorithm::EcdsaP384Sha384,
        key_hash: firmware::key_hash(public),
        min_svn,
    }
}

/// `payload ‖ public ‖ signature ‖ header`, checked with the firmware's verification before it
/// is returned.
fn assemble(
    payload: &[u8],
    public: &[u8; P384_KEY_SIZE],
    signature: &[u8; P384_KEY_SIZE],
    header: &[u8; HEADER_SIZE],
) -> Result<Vec<u8>> {
    let mut file = Vec::with_capacity(payload.len() + 2 * P384_KEY_SIZE + HEADER_SIZE);
    file.extend_from_slice(payload);
    file.extend_from_slice(public);
    file.extend_from_slice(signature);
    file.extend_from_slice(header);
    firmware::verify(&file, &enrolled_key(public, 0)).map_err(SecureBootError::SelfCheck)?;
    Ok(file)
}

/// Signs `payload` with `key`: the signed file, verified by the firmware's function.
pub fn sign(key: &SigningKey, payload: &[u8], version: u64, svn: u64) -> Result<Vec<u8>> {
    let header = header_for(payload, version, svn)?;
    let signature = key.sign(&signed_message(&header, payload))?;
    assemble(payload, key.public(), &signature, &header)
}

/// A detached signature as R ‖ S: 96 raw bytes, or DER ECDSA-Sig-Value (what `openssl dgst
/// -sign` writes).
pub fn parse_signature(bytes: &[u8]) -> Result<[u8; P384_KEY_SIZE]> {
    let sig_err = |m: &str| SecureBootError::Signature(m.to_owned());
    if bytes.len() == P384_KEY_SIZE && bytes.first() != Some(&der::SEQUENCE) {
        let mut out = [0u8; P384_KEY_SIZE];
        out.copy_from_slice(bytes);
        return Ok(out);
    }
    let der_result = (|| -> std::result::Result<[u8; P384_KEY_SIZE], &'static str> {
        let body = der::whole(bytes, der::SEQUENCE, "not a DER SEQUENCE")?;
        let mut r = der::Reader::new(body);
        let mut out = [0u8; P384_KEY_SIZE];
        for half in out.chunks_mut(SCALAR_SIZE) {
            let v = der::unsigned(r.expect(der::INTEGER, "R or S is not an INTEGER")?)?;
            if v.len() > SCALAR_SIZE {
                return Err("R or S is longer than 48 bytes");
            }
            half[SCALAR_SIZE - v.len()..].copy_from_slice(v);
        }
        if !r.is_empty() {
            return Err("data after R and S");
        }
        Ok(out)
    })();
    match der_result {
        Ok(sig) => Ok(sig),
        // 96 bytes that start like a SEQUENCE but are not one: raw R ‖ S after all.
        Err(_) if bytes.len() == P384_KEY_SIZE => {
            let mut out = [0u8; P384_KEY_SIZE];
            out.copy_from_slice(bytes);
            Ok(out)
        }
        Err(e) => Err(sig_err(&format!(
            "{} bytes, neither 96 raw bytes (R ‖ S) nor a DER ECDSA signature ({e})",
            bytes.len()
        ))),
    }
}

/// The DER ECDSA-Sig-Value of R ‖ S.
pub fn signature_der(sig: &[u8; P384_KEY_SIZE]) -> Vec<u8> {
    let mut body = der::integer(&sig[..SCALAR_SIZE]);
    body.extend(der::integer(&sig[SCALAR_SIZE..]));
    der::tlv(der::SEQUENCE, &body)
}

/// Attaches a signature made elsewhere over [`message_to_sign`]`(payload, version, svn)`: the
/// signed file, verified by the firmware's function (a signature over another message, by
/// another key or with another SVN or version is refused).
pub fn attach(
    public: &[u8; P384_KEY_SIZE],
    payload: &[u8],
    version: u64,
    svn: u64,
    signature: &[u8],
) -> Result<Vec<u8>> {
    let header = header_for(payload, version, svn)?;
    let sig = parse_signature(signature)?;
    assemble(payload, public, &sig, &header)
}

/// Checks that `image` is a td-shim image (16 MiB, starting with the payload table) and returns
/// the enrolled key record's bytes.
fn record_area(image: &[u8]) -> Result<&[u8]> {
    if image.len() as u64 != IMAGE_SIZE {
        return Err(SecureBootError::Image(format!(
            "{} bytes: a td-shim image is {IMAGE_SIZE} bytes (16 MiB)",
            image.len()
        )));
    }
    if !image.starts_with(&PAYLOAD_TABLE_MAGIC) {
        return Err(SecureBootError::Image(
            "not a td-shim image (no payload table at its start)".into(),
        ));
    }
    let at = enrolled_key_image_offset();
    image
        .get(at..at + RECORD_SIZE)
        .ok_or_else(|| SecureBootError::Image("too short for the enrolled key record".into()))
}

/// The key a td-shim image enrolls: `None` if none is.
pub fn image_key(image: &[u8]) -> Result<Option<EnrolledKey>> {
    EnrolledKey::parse(record_area(image)?).map_err(SecureBootError::Record)
}

/// Writes `key`'s record into a copy of `image` (`None`: zeros, no key). The image's current
/// record must be empty or valid (re-enrolling replaces it); returns the new image and the key
/// it enrolled before.
pub fn enroll(image: &[u8], key: Option<&EnrolledKey>) -> Result<(Vec<u8>, Option<EnrolledKey>)> {
    let previous = image_key(image)?;
    let mut out = image.to_vec();
    let at = enrolled_key_image_offset();
    let record = key.map_or([0u8; RECORD_SIZE], EnrolledKey::to_bytes);
    out[at..at + RECORD_SIZE].copy_from_slice(&record);
    Ok((out, previous))
}

/// What `inspect` reports about secure boot in a td-shim image.
#[derive(Debug, Serialize)]
pub struct EnrolledReport {
    /// Whether a key is enrolled (payloads must be signed by it).
    pub enrolled: bool,
    /// The key's algorithm.
    pub algorithm: Option<&'static str>,
    /// SHA-384 of the enrolled public key (X ‖ Y), hex.
    pub key_hash: Option<String>,
    /// The lowest payload SVN accepted.
    pub min_svn: Option<u64>,
    /// Why the record is malformed, if it is (the firmware then refuses to boot).
    pub error: Option<String>,
}

impl EnrolledReport {
    /// The report for a td-shim image's record bytes.
    pub fn of(record: &[u8]) -> Self {
        match EnrolledKey::parse(record) {
            Ok(Some(k)) => EnrolledReport {
                enrolled: true,
                algorithm: Some(k.algorithm.name()),
                key_hash: Some(hex::encode(k.key_hash)),
                min_svn: Some(k.min_svn),
                error: None,
            },
            Ok(None) => EnrolledReport {
                enrolled: false,
                algorithm: None,
                key_hash: None,
                min_svn: None,
                error: None,
            },
            Err(e) => EnrolledReport {
                enrolled: false,
                algorithm: None,
                key_hash: None,
                min_svn: None,
                error: Some(e.to_string()),
            },
        }
    }

    /// One line of text.
    pub fn to_text(&self) -> String {
        match (&self.error, &self.key_hash) {
            (Some(e), _) => format!(
                "secure boot: MALFORMED enrolled key record at file offset {:#x}: {e} (the \
                 firmware refuses to boot this image)",
                enrolled_key_image_offset()
            ),
            (None, Some(h)) => format!(
                "secure boot: key enrolled ({}), SHA-384 {h}, minimum payload SVN {}",
                self.algorithm.unwrap_or("?"),
                self.min_svn.unwrap_or(0)
            ),
            (None, None) => "secure boot: no key enrolled (payloads boot unverified)".into(),
        }
    }
}

/// What `verify-signature` reports.
#[derive(Debug, Serialize)]
pub struct VerifyReport {
    /// "boots" or "refused".
    pub verdict: &'static str,
    /// The firmware's refusal, word for word (the Display of `td_shim::secure_boot::Refused`).
    pub reason: Option<String>,
    /// The payload's size without the trailer (when the trailer parses).
    pub payload_size: Option<usize>,
    /// The payload's SVN from the header (verified only when the verdict is "boots").
    pub svn: Option<u64>,
    /// The payload's version from the header (informational).
    pub version: Option<u64>,
    /// SHA-384 of the public key in the trailer, hex.
    pub signer: Option<String>,
    /// SHA-384 of the enrolled key, hex.
    pub enrolled_key: String,
    /// The enrolled minimum SVN.
    pub min_svn: u64,
}

impl VerifyReport {
    /// Whether the firmware would boot the payload.
    pub fn boots(&self) -> bool {
        self.reason.is_none()
    }

    /// The human-readable form.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        match &self.reason {
            None => {
                let _ = writeln!(s, "verdict: boots");
            }
            Some(r) => {
                let _ = writeln!(s, "verdict: REFUSED: {r}");
            }
        }
        if let (Some(n), Some(svn), Some(v)) = (self.payload_size, self.svn, self.version) {
            let _ = writeln!(s, "payload: {n} bytes, SVN {svn}, version {v}");
        }
        if let Some(signer) = &self.signer {
            let _ = writeln!(s, "signer: SHA-384 {signer}");
        }
        let _ = writeln!(
            s,
            "enrolled: SHA-384 {}, minimum SVN {}",
            self.enrolled_key, self.min_svn
        );
        s
    }
}

/// The firmware's verdict on `file` under `enrolled`, with what the trailer says.
pub fn verify_report(file: &[u8], enrolled: &EnrolledKey) -> VerifyReport {
    let verdict = firmware::verify(file, enrolled);
    let parsed = SignedPayload::parse(file).ok();
    VerifyReport {
        verdict: if verdict.is_ok() { "boots" } else { "refused" },
        reason: verdict.as_ref().err().map(ToString::to_string),
        payload_size: parsed.map(|p| p.payload.len()),
        svn: parsed.map(|p| p.payload_svn),
        version: parsed.map(|p| p.payload_version),
        signer: parsed.map(|p| hex::encode(firmware::key_hash(p.public_key))),
        enrolled_key: hex::encode(enrolled.key_hash),
        min_svn: enrolled.min_svn,
    }
}

#[cfg(test)]
mod tests;
