//! The xtask's integration tests, one binary (every `tests/*.rs` file would be a binary of its
//! own, linking the whole dependency tree again), a module per topic.

mod builds;
mod cancel;
mod ci_workflow;
mod clients;
mod compose;
mod contract;
mod daily;
mod docs_site;
mod faults_state;
mod faults_supervisor;
mod garage;
mod logs;
mod snapshots;
mod stack;
mod traces;
mod ui;
mod util;
mod worktrees;
