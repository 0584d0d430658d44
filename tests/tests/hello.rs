//! The hello guest under the Xenolith hypervisor: console output, pvclock,
//! command line, shutdown reasons and exit statuses.

use std::time::Duration;

use xenolith_tests::*;

const LIMIT: Duration = Duration::from_secs(60);

fn hello_cfg(dir: &std::path::Path, extra_lines: &str) -> std::path::PathBuf {
    let text = format!(
        "# written by the hello test\nname = \"hello-test\"\ntype = \"pvh\"\nkernel = \"{}\"\nmemory = 64\n{extra_lines}\n",
        guest("hello").display()
    );
    write_cfg(dir, "hello.cfg", &text)
}

#[test]
fn hello_prints_its_command_line_memory_and_sleep_then_powers_off() {
    let dir = scratch("hello_powers_off");
    let cfg = hello_cfg(&dir, "extra = \"SOME TEXT\"");
    let run = xenolith_run(&["run", "-c", cfg.to_str().unwrap()], LIMIT);
    assert_eq!(run.code(), 0, "{run}");
    let out = &run.stdout;
    assert!(out.contains("Hello from Xenolith!"), "{run}");
    assert!(out.contains("command line: SOME TEXT\n") || out.contains("command line: SOME TEXT\r\n"), "{run}");
    assert!(out.contains("memory: 64 MiB"), "{run}");
    let measured = out
        .lines()
        .find_map(|l| l.strip_prefix("slept 100 ms (measured ")?.strip_suffix(" ms)").map(str::to_owned))
        .unwrap_or_else(|| panic!("no sleep line\n{run}"));
    let ms: f64 = measured.trim().parse().unwrap_or_else(|_| panic!("bad duration {measured:?}\n{run}"));
    assert!((100.0..500.0).contains(&ms), "pvclock sleep measured {ms} ms\n{run}");
}

#[test]
fn a_panicking_guest_is_reported_as_crashed() {
    let dir = scratch("hello_panic");
    let cfg = hello_cfg(&dir, "extra = \"please panic now\"");
    let run = xenolith_run(&["run", "-c", cfg.to_str().unwrap()], LIMIT);
    assert_eq!(run.code(), 2, "crash must exit 2\n{run}");
    assert!(run.stdout.contains("panic"), "the panic message reaches the console\n{run}");
}

#[test]
fn command_line_overrides_replace_the_file() {
    let dir = scratch("hello_override");
    let cfg = hello_cfg(&dir, "extra = \"from the file\"");
    let run = xenolith_run(&["run", "-c", cfg.to_str().unwrap(), "extra=\"from the command line\"", "memory=32"], LIMIT);
    assert_eq!(run.code(), 0, "{run}");
    assert!(run.stdout.contains("command line: from the command line"), "{run}");
    assert!(run.stdout.contains("memory: 32 MiB"), "{run}");
}

#[test]
fn root_and_extra_build_the_command_line_as_xl_does() {
    let dir = scratch("hello_root_extra");
    let cfg = hello_cfg(&dir, "root = \"/dev/xvda1\"\nextra = \"console=hvc0\"");
    let run = xenolith_run(&["run", "-c", cfg.to_str().unwrap()], LIMIT);
    assert_eq!(run.code(), 0, "{run}");
    assert!(run.stdout.contains("command line: root=/dev/xvda1 console=hvc0"), "{run}");
}

#[test]
fn console_goes_to_a_log_file_without_dash_c() {
    let dir = scratch("hello_console_log");
    let cfg = hello_cfg(&dir, "extra = \"logged\"");
    let log = dir.join("console.log");
    let run = xenolith_run(&["run", "--console-log", log.to_str().unwrap(), cfg.to_str().unwrap()], LIMIT);
    assert_eq!(run.code(), 0, "{run}");
    assert!(!run.stdout.contains("Hello"), "console not on stdout without -c\n{run}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("command line: logged"), "log:\n{text}");
}
