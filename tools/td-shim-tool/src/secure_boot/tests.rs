//! Unit tests of the host side of secure boot. Key fixtures were made with OpenSSL 3.0
//! (`openssl ecparam -name secp384r1 -genkey`, then `openssl pkcs8 -topk8 -nocrypt`, `openssl
//! pkey -pubout`, `openssl ec -pubout -conv_form compressed`, `openssl ec -no_public`): one
//! throwaway test key in the encodings users will have.

use super::*;
use proptest::prelude::*;
use ring::signature::{UnparsedPublicKey, ECDSA_P384_SHA384_FIXED};
use sha2::{Digest, Sha384};

/// `openssl ecparam -name secp384r1 -genkey`: the curve, then the SEC1 key.
const SEC1_PEM: &str = "-----BEGIN EC PARAMETERS-----
BgUrgQQAIg==
-----END EC PARAMETERS-----
-----BEGIN EC PRIVATE KEY-----
MIGkAgEBBDASmkqOhrSKpK4u8Cv+aLUM6xmGGnOlbLctXB5ZsucUBB5USkPLaoNt
Pl89OE4J8m2gBwYFK4EEACKhZANiAASqk2195DNcKUckn/I2r843hEALUHB/mTCp
Uj2vbQ2o7kYGd2mv3eB9dJeQDBWTF+l6/TgVNDS1+9Fa2gJGxTsUw/lDissH3lDy
fgb5gVBTxdSZJgPe2aEBh9gE2bIiLcE=
-----END EC PRIVATE KEY-----
";

/// The same key as PKCS#8.
const PKCS8_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDASmkqOhrSKpK4u8Cv+
aLUM6xmGGnOlbLctXB5ZsucUBB5USkPLaoNtPl89OE4J8m2hZANiAASqk2195DNc
KUckn/I2r843hEALUHB/mTCpUj2vbQ2o7kYGd2mv3eB9dJeQDBWTF+l6/TgVNDS1
+9Fa2gJGxTsUw/lDissH3lDyfgb5gVBTxdSZJgPe2aEBh9gE2bIiLcE=
-----END PRIVATE KEY-----
";

/// Its SubjectPublicKeyInfo, uncompressed point.
const PUB_PEM: &str = "-----BEGIN PUBLIC KEY-----
MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEqpNtfeQzXClHJJ/yNq/ON4RAC1Bwf5kw
qVI9r20NqO5GBndpr93gfXSXkAwVkxfpev04FTQ0tfvRWtoCRsU7FMP5Q4rLB95Q
8n4G+YFQU8XUmSYD3tmhAYfYBNmyIi3B
-----END PUBLIC KEY-----
";

/// Its SubjectPublicKeyInfo, compressed point.
const PUB_COMPRESSED_PEM: &str = "-----BEGIN PUBLIC KEY-----
MEYwEAYHKoZIzj0CAQYFK4EEACIDMgADqpNtfeQzXClHJJ/yNq/ON4RAC1Bwf5kw
qVI9r20NqO5GBndpr93gfXSXkAwVkxfp
-----END PUBLIC KEY-----
";

/// The SEC1 key without its public key (`openssl ec -no_public`).
const SEC1_NO_PUBLIC_PEM: &str = "-----BEGIN EC PRIVATE KEY-----
MD4CAQEEMBKaSo6GtIqkri7wK/5otQzrGYYac6Vsty1cHlmy5xQEHlRKQ8tqg20+
Xz04TgnybaAHBgUrgQQAIg==
-----END EC PRIVATE KEY-----
";

/// X ‖ Y of the key (the last 96 bytes of `openssl pkey -pubout -outform der`).
const PUB_XY: &str = "aa936d7de4335c2947249ff236afce3784400b50707f9930a9523daf6d0da8ee46067769afdde07d\
                      7497900c159317e97afd38153434b5fbd15ada0246c53b14c3f9438acb07de50f27e06f9815053c5\
                      d4992603ded9a10187d804d9b2222dc1";

/// `openssl dgst -sha384 -sign sec1.pem` over [`MESSAGE`]: DER.
const OPENSSL_SIG: &str = "3066023100d41c52da72fe9bca5f910738ce4448e536dedecd1e8f2ec208f0930c6754\
                           eddb4b3a7c83ac31732f795eca8e1149022a0231008f50c8ec22a45151073fc823417\
                           80c056e59469d834844d988e06eeaae77801328645b75c76542eeee0437b6fd8a2745";
