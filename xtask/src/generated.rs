//! The one run setting of the xtask's property tests: a fixed seed and no failure file, so
//! every run of `cargo xtask test` tries the same generated inputs (docs/reliability.md).

use proptest::test_runner::{Config, RngSeed};

/// `cases` generated inputs, the same ones every run.
pub(crate) fn seeded(cases: u32) -> Config {
    Config {
        cases,
        rng_seed: RngSeed::Fixed(17),
        failure_persistence: None,
        ..Config::default()
    }
}
