//! Finding a symbol in an ELF64 little-endian file's symbol table (`.symtab`), as the image
//! builder needs for the firmware's SEV-ES AP reset entry. Only what that needs: the section
//! headers, the `SHT_SYMTAB` section and the string table it links to. Every read is checked;
//! untrusted bytes give a [`SymbolError`], never a panic.

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

/// `sh_type` of a symbol table.
const SHT_SYMTAB: u32 = 2;
/// `st_shndx` of an undefined symbol.
const SHN_UNDEF: u16 = 0;
/// `st_info >> 4` of a global symbol.
const STB_GLOBAL: u8 = 1;

/// Elf64_Shdr.
#[derive(Clone, Copy, FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct SectionHeader {
    name: U32,
    kind: U32,
    flags: U64,
    addr: U64,
    offset: U64,
    size: U64,
    link: U32,
    info: U32,
    addralign: U64,
    entsize: U64,
}

/// Elf64_Sym.
#[derive(Clone, Copy, FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct Sym {
    name: U32,
    info: u8,
    other: u8,
    shndx: U16,
    value: U64,
    size: U64,
}

const _: () = {
    assert!(core::mem::size_of::<SectionHeader>() == 64);
    assert!(core::mem::size_of::<Sym>() == 24);
};

/// A symbol found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Symbol {
    /// Its value (for a fixed-address executable, its address).
    pub value: u64,
    /// Its binding (`st_info >> 4`: 0 local, 1 global, 2 weak).
    pub binding: u8,
    /// Offset of its `Elf64_Sym` in the file.
    pub file_offset: usize,
}

/// Why a symbol could not be found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SymbolError {
    /// The header or a section header lies outside the file.
    #[error("the ELF section headers are malformed or outside the file")]
    Malformed,
    /// No `SHT_SYMTAB` section (a stripped file).
    #[error("the ELF has no symbol table (is it stripped?)")]
    NoSymbolTable,
    /// No symbol of that name.
    #[error("no symbol of that name")]
    Missing,
    /// The symbol is not global.
    #[error("the symbol is not global (binding {0})")]
    NotGlobal(u8),
    /// The symbol is undefined.
    #[error("the symbol is undefined")]
    Undefined,
}

fn read<T: FromBytes + KnownLayout + Immutable>(b: &[u8], at: u64) -> Option<T> {
    let at = usize::try_from(at).ok()?;
    T::read_from_prefix(b.get(at..)?).ok().map(|(v, _)| v)
}

fn range(b: &[u8], offset: u64, size: u64) -> Option<&[u8]> {
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(usize::try_from(size).ok()?)?;
    b.get(start..end)
}

