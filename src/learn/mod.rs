//! `hutch learn`: writes a profile by watching a run (the recorder is
//! `helpers::learn`; [`draft`] turns what it saw into a profile).

pub mod command;
pub mod draft;
pub mod report;
