//! The hello appliance: greets, shows its command line and memory size,
//! sleeps 100 ms on the pvclock (printing the measured time), powers off.
//! With the word `panic` on its command line it panics instead, so the
//! domain ends as crashed; with `wait` it stays up, echoing console input,
//! until the toolstack asks it to shut down or reboot (xl shutdown/reboot).
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]
#![cfg_attr(not(target_os = "none"), allow(dead_code))]

use core::time::Duration;

use guest_lib::{println, time, BootInfo};

#[cfg(target_os = "none")]
guest_lib::main!(hello);

fn hello(boot: &BootInfo) {
    println!("Hello from Xenolith!");
    println!("command line: {}", boot.cmdline());
    if boot
        .cmdline()
        .split_ascii_whitespace()
        .any(|w| w == "panic")
    {
        panic!("asked to panic by the command line");
    }
    // Rounded to the nearest MiB: builders may keep a few pages of RAM.
    println!("memory: {} MiB", (boot.total_ram() + (1 << 19)) >> 20);
    let start = time::Instant::now();
    time::sleep(Duration::from_millis(100));
    let us = start.elapsed().as_micros();
    println!("slept 100 ms (measured {}.{:03} ms)", us / 1000, us % 1000);
    if boot.cmdline().split_ascii_whitespace().any(|w| w == "hypercall-bench") {
        hypercall_bench();
    }
    if boot.cmdline().split_ascii_whitespace().any(|w| w == "wait") {
        wait_for_the_toolstack();
    }
}

/// Stays up, echoing what is typed on the console, until the toolstack
/// writes control/shutdown (acknowledged by clearing it), then powers off
/// or reboots as asked.
fn wait_for_the_toolstack() {
    use guest_lib::shutdown::{self, Reason};
    let watch = guest_lib::xenbus::ShutdownWatch::new();
    println!("hello: waiting for the toolstack (xl shutdown, xl reboot); typed text is echoed");
    let mut buf = [0u8; 128];
    loop {
        if let Some(reason) = watch.requested() {
            println!("hello: {} requested", if reason == Reason::Reboot { "reboot" } else { "poweroff" });
            shutdown::shutdown(reason);
        }
        let n = guest_lib::console::read(&mut buf);
        if n > 0 {
            let text = core::str::from_utf8(&buf[..n]).unwrap_or("(not UTF-8)");
            println!("hello: typed: {}", text.trim_end());
        }
        time::sleep(Duration::from_millis(20));
    }
}

/// Times trapped hypercalls (`cargo xtask bench` reads this line).
fn hypercall_bench() {
    const CALLS: u64 = 1000;
    let start = time::now_ns();
    for _ in 0..CALLS {
        let _ = guest_lib::hypercall::version();
    }
    let ns = (time::now_ns() - start) / CALLS;
    println!("hypercall round trip: {}.{:03} us ({CALLS} xen_version calls)", ns / 1000, ns % 1000);
}

/// On the host there is nothing to run: hello is a Xen guest.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("hello is a Xen PVH guest: build it with --target x86_64-unknown-none");
}