/// Finds the symbol `name` in the symbol table of `elf` (an ELF64 little-endian file, already
/// parsed as such). It must be defined and global.
pub fn find_global_symbol(elf: &[u8], name: &str) -> Result<Symbol, SymbolError> {
    use SymbolError as E;
    if name.is_empty() {
        // Unnamed symbols (the null symbol, section symbols) are never what is asked for.
        return Err(E::Missing);
    }
    let shoff: u64 = read::<U64>(elf, 0x28).ok_or(E::Malformed)?.get();
    let shentsize = u64::from(read::<U16>(elf, 0x3A).ok_or(E::Malformed)?.get());
    let shnum = u64::from(read::<U16>(elf, 0x3C).ok_or(E::Malformed)?.get());
    if shnum > 0 && shentsize < 64 {
        return Err(E::Malformed);
    }
    let header = |i: u64| -> Result<SectionHeader, SymbolError> {
        let at = i
            .checked_mul(shentsize)
            .and_then(|o| o.checked_add(shoff))
            .ok_or(E::Malformed)?;
        read::<SectionHeader>(elf, at).ok_or(E::Malformed)
    };
    let mut found_table = false;
    for i in 0..shnum {
        let sh = header(i)?;
        if sh.kind.get() != SHT_SYMTAB {
            continue;
        }
        found_table = true;
        let strtab = header(u64::from(sh.link.get()))?;
        let strings = range(elf, strtab.offset.get(), strtab.size.get()).ok_or(E::Malformed)?;
        let symbols = range(elf, sh.offset.get(), sh.size.get()).ok_or(E::Malformed)?;
        let base = usize::try_from(sh.offset.get()).map_err(|_| E::Malformed)?;
        for (k, raw) in symbols.chunks_exact(24).enumerate() {
            let Some(sym) = read::<Sym>(raw, 0) else {
                continue;
            };
            let Some(tail) = usize::try_from(sym.name.get())
                .ok()
                .and_then(|n| strings.get(n..))
            else {
                continue;
            };
            let sym_name = tail.split(|&c| c == 0).next().unwrap_or(&[]);
            if sym_name != name.as_bytes() {
                continue;
            }
            if sym.shndx.get() == SHN_UNDEF {
                return Err(E::Undefined);
            }
            let binding = sym.info >> 4;
            if binding != STB_GLOBAL {
                return Err(E::NotGlobal(binding));
            }
            return Ok(Symbol {
                value: sym.value.get(),
                binding,
                file_offset: base + 24 * k,
            });
        }
    }
    Err(if found_table {
        E::Missing
    } else {
        E::NoSymbolTable
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 with three section headers (null, .symtab, .strtab) and `syms`, each
    /// (name, info, shndx, value).
    fn elf(syms: &[(&str, u8, u16, u64)]) -> Vec<u8> {
        let mut strtab = vec![0u8];
        let mut symtab = vec![0u8; 24]; // the null symbol
        for (name, info, shndx, value) in syms {
            let off = strtab.len() as u32;
            strtab.extend_from_slice(name.as_bytes());
            strtab.push(0);
            symtab.extend_from_slice(&off.to_le_bytes());
            symtab.push(*info);
            symtab.push(0);
            symtab.extend_from_slice(&shndx.to_le_bytes());
            symtab.extend_from_slice(&value.to_le_bytes());
            symtab.extend_from_slice(&0u64.to_le_bytes());
        }
        let mut f = vec![0u8; 64];
        f[..4].copy_from_slice(b"\x7fELF");
        let sym_off = f.len() as u64;
        f.extend_from_slice(&symtab);
        let str_off = f.len() as u64;
        f.extend_from_slice(&strtab);
        let shoff = f.len() as u64;
        f[0x28..0x30].copy_from_slice(&shoff.to_le_bytes());
        f[0x3A..0x3C].copy_from_slice(&64u16.to_le_bytes());
        f[0x3C..0x3E].copy_from_slice(&3u16.to_le_bytes());
        let sh = |kind: u32, offset: u64, size: u64, link: u32| {
            let mut h = vec![0u8; 64];
            h[4..8].copy_from_slice(&kind.to_le_bytes());
            h[24..32].copy_from_slice(&offset.to_le_bytes());
            h[32..40].copy_from_slice(&size.to_le_bytes());
            h[40..44].copy_from_slice(&link.to_le_bytes());
            h
        };
        f.extend_from_slice(&sh(0, 0, 0, 0));
        f.extend_from_slice(&sh(SHT_SYMTAB, sym_off, symtab.len() as u64, 2));
        f.extend_from_slice(&sh(3, str_off, strtab.len() as u64, 0));
        f
    }

    #[test]
    fn finds_global_defined_symbols_only() {
        let f = elf(&[
            ("local_one", 0x00, 1, 0x10),
            ("sev_ap_reset_entry", 0x10, 1, 0xFFFF_F1B1),
            ("undefined_one", 0x10, 0, 0),
            ("weak_one", 0x20, 1, 0x20),
        ]);
        let s = find_global_symbol(&f, "sev_ap_reset_entry").unwrap();
        assert_eq!(s.value, 0xFFFF_F1B1);
        assert_eq!(s.binding, 1);
        assert_eq!(
            &f[s.file_offset + 8..s.file_offset + 16],
            &0xFFFF_F1B1u64.to_le_bytes()
        );
        assert_eq!(
            find_global_symbol(&f, "local_one"),
            Err(SymbolError::NotGlobal(0))
        );
        assert_eq!(
            find_global_symbol(&f, "weak_one"),
            Err(SymbolError::NotGlobal(2))
        );
        assert_eq!(
            find_global_symbol(&f, "undefined_one"),
            Err(SymbolError::Undefined)
        );
        assert_eq!(find_global_symbol(&f, "sev_ap"), Err(SymbolError::Missing));
        assert_eq!(find_global_symbol(&f, ""), Err(SymbolError::Missing));
    }

    #[test]
    fn stripped_and_malformed_files() {
        let mut f = elf(&[]);
        // No SHT_SYMTAB: make the symbol table a PROGBITS section.
        let shoff = u64::from_le_bytes(f[0x28..0x30].try_into().unwrap()) as usize;
        f[shoff + 64 + 4] = 1;
        assert_eq!(find_global_symbol(&f, "x"), Err(SymbolError::NoSymbolTable));
        assert_eq!(find_global_symbol(&[], "x"), Err(SymbolError::Malformed));
        let good = elf(&[("x", 0x10, 1, 1)]);
        // Every truncation: an error or the answer, never a panic.
        for cut in 0..good.len() {
            let _ = find_global_symbol(&good[..cut], "x");
        }
        // Section headers past the end, absurd sizes.
        let mut bad = good.clone();
        bad[0x28..0x30].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(find_global_symbol(&bad, "x"), Err(SymbolError::Malformed));
        let mut bad = good.clone();
        bad[0x3A..0x3C].copy_from_slice(&8u16.to_le_bytes());
        assert_eq!(find_global_symbol(&bad, "x"), Err(SymbolError::Malformed));
        let mut bad = good;
        let shoff = u64::from_le_bytes(bad[0x28..0x30].try_into().unwrap()) as usize;
        bad[shoff + 64 + 32..shoff + 64 + 40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(find_global_symbol(&bad, "x"), Err(SymbolError::Malformed));
    }
}
