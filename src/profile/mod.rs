//! Profiles: what the user wrote, composed from layers.
//!
//! A [`Profile`] is the ordered list of layers that make it up (bases from
//! `extends` first, the profile itself, then `.local.toml` overrides). Nothing is
//! merged eagerly: the planner asks for "the last layer that sets X", so every
//! value keeps the file and span it came from for error messages.

pub mod adhoc;
pub mod jsonschema;
pub mod load;
pub mod reference;
pub mod schema;
pub mod shape;
pub mod vars;
pub mod version;

use std::sync::Arc;

use toml::Spanned;

use crate::diag::{Diagnostic, SourceFile};
pub use load::{ProfileRef, SearchPath, load, parse};
pub use schema::RawProfile;

#[derive(Debug)]
pub struct Layer {
    pub file: Arc<SourceFile>,
    pub raw: RawProfile,
    /// A `.local.toml` override of the layer before it.
    pub is_override: bool,
}

#[derive(Debug)]
pub struct Profile {
    /// The name or path the profile was requested by.
    pub name: String,
    /// Lowest precedence first.
    pub layers: Vec<Layer>,
}

/// A value and the file it was written in.
#[derive(Debug)]
pub struct At<'a, T> {
    pub value: &'a Spanned<T>,
    pub file: &'a Arc<SourceFile>,
}

impl<'a, T> At<'a, T> {
    pub fn get(&self) -> &'a T {
        self.value.get_ref()
    }

    pub fn diag(&self, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(message).at(self.file, self.value.span())
    }
}

impl Profile {
    /// The value set by the highest-precedence layer that sets it.
    pub fn last<T>(&self, f: impl Fn(&RawProfile) -> Option<&Spanned<T>>) -> Option<At<'_, T>> {
        self.layers.iter().rev().find_map(|l| {
            f(&l.raw).map(|value| At {
                value,
                file: &l.file,
            })
        })
    }

    /// The files this profile was composed from, lowest precedence first:
    /// what it extends, the profile, and the overrides of each.
    pub fn sources(&self) -> Vec<String> {
        self.layers.iter().map(|l| l.file.name.clone()).collect()
    }

    /// Those of [`Profile::sources`] that are `.local.toml` overrides.
    pub fn overrides(&self) -> Vec<String> {
        self.layers
            .iter()
            .filter(|l| l.is_override)
            .map(|l| l.file.name.clone())
            .collect()
    }

    pub fn description(&self) -> Option<&str> {
        self.last(|p| p.description.as_ref())
            .map(|a| a.get().as_str())
    }
}

/// Any problem with a profile: always a diagnostic pointing at the file (and,
/// where there is one, the span) responsible.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ProfileError(pub Box<Diagnostic>);

impl From<Diagnostic> for ProfileError {
    fn from(d: Diagnostic) -> Self {
        ProfileError(Box::new(d))
    }
}
