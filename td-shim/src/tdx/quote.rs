//! TDX quote version 4: the header and the TD report body (TDX 1.0), read from untrusted bytes.
//!
//! A quote is the 48-byte [`QuoteHeader`], the 584-byte [`TdReportBody`], a little-endian u32
//! giving the signature data's length, and that many bytes of signature data (the ECDSA
//! signature, the attestation key, the QE report and the PCK certificate chain). Bytes after
//! the signature data are allowed: quote buffers are often padded (the real quote of
//! `testdata/eventlogs`, from go-tdx-guest, is 4935 bytes followed by zeros up to 8000).
//!
//! [`parse`] checks the version (4), the TEE type (0x81, TDX) and that the signature data it
//! declares fits the bytes; [`parse_report_body`] checks all but the last, for readers that
//! only need the registers. **Neither verifies the signature**: that takes Intel's collateral,
//! and is the verifier's job.
//!
//! The layout is Intel's TDX DCAP quote format (the research notes' §5.1); [`layout`] gives the
//! offsets from the start of the quote, and the compiler checks the structs against them.
//!
//! Used by `td-shim-tool verify`, `td-shim-tool eventlog replay --quote` and the guest agent.

use crate::eventlog::{Rtmrs, RTMR_COUNT, SHA384_DIGEST_SIZE};
use core::fmt;
use zerocopy::little_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

/// The quote version this module reads.
pub const VERSION_4: u16 = 4;
/// The `tee_type` of a TDX quote (0 is SGX).
pub const TEE_TYPE_TDX: u32 = 0x81;
/// TD_ATTRIBUTES bit 0: a debug TD (the host can read and write its state).
pub const TD_ATTRIBUTES_DEBUG: u64 = 1;
/// The size of REPORTDATA.
pub const REPORT_DATA_SIZE: usize = 64;

/// A SHA-384 measurement register value (MRTD, an RTMR, MRSEAM, ...).
pub type Digest = [u8; SHA384_DIGEST_SIZE];

/// The offsets of TDX quote v4, from the start of the quote (not of the body).
pub mod layout {
    /// `version`, u16 (4).
    pub const VERSION: usize = 0;
    /// `att_key_type`, u16 (2: ECDSA-256 with P-256).
    pub const ATT_KEY_TYPE: usize = 2;
    /// `tee_type`, u32 (0x81: TDX).
    pub const TEE_TYPE: usize = 4;
    /// `qe_vendor_id`, 16 bytes.
    pub const QE_VENDOR_ID: usize = 12;
    /// `user_data`, 20 bytes.
    pub const USER_DATA: usize = 28;
    /// The header's size; the TD report body follows it.
    pub const HEADER_SIZE: usize = 48;
    /// The TD report body's size (TDX 1.0).
    pub const BODY_SIZE: usize = 584;
    /// TEE_TCB_SVN, 16 bytes: the body's first field.
    pub const TEE_TCB_SVN: usize = 0x30;
    /// MRSEAM, 48 bytes.
    pub const MRSEAM: usize = 0x40;
    /// MRSIGNERSEAM, 48 bytes.
    pub const MRSIGNERSEAM: usize = 0x70;
    /// SEAM_ATTRIBUTES, 8 bytes.
    pub const SEAM_ATTRIBUTES: usize = 0xA0;
    /// TD_ATTRIBUTES, 8 bytes (little-endian u64; bit 0 DEBUG).
    pub const TD_ATTRIBUTES: usize = 0xA8;
    /// XFAM, 8 bytes.
    pub const XFAM: usize = 0xB0;
    /// MRTD, 48 bytes.
    pub const MRTD: usize = 0xB8;
    /// MRCONFIGID, 48 bytes.
    pub const MRCONFIGID: usize = 0xE8;
    /// MROWNER, 48 bytes.
    pub const MROWNER: usize = 0x118;
    /// MROWNERCONFIG, 48 bytes.
    pub const MROWNERCONFIG: usize = 0x148;
    /// RTMR0; RTMR1 to RTMR3 follow, 48 bytes each.
    pub const RTMR0: usize = 0x178;
    /// REPORTDATA, 64 bytes: the body's last field.
    pub const REPORT_DATA: usize = 0x238;
    /// The signature data's length, u32; the signature data follows it.
    pub const SIGNATURE_DATA_LEN: usize = 0x278;
    /// Where the signature data starts: the shortest quote is this plus its length.
    pub const SIGNATURE_DATA: usize = 0x27C;
}

