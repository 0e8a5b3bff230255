//! `td-shim-tool keygen`, `sign`, `enroll`, `verify-signature` and `inspect`'s secure-boot line on
//! the real image, with OpenSSL as an independent implementation: keys it makes sign, what we
//! sign verifies with `openssl dgst -verify`, and its signatures attach and verify.
//!
//! OpenSSL is required (/usr/bin/openssl, Debian's `openssl` package): a machine without it fails
//! these tests instead of skipping them.

use sha2::{Digest, Sha384};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use td_layout::signed::{enrolled_key_image_offset, HEADER_SIZE, RECORD_SIZE};
use tests::artifacts;

fn tool(args: &[&str]) -> Output {
    Command::new(&artifacts().tool)
        .args(args)
        .output()
        .expect("run td-shim-tool")
}

fn openssl(args: &[&str]) -> Output {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run openssl ({e}): these tests need OpenSSL as an independent \
             implementation (apt-get install openssl)"
            )
        });
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A fresh directory for one test.
fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("td-shim-sb-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create the test directory");
    d
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[track_caller]
fn assert_ok(o: &Output) {
    assert!(o.status.success(), "stderr: {}", stderr(o));
    assert!(!stderr(o).contains("panicked"));
}

#[track_caller]
fn assert_exit(o: &Output, code: i32, message: &str) {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(code), "stderr: {e}");
    assert!(e.contains(message), "expected {message:?} in {e:?}");
    assert!(!e.contains("panicked"), "{e}");
}

/// A payload to sign: the test payload ELF.
fn payload(d: &Path) -> PathBuf {
    let p = d.join("payload.elf");
    std::fs::copy(&artifacts().payload_elf, &p).expect("copy the payload");
    p
}

/// DER ECDSA-Sig-Value of a 96-byte R ‖ S (what `openssl dgst -verify` reads).
fn der_signature(raw: &[u8]) -> Vec<u8> {
    let int = |v: &[u8]| {
        let v = &v[v.iter().position(|&b| b != 0).unwrap_or(v.len() - 1)..];
        let mut out = vec![2u8];
        let pad = v[0] & 0x80 != 0;
        out.push((v.len() + usize::from(pad)) as u8);
        if pad {
            out.push(0);
        }
        out.extend_from_slice(v);
        out
    };
    let body = [int(&raw[..48]), int(&raw[48..])].concat();
    [vec![0x30, body.len() as u8], body].concat()
}

/// The trailer's signature (R ‖ S) of a signed file.
fn trailer_signature(signed: &[u8]) -> &[u8] {
    &signed[signed.len() - HEADER_SIZE - 96..signed.len() - HEADER_SIZE]
}

