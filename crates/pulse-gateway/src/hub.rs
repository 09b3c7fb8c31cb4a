//! The append path and the live fan-out, per tenant.
//!
//! Invariants:
//! - every write (ingest, mutation, demo) goes through [`Hub::append`] or
//!   [`Hub::mutate`], which hold the tenant's writer lock from validation of the
//!   current state through commit and fan-out: one writer per tenant;
//! - events are published to live subscribers only after their batch is committed,
//!   strictly in seq order, each encoded once and shared by every subscriber;
//! - group commit: an [`Hub::append`] that finds the tenant's writer busy waits in
//!   the tenant's queue, and whoever takes the writer next commits everything
//!   queued in one store call ([`LogStore::append_group`], one transaction), in
//!   queue order; each batch is then published and its caller answered, in order,
//!   only after that commit. The commit runs in a task of its own, so a caller
//!   that goes away (a client that disconnects) never leaves committed events
//!   unpublished or another caller unanswered;
//! - publishing never waits for a subscriber: the live feed is a bounded
//!   `tokio::sync::broadcast` channel, and a subscriber that falls more than
//!   `client_queue` events behind sees `Lagged` and is disconnected by its
//!   connection task (it resyncs on reconnect);
//! - a subscriber that subscribes to the live feed (through [`Hub::subscribe`])
//!   *before* reading the store's head receives every event after that head (the
//!   basis of gap-free replay).
//!
//! On a shared store (Redis, several nodes) the live feed comes from the store, not
//! from this node's appends, so that every node publishes every event once and in
//! seq order whoever appended it:
//! - one thread per node ([`Hub::start_tail`]) runs blocking reads (`XREAD BLOCK`)
//!   over the logs of the tenants this node follows, each from the last seq it
//!   published, and publishes what arrives; no polling loop;
//! - a tenant is followed from its first [`Hub::subscribe`] on: that call reads the
//!   store's head, makes it the tail's cursor and wakes the tail, before the caller
//!   reads the log, so nothing between the two is missed;
//! - when the store is unreachable the tail retries with a backoff from the same
//!   cursors: nothing is lost or published twice once it is back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::oneshot;

use axum::extract::ws::Utf8Bytes;
use pulse_protocol::domain::{Entity, EntityKind, Object};
use tokio::sync::broadcast;

use crate::metrics::Metrics;
use crate::store::{strip, view, Appended, EventRange, LogStore, NewEvent, StoreError, StreamInfo};
use futures_util::future::{BoxFuture, FutureExt, Shared};
use pulse_protocol::frame::EventFrame;
use std::sync::Weak;
use std::time::Duration;

/// How long one blocking read of the tail waits before it starts again.
const TAIL_BLOCK: Duration = Duration::from_secs(5);
/// Longest pause between two tail reads after a store failure.
const TAIL_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// One committed event as sent to live subscribers.
#[derive(Debug)]
pub struct LiveEvent {
    /// Its seq ([`LiveEvent::RESYNC`]: no event; the subscriber must resubscribe).
    pub seq: u64,
    /// The encoded event frame.
    pub text: Utf8Bytes,
    /// The one user it is addressed to, and the encoded placeholder
    /// ([`EventFrame::skipped`]) every other session receives instead.
    pub only: Option<(String, Utf8Bytes)>,
}

impl LiveEvent {
    /// The seq of the marker telling subscribers that the log was recreated.
    pub const RESYNC: u64 = 0;

    /// `f`, encoded once for every subscriber.
    fn of(f: &EventFrame) -> LiveEvent {
        LiveEvent {
            seq: f.seq,
            text: Utf8Bytes::from(f.encode()),
            only: f
                .user
                .clone()
                .map(|u| (u, Utf8Bytes::from(f.skipped().encode()))),
        }
    }

    /// What the session of `viewer` (its token's `sub`) is sent for this event.
    pub fn text_for(&self, viewer: &str) -> &Utf8Bytes {
        match &self.only {
            Some((user, skipped)) if !pulse_protocol::frame::visible_to(Some(user), viewer) => {
                skipped
            }
            _ => &self.text,
        }
    }
}

/// A failure of the append or read path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HubError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A blocking store task panicked or was cancelled.
    #[error("store task failed: {0}")]
    Task(String),
    /// A merged read (see [`Hub::read`]) failed for every caller that waited on it.
    #[error(transparent)]
    Merged(Arc<HubError>),
}

