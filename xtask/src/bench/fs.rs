//! File-system read throughput against reading the image directly.

use anyhow::Result;

/// Runs the file-system benchmark.
pub fn run() -> Result<()> {
    Ok(())
}