/// SHA-384 of X ‖ Y of an SPKI PEM file, hex: what `enroll` records.
fn key_hash_of(pub_pem: &Path) -> String {
    let der = openssl(&["pkey", "-pubin", "-in", s(pub_pem), "-outform", "DER"]).stdout;
    let xy = &der[der.len() - 96..];
    td_shim::secure_boot::key_hash(xy)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn every_command_has_help() {
    for (cmd, words) in [
        (
            "keygen",
            &["--out", "--pubout", "--format", "--force", "0600"][..],
        ),
        (
            "sign",
            &[
                "--key",
                "--svn",
                "--payload-version",
                "--print-message",
                "--signature",
                "openssl dgst",
            ][..],
        ),
        (
            "enroll",
            &["--image", "--pubkey", "--min-svn", "--remove", "0xF00C00"][..],
        ),
        (
            "verify-signature",
            &["--pubkey", "--image", "--min-svn", "--json", "Exit status"][..],
        ),
    ] {
        let o = tool(&[cmd, "--help"]);
        assert_ok(&o);
        let text = stdout(&o);
        for w in words {
            assert!(text.contains(w), "{cmd} --help lacks {w:?}:\n{text}");
        }
    }
    let top = stdout(&tool(&["--help"]));
    for cmd in ["keygen", "sign", "enroll", "verify-signature"] {
        assert!(top.contains(cmd), "--help lists {cmd}");
    }
}

#[test]
fn keygen_writes_a_private_key_only_once() {
    use std::os::unix::fs::PermissionsExt as _;
    let d = dir("keygen");
    let key = d.join("signing.pem");
    let o = tool(&["keygen", "--out", s(&key)]);
    assert_ok(&o);
    let public = d.join("signing.pub.pem");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the private key is readable by its owner only");
    let text = std::fs::read_to_string(&key).unwrap();
    assert!(text.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{text}");
    assert!(std::fs::read_to_string(&public)
        .unwrap()
        .starts_with("-----BEGIN PUBLIC KEY-----\n"));
    // OpenSSL reads both as P-384 and agrees on the public key; the printed hash is the key's.
    let info = stdout(&openssl(&["pkey", "-in", s(&key), "-noout", "-text"]));
    assert!(info.contains("NIST CURVE: P-384"), "{info}");
    let derived = openssl(&["pkey", "-in", s(&key), "-pubout"]).stdout;
    assert_eq!(derived, std::fs::read(&public).unwrap());
    assert!(stdout(&o).contains(&key_hash_of(&public)));
    // Never overwritten without --force; with it, a new key.
    let before = std::fs::read(&key).unwrap();
    assert_exit(&tool(&["keygen", "--out", s(&key)]), 1, "not overwritten");
    assert_eq!(std::fs::read(&key).unwrap(), before);
    assert_ok(&tool(&["keygen", "--out", s(&key), "--force"]));
    assert_ne!(std::fs::read(&key).unwrap(), before);
    // DER, with an explicit public key path.
    let der = d.join("k.der");
    let der_pub = d.join("k-public.der");
    assert_ok(&tool(&[
        "keygen",
        "--out",
        s(&der),
        "--pubout",
        s(&der_pub),
        "--format",
        "der",
    ]));
    openssl(&["pkey", "-in", s(&der), "-inform", "DER", "-noout"]);
    openssl(&[
        "pkey",
        "-pubin",
        "-in",
        s(&der_pub),
        "-inform",
        "DER",
        "-noout",
    ]);
}

#[test]
fn openssl_verifies_what_we_sign_and_we_verify_what_it_signs() {
    let d = dir("openssl");
    let p = payload(&d);
    let key = d.join("key.pem");
    let public = d.join("pub.pem");
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-384",
        "-out",
        s(&key),
    ]);
    openssl(&["pkey", "-in", s(&key), "-pubout", "-out", s(&public)]);

    // We sign with OpenSSL's key; OpenSSL verifies our signature over the printed message.
    let signed = d.join("signed.elf");
    let o = tool(&[
        "sign",
        "--key",
        s(&key),
        "--svn",
        "3",
        s(&p),
        "-o",
        s(&signed),
    ]);
    assert_ok(&o);
    assert!(stdout(&o).contains("SVN 3"), "{}", stdout(&o));
    let msg = d.join("msg.bin");
    assert_ok(&tool(&[
        "sign",
        "--pubkey",
        s(&public),
        "--print-message",
        "--svn",
        "3",
        s(&p),
        "-o",
        s(&msg),
    ]));
    // The message is the header and the payload's SHA-384 (an ELF: hashed as it is).
    let signed_bytes = std::fs::read(&signed).unwrap();
    let message = std::fs::read(&msg).unwrap();
    let payload_bytes = std::fs::read(&p).unwrap();
    assert_eq!(message.len(), HEADER_SIZE + 48);
    assert_eq!(
        message[..HEADER_SIZE],
        signed_bytes[signed_bytes.len() - HEADER_SIZE..]
    );
    assert_eq!(message[HEADER_SIZE..], Sha384::digest(&payload_bytes)[..]);
    assert_eq!(signed_bytes[..payload_bytes.len()], payload_bytes[..]);
    let sig = d.join("ours.der");
    std::fs::write(&sig, der_signature(trailer_signature(&signed_bytes))).unwrap();
    let v = openssl(&[
        "dgst",
        "-sha384",
        "-verify",
        s(&public),
        "-signature",
        s(&sig),
        s(&msg),
    ]);
    assert!(stdout(&v).contains("Verified OK"));
    // Standard output works for the message too, byte for byte.
    let printed = tool(&["sign", "--print-message", "--svn", "3", s(&p)]);
    assert_ok(&printed);
    assert_eq!(printed.stdout, message);

    // OpenSSL signs the message; we attach its DER signature and the firmware's check accepts.
    let theirs = d.join("theirs.der");
    openssl(&[
        "dgst",
        "-sha384",
        "-sign",
        s(&key),
        "-out",
        s(&theirs),
        s(&msg),
    ]);
    let external = d.join("external.elf");
    let o = tool(&[
        "sign",
        "--pubkey",
        s(&public),
        "--signature",
        s(&theirs),
        "--svn",
        "3",
        s(&p),
        "-o",
        s(&external),
    ]);
    assert_ok(&o);
    let o = tool(&["verify-signature", "--pubkey", s(&public), s(&external)]);
    assert_ok(&o);
    let text = stdout(&o);
    assert!(text.starts_with("verdict: boots\n"), "{text}");
    assert!(text.contains(&format!("signer: SHA-384 {}", key_hash_of(&public))));
    // Attached under another SVN than was signed: refused, nothing written.
    let wrong = d.join("wrong.elf");
    assert_exit(
        &tool(&[
            "sign",
            "--pubkey",
            s(&public),
            "--signature",
            s(&theirs),
            "--svn",
            "4",
            s(&p),
            "-o",
            s(&wrong),
        ]),
        1,
        "the signature does not verify",
    );
    assert!(!wrong.exists());
    // An HSM signs the SHA-384 digest instead (ECDSA over a prehashed input): the same
    // signature scheme, so it attaches too. `openssl pkeyutl -sign` over the digest stands in.
    let digest = d.join("digest.bin");
    std::fs::write(
        &digest,
        openssl(&["dgst", "-sha384", "-binary", s(&msg)]).stdout,
    )
    .unwrap();
    let prehashed = d.join("prehashed.der");
    openssl(&[
        "pkeyutl",
        "-sign",
        "-inkey",
        s(&key),
        "-in",
        s(&digest),
        "-out",
        s(&prehashed),
    ]);
    assert_ok(&tool(&[
        "sign",
        "--pubkey",
        s(&public),
        "--signature",
        s(&prehashed),
        "--svn",
        "3",
        s(&p),
        "-o",
        s(&d.join("prehashed.elf")),
    ]));
    // The same signature as 96 raw bytes attaches to the same file.
    let raw = d.join("theirs.raw");
    let external_bytes = std::fs::read(&external).unwrap();
    std::fs::write(&raw, trailer_signature(&external_bytes)).unwrap();
    let again = d.join("again.elf");
    assert_ok(&tool(&[
        "sign",
        "--pubkey",
        s(&public),
        "--signature",
        s(&raw),
        "--svn",
        "3",
        s(&p),
        "-o",
        s(&again),
    ]));
    assert_eq!(std::fs::read(&again).unwrap(), external_bytes);
}

