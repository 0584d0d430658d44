//! Debian's Xen and dom0 kernel, fetched with `apt-get download` into
//! target/xen-cache/ and unpacked there. Nothing is installed on the host.
//!
//! - `debs/`: the .deb files. A package whose .deb is already there is not
//!   fetched again, so a second run asks the network for nothing.
//! - `root/`: the packages unpacked (`dpkg-deb -x`; of the kernel package
//!   only the boot image, the block, Xen and netback drivers and the bridge), with a stamp naming
//!   the .debs it came from.
//! - `xen`: the hypervisor, gunzipped (QEMU's multiboot loader needs the
//!   ELF32 image, not the .gz).
//! - `vmlinux`: the dom0 kernel's uncompressed ELF, cut out of the bzImage
//!   (Xen boots it about 1.4 s sooner under TCG than the bzImage).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, ensure, Context, Result};

/// Xen's packages: the hypervisor, the toolstack and the libraries of the
/// four programs dom0 runs (xl, xenstored, xenconsoled, xen-init-dom0).
/// initramfs.rs checks with ldd that nothing else is missing.
const XEN_PACKAGES: &[&str] = &[
    "xen-hypervisor-4.17-amd64",
    "xen-utils-4.17",
    "xenstore-utils",
    "libxenmisc4.17",
    "libxenstore4",
    "libxencall1",
    "libxenevtchn1",
    "libxenforeignmemory1",
    "libxengnttab1",
    "libxentoollog1",
    "libxentoolcore1",
    "libxendevicemodel1",
    "libxenhypfs1",
    "libyajl2",
    "busybox-static",
];

/// The metapackage naming the current Debian 6.1 kernel (it has CONFIG_XEN_DOM0).
const KERNEL_META: &str = "linux-image-amd64";

/// What the kernel package contributes to `root/` (tar patterns).
const KERNEL_PATHS: &[&str] = &[
    "./boot/vmlinuz-*",
    "./lib/modules/*/kernel/drivers/xen/*",
    "./lib/modules/*/kernel/drivers/block/*",
    // netback and the bridge its vifs join (with its stp and llc helpers).
    "./lib/modules/*/kernel/drivers/net/xen-netback/*",
    "./lib/modules/*/kernel/net/bridge/*",
    "./lib/modules/*/kernel/net/802/*",
    "./lib/modules/*/kernel/net/llc/*",
];

/// The unpacked packages, ready for initramfs.rs and qemu.rs.
pub struct Stage {
    /// Files of the unpacked packages, laid out as on a Debian system.
    pub root: PathBuf,
    /// The gunzipped hypervisor image.
    pub xen: PathBuf,
    /// The dom0 kernel (uncompressed ELF).
    pub vmlinux: PathBuf,
    /// The dom0 kernel's release, e.g. "6.1.0-56-amd64".
    pub kernel_release: String,
    /// Versions of the main packages, for the report.
    pub versions: Vec<String>,
}