const MESSAGE: &[u8] = b"td-shim secure boot test message";

fn xy() -> [u8; 96] {
    hex::decode(PUB_XY).unwrap().try_into().unwrap()
}

fn pem_der(pem: &str) -> Vec<u8> {
    pem_blocks(pem.as_bytes())
        .unwrap()
        .unwrap()
        .pop()
        .unwrap()
        .der
}

fn bzimage() -> Vec<u8> {
    let mut b = vec![0x5Au8; 0x3000];
    b[0x202..0x206].copy_from_slice(b"HdrS");
    b
}

#[test]
fn openssl_keys_read_in_every_encoding() {
    for (name, text) in [
        ("sec1", SEC1_PEM),
        ("pkcs8", PKCS8_PEM),
        ("sec1 without public key", SEC1_NO_PUBLIC_PEM),
    ] {
        let k = read_private_key(text.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(k.public(), &xy(), "{name}");
        // DER too.
        let k = read_private_key(&pem_der(text)).unwrap_or_else(|e| panic!("{name} DER: {e}"));
        assert_eq!(k.public(), &xy(), "{name} DER");
    }
    for (name, text) in [
        ("uncompressed", PUB_PEM),
        ("compressed", PUB_COMPRESSED_PEM),
    ] {
        match read_key(text.as_bytes()).unwrap() {
            Key::Public(p) => assert_eq!(p, xy(), "{name}"),
            Key::Private(_) => panic!("{name}: read as a private key"),
        }
        assert_eq!(read_key(&pem_der(text)).unwrap().public(), &xy());
    }
    // A private key file also gives the public key; a public key cannot sign.
    assert_eq!(read_key(PKCS8_PEM.as_bytes()).unwrap().public(), &xy());
    assert!(matches!(
        read_private_key(PUB_PEM.as_bytes()),
        Err(SecureBootError::NotPrivate)
    ));
    // What we write is what OpenSSL writes.
    assert_eq!(spki_der(&xy()), pem_der(PUB_PEM));
    assert_eq!(pem_encode("PUBLIC KEY", &spki_der(&xy())), PUB_PEM);
}

#[test]
fn an_openssl_signature_verifies_with_both_verifiers() {
    let sig = parse_signature(&hex::decode(OPENSSL_SIG).unwrap()).unwrap();
    let digest: [u8; 48] = Sha384::digest(MESSAGE).into();
    assert_eq!(firmware::verify_p384(&xy(), &sig, &digest), Ok(()));
    let mut uncompressed = vec![4u8];
    uncompressed.extend_from_slice(&xy());
    UnparsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, &uncompressed)
        .verify(MESSAGE, &sig)
        .unwrap();
    // And back to the same DER.
    assert_eq!(hex::encode(signature_der(&sig)), OPENSSL_SIG);
    // One bit of the message off: both refuse.
    let digest: [u8; 48] = Sha384::digest(b"td-shim secure boot test messagf").into();
    assert_eq!(
        firmware::verify_p384(&xy(), &sig, &digest),
        Err(Refused::BadSignature)
    );
}

#[test]
fn generated_keys_round_trip_through_their_files() {
    let (pkcs8, public) = generate().unwrap();
    let pem = pem_encode("PRIVATE KEY", &pkcs8);
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    assert!(pem.lines().all(|l| l.len() <= 64));
    assert_eq!(read_private_key(pem.as_bytes()).unwrap().public(), &public);
    assert_eq!(read_private_key(&pkcs8).unwrap().public(), &public);
    let spki = spki_der(&public);
    assert_eq!(read_key(&spki).unwrap().public(), &public);
    let spki_pem = pem_encode("PUBLIC KEY", &spki);
    assert_eq!(read_key(spki_pem.as_bytes()).unwrap().public(), &public);
    // Two keys differ.
    assert_ne!(generate().unwrap().1, public);
}

