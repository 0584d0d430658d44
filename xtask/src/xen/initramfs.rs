//! dom0's initramfs: two concatenated newc archives.
//!
//! 1. The dom0 system: static busybox, the Xen tools (xl, xenstored,
//!    xenconsoled, xen-init-dom0, xenctx, xenstore-*), their shared
//!    libraries as ldd resolves them, the kernel modules Xen's backends
//!    need, the init script (xtask/xen/init.sh) and a small block hotplug
//!    script (xtask/xen/block).
//! 2. The cases: for each, /cases/NN-label/{xl.cfg,name,timeout,client}, plus the
//!    guest images in /guests and disk images in /disks.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

use super::cases::Case;
use super::cpio::Archive;
use super::elf;
use super::fetch::Stage;

/// Programs dom0 runs, as (path in the packages, path in the initramfs).
/// xenctx dumps the registers of a guest that does not stop.
const PROGRAMS: &[(&str, &str)] = &[
    ("usr/lib/xen-4.17/bin/xl", "usr/sbin/xl"),
    ("usr/lib/xen-4.17/bin/xenstored", "usr/sbin/xenstored"),
    ("usr/lib/xen-4.17/bin/xenconsoled", "usr/sbin/xenconsoled"),
    (
        "usr/lib/xen-4.17/bin/xen-init-dom0",
        "usr/sbin/xen-init-dom0",
    ),
    ("usr/lib/xen-4.17/bin/xenctx", "usr/sbin/xenctx"),
    ("usr/bin/xenstore", "usr/bin/xenstore"),
];

/// xenstore is one program answering to several names.
const XENSTORE_NAMES: &[&str] = &[
    "read", "write", "ls", "list", "rm", "exists", "chmod", "watch",
];

/// Kernel modules for xl, xenstored, blkback and file-backed disks,
/// netback and the bridge dom0 puts the vifs on; their
/// dependencies (the "depends=" of each .modinfo) are added and loaded first.
const MODULES: &[&str] = &[
    "xen-evtchn",
    "xen-gntdev",
    "xen-gntalloc",
    "xen-privcmd",
    "xenfs",
    "xen-blkback",
    "loop",
    "xen-netback",
    "bridge",
];

/// Not in any package's ldd output but loaded by glibc at run time:
/// pthread_cancel needs it, and xl aborts without it.
const DLOPENED: &[&str] = &["libgcc_s.so.1"];

const LIB_DIR: &str = "lib/x86_64-linux-gnu";

/// The dom0 system archive (1.).
pub fn dom0(stage: &Stage) -> Result<Vec<u8>> {
    let mut a = Archive::default();
    for d in [
        "proc",
        "sys",
        "dev",
        "run",
        "tmp",
        "var/log/xen/console",
        "var/lib/xen",
        "var/lib/xenstored",
        "sbin",
        "usr/bin",
    ] {
        a.dir(d);
    }
    add_busybox(&mut a, stage)?;
    for (from, to) in PROGRAMS {
        a.file(to, 0o755, &read(&stage.root.join(from))?);
    }
    for name in XENSTORE_NAMES {
        a.symlink(&format!("usr/bin/xenstore-{name}"), "xenstore");
    }
    add_libraries(&mut a, stage)?;
    let modules = add_modules(&mut a, stage)?;
    a.file("etc/xt/modules", 0o644, modules.join("\n").as_bytes());
    a.file("etc/xen/xl.conf", 0o644, b"# empty: xl's defaults\n");
    let data = crate::root().join("xtask/xen");
    a.file("init", 0o755, &read(&data.join("init.sh"))?);
    a.file("etc/xen/scripts/block", 0o755, &read(&data.join("block"))?);
    a.file("etc/xen/scripts/vif-bridge", 0o755, &read(&data.join("vif-bridge"))?);
    a.file("usr/bin/netcheck", 0o755, &netcheck(&data.join("netcheck.c"))?);
    Ok(a.finish())
}

/// The cases archive (2.): each guest image is stored once.
pub fn cases(cases: &[Case]) -> Result<Vec<u8>> {
    let mut a = Archive::default();
    let mut stored = std::collections::BTreeSet::new();
    for case in cases {
        for (host, inside) in case.files() {
            if stored.insert(inside.clone()) {
                a.file(&inside, 0o644, &read(&host)?);
            }
        }
        let dir = format!("cases/{}", case.dir_name());
        a.file(&format!("{dir}/xl.cfg"), 0o644, case.xl_cfg().as_bytes());
        a.file(&format!("{dir}/name"), 0o644, case.domain_name().as_bytes());
        if let Some(client) = &case.client {
            a.file(&format!("{dir}/client"), 0o644, client.as_bytes());
        }
        a.file(
            &format!("{dir}/timeout"),
            0o644,
            case.timeout_secs.to_string().as_bytes(),
        );
    }
    Ok(a.finish())
}

