//! The profile format's version: what `version = N` means, and the messages
//! for a file written for another format.
//!
//! Policy (see hutch-profile(5), "VERSIONS"): within a format version,
//! changes are additive only (new optional keys, sections and values); a
//! profile that is valid keeps its meaning. A new format version comes only
//! with an incompatible change, and a hutch that reads it keeps reading the
//! older ones. An older hutch refuses a newer format before it looks at any
//! key, so its author reads "upgrade hutch", not "unknown key".

use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use super::schema::FORMAT_VERSION;
use crate::diag::{Diagnostic, SourceFile};

/// The error for a `version` this hutch does not read.
pub fn unsupported(file: &Arc<SourceFile>, version: &Spanned<i64>) -> Diagnostic {
    let v = *version.get_ref();
    let d = Diagnostic::new(format!(
        "key `version`: profile format version {v} is not supported"
    ))
    .at(file, version.span());
    if v > FORMAT_VERSION {
        d.label(format!("newer than this hutch reads ({FORMAT_VERSION})"))
            .help(format!(
                "this profile was written for a newer hutch ({} reads format version {FORMAT_VERSION}): upgrade hutch, or use a profile written for version {FORMAT_VERSION}",
                env!("CARGO_PKG_VERSION")
            ))
    } else {
        d.label("not a profile format version").help(format!(
            "profile format versions start at 1; this hutch reads `version = {FORMAT_VERSION}`"
        ))
    }
}

/// For a file the full parser rejected: the version error instead, when the
/// file declares a format other than this hutch's (its keys may be valid
/// there). Only called on failure, so a valid profile is parsed once.
pub fn explain_rejection(file: &Arc<SourceFile>) -> Option<Diagnostic> {
    #[derive(Deserialize)]
    struct VersionOnly {
        version: Option<Spanned<toml::Value>>,
    }
    let peek: VersionOnly = toml::from_str(&file.text).ok()?;
    let value = peek.version?;
    let span = value.span();
    match value.into_inner() {
        toml::Value::Integer(v) if v != FORMAT_VERSION => {
            Some(unsupported(file, &Spanned::new(span, v)))
        }
        _ => None,
    }
}
