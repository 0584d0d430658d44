//! xl.cfg files and command-line overrides: any bytes give a config or a
//! one-line error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenolith::toolstack::config::DomainConfig;

fuzz_target!(|data: &[u8]| {
    // The tail after the last NUL, if any, is tried as one override.
    let (file, overrides): (&[u8], Vec<&str>) = match data.iter().rposition(|&b| b == 0) {
        Some(i) => (&data[..i], std::str::from_utf8(&data[i + 1..]).map(|s| vec![s]).unwrap_or_default()),
        None => (data, Vec::new()),
    };
    if let Err(e) = DomainConfig::parse(file, "fuzz.cfg", &overrides) {
        let _ = e.to_string();
    }
});
