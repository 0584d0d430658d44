//! `xenolith fstest`: pvboot's disk and file-system code run on an image file.

use std::process::ExitCode;

/// Arguments of `xenolith fstest IMAGE[:PARTITION] COMMAND [PATH]`.
#[derive(clap::Args)]
pub struct FstestArgs {
    /// Disk image, optionally with a partition (IMG:xbd0a, IMG:msdos1, IMG:gpt2).
    pub image: String,
    /// One of ls, cat, stat, probe, partitions.
    pub command: String,
    /// Path inside the file system.
    pub path: Option<String>,
}

/// Runs one fstest command and reports errors as one line.
pub fn run(_args: &FstestArgs) -> ExitCode {
    eprintln!("xenolith fstest: not built yet");
    ExitCode::FAILURE
}
