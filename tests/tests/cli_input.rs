//! The command line's own documentation: `--help` describes the exit
//! codes. Hostile or careless command lines (files that are not files,
//! huge configs, usage errors) are cases of the hand-made table,
//! tests/src/hand_made.rs, run by tests/tests/hand_made.rs.

use std::time::Duration;

use xenolith_tests::*;

#[test]
fn the_help_describes_the_exit_codes() {
    let run = xenolith_run(&["--help"], Duration::from_secs(20));
    assert_eq!(run.code(), 0, "{run}");
    assert!(run.stdout.contains("Exit status"), "the help describes exit codes: {run}");
}
