//! Watches and their firing rules (C xenstored's watch.c).
//!
//! A watch on P matches a change to P or any descendant; a descendant
//! removed together with its ancestor matches only a watch on exactly its
//! path. Special paths (`@introduceDomain`, `@releaseDomain`) match only
//! themselves. A watch set with a relative path gets relative event paths.

use super::path;
use super::XsError;

/// One watch of a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Watch {
    /// The absolute (or special `@...`) path watched.
    pub path: String,
    /// The client's token, echoed in every event.
    pub token: Vec<u8>,
    /// The home prefix stripped from event paths, for a watch set with a
    /// relative path.
    pub relative_to: Option<String>,
}

impl Watch {
    /// Checks and resolves a WATCH request's path for a caller whose home
    /// is `/local/domain/<domid>`.
    pub fn new(wpath: &str, token: &[u8], domid: u16, max_rel: usize) -> Result<Watch, XsError> {
        if wpath.starts_with('@') {
            if wpath.len() > max_rel {
                return Err(XsError::Inval);
            }
            return Ok(Watch { path: wpath.to_owned(), token: token.to_vec(), relative_to: None });
        }
        let abs = path::canonicalize(wpath, domid);
        if !path::is_valid(&abs, max_rel) {
            return Err(XsError::Inval);
        }
        let relative_to = (!wpath.starts_with('/')).then(|| path::domain_path(domid.into()));
        Ok(Watch { path: abs, token: token.to_vec(), relative_to })
    }

    /// Whether a change to `event` fires this watch.
    pub fn matches(&self, event: &str, exact: bool) -> bool {
        if exact || event.starts_with('@') {
            event == self.path
        } else {
            path::is_child(event, &self.path)
        }
    }

    /// The path an event reports to this watch's owner.
    pub fn event_path<'a>(&self, event: &'a str) -> &'a str {
        match &self.relative_to {
            Some(home) => {
                let rest = event.strip_prefix(home.as_str()).unwrap_or(event);
                rest.strip_prefix('/').unwrap_or(rest)
            }
            None => event,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_rules() {
        let w = Watch::new("/a/b", b"t", 0, 2048).unwrap();
        assert!(w.matches("/a/b", false) && w.matches("/a/b/c/d", false));
        assert!(!w.matches("/a", false) && !w.matches("/a/bc", false));
        assert!(w.matches("/a/b", true) && !w.matches("/a/b/c", true));
        let root = Watch::new("/", b"t", 0, 2048).unwrap();
        assert!(root.matches("/x", false));
        assert!(!root.matches("@releaseDomain", true));
        let special = Watch::new("@releaseDomain", b"t", 0, 2048).unwrap();
        assert!(special.matches("@releaseDomain", true) && !special.matches("@introduceDomain", true));
    }

    #[test]
    fn relative_watches_report_relative_paths() {
        let w = Watch::new("device", b"t", 4, 2048).unwrap();
        assert_eq!(w.path, "/local/domain/4/device");
        assert_eq!(w.event_path("/local/domain/4/device/vbd"), "device/vbd");
        assert_eq!(w.event_path("/local/domain/4/device"), "device");
        assert!(Watch::new("bad//path", b"t", 4, 2048).is_err());
        assert!(Watch::new(&format!("@{}", "x".repeat(2048)), b"t", 4, 2048).is_err());
    }
}
