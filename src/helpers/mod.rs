//! Processes and resources that live beside the sandbox (see
//! docs/ARCHITECTURE.md, "Helpers").

pub mod desktop;
