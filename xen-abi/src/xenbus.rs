//! Device connection states (io/xenbus.h): the `state` node each end of a
//! split device writes in xenstore while they negotiate.

/// `enum xenbus_state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum XenbusState {
    /// No state written, or a value that is not a state.
    Unknown = 0,
    /// Setting up.
    Initialising = 1,
    /// Early set-up done; waiting for the peer (backends publish features here).
    InitWait = 2,
    /// The frontend published its rings; waiting for the backend.
    Initialised = 3,
    /// Both ends are connected.
    Connected = 4,
    /// Shutting down, because of an error or an unplug.
    Closing = 5,
    /// Shut down.
    Closed = 6,
    /// Being reconfigured.
    Reconfiguring = 7,
    /// Reconfigured.
    Reconfigured = 8,
}

impl XenbusState {
    /// From the number; anything else is `Unknown`.
    pub fn from_u32(n: u32) -> Self {
        match n {
            1 => Self::Initialising,
            2 => Self::InitWait,
            3 => Self::Initialised,
            4 => Self::Connected,
            5 => Self::Closing,
            6 => Self::Closed,
            7 => Self::Reconfiguring,
            8 => Self::Reconfigured,
            _ => Self::Unknown,
        }
    }

    /// Parses a `state` node's value (decimal, surrounding blanks or a
    /// trailing NUL tolerated, as libxenstore readers do).
    pub fn parse(value: &[u8]) -> Self {
        let s = value.split(|&b| b == 0).next().unwrap_or(&[]);
        let s = core::str::from_utf8(s).unwrap_or("").trim();
        s.parse::<u32>().map_or(Self::Unknown, Self::from_u32)
    }

    /// The value to write in a `state` node.
    pub fn as_str(self) -> &'static str {
        ["0", "1", "2", "3", "4", "5", "6", "7", "8"][self as usize]
    }

    /// The name used in Xen's logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unknown => "Unknown",
            Self::Initialising => "Initialising",
            Self::InitWait => "InitWait",
            Self::Initialised => "Initialised",
            Self::Connected => "Connected",
            Self::Closing => "Closing",
            Self::Closed => "Closed",
            Self::Reconfiguring => "Reconfiguring",
            Self::Reconfigured => "Reconfigured",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_state_nodes() {
        assert_eq!(XenbusState::parse(b"4"), XenbusState::Connected);
        assert_eq!(XenbusState::parse(b"3\0"), XenbusState::Initialised);
        assert_eq!(XenbusState::parse(b" 6 "), XenbusState::Closed);
        assert_eq!(XenbusState::parse(b"x"), XenbusState::Unknown);
        assert_eq!(XenbusState::parse(b"9"), XenbusState::Unknown);
        assert_eq!(XenbusState::InitWait.as_str(), "2");
    }
}