impl HubError {
    /// The store's error behind this one, if it is one.
    pub fn store_error(&self) -> Option<&StoreError> {
        match self {
            HubError::Store(e) => Some(e),
            HubError::Merged(e) => e.store_error(),
            HubError::Task(_) => None,
        }
    }

    /// Whether the store was unreachable or too contended: nothing was written and
    /// the request may be retried.
    pub fn is_unavailable(&self) -> bool {
        match self {
            HubError::Store(StoreError::Unavailable(_) | StoreError::Contended(_)) => true,
            HubError::Merged(e) => e.is_unavailable(),
            _ => false,
        }
    }
}

/// An ingest batch waiting for its tenant's next group commit, and where its
/// answer (each event's seq) goes.
type Waiting = (Vec<NewEvent>, oneshot::Sender<Result<Vec<u64>, HubError>>);

/// Per-tenant state of the hub.
#[derive(Debug)]
pub struct TenantHub {
    name: String,
    epoch: Mutex<String>,
    writer: tokio::sync::Mutex<()>,
    /// Batches of [`Hub::append`] not yet taken by a group commit, in arrival order.
    waiting: Mutex<Vec<Waiting>>,
    /// Created by the first subscriber, so tenants nobody watches cost no queue.
    live: OnceLock<broadcast::Sender<Arc<LiveEvent>>>,
    queue: usize,
    /// Highest seq published (shared store: the tail's cursor).
    head: AtomicU64,
    /// Set once the tail follows this tenant (shared store only).
    followed: tokio::sync::OnceCell<()>,
}

impl TenantHub {
    /// The tenant (= stream) name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The stream's epoch (fixed for the lifetime of the log; a shared store that
    /// lost its data starts a new one, see [`Hub::observe`]).
    pub fn epoch(&self) -> String {
        self.epoch.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Highest committed seq seen by this hub.
    pub fn head(&self) -> u64 {
        self.head.load(Ordering::Acquire)
    }

    fn receiver(&self) -> broadcast::Receiver<Arc<LiveEvent>> {
        self.live
            .get_or_init(|| broadcast::channel(self.queue).0)
            .subscribe()
    }

    /// When `info` (just read from a shared store) has another epoch than this
    /// hub's, the log was recreated: take its epoch, restart the tail's cursor at
    /// its head, and return `true`.
    fn reset_if_recreated(&self, info: &StreamInfo) -> bool {
        let mut epoch = self.epoch.lock().unwrap_or_else(|p| p.into_inner());
        if *epoch == info.epoch {
            return false;
        }
        tracing::warn!(tenant = %self.name, old = %epoch, new = %info.epoch, "the log was recreated (new epoch); the tail starts over");
        *epoch = info.epoch.clone();
        self.head.store(info.head, Ordering::Release);
        true
    }

    /// Tell every live subscriber to resubscribe (seq 0, see [`LiveEvent::RESYNC`]).
    fn send_resync(&self) {
        if let Some(live) = self.live.get() {
            let _ = live.send(Arc::new(LiveEvent {
                seq: LiveEvent::RESYNC,
                text: Utf8Bytes::from_static(""),
                only: None,
            }));
        }
    }

    /// Publish committed frames, in seq order, to the live subscribers.
    fn publish(&self, frames: &[EventFrame]) {
        // A subscriber that appears after this check reads these events from the
        // store, since it subscribes before it reads the head.
        if let Some(live) = self.live.get().filter(|l| l.receiver_count() > 0) {
            for f in frames {
                // Receivers that dropped meanwhile are fine.
                let _ = live.send(Arc::new(LiveEvent::of(f)));
            }
        }
        if let Some(last) = frames.last() {
            self.head.fetch_max(last.seq, Ordering::AcqRel);
        }
    }
}

/// A store read in flight, shared by every caller that asked for the same range.
type SharedRead = Shared<BoxFuture<'static, Result<Arc<EventRange>, Arc<HubError>>>>;

/// The tenants' writers and live feeds over one [`LogStore`].
pub struct Hub {
    store: Arc<dyn LogStore>,
    tenants: Mutex<HashMap<String, Arc<TenantHub>>>,
    reads: Mutex<HashMap<(String, u64, usize), SharedRead>>,
    queue: usize,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("store", &self.store.backend())
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// A hub over `store`; `queue` is each subscriber's live-queue bound (events).
    pub fn new(
        store: Arc<dyn LogStore>,
        queue: usize,
        metrics: Arc<Metrics>,
    ) -> Result<Hub, HubError> {
        let hub = Hub {
            store,
            tenants: Mutex::new(HashMap::new()),
            reads: Mutex::new(HashMap::new()),
            queue: queue.max(16),
            metrics,
        };
        for info in hub.store.streams()? {
            hub.insert(info);
        }
        Ok(hub)
    }

