//! hutch: a setuid-free, declarative sandbox launcher.
//!
//! Data flows one way: a TOML [`profile`] (what the user wrote) and the
//! [`host`] (what the machine and the caller are) become a [`plan`] (plain
//! data, printable with `hutch run --explain`), which the [`launch`]er hands to
//! the cloned [`child`] to apply before it executes the payload. [`image`] is
//! the store of OCI images that can serve as a sandbox's root. [`volume`] is
//! the store of directories that outlive sandboxes; [`registry`] records the
//! running sandboxes for `hutch ps`, `exec` and `stop` ([`manage`]). [`export`]
//! writes a plan as an OCI runtime bundle for other runtimes.

pub mod app;
pub mod bpf;
pub mod cgroup;
pub mod child;
pub mod cli;
pub mod completions;
pub mod dbus;
pub mod diag;
pub mod doctor;
pub mod export;
pub mod helpers;
pub mod host;
pub mod image;
pub mod landlock;
pub mod launch;
pub mod manage;
pub mod manpages;
pub mod plan;
pub mod profile;
pub mod registry;
pub mod safe_fs;
pub mod sys;
pub mod volume;
pub mod wayland;
pub mod xauth;
