//! `cargo xtask`: builds that mix host and guest targets, tests, demo, benchmarks.

mod bench;
mod fuzz;

use anyhow::{bail, Result};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest = &args[args.len().min(1)..];
    match args.first().map(String::as_str) {
        Some("fuzz") => fuzz::run(rest),
        Some("bench") => bench::run(rest),
        _ => bail!("usage: cargo xtask (build|test|demo|bench|fuzz)"),
    }
}
