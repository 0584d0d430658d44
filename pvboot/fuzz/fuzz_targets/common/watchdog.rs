//! A hang watchdog that saves the slow input from an ordinary thread.
//!
//! libFuzzer's own `-timeout` handler runs inside SIGALRM on the thread that
//! is running the input, and allocates (the artifact's path and name): when
//! the alarm lands while that thread is inside malloc, holding glibc's arena
//! lock, the handler waits on the lock forever and no artifact is written.
//! That is how campaign 3 lost pvboot_probe's 10 s input (docs/reliability.md).
//! [`HeapLimit`](super::heap) takes no lock; glibc's malloc does.
//!
//! So `cargo xtask fuzz` sets `XENOLITH_FUZZ_HANG_SECONDS` and
//! `XENOLITH_FUZZ_ARTIFACTS` (the `-artifact_prefix`), and gives libFuzzer a
//! longer `-timeout` as a backstop. [`watch`] keeps a copy of the input being
//! run and its start time; a thread checks them four times a second and,
//! once an input has run for the limit, writes it as
//! `<prefix>timeout-watchdog-<hash>`, says so on stderr and aborts. That
//! thread holds no lock the input's thread can hold (its allocations come from
//! its own malloc arena), so it cannot stall the way a signal handler can.
//! Without the variables, [`watch`] only runs the body.

use std::io::Write;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Seconds one input may run before it is saved and the run stopped.
pub const HANG_SECONDS_VAR: &str = "XENOLITH_FUZZ_HANG_SECONDS";
/// Prefix (a directory ending in `/`) of the saved input's path.
pub const ARTIFACTS_VAR: &str = "XENOLITH_FUZZ_ARTIFACTS";

/// The input being run and when it started.
static CURRENT: Mutex<Option<(Instant, Vec<u8>)>> = Mutex::new(None);
/// Whether the watchdog runs (decided, and its thread started, once).
static ENABLED: OnceLock<bool> = OnceLock::new();

/// Runs `body` on `data`, watched when the environment asks for it.
pub fn watch(data: &[u8], body: impl FnOnce(&[u8])) {
    if !*ENABLED.get_or_init(start) {
        return body(data);
    }
    set(Some((Instant::now(), data.to_vec())));
    body(data);
    set(None);
}

fn set(v: Option<(Instant, Vec<u8>)>) {
    // A poisoned lock only means a panic elsewhere; the value is still ours.
    let old = std::mem::replace(&mut *CURRENT.lock().unwrap_or_else(|e| e.into_inner()), v);
    // Freed outside the lock.
    drop(old);
}

/// Reads the environment and starts the thread; false if not asked for.
fn start() -> bool {
    let secs = std::env::var(HANG_SECONDS_VAR)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|&s| s > 0);
    let (Some(secs), Ok(prefix)) = (secs, std::env::var(ARTIFACTS_VAR)) else {
        return false;
    };
    let limit = Duration::from_secs(secs);
    std::thread::Builder::new()
        .name("hang-watchdog".into())
        .spawn(move || loop {
            std::thread::sleep(Duration::from_millis(250));
            let slow = {
                let cur = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
                match &*cur {
                    Some((t, input)) if t.elapsed() >= limit => Some(input.clone()),
                    _ => None,
                }
            };
            if let Some(input) = slow {
                save_and_abort(&input, &prefix, secs);
            }
        })
        .expect("starting the hang watchdog thread");
    true
}

/// FNV-1a, 64 bits: a name for the saved input (libFuzzer's are SHA-1s).
fn hash(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn save_and_abort(input: &[u8], prefix: &str, secs: u64) -> ! {
    let path = format!("{prefix}timeout-watchdog-{:016x}", hash(input));
    let saved = std::fs::write(&path, input);
    let mut err = std::io::stderr().lock();
    let _ = match saved {
        Ok(()) => writeln!(
            err,
            "==watchdog== ERROR: one input ran for over {secs} s (a hang); {} bytes written to {path}",
            input.len()
        ),
        Err(e) => writeln!(err, "==watchdog== ERROR: one input ran for over {secs} s (a hang); writing {path}: {e}"),
    };
    let _ = writeln!(err, "Test unit written to {path}");
    drop(err);
    // libFuzzer's SIGABRT handler then runs on this thread, which holds no lock.
    std::process::abort()
}
