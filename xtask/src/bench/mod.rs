//! `cargo xtask bench`: every capability's benchmark, each against a real peer.

mod fs;

use anyhow::Result;

/// Runs all benchmarks and prints their reports.
pub fn run(_args: &[String]) -> Result<()> {
    fs::run()
}