#[test]
fn the_signed_message_hashes_to_the_firmware_digest() {
    let mut kernel = bzimage();
    // What a boot loader fills in: type_of_loader, cmd_line_ptr.
    kernel[0x210] = 0xB0;
    kernel[0x228..0x22C].copy_from_slice(&0x20000u32.to_le_bytes());
    for payload in [&b"an ELF payload"[..], &kernel, &kernel[..0x220], b""] {
        let header = header_for(payload, 7, 3).unwrap();
        let message = signed_message(&header, payload);
        assert_eq!(message.len(), HEADER_SIZE + 48);
        assert_eq!(&message[..HEADER_SIZE], &header);
        assert_eq!(message[HEADER_SIZE..], firmware::payload_digest(payload));
        let direct: [u8; 48] = Sha384::digest(&message).into();
        assert_eq!(direct, firmware::message_digest(&header, payload));
    }
    // A bzImage's digest is over the file with its loader fields zeroed, the rest as it is:
    // the kernel digest the measurement records.
    let header = header_for(&kernel, 7, 3).unwrap();
    let message = signed_message(&header, &kernel);
    let mut zeroed = kernel.clone();
    td_loader::linux::normalize_setup_header(&mut zeroed[..0x290]);
    assert_eq!((zeroed[0x210], &zeroed[0x228..0x22C]), (0, &[0u8; 4][..]));
    assert_eq!(zeroed[0x290..], kernel[0x290..]);
    let expected: [u8; 48] = Sha384::digest(&zeroed).into();
    assert_eq!(message[HEADER_SIZE..], expected);
    assert_eq!(expected, td_shim::measurement::kernel_digest(&kernel));
    // An ELF payload's digest is its plain SHA-384.
    let elf: [u8; 48] = Sha384::digest(b"an ELF payload").into();
    let header = header_for(b"an ELF payload", 7, 3).unwrap();
    assert_eq!(
        signed_message(&header, b"an ELF payload")[HEADER_SIZE..],
        elf
    );
}

#[test]
fn signing_makes_a_file_the_firmware_boots() {
    let key = read_private_key(PKCS8_PEM.as_bytes()).unwrap();
    let payload = b"an ELF payload".to_vec();
    let f = sign(&key, &payload, 9, 4).unwrap();
    let v = firmware::verify(&f, &enrolled_key(&xy(), 4)).unwrap();
    assert_eq!(v.payload, &payload[..]);
    assert_eq!((v.svn, v.version), (4, 9));
    assert_eq!(v.signer, firmware::key_hash(&xy()));
    // ring verifies the trailer's signature over the message too.
    let s = SignedPayload::parse(&f).unwrap();
    let mut uncompressed = vec![4u8];
    uncompressed.extend_from_slice(s.public_key);
    UnparsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, &uncompressed)
        .verify(&signed_message(s.header, s.payload), s.signature)
        .unwrap();
    // The firmware refuses it under a higher minimum, another key, and once tampered with.
    assert_eq!(
        firmware::verify(&f, &enrolled_key(&xy(), 5)),
        Err(Refused::Rollback(4, 5))
    );
    let (_, other) = generate().unwrap();
    assert!(matches!(
        firmware::verify(&f, &enrolled_key(&other, 0)),
        Err(Refused::UnknownKey(_))
    ));
    let mut g = f.clone();
    g[0] ^= 1;
    assert_eq!(
        firmware::verify(&g, &enrolled_key(&xy(), 0)),
        Err(Refused::BadSignature)
    );
    // A signed file is not signed again.
    assert!(matches!(
        sign(&key, &f, 9, 4),
        Err(SecureBootError::AlreadySigned)
    ));
}

#[test]
fn a_signed_bzimage_boots_after_the_loader_writes_its_fields() {
    let key = read_private_key(SEC1_PEM.as_bytes()).unwrap();
    let mut f = sign(&key, &bzimage(), 1, 0).unwrap();
    f[0x210] = 0xB0;
    f[0x228..0x22C].copy_from_slice(&0x20000u32.to_le_bytes());
    assert!(firmware::verify(&f, &enrolled_key(&xy(), 0)).is_ok());
}

