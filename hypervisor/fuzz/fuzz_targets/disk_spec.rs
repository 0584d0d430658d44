//! xl disk specifications (`'file:/img,xvda,w'`, key=value forms).
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenolith::backends::block::config;

fuzz_target!(|data: &[u8]| {
    if let Ok(spec) = std::str::from_utf8(data) {
        if let Err(e) = config::parse(spec) {
            let _ = e.to_string();
        }
    }
});