    /// The metrics this hub updates.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Name of the storage backend.
    pub fn backend(&self) -> &'static str {
        self.store.backend()
    }

    fn insert(&self, info: StreamInfo) -> Arc<TenantHub> {
        let mut map = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(info.stream.clone())
            .or_insert_with(|| {
                Arc::new(TenantHub {
                    name: info.stream,
                    epoch: Mutex::new(info.epoch),
                    writer: tokio::sync::Mutex::new(()),
                    waiting: Mutex::new(Vec::new()),
                    live: OnceLock::new(),
                    queue: self.queue,
                    head: AtomicU64::new(info.head),
                    followed: tokio::sync::OnceCell::new(),
                })
            })
            .clone()
    }

    /// Every tenant known to this hub, by name.
    pub fn tenants(&self) -> Vec<Arc<TenantHub>> {
        let map = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<_> = map.values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// The store, for a caller already on a blocking thread.
    pub(crate) fn store(&self) -> &Arc<dyn LogStore> {
        &self.store
    }

    /// Run a store call on the blocking pool.
    pub async fn blocking<T, F>(&self, f: F) -> Result<T, HubError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn LogStore) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(|e| HubError::Task(e.to_string()))?
            .map_err(HubError::from)
    }

    /// The hub of `tenant`, creating its stream if needed.
    pub async fn tenant(&self, tenant: &str) -> Result<Arc<TenantHub>, HubError> {
        if let Some(t) = self
            .tenants
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(tenant)
        {
            return Ok(t.clone());
        }
        let name = tenant.to_owned();
        let info = self.blocking(move |s| s.info(&name)).await?;
        Ok(self.insert(info))
    }

    /// Commit `events` to `tenant` (atomically, possibly in one transaction with
    /// other callers' batches: group commit, see the module docs) and publish them.
    /// Returns each event's seq (for a duplicate id, the seq it was first stored
    /// with) once they are committed.
    pub async fn append(&self, tenant: &str, events: Vec<NewEvent>) -> Result<Vec<u64>, HubError> {
        let t = self.tenant(tenant).await?;
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let (answer, answered) = oneshot::channel();
        t.waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((events, answer));
        let (store, metrics) = (self.store.clone(), self.metrics.clone());
        tokio::spawn(async move {
            let _writer = t.writer.lock().await;
            let group = std::mem::take(&mut *t.waiting.lock().unwrap_or_else(|p| p.into_inner()));
            // Empty: an earlier task took this batch into its group (and answered it
            // before it let the writer go).
            if !group.is_empty() {
                commit_group(&store, &metrics, &t, group).await;
            }
        });
        answered
            .await
            .map_err(|_| HubError::Task("the group commit ended without an answer".into()))?
    }

    /// Commit one batch while holding `t`'s writer lock, and publish it.
    async fn commit_locked(
        &self,
        t: &TenantHub,
        events: Vec<NewEvent>,
    ) -> Result<Vec<u64>, HubError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let name = t.name.clone();
        let done = self.blocking(move |s| s.append(&name, events)).await?;
        Ok(published(&self.store, &self.metrics, t, done))
    }

    /// Read entity `kind`/`id` of `tenant` under the writer lock, let `decide` turn
    /// it into an event (or refuse with its own error), commit and publish that
    /// event, and return its seq and the entity after it. `viewer` is the user
    /// asking: another user's entity is `None` to `decide`, as if it did not exist
    /// (see [`crate::store::strip`]); the event of a mutation of `viewer`'s own
    /// entity is addressed to `viewer` (the store's audience rule).
    pub async fn mutate<E, F>(
        &self,
        tenant: &str,
        viewer: &str,
        kind: EntityKind,
        id: &str,
        decide: F,
    ) -> Result<(u64, Entity), E>
    where
        E: From<HubError>,
        F: FnOnce(Option<Object>) -> Result<NewEvent, E>,
    {
        let t = self.tenant(tenant).await?;
        let _writer = t.writer.lock().await;
        let (name, key) = (t.name.clone(), id.to_owned());
        let current = self.blocking(move |s| s.entity(&name, kind, &key)).await?;
        let event = decide(current.and_then(|o| strip(o, Some(viewer))))?;
        let seqs = self.commit_locked(&t, vec![event]).await?;
        let (name, key) = (t.name.clone(), id.to_owned());
        let after = self.blocking(move |s| s.entity(&name, kind, &key)).await?;
        Ok((
            seqs[0],
            Entity {
                kind,
                id: id.to_owned(),
                data: after
                    .and_then(|o| strip(o, Some(viewer)))
                    .unwrap_or_default(),
            },
        ))
    }

    /// Up to `limit` events of `tenant` after `after`, with the stream position.
    ///
    /// Identical reads asked for while one is in flight (a mass reconnect: many
    /// clients of one tenant resuming from one cursor) wait for that one: one store
    /// read serves them all. Its result may be a moment older than the caller's
    /// live subscription; the connection fills such a gap from the store.
    pub async fn read(
        &self,
        tenant: &str,
        after: u64,
        limit: usize,
    ) -> Result<Arc<EventRange>, HubError> {
        let key = (tenant.to_owned(), after, limit);
        let read = {
            let mut reads = self.reads.lock().unwrap_or_else(|p| p.into_inner());
            match reads.get(&key).filter(|r| r.peek().is_none()) {
                Some(r) => {
                    self.metrics.merged_reads.fetch_add(1, Ordering::Relaxed);
                    r.clone()
                }
                None => {
                    let store = self.store.clone();
                    let name = tenant.to_owned();
                    let r = async move {
                        tokio::task::spawn_blocking(move || store.read(&name, after, limit))
                            .await
                            .map_err(|e| Arc::new(HubError::Task(e.to_string())))?
                            .map(Arc::new)
                            .map_err(|e| Arc::new(HubError::Store(e)))
                    }
                    .boxed()
                    .shared();
                    reads.insert(key.clone(), r.clone());
                    r
                }
            }
        };
        let out = read.clone().await;
        let mut reads = self.reads.lock().unwrap_or_else(|p| p.into_inner());
        if reads.get(&key).is_some_and(|r| r.peek().is_some()) {
            reads.remove(&key);
        }
        out.map_err(HubError::Merged)
    }

    /// Start receiving `t`'s live events: every event committed after this call. On
    /// a shared store, the first call for a tenant makes the tail follow it.
    pub async fn subscribe(
        &self,
        t: &TenantHub,
    ) -> Result<broadcast::Receiver<Arc<LiveEvent>>, HubError> {
        let rx = t.receiver();
        if self.store.shared().is_some() {
            let mut first = false;
            t.followed
                .get_or_try_init(|| async {
                    let name = t.name.clone();
                    let info = self.blocking(move |s| s.info(&name)).await?;
                    t.head.store(info.head, Ordering::Release);
                    first = true;
                    Ok::<(), HubError>(())
                })
                .await?;
            // Wake the tail only once the tenant counts as followed, so the read it
            // starts next includes it.
            if first {
                self.blocking(|s| match s.shared() {
                    Some(r) => r.wake_tail(),
                    None => Ok(()),
                })
                .await?;
            }
        }
        Ok(rx)
    }

    /// Tell the hub what a read of `t`'s log found. On a shared store whose log
    /// was recreated (Redis came back empty: a new epoch), the tail's cursor is
    /// reset to the new log's head so that its events are published, and the tail
    /// woken ([`Hub::wake_tail`], a blocking call) when this returns `true`.
    pub fn observe(&self, t: &TenantHub, info: &StreamInfo) -> bool {
        self.store.shared().is_some() && t.reset_if_recreated(info)
    }

    /// Whether the store can serve now.
    pub async fn health(&self) -> Result<(), HubError> {
        self.blocking(|s| s.health()).await
    }

    /// On a shared store, start this node's tail thread (see the module docs); it
    /// ends when `stop` turns true or the hub is dropped. Nothing on other stores.
    pub fn start_tail(self: &Arc<Self>, stop: tokio::sync::watch::Receiver<bool>) {
        if self.store.shared().is_none() {
            return;
        }
        let hub = Arc::downgrade(self);
        let spawned = std::thread::Builder::new()
            .name("pulse-tail".into())
            .spawn(move || tail(hub, stop));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the tail thread");
        }
    }

    /// Wake the tail so that it sees a stop (best effort).
    pub fn wake_tail(&self) {
        if let Some(r) = self.store.shared() {
            let _ = r.wake_tail();
        }
    }

    /// [`Hub::read`] without merging: the store's state now.
    pub async fn read_direct(
        &self,
        tenant: &str,
        after: u64,
        limit: usize,
    ) -> Result<Arc<EventRange>, HubError> {
        let name = tenant.to_owned();
        self.blocking(move |s| s.read(&name, after, limit))
            .await
            .map(Arc::new)
    }

    /// The snapshot of `tenant` as `viewer` sees it (`None`: every entity, for the
    /// gateway's own use): see [`crate::store::view`].
    pub async fn snapshot(
        &self,
        tenant: &str,
        viewer: Option<&str>,
    ) -> Result<pulse_protocol::rest::Snapshot, HubError> {
        let name = tenant.to_owned();
        let snap = self.blocking(move |s| s.snapshot(&name)).await?;
        Ok(view(snap, viewer))
    }
}

