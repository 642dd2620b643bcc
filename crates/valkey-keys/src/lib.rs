//! The Valkey key contract of the AMTP platform (`infra/valkey/NAMESPACES.md`).
//!
//! Every application key lives under the `amtp:` root; [`keys`] builds them and carries their
//! TTLs, so no caller formats a key by hand.

pub mod keys;
