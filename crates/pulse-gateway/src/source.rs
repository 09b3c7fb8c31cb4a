//! A platform's own event bus as a source: `--source redis-stream://HOST:PORT/KEY
//! --mapping FILE` reads the platform's Redis Stream in a consumer group and appends
//! the mapped events to the tenants' logs through [`Hub::append`].
//!
//! The source event is seed 002's `BaseEvent`: `id`, `type`, `source`, `timestamp`,
//! `correlationId`, `tenantId`, `userId`, `version`, `data`. How it sits in a stream
//! entry is the mapping's `[entry]`: one field holding the event as JSON
//! (`format = "json"`, `field = "event"`, the default), or one entry field per
//! `BaseEvent` field with `data` as JSON text (`format = "fields"`).
//!
//! Invariants:
//! - at least once: an entry is acknowledged (`XACK`) only after the events of its
//!   batch are committed; a crash leaves it pending, and on start this consumer
//!   first re-reads its own pending entries, then claims (`XAUTOCLAIM`) entries
//!   other consumers left pending longer than `claim_idle_ms`;
//! - exactly once in the log: the Pulse event's id is the source event's `id`, and
//!   ingest is idempotent by id, so a re-read entry is not stored twice;
//! - the correlation id is kept on the Pulse event's data as `correlation_id`;
//! - an entry that cannot be used (not JSON, no `tenantId`, no `id`, invalid data
//!   for its Pulse type) is copied to `KEY:pulse-dead` with the reason, counted and
//!   acknowledged, so it never blocks the stream; an unmapped type is counted and
//!   acknowledged;
//! - while the store or the source's Redis is down, nothing is acknowledged and
//!   the loop retries with a backoff.
//!
//! - a source event with a non-empty `userId` (seed 002's `emitToUser`) is addressed
//!   to that user ([`NewEvent::user`]): only that user's sessions receive it, and
//!   what it creates is in that user's snapshot only. A rule with
//!   `audience = "tenant"` reads `userId` as the actor and addresses everyone;
//! - an event the store refuses for its audience (a user's event changing a shared
//!   entity, [`crate::store::StoreError::Audience`]) goes to the dead-letter stream
//!   like any unusable entry; the rest of its batch is appended one by one.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::streams::{StreamId, StreamReadReply};
use redis::Value as RValue;
use serde::Deserialize;
use serde_json::Value;

use crate::hub::Hub;
use crate::store::{now_ms, NewEvent};

/// Entries read per batch.
const BATCH: usize = 200;
/// Longest blocking read before the loop looks for abandoned entries again.
const BLOCK: Duration = Duration::from_secs(2);

/// Where the platform's stream is: `redis-stream://HOST:PORT[/DB]/KEY`. `Debug`
/// hides a password.
#[derive(Clone, PartialEq, Eq)]
pub struct SourceUrl {
    /// `redis://HOST:PORT[/DB]`.
    pub redis: String,
    /// The stream key.
    pub key: String,
}

impl std::fmt::Debug for SourceUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceUrl")
            .field("redis", &crate::config::redact_url(&self.redis))
            .field("key", &self.key)
            .finish()
    }
}

impl std::str::FromStr for SourceUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<SourceUrl, String> {
        let bad = || format!("`{s}` is not `redis-stream://HOST:PORT[/DB]/KEY`");
        let rest = s.strip_prefix("redis-stream://").ok_or_else(bad)?;
        let (addr, path) = rest.split_once('/').ok_or_else(bad)?;
        let (db, key) = match path.split_once('/') {
            Some((db, key)) if db.parse::<u32>().is_ok() => (Some(db), key),
            _ => (None, path),
        };
        if key.is_empty() || addr.is_empty() {
            return Err(bad());
        }
        let redis = match db {
            Some(db) => format!("redis://{addr}/{db}"),
            None => format!("redis://{addr}"),
        };
        redis::parse_redis_url(&redis)
            .filter(|u| u.host_str().is_some_and(|h| !h.is_empty()))
            .ok_or_else(bad)?;
        Ok(SourceUrl {
            redis,
            key: key.to_owned(),
        })
    }
}

