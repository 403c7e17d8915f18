//! hutch: a setuid-free, declarative sandbox launcher.
//!
//! Data flows one way: a TOML [`profile`] (what the user wrote) and the
//! [`host`] (what the machine and the caller are) become a [`plan`] (plain
//! data, printable with `hutch run --explain`), which the [`launch`]er hands to
//! the cloned [`child`] to apply before it executes the payload. [`image`] is
//! the store of OCI images that can serve as a sandbox's root. [`volume`] is
//! the store of directories that outlive sandboxes; [`registry`] records the
//! running sandboxes for `hutch ps`, `exec` and `stop` ([`manage`]). [`export`]
//! writes a plan as an OCI runtime bundle for other runtimes. [`shim`] puts
//! hutch in front of installed programs, under their own names.
//!
//! `unsafe` is refused everywhere but in the modules allowed below, each
//! with its reason (docs/ARCHITECTURE.md, "`unsafe`").
#![deny(unsafe_code)]

pub mod app;
pub mod argv;
pub mod bpf;
#[allow(
    unsafe_code,
    reason = "the cloned child makes raw system calls between clone and exec, allocation-free"
)]
pub mod child;
pub mod cli;
pub mod completions;
pub mod dbus;
pub mod diag;
pub mod doctor;
pub mod exit;
pub mod export;
pub mod helpers;
#[allow(
    unsafe_code,
    reason = "command_line::record reads the argv pointers main received"
)]
pub mod host;
pub mod image;
pub mod import;
#[allow(
    unsafe_code,
    reason = "the Landlock system calls, which nix does not wrap"
)]
pub mod landlock;
pub mod launch;
pub mod learn;
pub mod manage;
pub mod manpages;
pub mod names;
pub mod paths;
pub mod plan;
pub mod prepare;
pub mod profile;
pub mod program_kinds;
pub mod registry;
pub mod safe_fs;
pub mod shim;
#[allow(
    unsafe_code,
    reason = "thin wrappers around the system calls nix does not wrap"
)]
pub mod sys;
pub mod volume;
pub mod wayland;
pub mod xauth;
