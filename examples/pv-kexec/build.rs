//! Links pv-kexec at 128 MiB (where pvboot lives), so that the kernels it
//! starts can load at their usual low addresses; relinks when the guest
//! linker script changes (cargo does not track files passed to the linker).
fn main() {
    println!("cargo:rustc-link-arg-bins=--defsym=XENOLITH_IMAGE_BASE=0x8000000");
    println!("cargo:rerun-if-changed=../../linker/guest.ld");
    println!("cargo:rerun-if-changed=build.rs");
}
