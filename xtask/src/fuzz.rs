//! `cargo xtask fuzz`: runs every cargo-fuzz target in the workspace for a
//! bounded time and fails if any of them finds a crash.
//!
//! Usage: `cargo xtask fuzz [--seconds N] [TARGET...]` (N defaults to 10;
//! naming targets runs only those). Besides the cargo-fuzz targets there are
//! `hostile-guest`: the hostile guest (examples/hostile) booted under the
//! hypervisor with one new seed after another for N seconds
//! ([`hostile_guest`]), `kill9`: kill -9 durability trials for N
//! seconds ([`kill9`]), and, only when named, `hand-made`: the hand-made
//! hostile cases, each run once, with their tally ([`hand_made`]). Needs a nightly toolchain and cargo-fuzz,
//! which `setup::ensure_cargo_fuzz` installs when they are missing.
//!
//! Conventions, so that a crate only has to add files to take part:
//! - A fuzz dir is `<crate>/fuzz/` under the workspace root, in cargo-fuzz's
//!   layout: its own `Cargo.toml` (with `[workspace]` and libfuzzer-sys) and
//!   one `fuzz_targets/<target>.rs` per target, the `[[bin]]` being named
//!   like the file.
//! - Seeds: a committed `seeds/<target>/` in the fuzz dir seeds that target
//!   (the output of the crate's `seeds.sh`, made from real mkfs/makefs
//!   images and committed so that every run, on any machine, starts from the
//!   same corpus). And if the fuzz dir holds a `seeds.sh`, it is run first as
//!   `sh seeds.sh <dir>` with an empty `<target dir>/fuzz-seeds/<crate>/`,
//!   and writes seed inputs there too (so a change to it counts before its
//!   output is committed): a subdirectory named like a target seeds that
//!   target alone, else every target of the crate gets the whole directory.
//!   A script that cannot make seeds (a tool missing) should say so and exit
//!   0: fuzzing still runs, from the committed seeds or an empty corpus.
//! - The corpus grows in `<target dir>/fuzz-corpus/<crate>/<target>/` and is
//!   kept between runs; crashing inputs land in
//!   `<target dir>/fuzz-artifacts/<crate>/<target>/`, libFuzzer's output in
//!   `<target dir>/fuzz-logs/<crate>-<target>.log`.
//! - A crash (a panic), running out of memory or one input taking over 10
//!   seconds (a hang, [`HANG_SECONDS`]) fails the run. Hangs are caught by a
//!   watchdog thread in the targets that use pvboot/fuzz's
//!   common/watchdog.rs (told the limit and the artifact prefix by
//!   environment variables), which writes the input as
//!   `timeout-watchdog-<hash>` and aborts: libFuzzer's own SIGALRM handler
//!   allocates, and stalled for good when the alarm came inside malloc
//!   (campaign 3 lost an input that way), so for those targets its
//!   `-timeout` is only a backstop, [`LIBFUZZER_TIMEOUT_SLACK`] seconds
//!   later; the other targets keep libFuzzer's `-timeout` of 10 s.
//! - Out of memory means 2 GiB of RSS, unless the fuzz dir's `Cargo.toml`
//!   gives `fuzz-heap = "pvboot"` (or `fuzz-heap-mb = N`): then the code
//!   runs in a guest with that heap (pvboot's is `pvboot::HEAP_MAX`,
//!   64 MiB, the one constant the guest, the targets' allocator and this
//!   file use), its targets' global allocator refuses to hold more
//!   (pvboot/fuzz/fuzz_targets/common/heap.rs), libFuzzer gets
//!   `-malloc_limit_mb` of that size (checked under a sanitizer) and the
//!   process `-rss_limit_mb` of it plus 464 (libFuzzer's own corpus and
//!   tables take about 100 MB, and grow with the corpus).
//! - Sanitizer: AddressSanitizer (cargo-fuzz's default) unless the fuzz
//!   dir's `Cargo.toml` says `fuzz-sanitizer = "none"`: for code that is all
//!   safe Rust, as pvboot,
//!   fs-ffs and ext4-view are (`forbid(unsafe_code)`), ASan finds nothing
//!   and costs over ten times the speed; panics and the heap limit need no
//!   sanitizer.
//!
//! `<target dir>` is `$CARGO_TARGET_DIR` or the workspace's `target/`; the
//! fuzz builds go to its `fuzz/` subdirectory, since their sanitizer flags
//! would otherwise invalidate the normal builds.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, ensure, Context, Result};

