//! `hutch import firejail`: firejail profiles as hutch profiles.
//!
//! firejail's profile language is read as firejail 0.9.72 reads it
//! ([`source`], [`macros`], [`env`]); what the profile lets a program see
//! is computed the way firejail builds its sandbox ([`view`]); each
//! directive is then translated through a table ([`table`]) into one
//! self-contained hutch profile ([`mounts`], [`seccomp`], [`translate`],
//! [`draft`]), with a verdict for every line ([`report`]).
//!
//! The result is self-contained rather than an extension of `base/system`:
//! what it binds was checked, at import, against what firejail hides; a
//! base that later bound more would loosen every imported profile without
//! anyone checking them again.

pub mod draft;
pub mod env;
pub mod macros;
pub mod mounts;
pub mod paths;
pub mod report;
pub mod seccomp;
pub mod source;
pub mod table;
pub mod translate;
pub mod view;

pub use env::Env;
pub use paths::Fs;
pub use translate::{Imported, import};