/// The 48-byte quote header.
#[derive(Debug, FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct QuoteHeader {
    /// 4.
    pub version: U16,
    /// 2: ECDSA-256 with P-256.
    pub att_key_type: U16,
    /// 0x81: TDX.
    pub tee_type: U32,
    /// Reserved.
    pub reserved: [u8; 4],
    /// The quoting enclave's vendor (Intel's is `939a7233f79c4ca9940a0db3957f0607`).
    pub qe_vendor_id: [u8; 16],
    /// Custom data of the quoting enclave.
    pub user_data: [u8; 20],
}

impl QuoteHeader {
    /// `version`.
    pub fn version(&self) -> u16 {
        self.version.get()
    }

    /// `att_key_type`.
    pub fn att_key_type(&self) -> u16 {
        self.att_key_type.get()
    }

    /// `tee_type`.
    pub fn tee_type(&self) -> u32 {
        self.tee_type.get()
    }
}

/// The 584-byte TD report body (TDX 1.0).
#[derive(Debug, FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct TdReportBody {
    /// TEE_TCB_SVN.
    pub tee_tcb_svn: [u8; 16],
    /// MRSEAM: the TDX module's measurement.
    pub mrseam: Digest,
    /// MRSIGNERSEAM.
    pub mrsignerseam: Digest,
    /// SEAM_ATTRIBUTES.
    pub seam_attributes: [u8; 8],
    /// TD_ATTRIBUTES, little-endian (bit 0: DEBUG).
    pub td_attributes: [u8; 8],
    /// XFAM.
    pub xfam: [u8; 8],
    /// MRTD: the TD's build-time measurement.
    pub mrtd: Digest,
    /// MRCONFIGID.
    pub mrconfigid: Digest,
    /// MROWNER.
    pub mrowner: Digest,
    /// MROWNERCONFIG.
    pub mrownerconfig: Digest,
    /// RTMR0 to RTMR3.
    pub rtmrs: Rtmrs,
    /// REPORTDATA: what the requester bound to the quote (a nonce).
    pub report_data: [u8; REPORT_DATA_SIZE],
}

impl TdReportBody {
    /// MRTD.
    pub fn mrtd(&self) -> &Digest {
        &self.mrtd
    }

    /// RTMR0 to RTMR3.
    pub fn rtmrs(&self) -> &Rtmrs {
        &self.rtmrs
    }

    /// REPORTDATA.
    pub fn report_data(&self) -> &[u8; REPORT_DATA_SIZE] {
        &self.report_data
    }

    /// TD_ATTRIBUTES as a number.
    pub fn td_attributes(&self) -> u64 {
        u64::from_le_bytes(self.td_attributes)
    }

    /// Whether the TD is a debug TD (TD_ATTRIBUTES bit 0).
    pub fn debug(&self) -> bool {
        self.td_attributes() & TD_ATTRIBUTES_DEBUG != 0
    }
}

/// A quote up to the start of its signature data.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct Signed {
    header: QuoteHeader,
    body: TdReportBody,
    signature_data_len: U32,
}