#[test]
fn openssl_sec1_keys_sign_and_other_curves_are_refused() {
    let d = dir("sec1");
    let p = payload(&d);
    let sec1 = d.join("ec.pem");
    openssl(&["ecparam", "-name", "secp384r1", "-genkey", "-out", s(&sec1)]);
    let signed = d.join("signed.elf");
    assert_ok(&tool(&[
        "sign",
        "--key",
        s(&sec1),
        "--svn",
        "0",
        s(&p),
        "-o",
        s(&signed),
    ]));
    // The private key file works as --pubkey too.
    assert_ok(&tool(&[
        "verify-signature",
        "--pubkey",
        s(&sec1),
        s(&signed),
    ]));
    let p256 = d.join("p256.pem");
    openssl(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-out",
        s(&p256),
    ]);
    assert_exit(
        &tool(&[
            "sign",
            "--key",
            s(&p256),
            "--svn",
            "0",
            s(&p),
            "-o",
            s(&d.join("x")),
        ]),
        1,
        "the key is on curve P-256",
    );
    let rsa = d.join("rsa.pem");
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:1024",
        "-out",
        s(&rsa),
    ]);
    assert_exit(
        &tool(&[
            "sign",
            "--key",
            s(&rsa),
            "--svn",
            "0",
            s(&p),
            "-o",
            s(&d.join("x")),
        ]),
        1,
        "an RSA key",
    );
    // A signed file is not signed again.
    assert_exit(
        &tool(&[
            "sign",
            "--key",
            s(&sec1),
            "--svn",
            "0",
            s(&signed),
            "-o",
            s(&d.join("x")),
        ]),
        1,
        "already signed",
    );
}

