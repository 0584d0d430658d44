//! `xenolith`: an xl-style command line for the Xenolith hypervisor.

mod fstest;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::error::ErrorKind;
use clap::{ArgAction, Parser, Subcommand};

use xenolith::toolstack::domain::{ConsoleTarget, Outcome, RunOptions};
use xenolith::toolstack::registry::Registry;
use xenolith::toolstack::stop::{self, StopCause, Stopper};
use xenolith::xen::ShutdownReason;
use xenolith::service::verbs::Verb;
use xenolith::{seccomp, service, toolstack, xenstore};

/// Run Xen PVH guests on any Linux host with /dev/kvm.
///
/// `create` and the other xl verbs go through the host service (`xenolith
/// daemon`, started by `create` if it is not running), which keeps
/// the domains running after the command returns; they exit 0 on success
/// and 1 on any error, as xl does.
///
/// Exit status of `run`: 0 the domain powered off, 1 an error in the
/// command line, the configuration, the kernel or the hypervisor, 2 the
/// domain crashed, 3 it rebooted (and on_reboot did not restart it), 4 it
/// stopped otherwise (suspend, watchdog), 5 destroyed from the console with
/// Ctrl-], 128+N destroyed on signal N (SIGHUP 129, SIGINT 130, SIGQUIT 131,
/// SIGTERM 143), always restoring the terminal and removing the xenstored
/// socket. Other commands exit 0 on success and 1 on any error.
#[derive(Parser)]
#[command(name = "xenolith", version, about, long_about)]
struct Cli {
    /// More log output (-v info, -vv debug, -vvv trace); RUST_LOG also works.
    #[arg(short, long, global = true, action = ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Verb(Verb),
    /// Run one domain in this process, with its own xenstored, until it
    /// shuts down (`xl create -F` without the host service).
    Run(RunArgs),
    /// The host service: holds xenstored and every domain, serves the verbs
    /// on <run dir>/control (run dir: $XENOLITH_RUN_DIR or /run/xenolith).
    Daemon(DaemonArgs),
    /// Show what pvboot sees on a disk image (like grub-fstest).
    Fstest(fstest::FstestArgs),
    /// Print the unix socket of xenolith's xenstored, for Xen's tools:
    /// `XENSTORED_PATH=$(xenolith xenstore-path) xenstore-ls`.
    ///
    /// It is $XENOLITH_RUN_DIR/xenstored/socket (default run dir:
    /// /run/xenolith); a xenolith that finds that socket served by another
    /// one uses socket.<pid> next to it and logs it.
    XenstorePath(XenstorePathArgs),
}

/// `xenolith xenstore-path [--pid PID]`
#[derive(clap::Args)]
struct XenstorePathArgs {
    /// The socket of the xenolith with this process id.
    #[arg(long)]
    pid: Option<u32>,
}

/// `xenolith daemon [--group G] [--log-dir DIR]`
#[derive(clap::Args)]
struct DaemonArgs {
    /// Members of this group (name or id) may use the control socket too;
    /// without it only root can.
    #[arg(long)]
    group: Option<String>,
    /// Where the domains' console logs go (guest-NAME.log).
    #[arg(long, default_value = "/var/log/xenolith")]
    log_dir: PathBuf,
    /// Run without the per-thread seccomp filters (XENOLITH_NO_SECCOMP=1 does the same).
    #[arg(long)]
    no_seccomp: bool,
}

