//! `cargo xtask bench`: every capability's benchmark, each against a real
//! peer measured in the same run; results are printed and recorded in
//! docs/benchmarks.md.

mod block;
mod boot;
mod boot_loader;
mod fs;
mod hypercall;
mod net;
mod netboot;
mod service;

use anyhow::Result;

/// Runs the benchmarks named in `args` (all when empty): boot, fs, block, boot-loader, net, netboot, hypercall.
pub fn run(args: &[String]) -> Result<()> {
    let want = |name: &str| args.is_empty() || args.iter().any(|a| a == name);
    if want("boot") {
        let report = boot::run()?;
        print!("{report}");
        record("boot", &report)?;
    }
    if want("fs") {
        fs::run()?;
    }
    if want("block") {
        let report = block::run()?;
        print!("{report}");
        record("block", &report)?;
    }
    if want("boot-loader") {
        let report = boot_loader::run()?;
        print!("{report}");
        record("boot-loader", &report)?;
    }
    if want("net") {
        let report = net::run()?;
        print!("{report}");
        record("net", &report)?;
    }
    if want("netboot") {
        let report = netboot::run()?;
        print!("{report}");
        record("netboot", &report)?;
    }
    if want("hypercall") {
        let report = hypercall::run()?;
        print!("{report}");
        record("hypercall", &report)?;
    }
    Ok(())
}

/// Replaces the block between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`
/// in docs/benchmarks.md with the latest report.
pub fn record(name: &str, report: &str) -> Result<()> {
    let path = crate::root().join("docs/benchmarks.md");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let (open, close) = (
        format!("<!-- bench:{name} -->"),
        format!("<!-- /bench:{name} -->"),
    );
    let block = format!("{open}\n```\n{}```\n{close}", report);
    let new = match (text.find(&open), text.find(&close)) {
        (Some(a), Some(b)) if a < b => {
            format!("{}{}{}", &text[..a], block, &text[b + close.len()..])
        }
        _ => format!("{text}\n{block}\n"),
    };
    std::fs::write(&path, new)?;
    Ok(())
}

/// Reads a whole file once so that the runs after it find it in the page
/// cache (both the peer and our code then read it hot).
pub fn warm_page_cache(path: &std::path::Path) -> Result<()> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 4 << 20];
    while f.read(&mut buf)? > 0 {}
    Ok(())
}

/// The KVM backend `xenolith -v` reported in `log` (hardware or software).
pub fn kvm_backend(log: &str) -> String {
    log.lines()
        .find_map(|l| l.split("KVM backend: ").nth(1))
        .unwrap_or("unknown")
        .to_string()
}
