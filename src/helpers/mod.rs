//! Processes and resources that live beside the sandbox.

pub mod cgroup;