#[test]
fn enrolled_images_verify_as_the_firmware_would() {
    let d = dir("enroll");
    let p = payload(&d);
    let key = d.join("key.pem");
    let public = d.join("key.pub.pem");
    assert_ok(&tool(&["keygen", "--out", s(&key)]));
    let image = artifacts().image.clone();
    let original = std::fs::read(&image).unwrap();
    let hash = key_hash_of(&public);

    // Enroll with a minimum SVN of 5.
    let enrolled = d.join("enrolled.bin");
    let o = tool(&[
        "enroll",
        "--image",
        s(&image),
        "--pubkey",
        s(&public),
        "--min-svn",
        "5",
        "-o",
        s(&enrolled),
    ]);
    assert_ok(&o);
    assert!(stdout(&o).contains(&hash), "{}", stdout(&o));
    let bytes = std::fs::read(&enrolled).unwrap();
    let at = enrolled_key_image_offset();
    assert_eq!(bytes[..at], original[..at]);
    assert_eq!(bytes[at + RECORD_SIZE..], original[at + RECORD_SIZE..]);
    assert_ne!(bytes[at..at + RECORD_SIZE], [0; RECORD_SIZE]);

    // inspect reports it, and the image still passes every VMM's loader rules.
    let o = tool(&["inspect", s(&enrolled), "--json"]);
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v["secure_boot"]["enrolled"], true);
    assert_eq!(v["secure_boot"]["key_hash"], hash.as_str());
    assert_eq!(v["secure_boot"]["min_svn"], 5);
    assert_eq!(v["secure_boot"]["error"], serde_json::Value::Null);
    for check in v["vmm_rules"].as_array().unwrap() {
        assert_eq!(check["passes"], true, "{check}");
    }
    let text = stdout(&tool(&["inspect", s(&enrolled)]));
    assert!(
        text.contains(&format!(
            "secure boot: key enrolled (ecdsa-p384-sha384), SHA-384 {hash}, minimum payload SVN 5"
        )),
        "{text}"
    );
    let plain = stdout(&tool(&["inspect", s(&image)]));
    assert!(plain.contains("secure boot: no key enrolled"), "{plain}");

    // verify-signature --image: 0 boots, 1 refused with the firmware's reason, 2 input errors.
    let sign = |svn: &str, name: &str| {
        let out = d.join(name);
        assert_ok(&tool(&[
            "sign",
            "--key",
            s(&key),
            "--svn",
            svn,
            s(&p),
            "-o",
            s(&out),
        ]));
        out
    };
    let good = sign("5", "svn5.elf");
    let o = tool(&[
        "verify-signature",
        "--image",
        s(&enrolled),
        s(&good),
        "--json",
    ]);
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v["verdict"], "boots");
    assert_eq!(v["svn"], 5);
    assert_eq!(v["signer"], hash.as_str());
    assert_eq!(v["min_svn"], 5);
    let old = sign("4", "svn4.elf");
    let o = tool(&["verify-signature", "--image", s(&enrolled), s(&old)]);
    assert_exit(
        &o,
        1,
        "refused: payload SVN 4 is below the enrolled minimum 5 (rollback)",
    );
    assert!(stdout(&o).starts_with("verdict: REFUSED: payload SVN 4 is below"));
    assert_exit(
        &tool(&["verify-signature", "--image", s(&enrolled), s(&p)]),
        1,
        "refused: the payload is not signed (no signature header)",
    );
    let mut tampered = std::fs::read(&good).unwrap();
    tampered[100] ^= 1;
    let tampered_path = d.join("tampered.elf");
    std::fs::write(&tampered_path, &tampered).unwrap();
    assert_exit(
        &tool(&[
            "verify-signature",
            "--image",
            s(&enrolled),
            s(&tampered_path),
        ]),
        1,
        "refused: the signature does not verify",
    );
    let other = d.join("other.pem");
    assert_ok(&tool(&["keygen", "--out", s(&other)]));
    let by_other = d.join("other.elf");
    assert_ok(&tool(&[
        "sign",
        "--key",
        s(&other),
        "--svn",
        "9",
        s(&p),
        "-o",
        s(&by_other),
    ]));
    assert_exit(
        &tool(&["verify-signature", "--image", s(&enrolled), s(&by_other)]),
        1,
        "refused: the payload is signed by a key that is not enrolled",
    );
    // The same verdicts against --pubkey and --min-svn.
    assert_ok(&tool(&[
        "verify-signature",
        "--pubkey",
        s(&public),
        "--min-svn",
        "5",
        s(&good),
    ]));
    assert_exit(
        &tool(&[
            "verify-signature",
            "--pubkey",
            s(&public),
            "--min-svn",
            "6",
            s(&good),
        ]),
        1,
        "rollback",
    );
    // An image without a key, an unreadable file, no key given: 2.
    assert_exit(
        &tool(&["verify-signature", "--image", s(&image), s(&good)]),
        2,
        "no key enrolled",
    );
    assert_exit(
        &tool(&[
            "verify-signature",
            "--pubkey",
            "/nonexistent/pub.pem",
            s(&good),
        ]),
        2,
        "cannot read",
    );
    assert_eq!(tool(&["verify-signature", s(&good)]).status.code(), Some(2));

    // A damaged record: inspect says so, verify-signature and enroll refuse (the firmware
    // refuses to boot it).
    let mut damaged = bytes.clone();
    damaged[at + 0x10] = 2;
    let damaged_path = d.join("damaged.bin");
    std::fs::write(&damaged_path, &damaged).unwrap();
    let o = tool(&["inspect", s(&damaged_path), "--json"]);
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v["secure_boot"]["enrolled"], false);
    assert_eq!(
        v["secure_boot"]["error"],
        "enrolled key record: version 2 is not supported (1)"
    );
    assert!(stdout(&tool(&["inspect", s(&damaged_path)])).contains("MALFORMED"));
    assert_exit(
        &tool(&["verify-signature", "--image", s(&damaged_path), s(&good)]),
        2,
        "version 2 is not supported",
    );
    assert_exit(
        &tool(&[
            "enroll",
            "--image",
            s(&damaged_path),
            "--remove",
            "-o",
            s(&d.join("x")),
        ]),
        1,
        "version 2 is not supported",
    );
    // Not a td-shim image.
    assert_exit(
        &tool(&[
            "enroll",
            "--image",
            s(&p),
            "--pubkey",
            s(&public),
            "--min-svn",
            "0",
            "-o",
            s(&d.join("x")),
        ]),
        1,
        "a td-shim image is 16777216 bytes",
    );

    // Re-enrolling replaces the key; --remove gives back the original image, byte for byte.
    let other_pub = d.join("other.pub.pem");
    let again = d.join("again.bin");
    let o = tool(&[
        "enroll",
        "--image",
        s(&enrolled),
        "--pubkey",
        s(&other_pub),
        "--min-svn",
        "0",
        "-o",
        s(&again),
        "--json",
    ]);
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v["replaced"], hash.as_str());
    assert_eq!(v["key_hash"], key_hash_of(&other_pub).as_str());
    assert_ok(&tool(&[
        "verify-signature",
        "--image",
        s(&again),
        s(&by_other),
    ]));
    let removed = d.join("removed.bin");
    assert_ok(&tool(&[
        "enroll",
        "--image",
        s(&again),
        "--remove",
        "-o",
        s(&removed),
    ]));
    assert!(
        std::fs::read(&removed).unwrap() == original,
        "--remove restores the image"
    );
}