#[test]
fn external_signatures_attach_only_over_the_same_message() {
    let key = read_private_key(PKCS8_PEM.as_bytes()).unwrap();
    let payload = bzimage();
    let message = message_to_sign(&payload, 2, 6).unwrap();
    let sig = key.sign(&message).unwrap();
    // Raw R ‖ S and DER both attach, and give the same file.
    let raw = attach(&xy(), &payload, 2, 6, &sig).unwrap();
    let der = attach(&xy(), &payload, 2, 6, &signature_der(&sig)).unwrap();
    assert_eq!(raw, der);
    assert!(firmware::verify(&raw, &enrolled_key(&xy(), 6)).is_ok());
    // Another SVN or version than was signed, or another key: refused, nothing made.
    for (version, svn) in [(2, 7), (3, 6)] {
        assert!(matches!(
            attach(&xy(), &payload, version, svn, &sig),
            Err(SecureBootError::SelfCheck(Refused::BadSignature))
        ));
    }
    let (_, other) = generate().unwrap();
    assert!(matches!(
        attach(&other, &payload, 2, 6, &sig),
        Err(SecureBootError::SelfCheck(Refused::BadSignature))
    ));
}

#[test]
fn detached_signatures_are_parsed_strictly() {
    let sig = parse_signature(&hex::decode(OPENSSL_SIG).unwrap()).unwrap();
    let der = signature_der(&sig);
    // Trailing bytes, a negative R, a non-minimal R, an R of 49 bytes: refused.
    let mut trailing = der.clone();
    trailing.push(0);
    assert!(parse_signature(&trailing).is_err());
    let neg = der::tlv(der::SEQUENCE, &[&[2u8, 1, 0x80][..], &[2, 1, 1]].concat());
    assert!(parse_signature(&neg).is_err());
    let padded = der::tlv(der::SEQUENCE, &[&[2u8, 2, 0, 1][..], &[2, 1, 1]].concat());
    assert!(parse_signature(&padded).is_err());
    let long = der::tlv(
        der::SEQUENCE,
        &[der::integer(&[0x7F; 49]), der::integer(&[1])].concat(),
    );
    assert!(parse_signature(&long).is_err());
    // Small R and S are left-padded.
    let small = der::tlv(
        der::SEQUENCE,
        &[der::integer(&[2]), der::integer(&[3])].concat(),
    );
    let s = parse_signature(&small).unwrap();
    assert_eq!((s[47], s[95]), (2, 3));
    assert!(s[..47].iter().chain(&s[48..95]).all(|&b| b == 0));
    // 96 raw bytes, even when they start like a SEQUENCE.
    let mut raw = [0x30u8; 96];
    raw[1] = 0xFF;
    assert_eq!(parse_signature(&raw).unwrap(), raw);
    for bad in [&[][..], &[0u8; 95][..], &[0u8; 97][..], b"0\x00"] {
        assert!(
            matches!(parse_signature(bad), Err(SecureBootError::Signature(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn other_curves_and_algorithms_are_named() {
    // An SPKI of a P-256 key (the point is not looked at: the curve is refused first).
    let p256 = [0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
    let alg = [
        der::tlv(der::OID, OID_EC_PUBLIC_KEY),
        der::tlv(der::OID, &p256),
    ]
    .concat();
    let spki = der::tlv(
        der::SEQUENCE,
        &[
            der::tlv(der::SEQUENCE, &alg),
            der::tlv(der::BIT_STRING, &[0, 4, 1, 2]),
        ]
        .concat(),
    );
    let e = read_key(&spki).unwrap_err();
    assert!(e.to_string().contains("curve P-256"), "{e}");
    // An Ed25519 PKCS#8 key (RFC 8410's layout; the key bytes are irrelevant).
    let ed = der::tlv(
        der::SEQUENCE,
        &[
            der::integer(&[0]),
            der::tlv(der::SEQUENCE, &der::tlv(der::OID, &[0x2B, 0x65, 0x70])),
            der::tlv(der::OCTET_STRING, &der::tlv(der::OCTET_STRING, &[7; 32])),
        ]
        .concat(),
    );
    let e = read_key(&ed).unwrap_err();
    assert!(e.to_string().contains("Ed25519"), "{e}");
    assert!(matches!(
        read_key(
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"
        ),
        Err(SecureBootError::Encrypted)
    ));
    let legacy = "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END EC PRIVATE KEY-----\n";
    assert!(matches!(
        read_key(legacy.as_bytes()),
        Err(SecureBootError::Encrypted)
    ));
    assert!(read_key(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").is_err());
    assert!(read_key(b"not a key").is_err());
    // A point that is not on the curve.
    let mut off = xy();
    off[95] ^= 1;
    let mut point = vec![4u8];
    point.extend_from_slice(&off);
    assert!(point_to_xy(&point).is_err());
}

#[test]
fn a_key_pair_that_does_not_match_is_refused() {
    // The SEC1 key with another key's public point.
    let (_, other) = generate().unwrap();
    let der_key = pem_der(SEC1_PEM);
    let body = der::whole(&der_key, der::SEQUENCE, "").unwrap();
    let mut r = der::Reader::new(body);
    let _version = r.read().unwrap();
    let d = r.expect(der::OCTET_STRING, "").unwrap();
    let mut point = vec![0u8, 4];
    point.extend_from_slice(&other);
    let forged = der::tlv(
        der::SEQUENCE,
        &[
            der::integer(&[1]),
            der::tlv(der::OCTET_STRING, d),
            der::tlv(der::CONTEXT_0, &der::tlv(der::OID, OID_SECP384R1)),
            der::tlv(der::CONTEXT_1, &der::tlv(der::BIT_STRING, &point)),
        ]
        .concat(),
    );
    let e = read_private_key(&forged).unwrap_err();
    assert!(e.to_string().contains("not a P-384 key pair"), "{e}");
}

/// A 16 MiB image that `enroll` accepts: the payload table magic at its start.
fn image() -> Vec<u8> {
    let mut i = vec![0u8; IMAGE_SIZE as usize];
    i[..PAYLOAD_TABLE_MAGIC.len()].copy_from_slice(&PAYLOAD_TABLE_MAGIC);
    i
}

#[test]
fn enrolling_writes_replaces_and_removes_the_record() {
    let img = image();
    assert_eq!(image_key(&img).unwrap(), None);
    let k = enrolled_key(&xy(), 3);
    let (one, before) = enroll(&img, Some(&k)).unwrap();
    assert_eq!(before, None);
    assert_eq!(image_key(&one).unwrap(), Some(k));
    let at = enrolled_key_image_offset();
    assert_eq!(at, 0xF00C00);
    assert_eq!(one[at..at + RECORD_SIZE], k.to_bytes());
    // Nothing else changed.
    assert_eq!(one[..at], img[..at]);
    assert_eq!(one[at + RECORD_SIZE..], img[at + RECORD_SIZE..]);
    // Re-enrolling replaces; removing writes zeros.
    let (_, other) = generate().unwrap();
    let k2 = enrolled_key(&other, 0);
    let (two, before) = enroll(&one, Some(&k2)).unwrap();
    assert_eq!(before, Some(k));
    assert_eq!(image_key(&two).unwrap(), Some(k2));
    let (none, before) = enroll(&two, None).unwrap();
    assert_eq!(before, Some(k2));
    assert_eq!(none, img);
}

#[test]
fn enrolling_refuses_what_is_not_our_image() {
    let k = enrolled_key(&xy(), 0);
    let small = vec![0u8; 1 << 20];
    assert!(matches!(
        enroll(&small, Some(&k)),
        Err(SecureBootError::Image(_))
    ));
    let mut no_magic = image();
    no_magic[0] ^= 0xFF;
    assert!(matches!(
        enroll(&no_magic, Some(&k)),
        Err(SecureBootError::Image(_))
    ));
    // Bytes at the record's place that are neither zero nor a record.
    let mut taken = image();
    taken[enrolled_key_image_offset() + 40] = 1;
    assert!(matches!(
        enroll(&taken, Some(&k)),
        Err(SecureBootError::Record(RecordError::Guid))
    ));
    assert!(matches!(
        image_key(&taken),
        Err(SecureBootError::Record(RecordError::Guid))
    ));
}

#[test]
fn inspect_says_what_is_enrolled() {
    let k = enrolled_key(&xy(), 7);
    let r = EnrolledReport::of(&k.to_bytes());
    assert!(r.enrolled);
    assert_eq!(r.min_svn, Some(7));
    assert_eq!(r.key_hash.as_deref(), Some(&*hex::encode(k.key_hash)));
    assert!(r.to_text().contains("minimum payload SVN 7"));
    let none = EnrolledReport::of(&[0; RECORD_SIZE]);
    assert!(!none.enrolled && none.error.is_none());
    assert!(none.to_text().contains("no key enrolled"));
    let mut bad = k.to_bytes();
    bad[0x10] = 2;
    let bad = EnrolledReport::of(&bad);
    assert!(!bad.enrolled);
    assert!(bad.to_text().contains("MALFORMED"), "{}", bad.to_text());
    assert_eq!(
        bad.error.as_deref(),
        Some("enrolled key record: version 2 is not supported (1)")
    );
}

#[test]
fn the_verify_report_carries_the_firmware_reason() {
    let key = read_private_key(PKCS8_PEM.as_bytes()).unwrap();
    let f = sign(&key, b"payload", 1, 2).unwrap();
    let ok = verify_report(&f, &enrolled_key(&xy(), 2));
    assert!(ok.boots());
    assert_eq!(ok.verdict, "boots");
    assert_eq!(
        (ok.svn, ok.version, ok.payload_size),
        (Some(2), Some(1), Some(7))
    );
    assert_eq!(
        ok.signer.as_deref(),
        Some(&*hex::encode(firmware::key_hash(&xy())))
    );
    let refused = verify_report(&f, &enrolled_key(&xy(), 3));
    assert!(!refused.boots());
    assert_eq!(refused.verdict, "refused");
    assert_eq!(
        refused.reason.as_deref(),
        Some(&*Refused::Rollback(2, 3).to_string())
    );
    assert!(refused
        .to_text()
        .starts_with("verdict: REFUSED: payload SVN 2 is below"));
    let unsigned = verify_report(b"payload", &enrolled_key(&xy(), 0));
    assert_eq!(
        unsigned.reason.as_deref(),
        Some("the payload is not signed (no signature header)")
    );
    assert_eq!(unsigned.svn, None);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn key_and_signature_parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = read_key(&bytes);
        let _ = parse_signature(&bytes);
        let _ = point_to_xy(&bytes);
    }

    #[test]
    fn damaged_key_files_never_panic(at in 0usize..200, byte: u8, cut in 0usize..200) {
        for text in [SEC1_PEM, PKCS8_PEM, PUB_PEM, PUB_COMPRESSED_PEM, SEC1_NO_PUBLIC_PEM] {
            let mut der = pem_der(text);
            let _ = read_key(&der[..cut.min(der.len())]);
            let i = at % der.len();
            der[i] = byte;
            let _ = read_key(&der);
            let _ = read_key(pem_encode("PRIVATE KEY", &der).as_bytes());
            let _ = read_key(pem_encode("EC PRIVATE KEY", &der).as_bytes());
            let _ = read_key(pem_encode("PUBLIC KEY", &der).as_bytes());
        }
    }

    #[test]
    fn any_payload_signed_by_ring_verifies_in_the_firmware_and_any_flip_is_refused(
        mut payload in proptest::collection::vec(any::<u8>(), 0..0x600),
        bzimage: bool,
        svn: u64,
        flip in any::<prop::sample::Index>(),
    ) {
        if bzimage && payload.len() >= 0x206 {
            payload[0x202..0x206].copy_from_slice(b"HdrS");
        }
        let key = read_private_key(PKCS8_PEM.as_bytes()).unwrap();
        let f = sign(&key, &payload, 0, svn).unwrap();
        let v = firmware::verify(&f, &enrolled_key(&xy(), svn)).unwrap();
        prop_assert_eq!(v.payload, &payload[..]);
        // One flipped bit anywhere in the file is refused, except in a bzImage's loader fields
        // (which the message normalizes) and the header's version field (which it covers: refused
        // too). Only the loader fields may change and still verify.
        let i = flip.index(f.len());
        let mut g = f.clone();
        g[i] ^= 1;
        let normalized = firmware::normalized_head(&payload);
        let head_changed = i < normalized.len() && {
            let mut p2 = payload.clone();
            p2[i] ^= 1;
            firmware::normalized_head(&p2).as_bytes() == normalized.as_bytes()
        };
        let verdict = firmware::verify(&g, &enrolled_key(&xy(), 0));
        if head_changed {
            prop_assert!(verdict.is_ok(), "byte {i} is a loader field: {verdict:?}");
        } else {
            prop_assert!(verdict.is_err(), "byte {i} of {} flipped and still verifies", f.len());
        }
    }

    #[test]
    fn der_signatures_round_trip(r in proptest::array::uniform32(any::<u8>()), s in proptest::array::uniform32(any::<u8>()), shift in 0usize..16) {
        let mut sig = [0u8; 96];
        sig[16 + shift..48].copy_from_slice(&r[..32 - shift]);
        sig[64..96].copy_from_slice(&s);
        prop_assert_eq!(parse_signature(&signature_der(&sig)).unwrap(), sig);
    }
}
