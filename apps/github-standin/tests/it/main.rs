//! The stand-in's integration tests: one test binary (one link of the dependency tree).

mod binary;
mod standin;