/// The dom0 side of the network cases (xtask/xen/netcheck.c), built as a
/// static program with the host's C compiler (busybox's nc has no UDP).
fn netcheck(source: &Path) -> Result<Vec<u8>> {
    let out = crate::root().join("target/netcheck");
    let status = Command::new("cc")
        .args(["-static", "-O2", "-Wall", "-o"])
        .arg(&out)
        .arg(source)
        .status()
        .context("running cc (Debian packages gcc, libc6-dev) for netcheck")?;
    ensure!(status.success(), "cc {} failed", source.display());
    read(&out)
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn add_busybox(a: &mut Archive, stage: &Stage) -> Result<()> {
    let busybox = read(&stage.root.join("bin/busybox"))?;
    ensure!(
        elf::is_static(&busybox)?,
        "busybox-static's /bin/busybox is not a static program"
    );
    a.file("bin/busybox", 0o755, &busybox);
    a.symlink("bin/sh", "busybox");
    Ok(())
}

/// Each library the programs need: from the packages if they have it (ldd
/// runs with their library folder first), else from the host (glibc and
/// friends, which Debian bookworm shares with this host).
fn add_libraries(a: &mut Archive, stage: &Stage) -> Result<()> {
    let pkg_libs = stage.root.join("usr").join(LIB_DIR);
    let mut libs = std::collections::BTreeMap::new();
    let mut loader = None;
    for (from, _) in PROGRAMS {
        let needs = ldd(&stage.root.join(from), &pkg_libs)?;
        libs.extend(needs.libs);
        loader = loader.or(needs.loader);
    }
    for name in DLOPENED {
        libs.insert(name.to_string(), host_library(name)?);
    }
    for (soname, path) in &libs {
        a.file(&format!("{LIB_DIR}/{soname}"), 0o755, &read(path)?);
    }
    let loader = loader.context("ldd named no dynamic loader")?;
    let inside = loader.to_string_lossy().trim_start_matches('/').to_owned();
    a.file(&inside, 0o755, &read(&loader)?);
    Ok(())
}

/// What ldd says a program needs.
struct Needs {
    /// (soname, resolved path) of each library.
    libs: Vec<(String, PathBuf)>,
    /// The dynamic loader.
    loader: Option<PathBuf>,
}

/// Runs ldd on `program`, with the packages' `lib_dir` searched first.
fn ldd(program: &Path, lib_dir: &Path) -> Result<Needs> {
    let out = Command::new("ldd")
        .arg(program)
        .env("LD_LIBRARY_PATH", lib_dir)
        .output()
        .context("running ldd")?;
    ensure!(
        out.status.success(),
        "ldd {} failed: {}",
        program.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut libs = Vec::new();
    let mut loader = None;
    for line in text.lines().map(str::trim) {
        match line.split_once(" => ") {
            Some((soname, rest)) if rest.starts_with("not found") => {
                bail!(
                    "{} needs {soname}, which neither the downloaded packages nor the host have",
                    program.display()
                )
            }
            Some((soname, rest)) => {
                let path = rest.split(" (").next().unwrap_or_default();
                if !path.is_empty() {
                    libs.push((soname.to_owned(), PathBuf::from(path)));
                }
            }
            None if line.starts_with('/') => loader = line.split(" (").next().map(PathBuf::from),
            None => {} // linux-vdso
        }
    }
    Ok(Needs { libs, loader })
}

fn host_library(name: &str) -> Result<PathBuf> {
    [
        "/lib/x86_64-linux-gnu",
        "/usr/lib/x86_64-linux-gnu",
        "/lib64",
        "/usr/lib64",
    ]
    .iter()
    .map(|d| Path::new(d).join(name))
    .find(|p| p.exists())
    .with_context(|| format!("the host has no {name} (Debian package libgcc-s1)"))
}

/// Adds MODULES and their dependencies; returns the insmod order.
fn add_modules(a: &mut Archive, stage: &Stage) -> Result<Vec<String>> {
    let dir = stage
        .root
        .join("lib/modules")
        .join(&stage.kernel_release)
        .join("kernel");
    let mut all = std::collections::HashMap::new();
    find_modules(&dir, &mut all)?;
    let mut order = Vec::new();
    for name in MODULES {
        add_module(&module_key(name), &all, &mut order)?;
    }
    let mut inside = Vec::new();
    for key in order {
        let target = format!("lib/modules/{key}.ko");
        a.file(&target, 0o644, &read(&all[&key])?);
        inside.push(format!("/{target}"));
    }
    Ok(inside)
}

/// Module names treat '-' and '_' alike; the key uses '_'.
fn module_key(name: &str) -> String {
    name.replace('-', "_")
}

/// Every .ko under `dir`, by key.
fn find_modules(dir: &Path, all: &mut std::collections::HashMap<String, PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            find_modules(&path, all)?;
        } else if let Some(stem) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".ko"))
        {
            all.insert(module_key(stem), path);
        }
    }
    Ok(())
}

/// Depth-first: the module's dependencies (its .modinfo "depends=") first.
fn add_module(
    key: &str,
    all: &std::collections::HashMap<String, PathBuf>,
    order: &mut Vec<String>,
) -> Result<()> {
    if order.iter().any(|k| k == key) {
        return Ok(());
    }
    let path = all
        .get(key)
        .with_context(|| format!("kernel module {key} is not in the kernel package"))?;
    let image = read(path)?;
    let info = elf::section(&image, ".modinfo")?
        .with_context(|| format!("{} has no .modinfo", path.display()))?;
    let depends = info
        .split(|&c| c == 0)
        .find_map(|kv| kv.strip_prefix(b"depends="))
        .unwrap_or_default();
    for dep in String::from_utf8_lossy(depends)
        .split(',')
        .filter(|d| !d.is_empty())
    {
        add_module(&module_key(dep), all, order)?;
    }
    order.push(key.to_owned());
    Ok(())
}
