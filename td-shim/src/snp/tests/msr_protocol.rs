//! The GHCB MSR protocol: encodings, every response check, the model's sequencing rules.

extern crate std;

use super::super::cpu::SevCpu;
use super::super::model::{Call, Inject, Model};
use super::super::msr_protocol::*;
use super::super::psc::PageOp;
use super::GHCB_GPA;
use std::string::ToString;

#[test]
fn requests_are_encoded_as_the_spec_lays_them_out() {
    assert_eq!(sev_info_request(), 0x002);
    assert_eq!(hv_features_request(), 0x080);
    // Leaf in 63:32, register in 31:30, code 0x004.
    assert_eq!(
        cpuid_request(0x8000_001F, CpuidRegister::Ebx),
        0x8000_001F_4000_0004
    );
    assert_eq!(cpuid_request(1, CpuidRegister::Edx), 0x1_C000_0004);
    assert_eq!(register_ghcb_request(0x800).unwrap(), 0x80_0012);
    // GFN in 51:12, operation in 55:52.
    assert_eq!(
        psc_request(0x1234, PageOp::Private).unwrap(),
        0x0010_0000_0123_4014
    );
    assert_eq!(
        psc_request(MAX_GFN, PageOp::Shared).unwrap(),
        0x002F_FFFF_FFFF_F014
    );
    assert!(psc_request(MAX_GFN + 1, PageOp::Shared).is_err());
    assert!(register_ghcb_request(MAX_GFN + 1).is_err());
    // Reason set in 15:12, code in 23:16.
    assert_eq!(terminate_request(TermReason::GENERAL), 0x100);
    assert_eq!(terminate_request(TermReason::SNP_UNSUPPORTED), 0x02_0100);
    assert_eq!(
        terminate_request(TermReason::new(0xF, 0xAB).unwrap()),
        0xAB_F100
    );
    assert_eq!(TermReason::new(16, 0), None);
}

#[test]
fn responses_are_decoded_and_their_code_checked() {
    let info = decode_sev_info(0x0002_0001_3300_0001).unwrap();
    assert_eq!(
        info,
        SevInfo {
            max_version: 2,
            min_version: 1,
            c_bit: 0x33
        }
    );
    assert_eq!(
        decode_sev_info(0x0002_0001_3300_0005),
        Err(MsrProtocolError::WrongResponse {
            request: 0x002,
            response: 0x0002_0001_3300_0005
        })
    );
    let req = cpuid_request(7, CpuidRegister::Ecx);
    assert_eq!(decode_cpuid(req, 0xDEAD_BEEF_8000_0005), Ok(0xDEAD_BEEF));
    assert!(decode_cpuid(req, 0xDEAD_BEEF_8000_0004).is_err());
    assert_eq!(decode_hv_features(0x3081), Ok(HvFeatures(3)));
    assert!(decode_hv_features(0x3080).is_err());
    assert_eq!(decode_register_ghcb(0x800, 0x80_0013), Ok(()));
    assert!(matches!(
        decode_register_ghcb(0x800, 0x81_0013),
        Err(MsrProtocolError::GhcbRegistration { gfn: 0x800, .. })
    ));
    assert_eq!(decode_psc(0x5000, PageOp::Private, 0x15), Ok(()));
    assert_eq!(
        decode_psc(0x5000, PageOp::Private, 0x7_0000_0015),
        Err(MsrProtocolError::PageStateChange {
            gpa: 0x5000,
            op: PageOp::Private,
            error: 7
        })
    );
    assert!(decode_psc(0x5000, PageOp::Private, 0x13).is_err());
    let f = HvFeatures(0b101);
    assert!(f.snp() && !f.ap_creation() && f.restricted_injection());
}

#[test]
fn negotiation_accepts_a_window_that_includes_version_2() {
    for (max, min) in [(2, 1), (2, 2), (5, 2), (3, 1)] {
        let m = Model::new();
        m.set_sev_info(max, min, 51);
        let info = negotiate(&m).unwrap();
        assert_eq!(
            (info.max_version, info.min_version, info.c_bit),
            (max, min, 51)
        );
        m.assert_clean();
    }
    for (max, min) in [(1, 1), (4, 3)] {
        let m = Model::new();
        m.set_sev_info(max, min, 51);
        assert_eq!(
            negotiate(&m),
            Err(MsrProtocolError::UnsupportedVersion { min, max })
        );
    }
}

#[test]
fn a_wrong_response_code_is_an_error_whatever_the_data() {
    let m = Model::new();
    // A CPUID response where the SEV information response belongs.
    m.inject(Inject::MsrResponse(0x0002_0002_3300_0005));
    let e = negotiate(&m).unwrap_err();
    assert!(matches!(
        e,
        MsrProtocolError::WrongResponse { request: 2, .. }
    ));
    assert!(e.to_string().contains("SEV information request"));
    m.assert_clean();
}

