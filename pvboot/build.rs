//! Links the pvboot guest at 128 MiB (linker/guest.ld reads
//! XENOLITH_IMAGE_BASE), out of the way of the kernels it loads, which live
//! in [1 MiB, 128 MiB). Host builds (the library's tests, the host stub of
//! the binary) are left alone.
fn main() {
    println!("cargo:rerun-if-changed=../linker/guest.ld");
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo:rustc-link-arg-bins=--defsym=XENOLITH_IMAGE_BASE=0x8000000");
    }
}
