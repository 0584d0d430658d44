//! The panic handler: report, then crash the domain.

use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

static PANICKING: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    // A panic while reporting a panic goes straight to the crash.
    if !PANICKING.swap(true, Ordering::SeqCst) {
        match info.location() {
            Some(l) => crate::console::emergency_print(format_args!(
                "panic: {} at {}:{}\n",
                info.message(),
                l.file(),
                l.line()
            )),
            None => crate::console::emergency_print(format_args!("panic: {}\n", info.message())),
        }
    }
    crate::shutdown::crash()
}