/// The `[entry]` table: how a `BaseEvent` sits in a stream entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryFormat {
    /// `json` (one field holds the event) or `fields` (one field per event field).
    #[serde(default = "default_format")]
    pub format: String,
    /// For `json`: the field that holds it.
    #[serde(default = "default_field")]
    pub field: String,
}

fn default_format() -> String {
    "json".into()
}

fn default_field() -> String {
    "event".into()
}

impl Default for EntryFormat {
    fn default() -> Self {
        EntryFormat {
            format: default_format(),
            field: default_field(),
        }
    }
}

/// The `[source]` table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    /// Consumer group name.
    #[serde(default = "default_group")]
    pub group: String,
    /// Entries pending this long on another consumer are claimed.
    #[serde(default = "default_claim_idle")]
    pub claim_idle_ms: u64,
}

fn default_group() -> String {
    "pulse-gateway".into()
}

fn default_claim_idle() -> u64 {
    30_000
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            group: default_group(),
            claim_idle_ms: default_claim_idle(),
        }
    }
}

/// One `[[event]]`: which source types become which Pulse event.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventRule {
    /// Source `type`: exact, or a prefix ending in `*` (`approval.*`).
    pub source: String,
    /// Pulse event type (default: the source type).
    #[serde(rename = "type")]
    pub pulse_type: Option<String>,
    /// Pulse `data` fields from dotted paths into the `BaseEvent`
    /// (`id = "data.approvalId"`); without it, `data` is the source's `data`.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// Who receives the events of this rule: `user` (the default) addresses an
    /// event with a `userId` to that user only; `tenant` addresses every event to
    /// everyone of its tenant (`userId` is then only who caused it).
    #[serde(default = "default_audience")]
    pub audience: String,
}

fn default_audience() -> String {
    "user".into()
}

/// A mapping file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// How entries are laid out.
    #[serde(default)]
    pub entry: EntryFormat,
    /// The consumer group.
    #[serde(default)]
    pub source: GroupConfig,
    /// Rules, first match wins.
    #[serde(default, rename = "event")]
    pub events: Vec<EventRule>,
}

impl Mapping {
    /// Parse and check a mapping (TOML).
    pub fn parse(text: &str) -> Result<Mapping, String> {
        let m: Mapping = toml::from_str(text).map_err(|e| format!("mapping: {e}"))?;
        if m.entry.format != "json" && m.entry.format != "fields" {
            return Err(format!(
                "mapping: [entry] format must be \"json\" or \"fields\", not {:?}",
                m.entry.format
            ));
        }
        if m.events.is_empty() {
            return Err("mapping: no [[event]] rule: nothing would be read".into());
        }
        for (i, r) in m.events.iter().enumerate() {
            let ty = r.pulse_type.as_deref().unwrap_or(&r.source);
            if ty.parse::<pulse_protocol::domain::EventType>().is_err() {
                return Err(format!(
                    "mapping: event rule {i} (`{}`): `{ty}` is not a Pulse event type",
                    r.source
                ));
            }
            if r.audience != "user" && r.audience != "tenant" {
                return Err(format!(
                    "mapping: event rule {i} (`{}`): `audience` must be \"user\" or \"tenant\", not {:?}",
                    r.source, r.audience
                ));
            }
            if r.source.is_empty() || r.source[..r.source.len() - 1].contains('*') {
                return Err(format!(
                    "mapping: event rule {i}: `source` is a type or a prefix ending in `*`"
                ));
            }
        }
        Ok(m)
    }