#[test]
fn a_signed_bzimage_verifies_after_the_loader_fills_its_fields() {
    let d = dir("bzimage");
    let key = d.join("key.pem");
    let public = d.join("key.pub.pem");
    assert_ok(&tool(&["keygen", "--out", s(&key)]));
    // A synthetic bzImage: "HdrS" at 0x202 is what makes the message normalize the loader
    // fields.
    let mut kernel = vec![0x5Au8; 0x4000];
    kernel[0x202..0x206].copy_from_slice(b"HdrS");
    let k = d.join("bzImage");
    std::fs::write(&k, &kernel).unwrap();
    let signed = d.join("bzImage.signed");
    assert_ok(&tool(&[
        "sign",
        "--key",
        s(&key),
        "--svn",
        "1",
        s(&k),
        "-o",
        s(&signed),
    ]));
    // The printed message carries the kernel's digest with the loader fields zeroed: the
    // digest the measurement records for this kernel. OpenSSL verifies it.
    let msg = tool(&["sign", "--print-message", "--svn", "1", s(&k)]).stdout;
    assert_eq!(msg.len(), HEADER_SIZE + 48);
    assert_eq!(
        msg[HEADER_SIZE..],
        td_shim::measurement::kernel_digest(&kernel)
    );
    assert_ne!(
        msg[HEADER_SIZE..],
        Sha384::digest(&kernel)[..],
        "the loader fields are zeroed before hashing"
    );
    let msg_path = d.join("msg.bin");
    std::fs::write(&msg_path, &msg).unwrap();
    let mut bytes = std::fs::read(&signed).unwrap();
    let sig = d.join("sig.der");
    std::fs::write(&sig, der_signature(trailer_signature(&bytes))).unwrap();
    let v = openssl(&[
        "dgst",
        "-sha384",
        "-verify",
        s(&public),
        "-signature",
        s(&sig),
        s(&msg_path),
    ]);
    assert!(stdout(&v).contains("Verified OK"));
    // What QEMU's -kernel writes into the setup header: still verifies. A byte outside: not.
    bytes[0x210] = 0xB0;
    bytes[0x228..0x22C].copy_from_slice(&0x20000u32.to_le_bytes());
    let loaded = d.join("loaded");
    std::fs::write(&loaded, &bytes).unwrap();
    assert_ok(&tool(&[
        "verify-signature",
        "--pubkey",
        s(&public),
        s(&loaded),
    ]));
    bytes[0x230] ^= 1;
    std::fs::write(&loaded, &bytes).unwrap();
    assert_exit(
        &tool(&["verify-signature", "--pubkey", s(&public), s(&loaded)]),
        1,
        "the signature does not verify",
    );
}
