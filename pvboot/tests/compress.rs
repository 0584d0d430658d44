//! pvboot::compress against the real tools: every format is compressed at test time by the tool
//! Linux and NetBSD use (the options their build scripts pass, and the common ones), then decoded
//! with both APIs and compared byte for byte; truncated and corrupted files, small limits and a
//! failing sink must give errors, never panics or output past the limit.
//!
//! A missing tool fails the test with the Debian package to install (`cargo xtask setup`).

use std::io::Write;
use std::process::{Command, Stdio};

use pvboot::compress::{decompress, decompress_into, detect, Compression, DecompressError, Sink, SliceSink};

/// Runs `program args` with `input` on stdin; returns stdout.
fn tool(package: &str, program: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = match Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => panic!("{program} not runnable ({e}): install the Debian package {package} (cargo xtask setup)"),
    };
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{program} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    writer.join().unwrap().unwrap();
    out.stdout
}

/// A deterministic pseudo-random byte string (xorshift), incompressible.
fn random(len: usize, mut seed: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.extend_from_slice(&seed.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// A real ELF executable.
fn real_elf() -> Vec<u8> {
    let data = std::fs::read("/usr/bin/ls").expect("/usr/bin/ls (coreutils) is the real ELF input");
    assert_eq!(&data[..4], b"\x7fELF");
    data
}

/// A few MiB of real executables (and their mix of code, tables and strings).
fn few_mib() -> Vec<u8> {
    let mut v = Vec::new();
    for p in ["/usr/bin/ls", "/usr/bin/bash", "/usr/bin/tar", "/usr/bin/cp", "/usr/bin/gzip", "/usr/bin/xz", "/usr/bin/zstd"] {
        if let Ok(d) = std::fs::read(p) {
            v.extend_from_slice(&d);
        }
    }
    while v.len() < 3 << 20 {
        let more = v.clone();
        v.extend_from_slice(&more);
    }
    v.truncate(3 << 20);
    v
}

/// The inputs every format is tested with, by name.
fn inputs(big: bool) -> Vec<(&'static str, Vec<u8>)> {
    let mut v = vec![
        ("empty", Vec::new()),
        ("one byte", vec![0x5a]),
        ("real ELF", real_elf()),
        ("random", random(300_000, 0x9e37_79b9_7f4a_7c15)),
    ];
    if big {
        v.push(("few MiB", few_mib()));
    }
    v
}

/// Decodes `file` both ways and checks the result is `plain`.
fn decodes_to(c: Compression, file: &[u8], plain: &[u8], what: &str) {
    let mut v = Vec::new();
    match decompress(c, file, &mut v, plain.len() as u64) {
        Ok(n) => assert_eq!(n, plain.len() as u64, "{what}: decompress length"),
        Err(e) => panic!("{what}: decompress: {e}"),
    }
    assert!(v == plain, "{what}: decompress output differs");
    let mut buf = vec![0u8; plain.len()];
    match decompress_into(c, file, &mut buf) {
        Ok(n) => assert_eq!(n, plain.len(), "{what}: decompress_into length"),
        Err(e) => panic!("{what}: decompress_into: {e}"),
    }
    assert!(buf == plain, "{what}: decompress_into output differs");
    // A larger buffer than needed: the length tells where the data ends.
    let mut big = vec![0xeeu8; plain.len() + 100];
    assert_eq!(decompress_into(c, file, &mut big).unwrap(), plain.len(), "{what}: roomy buffer");
    assert!(&big[..plain.len()] == plain, "{what}: roomy buffer output");
}

/// A sink that fails after `left` bytes.
struct FailingSink {
    left: usize,
}

#[derive(Debug, PartialEq)]
struct Full;

impl Sink for FailingSink {
    type Error = Full;
    fn write(&mut self, data: &[u8]) -> Result<(), Full> {
        if data.len() > self.left {
            return Err(Full);
        }
        self.left -= data.len();
        Ok(())
    }
}

/// Everything checked for one compressed file of `plain`.
fn check_file(c: Compression, file: &[u8], plain: &[u8], what: &str, checked: bool) {
    assert_eq!(detect(file), Some(c), "{what}: detect");
    decodes_to(c, file, plain, what);

    // Linux appends the uncompressed size after the payload; zero padding follows files on disks.
    let mut linux = file.to_vec();
    linux.extend_from_slice(&(plain.len() as u32).to_le_bytes());
    decodes_to(c, &linux, plain, &format!("{what} + Linux size"));
    let mut padded = file.to_vec();
    padded.resize(file.len() + 512, 0);
    decodes_to(c, &padded, plain, &format!("{what} + zero padding"));

    if !plain.is_empty() {
        let limit = plain.len() as u64 - 1;
        let mut v = Vec::new();
        assert_eq!(
            decompress(c, file, &mut v, limit),
            Err(DecompressError::TooLarge { limit }),
            "{what}: max_out one short"
        );
        assert!(v.len() as u64 <= limit, "{what}: wrote past max_out");
        let mut short = vec![0u8; plain.len() - 1];
        assert_eq!(
            decompress_into(c, file, &mut short),
            Err(DecompressError::TooLarge { limit }),
            "{what}: buffer one short"
        );
        let mut sink = FailingSink { left: plain.len() / 2 };
        assert_eq!(decompress(c, file, &mut sink, u64::MAX), Err(DecompressError::Sink(Full)), "{what}: failing sink");
        let mut buf = vec![0u8; plain.len() / 2];
        let mut sink = SliceSink::new(&mut buf);
        assert!(
            matches!(decompress(c, file, &mut sink, u64::MAX), Err(DecompressError::Sink(_))),
            "{what}: full slice sink"
        );
    }

    // Truncated: every cut must be an error (at most the output so far is written).
    let big = plain.len() > 1 << 20;
    let cuts: Vec<usize> = if file.len() < 64 {
        (0..file.len()).collect()
    } else if big {
        vec![5, file.len() / 3, file.len() - 9, file.len() - 1]
    } else {
        let mut v: Vec<usize> = (0..16).map(|i| i * file.len() / 16).collect();
        v.extend([1, 2, 5, 9, 12, 13, 17, file.len() - 1, file.len() - 4, file.len() - 8]);
        v
    };
    for cut in cuts {
        let part = &file[..cut];
        let mut v = Vec::new();
        let r = decompress(c, part, &mut v, plain.len() as u64 + 1);
        // The lz4 legacy frame has no end marker: a cut between blocks is a shorter file.
        let between_blocks = c == Compression::Lz4Legacy && cut >= 4 && r.is_ok() && v.len() < plain.len() && plain.starts_with(&v);
        assert!(r.is_err() || between_blocks, "{what}: cut at {cut} of {} decoded ({r:?})", file.len());
        let mut buf = vec![0u8; plain.len() + 1];
        let r = decompress_into(c, part, &mut buf);
        let between_blocks = between_blocks && r == Ok(v.len()) && buf[..v.len()] == v[..];
        assert!(r.is_err() || between_blocks, "{what}: cut at {cut} of {} decoded into ({r:?})", file.len());
    }

    // Flipped bytes: an error where the format checks its data; never a panic or output past the limit.
    let step = (file.len() / if big { 7 } else { 97 }).max(1);
    for at in (0..file.len()).step_by(step) {
        let mut bad = file.to_vec();
        bad[at] ^= 0x55;
        let limit = plain.len() as u64 + 1000;
        let mut v = Vec::new();
        let r = decompress(c, &bad, &mut v, limit);
        assert!(v.len() as u64 <= limit, "{what}: flip at {at} wrote past max_out");
        let mut buf = vec![0u8; plain.len() + 1000];
        let r2 = decompress_into(c, &bad, &mut buf);
        if checked {
            if let Ok(n) = r {
                assert!(v == plain, "{what}: flip at {at} decoded wrong data without an error ({n} bytes)");
            }
            if let Ok(n) = r2 {
                assert!(&buf[..n] == plain, "{what}: flip at {at} decoded wrong data into without an error");
            }
        }
        if let Err(e) = r {
            let line = e.to_string();
            assert!(!line.contains('\n'), "{what}: error is one line: {line}");
        }
    }
}

/// Compresses every input with each command line of `package`'s `program` and checks everything.
fn check_tool(c: Compression, package: &str, program: &str, arg_sets: &[&[&str]], checked: bool) {
    for args in arg_sets {
        for (name, plain) in inputs(true) {
            let file = tool(package, program, args, &plain);
            let what = format!("{program} {} of {name} ({} -> {} bytes)", args.join(" "), plain.len(), file.len());
            check_file(c, &file, &plain, &what, checked);
        }
    }
}

#[test]
fn gzip() {
    check_tool(Compression::Gzip, "gzip", "gzip", &[&["-9", "-n", "-c"], &["-1", "-c"]], true);
}

#[test]
fn gzip_members_and_garbage() {
    let a = real_elf();
    let b = random(5000, 7);
    let mut file = tool("gzip", "gzip", &["-9", "-c"], &a);
    file.extend(tool("gzip", "gzip", &["-1", "-c"], &b));
    let mut plain = a.clone();
    plain.extend_from_slice(&b);
    decodes_to(Compression::Gzip, &file, &plain, "two gzip members");
    file.extend_from_slice(b"trailing garbage that gzip -d ignores");
    decodes_to(Compression::Gzip, &file, &plain, "two gzip members + garbage");
    // A file name and comment in the header (what `gzip` without -n writes).
    let dir = std::env::temp_dir().join(format!("pvboot-compress-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("netbsd-GENERIC");
    std::fs::write(&path, &a).unwrap();
    let st = Command::new("gzip").args(["-9", "-k", "-f"]).arg(&path).status().expect("gzip (install gzip)");
    assert!(st.success());
    let gz = std::fs::read(dir.join("netbsd-GENERIC.gz")).unwrap();
    assert_ne!(gz[3] & 0x08, 0, "gzip stored the name");
    decodes_to(Compression::Gzip, &gz, &a, "gzip with a file name");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn xz() {
    check_tool(
        Compression::Xz,
        "xz-utils",
        "xz",
        &[
            // What Linux's scripts/xz_wrap.sh runs for x86 kernels.
            &["--check=crc32", "--threads=1", "--x86", "--lzma2=dict=32MiB", "-c"],
            &["-9", "-c"],
            &["-0", "--check=crc64", "-c"],
            &["--check=sha256", "-6e", "-c"],
        ],
        true,
    );
    // No check: corruption may go unnoticed, but never past the limit or into a panic.
    check_tool(Compression::Xz, "xz-utils", "xz", &[&["--check=none", "-c"]], false);
}

#[test]
fn xz_streams_and_padding() {
    let a = real_elf();
    let b = random(5000, 3);
    let mut file = tool("xz-utils", "xz", &["-c"], &a);
    file.extend_from_slice(&[0; 8]);
    file.extend(tool("xz-utils", "xz", &["--x86", "--lzma2=preset=1", "-c"], &b));
    let mut plain = a.clone();
    plain.extend_from_slice(&b);
    decodes_to(Compression::Xz, &file, &plain, "two xz streams with padding");
    // xz -d reads the same.
    assert!(tool("xz-utils", "xz", &["-d", "-c"], &file) == plain);
    // Multi-threaded xz writes several blocks with sizes in their headers.
    let big = few_mib();
    let mt = tool("xz-utils", "xz", &["-T2", "--block-size=1MiB", "-c"], &big);
    decodes_to(Compression::Xz, &mt, &big, "xz with 1 MiB blocks");
}

#[test]
fn xz_dictionary_over_the_cap_is_refused() {
    let file = tool("xz-utils", "xz", &["--lzma2=dict=128MiB", "-c"], b"small");
    let mut v = Vec::new();
    let e = decompress(Compression::Xz, &file, &mut v, 1 << 20).unwrap_err();
    assert!(matches!(e, DecompressError::Unsupported { .. }), "{e}");
}

#[test]
fn lzma() {
    // Linux's cmd_lzma is `lzma -9` on a pipe: unknown size, end marker.
    check_tool(Compression::Lzma, "xz-utils", "lzma", &[&["-9", "-c"], &["-1", "-c"]], false);
}

#[test]
fn lzma_with_known_size() {
    // A .lzma header with the size filled in (xz writes it when it knows the size: from a file).
    let plain = real_elf();
    let dir = std::env::temp_dir().join(format!("pvboot-lzma-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("k");
    std::fs::write(&path, &plain).unwrap();
    let st = Command::new("lzma").args(["-9", "-k", "-f"]).arg(&path).status().expect("lzma (install xz-utils)");
    assert!(st.success());
    let file = std::fs::read(dir.join("k.lzma")).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let size = u64::from_le_bytes(file[5..13].try_into().unwrap());
    if size != u64::MAX {
        assert_eq!(size, plain.len() as u64);
    }
    check_file(Compression::Lzma, &file, &plain, "lzma -9 from a file", false);
}

#[test]
fn zstd() {
    check_tool(
        Compression::Zstd,
        "zstd",
        "zstd",
        &[
            // Linux's cmd_zstd (modules), on a pipe as there.
            &["-19", "-c"],
        ],
        true,
    );
    // Linux's cmd_zstd22 (x86 kernels) on a pipe, and --long=27, declare a 128 MiB window and no
    // content size; the caller's limit (a kernel payload's known size) bounds the window ruzstd
    // reserves, so they decode.
    let plain = few_mib();
    for args in [&["--ultra", "-22", "-c"][..], &["--long=27", "-3", "-c"]] {
        let packed = tool("zstd", "zstd", args, &plain);
        assert_eq!(packed[4] & 0x20, 0, "zstd {args:?}: not single-segment");
        assert_eq!(packed[4] >> 6, 0, "zstd {args:?}: no content size on a pipe");
        assert_eq!(packed[5], 0x88, "zstd {args:?}: a 128 MiB window descriptor");
        decodes_to(Compression::Zstd, &packed, &plain, &format!("zstd {args:?} on a pipe"));
        // With no useful limit nothing bounds the window: refused in one line.
        let mut v = Vec::new();
        let e = decompress(Compression::Zstd, &packed, &mut v, 1 << 30).unwrap_err();
        assert_eq!(e.to_string(), "unsupported zstd data: window larger than 32 MiB (half of pvboot's heap)", "zstd {args:?}");
    }
    check_tool(Compression::Zstd, "zstd", "zstd", &[&["-1", "--no-check", "-c"]], false);
}

#[test]
fn zstd_frames_and_skippable() {
    let a = real_elf();
    let b = random(5000, 5);
    let mut file = tool("zstd", "zstd", &["-c"], &a);
    // A skippable frame between two frames.
    file.extend_from_slice(&0x184d_2a53u32.to_le_bytes());
    file.extend_from_slice(&3u32.to_le_bytes());
    file.extend_from_slice(b"abc");
    file.extend(tool("zstd", "zstd", &["-19", "-c"], &b));
    let mut plain = a.clone();
    plain.extend_from_slice(&b);
    assert!(tool("zstd", "zstd", &["-d", "-c"], &file) == plain);
    decodes_to(Compression::Zstd, &file, &plain, "two zstd frames and a skippable one");
}

#[test]
fn zstd_window_over_the_cap_is_refused() {
    // Content that truly exceeds the cap: 40 MiB, declared in the header (compressed from a file)
    // or not (on a pipe), with a limit above it.
    let plain = vec![0u8; 40 << 20];
    let dir = std::env::temp_dir().join(format!("pvboot-zstd-cap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("k");
    std::fs::write(&path, &plain).unwrap();
    let st = Command::new("zstd").args(["-q", "-f", "--long=30", "-k"]).arg(&path).status().expect("zstd (install zstd)");
    assert!(st.success());
    let from_file = std::fs::read(dir.join("k.zst")).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_ne!(from_file[4] >> 6, 0, "zstd from a file writes the content size");
    let from_pipe = tool("zstd", "zstd", &["--long=30", "-c"], &plain);
    for (file, what) in [(&from_file, "content size declared"), (&from_pipe, "on a pipe")] {
        let mut v = Vec::new();
        let e = decompress(Compression::Zstd, file, &mut v, 64 << 20).unwrap_err();
        assert!(matches!(e, DecompressError::Unsupported { .. }), "{what}: {e}");
        let mut out = vec![0u8; 48 << 20];
        let e = decompress_into(Compression::Zstd, file, &mut out).unwrap_err();
        assert!(matches!(e, DecompressError::Unsupported { .. }), "{what}: {e}");
    }
    // A 2 GiB declared window over 100 bytes: the limit lowers it, and the bytes come out.
    let small = random(100, 1);
    let file = tool("zstd", "zstd", &["--long=30", "-c"], &small);
    assert!(window_descriptor_size(file[5]) >= 1 << 30, "--long=30 declares its window");
    decodes_to(Compression::Zstd, &file, &small, "zstd --long=30 of 100 bytes");
    // A frame whose declared content size is smaller than its output, with its window lowered to
    // that size, is an error, not a panic or output past the window.
    let plain = few_mib();
    let mut lying = tool("zstd", "zstd", &["-q", "-3", "--long=27", "-c"], &plain);
    assert!(decompress(Compression::Zstd, &lying, &mut Vec::new(), 8 << 20).is_ok());
    // Claim 1 MiB of content with a 4-byte Frame_Content_Size field (the header grows by 4).
    lying[4] |= 0x80;
    let mut claimed = lying[..6].to_vec();
    claimed.extend_from_slice(&(1u32 << 20).to_le_bytes());
    claimed.extend_from_slice(&lying[6..]);
    let e = decompress(Compression::Zstd, &claimed, &mut Vec::new(), 8 << 20).unwrap_err();
    assert!(matches!(e, DecompressError::Corrupt { .. }), "{e}");
}

#[test]
fn zstd_single_segment_over_the_limit_is_refused_before_decoding() {
    // From a file, zstd writes small content as one segment: the window is the content size.
    let plain = random(300_000, 3);
    let dir = std::env::temp_dir().join(format!("pvboot-zstd-single-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("k");
    std::fs::write(&path, &plain).unwrap();
    let st = Command::new("zstd").args(["-q", "-f", "-k"]).arg(&path).status().expect("zstd (install zstd)");
    assert!(st.success());
    let file = std::fs::read(dir.join("k.zst")).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_ne!(file[4] & 0x20, 0, "single segment");
    decodes_to(Compression::Zstd, &file, &plain, "zstd single segment from a file");
    // One byte short: refused whole, before any output (a decoder would write its first chunk).
    let mut v = Vec::new();
    let e = decompress(Compression::Zstd, &file, &mut v, plain.len() as u64 - 1).unwrap_err();
    assert!(matches!(e, DecompressError::TooLarge { limit } if limit == plain.len() as u64 - 1), "{e}");
    assert!(v.is_empty(), "{} bytes written", v.len());
}

/// The Window_Size a Window_Descriptor byte stands for (RFC 8878 3.1.1.1.2).
fn window_descriptor_size(d: u8) -> u64 {
    let base = 1u64 << (10 + (d >> 3));
    base + base / 8 * u64::from(d & 7)
}

#[test]
fn lz4_legacy() {
    // Linux's cmd_lz4 is `lz4 -l -9` (older kernels: `lz4c -l -c1`; newer add --favor-decSpeed).
    check_tool(
        Compression::Lz4Legacy,
        "lz4",
        "lz4",
        &[&["-l", "-9", "-c"], &["-l", "-1", "-c"], &["-l", "-12", "--favor-decSpeed", "-c"]],
        false,
    );
}

#[test]
fn lz4_legacy_many_blocks_and_frames() {
    // More than 8 MiB: several blocks; then a second frame right after (its magic as a size).
    let mut big = few_mib();
    big.extend(few_mib());
    big.extend(random(3 << 20, 11));
    let mut file = tool("lz4", "lz4", &["-l", "-c"], &big);
    let b = random(1000, 9);
    file.extend(tool("lz4", "lz4", &["-l", "-c"], &b));
    let mut plain = big.clone();
    plain.extend_from_slice(&b);
    assert!(tool("lz4", "lz4", &["-d", "-c"], &file) == plain);
    decodes_to(Compression::Lz4Legacy, &file, &plain, "two lz4 legacy frames, 9 MiB");
    let mut v = Vec::new();
    assert_eq!(
        decompress(Compression::Lz4Legacy, &file, &mut v, 5 << 20),
        Err(DecompressError::TooLarge { limit: 5 << 20 })
    );
}

#[test]
fn lzo() {
    // Linux's cmd_lzo is `lzop -9`; lzop checks its blocks with Adler-32 unless told otherwise.
    check_tool(Compression::Lzo, "lzop", "lzop", &[&["-9", "-c"], &["-1", "-c"], &["-3", "--crc32", "-c"]], true);
}

#[test]
fn lzo_with_name_and_compressed_data_checksum() {
    let plain = few_mib();
    let dir = std::env::temp_dir().join(format!("pvboot-lzo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("vmlinux");
    std::fs::write(&path, &plain).unwrap();
    let st = Command::new("lzop").args(["-9", "-f", "--crc32"]).arg(&path).status().expect("lzop (install lzop)");
    assert!(st.success());
    let file = std::fs::read(dir.join("vmlinux.lzo")).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    decodes_to(Compression::Lzo, &file, &plain, "lzop -9 --crc32 of a named file");
}

#[test]
fn bzip2() {
    // Linux's cmd_bzip2 is `bzip2 -9`.
    check_tool(Compression::Bzip2, "bzip2", "bzip2", &[&["-9", "-c"], &["-1", "-c"]], true);
}

#[test]
fn bzip2_streams_runs_and_garbage() {
    // Long runs (the first run-length stage) and several blocks at level 1.
    let mut plain = vec![b'a'; 1000];
    plain.extend(std::iter::repeat_n(0u8, 300_000));
    plain.extend(random(250_000, 4));
    plain.extend((0..200_000u32).map(|i| (i / 7) as u8));
    let mut file = tool("bzip2", "bzip2", &["-1", "-c"], &plain);
    let b = real_elf();
    file.extend(tool("bzip2", "bzip2", &["-9", "-c"], &b));
    let mut all = plain.clone();
    all.extend_from_slice(&b);
    decodes_to(Compression::Bzip2, &file, &all, "two bzip2 streams, several blocks");
    file.extend_from_slice(b"garbage");
    decodes_to(Compression::Bzip2, &file, &all, "two bzip2 streams + garbage");
}

#[test]
fn wrong_format_is_an_error_not_a_panic() {
    let elf = real_elf();
    for c in Compression::ALL {
        let mut v = Vec::new();
        assert!(decompress(c, &elf, &mut v, 1 << 20).is_err(), "{c} on an ELF");
        let mut buf = vec![0u8; 1 << 20];
        assert!(decompress_into(c, &elf, &mut buf).is_err(), "{c} on an ELF (into)");
    }
}
