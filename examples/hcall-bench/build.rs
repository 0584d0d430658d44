//! Relinks hcall-bench when the guest linker script changes (cargo does not
//! track files passed to the linker through rustflags).
fn main() {
    println!("cargo:rerun-if-changed=../../linker/guest.ld");
    println!("cargo:rerun-if-changed=build.rs");
}
