//! `xenolith`: an xl-style command line for the Xenolith hypervisor.

mod fstest;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Run Xen PVH guests on any Linux host with /dev/kvm.
#[derive(Parser)]
#[command(name = "xenolith", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show what pvboot sees on a disk image (like grub-fstest).
    Fstest(fstest::FstestArgs),
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_timestamp(None)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Fstest(args) => fstest::run(&args),
    }
}