const _: () = {
    use core::mem::{offset_of, size_of};
    const B: usize = layout::HEADER_SIZE;
    assert!(size_of::<QuoteHeader>() == layout::HEADER_SIZE);
    assert!(size_of::<TdReportBody>() == layout::BODY_SIZE);
    assert!(offset_of!(Signed, header) == 0);
    assert!(offset_of!(QuoteHeader, version) == layout::VERSION);
    assert!(offset_of!(QuoteHeader, att_key_type) == layout::ATT_KEY_TYPE);
    assert!(offset_of!(QuoteHeader, tee_type) == layout::TEE_TYPE);
    assert!(offset_of!(QuoteHeader, qe_vendor_id) == layout::QE_VENDOR_ID);
    assert!(offset_of!(QuoteHeader, user_data) == layout::USER_DATA);
    assert!(offset_of!(Signed, body) == B);
    assert!(B + offset_of!(TdReportBody, tee_tcb_svn) == layout::TEE_TCB_SVN);
    assert!(B + offset_of!(TdReportBody, mrseam) == layout::MRSEAM);
    assert!(B + offset_of!(TdReportBody, mrsignerseam) == layout::MRSIGNERSEAM);
    assert!(B + offset_of!(TdReportBody, seam_attributes) == layout::SEAM_ATTRIBUTES);
    assert!(B + offset_of!(TdReportBody, td_attributes) == layout::TD_ATTRIBUTES);
    assert!(B + offset_of!(TdReportBody, xfam) == layout::XFAM);
    assert!(B + offset_of!(TdReportBody, mrtd) == layout::MRTD);
    assert!(B + offset_of!(TdReportBody, mrconfigid) == layout::MRCONFIGID);
    assert!(B + offset_of!(TdReportBody, mrowner) == layout::MROWNER);
    assert!(B + offset_of!(TdReportBody, mrownerconfig) == layout::MROWNERCONFIG);
    assert!(B + offset_of!(TdReportBody, rtmrs) == layout::RTMR0);
    assert!(B + offset_of!(TdReportBody, report_data) == layout::REPORT_DATA);
    assert!(layout::REPORT_DATA + REPORT_DATA_SIZE == B + layout::BODY_SIZE);
    assert!(layout::RTMR0 + RTMR_COUNT * SHA384_DIGEST_SIZE == layout::REPORT_DATA);
    assert!(offset_of!(Signed, signature_data_len) == layout::SIGNATURE_DATA_LEN);
    assert!(size_of::<Signed>() == layout::SIGNATURE_DATA);
};

/// Why bytes are not a TDX quote v4. The checks run in this order, so a quote of another kind
/// is named as such whatever its length once its header is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuoteError {
    /// Fewer bytes than the 48-byte header.
    HeaderTruncated {
        /// The number of bytes.
        size: usize,
    },
    /// A version other than 4.
    Version(u16),
    /// A TEE type other than TDX (0x81).
    TeeType(u32),
    /// Fewer bytes than the header, the TD report body and the signature data's length
    /// ([`layout::SIGNATURE_DATA`], 636).
    BodyTruncated {
        /// The number of bytes.
        size: usize,
    },
    /// The signature data runs past the end of the bytes.
    SignatureTruncated {
        /// The number of bytes.
        size: usize,
        /// The signature data's declared length.
        declared: u32,
    },
}

impl QuoteError {
    /// The fewest bytes that would have got past this check, when the error is a length.
    pub fn min_size(&self) -> Option<u64> {
        match *self {
            Self::HeaderTruncated { .. } => Some(layout::HEADER_SIZE as u64),
            Self::BodyTruncated { .. } => Some(layout::SIGNATURE_DATA as u64),
            Self::SignatureTruncated { declared, .. } => {
                Some(layout::SIGNATURE_DATA as u64 + u64::from(declared))
            }
            Self::Version(_) | Self::TeeType(_) => None,
        }
    }
}

impl fmt::Display for QuoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HeaderTruncated { size } => write!(
                f,
                "{size} bytes, shorter than the {} bytes of a TD quote v4's header",
                layout::HEADER_SIZE
            ),
            Self::Version(v) => write!(f, "quote version {v}, not {VERSION_4}"),
            Self::TeeType(t) => write!(f, "TEE type {t:#x}, not {TEE_TYPE_TDX:#x} (TDX)"),
            Self::BodyTruncated { size } => write!(
                f,
                "{size} bytes, shorter than the {} bytes of a TD quote v4's header, TD report \
                 body and signature data length",
                layout::SIGNATURE_DATA
            ),
            Self::SignatureTruncated { size, declared } => write!(
                f,
                "the signature data of {declared} bytes runs past the end of the {size}-byte \
                 quote"
            ),
        }
    }
}

impl core::error::Error for QuoteError {}