/// The tail thread: see the module docs.
fn tail(hub: Weak<Hub>, stop: tokio::sync::watch::Receiver<bool>) {
    let mut backoff = Duration::from_millis(50);
    let mut failing = false;
    loop {
        if *stop.borrow() {
            return;
        }
        let Some(h) = hub.upgrade() else { return };
        let store = h.store.clone();
        let metrics = h.metrics.clone();
        let followed: HashMap<String, Arc<TenantHub>> = h
            .tenants()
            .into_iter()
            .filter(|t| t.followed.initialized())
            .map(|t| (t.name.clone(), t))
            .collect();
        drop(h);
        let Some(redis) = store.shared() else { return };
        let cursors: Vec<(String, u64)> = followed
            .values()
            .map(|t| (t.name.clone(), t.head()))
            .collect();
        match redis.tail(&cursors, TAIL_BLOCK) {
            Ok(frames) => {
                if failing {
                    tracing::info!("store reachable again; tail resumes from its cursors");
                    failing = false;
                    // Redis may have come back empty: a recreated log gets a new
                    // epoch, and its subscribers must resync.
                    for t in followed.values() {
                        if let Ok(info) = redis.info(&t.name) {
                            if t.reset_if_recreated(&info) {
                                t.send_resync();
                            }
                        }
                    }
                    continue;
                }
                metrics.store_unavailable.store(0, Ordering::Relaxed);
                backoff = Duration::from_millis(50);
                let mut by_tenant: HashMap<&str, Vec<EventFrame>> = HashMap::new();
                for f in frames {
                    let Some(t) = followed.get(&f.stream) else {
                        continue;
                    };
                    // Publish each seq once, in order, whatever the reply held.
                    if f.seq > t.head() {
                        by_tenant.entry(t.name.as_str()).or_default().push(f);
                    }
                }
                for (name, frames) in by_tenant {
                    if let Some(t) = followed.get(name) {
                        metrics
                            .tailed_events
                            .fetch_add(frames.len() as u64, Ordering::Relaxed);
                        t.publish(&frames);
                    }
                }
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "tail read failed; retrying");
                    failing = true;
                }
                metrics.store_unavailable.store(1, Ordering::Relaxed);
                metrics.tail_errors.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(TAIL_BACKOFF_MAX);
            }
        }
    }
}