/// `xenolith run [-c] CONFIG [KEY=VALUE ...]`
#[derive(clap::Args)]
struct RunArgs {
    /// Attach the domain's console to this terminal (like `xl create -c`;
    /// Ctrl-] destroys the domain).
    #[arg(short = 'c')]
    console: bool,
    /// Without -c, write the console to this file [default: /var/log/xenolith/guest-NAME.log].
    #[arg(long, value_name = "FILE")]
    console_log: Option<PathBuf>,
    /// Run without the per-thread seccomp filters, to debug a thread killed
    /// for a forbidden system call (XENOLITH_NO_SECCOMP=1 does the same).
    #[arg(long)]
    no_seccomp: bool,
    /// Check the configuration and the kernel, print the domain, and exit.
    #[arg(short = 'n', long)]
    dry_run: bool,
    /// The xl.cfg file (xl.cfg(5) syntax; type = "pvh").
    config: PathBuf,
    /// Settings that override the file, in xl.cfg syntax: memory=64 'extra="quiet"'.
    #[arg(value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

fn main() -> ExitCode {
    // clap exits 2 on a usage error, which `create` uses for a crashed
    // domain: report usage errors as errors (1) instead.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => ExitCode::SUCCESS,
                _ => ExitCode::from(toolstack::EXIT_ERROR),
            };
        }
    };
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let logger = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).format_timestamp(None).format_target(false).build();
    if matches!(cli.command, Command::Daemon(_)) {
        // The service keeps its log for `xenolith dmesg`.
        let _ = service::dmesg::install(logger);
    } else {
        log::set_max_level(logger.filter());
        let _ = log::set_boxed_logger(Box::new(logger));
    }
    match cli.command {
        Command::Verb(Verb::Create(args)) if args.dry_run => {
            let cfg = match toolstack::config::DomainConfig::load(&args.config, &args.overrides) {
                Ok(cfg) => cfg,
                Err(e) => return report(&e),
            };
            print_dry_run(&cfg)
        }
        Command::Verb(_) => verb(),
        Command::Run(args) => run(&args),
        Command::Daemon(args) => daemon(&args),
        Command::Fstest(args) => fstest::run(&args),
        Command::XenstorePath(args) => {
            println!("{}", xenstore::socket::locate(args.pid).display());
            ExitCode::SUCCESS
        }
    }
}

/// Prints an error with its cause chain on one line.
fn report(err: &dyn std::error::Error) -> ExitCode {
    eprintln!("xenolith: {}", toolstack::describe(err));
    ExitCode::from(toolstack::EXIT_ERROR)
}

/// Checks everything the real run checks before it builds the VM (the same
/// code: [`toolstack::domain::prepare`]) and describes the domain.
fn dry_run(cfg: &toolstack::config::DomainConfig) -> Result<String, toolstack::domain::DomainError> {
    let prepared = toolstack::domain::prepare(cfg)?;
    let boot = &prepared.boot;
    Ok(format!(
        "name: {}\nkernel: {} ({})\nentry: {:#x}, start info at {:#x}\nmemory: {} MiB\ncmdline: {}\ndisks: {}\nvifs: {}",
        cfg.name,
        cfg.kernel.display(),
        prepared.kernel,
        boot.entry,
        boot.start_info,
        cfg.memory_mib,
        cfg.cmdline.as_deref().unwrap_or(""),
        cfg.disks.len(),
        prepared.vifs.iter().map(|(_, v)| format!("{} ({}{})", v.vifname.clone().unwrap_or_else(|| format!("vif<domid>.{}", v.devid)), v.mac_string(), v.bridge.as_deref().map(|b| format!(", bridge {b}")).unwrap_or_default())).collect::<Vec<_>>().join(", ")
    ))
}

/// Sends the command line's verb to the host service.
fn verb() -> ExitCode {
    // The verb and its arguments as typed, less the global -v flags,
    // which are this process's.
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !(a == "--verbose" || (a.len() > 1 && a.starts_with('-') && a[1..].chars().all(|c| c == 'v')))).collect();
    match service::client::run(&args) {
        Ok(status) => ExitCode::from(status),
        Err(e) => report(&e),
    }
}

