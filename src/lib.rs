//! hutch: a setuid-free, declarative sandbox launcher.
pub mod image;
