//! Boot benchmark: how long `xenolith run` takes to reach the guest's
//! first instruction (the VMM's own start-up), hello's first console line and
//! its poweroff; how many instructions hello runs before it prints; the
//! round trip of one trapped hypercall; and, side by side in the same run,
//! `xenolith run` and QEMU's microvm machine (`-M microvm -accel kvm
//! -kernel`, the usual fast-start reference) each starting the same minimal
//! PVH image whose first instructions write a byte to an I/O port, timed
//! from the spawn to the byte.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::root;

const RUNS: usize = 20;

pub(super) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the local timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

struct Sample {
    first_entry_ms: f64,
    first_line_ms: f64,
    poweroff_ms: f64,
}

fn write_cfg(extra: &str) -> Result<std::path::PathBuf> {
    let dir = root().join("target/bench");
    std::fs::create_dir_all(&dir)?;
    let cfg = dir.join("hello-bench.cfg");
    std::fs::write(
        &cfg,
        format!("name = \"hello-bench\"\ntype = \"pvh\"\nkernel = \"{}\"\nmemory = 64\nextra = \"{extra}\"\n", root().join("target/guests/hello").display()),
    )?;
    Ok(cfg)
}

pub(super) fn xenolith() -> Command {
    let mut c = Command::new(root().join("target/release/xenolith"));
    c.current_dir(root());
    c
}

fn one_run(cfg: &std::path::Path) -> Result<Sample> {
    let t0 = monotonic_ns();
    let start = Instant::now();
    let mut child = xenolith()
        .args(["run", "-c"])
        .arg(cfg)
        .env("XENOLITH_BENCH_T0", t0.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()?;
    let stderr = child.stderr.take().unwrap();
    let err_thread = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let mut first_line_ms = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let _ = line?;
        first_line_ms.get_or_insert(start.elapsed().as_secs_f64() * 1e3);
    }
    let status = child.wait()?;
    let poweroff_ms = start.elapsed().as_secs_f64() * 1e3;
    let errs = err_thread.join().unwrap();
    if !status.success() {
        bail!("hello exited with {status}: {}", errs.join("\n"));
    }
    let first_entry_us: f64 = errs
        .iter()
        .find_map(|l| l.strip_prefix("xenolith-bench: first-entry-us="))
        .context("no first-entry probe line")?
        .parse()?;
    Ok(Sample {
        first_entry_ms: first_entry_us / 1e3,
        first_line_ms: first_line_ms.context("no console output")?,
        poweroff_ms,
    })
}

