//! Just enough ELF64 reading to decide how Xen can boot a guest image (its
//! Xen ELF notes, include/public/elfnote.h) and whether a program is static.

use anyhow::{ensure, Result};

/// XEN_ELFNOTE_ENTRY: the PV entry point.
pub const ENTRY: u32 = 1;
/// XEN_ELFNOTE_HYPERCALL_PAGE: where Xen puts a PV guest's hypercall page.
pub const HYPERCALL_PAGE: u32 = 2;
/// XEN_ELFNOTE_PHYS32_ENTRY: the PVH entry point.
pub const PHYS32_ENTRY: u32 = 18;

const PT_INTERP: u32 = 3;
const PT_NOTE: u32 = 4;
const SHT_NOTE: u32 = 7;

/// The types of every "Xen" note in the image, from its PT_NOTE segments
/// and SHT_NOTE sections (Xen's libelf reads either).
pub fn xen_notes(image: &[u8]) -> Result<Vec<u32>> {
    check_elf64(image)?;
    let mut types = Vec::new();
    for (kind, offset, size) in program_headers(image).chain(section_headers(image)) {
        if kind == PT_NOTE || kind == SHT_NOTE + SECTION {
            types.extend(
                notes(image, offset, size)
                    .filter(|(name, _)| *name == b"Xen")
                    .map(|(_, t)| t),
            );
        }
    }
    types.sort_unstable();
    types.dedup();
    Ok(types)
}

/// Whether the program has no PT_INTERP (runs without a dynamic loader).
pub fn is_static(image: &[u8]) -> Result<bool> {
    check_elf64(image)?;
    Ok(!program_headers(image).any(|(kind, _, _)| kind == PT_INTERP))
}

/// The contents of the section called `name` (e.g. ".modinfo").
pub fn section<'a>(image: &'a [u8], name: &str) -> Result<Option<&'a [u8]>> {
    check_elf64(image)?;
    let (off, size, count, names_index) = (
        u64_at(image, 0x28),
        u16_at(image, 0x3a),
        u16_at(image, 0x3c),
        u16_at(image, 0x3e),
    );
    let header = |i: usize| off + i * size;
    let names = header(names_index);
    let names = image.get(u64_at(image, names + 24)..).unwrap_or(&[]);
    for h in (0..count).map(header) {
        let n = u32_at(image, h) as usize;
        let this = names
            .get(n..)
            .and_then(|s| s.split(|&c| c == 0).next())
            .unwrap_or(&[]);
        if this == name.as_bytes() {
            let (start, len) = (u64_at(image, h + 24), u64_at(image, h + 32));
            return Ok(image.get(start..start.saturating_add(len)));
        }
    }
    Ok(None)
}

/// Section kinds are offset so they never collide with segment kinds.
const SECTION: u32 = 1 << 31;

fn check_elf64(image: &[u8]) -> Result<()> {
    ensure!(
        image.len() >= 64 && image.starts_with(b"\x7fELF"),
        "not an ELF file"
    );
    ensure!(
        image[4] == 2 && image[5] == 1,
        "not a little-endian ELF64 file"
    );
    Ok(())
}

fn u16_at(b: &[u8], off: usize) -> usize {
    b.get(off..off + 2)
        .map_or(0, |s| u16::from_le_bytes([s[0], s[1]]) as usize)
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    b.get(off..off + 4)
        .map_or(0, |s| u32::from_le_bytes(s.try_into().unwrap()))
}

fn u64_at(b: &[u8], off: usize) -> usize {
    b.get(off..off + 8)
        .map_or(0, |s| u64::from_le_bytes(s.try_into().unwrap()) as usize)
}

/// (p_type, p_offset, p_filesz) of each program header.
fn program_headers(b: &[u8]) -> impl Iterator<Item = (u32, usize, usize)> + '_ {
    let (off, size, count) = (u64_at(b, 0x20), u16_at(b, 0x36), u16_at(b, 0x38));
    (0..count)
        .map(move |i| off + i * size)
        .map(move |h| (u32_at(b, h), u64_at(b, h + 8), u64_at(b, h + 32)))
}

/// (SECTION | sh_type, sh_offset, sh_size) of each section header.
fn section_headers(b: &[u8]) -> impl Iterator<Item = (u32, usize, usize)> + '_ {
    let (off, size, count) = (u64_at(b, 0x28), u16_at(b, 0x3a), u16_at(b, 0x3c));
    (0..count).map(move |i| off + i * size).map(move |h| {
        (
            SECTION + u32_at(b, h + 4),
            u64_at(b, h + 24),
            u64_at(b, h + 32),
        )
    })
}

/// (name, type) of each note in `b[offset..offset + size]`.
fn notes(b: &[u8], offset: usize, size: usize) -> impl Iterator<Item = (&[u8], u32)> {
    let region = b.get(offset..offset.saturating_add(size)).unwrap_or(&[]);
    let mut pos = 0;
    std::iter::from_fn(move || {
        let (namesz, descsz, kind) = (
            u32_at(region, pos) as usize,
            u32_at(region, pos + 4) as usize,
            u32_at(region, pos + 8),
        );
        let name = region.get(pos + 12..pos + 12 + namesz)?;
        pos += 12 + namesz.next_multiple_of(4) + descsz.next_multiple_of(4);
        (pos <= region.len()).then(|| (name.strip_suffix(b"\0").unwrap_or(name), kind))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 with one PT_NOTE segment holding `notes`.
    fn image(notes: &[(&[u8], u32, &[u8])]) -> Vec<u8> {
        let mut note_bytes = Vec::new();
        for (name, kind, desc) in notes {
            let name: Vec<u8> = [*name, b"\0"].concat();
            note_bytes.extend((name.len() as u32).to_le_bytes());
            note_bytes.extend((desc.len() as u32).to_le_bytes());
            note_bytes.extend(kind.to_le_bytes());
            note_bytes.extend(&name);
            note_bytes.resize(note_bytes.len().next_multiple_of(4), 0);
            note_bytes.extend(*desc);
            note_bytes.resize(note_bytes.len().next_multiple_of(4), 0);
        }
        let mut b = vec![0u8; 64 + 56];
        b[..6].copy_from_slice(b"\x7fELF\x02\x01");
        b[0x20..0x28].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        b[0x36..0x38].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        b[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
        b[64..68].copy_from_slice(&PT_NOTE.to_le_bytes());
        b[64 + 8..64 + 16].copy_from_slice(&120u64.to_le_bytes());
        b[64 + 32..64 + 40].copy_from_slice(&(note_bytes.len() as u64).to_le_bytes());
        b.extend(note_bytes);
        b
    }

    #[test]
    fn finds_xen_notes_and_ignores_others() {
        let img = image(&[
            (b"GNU", 3, &[1, 2, 3, 4]),
            (b"Xen", PHYS32_ENTRY, &[0, 0, 16, 0]),
            (b"Xen", ENTRY, &[0; 8]),
        ]);
        assert_eq!(xen_notes(&img).unwrap(), [ENTRY, PHYS32_ENTRY]);
        assert!(is_static(&img).unwrap());
    }

    #[test]
    fn truncated_notes_stop_cleanly() {
        let mut img = image(&[(b"Xen", HYPERCALL_PAGE, &[0; 8])]);
        img.truncate(img.len() - 4);
        assert!(xen_notes(&img).unwrap().is_empty());
        assert!(xen_notes(b"not elf").is_err());
    }
}
