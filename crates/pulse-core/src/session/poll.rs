//! The native dialect's fallback: REST polling (`GET /v1/events?since=`) while the
//! socket is refused by an HTTP answer (a proxy that blocks WebSockets).
//!
//! Invariants:
//! - polled events go through the same seq-checked commit as streamed ones
//!   ([`apply_frames`]); a server that cannot replay gives a snapshot instead;
//! - `429` waits for `Retry-After` (never less than the poll interval);
//! - the socket is tried again every `socket_retry_interval` ([`End::TrySocket`]);
//! - a refused token is refreshed once, then [`End::Unauthorized`].

use std::time::{Duration, Instant};

use tracing::info;

use pulse_protocol::rest::{EventsPage, Snapshot};

use super::native::{apply_frames, load_snapshot, StreamPos};
use super::{End, SessionCx};
use crate::auth::{with_token, Refusal, Secret, TokenTry};
use crate::rest::{RestClient, RestError};
use crate::store::Cursor;

/// Keep data fresh over REST while the socket is refused.
pub(super) async fn poll_mode(cx: &mut SessionCx, reason: String) -> End {
    info!(%reason, "socket unavailable; polling over REST");
    let socket_retry_at = Instant::now() + cx.config().socket_retry_interval;
    let tokens = cx.tokens();
    let mut announced = false;
    loop {
        let mut wait = cx.config().poll_interval;
        cx.count(|c| c.polls += 1);
        let cursor = match cx.stream().map(|s| cx.store().cursor(&s)).transpose() {
            Ok(c) => c.flatten(),
            Err(e) => return End::Cache(e),
        };
        let rest = cx.rest().clone();
        let page = cx.config().poll_page;
        let fetch = |token: Secret| fetch(rest.clone(), token, cursor.clone(), page);
        let polled = match with_token(tokens.as_ref(), false, fetch).await {
            Ok(polled) => apply(cx, polled),
            Err(TokenTry::NoToken { error, .. }) => return super::actor::auth_end(error),
            Err(TokenTry::Refused(e)) => {
                return End::Unauthorized(e.refusal().unwrap_or_default().to_owned())
            }
            Err(TokenTry::Failed(e)) => Err(Polled::Rest(e)),
        };
        match polled {
            Ok(more) => {
                if !announced {
                    announced = true;
                    cx.polling(reason.clone());
                }
                if more {
                    wait = Duration::ZERO;
                }
            }
            Err(Polled::Rest(RestError::RateLimited { retry_after })) => {
                info!(
                    retry_after_ms = retry_after.as_millis() as u64,
                    "rate limited; waiting"
                );
                wait = retry_after.max(cx.config().poll_interval);
            }
            Err(Polled::Rest(e)) => return End::Lost(format!("polling failed: {e}")),
            Err(Polled::End(End::Resync(why))) => {
                return End::Lost(format!("polling failed: {}", RestError::Decode(why)))
            }
            Err(Polled::End(end)) => return end,
        }
        let now = Instant::now();
        if now >= socket_retry_at {
            return End::TrySocket;
        }
        let wait = wait.min(socket_retry_at - now);
        if wait.is_zero() {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            end = cx.interrupted() => match end {
                End::Stop => return End::Stop,
                _ => return End::TrySocket,
            },
        }
    }
}

/// What one poll brought.
struct Fetched {
    since: u64,
    page: EventsPage,
    /// The snapshot, when the server cannot replay from the cursor.
    snapshot: Option<Snapshot>,
}

/// Why one poll failed.
enum Polled {
    /// The server said no, or could not be reached.
    Rest(RestError),
    /// Applying what came ends the spell.
    End(End),
}

/// The REST half of a poll: events since the cursor, or a snapshot.
async fn fetch(
    rest: RestClient,
    token: Secret,
    cursor: Option<Cursor>,
    page: u32,
) -> Result<Fetched, RestError> {
    let since = cursor.as_ref().map(|c| c.seq).unwrap_or(0);
    let epoch = cursor.as_ref().map(|c| c.epoch.as_str());
    let events = rest.events_since(&token, since, epoch, page).await?;
    let snapshot = if !events.recovered || cursor.is_none() {
        Some(rest.snapshot(&token).await?)
    } else {
        None
    };
    Ok(Fetched {
        since,
        page: events,
        snapshot,
    })
}

/// The store half of a poll. `Ok(true)` when more events are waiting.
fn apply(cx: &mut SessionCx, f: Fetched) -> Result<bool, Polled> {
    let Fetched {
        since,
        page,
        snapshot,
    } = f;
    cx.describe(&page.stream, None);
    let mut pos = StreamPos {
        stream: page.stream.clone(),
        epoch: page.epoch.clone(),
        seq: since,
        catch_up_until: page.head,
    };
    if let Some(snap) = snapshot {
        pos.epoch = snap.epoch.clone();
        load_snapshot(cx, &mut pos, snap, Vec::new()).map_err(Polled::End)?;
        return Ok(pos.seq < page.head);
    }
    if page.events.is_empty() {
        cx.synced();
        return Ok(false);
    }
    apply_frames(cx, &mut pos, page.events).map_err(Polled::End)?;
    Ok(pos.seq < page.head)
}