pub(super) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn probe_stderr(cfg: &std::path::Path, env: (&str, &str), args: &[&str]) -> Result<String> {
    let out = xenolith()
        .args(args)
        .args(["run", "-c"])
        .arg(cfg)
        .env(env.0, env.1)
        .stdin(Stdio::null())
        .output()?;
    Ok(format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// The minimal PVH image: an ELF64 whose PHYS32_ENTRY (at 1 MiB) writes
/// 'X' and a newline to port 0xE9 (our hypervisor's debug console, to
/// stderr) and to COM1 (QEMU's serial port, to stdout), then halts with
/// interrupts off. 32-bit code, no stack, nothing else.
/// The minimal PVH image: writes `X` to port 0xE9 and COM1, then halts:
/// with interrupts off (the domain ends) or, if `stays`, on (it idles until
/// destroyed).
pub(super) fn first_write_image(stays: bool) -> Vec<u8> {
    const LOAD: u64 = 0x10_0000;
    const CODE_OFFSET: usize = 0x1000;
    #[rustfmt::skip]
    let code: &[u8] = &[
        0x66, 0xba, 0xe9, 0x00, // mov dx, 0xe9
        0xb0, b'X',             // mov al, 'X'
        0xee,                   // out dx, al
        0x66, 0xba, 0xf8, 0x03, // mov dx, 0x3f8
        0xee,                   // out dx, al
        0xb0, b'\n',            // mov al, '\n'
        0xee,                   // out dx, al
        0x66, 0xba, 0xe9, 0x00, // mov dx, 0xe9
        0xee,                   // out dx, al
        if stays { 0xfb } else { 0xfa }, 0xf4, // sti or cli; hlt
        0xeb, 0xfd,             // jmp back to hlt
    ];
    // The Xen note: namesz 4, descsz 8 (QEMU reads 8 bytes for ELF64),
    // XEN_ELFNOTE_PHYS32_ENTRY (18), "Xen", the entry.
    let mut note = Vec::new();
    for w in [4u32, 8, 18] {
        note.extend_from_slice(&w.to_le_bytes());
    }
    note.extend_from_slice(b"Xen\0");
    note.extend_from_slice(&LOAD.to_le_bytes());
    let (ehsize, phentsize, phnum) = (64u16, 56u16, 2u16);
    let note_offset = u64::from(ehsize + phentsize * phnum);
    let mut elf = Vec::new();
    elf.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    elf.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    elf.extend_from_slice(&0x3eu16.to_le_bytes()); // EM_X86_64
    elf.extend_from_slice(&1u32.to_le_bytes());
    elf.extend_from_slice(&LOAD.to_le_bytes()); // e_entry
    elf.extend_from_slice(&u64::from(ehsize).to_le_bytes()); // e_phoff
    elf.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    elf.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    for h in [ehsize, phentsize, phnum, 0, 0, 0] {
        elf.extend_from_slice(&h.to_le_bytes());
    }
    let mut phdr = |ty: u32, flags: u32, offset: u64, addr: u64, size: u64, align: u64| {
        for w in [ty, flags] {
            elf.extend_from_slice(&w.to_le_bytes());
        }
        for q in [offset, addr, addr, size, size, align] {
            elf.extend_from_slice(&q.to_le_bytes());
        }
    };
    phdr(1, 5, CODE_OFFSET as u64, LOAD, code.len() as u64, 0x1000); // PT_LOAD, R+X
    phdr(4, 4, note_offset, 0, note.len() as u64, 4); // PT_NOTE
    elf.extend_from_slice(&note);
    elf.resize(CODE_OFFSET, 0);
    elf.extend_from_slice(code);
    elf
}

/// Spawns `cmd` and returns the milliseconds from the spawn until `X`
/// appears on its stdout (`on_stdout`) or stderr; then kills it.
fn ms_to_first_write(mut cmd: Command, on_stdout: bool) -> Result<f64> {
    use std::io::Read;
    let start = Instant::now();
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let (mut watched, other): (Box<dyn Read>, Box<dyn Read + Send>) = if on_stdout {
        (Box::new(child.stdout.take().unwrap()), Box::new(child.stderr.take().unwrap()))
    } else {
        (Box::new(child.stderr.take().unwrap()), Box::new(child.stdout.take().unwrap()))
    };
    let drain = std::thread::spawn(move || {
        let mut sink = Vec::new();
        let mut other = other;
        let _ = other.read_to_end(&mut sink);
        sink
    });
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    let found = loop {
        match watched.read(&mut byte) {
            Ok(1) if byte[0] == b'X' => break Some(start.elapsed().as_secs_f64() * 1e3),
            Ok(1) => seen.push(byte[0]),
            _ => break None,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    let other = drain.join().unwrap_or_default();
    found.with_context(|| {
        format!(
            "no X from {:?}: {}{}",
            cmd.get_program(),
            String::from_utf8_lossy(&seen),
            String::from_utf8_lossy(&other)
        )
    })
}

/// Median spawn-to-first-write times of `xenolith run` and of QEMU
/// microvm on the minimal image, as a report paragraph.
fn versus_microvm() -> Result<String> {
    let dir = root().join("target/bench");
    std::fs::create_dir_all(&dir)?;
    let image = dir.join("first-write.elf");
    std::fs::write(&image, first_write_image(false))?;
    let cfg = dir.join("first-write.cfg");
    std::fs::write(
        &cfg,
        format!("name = \"first-write\"\ntype = \"pvh\"\nkernel = \"{}\"\nmemory = 64\n", image.display()),
    )?;
    let mut ours = Vec::new();
    let mut qemu = Vec::new();
    // Interleaved, so both see the same machine state.
    for _ in 0..RUNS {
        let mut c = xenolith();
        c.arg("run").arg(&cfg);
        ours.push(ms_to_first_write(c, false)?);
        let mut q = Command::new("qemu-system-x86_64");
        q.args([
            "-M",
            "microvm,x-option-roms=off,rtc=off,pit=off,pic=off,isa-serial=on",
            "-accel",
            "kvm",
            // QEMU's host model asks for an MSR this machine's KVM refuses.
            "-cpu",
            "host,-arch-capabilities",
            "-m",
            "64",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-serial",
            "stdio",
            "-kernel",
        ])
        .arg(&image);
        qemu.push(ms_to_first_write(q, true)?);
    }
    let (ours, qemu) = (median(ours), median(qemu));
    Ok(format!(
        "spawn to the first guest port write, median of {RUNS} runs each, same minimal PVH image (memory = 64):\n\
         - xenolith run:              {ours:.2} ms\n\
         - QEMU -M microvm -accel kvm:   {qemu:.2} ms\n\
         - ratio (QEMU / xenolith):      {:.2}\n",
        qemu / ours
    ))
}

/// Runs the boot benchmark and returns its report.
pub fn run() -> Result<String> {
    let cfg = write_cfg("bench")?;
    let mut samples = Vec::new();
    for _ in 0..RUNS {
        samples.push(one_run(&cfg)?);
    }
    let entry = median(samples.iter().map(|s| s.first_entry_ms).collect());
    let line = median(samples.iter().map(|s| s.first_line_ms).collect());
    let off = median(samples.iter().map(|s| s.poweroff_ms).collect());

    let info = probe_stderr(&cfg, ("XENOLITH_COUNT_INSTRUCTIONS", "1"), &["-v"])?;
    let backend = super::kvm_backend(&info);
    let insns = info
        .lines()
        .find_map(|l| l.strip_prefix("xenolith-bench: instructions-before-output="))
        .map_or_else(
            || "not counted (single-step unavailable)".to_string(),
            str::to_string,
        );

    let hc_cfg = write_cfg("hypercall-bench")?;
    let hc = probe_stderr(&hc_cfg, ("XENOLITH_BENCH", "1"), &[])?;
    let hypercall = hc
        .lines()
        .find_map(|l| l.strip_prefix("hypercall round trip: "))
        .map_or_else(|| "not reported".to_string(), str::to_string);

    let report = format!(
        "KVM backend: {backend}\n\
         boot, median of {RUNS} runs of hello (memory = 64):\n\
         - start to first guest instruction: {entry:.2} ms (hypervisor start-up; Firecracker's VMM takes about 1.5 ms)\n\
         - start to first console line:      {line:.1} ms\n\
         - start to poweroff (process exit): {off:.1} ms\n\
         guest instructions before the first console line: {insns}\n\
         hypercall round trip (xen_version, timed by the guest with pvclock): {hypercall}\n\
         {}{}",
        versus_microvm()?,
        super::service::report()?
    );
    Ok(report)
}