/// Commit `group` (taken from `t`'s queue by the holder of its writer lock) in
/// one store call, then publish and answer each batch in order.
async fn commit_group(
    store: &Arc<dyn LogStore>,
    metrics: &Metrics,
    t: &TenantHub,
    group: Vec<Waiting>,
) {
    let (batches, answers): (Vec<_>, Vec<_>) = group.into_iter().unzip();
    let (s, name) = (store.clone(), t.name.clone());
    let results = tokio::task::spawn_blocking(move || s.append_group(&name, batches))
        .await
        .map_err(|e| HubError::Task(e.to_string()))
        .and_then(|r| r.map_err(HubError::from));
    match results {
        Ok(results) => {
            for (result, answer) in results.into_iter().zip(answers) {
                let seqs = result
                    .map(|done| published(store, metrics, t, done))
                    .map_err(HubError::from);
                // A caller that went away no longer needs its answer.
                let _ = answer.send(seqs);
            }
        }
        Err(e) if answers.len() == 1 => {
            if let Some(answer) = answers.into_iter().next() {
                let _ = answer.send(Err(e));
            }
        }
        Err(e) => {
            let e = Arc::new(e);
            for answer in answers {
                let _ = answer.send(Err(HubError::Merged(e.clone())));
            }
        }
    }
}