    /// Read and parse a mapping file.
    pub fn load(path: &Path) -> Result<Mapping, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the mapping {}: {e}", path.display()))?;
        Mapping::parse(&text)
    }

    fn rule(&self, source_type: &str) -> Option<&EventRule> {
        self.events
            .iter()
            .find(|r| match r.source.strip_suffix('*') {
                Some(prefix) => source_type.starts_with(prefix),
                None => r.source == source_type,
            })
    }

    /// The `BaseEvent` of an entry's fields.
    pub fn base_event(&self, fields: &HashMap<String, RValue>) -> Result<Value, String> {
        let text = |v: &RValue| -> Result<String, String> {
            redis::from_redis_value_ref::<String>(v).map_err(|e| e.to_string())
        };
        if self.entry.format == "json" {
            let v = fields
                .get(&self.entry.field)
                .ok_or_else(|| format!("no field `{}` in the entry", self.entry.field))?;
            let ev: Value = serde_json::from_str(&text(v)?)
                .map_err(|e| format!("field `{}` is not JSON: {e}", self.entry.field))?;
            if !ev.is_object() {
                return Err("the event is not a JSON object".into());
            }
            Ok(ev)
        } else {
            let mut ev = serde_json::Map::new();
            for (k, v) in fields {
                let t = text(v)?;
                let value = if k == "data" {
                    serde_json::from_str(&t)
                        .map_err(|e| format!("field `data` is not JSON: {e}"))?
                } else {
                    Value::String(t)
                };
                ev.insert(k.clone(), value);
            }
            Ok(Value::Object(ev))
        }
    }

    /// Map one `BaseEvent`: `Ok(None)` when no rule matches its type, else its
    /// tenant and the Pulse event.
    pub fn map(&self, ev: &Value) -> Result<Option<(String, NewEvent)>, String> {
        let field = |name: &str| {
            ev.get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let ty = field("type").ok_or("no `type`")?;
        let Some(rule) = self.rule(ty) else {
            return Ok(None);
        };
        let id = field("id").ok_or("no `id`")?;
        let tenant = field("tenantId").ok_or("no `tenantId`")?;
        let mut data = if rule.fields.is_empty() {
            ev.get("data")
                .cloned()
                .unwrap_or(Value::Object(Default::default()))
        } else {
            let mut out = serde_json::Map::new();
            for (to, from) in &rule.fields {
                if let Some(v) = path(ev, from) {
                    out.insert(to.clone(), v.clone());
                }
            }
            Value::Object(out)
        };
        if let (Some(obj), Some(c)) = (data.as_object_mut(), field("correlationId")) {
            obj.entry("correlation_id")
                .or_insert_with(|| Value::String(c.to_owned()));
        }
        let pulse_type = rule.pulse_type.as_deref().unwrap_or(ty);
        let user = (rule.audience == "user")
            .then(|| field("userId").map(str::to_owned))
            .flatten();
        let event = NewEvent::new(pulse_type, data, Some(id.to_owned()), now_ms())
            .map_err(|e| e.to_string())?
            .for_user(user);
        Ok(Some((tenant.to_owned(), event)))
    }
}

fn is_audience(e: &crate::hub::HubError) -> bool {
    matches!(e.store_error(), Some(crate::store::StoreError::Audience(_)))
}

fn path<'a>(v: &'a Value, dotted: &str) -> Option<&'a Value> {
    dotted.split('.').try_fold(v, |v, k| v.get(k))
}

/// Counters of a running source (also on `/metrics`).
#[derive(Debug, Default)]
pub struct SourceStats {
    /// Entries whose events were committed and acknowledged.
    pub acked: AtomicU64,
    /// Entries acknowledged without an event: no rule for their type.
    pub unmapped: AtomicU64,
    /// Entries sent to the dead-letter stream.
    pub dead: AtomicU64,
    /// Failed rounds (Redis or the store down).
    pub errors: AtomicU64,
}

/// Start the source's thread; it ends when `stop` turns true.
pub fn start(
    url: SourceUrl,
    mapping: Mapping,
    consumer: String,
    hub: Arc<Hub>,
    stats: Arc<SourceStats>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    let rt = tokio::runtime::Handle::current();
    std::thread::Builder::new()
        .name("pulse-source".into())
        .spawn(move || {
            let mut src = Source {
                url,
                mapping,
                consumer,
                hub,
                stats,
                rt,
                conn: None,
            };
            src.run(stop)
        })
        .map(drop)
}

