//! Secure boot in the pipeline: the enrolled key record read from the image, and the one
//! verification ([`crate::secure_boot::verify`]) of the firmware's own copy of a payload before
//! anything of it is measured or run.

use crate::arch::phys;
use crate::measurement::SecureBoot;
use crate::secure_boot::{self, Verified};
use crate::BootError;
use td_layout::layout::Region;
use td_layout::signed::{EnrolledKey, ENROLLED_KEY_BASE, RECORD_SIZE};

/// The image's enrolled key: a copy of the record's bytes as the image holds them (measured as
/// they are) and the key they describe.
pub(super) struct Enrolled {
    record: &'static [u8; RECORD_SIZE],
    key: EnrolledKey,
}

/// Reads the enrolled key record from the image in memory (inside the metadata page, which TDX
/// measures into MRTD and SEV-SNP into the launch digest). `None` when it is all zero: no key
/// is enrolled and the boot is exactly an unsigned one. A record that is neither is an error.
pub(super) fn enrolled() -> Result<Option<Enrolled>, BootError> {
    let region = Region {
        name: "enrolled-key",
        base: ENROLLED_KEY_BASE,
        size: RECORD_SIZE as u64,
    };
    let in_image: &[u8; RECORD_SIZE] = phys::image(region)
        .and_then(|b| b.try_into().ok())
        .ok_or(BootError::RegionUnavailable("enrolled-key"))?;
    // One copy, read once: what is parsed is exactly what is measured later, whatever happens
    // to the image's memory in between (on a plain VM the VMM could rewrite its ROM).
    let record: &'static [u8; RECORD_SIZE] =
        alloc::boxed::Box::leak(alloc::boxed::Box::new(*in_image));
    let Some(key) = EnrolledKey::parse(record).map_err(BootError::EnrolledKey)? else {
        return Ok(None);
    };
    log::info!(
        "secure boot: key {}... enrolled ({}), minimum payload SVN {}",
        super::Hex(&key.key_hash[..8]),
        key.algorithm.name(),
        key.min_svn
    );
    Ok(Some(Enrolled { record, key }))
}

impl Enrolled {
    /// Verifies `file` (the firmware's copy of a payload with its signature trailer): the
    /// payload without the trailer, its digest as signed ([`secure_boot::payload_digest`], for a
    /// bzImage also its measured kernel digest) and what the plan records, or the refusal.
    pub(super) fn verify<'a>(
        &self,
        what: &str,
        file: &'a [u8],
    ) -> Result<(&'a [u8], [u8; 48], SecureBoot<'static>), BootError> {
        let Verified {
            payload,
            payload_digest,
            svn,
            version,
            signer,
        } = secure_boot::verify(file, &self.key).map_err(BootError::SecureBoot)?;
        log::info!(
            "secure boot: {what} of {} bytes verified: signer {}..., SVN {svn}, version {version}",
            payload.len(),
            super::Hex(&signer[..8])
        );
        Ok((
            payload,
            payload_digest,
            SecureBoot {
                record: self.record,
                signer,
                svn,
            },
        ))
    }
}