/// Seconds one input may run before the run fails as a hang.
const HANG_SECONDS: u64 = 10;
/// How much later libFuzzer's own `-timeout` fires, for targets without the
/// watchdog (and in case it fails): its handler can stall (see above).
const LIBFUZZER_TIMEOUT_SLACK: u64 = 5;

/// RSS limit of a fuzzing process whose code has no heap cap of its own.
const DEFAULT_RSS_LIMIT_MB: u32 = 2048;
/// What libFuzzer itself may take on top of a capped heap: about 100 MB with
/// a few MB of corpus (measured), and room for the corpus to grow over a
/// long campaign.
const LIBFUZZER_RSS_MB: u32 = 464;

/// A cargo-fuzz target found in the workspace.
struct Target {
    /// Crate the fuzz dir belongs to (the folder holding `fuzz/`).
    krate: String,
    /// The `fuzz/` directory.
    fuzz_dir: PathBuf,
    /// Target (binary) name.
    name: String,
}

/// Runs the fuzz targets.
pub fn run(args: &[String]) -> Result<()> {
    let (seconds, only) = parse_args(args)?;
    let root = workspace_root();
    // Commands below run in other directories: a relative CARGO_TARGET_DIR
    // (relative to here, as cargo reads it) is made absolute first.
    let target_dir = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => std::env::current_dir()?.join(dir),
        None => root.join("target"),
    };

    // The campaigns that are not cargo-fuzz targets are targets by name too;
    // a plain run (no names) includes those marked so.
    let campaigns: Vec<&Campaign> = CAMPAIGNS.iter().filter(|c| if only.is_empty() { c.in_plain_run } else { only.iter().any(|n| n == c.name) }).collect();
    let only: Vec<String> = only.into_iter().filter(|n| !CAMPAIGNS.iter().any(|c| c.name == n)).collect();
    let named = args.iter().any(|a| CAMPAIGNS.iter().any(|c| c.name == a));
    if only.is_empty() && named {
        return run_campaigns(&campaigns, &target_dir, seconds);
    }
    let mut targets = find_targets(&root)?;
    if !only.is_empty() {
        for name in &only {
            ensure!(
                targets.iter().any(|t| &t.name == name),
                "no fuzz target named {name}"
            );
        }
        targets.retain(|t| only.contains(&t.name));
    }
    ensure!(
        !targets.is_empty(),
        "no fuzz targets found under {}/*/fuzz/fuzz_targets",
        root.display()
    );
    check_cargo_fuzz()?;

    let mut seeded = Vec::new();
    let mut failed = Vec::new();
    for t in &targets {
        if !seeded.contains(&t.krate) {
            make_seeds(t, &target_dir)?;
            seeded.push(t.krate.clone());
        }
        match fuzz_one(t, &target_dir, seconds) {
            Ok(summary) => println!("fuzz {}/{}: ok, {summary}", t.krate, t.name),
            Err(e) => {
                println!("fuzz {}/{}: FAILED: {e:#}", t.krate, t.name);
                failed.push(format!("{}/{}", t.krate, t.name));
            }
        }
    }
    if let Err(e) = run_campaigns(&campaigns, &target_dir, seconds) {
        failed.push(format!("{e:#}"));
    }
    if !failed.is_empty() {
        bail!("fuzz targets failed: {}", failed.join(", "));
    }
    Ok(())
}

/// A run of the hypervisor that `cargo xtask fuzz` drives by name, beside
/// the cargo-fuzz targets.
struct Campaign {
    /// Its name on the command line.
    name: &'static str,
    /// Runs it: (target dir, seconds).
    run: fn(&Path, u64) -> Result<()>,
    /// Part of a plain `cargo xtask fuzz` (and so of `cargo xtask test`).
    in_plain_run: bool,
}

const CAMPAIGNS: [Campaign; 3] = [
    Campaign { name: HOSTILE_GUEST, run: hostile_guest, in_plain_run: true },
    Campaign { name: KILL9, run: kill9, in_plain_run: true },
    // Its cases are tests already (tests/tests/hand_made.rs); named, it prints the tally.
    Campaign { name: HAND_MADE, run: hand_made, in_plain_run: false },
];

