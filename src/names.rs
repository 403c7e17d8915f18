//! The spelling of names that become one component of a path in hutch's
//! stores: volumes, sandboxes, and the machine name in the home-based
//! runtime directory. A bottom module, so that `host` and `paths` can both
//! use it without depending on each other.

/// Whether `name` may name a volume or a sandbox (and so a file in the
/// volume store or the registry): never `.`, `..`, hidden or with a `/`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}