/// A TDX quote v4 whose version, TEE type and signature-data length were checked (its signature
/// was not).
#[derive(Debug, Clone, Copy)]
pub struct QuoteV4<'a> {
    header: &'a QuoteHeader,
    body: &'a TdReportBody,
    signature_data: &'a [u8],
}

impl<'a> QuoteV4<'a> {
    /// The header.
    pub fn header(&self) -> &'a QuoteHeader {
        self.header
    }

    /// The TD report body.
    pub fn body(&self) -> &'a TdReportBody {
        self.body
    }

    /// The signature data, exactly as long as the quote declares (not verified).
    pub fn signature_data(&self) -> &'a [u8] {
        self.signature_data
    }

    /// The signature data's declared length.
    pub fn signature_data_len(&self) -> u32 {
        // `parse` took exactly this many bytes, so it fits.
        u32::try_from(self.signature_data.len()).unwrap_or(u32::MAX)
    }

    /// The quote's own length: header, body, signature-data length and signature data. Bytes
    /// after it were ignored.
    pub fn len(&self) -> usize {
        layout::SIGNATURE_DATA + self.signature_data.len()
    }

    /// Always false: a quote has at least a header and a body.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The header's `version` (4).
    pub fn version(&self) -> u16 {
        self.header.version()
    }

    /// The header's `att_key_type` (2: ECDSA-256 with P-256).
    pub fn att_key_type(&self) -> u16 {
        self.header.att_key_type()
    }

    /// The header's `tee_type` (0x81).
    pub fn tee_type(&self) -> u32 {
        self.header.tee_type()
    }

    /// MRTD.
    pub fn mrtd(&self) -> &'a Digest {
        &self.body.mrtd
    }

    /// RTMR0 to RTMR3.
    pub fn rtmrs(&self) -> &'a Rtmrs {
        &self.body.rtmrs
    }

    /// REPORTDATA.
    pub fn report_data(&self) -> &'a [u8; REPORT_DATA_SIZE] {
        &self.body.report_data
    }

    /// TD_ATTRIBUTES as a number.
    pub fn td_attributes(&self) -> u64 {
        self.body.td_attributes()
    }

    /// Whether the TD is a debug TD (TD_ATTRIBUTES bit 0).
    pub fn debug(&self) -> bool {
        self.body.debug()
    }
}

/// The header, checked: at least 48 bytes, version 4, TEE type TDX.
fn header(bytes: &[u8]) -> Result<&QuoteHeader, QuoteError> {
    let (header, _) = QuoteHeader::ref_from_prefix(bytes)
        .map_err(|_| QuoteError::HeaderTruncated { size: bytes.len() })?;
    if header.version() != VERSION_4 {
        return Err(QuoteError::Version(header.version()));
    }
    if header.tee_type() != TEE_TYPE_TDX {
        return Err(QuoteError::TeeType(header.tee_type()));
    }
    Ok(header)
}

/// The quote up to its signature data, and the bytes after that.
fn signed(bytes: &[u8]) -> Result<(&Signed, &[u8]), QuoteError> {
    header(bytes)?;
    Signed::ref_from_prefix(bytes).map_err(|_| QuoteError::BodyTruncated { size: bytes.len() })
}

/// Reads a TDX quote v4 at the start of `bytes`: checks the version, the TEE type, and that
/// `bytes` hold the header, the TD report body and the signature data the quote declares. Bytes
/// after the quote are allowed ([`QuoteV4::len`] says where it ends). The signature is not
/// verified. Never panics.
pub fn parse(bytes: &[u8]) -> Result<QuoteV4<'_>, QuoteError> {
    let (q, rest) = signed(bytes)?;
    let declared = q.signature_data_len.get();
    let signature_data = usize::try_from(declared)
        .ok()
        .and_then(|n| rest.get(..n))
        .ok_or(QuoteError::SignatureTruncated {
            size: bytes.len(),
            declared,
        })?;
    Ok(QuoteV4 {
        header: &q.header,
        body: &q.body,
        signature_data,
    })
}