/// Runs `campaigns` one after another; fails naming those that failed.
fn run_campaigns(campaigns: &[&Campaign], target_dir: &Path, seconds: u64) -> Result<()> {
    let mut failed = Vec::new();
    for c in campaigns {
        if let Err(e) = (c.run)(target_dir, seconds) {
            println!("fuzz {}: FAILED: {e:#}", c.name);
            failed.push(c.name);
        }
    }
    ensure!(failed.is_empty(), "fuzz targets failed: {}", failed.join(", "));
    Ok(())
}

/// The name of the hand-made cases' tally among the targets.
const HAND_MADE: &str = "hand-made";

/// The hand-made hostile and careless cases (issue 9's "Figures"): the
/// table of command-line cases (tests/src/hand_made.rs), each checked for
/// its exit code and one clear line, no panic, signal or hang; then the
/// hand-made cases that need more than a command line, which are tests of
/// their own and counted by their results: damaged file-system images and
/// a restart loop (tests/tests/careless_input.rs), signals and the console
/// escape on a terminal (tests/tests/signals.rs), and pvboot's hostile
/// images (pvboot/tests/hostile.rs). Prints `hand-made: N cases, M
/// misbehave`; `seconds` is not used (every case runs once).
fn hand_made(target_dir: &Path, _seconds: u64) -> Result<()> {
    use xenolith_tests::run_hand_made;
    crate::build()?;
    let scratch = target_dir.join("fuzz-scratch").join(HAND_MADE);
    let _ = fs::remove_dir_all(&scratch);
    fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let start = std::time::Instant::now();
    let (table, bad) = run_hand_made(&scratch);
    for (name, why) in &bad {
        println!("fuzz {HAND_MADE}: MISBEHAVES {name}: {why}");
    }
    println!("fuzz {HAND_MADE}: table (tests/src/hand_made.rs): {table} cases, {} misbehave", bad.len());
    let mut total = (table, bad.len());
    for (package, test) in [("xenolith-tests", "careless_input"), ("xenolith-tests", "signals"), ("pvboot", "hostile")] {
        let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["test", "--release", "-p", package, "--test", test])
            .current_dir(crate::root())
            .output()
            .with_context(|| format!("running the {test} tests"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        // libtest: "test result: ok. P passed; F failed; ..."
        let counts = text.lines().find_map(|l| {
            let rest = l.strip_prefix("test result: ")?;
            let num = |key: &str| rest.split("; ").find_map(|p| p.trim_start_matches("ok. ").trim_start_matches("FAILED. ").strip_suffix(key)?.trim().parse::<usize>().ok());
            Some((num(" passed")?, num(" failed")?))
        });
        let Some((passed, failed)) = counts else {
            bail!("no test result from {package} --test {test}:\n{}", String::from_utf8_lossy(&out.stderr));
        };
        println!("fuzz {HAND_MADE}: {package} tests/{test}.rs: {} cases (tests), {failed} misbehave", passed + failed);
        if failed > 0 {
            // libtest's own report: which tests, and what they printed.
            let report = text.find("\nfailures:").map_or(&text[..], |at| &text[at..]);
            for line in report.lines() {
                println!("  | {line}");
            }
        }
        total.0 += passed + failed;
        total.1 += failed;
    }
    let summary = format!("{} cases, {} misbehave ({:.0} s)", total.0, total.1, start.elapsed().as_secs_f64());
    ensure!(total.1 == 0, "hand-made: {summary}");
    println!("fuzz {HAND_MADE}: ok, hand-made: {summary}");
    Ok(())
}

/// The name of the hostile guest's campaign among the targets.
const HOSTILE_GUEST: &str = "hostile-guest";
/// The first seed of the first campaign (the test's seeds are below it).
const HOSTILE_FIRST_SEED: u64 = 1000;
/// A hostile run that takes longer than this is a hang.
const HOSTILE_LIMIT: std::time::Duration = std::time::Duration::from_secs(300);

/// Runs examples/hostile under the hypervisor (tests/src/hostile.rs) for
/// new seeds until `seconds` have passed (at least one seed), with 1 to 3
/// rounds each. Seeds continue where the last campaign stopped
/// (`<target dir>/fuzz-corpus/hostile-guest/next-seed`); every run's
/// lines go to `<target dir>/fuzz-logs/hostile-guest.log`, a failing run's
/// whole output to `<target dir>/fuzz-artifacts/hostile-guest/seed-N.txt`.
fn hostile_guest(target_dir: &Path, seconds: u64) -> Result<()> {
    use std::io::Write as _;
    use xenolith_tests::{check_hostile, hostile_lines, run_hostile};
    crate::build()?;
    let state = target_dir.join("fuzz-corpus").join(HOSTILE_GUEST);
    let artifacts = target_dir.join("fuzz-artifacts").join(HOSTILE_GUEST);
    let scratch = target_dir.join("fuzz-scratch").join(HOSTILE_GUEST);
    for d in [&state, &artifacts, &scratch, &target_dir.join("fuzz-logs")] {
        fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let log_path = target_dir.join("fuzz-logs").join(format!("{HOSTILE_GUEST}.log"));
    let mut log = fs::File::create(&log_path)?;
    let next_path = state.join("next-seed");
    let first: u64 = fs::read_to_string(&next_path).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(HOSTILE_FIRST_SEED);
    println!("fuzz {HOSTILE_GUEST}: seeds from {first} for {seconds} s (log: {})", log_path.display());
    // As root, the guest gets a vif on a bridge of its own namespace, so
    // the net classes attack the netback too; otherwise they are skipped.
    // SAFETY: geteuid has no preconditions.
    let net = (unsafe { libc::geteuid() } == 0).then(xenolith_tests::netns::Netns::new);
    if net.is_none() {
        println!("fuzz {HOSTILE_GUEST}: not root, so no vif: the net classes are skipped");
    }
    let start = std::time::Instant::now();
    let (mut seed, mut failed, mut peak, mut slowest) = (first, Vec::new(), 0u64, 0f64);
    while seed == first || start.elapsed().as_secs() < seconds {
        let rounds = 1 + seed % 3;
        let (m, killed) = run_hostile(&scratch, seed, rounds, "", HOSTILE_LIMIT, net.as_ref());
        let verdict = check_hostile(seed, &m, killed);
        peak = peak.max(m.max_rss_kib);
        slowest = slowest.max(m.elapsed.as_secs_f64());
        writeln!(
            log,
            "seed {seed} rounds {rounds}: exit {:?}, {:.1} s, peak RSS {} KiB: {}",
            m.run.status.code(),
            m.elapsed.as_secs_f64(),
            m.max_rss_kib,
            verdict.as_ref().map_or_else(|e| format!("FAILED: {e}"), |()| "ok".into())
        )?;
        for l in hostile_lines(&m.run.stdout) {
            writeln!(log, "  {l}")?;
        }
        if let Err(e) = verdict {
            let saved = artifacts.join(format!("seed-{seed}.txt"));
            fs::write(&saved, format!("{e}
{}", m.run))?;
            println!("fuzz {HOSTILE_GUEST}: {e} (output in {})", saved.display());
            failed.push(seed);
        }
        seed += 1;
        fs::write(&next_path, format!("{seed}
"))?;
    }
    let summary = format!(
        "{} seeds ({first}..={}) in {:.0} s, {} failed, peak RSS {peak} KiB, slowest {slowest:.1} s",
        seed - first,
        seed - 1,
        start.elapsed().as_secs_f64(),
        failed.len()
    );
    writeln!(log, "{summary}")?;
    ensure!(failed.is_empty(), "seeds {failed:?} failed; {summary}");
    println!("fuzz {HOSTILE_GUEST}: ok, {summary}");
    Ok(())
}

/// The name of the kill -9 durability trials among the targets.
const KILL9: &str = "kill9";
/// The first seed of the first kill -9 campaign (tests/tests/disk.rs uses seeds below it).
const KILL9_FIRST_SEED: u64 = 1000;

/// Kill -9 durability trials (tests/src/kill9.rs) with new seeds until
/// `seconds` have passed (at least one trial): disk-check writes
/// numbered, checksummed records and acknowledges each after its flush,
/// xenolith is killed with SIGKILL at a seeded moment, and every
/// acknowledged record must be intact in the image. Seeds continue where
/// the last campaign stopped (`<target dir>/fuzz-corpus/kill9/next-seed`),
/// so `KILL9_SEED=N` is only needed to replay one; a line per trial goes to
/// `<target dir>/fuzz-logs/kill9.log`. Fails when any acknowledged record
/// was lost or a trial could not run (no acknowledgement in time).
fn kill9(target_dir: &Path, seconds: u64) -> Result<()> {
    use std::io::Write as _;
    use xenolith_tests::{kill9_trial, KILL9_VARIANTS};
    crate::build()?;
    let state = target_dir.join("fuzz-corpus").join(KILL9);
    let scratch = target_dir.join("fuzz-scratch").join(KILL9);
    for d in [&state, &scratch, &target_dir.join("fuzz-logs")] {
        fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let log_path = target_dir.join("fuzz-logs").join(format!("{KILL9}.log"));
    let mut log = fs::File::create(&log_path)?;
    let next_path = state.join("next-seed");
    let replay: Option<u64> = std::env::var("KILL9_SEED").ok().and_then(|s| s.trim().parse().ok());
    let first = replay.unwrap_or_else(|| fs::read_to_string(&next_path).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(KILL9_FIRST_SEED));
    println!("fuzz {KILL9}: seeds from {first} for {seconds} s (log: {})", log_path.display());
    let start = std::time::Instant::now();
    let mut seed = first;
    let (mut acked, mut bytes, mut lost, mut whole, mut torn, mut at_boot) = (0u64, 0u64, 0usize, 0u64, 0u64, 0u64);
    let mut per_variant = vec![(0u64, 0u64); KILL9_VARIANTS.len()];
    let mut phy = (0u64, 0u64);
    let mut failed = Vec::new();
    while seed == first || (replay.is_none() && start.elapsed().as_secs() < seconds) {
        match kill9_trial(&scratch, seed) {
            Ok(t) => {
                writeln!(
                    log,
                    "seed {seed} {}{}: killed {} ms after {}, {} acked ({} bytes), {} lost, {} unacked whole, {} torn, {:.1} s",
                    t.variant,
                    if t.phy { " on a loop device" } else { "" },
                    t.delay_ms,
                    if t.during_boot { "the start" } else { "the first ack" },
                    t.acked,
                    t.acked_bytes,
                    t.lost.len(),
                    t.unacked_whole,
                    t.unacked_torn,
                    t.elapsed.as_secs_f64()
                )?;
                for why in &t.lost {
                    writeln!(log, "  LOST {why}")?;
                    println!("fuzz {KILL9}: seed {seed}: LOST {why}");
                }
                acked += t.acked;
                bytes += t.acked_bytes;
                lost += t.lost.len();
                whole += t.unacked_whole;
                torn += t.unacked_torn;
                at_boot += u64::from(t.during_boot);
                if t.phy {
                    phy.0 += 1;
                    phy.1 += t.acked;
                }
                if let Some(v) = KILL9_VARIANTS.iter().position(|(name, _)| *name == t.variant) {
                    per_variant[v].0 += 1;
                    per_variant[v].1 += t.acked;
                }
            }
            Err(e) => {
                writeln!(log, "seed {seed}: FAILED: {e}")?;
                println!("fuzz {KILL9}: {e}");
                failed.push(seed);
            }
        }
        seed += 1;
        if replay.is_none() {
            fs::write(&next_path, format!("{seed}\n"))?;
        }
    }
    let variants: Vec<String> = KILL9_VARIANTS
        .iter()
        .zip(&per_variant)
        .map(|((name, _), (trials, acked))| format!("{name} {trials}/{acked}"))
        .collect();
    let summary = format!(
        "{} trials (seeds {first}..={}, {at_boot} killed while booting) in {:.0} s: {acked} acknowledged records checked ({bytes} bytes), {lost} lost; \
         {whole} unacknowledged records found whole and {torn} torn; {} trials failed to run; trials/acked by variant: {}; on a loop device (phy:) {}/{}",
        seed - first,
        seed - 1,
        start.elapsed().as_secs_f64(),
        failed.len(),
        variants.join(", "),
        phy.0,
        phy.1
    );
    writeln!(log, "{summary}")?;
    ensure!(lost == 0 && failed.is_empty(), "{summary}; failed seeds {failed:?}");
    println!("fuzz {KILL9}: ok, {summary}");
    Ok(())
}

fn parse_args(args: &[String]) -> Result<(u64, Vec<String>)> {
    let mut seconds = 10;
    let mut only = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--seconds" => {
                let v = it.next().context("--seconds needs a value")?;
                seconds = v
                    .parse()
                    .with_context(|| format!("--seconds {v}: not a number"))?;
            }
            s if s.starts_with('-') => bail!("usage: cargo xtask fuzz [--seconds N] [TARGET...]"),
            name => only.push(name.to_string()),
        }
    }
    Ok((seconds, only))
}

/// The workspace root: xtask lives in its top-level `xtask/` folder.
fn workspace_root() -> PathBuf {
    let xtask = Path::new(env!("CARGO_MANIFEST_DIR"));
    xtask.parent().unwrap_or(xtask).to_path_buf()
}

/// Every `*/fuzz/fuzz_targets/*.rs` under the root, sorted.
fn find_targets(root: &Path) -> Result<Vec<Target>> {
    let mut targets = Vec::new();
    for krate in sorted_entries(root)? {
        let name = file_name(&krate);
        if name.starts_with('.') || name == "target" || !krate.is_dir() {
            continue;
        }
        let fuzz_dir = krate.join("fuzz");
        let target_src = fuzz_dir.join("fuzz_targets");
        if !target_src.is_dir() {
            continue;
        }
        for src in sorted_entries(&target_src)? {
            if src.extension().is_some_and(|e| e == "rs") {
                let stem = src
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                targets.push(Target {
                    krate: name.clone(),
                    fuzz_dir: fuzz_dir.clone(),
                    name: stem,
                });
            }
        }
    }
    Ok(targets)
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut entries = fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<Vec<_>>>()?;
    entries.sort();
    Ok(entries)
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Installs cargo-fuzz and nightly if needed, then checks that they run
/// together (failing early, with the fix, when they do not).
fn check_cargo_fuzz() -> Result<()> {
    crate::setup::ensure_cargo_fuzz()?;
    let ok = Command::new("cargo")
        .args(["+nightly", "fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ensure!(
        ok,
        "`cargo +nightly fuzz` does not run: rustup toolchain install nightly && cargo install cargo-fuzz"
    );
    Ok(())
}

fn seeds_dir(t: &Target, target_dir: &Path) -> PathBuf {
    target_dir.join("fuzz-seeds").join(&t.krate)
}

/// A `key = value` setting of the fuzz dir's Cargo.toml
/// (`[package.metadata.xtask]`), quotes dropped.
fn setting(t: &Target, key: &str) -> Option<String> {
    let manifest = fs::read_to_string(t.fuzz_dir.join("Cargo.toml")).unwrap_or_default();
    manifest
        .lines()
        .filter_map(|l| l.trim().strip_prefix(key))
        .filter_map(|rest| rest.trim().strip_prefix('='))
        .map(|v| v.trim().trim_matches('"').to_string())
        .next()
}

/// The sanitizer a fuzz dir asks for (`fuzz-sanitizer`), else cargo-fuzz's
/// default, AddressSanitizer.
fn sanitizer(t: &Target) -> String {
    setting(t, "fuzz-sanitizer").unwrap_or_else(|| "address".to_string())
}

/// libFuzzer's memory options: from `fuzz-heap` / `fuzz-heap-mb` (the guest heap the code
/// runs in), else the default RSS limit.
fn memory_limits(t: &Target) -> Result<Vec<String>> {
    let heap = match (setting(t, "fuzz-heap").as_deref(), setting(t, "fuzz-heap-mb")) {
        (Some("pvboot"), _) => Some((pvboot::HEAP_MAX >> 20) as u32),
        (Some(other), _) => bail!("fuzz-heap = {other:?}: only \"pvboot\" is known"),
        (None, Some(v)) => Some(v.parse().with_context(|| format!("fuzz-heap-mb = {v}: not a number"))?),
        (None, None) => None,
    };
    Ok(match heap {
        Some(heap) => {
            vec![format!("-malloc_limit_mb={heap}"), format!("-rss_limit_mb={}", heap + LIBFUZZER_RSS_MB)]
        }
        None => vec![format!("-rss_limit_mb={DEFAULT_RSS_LIMIT_MB}")],
    })
}

/// libFuzzer's `-timeout`: [`HANG_SECONDS`], or later when the target's
/// source runs its inputs under the watchdog (`watchdog::watch`), which
/// then catches hangs first.
fn libfuzzer_timeout(t: &Target) -> u64 {
    let source = t.fuzz_dir.join("fuzz_targets").join(format!("{}.rs", t.name));
    let watched = fs::read_to_string(source).is_ok_and(|s| s.contains("watchdog::watch("));
    if watched {
        HANG_SECONDS + LIBFUZZER_TIMEOUT_SLACK
    } else {
        HANG_SECONDS
    }
}

/// Runs the crate's `seeds.sh`, if any, into a fresh seeds directory.
fn make_seeds(t: &Target, target_dir: &Path) -> Result<()> {
    let script = t.fuzz_dir.join("seeds.sh");
    let dir = seeds_dir(t, target_dir);
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    fs::create_dir_all(&dir)?;
    if !script.is_file() {
        return Ok(());
    }
    let status = Command::new("sh")
        .arg(&script)
        .arg(&dir)
        .current_dir(&t.fuzz_dir)
        .status()
        .with_context(|| format!("running {}", script.display()))?;
    ensure!(status.success(), "{} failed ({status})", script.display());
    Ok(())
}

/// Fuzzes one target; returns a one-line summary from libFuzzer.
fn fuzz_one(t: &Target, target_dir: &Path, seconds: u64) -> Result<String> {
    let corpus = target_dir.join("fuzz-corpus").join(&t.krate).join(&t.name);
    let artifacts = target_dir
        .join("fuzz-artifacts")
        .join(&t.krate)
        .join(&t.name);
    let logs = target_dir.join("fuzz-logs");
    for d in [&corpus, &artifacts, &logs] {
        fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let seeds = seeds_dir(t, target_dir);
    let seeds = if seeds.join(&t.name).is_dir() {
        seeds.join(&t.name)
    } else {
        seeds
    };
    // libFuzzer reads every directory given and writes new inputs to the first.
    let committed = Some(t.fuzz_dir.join("seeds").join(&t.name)).filter(|d| d.is_dir());
    let log_path = logs.join(format!("{}-{}.log", t.krate, t.name));
    let log = fs::File::create(&log_path)?;

    println!(
        "fuzz {}/{}: building and running for {seconds} s (log: {})",
        t.krate,
        t.name,
        log_path.display()
    );
    let crate_dir = t.fuzz_dir.parent().unwrap_or(&t.fuzz_dir);
    let status = Command::new("cargo")
        .arg("+nightly")
        .args([
            "fuzz",
            "run",
            "--sanitizer",
            &sanitizer(t),
            &t.name,
            "--fuzz-dir",
        ])
        .arg(&t.fuzz_dir)
        .arg("--target-dir")
        .arg(target_dir.join("fuzz"))
        .arg(&corpus)
        .args(committed.as_ref())
        .arg(&seeds)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .args(memory_limits(t)?)
        .arg(format!("-timeout={}", libfuzzer_timeout(t)))
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .current_dir(crate_dir)
        // Set by rustup for this (stable) process; `+nightly` must win.
        .env_remove("RUSTUP_TOOLCHAIN")
        // The hang watchdog (pvboot/fuzz/fuzz_targets/common/watchdog.rs).
        .env("XENOLITH_FUZZ_HANG_SECONDS", HANG_SECONDS.to_string())
        .env("XENOLITH_FUZZ_ARTIFACTS", format!("{}/", artifacts.display()))
        .stdout(log.try_clone()?)
        .stderr(log)
        .status()
        .context("running cargo fuzz")?;

    let output = fs::read_to_string(&log_path).unwrap_or_default();
    if !status.success() {
        for line in failure_lines(&output) {
            eprintln!("  | {line}");
        }
        bail!(
            "{status}; crashing input in {}, full log in {}",
            artifacts.display(),
            log_path.display()
        );
    }
    // libFuzzer ends with "Done N runs in S second(s)".
    let done = output
        .lines()
        .rev()
        .find(|l| l.starts_with("Done "))
        .unwrap_or("no summary");
    Ok(done.to_string())
}

/// The lines of a failed run's log that say what happened: the panic and its
/// message, libFuzzer's verdict and where it saved the input; the last lines
/// if none of those are there (a build error, say).
fn failure_lines(log: &str) -> Vec<&str> {
    const KEYS: [&str; 5] = [
        "panicked at",
        "ERROR:",
        "SUMMARY:",
        "Test unit written",
        "error",
    ];
    let lines: Vec<&str> = log.lines().collect();
    let mut picked = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if KEYS.iter().any(|k| line.contains(k)) {
            picked.push(*line);
            // A panic's message is on the next line.
            if line.contains("panicked at") {
                picked.extend(lines.get(i + 1));
            }
        }
    }
    if picked.is_empty() {
        picked = lines[lines.len().saturating_sub(20)..].to_vec();
    }
    picked
}
