//! Importing sandbox profiles written for other tools.

pub mod command;
pub mod firejail;
