//! The primitives against a real server (a throwaway Valkey per test, `amtp_testkit`, so the
//! races and TTLs are the server's own and no test sees another's keys), and the namespace
//! document against the key builders: one test binary.

mod concurrency;
mod namespaces_doc;
mod pr_lock;
mod rate_limit;
mod util;
