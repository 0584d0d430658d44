//! What the hand-made frontends (`blk`, `net`) share: writing their keys,
//! taking the backend back to InitWait, and the nonsense values they
//! publish for grant references and event channels.

use guest_lib::xenbus::Device;
use guest_lib::{evtchn, gnttab};
use guest_lib::xenstore::{self, Tx};

use crate::Tally;

/// One second, in ns.
pub const SECOND: u64 = 1_000_000_000;

/// Grant references that are wrong: boundaries, overflows, not numbers.
pub const GREF_JUNK: [&str; 10] = ["0", "1", "4294967295", "4294967296", "-1", "abc", "", "99999999999999999999", "7 8", "0x10"];

/// Event channel ports that are wrong: past the 4096 ports, negative, not numbers.
pub const PORT_JUNK: [&str; 8] = ["0", "4095", "4096", "65535", "-3", "x", "1e9", "4294967295"];

/// Writes one of our keys, counting the call.
pub fn w(t: &mut Tally, dev: &Device, key: &str, v: &str) {
    t.ok(xenstore::write(Tx::NONE, &dev.front_path(key), v).is_ok());
}

/// Back to InitWait whatever state the backend is in (bounded waits).
pub fn reset(t: &mut Tally, dev: &Device) -> bool {
    let ok = dev.reset(2 * SECOND).is_ok();
    t.ok(ok);
    if !ok {
        t.note("reset-failed", 1);
    }
    ok
}

/// Closes a hand-made frontend: the device, its event channel, then its
/// `grants`; those the backend still holds are counted as
/// `grants-held-after-close` (their pages are never freed: `Page` leaks,
/// so a backend that kept a mapping never finds them reused).
pub fn close<'a>(t: &mut Tally, dev: &Device, port: u32, grants: impl IntoIterator<Item = &'a u32>) {
    let _ = dev.close(SECOND);
    let _ = evtchn::close(port);
    let held = grants.into_iter().filter(|&&g| gnttab::end_access(g).is_err()).count();
    t.note("grants-held-after-close", held as u64);
}
