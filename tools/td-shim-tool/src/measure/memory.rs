//! The RAM size of a launch, written as QEMU's `-m` takes it, in bytes.
//!
//! QEMU reads `-m SIZE` (or `-m size=SIZE`) in two steps, and this module does the same:
//!
//! 1. SIZE is a byte size in QEMU's size syntax (below). If it is 0, QEMU uses the machine's
//!    default RAM size; that is refused here ([`MemoryError::Zero`]): give the size.
//! 2. If SIZE ends in a digit (no unit), `M` is appended: a bare number counts MiB. The result is
//!    read again in the size syntax and rounded up to a multiple of 8 KiB.
//!
//! The size syntax (QEMU's `qemu_strtosz`, units of 1024):
//!
//! - a decimal integer, then an optional unit `B`, `K`, `M`, `G`, `T`, `P` or `E` (either case):
//!   `512M`, `5G`, `2048k`, `1024` (MiB, by step 2), `536870912B`;
//! - a decimal fraction, with a unit larger than bytes: `1.5G`, `.5G`, `1.G` (the fraction is
//!   rounded to the nearest byte, halves up; `1.5` alone is refused, as QEMU refuses it);
//! - `0x` and hexadecimal digits, in bytes and without a unit. After step 2 only hexadecimal
//!   ending in a letter stays valid (`0x1b` is 27 bytes); `0x400` becomes `0x400M`, which is
//!   refused as QEMU refuses it;
//! - leading white space and a `+` are allowed; a sign `-` is not.
//!
//! Anything else (`512MB`, `1e3`, `-1`, `slots=2`, an empty string) is a [`MemoryError`], so a
//! size accepted here means exactly what it means to QEMU.

use std::fmt;

/// QEMU rounds the RAM size up to this.
pub const RAM_SIZE_ALIGNMENT: u64 = 8192;

/// Why a `--memory` value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemoryError {
    /// Nothing given.
    Empty,
    /// Not a size in QEMU's syntax.
    Invalid(String),
    /// A negative size.
    Negative(String),
    /// More than 2^64 - 1 bytes (after rounding up to 8 KiB).
    TooLarge(String),
    /// 0, which QEMU replaces by the machine's default size.
    Zero(String),
    /// A `-m` option other than `size` (`slots`, `maxmem`): not part of the launch parameters.
    OtherOption(String),
}

const SYNTAX: &str = "a number with an optional unit B, K, M, G, T, P or E (1024-based); \
                      without a unit it counts MiB, as QEMU's -m";

impl fmt::Display for MemoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "the memory size is empty: give {SYNTAX}"),
            Self::Invalid(s) => write!(f, "{s:?} is not a memory size: give {SYNTAX}"),
            Self::Negative(s) => write!(f, "{s:?} is negative: a memory size is at least 8 KiB"),
            Self::TooLarge(s) => write!(f, "{s:?} is larger than 2^64 - 1 bytes"),
            Self::Zero(s) => write!(
                f,
                "{s:?} is zero (QEMU would use its machine default): give the RAM size"
            ),
            Self::OtherOption(s) => write!(
                f,
                "{s:?}: give only the size (slots and maxmem are not launch parameters)"
            ),
        }
    }
}

impl std::error::Error for MemoryError {}

/// Bytes of RAM QEMU gives a VM started with `-m text`.
pub fn parse_memory(text: &str) -> Result<u64, MemoryError> {
    let size = text.strip_prefix("size=").unwrap_or(text);
    if size.contains(',') || size.contains('=') {
        return Err(MemoryError::OtherOption(text.to_owned()));
    }
    if size.is_empty() {
        return Err(MemoryError::Empty);
    }
    if strtosz(size, text)? == 0 {
        return Err(MemoryError::Zero(text.to_owned()));
    }
    let bytes = if size.ends_with(|c: char| c.is_ascii_digit()) {
        strtosz(&format!("{size}M"), text)?
    } else {
        strtosz(size, text)?
    };
    bytes
        .checked_next_multiple_of(RAM_SIZE_ALIGNMENT)
        .ok_or_else(|| MemoryError::TooLarge(text.to_owned()))
}

