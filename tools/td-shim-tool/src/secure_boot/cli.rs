//! The secure-boot commands' arguments and what each does: `keygen`, `sign`, `enroll`,
//! `verify-signature`. `main.rs` parses them and maps the results to exit statuses.

use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use td_layout::signed::EnrolledKey;

use super::{
    attach, enroll, generate, image_key, message_to_sign, pem_encode, read_key, read_private_key,
    sign, spki_der, verify_report, VerifyReport, KEY_FILE, PAYLOAD_FILE, SIGNATURE_FILE,
};
use crate::files::{self, Limit};
use crate::snp::cli::parse_u64;

/// A key file's encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyFormat {
    /// PEM: "PRIVATE KEY" (PKCS#8) and "PUBLIC KEY" (SubjectPublicKeyInfo).
    Pem,
    /// DER: the same structures, binary.
    Der,
}

/// `td-shim-tool keygen`'s arguments.
#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// Where to write the private key (PKCS#8; created with mode 0600).
    #[arg(long, value_name = "KEY")]
    pub out: PathBuf,
    /// Where to write the public key (SubjectPublicKeyInfo). Default: KEY with the extension
    /// .pub.pem (.pub.der with --format der).
    #[arg(long, value_name = "PUB")]
    pub pubout: Option<PathBuf>,
    /// The files' encoding.
    #[arg(long, value_enum, default_value = "pem")]
    pub format: KeyFormat,
    /// Replace KEY and PUB if they exist (without it, an existing file is never overwritten).
    #[arg(long)]
    pub force: bool,
}

/// `td-shim-tool sign`'s arguments.
#[derive(Debug, clap::Args)]
pub struct SignArgs {
    /// The payload to sign: an ELF file or a Linux bzImage, unsigned.
    pub input: PathBuf,
    /// The private key: PKCS#8 (PEM "PRIVATE KEY" or DER, as `keygen` and `openssl genpkey`
    /// write it) or SEC1 ("EC PRIVATE KEY", PEM or DER, as `openssl ecparam -genkey` writes it),
    /// P-384.
    #[arg(long, value_name = "KEY", conflicts_with_all = ["pubkey", "print_message", "signature"])]
    pub key: Option<PathBuf>,
    /// External signing: the signer's public key (SubjectPublicKeyInfo PEM or DER, or a private
    /// key file), with --print-message or --signature.
    #[arg(long, value_name = "PUB")]
    pub pubkey: Option<PathBuf>,
    /// External signing, step 1: write the exact bytes to sign (96 bytes: the header, then the
    /// payload's SHA-384 with a bzImage's loader fields zeroed) to -o FILE or standard output,
    /// and nothing else. Sign them with
    /// ECDSA P-384 over SHA-384 (`openssl dgst -sha384 -sign KEY -out SIG MSG`), then attach
    /// the signature with --signature and the same --svn and --payload-version.
    #[arg(long, conflicts_with = "signature")]
    pub print_message: bool,
    /// External signing, step 2: the signature over the message --print-message wrote, DER
    /// (ECDSA-Sig-Value, what openssl writes) or 96 raw bytes R ‖ S. Refused unless it
    /// verifies under --pubkey.
    #[arg(long, value_name = "SIG", requires = "pubkey")]
    pub signature: Option<PathBuf>,
    /// The payload's security version number (0x-hex or decimal): a firmware whose enrolled
    /// minimum is higher refuses it.
    #[arg(long, value_name = "N", value_parser = parse_u64)]
    pub svn: u64,
    /// The payload's version (informational, recorded in the signed header).
    #[arg(long, value_name = "V", value_parser = parse_u64, default_value = "0")]
    pub payload_version: u64,
    /// Where to write the signed payload (required), or with --print-message the message
    /// (default: standard output).
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
}

/// `td-shim-tool enroll`'s arguments.
#[derive(Debug, clap::Args)]
pub struct EnrollArgs {
    /// The td-shim image (16 MiB, from `build`).
    #[arg(long, value_name = "IMG")]
    pub image: PathBuf,
    /// The key to enroll: a P-384 public key (SubjectPublicKeyInfo PEM or DER, uncompressed or
    /// compressed point) or a private key file (its public key is enrolled).
    #[arg(long, value_name = "PUB", required_unless_present = "remove")]
    pub pubkey: Option<PathBuf>,
    /// The lowest payload SVN the firmware accepts (0x-hex or decimal).
    #[arg(long, value_name = "N", value_parser = parse_u64, required_unless_present = "remove")]
    pub min_svn: Option<u64>,
    /// Remove the enrolled key instead (zeros: the firmware then boots payloads unverified).
    #[arg(long, conflicts_with_all = ["pubkey", "min_svn"])]
    pub remove: bool,
    /// Where to write the new image (IMG itself is not changed unless named here).
    #[arg(short, long, value_name = "OUT")]
    pub output: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `td-shim-tool verify-signature`'s arguments.
#[derive(Debug, clap::Args)]
pub struct VerifySignatureArgs {
    /// The signed payload.
    pub signed: PathBuf,
    /// The key the firmware would have enrolled: a P-384 public key (or private key file).
    #[arg(
        long,
        value_name = "PUB",
        required_unless_present = "image",
        conflicts_with = "image"
    )]
    pub pubkey: Option<PathBuf>,
    /// A td-shim image: verify against the key and minimum SVN it enrolls.
    #[arg(long, value_name = "IMG")]
    pub image: Option<PathBuf>,
    /// With --pubkey: the enrolled minimum SVN (default 0). With --image the image's is used.
    #[arg(long, value_name = "N", value_parser = parse_u64, conflicts_with = "image")]
    pub min_svn: Option<u64>,
    /// Print JSON: {"verdict", "reason", "payload_size", "svn", "version", "signer",
    /// "enrolled_key", "min_svn"}.
    #[arg(long)]
    pub json: bool,
}

