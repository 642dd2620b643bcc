//! The github-mcp integration tests: one test binary (one link of the dependency tree).

mod binary;
mod common;
mod failures;
mod tools;
