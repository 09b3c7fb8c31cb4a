//! Helpers shared by the modules of this binary: waiting on a session's status.
//! Helpers shared with other crates' tests are in `pulse_testkit`.

use std::time::Duration;

use pulse_core::session::{SessionHandle, SessionStatus};

/// Wait (on every status change, at most `limit`) until `cond` holds on the
/// session's status, and return that status; panic naming `what` and showing
/// the last status after `limit`.
pub async fn until_within(
    limit: Duration,
    handle: &SessionHandle,
    what: &str,
    cond: impl Fn(&SessionStatus) -> bool,
) -> SessionStatus {
    let mut rx = handle.status();
    let r = tokio::time::timeout(limit, async {
        loop {
            let s = rx.borrow_and_update().clone();
            if cond(&s) {
                return s;
            }
            rx.changed().await.expect("session alive");
        }
    })
    .await;
    r.unwrap_or_else(|_| {
        panic!(
            "timed out waiting for {what}; status: {:?}",
            handle.status().borrow()
        )
    })
}