fn read(path: &Path, limit: &Limit) -> Result<Vec<u8>> {
    Ok(files::read(path, limit)?)
}

fn read_public(path: &Path) -> Result<[u8; super::P384_KEY_SIZE]> {
    let bytes = read(path, &KEY_FILE)?;
    let key = read_key(&bytes).with_context(|| format!("cannot use {}", path.display()))?;
    Ok(*key.public())
}

fn print(text: &str) -> Result<()> {
    Ok(files::write_stdout(text.as_bytes())?)
}

/// Writes a new file with `mode` through a temporary file in the same directory; an existing
/// `path` is replaced only with `force`.
fn write_new(path: &Path, bytes: &[u8], mode: u32, force: bool) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".td-shim-tool-key")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    let persisted = if force {
        tmp.persist(path)
    } else {
        tmp.persist_noclobber(path)
    };
    match persisted {
        Ok(_) => Ok(()),
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => bail!(
            "{} exists: not overwritten (--force replaces it)",
            path.display()
        ),
        Err(e) => Err(e.error).with_context(|| format!("cannot write {}", path.display())),
    }
}

fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

impl KeygenArgs {
    /// The public key's path.
    pub fn pub_path(&self) -> PathBuf {
        self.pubout.clone().unwrap_or_else(|| {
            self.out.with_extension(match self.format {
                KeyFormat::Pem => "pub.pem",
                KeyFormat::Der => "pub.der",
            })
        })
    }

    /// Generates and writes the key pair; prints the paths and the key hash.
    pub fn run(&self) -> Result<()> {
        let pub_path = self.pub_path();
        if pub_path == self.out {
            bail!("--pubout names the private key's file");
        }
        if !self.force {
            for p in [&self.out, &pub_path] {
                if exists(p) {
                    bail!(
                        "{} exists: not overwritten (--force replaces it)",
                        p.display()
                    );
                }
            }
        }
        let (pkcs8, public) = generate()?;
        let spki = spki_der(&public);
        let (private_bytes, public_bytes) = match self.format {
            KeyFormat::Pem => (
                pem_encode("PRIVATE KEY", &pkcs8).into_bytes(),
                pem_encode("PUBLIC KEY", &spki).into_bytes(),
            ),
            KeyFormat::Der => (pkcs8, spki),
        };
        write_new(&self.out, &private_bytes, 0o600, self.force)?;
        write_new(&pub_path, &public_bytes, 0o644, self.force)?;
        print(&format!(
            "wrote {} (private key, PKCS#8, mode 0600)\nwrote {} (public key)\nkey hash \
             (SHA-384 of X ‖ Y, what `enroll` writes): {}\n",
            self.out.display(),
            pub_path.display(),
            hex::encode(td_shim::secure_boot::key_hash(&public))
        ))
    }
}

