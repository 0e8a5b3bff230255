//! TDX quote v4: `td_shim::tdx::quote::parse` and `parse_report_body`, the reader that
//! `td-shim-tool verify`, `td-shim-tool eventlog replay --quote` and the guest agent share.
//!
//! Input: the quote bytes (a configfs-tsm `outblob`, or a file given to `td-shim-tool`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use td_shim::tdx::quote::{layout, parse, parse_report_body, QuoteError, TEE_TYPE_TDX};

fuzz_target!(|data: &[u8]| {
    let body = parse_report_body(data);
    match parse(data) {
        Ok(q) => {
            // What was checked holds, and every field sits where the layout says.
            assert_eq!(q.version(), 4);
            assert_eq!(q.tee_type(), TEE_TYPE_TDX);
            assert!(q.len() <= data.len());
            assert_eq!(q.len(), layout::SIGNATURE_DATA + q.signature_data().len());
            assert_eq!(q.signature_data_len() as usize, q.signature_data().len());
            assert_eq!(q.signature_data(), &data[layout::SIGNATURE_DATA..q.len()]);
            assert_eq!(&q.mrtd()[..], &data[layout::MRTD..][..48]);
            for (i, rtmr) in q.rtmrs().iter().enumerate() {
                assert_eq!(&rtmr[..], &data[layout::RTMR0 + 48 * i..][..48]);
            }
            assert_eq!(&q.report_data()[..], &data[layout::REPORT_DATA..][..64]);
            assert_eq!(q.debug(), data[layout::TD_ATTRIBUTES] & 1 == 1);
            // The quote alone, without what follows it, is the same quote.
            let alone = parse(&data[..q.len()]).expect("the quote's own bytes");
            assert_eq!(alone.len(), q.len());
            // The body reader agrees.
            let body = body.expect("a quote has a body");
            assert!(core::ptr::eq(body, q.body()));
        }
        Err(e) => {
            // A length error is true of the input.
            if let Some(min) = e.min_size() {
                assert!((data.len() as u64) < min, "{e}: {} bytes", data.len());
            }
            let _ = e.to_string();
            // The body reader fails alike, except that it does not need the signature data.
            match e {
                QuoteError::SignatureTruncated { .. } => assert!(body.is_ok()),
                _ => assert_eq!(body.err(), Some(e)),
            }
        }
    }
});
