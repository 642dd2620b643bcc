//! Fault injection and call counting: what tests use to steer the stand-in and observe it.
//!
//! The same state is reachable in-process (through [`crate::StandInHandle`]) and over HTTP under
//! `/_standin/...`, so a stand-in running as its own process can be driven too.

use std::sync::Mutex;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::SharedState;

/// A fault applied to the next `times` requests whose path starts with `path_prefix`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Fault {
    pub path_prefix: String,
    #[serde(default = "one")]
    pub times: u32,
    pub kind: FaultKind,
}

fn one() -> u32 {
    1
}

/// What goes wrong.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer with this status and GitHub's body for it (e.g. 401, 403, 404, 500, 502, 503, 422).
    Status { status: u16 },
    /// GitHub's rate limit answer: 403 (primary, `x-ratelimit-remaining: 0`) or 429 (secondary,
    /// with `retry-after`).
    RateLimited { status: u16, retry_after_secs: u64 },
    /// Wait before answering normally (for client timeouts).
    Delay { millis: u64 },
    /// Answer a trees request with only the first `keep` entries and `truncated: true`.
    TruncatedTree { keep: usize },
}

impl Fault {
    pub fn new(path_prefix: &str, times: u32, kind: FaultKind) -> Self {
        Fault {
            path_prefix: path_prefix.to_owned(),
            times,
            kind,
        }
    }
}

/// One request the stand-in received.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RecordedCall {
    pub method: String,
    /// Path and query, as sent.
    pub path: String,
}

/// Pending faults and the log of received calls.
#[derive(Default)]
pub struct Control {
    faults: Mutex<Vec<Fault>>,
    calls: Mutex<Vec<RecordedCall>>,
}

impl Control {
    pub fn inject(&self, fault: Fault) {
        lock(&self.faults).push(fault);
    }

    pub fn clear_faults(&self) {
        lock(&self.faults).clear();
    }

    /// Consumes one use of the first fault matching `path`.
    pub fn take_fault(&self, path: &str) -> Option<FaultKind> {
        let mut faults = lock(&self.faults);
        let index = faults
            .iter()
            .position(|f| f.times > 0 && path.starts_with(&f.path_prefix))?;
        let fault = &mut faults[index];
        fault.times -= 1;
        let kind = fault.kind.clone();
        if fault.times == 0 {
            faults.remove(index);
        }
        Some(kind)
    }

    pub fn record(&self, method: &str, path: &str) {
        lock(&self.calls).push(RecordedCall {
            method: method.to_owned(),
            path: path.to_owned(),
        });
    }

    pub fn calls(&self) -> Vec<RecordedCall> {
        lock(&self.calls).clone()
    }

    pub fn count_with_prefix(&self, prefix: &str) -> usize {
        lock(&self.calls)
            .iter()
            .filter(|c| c.path.starts_with(prefix))
            .count()
    }

    pub fn reset_calls(&self) {
        lock(&self.calls).clear();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `/_standin/...`: health, calls and faults over HTTP.
pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/_standin/health", get(health))
        .route("/_standin/calls", get(list_calls).delete(reset_calls))
        .route("/_standin/faults", post(inject_fault).delete(clear_faults))
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

#[derive(Deserialize)]
struct CallsQuery {
    prefix: Option<String>,
}

async fn list_calls(
    State(state): State<SharedState>,
    Query(query): Query<CallsQuery>,
) -> Json<serde_json::Value> {
    let prefix = query.prefix.unwrap_or_default();
    let calls: Vec<RecordedCall> = state
        .control
        .calls()
        .into_iter()
        .filter(|c| c.path.starts_with(&prefix))
        .collect();
    Json(serde_json::json!({ "total": calls.len(), "calls": calls }))
}

async fn reset_calls(State(state): State<SharedState>) -> StatusCode {
    state.control.reset_calls();
    StatusCode::NO_CONTENT
}

async fn inject_fault(State(state): State<SharedState>, Json(fault): Json<Fault>) -> StatusCode {
    state.control.inject(fault);
    StatusCode::CREATED
}

async fn clear_faults(State(state): State<SharedState>) -> StatusCode {
    state.control.clear_faults();
    StatusCode::NO_CONTENT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_applies_exactly_times_times_to_matching_paths() {
        let control = Control::default();
        control.inject(Fault::new(
            "/repos/a/b/git/trees",
            2,
            FaultKind::Status { status: 502 },
        ));
        assert_eq!(control.take_fault("/repos/a/b/contents/x"), None);
        assert!(control.take_fault("/repos/a/b/git/trees/main").is_some());
        assert!(control.take_fault("/repos/a/b/git/trees/main").is_some());
        assert_eq!(control.take_fault("/repos/a/b/git/trees/main"), None);
    }

    #[test]
    fn faults_parse_from_json() {
        let fault: Fault = serde_json::from_str(
            r#"{"path_prefix":"/repos","times":3,"kind":{"type":"rate_limited","status":429,"retry_after_secs":30}}"#,
        )
        .expect("parse");
        assert_eq!(
            fault.kind,
            FaultKind::RateLimited {
                status: 429,
                retry_after_secs: 30
            }
        );
    }
}