impl SignArgs {
    /// The combinations clap cannot state.
    pub fn usage_error(&self) -> Option<&'static str> {
        if self.key.is_none() && self.pubkey.is_none() && !self.print_message {
            return Some("give --key KEY, or --pubkey PUB with --print-message or --signature");
        }
        if self.pubkey.is_some() && !self.print_message && self.signature.is_none() {
            return Some("--pubkey needs --print-message (step 1) or --signature SIG (step 2)");
        }
        if !self.print_message && self.output.is_none() {
            return Some("give -o OUT, where the signed payload is written");
        }
        None
    }

    /// Signs, prints the message, or attaches a signature.
    pub fn run(&self) -> Result<()> {
        let payload = read(&self.input, &PAYLOAD_FILE)?;
        let what = || format!("cannot sign {}", self.input.display());
        if self.print_message {
            if let Some(p) = &self.pubkey {
                read_public(p)?;
            }
            let message =
                message_to_sign(&payload, self.payload_version, self.svn).with_context(what)?;
            return match &self.output {
                Some(path) => Ok(files::write(path, &message)?),
                None => Ok(files::write_stdout(&message)?),
            };
        }
        let Some(output) = &self.output else {
            bail!("give -o OUT")
        };
        let (signed, public) = match (&self.key, &self.pubkey, &self.signature) {
            (Some(k), _, _) => {
                let bytes = read(k, &KEY_FILE)?;
                let key = read_private_key(&bytes)
                    .with_context(|| format!("cannot use {}", k.display()))?;
                let signed =
                    sign(&key, &payload, self.payload_version, self.svn).with_context(what)?;
                (signed, *key.public())
            }
            (None, Some(p), Some(s)) => {
                let public = read_public(p)?;
                let sig = read(s, &SIGNATURE_FILE)?;
                let signed = attach(&public, &payload, self.payload_version, self.svn, &sig)
                    .with_context(|| {
                        format!(
                            "cannot attach {} to {} (a signature over the message `sign \
                             --print-message` writes for this payload, --svn and \
                             --payload-version, by {}?)",
                            s.display(),
                            self.input.display(),
                            p.display()
                        )
                    })?;
                (signed, public)
            }
            _ => bail!("give --key KEY, or --pubkey PUB with --signature SIG"),
        };
        files::write(output, &signed)?;
        print(&format!(
            "wrote {}: payload {} bytes, SVN {}, version {}, signer SHA-384 {} (verified)\n",
            output.display(),
            payload.len(),
            self.svn,
            self.payload_version,
            hex::encode(td_shim::secure_boot::key_hash(&public))
        ))
    }
}

/// What `enroll` did.
#[derive(Debug, Serialize)]
pub struct EnrollReport {
    /// The image written.
    pub output: String,
    /// The enrolled key's hash (null after --remove).
    pub key_hash: Option<String>,
    /// The enrolled minimum SVN (null after --remove).
    pub min_svn: Option<u64>,
    /// The key the input image enrolled before, if any.
    pub replaced: Option<String>,
}

impl EnrollReport {
    fn to_text(&self) -> String {
        let mut s = format!("wrote {}: ", self.output);
        match (&self.key_hash, self.min_svn) {
            (Some(h), Some(m)) => {
                s += &format!("key SHA-384 {h} enrolled, minimum payload SVN {m}");
            }
            _ => s += "no key enrolled (payloads boot unverified)",
        }
        if let Some(r) = &self.replaced {
            s += &format!(" (replaced key SHA-384 {r})");
        }
        s.push('\n');
        s += "note: the record is in the measured metadata page: the image's MRTD and SEV-SNP \
              launch digest change; compute its reference values again\n";
        s
    }
}

impl EnrollArgs {
    /// Writes the record into a copy of the image.
    pub fn run(&self) -> Result<()> {
        let image = read(&self.image, &Limit::TD_SHIM_IMAGE)?;
        let key = match (&self.pubkey, self.min_svn, self.remove) {
            (_, _, true) => None,
            (Some(p), Some(min_svn), false) => Some(super::enrolled_key(&read_public(p)?, min_svn)),
            _ => bail!("give --pubkey PUB and --min-svn N, or --remove"),
        };
        let (out, previous) = enroll(&image, key.as_ref())
            .with_context(|| format!("cannot enroll a key in {}", self.image.display()))?;
        files::write(&self.output, &out)?;
        let report = EnrollReport {
            output: self.output.display().to_string(),
            key_hash: key.map(|k| hex::encode(k.key_hash)),
            min_svn: key.map(|k| k.min_svn),
            replaced: previous.map(|k| hex::encode(k.key_hash)),
        };
        if self.json {
            let mut s = serde_json::to_string_pretty(&report)?;
            s.push('\n');
            print(&s)
        } else {
            print(&report.to_text())
        }
    }
}

impl VerifySignatureArgs {
    /// The enrolled key to verify against.
    fn enrolled(&self) -> Result<EnrolledKey> {
        match (&self.pubkey, &self.image) {
            (Some(p), _) => Ok(super::enrolled_key(
                &read_public(p)?,
                self.min_svn.unwrap_or(0),
            )),
            (None, Some(i)) => {
                let image = read(i, &Limit::TD_SHIM_IMAGE)?;
                match image_key(&image).with_context(|| format!("{}", i.display()))? {
                    Some(k) => Ok(k),
                    None => bail!(
                        "{}: no key enrolled, so the firmware boots payloads without verifying \
                         them; nothing to verify against",
                        i.display()
                    ),
                }
            }
            (None, None) => bail!("give --pubkey PUB or --image IMG"),
        }
    }

    /// The firmware's verdict; an error is a usage or input error (exit 2), a refusal is in
    /// the report (exit 1).
    pub fn run(&self) -> Result<VerifyReport> {
        let enrolled = self.enrolled()?;
        let file = read(&self.signed, &PAYLOAD_FILE)?;
        Ok(verify_report(&file, &enrolled))
    }

    /// Prints the report.
    pub fn print(&self, report: &VerifyReport) -> Result<()> {
        if self.json {
            let mut s = serde_json::to_string_pretty(report)?;
            s.push('\n');
            print(&s)
        } else {
            print(&report.to_text())
        }
    }
}
