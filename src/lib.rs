//! hutch: a setuid-free, declarative sandbox launcher.
