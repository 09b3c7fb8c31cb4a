//! The fallback loop every dialect shares ([`run_polling`]): REST rounds at an
//! interval while the socket cannot be had, or always when the user forces
//! polling (`SessionConfig::force_polling`); and the native dialect's rounds
//! (`GET /v1/events?since=`, [`NativePoller`]).
//!
//! Invariants:
//! - the state becomes `Polling (reason)` only once a round loaded something:
//!   a server whose REST does not answer either is a lost link (the poller
//!   returns [`End::Lost`]), retried with backoff;
//! - a round's `hold_until` (a 429's `Retry-After`) is honoured: no round
//!   starts before it, and never less than the interval apart;
//! - full rounds keep their interval across spells: trying the socket again
//!   and falling back does not poll sooner (the last round is kept in
//!   [`SessionCx`] until the session goes live);
//! - the socket is tried again ([`End::TrySocket`]) after each spell's
//!   [`SessionCx::socket_retry_delay`]: soon after the outage began, then every
//!   `socket_retry_interval`; never while polling is forced;
//! - polled native events go through the same seq-checked commit as streamed
//!   ones ([`apply_frames`]); a server that cannot replay gives a snapshot;
//! - a refused token is refreshed once, then [`End::Unauthorized`].

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::time::Instant;
use tracing::info;

use pulse_protocol::rest::EventsPage;

use super::native::{apply_frames, load_snapshot, StreamPos};
use super::{End, SessionCx};
use crate::auth::{with_token, Refusal, Secret, TokenTry};
use crate::rest::{RestClient, RestError, StreamedSnapshot};
use crate::store::Cursor;

/// What one polling round brought.
#[derive(Debug, Clone, Default)]
pub struct Polled {
    /// Something was loaded: the data is fresh (the state may say `Polling`).
    pub loaded: bool,
    /// Poll again at this time, before the next full round (more pages, a retry).
    pub again_at: Option<Instant>,
    /// The server asked to wait (429, `Retry-After`): no round before this.
    pub hold_until: Option<Instant>,
}

/// Boxed future of a [`Poller`] round.
pub type PollFuture<'a> = Pin<Box<dyn Future<Output = Result<Polled, End>> + Send + 'a>>;

/// One dialect's polling rounds, driven by [`run_polling`].
pub trait Poller: Send {
    /// One round: `full` when the interval came round (everything is reloaded),
    /// otherwise only what `again_at` asked for. An `Err` ends the spell.
    fn poll<'a>(&'a mut self, cx: &'a mut SessionCx, full: bool) -> PollFuture<'a>;

    /// The least time between full rounds (asked again for every round: it may
    /// grow, e.g. after 429s).
    fn interval(&self, cx: &SessionCx) -> Duration {
        cx.config().poll_interval
    }
}

/// Keep data fresh over REST with `poller` until the socket should be tried
/// again, the session stops, or REST fails too.
pub async fn run_polling(cx: &mut SessionCx, reason: String, poller: &mut dyn Poller) -> End {
    let forced = cx.config().force_polling;
    info!(%reason, forced, "polling over REST");
    let socket_retry_at = (!forced).then(|| Instant::now() + cx.socket_retry_delay());
    let mut next_full = cx
        .last_poll()
        .map_or_else(Instant::now, |t| t + poller.interval(cx));
    let mut hold: Option<Instant> = None;
    let mut announced = false;
    loop {
        let now = Instant::now();
        let full = now >= next_full;
        cx.count(|c| c.polls += 1);
        if full {
            cx.set_last_poll(now);
            next_full = now + poller.interval(cx);
        }
        let polled = match poller.poll(cx, full).await {
            Ok(p) => p,
            Err(end) => return end,
        };
        if polled.loaded && !announced {
            announced = true;
            cx.polling(reason.clone());
        }
        if let Some(h) = polled.hold_until {
            info!(
                wait_ms = h.saturating_duration_since(now).as_millis() as u64,
                "rate limited; waiting for Retry-After"
            );
            hold = Some(hold.map_or(h, |x| x.max(h)));
            next_full = next_full.max(h);
        }
        let now = Instant::now();
        if socket_retry_at.is_some_and(|at| now >= at) {
            return End::TrySocket;
        }
        let mut wake = next_full;
        if let Some(a) = polled.again_at {
            wake = wake.min(a);
        }
        if let Some(h) = hold {
            wake = wake.max(h);
        }
        if let Some(at) = socket_retry_at {
            wake = wake.min(at);
        }
        if wake <= now {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {}
            end = cx.interrupted() => match end {
                End::Stop => return End::Stop,
                // A manual retry: the socket now, or (forced) a round now.
                _ if forced => next_full = Instant::now().max(hold.unwrap_or(now)),
                _ => return End::TrySocket,
            },
        }
    }
}

/// The native protocol's rounds: events since the stored cursor, or a snapshot.
pub(super) struct NativePoller;

impl Poller for NativePoller {
    fn poll<'a>(&'a mut self, cx: &'a mut SessionCx, _full: bool) -> PollFuture<'a> {
        Box::pin(native_round(cx))
    }
}

async fn native_round(cx: &mut SessionCx) -> Result<Polled, End> {
    let tokens = cx.tokens();
    let cursor = cx
        .stream()
        .map(|s| cx.store().cursor(&s))
        .transpose()
        .map_err(End::Cache)?
        .flatten();
    let rest = cx.rest().clone();
    let page = cx.config().poll_page;
    let fetch = |token: Secret| fetch(rest.clone(), token, cursor.clone(), page);
    let polled = match with_token(tokens.as_ref(), false, fetch).await {
        Ok(polled) => apply(cx, polled),
        Err(TokenTry::NoToken { error, .. }) => return Err(super::actor::auth_end(error)),
        Err(TokenTry::Refused(e)) => {
            return Err(End::Unauthorized(
                e.refusal().unwrap_or_default().to_owned(),
            ))
        }
        Err(TokenTry::Failed(e)) => Err(Round::Rest(e)),
    };
    match polled {
        Ok(more) => Ok(Polled {
            loaded: true,
            again_at: more.then(Instant::now),
            hold_until: None,
        }),
        Err(Round::Rest(RestError::RateLimited { retry_after })) => Ok(Polled {
            hold_until: Some(Instant::now() + retry_after),
            ..Polled::default()
        }),
        Err(Round::Rest(e)) => Err(End::Lost(format!("polling failed: {e}"))),
        Err(Round::End(End::Resync(why))) => Err(End::Lost(format!(
            "polling failed: {}",
            RestError::Decode(why)
        ))),
        Err(Round::End(end)) => Err(end),
    }
}

/// What one poll brought.
struct Fetched {
    since: u64,
    page: EventsPage,
    /// The snapshot, when the server cannot replay from the cursor.
    snapshot: Option<StreamedSnapshot>,
}

/// Why one poll failed.
enum Round {
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
fn apply(cx: &mut SessionCx, f: Fetched) -> Result<bool, Round> {
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
        load_snapshot(cx, &mut pos, snap, Vec::new()).map_err(Round::End)?;
        return Ok(pos.seq < page.head);
    }
    if page.events.is_empty() {
        cx.synced();
        return Ok(false);
    }
    apply_frames(cx, &mut pos, page.events).map_err(Round::End)?;
    Ok(pos.seq < page.head)
}