/// The TD report body of the TDX quote v4 at the start of `bytes`, checked as [`parse`] checks
/// it except for the signature data's extent: for readers of the registers that do not look at
/// the signature data (at least [`layout::SIGNATURE_DATA`] bytes are still needed). Never
/// panics.
pub fn parse_report_body(bytes: &[u8]) -> Result<&TdReportBody, QuoteError> {
    signed(bytes).map(|(q, _)| &q.body)
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use proptest::prelude::*;
    use std::string::ToString;
    use std::vec::Vec;

    /// A real quote (google/go-tdx-guest, Container-Optimized OS 113 on TDX; provenance in
    /// testdata/README.md): 4935 bytes of quote, then zeros to 8000.
    const REAL: &[u8] = include_bytes!("../../../testdata/eventlogs/gotdx-cos-113-tdx-quote.dat");
    /// The CC event log of the same boot.
    const REAL_LOG: &[u8] = include_bytes!("../../../testdata/eventlogs/gotdx-ccel_data.dat");
    /// The quote's own length.
    const REAL_LEN: usize = 4935;

    #[test]
    fn the_real_quote() {
        assert_eq!(REAL.len(), 8000);
        let q = parse(REAL).unwrap();
        assert_eq!((q.version(), q.att_key_type(), q.tee_type()), (4, 2, 0x81));
        assert_eq!(q.signature_data_len(), 4299);
        assert_eq!(q.len(), REAL_LEN);
        assert_eq!(q.signature_data().len(), 4299);
        assert!(REAL[q.len()..].iter().all(|&b| b == 0));
        assert_eq!(
            q.header().qe_vendor_id,
            [
                0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9, 0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f,
                0x06, 0x07
            ],
            "Intel's QE"
        );
        assert_eq!(q.td_attributes(), 1 << 28, "SEPT_VE_DISABLE only");
        assert!(!q.debug());
        assert_eq!(q.mrtd()[..4], [0xda, 0xe6, 0x71, 0x81]);
        assert_eq!(&q.mrtd()[..], &REAL[layout::MRTD..][..48]);
        assert_eq!(&q.report_data()[..], &REAL[layout::REPORT_DATA..][..64]);
        assert_eq!(q.report_data(), &[0; 64]);
        // The log of the same boot replays to its RTMRs (RTMR3 is not extended: zero).
        let replayed = crate::eventlog::parse(REAL_LOG).unwrap().replay();
        assert_eq!(q.rtmrs(), &replayed);
        assert_eq!(q.rtmrs()[3], [0; 48]);
        assert_eq!(q.rtmrs()[0][..4], [0x3f, 0xa2, 0xf6, 0x1f]);
        // The body alone, as `parse_report_body` reads it, is the same.
        let body = parse_report_body(REAL).unwrap();
        assert_eq!((body.mrtd(), body.rtmrs()), (q.mrtd(), q.rtmrs()));
        assert!(core::ptr::eq(body, q.body()));
    }

    #[test]
    fn the_quote_without_its_padding_and_the_debug_bit() {
        let q = parse(&REAL[..REAL_LEN]).unwrap();
        assert_eq!(q.len(), REAL_LEN);
        let mut debug = REAL.to_vec();
        debug[layout::TD_ATTRIBUTES] |= 1;
        let q = parse(&debug).unwrap();
        assert!(q.debug());
        assert_eq!(q.td_attributes(), (1 << 28) | 1);
    }

    #[test]
    fn refusals_in_order() {
        assert_eq!(
            parse(&[]).unwrap_err(),
            QuoteError::HeaderTruncated { size: 0 }
        );
        assert_eq!(
            parse(&REAL[..47]).unwrap_err(),
            QuoteError::HeaderTruncated { size: 47 }
        );
        assert_eq!(
            parse(&REAL[..48]).unwrap_err(),
            QuoteError::BodyTruncated { size: 48 }
        );
        assert_eq!(
            parse(&REAL[..layout::SIGNATURE_DATA - 1]).unwrap_err(),
            QuoteError::BodyTruncated { size: 635 }
        );
        assert_eq!(
            parse(&REAL[..layout::SIGNATURE_DATA]).unwrap_err(),
            QuoteError::SignatureTruncated {
                size: 636,
                declared: 4299
            }
        );
        assert_eq!(
            parse(&REAL[..REAL_LEN - 1]).unwrap_err(),
            QuoteError::SignatureTruncated {
                size: REAL_LEN - 1,
                declared: 4299
            }
        );
        // `parse_report_body` does not look at the signature data.
        assert!(parse_report_body(&REAL[..layout::SIGNATURE_DATA]).is_ok());
        assert_eq!(
            parse_report_body(&REAL[..layout::SIGNATURE_DATA - 1]).unwrap_err(),
            QuoteError::BodyTruncated { size: 635 }
        );
        let mut huge = REAL.to_vec();
        huge[layout::SIGNATURE_DATA_LEN..][..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            parse(&huge).unwrap_err(),
            QuoteError::SignatureTruncated {
                size: 8000,
                declared: u32::MAX
            }
        );
        // The version and TEE type are named whatever the length, once the header is there.
        let mut v5 = REAL[..48].to_vec();
        v5[0] = 5;
        assert_eq!(parse(&v5).unwrap_err(), QuoteError::Version(5));
        let mut sgx = REAL.to_vec();
        sgx[layout::TEE_TYPE] = 0;
        assert_eq!(parse(&sgx).unwrap_err(), QuoteError::TeeType(0));
        assert_eq!(parse_report_body(&sgx).unwrap_err(), QuoteError::TeeType(0));
        assert_eq!(parse(&[0; 8000]).unwrap_err(), QuoteError::Version(0));
    }

    #[test]
    fn errors_say_why() {
        let cases = [
            (
                QuoteError::HeaderTruncated { size: 7 },
                "7 bytes, shorter than the 48 bytes of a TD quote v4's header",
            ),
            (QuoteError::Version(5), "quote version 5, not 4"),
            (QuoteError::TeeType(0), "TEE type 0x0, not 0x81 (TDX)"),
            (
                QuoteError::BodyTruncated { size: 600 },
                "600 bytes, shorter than the 636 bytes of a TD quote v4's header, TD report body \
                 and signature data length",
            ),
            (
                QuoteError::SignatureTruncated {
                    size: 4000,
                    declared: 4299,
                },
                "the signature data of 4299 bytes runs past the end of the 4000-byte quote",
            ),
        ];
        for (error, text) in cases {
            assert_eq!(error.to_string(), text);
        }
        assert_eq!(
            QuoteError::SignatureTruncated {
                size: 0,
                declared: u32::MAX
            }
            .min_size(),
            Some(636 + u64::from(u32::MAX))
        );
        assert_eq!(QuoteError::Version(5).min_size(), None);
    }

    proptest! {
        #[test]
        fn any_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
            if let Ok(q) = parse(&bytes) {
                prop_assert!(q.len() <= bytes.len());
                prop_assert_eq!(q.version(), 4);
                prop_assert_eq!(q.tee_type(), 0x81);
            }
            let _ = parse_report_body(&bytes);
        }

        #[test]
        fn a_damaged_real_quote_never_panics(
            cut in 0..REAL.len(),
            flips in prop::collection::vec((0..0x300usize, any::<u8>()), 0..8),
        ) {
            let mut bytes: Vec<u8> = REAL[..cut].to_vec();
            for (at, value) in flips {
                if let Some(byte) = bytes.get_mut(at) {
                    *byte = value;
                }
            }
            match parse(&bytes) {
                Ok(q) => {
                    prop_assert!(q.len() <= bytes.len());
                    prop_assert_eq!(&q.mrtd()[..], &bytes[layout::MRTD..][..48]);
                    prop_assert!(parse_report_body(&bytes).is_ok());
                }
                Err(e) => {
                    if let Some(min) = e.min_size() {
                        prop_assert!((bytes.len() as u64) < min);
                    }
                }
            }
        }

        #[test]
        fn the_real_header_with_any_tail_never_panics(
            tail in prop::collection::vec(any::<u8>(), 0..1024),
        ) {
            let mut bytes = REAL[..layout::HEADER_SIZE].to_vec();
            bytes.extend_from_slice(&tail);
            let _ = parse(&bytes);
        }
    }
}