/// Makes sure everything is in `cache` and returns where it is.
pub fn stage(cache: &Path) -> Result<Stage> {
    let debs_dir = cache.join("debs");
    fs::create_dir_all(&debs_dir)?;
    let mut wanted: Vec<String> = XEN_PACKAGES.iter().map(|p| p.to_string()).collect();
    wanted.push(match cached_kernel_package(&debs_dir)? {
        Some(pkg) => pkg,
        None => kernel_package()?,
    });
    let missing: Vec<&str> = wanted
        .iter()
        .map(String::as_str)
        .filter(|p| cached_deb(&debs_dir, p).ok().flatten().is_none())
        .collect();
    if !missing.is_empty() {
        apt_download(&debs_dir, &missing)?;
    }
    let debs = wanted
        .iter()
        .map(|p| {
            cached_deb(&debs_dir, p)?.with_context(|| {
                format!(
                    "apt-get download {p} left no {p}_*.deb in {}",
                    debs_dir.display()
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let kernel_deb = debs.last().expect("the kernel is wanted").clone();

    let root = cache.join("root");
    let xen = cache.join("xen");
    if unpack(&root, &debs, &kernel_deb)? {
        // New packages: what was made from the old ones goes.
        for old in fs::read_dir(cache)?.filter_map(|e| e.ok().map(|e| e.path())) {
            if old.is_file()
                && old
                    .file_name()
                    .is_some_and(|n| n == "xen" || n.to_string_lossy().starts_with("vmlinux-"))
            {
                fs::remove_file(old)?;
            }
        }
    }
    let kernel_release = kernel_release(&root)?;
    if !xen.exists() {
        gunzip(&root.join("boot/xen-4.17-amd64.gz"), &xen)?;
    }
    let vmlinux = cache.join(format!("vmlinux-{kernel_release}"));
    if !vmlinux.exists() {
        extract_vmlinux(
            &root.join(format!("boot/vmlinuz-{kernel_release}")),
            &vmlinux,
        )?;
    }
    let versions = [&debs[0], &kernel_deb]
        .iter()
        .map(|d| deb_label(d))
        .collect();
    Ok(Stage {
        root,
        xen,
        vmlinux,
        kernel_release,
        versions,
    })
}

/// "name version" from a .deb's file name (name_version_arch.deb).
fn deb_label(deb: &Path) -> String {
    let name = deb.file_name().unwrap_or_default().to_string_lossy();
    let mut parts = name.trim_end_matches(".deb").split('_');
    let pkg = parts.next().unwrap_or_default();
    let ver = parts.next().unwrap_or_default().replace("%3a", ":");
    format!("{pkg} {ver}")
}

/// The .deb files in `dir` whose names start with `prefix`, sorted.
fn debs_starting_with(dir: &Path, prefix: &str) -> Result<Vec<PathBuf>> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().is_some_and(|n| {
                n.to_string_lossy().starts_with(prefix) && n.to_string_lossy().ends_with(".deb")
            })
        })
        .collect();
    found.sort();
    Ok(found)
}

/// The cached .deb of `pkg` (the newest if several).
fn cached_deb(dir: &Path, pkg: &str) -> Result<Option<PathBuf>> {
    Ok(debs_starting_with(dir, &format!("{pkg}_"))?.pop())
}

/// The package name of a cached linux-image-6.1.*-amd64 .deb: once a
/// kernel is cached, later runs keep it and need no package index.
fn cached_kernel_package(dir: &Path) -> Result<Option<String>> {
    let newest = debs_starting_with(dir, "linux-image-6.1.")?.pop();
    Ok(newest
        .and_then(|d| {
            Some(
                d.file_name()?
                    .to_string_lossy()
                    .split('_')
                    .next()?
                    .to_owned(),
            )
        })
        .filter(|p| p.ends_with("-amd64")))
}

/// `apt-cache depends linux-image-amd64` -> "linux-image-6.1.0-N-amd64".
fn kernel_package() -> Result<String> {
    let query = || {
        Command::new("apt-cache")
            .args(["depends", KERNEL_META])
            .output()
    };
    let mut out = query().context("running apt-cache")?;
    if !out.status.success() {
        apt_update()?;
        out = query().context("running apt-cache")?;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .find(|p| p.starts_with("linux-image-6.1.") && p.ends_with("-amd64"))
        .map(str::to_owned)
        .with_context(|| format!("apt-cache depends {KERNEL_META} names no linux-image-6.1.*-amd64 (is this Debian bookworm?):\n{text}"))
}

/// One `apt-get download` for all of `pkgs` (apt resolves each name to its
/// candidate version and checks the archive's signatures).
fn apt_download(dir: &Path, pkgs: &[&str]) -> Result<()> {
    println!("test-xen: apt-get download {}", pkgs.join(" "));
    let download = || {
        let mut apt = Command::new("apt-get");
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            // apt's _apt user may not write into target/; root may.
            apt.args(["-o", "APT::Sandbox::User=root"]);
        }
        apt.args(["download", "-q"])
            .args(pkgs)
            .current_dir(dir)
            .stdout(Stdio::null())
            .status()
    };
    if download().context("running apt-get")?.success() {
        return Ok(());
    }
    // A fresh machine may have no package lists yet.
    apt_update()?;
    ensure!(
        download().context("running apt-get")?.success(),
        "apt-get download failed (Debian bookworm's package sources are needed)"
    );
    Ok(())
}

fn apt_update() -> Result<()> {
    crate::run(Command::new("apt-get").args(["update", "-qq"]))
}

/// Unpacks `debs` into `root` unless its stamp says that is done already;
/// true if it unpacked.
fn unpack(root: &Path, debs: &[PathBuf], kernel_deb: &Path) -> Result<bool> {
    let stamp_path = root.join(".unpacked-from");
    // The kernel paths too: a new one must unpack again.
    let stamp: String = debs
        .iter()
        .map(|d| format!("{}\n", d.file_name().unwrap_or_default().to_string_lossy()))
        .chain(KERNEL_PATHS.iter().map(|p| format!("{p}\n")))
        .collect();
    if fs::read_to_string(&stamp_path).is_ok_and(|s| s == stamp) {
        return Ok(false);
    }
    println!(
        "test-xen: unpacking {} packages into {}",
        debs.len(),
        root.display()
    );
    if root.exists() {
        fs::remove_dir_all(root)?;
    }
    fs::create_dir_all(root)?;
    for deb in debs.iter().filter(|d| d.as_path() != kernel_deb) {
        crate::run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(root))?;
    }
    // Only part of the kernel package (it unpacks to 400 MB).
    let pipeline = format!(
        "dpkg-deb --fsys-tarfile '{}' | tar -x -C '{}' --wildcards {}",
        kernel_deb.display(),
        root.display(),
        KERNEL_PATHS
            .iter()
            .map(|p| format!("'{p}'"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    crate::run(Command::new("sh").args(["-ec", &pipeline]))?;
    fs::write(stamp_path, stamp)?;
    Ok(true)
}

/// The one directory under root/lib/modules.
fn kernel_release(root: &Path) -> Result<String> {
    let mut names: Vec<String> = fs::read_dir(root.join("lib/modules"))
        .context("the kernel package left no lib/modules")?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    names.sort();
    names.pop().context("no kernel release under lib/modules")
}

fn gunzip(gz: &Path, out: &Path) -> Result<()> {
    let data = Command::new("gzip")
        .arg("-dc")
        .arg(gz)
        .output()
        .context("running gzip")?;
    ensure!(data.status.success(), "gzip -dc {} failed", gz.display());
    write_atomically(out, &data.stdout)
}

/// Cuts the xz-compressed vmlinux out of a bzImage (what the kernel's
/// scripts/extract-vmlinux does): decompresses the first xz stream that
/// yields an ELF image.
fn extract_vmlinux(bzimage: &Path, out: &Path) -> Result<()> {
    const XZ_MAGIC: &[u8] = b"\xfd7zXZ\x00";
    let image = fs::read(bzimage).with_context(|| format!("reading {}", bzimage.display()))?;
    for start in (0..image.len().saturating_sub(XZ_MAGIC.len()))
        .filter(|&i| image[i..].starts_with(XZ_MAGIC))
    {
        if let Some(elf) = unxz(&image[start..])? {
            return write_atomically(out, &elf);
        }
    }
    bail!(
        "no xz-compressed ELF kernel inside {} (is CONFIG_KERNEL_XZ set?)",
        bzimage.display()
    )
}

/// Decompresses one xz stream (trailing bytes are ignored); `None` if it is
/// not an ELF image.
fn unxz(data: &[u8]) -> Result<Option<Vec<u8>>> {
    use std::io::Write;
    let mut child = Command::new("xz")
        .args(["-dc", "--single-stream"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("running xz (Debian package xz-utils)")?;
    let mut stdin = child.stdin.take().expect("piped");
    let input = data.to_vec();
    let writer = std::thread::spawn(move || {
        // xz stops reading after the stream: a broken pipe here is expected.
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output()?;
    let _ = writer.join();
    Ok(out.stdout.starts_with(b"\x7fELF").then_some(out.stdout))
}

fn write_atomically(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension("partial");
    fs::write(&tmp, data).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path)?;
    Ok(())
}
