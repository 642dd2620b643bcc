//! The healthcheck integration tests: one test binary (one link of the dependency tree).

mod binary;
mod health;
mod util;