/// The multiplier of a unit letter, if `c` is one.
fn unit(c: u8) -> Option<u64> {
    let shift = match c.to_ascii_uppercase() {
        b'B' => 0,
        b'K' => 10,
        b'M' => 20,
        b'G' => 30,
        b'T' => 40,
        b'P' => 50,
        b'E' => 60,
        _ => return None,
    };
    Some(1 << shift)
}

/// `qemu_strtosz`: `s` as a byte size; `text` (the user's argument) names it in errors.
fn strtosz(s: &str, text: &str) -> Result<u64, MemoryError> {
    let invalid = || MemoryError::Invalid(text.to_owned());
    let too_large = || MemoryError::TooLarge(text.to_owned());
    // C's isspace.
    let s = s.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    if s.starts_with('-') {
        return Err(MemoryError::Negative(text.to_owned()));
    }
    let s = s.strip_prefix('+').unwrap_or(s).as_bytes();
    let digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
    let (int_part, mut rest) = s.split_at(digits);

    // Hexadecimal: exactly "0x" then digits, in bytes, no fraction, no unit, nothing after.
    if int_part == b"0" && matches!(rest.first(), Some(b'x' | b'X')) {
        let hex = &rest[1..];
        let n = hex.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        if n == 0 || n != hex.len() {
            return Err(invalid());
        }
        let text = std::str::from_utf8(hex).map_err(|_| invalid())?;
        return u64::from_str_radix(text, 16).map_err(|_| too_large());
    }

    let mut whole: u64 = if digits == 0 {
        0
    } else {
        std::str::from_utf8(int_part)
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or_else(too_large)?
    };
    // The fraction as 64.64 fixed point (QEMU converts it with strtod and scales by 2^64).
    let mut fraction: u64 = 0;
    if rest.first() == Some(&b'.') {
        let frac_digits = rest[1..].iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 && frac_digits == 0 {
            return Err(invalid());
        }
        let frac_text = std::str::from_utf8(&rest[1..1 + frac_digits]).map_err(|_| invalid())?;
        rest = &rest[1 + frac_digits..];
        if frac_digits > 0 {
            let value: f64 = format!("0.{frac_text}").parse().map_err(|_| invalid())?;
            if value >= 1.0 {
                whole = whole.checked_add(1).ok_or_else(too_large)?;
            } else {
                // `as` truncates, like C's cast; any non-zero fraction keeps a non-zero bit.
                fraction = (value * 2f64.powi(64)) as u64;
                if fraction == 0 && frac_text.bytes().any(|b| b != b'0') {
                    fraction = 1;
                }
            }
        }
    } else if digits == 0 {
        return Err(invalid());
    }

    let multiplier = match rest.first().and_then(|&c| unit(c)) {
        Some(m) => {
            rest = &rest[1..];
            m
        }
        None => 1,
    };
    if !rest.is_empty() || (multiplier == 1 && fraction != 0) {
        return Err(invalid());
    }
    // whole * multiplier + fraction * multiplier / 2^64, rounding halves up.
    let scaled = u128::from(fraction) * u128::from(multiplier);
    let extra = (scaled >> 64) + ((scaled >> 63) & 1);
    u64::try_from(u128::from(whole) * u128::from(multiplier) + extra).map_err(|_| too_large())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: u64 = 1 << 10;
    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;
    const TIB: u64 = 1 << 40;

    #[test]
    fn units_and_the_mib_default() {
        for (text, bytes) in [
            ("512M", 512 * MIB),
            ("512m", 512 * MIB),
            ("5G", 5 * GIB),
            ("5g", 5 * GIB),
            ("1T", TIB),
            ("1t", TIB),
            ("2048k", 2 * MIB),
            ("2048K", 2 * MIB),
            ("1024", GIB),
            ("1", MIB),
            ("536870912B", 512 * MIB),
            ("536870912b", 512 * MIB),
            ("1P", 1 << 50),
            ("1E", 1 << 60),
            ("size=512M", 512 * MIB),
            ("size=1024", GIB),
            ("0512M", 512 * MIB), // decimal, not octal
        ] {
            assert_eq!(parse_memory(text), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn rounding_up_to_8_kib() {
        assert_eq!(parse_memory("1k"), Ok(8 * KIB));
        assert_eq!(parse_memory("8193B"), Ok(16 * KIB));
        assert_eq!(parse_memory("8192B"), Ok(8 * KIB));
        assert_eq!(parse_memory("100k"), Ok(104 * KIB));
    }

    #[test]
    fn fractions() {
        assert_eq!(parse_memory("1.5G"), Ok(GIB + GIB / 2));
        assert_eq!(parse_memory(".5G"), Ok(GIB / 2));
        assert_eq!(parse_memory("1.G"), Ok(GIB));
        assert_eq!(parse_memory("0.25M"), Ok(256 * KIB));
        // A fraction of a byte rounds (halves up), then the size rounds up to 8 KiB.
        assert_eq!(strtosz("1.5k", ""), Ok(1536));
        assert_eq!(strtosz("0.0005k", ""), Ok(1));
        assert_eq!(strtosz("0.0004k", ""), Ok(0));
        // So many nines that strtod rounds the fraction to 1.
        assert_eq!(strtosz("1.99999999999999999999M", ""), Ok(2 * MIB));
        // Without a unit, a fraction is refused in the first reading (bytes), as QEMU does.
        for text in ["1.5", ".5", "1.5B"] {
            assert_eq!(
                parse_memory(text),
                Err(MemoryError::Invalid(text.into())),
                "{text}"
            );
        }
    }

    #[test]
    fn hexadecimal() {
        assert_eq!(parse_memory("0x1b"), Ok(8 * KIB)); // 27 bytes
        assert_eq!(strtosz("0x1b", ""), Ok(27));
        assert_eq!(parse_memory("0x2000000a"), Ok(0x2000_2000));
        // Ending in a digit, it gets the M unit, and hexadecimal takes no unit.
        for text in ["0x400", "0x20M", "0x1.8", "0x", "00x10", "0xg"] {
            assert_eq!(
                parse_memory(text),
                Err(MemoryError::Invalid(text.into())),
                "{text}"
            );
        }
    }

    #[test]
    fn white_space_and_plus() {
        assert_eq!(parse_memory(" 512M"), Ok(512 * MIB));
        assert_eq!(parse_memory("+512M"), Ok(512 * MIB));
        assert_eq!(
            parse_memory("512M "),
            Err(MemoryError::Invalid("512M ".into()))
        );
    }

    #[test]
    fn refusals() {
        assert_eq!(parse_memory(""), Err(MemoryError::Empty));
        assert_eq!(parse_memory("size="), Err(MemoryError::Empty));
        for text in [
            "512MB", "M", "abc", "1e3", "5GiB", "five", ".", ".M", "1..5G", "1.5.G", "0b1000",
            "inf", "NaN", "1 G",
        ] {
            assert_eq!(
                parse_memory(text),
                Err(MemoryError::Invalid(text.into())),
                "{text}"
            );
        }
        for text in ["-1", "-512M", " -0", "-.5G"] {
            assert_eq!(
                parse_memory(text),
                Err(MemoryError::Negative(text.into())),
                "{text}"
            );
        }
        for text in ["0", "0M", "0.0G", "size=0"] {
            assert_eq!(
                parse_memory(text),
                Err(MemoryError::Zero(text.into())),
                "{text}"
            );
        }
        for text in [
            "16E",
            "16384P",
            "18446744073709551616",
            "99999999999999999999G",
        ] {
            assert_eq!(
                parse_memory(text),
                Err(MemoryError::TooLarge(text.into())),
                "{text}"
            );
        }
        // The largest size that still rounds up to 8 KiB within 64 bits.
        assert_eq!(
            parse_memory("18446744073709543424B"),
            Ok(18_446_744_073_709_543_424)
        );
        assert_eq!(
            parse_memory("18446744073709543425B"),
            Err(MemoryError::TooLarge("18446744073709543425B".into()))
        );
        for text in ["512M,slots=2", "size=512M,maxmem=4G", "slots=2"] {
            assert_eq!(
                parse_memory(text),
                Err(MemoryError::OtherOption(text.into())),
                "{text}"
            );
        }
    }

    #[test]
    fn every_error_says_what_was_given() {
        for e in [
            MemoryError::Invalid("x".into()),
            MemoryError::Negative("x".into()),
            MemoryError::TooLarge("x".into()),
            MemoryError::Zero("x".into()),
            MemoryError::OtherOption("x".into()),
        ] {
            assert!(e.to_string().contains("\"x\""), "{e}");
        }
        assert!(MemoryError::Empty.to_string().contains("MiB"));
    }
}