fn daemon(args: &DaemonArgs) -> ExitCode {
    seccomp::close_inherited_fds();
    let group = match args.group.as_deref().map(|g| (g, service::control::group_id(g))) {
        Some((g, None)) => {
            eprintln!("xenolith: no group {g}");
            return ExitCode::from(toolstack::EXIT_ERROR);
        }
        Some((_, id)) => id,
        None => None,
    };
    let no_seccomp = args.no_seccomp || std::env::var_os("XENOLITH_NO_SECCOMP").is_some_and(|v| v == "1");
    let opts = service::server::DaemonOptions { group, log_dir: args.log_dir.clone(), no_seccomp };
    match service::server::serve(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(&e),
    }
}

fn print_dry_run(cfg: &toolstack::config::DomainConfig) -> ExitCode {
    for warning in &cfg.warnings {
        log::warn!("{warning}");
    }
    match dry_run(cfg) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => report(&e),
    }
}

fn run(args: &RunArgs) -> ExitCode {
    seccomp::close_inherited_fds();
    let cfg = match toolstack::config::DomainConfig::load(&args.config, &args.overrides) {
        Ok(cfg) => cfg,
        Err(e) => return report(&e),
    };
    if args.dry_run {
        if let Err(e) = toolstack::domain::refuse_preserve(&cfg) {
            return report(&e);
        }
        return print_dry_run(&cfg);
    }
    for warning in &cfg.warnings {
        log::warn!("{warning}");
    }
    let console = if args.console {
        ConsoleTarget::Terminal
    } else {
        let path = args.console_log.clone().unwrap_or_else(|| {
            let dir = PathBuf::from("/var/log/xenolith");
            let _ = std::fs::create_dir_all(&dir);
            dir.join(format!("guest-{}.log", cfg.name))
        });
        ConsoleTarget::Log(path)
    };
    // Confined threads (all but this one) get their filters from here on.
    let no_seccomp = args.no_seccomp || std::env::var_os("XENOLITH_NO_SECCOMP").is_some_and(|v| v == "1");
    if no_seccomp {
        log::warn!("running without seccomp filters (--no-seccomp)");
    } else if let Err(e) = seccomp::enable() {
        return report(&e);
    }
    // No thread runs yet: all that start from here inherit the blocked
    // signals, and the signal thread alone takes them.
    let stopper = Stopper::default();
    if let Err(e) = stop::handle_signals(stopper.clone()) {
        eprintln!("xenolith: cannot handle signals: {e}");
        return ExitCode::from(toolstack::EXIT_ERROR);
    }
    // One domain per process for now; the registry is what a host service
    // shares between its `create`s.
    let registry = Arc::new(Registry::default());
    let lease = match registry.allocate(&cfg.name) {
        Ok(lease) => lease,
        Err(e) => return report(&e),
    };
    let mut opts = RunOptions { lease, console, stopper, store: None, keeper: None, start_paused: false };
    match toolstack::domain::run(&cfg, &mut opts) {
        Ok(Outcome::Shutdown(reason)) => {
            log::info!("domain {} ended: {}", cfg.name, reason.name());
            ExitCode::from(match reason {
                ShutdownReason::Poweroff => toolstack::EXIT_POWEROFF,
                ShutdownReason::Crash => toolstack::EXIT_CRASH,
                ShutdownReason::Reboot => toolstack::EXIT_REBOOT,
                _ => toolstack::EXIT_OTHER,
            })
        }
        Ok(Outcome::Stopped(cause)) => {
            log::info!("domain {} destroyed: {}", cfg.name, cause.describe());
            ExitCode::from(match cause {
                StopCause::ConsoleEscape | StopCause::Destroy => toolstack::EXIT_DESTROYED,
                StopCause::Signal(n) => toolstack::EXIT_SIGNAL_BASE.saturating_add(n as u8),
            })
        }
        Ok(Outcome::Preserved(reason)) => {
            // Only the host service keeps domains; `run` refuses preserve.
            log::info!("domain {} ended: {}", cfg.name, reason.name());
            ExitCode::from(toolstack::EXIT_OTHER)
        }
        Err(e) => report(&e),
    }
}
