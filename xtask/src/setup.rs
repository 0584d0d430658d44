//! Set-up on a fresh machine: the Debian packages the tests and benchmarks
//! use as real peers, the guest target, and cargo-fuzz.

use std::process::Command;

use anyhow::{bail, Result};

/// Debian packages the project uses, with why.
const PACKAGES: &[(&str, &str)] = &[
    ("makefs", "NetBSD FFS images for fs-ffs tests"),
    ("dosfstools", "FAT images"),
    ("mtools", "FAT long names without mounting"),
    ("e2fsprogs", "ext2/3/4 images (mke2fs -d)"),
    ("fdisk", "MBR and GPT partition tables (sfdisk)"),
    ("gdisk", "GPT partition tables (sgdisk)"),
    ("grub-xen-bin", "GRUB's PVH image, a real peer guest"),
    ("grub-common", "grub-mkimage"),
    ("xenstore-utils", "real xenstore clients"),
    ("python3-pyxs", "a real xenstore client library"),
    ("iproute2", "network namespaces, bridges, TAP"),
    ("curl", "fetches httpd's page and file in the network tests"),
    ("tftpd-hpa", "a real TFTP server for pvboot's network boot tests"),
    ("dnsmasq-base", "a real DHCP server naming pvboot's boot server in the network boot tests"),
    ("fio", "host disk baseline for benchmarks"),
    ("iperf3", "host TCP baseline over veth for the network benchmark"),
    ("valgrind", "instruction counts for guest-side code"),
    ("qemu-system-x86", "test-xen: boots Debian's real Xen under TCG"),
    ("gcc", "test-xen: builds dom0's static netcheck (xtask/xen/netcheck.c)"),
    ("libc6-dev", "test-xen: the static C library netcheck links with"),
    ("xz-utils", "test-xen: unpacks the dom0 kernel from its bzImage; xz and lzma for pvboot's compress tests"),
    ("gzip", "pvboot compress tests: gzip -9"),
    ("zstd", "pvboot compress tests: zstd -19 / --ultra -22"),
    ("bzip2", "pvboot compress tests: bzip2 -9"),
    ("lz4", "pvboot compress tests: lz4 -l (the legacy frame Linux uses)"),
    ("lzop", "pvboot compress tests: lzop -9"),
];

/// Installs whatever is missing; quiet when everything is there.
pub fn run() -> Result<()> {
    let missing: Vec<&str> = PACKAGES
        .iter()
        .map(|(p, _)| *p)
        .filter(|p| {
            !Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        })
        .collect();
    if !missing.is_empty() {
        println!("setup: installing Debian packages: {}", missing.join(" "));
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc_geteuid() } == 0;
        let apt = |args: &[&str]| {
            let mut c = if root {
                Command::new("apt-get")
            } else {
                let mut c = Command::new("sudo");
                c.arg("apt-get");
                c
            };
            c.args(args).env("DEBIAN_FRONTEND", "noninteractive");
            crate::run(&mut c)
        };
        apt(&["update", "-qq"])?;
        let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
        args.extend(&missing);
        apt(&args)?;
    }
    ensure_target()?;
    Ok(())
}

/// rust-toolchain.toml names the guest target; older rustups need it added by hand.
fn ensure_target() -> Result<()> {
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .current_dir(crate::root())
        .output();
    match out {
        Ok(o) if String::from_utf8_lossy(&o.stdout).contains("x86_64-unknown-none") => Ok(()),
        Ok(_) => crate::run(Command::new("rustup").args(["target", "add", "x86_64-unknown-none"])),
        Err(_) => bail!("rustup is needed to install the x86_64-unknown-none target"),
    }
}

/// Makes sure cargo-fuzz and the nightly toolchain it needs are there,
/// installing whichever is missing.
pub fn ensure_cargo_fuzz() -> Result<()> {
    let toolchains = Command::new("rustup").args(["toolchain", "list"]).output();
    if !toolchains.is_ok_and(|o| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .any(|l| l.starts_with("nightly"))
    }) {
        println!("setup: installing the nightly toolchain (cargo-fuzz needs it)");
        crate::run(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
        ]))?;
    }
    let have = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        println!("setup: installing cargo-fuzz");
        crate::run(Command::new("cargo").args(["install", "--locked", "cargo-fuzz"]))?;
    }
    Ok(())
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}
