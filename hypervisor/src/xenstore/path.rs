//! Xenstore paths: validation, relative-path resolution and the parent /
//! child relation (xenstore.txt "paths", C xenstored's is_valid_nodename).

use xen_abi::xenstore::XENSTORE_ABS_PATH_MAX;
use xen_abi::DomId;

/// Where every domain's home directory lives.
pub const LOCAL_DOMAIN: &str = "/local/domain";

/// A domain's home, the base of its relative paths: `/local/domain/<domid>`.
pub fn domain_path(domid: u32) -> String {
    format!("{LOCAL_DOMAIN}/{domid}")
}

/// Resolves a path as the caller sent it: absolute (`/...`) and special
/// (`@...`) paths stay as they are; anything else is relative to the
/// caller's home (socket clients are domain 0, as in C xenstored).
pub fn canonicalize(path: &str, domid: DomId) -> String {
    if path.starts_with('/') || path.starts_with('@') {
        path.to_owned()
    } else {
        format!("{LOCAL_DOMAIN}/{domid}/{path}")
    }
}

/// Whether `c` may appear in a node path: ASCII alphanumerics and `-/_@`.
fn valid_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'/' | b'_' | b'@')
}

/// The length of the `/local/domain/<domid>/` prefix, if `path` has one
/// (C: `sscanf("/local/domain/%5u/%n")`), so the length limit applies to
/// the part a domain controls.
fn local_prefix_len(path: &str) -> usize {
    let Some(rest) = path.strip_prefix("/local/domain/") else { return 0 };
    let digits = rest.bytes().take(5).take_while(u8::is_ascii_digit).count();
    if digits > 0 && rest.as_bytes().get(digits) == Some(&b'/') {
        "/local/domain/".len() + digits + 1
    } else {
        0
    }
}

/// Whether `path` is a valid absolute node path: starts with `/`, no `//`,
/// no trailing `/` (except the root), only valid characters, at most
/// `max_rel` bytes after a domain's home prefix and at most
/// XENSTORE_ABS_PATH_MAX bytes in all (whatever `max_rel` is configured to).
pub fn is_valid(path: &str, max_rel: usize) -> bool {
    path.starts_with('/')
        && (path == "/" || !path.ends_with('/'))
        && !path.contains("//")
        && path.len() <= local_prefix_len(path) + max_rel
        && path.len() <= XENSTORE_ABS_PATH_MAX
        && path.bytes().all(valid_char)
}

/// The parent of a valid path other than `/`.
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// The last component of a valid path other than `/`.
pub fn basename(path: &str) -> &str {
    path.rfind('/').map_or(path, |i| &path[i + 1..])
}

/// `parent/name`, minding the root.
pub fn join(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

/// Whether `child` is `parent` or below it (every path is below `/`).
pub fn is_child(child: &str, parent: &str) -> bool {
    if parent == "/" {
        return true;
    }
    child.strip_prefix(parent).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Parses a domain id as C's `atoi` does (leading spaces, a sign, digits;
/// anything else ends it; nothing parsed is 0), then truncates it to the
/// unsigned value C prints with `%u`.
pub fn atoi(s: &[u8]) -> u32 {
    let mut i = s.iter().take_while(|b| b.is_ascii_whitespace()).count();
    let negative = match s.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let mut v: i32 = 0;
    for &b in s[i.min(s.len())..].iter().take_while(|b| b.is_ascii_digit()) {
        v = v.wrapping_mul(10).wrapping_add(i32::from(b - b'0'));
    }
    (if negative { v.wrapping_neg() } else { v }) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_follows_xenstored() {
        for ok in ["/", "/a", "/local/domain/1/device/vbd/51712", "/a-b_c@d/E9"] {
            assert!(is_valid(ok, 2048), "{ok}");
        }
        for bad in ["", "a", "/a/", "//", "/a//b", "/a b", "/a.b", "/a\u{e9}", "/a\n"] {
            assert!(!is_valid(bad, 2048), "{bad:?}");
        }
        let long = format!("/{}", "x".repeat(2048));
        assert!(!is_valid(&long, 2048));
        assert!(is_valid(&long[..2048], 2048));
        // The limit counts from a domain's home.
        let home = format!("/local/domain/12345/{}", "y".repeat(2048));
        assert!(is_valid(&home, 2048));
        assert!(!is_valid(&format!("{home}y"), 2048));
    }

    #[test]
    fn no_path_is_longer_than_xenstore_abs_path_max() {
        // Even with a relative limit configured past it.
        let at_max = format!("/{}", "x".repeat(XENSTORE_ABS_PATH_MAX - 1));
        assert!(is_valid(&at_max, 1 << 20));
        assert!(!is_valid(&format!("{at_max}x"), 1 << 20));
        let home = format!("/local/domain/1/{}", "y".repeat(XENSTORE_ABS_PATH_MAX));
        assert!(!is_valid(&home, 1 << 20));
    }

    #[test]
    fn relations() {
        assert_eq!(parent("/a/b"), "/a");
        assert_eq!(parent("/a"), "/");
        assert_eq!(basename("/a/bc"), "bc");
        assert_eq!(join("/", "x"), "/x");
        assert_eq!(join("/a", "x"), "/a/x");
        assert!(is_child("/a/b", "/a") && is_child("/a", "/a") && is_child("/a", "/"));
        assert!(!is_child("/ab", "/a"));
        assert_eq!(canonicalize("device/vbd", 3), "/local/domain/3/device/vbd");
        assert_eq!(canonicalize("@releaseDomain", 3), "@releaseDomain");
        assert_eq!(atoi(b"12x"), 12);
        assert_eq!(atoi(b"x"), 0);
        assert_eq!(atoi(b" -1"), u32::MAX);
    }
}
