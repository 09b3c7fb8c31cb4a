//! Waiting on a condition, bounded: the condition is re-checked every
//! [`POLL`] until it holds, and the test fails with `what` it waited for once
//! `limit` has passed. Never a fixed sleep standing in for the condition.

use std::future::Future;
use std::time::{Duration, Instant};

/// Time between two checks of a condition.
pub const POLL: Duration = Duration::from_millis(25);

/// Block the thread until `cond` holds; panic naming `what` after `limit`.
pub fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    if !holds_within(limit, &mut cond) {
        panic!("timed out after {limit:?} waiting for {what}");
    }
}

/// Block the thread until `cond` holds or `limit` has passed; whether it held.
/// For a caller that adds what it saw to its own failure message.
pub fn holds_within(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// Await `cond` until it returns `Some`, and return that; panic naming `what`
/// after `limit`.
pub async fn wait_for_some<T, F, Fut>(what: &str, limit: Duration, mut cond: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = cond().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}