struct Source {
    url: SourceUrl,
    mapping: Mapping,
    consumer: String,
    hub: Arc<Hub>,
    stats: Arc<SourceStats>,
    rt: tokio::runtime::Handle,
    conn: Option<redis::Connection>,
}

impl Source {
    fn run(&mut self, stop: tokio::sync::watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(100);
        let mut failing = false;
        while !*stop.borrow() {
            match self.round() {
                Ok(()) => {
                    if failing {
                        tracing::info!(key = %self.url.key, "source resumed");
                        failing = false;
                    }
                    backoff = Duration::from_millis(100);
                }
                Err(e) => {
                    self.conn = None;
                    self.stats.errors.fetch_add(1, Ordering::Relaxed);
                    if !failing {
                        tracing::warn!(key = %self.url.key, error = %e, "source round failed; retrying");
                        failing = true;
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    fn conn(&mut self) -> Result<&mut redis::Connection, String> {
        if self.conn.is_none() {
            let mut c = redis::Client::open(self.url.redis.as_str())
                .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(3)))
                .map_err(|e| e.to_string())?;
            c.set_read_timeout(Some(BLOCK + Duration::from_secs(3)))
                .map_err(|e| e.to_string())?;
            let created: redis::RedisResult<()> = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(&self.url.key)
                .arg(&self.mapping.source.group)
                .arg("0")
                .arg("MKSTREAM")
                .query(&mut c);
            if let Err(e) = created {
                if e.code() != Some("BUSYGROUP") {
                    return Err(format!("cannot create the consumer group: {e}"));
                }
            }
            self.conn = Some(c);
        }
        self.conn.as_mut().ok_or_else(|| "no connection".into())
    }

    /// Own pending entries, then abandoned ones, then new ones (blocking).
    fn round(&mut self) -> Result<(), String> {
        loop {
            let own = self.read_group("0", None)?;
            if own.is_empty() {
                break;
            }
            self.handle(own)?;
        }
        loop {
            let claimed = self.autoclaim()?;
            if claimed.is_empty() {
                break;
            }
            self.handle(claimed)?;
        }
        let fresh = self.read_group(">", Some(BLOCK))?;
        if !fresh.is_empty() {
            self.handle(fresh)?;
        }
        Ok(())
    }

    fn read_group(&mut self, id: &str, block: Option<Duration>) -> Result<Vec<StreamId>, String> {
        let (group, consumer, key) = (
            self.mapping.source.group.clone(),
            self.consumer.clone(),
            self.url.key.clone(),
        );
        let conn = self.conn()?;
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(group)
            .arg(consumer)
            .arg("COUNT")
            .arg(BATCH);
        if let Some(b) = block {
            cmd.arg("BLOCK").arg(b.as_millis() as u64);
        }
        cmd.arg("STREAMS").arg(key).arg(id);
        let reply: Option<StreamReadReply> = cmd.query(conn).map_err(|e| e.to_string())?;
        Ok(reply
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| k.ids)
            // A pending entry deleted from the stream comes back without fields.
            .collect())
    }

    fn autoclaim(&mut self) -> Result<Vec<StreamId>, String> {
        let (group, consumer, key, idle) = (
            self.mapping.source.group.clone(),
            self.consumer.clone(),
            self.url.key.clone(),
            self.mapping.source.claim_idle_ms,
        );
        let conn = self.conn()?;
        let reply: RValue = redis::cmd("XAUTOCLAIM")
            .arg(key)
            .arg(group)
            .arg(consumer)
            .arg(idle)
            .arg("0-0")
            .arg("COUNT")
            .arg(BATCH)
            .query(conn)
            .map_err(|e| e.to_string())?;
        // [next cursor, [[id, [k, v, ...]], ...], [deleted ids]]
        let RValue::Array(parts) = reply else {
            return Err("XAUTOCLAIM answered no array".into());
        };
        let Some(entries) = parts.get(1) else {
            return Ok(Vec::new());
        };
        let range: redis::streams::StreamRangeReply =
            redis::from_redis_value_ref(entries).map_err(|e| e.to_string())?;
        Ok(range.ids)
    }

    /// Commit the batch's events, then acknowledge every entry of it.
    fn handle(&mut self, entries: Vec<StreamId>) -> Result<(), String> {
        let mut by_tenant: BTreeMap<String, Vec<(&StreamId, NewEvent)>> = BTreeMap::new();
        let mut dead: Vec<(&StreamId, String)> = Vec::new();
        let mut unmapped = 0u64;
        for e in &entries {
            if e.map.is_empty() {
                continue; // deleted from the stream meanwhile: just acknowledge
            }
            match self
                .mapping
                .base_event(&e.map)
                .and_then(|ev| self.mapping.map(&ev))
            {
                Ok(Some((tenant, ev))) => by_tenant.entry(tenant).or_default().push((e, ev)),
                Ok(None) => unmapped += 1,
                Err(reason) => dead.push((e, reason)),
            }
        }
        for (tenant, items) in by_tenant {
            let hub = self.hub.clone();
            let (ids, events): (Vec<&StreamId>, Vec<NewEvent>) = items.into_iter().unzip();
            let whole = events.clone();
            let t = tenant.clone();
            match self.rt.block_on(async move { hub.append(&t, whole).await }) {
                Ok(_) => {}
                Err(e) if is_audience(&e) => {
                    // One event's audience is refused: find it, keep the others.
                    for (id, ev) in ids.into_iter().zip(events) {
                        let hub = self.hub.clone();
                        let t = tenant.clone();
                        match self
                            .rt
                            .block_on(async move { hub.append(&t, vec![ev]).await })
                        {
                            Ok(_) => {}
                            Err(e) if is_audience(&e) => dead.push((id, e.to_string())),
                            Err(e) => return Err(format!("append: {e}")),
                        }
                    }
                }
                Err(e) => return Err(format!("append: {e}")),
            }
        }
        let key = self.url.key.clone();
        let group = self.mapping.source.group.clone();
        let dead_key = format!("{key}:pulse-dead");
        let conn = self.conn()?;
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (e, reason) in &dead {
            tracing::warn!(key = %key, entry = %e.id, %reason, "source entry refused; sent to the dead-letter stream");
            // One dead-letter entry: where it was, why, and its fields as `f:NAME`.
            pipe.cmd("XADD")
                .arg(&dead_key)
                .arg("*")
                .arg("entry")
                .arg(&e.id)
                .arg("reason")
                .arg(reason);
            for (k, v) in &e.map {
                let text = redis::from_redis_value_ref::<Vec<u8>>(v).unwrap_or_default();
                pipe.arg(format!("f:{k}")).arg(text);
            }
            pipe.ignore();
        }
        pipe.cmd("XACK").arg(&key).arg(&group);
        for e in &entries {
            pipe.arg(&e.id);
        }
        pipe.ignore();
        pipe.query::<()>(conn).map_err(|e| e.to_string())?;
        let mapped = entries.len() as u64 - unmapped - dead.len() as u64;
        self.stats.acked.fetch_add(mapped, Ordering::Relaxed);
        self.stats.unmapped.fetch_add(unmapped, Ordering::Relaxed);
        self.stats
            .dead
            .fetch_add(dead.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MAPPING: &str = r#"
[entry]
format = "json"
field = "event"

[[event]]
source = "approval.requested"
type = "approval.created"
[event.fields]
id = "data.approvalId"
title = "data.title"

[[event]]
source = "agent.*"
type = "agent.upserted"
"#;

    #[test]
    fn maps_base_events() {
        let m = Mapping::parse(MAPPING).unwrap();
        let ev = json!({"id": "e1", "type": "approval.requested", "source": "api", "timestamp": "2025-01-01T00:00:00Z",
            "correlationId": "c-9", "tenantId": "acme", "userId": "u1", "version": "1",
            "data": {"approvalId": "a1", "title": "Deploy", "extra": 1}});
        let (tenant, e) = m.map(&ev).unwrap().unwrap();
        assert_eq!(
            (tenant.as_str(), e.id.as_str(), e.event_type.as_str()),
            ("acme", "e1", "approval.created")
        );
        assert_eq!(
            e.data,
            json!({"id": "a1", "title": "Deploy", "correlation_id": "c-9"})
        );
        let agent = json!({"id": "e2", "type": "agent.status.changed", "tenantId": "acme", "data": {"id": "ag1", "status": "busy"}});
        let (_, e) = m.map(&agent).unwrap().unwrap();
        assert_eq!(e.data, json!({"id": "ag1", "status": "busy"}));
        assert!(m
            .map(&json!({"id": "e3", "type": "billing.paid", "tenantId": "acme"}))
            .unwrap()
            .is_none());
        for bad in [
            json!({"type": "agent.x", "tenantId": "acme", "data": {"id": "a"}}),
            json!({"id": "e", "type": "agent.x", "data": {"id": "a"}}),
            json!({"id": "e", "type": "agent.x", "tenantId": "acme", "data": {"name": "no id"}}),
            json!({"id": "e", "tenantId": "acme"}),
        ] {
            assert!(m.map(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn both_entry_layouts() {
        let m = Mapping::parse(MAPPING).unwrap();
        let one: HashMap<String, RValue> = [(
            "event".to_owned(),
            RValue::BulkString(
                br#"{"id":"e1","type":"agent.up","tenantId":"t","data":{"id":"a"}}"#.to_vec(),
            ),
        )]
        .into();
        assert_eq!(m.base_event(&one).unwrap()["tenantId"], "t");
        let garbage: HashMap<String, RValue> = [(
            "event".to_owned(),
            RValue::BulkString(b"{not json".to_vec()),
        )]
        .into();
        assert!(m.base_event(&garbage).unwrap_err().contains("not JSON"));
        let flat =
            Mapping::parse(&MAPPING.replace("format = \"json\"", "format = \"fields\"")).unwrap();
        let fields: HashMap<String, RValue> = [
            ("id", "e1"),
            ("type", "agent.up"),
            ("tenantId", "t"),
            ("data", r#"{"id":"a"}"#),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), RValue::BulkString(v.as_bytes().to_vec())))
        .collect();
        let ev = flat.base_event(&fields).unwrap();
        assert_eq!(ev["data"], json!({"id": "a"}));
        assert!(flat.map(&ev).unwrap().is_some());
    }

    #[test]
    fn bad_mappings_and_urls_are_refused() {
        for bad in [
            "",
            "[[event]]\nsource = \"a\"\ntype = \"no.such\"",
            "[entry]\nformat = \"xml\"\n[[event]]\nsource = \"agent.upserted\"",
            "[[event]]\nsource = \"a*b*\"\ntype = \"agent.upserted\"",
            "[[event]]\nsourse = \"a\"",
            "not toml at all [",
        ] {
            assert!(Mapping::parse(bad).is_err(), "{bad}");
        }
        let u: SourceUrl = "redis-stream://10.0.0.1:6379/events:main".parse().unwrap();
        assert_eq!(
            (u.redis.as_str(), u.key.as_str()),
            ("redis://10.0.0.1:6379", "events:main")
        );
        let u: SourceUrl = "redis-stream://h:1/3/k".parse().unwrap();
        assert_eq!((u.redis.as_str(), u.key.as_str()), ("redis://h:1/3", "k"));
        for bad in [
            "redis://h:1/k",
            "redis-stream://h:1",
            "redis-stream://h:1/",
            "redis-stream:///k",
        ] {
            assert!(bad.parse::<SourceUrl>().is_err(), "{bad}");
        }
    }
}