/// After `done` was committed to `t`: publish it (unless the live feed comes from
/// a shared store's tail), count it, and return its seqs.
fn published(
    store: &Arc<dyn LogStore>,
    metrics: &Metrics,
    t: &TenantHub,
    done: Appended,
) -> Vec<u64> {
    if store.shared().is_none() {
        t.publish(&done.frames);
    }
    metrics
        .events_ingested
        .fetch_add(done.frames.len() as u64, Ordering::Relaxed);
    metrics.duplicates.fetch_add(
        (done.seqs.len() - done.frames.len()) as u64,
        Ordering::Relaxed,
    );
    done.seqs
}

#[cfg(test)]
/// The [`LogStore`] methods that the test stores of both test modules pass
/// straight to `self.inner` (each writes only the ones it gates).
macro_rules! delegate_to_inner {
    () => {
        fn snapshot(&self, t: &str) -> Result<Snapshot, StoreError> {
            self.inner.snapshot(t)
        }
        fn entity(&self, t: &str, k: EntityKind, id: &str) -> Result<Option<Object>, StoreError> {
            self.inner.entity(t, k, id)
        }
        fn streams(&self) -> Result<Vec<StreamInfo>, StoreError> {
            self.inner.streams()
        }
        fn session_start(&self, s: &crate::store::RefreshSession) -> Result<(), StoreError> {
            self.inner.session_start(s)
        }
        fn session_rotate(
            &self,
            f: &str,
            p: &str,
            n: &str,
            e: u64,
            now: u64,
        ) -> Result<crate::store::Rotation, StoreError> {
            self.inner.session_rotate(f, p, n, e, now)
        }
        fn session_revoke(&self, f: &str) -> Result<bool, StoreError> {
            self.inner.session_revoke(f)
        }
        fn session_revoke_user(&self, t: &str, s: &str) -> Result<u64, StoreError> {
            self.inner.session_revoke_user(t, s)
        }
        fn idempotent_get(&self, t: &str, k: &str, now: u64) -> Result<Option<String>, StoreError> {
            self.inner.idempotent_get(t, k, now)
        }
        fn idempotent_put(&self, t: &str, k: &str, a: &str, e: u64) -> Result<(), StoreError> {
            self.inner.idempotent_put(t, k, a, e)
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Appended, MemoryStore};
    use pulse_protocol::rest::Snapshot;
    use serde_json::json;

    /// A memory store whose reads wait until the gate opens.
    struct Gated {
        inner: MemoryStore,
        open: std::sync::Mutex<bool>,
        cv: std::sync::Condvar,
    }

    impl LogStore for Gated {
        fn backend(&self) -> &'static str {
            "gated"
        }
        fn info(&self, t: &str) -> Result<StreamInfo, StoreError> {
            self.inner.info(t)
        }
        fn append(&self, t: &str, e: Vec<NewEvent>) -> Result<Appended, StoreError> {
            self.inner.append(t, e)
        }
        fn read(&self, t: &str, after: u64, limit: usize) -> Result<EventRange, StoreError> {
            let mut open = self.open.lock().unwrap();
            while !*open {
                open = self.cv.wait(open).unwrap();
            }
            drop(open);
            self.inner.read(t, after, limit)
        }
        delegate_to_inner!();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn identical_reads_in_flight_are_merged() {
        let metrics = Arc::new(Metrics::default());
        let store = Arc::new(Gated {
            inner: MemoryStore::new(100),
            open: std::sync::Mutex::new(false),
            cv: std::sync::Condvar::new(),
        });
        let hub = Arc::new(Hub::new(store.clone(), 16, metrics.clone()).unwrap());
        let events = (0..5)
            .map(|i| NewEvent::new("agent.upserted", json!({"id": format!("a{i}")}), None, 1))
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        hub.append("acme", events).await.unwrap();
        // Forty clients resuming from one cursor at once: one store read.
        let reads: Vec<_> = (0..40)
            .map(|_| {
                let hub = hub.clone();
                tokio::spawn(async move { hub.read("acme", 2, 100).await })
            })
            .collect();
        pulse_testkit::wait_for_some("39 reads merged", Duration::from_secs(10), || async {
            (metrics.merged_reads.load(Ordering::Relaxed) == 39).then_some(())
        })
        .await;
        *store.open.lock().unwrap() = true;
        store.cv.notify_all();
        let mut got = Vec::new();
        for r in reads {
            got.push(r.await.unwrap().unwrap());
        }
        for r in &got {
            assert_eq!(
                r.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
                [3, 4, 5]
            );
            assert!(Arc::ptr_eq(r, &got[0]), "one read served all");
        }
        // Another cursor is another read; a finished read is never served again.
        hub.read("acme", 1, 100).await.unwrap();
        let later = hub.read("acme", 2, 100).await.unwrap();
        assert_eq!(metrics.merged_reads.load(Ordering::Relaxed), 39);
        assert!(!Arc::ptr_eq(&got[0], &later));
        assert!(
            hub.reads.lock().unwrap().is_empty(),
            "nothing left in flight"
        );
    }
}

/// Group commit over a real SQLite file.
#[cfg(test)]
mod group_commit {
    use super::*;
    use crate::store::{Appended, SqliteStore};
    use pulse_protocol::frame::ServerFrame;
    use pulse_protocol::rest::Snapshot;
    use serde_json::json;

    /// A SQLite store whose appends wait while the gate is closed, and that
    /// records how many batches each store call carried.
    struct GatedAppends {
        inner: SqliteStore,
        /// (gate open, calls waiting at the gate)
        gate: std::sync::Mutex<(bool, usize)>,
        cv: std::sync::Condvar,
        calls: std::sync::Mutex<Vec<usize>>,
    }

    impl GatedAppends {
        fn pass(&self, batches: usize) {
            let mut g = self.gate.lock().unwrap();
            g.1 += 1;
            while !g.0 {
                g = self.cv.wait(g).unwrap();
            }
            g.1 -= 1;
            self.calls.lock().unwrap().push(batches);
        }
        fn waiting_at_gate(&self) -> usize {
            self.gate.lock().unwrap().1
        }
        fn open(&self) {
            self.gate.lock().unwrap().0 = true;
            self.cv.notify_all();
        }
    }

    impl LogStore for GatedAppends {
        fn backend(&self) -> &'static str {
            "gated-sqlite"
        }
        fn info(&self, t: &str) -> Result<StreamInfo, StoreError> {
            self.inner.info(t)
        }
        fn append(&self, t: &str, e: Vec<NewEvent>) -> Result<Appended, StoreError> {
            self.pass(1);
            self.inner.append(t, e)
        }
        fn append_group(
            &self,
            t: &str,
            batches: Vec<Vec<NewEvent>>,
        ) -> Result<Vec<Result<Appended, StoreError>>, StoreError> {
            self.pass(batches.len());
            self.inner.append_group(t, batches)
        }
        fn read(&self, t: &str, after: u64, limit: usize) -> Result<EventRange, StoreError> {
            self.inner.read(t, after, limit)
        }
        delegate_to_inner!();
    }

    fn batch(request: usize, n: usize) -> Vec<NewEvent> {
        (0..n)
            .map(|k| {
                NewEvent::new(
                    "agent.heartbeat",
                    json!({"id": format!("agent-{request}"), "k": k}),
                    Some(format!("r{request}-{k}")),
                    1,
                )
                .unwrap()
            })
            .collect()
    }

    /// Requests that arrive while a commit is in flight are committed together in
    /// one store call; each gets its own seqs, consecutive and in order, the live
    /// feed carries every event once in seq order, and the log replays all of
    /// them, also after the file is opened again. A refused request in the group
    /// is refused alone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_are_committed_together() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.db");
        let store = Arc::new(GatedAppends {
            inner: SqliteStore::open(&path, 10_000).unwrap(),
            gate: std::sync::Mutex::new((false, 0)),
            cv: std::sync::Condvar::new(),
            calls: std::sync::Mutex::new(Vec::new()),
        });
        let hub = Arc::new(Hub::new(store.clone(), 1024, Arc::new(Metrics::default())).unwrap());
        let t = hub.tenant("acme").await.unwrap();
        let mut live = hub.subscribe(&t).await.unwrap();

        let append = |request: usize, events: Vec<NewEvent>| {
            let hub = hub.clone();
            tokio::spawn(async move { (request, hub.append("acme", events).await) })
        };
        // The first request holds the writer inside the store...
        let first = append(0, batch(0, 1));
        pulse_testkit::wait_for_some(
            "the first commit at the gate",
            Duration::from_secs(10),
            || async { (store.waiting_at_gate() == 1).then_some(()) },
        )
        .await;
        // ...while eight more arrive (one of them refused: a user's event on the
        // shared agent that request 0 creates).
        let mut requests = vec![first];
        for r in 1..=8 {
            let events = if r == 5 {
                vec![NewEvent::new(
                    "agent.heartbeat",
                    json!({"id": "agent-0"}),
                    Some("bad".into()),
                    1,
                )
                .unwrap()
                .for_user(Some("alice".into()))]
            } else {
                batch(r, 3)
            };
            requests.push(append(r, events));
        }
        pulse_testkit::wait_for_some("eight requests queued", Duration::from_secs(10), || async {
            (t.waiting.lock().unwrap().len() == 8).then_some(())
        })
        .await;
        store.open();
        let mut answers = Vec::new();
        for r in requests {
            answers.push(r.await.unwrap());
        }
        assert_eq!(
            *store.calls.lock().unwrap(),
            [1, 8],
            "one store call for the eight"
        );

        // Seqs: request 0 first, then the group in queue order, each request's own
        // consecutive block; the refused one gets none.
        let mut seqs: Vec<(u64, String)> = Vec::new();
        for (request, answer) in &answers {
            if *request == 5 {
                let e = answer.as_ref().unwrap_err();
                assert!(
                    matches!(e.store_error(), Some(StoreError::Audience(_))),
                    "{e}"
                );
                continue;
            }
            let got = answer.as_ref().unwrap();
            let n = if *request == 0 { 1 } else { 3 };
            assert_eq!(got.len(), n);
            assert!(
                got.windows(2).all(|w| w[1] == w[0] + 1),
                "consecutive: {got:?}"
            );
            seqs.extend(
                got.iter()
                    .enumerate()
                    .map(|(k, s)| (*s, format!("r{request}-{k}"))),
            );
        }
        seqs.sort();
        assert_eq!(
            seqs.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            (1..=22).collect::<Vec<_>>(),
            "every seq once, no gap"
        );
        assert_eq!(seqs[0].1, "r0-0");

        // The live feed: every event once, in seq order, the one each answer named.
        for (seq, id) in &seqs {
            let e = live.recv().await.unwrap();
            assert_eq!(e.seq, *seq);
            let ServerFrame::Event(f) = ServerFrame::decode(&e.text).unwrap() else {
                panic!("not an event frame");
            };
            assert_eq!((f.seq, &f.id), (*seq, id));
        }
        assert!(live.try_recv().is_err(), "nothing more");

        // Replay, now and from the file opened again.
        let replayed = |r: &EventRange| -> Vec<(u64, String)> {
            r.events.iter().map(|e| (e.seq, e.id.clone())).collect()
        };
        assert_eq!(replayed(&hub.read("acme", 0, 100).await.unwrap()), seqs);
        drop(live);
        drop(t);
        drop(hub);
        drop(store);
        let again = SqliteStore::open(&path, 10_000).unwrap();
        let r = again.read("acme", 0, 100).unwrap();
        assert_eq!(replayed(&r), seqs);
        assert_eq!(r.info.head, 22);
        assert!(again
            .entity("acme", EntityKind::Agent, "agent-5")
            .unwrap()
            .is_none());
    }
}