#[test]
fn snp_must_be_among_the_hypervisor_features() {
    let m = Model::new();
    negotiate(&m).unwrap();
    assert_eq!(require_snp(&m).unwrap(), HvFeatures(0b11));
    m.set_features(0b10);
    assert_eq!(
        require_snp(&m),
        Err(MsrProtocolError::NoSnp { features: 0b10 })
    );
    m.inject(Inject::MsrResponse(0x1001));
    assert!(matches!(
        hv_features(&m),
        Err(MsrProtocolError::WrongResponse { .. })
    ));
    m.assert_clean();
}

#[test]
fn cpuid_asks_for_each_register() {
    let m = Model::new();
    negotiate(&m).unwrap();
    m.set_cpuid(0x8000_001F, 0, [0x1_003F, 0x73, 0x1FD, 1]);
    let r = cpuid(&m, 0x8000_001F).unwrap();
    assert_eq!((r.eax, r.ebx, r.ecx, r.edx), (0x1_003F, 0x73, 0x1FD, 1));
    let requests: std::vec::Vec<u64> = m
        .calls()
        .iter()
        .skip(1)
        .map(|c| match c {
            Call::Msr { request, .. } => *request,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        requests,
        [0, 1, 2, 3].map(|r| 0x8000_001F_0000_0004u64 | r << 30)
    );
    // A wrong code in the first answer: no further request is made.
    m.inject(Inject::MsrResponse(0x55_0000_0001));
    let calls_before = m.calls().len();
    assert!(cpuid(&m, 2).is_err());
    assert_eq!(
        m.calls().len(),
        calls_before + 1,
        "stops at the first bad answer"
    );
    m.assert_clean();
}

#[test]
fn the_ghcb_is_registered_and_the_answer_checked() {
    let m = Model::new();
    m.add_ram(0, 16 << 20);
    negotiate(&m).unwrap();
    register_ghcb(&m, GHCB_GPA).unwrap();
    assert_eq!(m.registered(), Some(GHCB_GPA));
    m.assert_clean();

    // Unaligned: refused before any request.
    let n = m.calls().len();
    assert!(matches!(
        register_ghcb(&m, GHCB_GPA + 8),
        Err(MsrProtocolError::InvalidArgument { .. })
    ));
    assert_eq!(m.calls().len(), n);

    // Another GFN answered.
    m.inject(Inject::MsrResponse(0x81_0013));
    assert_eq!(
        register_ghcb(&m, GHCB_GPA),
        Err(MsrProtocolError::GhcbRegistration {
            gfn: GHCB_GPA >> 12,
            response: 0x81_0013
        })
    );
    // Refused (all ones): the model refuses a GHCB outside RAM.
    let e = register_ghcb(&m, 1 << 40).unwrap_err();
    assert!(matches!(e, MsrProtocolError::GhcbRegistration { .. }));
    assert_eq!(
        m.violations().len(),
        1,
        "the model saw the GHCB outside RAM"
    );
}

#[test]
fn one_page_changes_state_and_errors_are_reported() {
    let m = Model::new();
    m.add_ram(0, 16 << 20);
    negotiate(&m).unwrap();
    page_state_change(&m, 0x3000, PageOp::Private).unwrap();
    assert!(m.is_private(0x3000));
    page_state_change(&m, 0x3000, PageOp::Shared).unwrap();
    assert!(!m.is_private(0x3000));
    assert!(matches!(
        page_state_change(&m, 0x3001, PageOp::Private),
        Err(MsrProtocolError::InvalidArgument { .. })
    ));
    m.inject(Inject::MsrResponse(0x2_0000_0015));
    assert_eq!(
        page_state_change(&m, 0x4000, PageOp::Private),
        Err(MsrProtocolError::PageStateChange {
            gpa: 0x4000,
            op: PageOp::Private,
            error: 2
        })
    );
    m.inject(Inject::MsrResponse(0x13));
    assert!(matches!(
        page_state_change(&m, 0x4000, PageOp::Private),
        Err(MsrProtocolError::WrongResponse { .. })
    ));
    m.assert_clean();
}

#[test]
fn termination_carries_the_reason_and_a_return_is_an_error() {
    let m = Model::new();
    negotiate(&m).unwrap();
    let e = terminate(&m, TermReason::new(3, 0x42).unwrap());
    assert_eq!(m.terminated(), Some(0x42_3100));
    assert!(matches!(e, MsrProtocolError::TerminateReturned { .. }));
    // Anything after it breaks the model's rule.
    m.ghcb_msr_write(sev_info_request());
    m.vmgexit(None);
    assert_eq!(m.violations().len(), 1);
}

#[test]
fn the_model_catches_requests_before_negotiation() {
    let m = Model::new();
    let _ = cpuid(&m, 1);
    assert_eq!(m.violations().len(), 4, "one per register request");
}
