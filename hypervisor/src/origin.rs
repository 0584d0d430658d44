//! Where a user's setting was given: shared by the toolstack, which parses
//! settings, and the backends, which report errors in the entries they serve.

use std::fmt;

/// Where a setting, a warning or an error comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A line of a config file.
    File {
        /// The file name as given by the user.
        file: String,
        /// The 1-based line number.
        line: u32,
    },
    /// A `key=value` argument of the command line.
    CommandLine {
        /// The argument, verbatim.
        arg: String,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { file, line } => write!(f, "{file}:{line}"),
            Origin::CommandLine { arg } => write!(f, "command line ({arg})"),
        }
    }
}
