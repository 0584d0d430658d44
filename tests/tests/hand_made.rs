//! The hand-made hostile and careless cases (tests/src/hand_made.rs: bad
//! configs and kernels, files that are not files, oversized inputs, usage
//! errors, settings that cannot be honoured): each must give its exit
//! code and one clear line, never a panic, a signal or a hang. Prints the
//! tally that `cargo xtask fuzz hand-made` prints too.

use xenolith_tests::*;

#[test]
fn every_hand_made_case_gets_its_exit_code_and_one_clear_line() {
    let dir = scratch("hand_made");
    let (n, bad) = run_hand_made(&dir);
    println!("hand-made: {n} cases, {} misbehave", bad.len());
    for (name, why) in &bad {
        println!("MISBEHAVES {name}: {why}");
    }
    assert!(n >= 40, "the table shrank: {n} cases");
    assert!(bad.is_empty(), "{} of {n} cases misbehave: {:?}", bad.len(), bad.iter().map(|b| &b.0).collect::<Vec<_>>());
}
