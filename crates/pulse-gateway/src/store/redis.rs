//! Redis [`LogStore`]: shared by every gateway node of a cluster.
//!
//! Keys, per tenant `T` (the `{T}` hash tag keeps a tenant on one cluster slot):
//! - `PREFIX:{T}:meta` — hash `epoch`, `head` (highest seq), `first` (lowest seq
//!   still in the log; `head + 1` when it holds nothing);
//! - `PREFIX:{T}:log` — the tenant's Redis Stream, one entry per event with entry ID
//!   `SEQ-0` and fields `id`, `ts`, `f` (the event frame as JSON);
//! - `PREFIX:{T}:ent` — hash `KIND/ID` → entity JSON (the materialised state);
//! - `PREFIX:{T}:ids` — hash event id → seq, for every event still in the log (the
//!   idempotency window is the retention window);
//! - `PREFIX:streams` — set of tenant names; `PREFIX:node:N:wake` — wakes node `N`'s
//!   tail (see [`RedisStore::tail`]).
//!
//! Invariants:
//! - one Lua script ([`APPEND`], sent with EVALSHA, EVAL when Redis does not know it)
//!   does a whole append: it checks that `head` is still the one the batch was
//!   prepared against and that none of its ids is in the log, then adds the events
//!   with seqs `head + 1 ..`, writes the entity states, records the ids, moves `head`
//!   and applies the retention (count and age), all in one atomic step. When the
//!   check fails (another node appended meanwhile) the batch is prepared again from
//!   the new state, so two nodes never assign one seq twice or skip one;
//! - the entity changes are computed in Rust with [`pulse_protocol::Change::apply_to`]
//!   (their one home) from the state read at the same `head`; the script only
//!   writes them;
//! - every read of position + data (`read`, `snapshot`) is one `MULTI`, so a
//!   snapshot's entities reflect exactly the events up to its seq;
//! - seqs are Lua numbers (doubles) inside the script: exact up to 2^53 and printed
//!   without an exponent below 10^14, far beyond any log;
//! - a connection failure or timeout is [`StoreError::Unavailable`]: the caller
//!   answers "try again", nothing was half-written (the script is atomic).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use pulse_protocol::domain::{EntityKind, Object};
use pulse_protocol::frame::EventFrame;
use pulse_protocol::rest::Snapshot;
use redis::streams::{StreamRangeReply, StreamReadReply};
use redis::{Connection, RedisError, Value};

use super::{
    corrupt, new_epoch, now_ms, snapshot_of, stamped, stored_entity, Appended, AudiencePlan,
    EventRange, LogStore, NewEvent, RefreshSession, Rotation, StoreError, StreamInfo,
};

/// Default key prefix.
pub const DEFAULT_PREFIX: &str = "pulse";
/// Attempts of an append whose state moved under it before it gives up.
const MAX_ATTEMPTS: usize = 200;
/// Time to connect, and to wait for any answer but a blocking read.
const IO_TIMEOUT: Duration = Duration::from_secs(3);
/// Events returned per tenant by one blocking read of the tail.
const TAIL_COUNT: usize = 1000;

/// Delete an idempotency claim only when it is still ARGV[1]'s (a claim that
/// expired and was taken by another request is left alone).
pub const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

/// Rotate a refresh-token family (`KEYS[1]`, a hash with `current`), the rule of
/// `store::rotation_of` in one atomic step: `ARGV[1]` the presented token id,
/// `ARGV[2]` the next one, `ARGV[3]` the new expiry, `ARGV[4]` now (Unix seconds).
/// Answers `rotated`, `reused` (the family is deleted) or `unknown`. The key also
/// has an `EXPIREAT`, so Redis drops families nobody uses.
pub const ROTATE: &str = r#"
local cur = redis.call('HGET', KEYS[1], 'current')
if not cur then return 'unknown' end
local exp = tonumber(redis.call('HGET', KEYS[1], 'expires') or '0') or 0
if exp <= tonumber(ARGV[4]) then
  redis.call('DEL', KEYS[1])
  return 'unknown'
end
if cur ~= ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 'reused'
end
redis.call('HSET', KEYS[1], 'current', ARGV[2], 'expires', ARGV[3])
redis.call('EXPIREAT', KEYS[1], ARGV[3])
return 'rotated'
"#;

/// The append script. KEYS: meta, log, ent, ids. ARGV: expected head, retain,
/// min ts (-1: no age limit), n, n × (id, ts, frame), m, m × (field, json or "" to
/// delete). Answers `{"ok", first}`, `{"conflict"}` or `{"missing"}`.
pub const APPEND: &str = r#"
local head = tonumber(redis.call('HGET', KEYS[1], 'head'))
if head == nil then return {'missing'} end
if head ~= tonumber(ARGV[1]) then return {'conflict'} end
local n = tonumber(ARGV[4])
local i = 5
for k = 1, n do
  if redis.call('HEXISTS', KEYS[4], ARGV[i]) == 1 then return {'conflict'} end
  i = i + 3
end
i = 5
for k = 1, n do
  head = head + 1
  redis.call('XADD', KEYS[2], string.format('%d-0', head), 'id', ARGV[i], 'ts', ARGV[i + 1], 'f', ARGV[i + 2])
  redis.call('HSET', KEYS[4], ARGV[i], head)
  i = i + 3
end
local m = tonumber(ARGV[i])
i = i + 1
for k = 1, m do
  if ARGV[i + 1] == '' then
    redis.call('HDEL', KEYS[3], ARGV[i])
  else
    redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
  end
  i = i + 2
end
local first = tonumber(redis.call('HGET', KEYS[1], 'first'))
local keep = math.max(first, head - tonumber(ARGV[2]) + 1)
local min_ts = tonumber(ARGV[3])
local start = '-'
-- Nothing to scan when no event falls out by count and there is no age limit.
local done = first >= keep and min_ts < 0
while not done do
  local batch = redis.call('XRANGE', KEYS[2], start, '+', 'COUNT', 256)
  if #batch == 0 then break end
  for _, e in ipairs(batch) do
    local seq = tonumber(string.match(e[1], '^(%d+)'))
    local f = e[2]
    local ts = tonumber(f[4])
    if seq < keep or (min_ts >= 0 and ts < min_ts) then
      redis.call('HDEL', KEYS[4], f[2])
      first = seq + 1
    else
      done = true
      break
    end
    start = string.format('%d-1', seq)
  end
end
if first > head then first = head + 1 end
redis.call('XTRIM', KEYS[2], 'MINID', string.format('%d-0', first))
redis.call('HSET', KEYS[1], 'head', string.format('%d', head), 'first', string.format('%d', first))
return {'ok', string.format('%d', first)}
"#;

/// What an append reads before it runs the script: the seqs of its ids already
/// stored, and the current JSON of the entities its changes touch.
type Prepared = (Vec<Option<u64>>, Vec<Option<String>>);

/// The Redis backend.
pub struct RedisStore {
    client: redis::Client,
    prefix: String,
    retain: u64,
    retain_age: Option<Duration>,
    node: String,
    pool: Mutex<Vec<Connection>>,
    tail: Mutex<TailConn>,
    append: redis::Script,
    rotate: redis::Script,
    release: redis::Script,
}

#[derive(Default)]
struct TailConn {
    conn: Option<Connection>,
    /// Last wake entry seen.
    wake_seen: String,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("node", &self.node)
            .field("retain", &self.retain)
            .finish_non_exhaustive()
    }
}

fn corrupt_answer(answer: &str) -> StoreError {
    StoreError::Corrupt(format!("unexpected answer `{answer}` of the rotate script"))
}

fn err(e: RedisError) -> StoreError {
    if e.is_io_error() || e.is_timeout() || e.is_connection_refusal() || e.is_connection_dropped() {
        StoreError::Unavailable(e.to_string())
    } else {
        StoreError::Redis(e.to_string())
    }
}

fn field(kind: EntityKind, id: &str) -> String {
    format!("{}/{id}", kind.as_str())
}

fn parse_u64(v: Option<&String>, what: &str) -> Result<u64, StoreError> {
    v.ok_or_else(|| corrupt(format!("{what} missing")))?
        .parse()
        .map_err(|_| corrupt(format!("{what} is not a number")))
}

fn parse_meta(tenant: &str, meta: &[Option<String>]) -> Result<Option<StreamInfo>, StoreError> {
    let [epoch, head, first] = meta else {
        return Err(corrupt("meta reply of the wrong length"));
    };
    let Some(epoch) = epoch else { return Ok(None) };
    Ok(Some(StreamInfo {
        stream: tenant.to_owned(),
        epoch: epoch.clone(),
        head: parse_u64(head.as_ref(), "head")?,
        first: parse_u64(first.as_ref(), "first")?,
    }))
}

fn frame_of(map: &HashMap<String, Value>) -> Result<EventFrame, StoreError> {
    let f = map
        .get("f")
        .ok_or_else(|| corrupt("log entry without frame"))?;
    let text: String = redis::from_redis_value_ref(f).map_err(corrupt)?;
    serde_json::from_str(&text).map_err(corrupt)
}

impl RedisStore {
    /// Connect to `url` (`redis://HOST:PORT[/DB]`) with the default key prefix. The
    /// log keeps the newest `retain` events per tenant (at least 1), and when
    /// `retain_age` is set none older than that (trimmed on each append). `node`
    /// names this gateway node (for its tail's wake key).
    pub fn open(
        url: &str,
        retain: u64,
        retain_age: Option<Duration>,
        node: &str,
    ) -> Result<RedisStore, StoreError> {
        RedisStore::open_prefixed(url, DEFAULT_PREFIX, retain, retain_age, node)
    }

    /// [`RedisStore::open`] with its keys under `prefix` (tests share one server).
    pub fn open_prefixed(
        url: &str,
        prefix: &str,
        retain: u64,
        retain_age: Option<Duration>,
        node: &str,
    ) -> Result<RedisStore, StoreError> {
        let client = redis::Client::open(url).map_err(err)?;
        let store = RedisStore {
            client,
            prefix: prefix.to_owned(),
            retain: retain.max(1),
            retain_age,
            node: node.to_owned(),
            pool: Mutex::new(Vec::new()),
            tail: Mutex::new(TailConn {
                conn: None,
                wake_seen: "0-0".into(),
            }),
            append: redis::Script::new(APPEND),
            rotate: redis::Script::new(ROTATE),
            release: redis::Script::new(RELEASE),
        };
        // Fail at start when Redis is not there.
        store.with_conn(|c| redis::cmd("PING").query::<String>(c))?;
        Ok(store)
    }

    fn key(&self, tenant: &str, part: &str) -> String {
        format!("{}:{{{tenant}}}:{part}", self.prefix)
    }

    /// The hash of an idempotency answer (in the tenant's hash slot).
    fn idempotency_key(&self, tenant: &str, key: &str) -> String {
        self.key(tenant, &format!("idem:{key}"))
    }

    /// The claim of an idempotency key being served (in the tenant's hash slot).
    fn idempotency_claim_key(&self, tenant: &str, key: &str) -> String {
        self.key(tenant, &format!("idem-claim:{key}"))
    }

    /// The hash of a refresh-token family.
    fn session_key(&self, family: &str) -> String {
        format!("{}:session:{family}", self.prefix)
    }

    /// The set of a user's session families (for [`LogStore::session_revoke_user`];
    /// the tenant's length first, so a `:` in a name cannot make two users one).
    fn user_sessions_key(&self, tenant: &str, sub: &str) -> String {
        format!(
            "{}:user-sessions:{}:{tenant}:{sub}",
            self.prefix,
            tenant.len()
        )
    }

    fn wake_key(&self) -> String {
        format!("{}:node:{}:wake", self.prefix, self.node)
    }

    fn connect(&self, read_timeout: Duration) -> Result<Connection, StoreError> {
        let c = self
            .client
            .get_connection_with_timeout(IO_TIMEOUT)
            .map_err(err)?;
        c.set_read_timeout(Some(read_timeout)).map_err(err)?;
        c.set_write_timeout(Some(IO_TIMEOUT)).map_err(err)?;
        Ok(c)
    }

    /// Run `f` on a pooled connection. A connection that failed is dropped; when a
    /// pooled one fails that way (Redis restarted), the pool is emptied and `f` runs
    /// once more on a new connection. Callers make `f` safe to repeat: the append
    /// script refuses a batch whose first run went through (`conflict`), and the
    /// retry then finds its ids.
    fn with_conn<T>(
        &self,
        mut f: impl FnMut(&mut Connection) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        let pooled = self.pool.lock().map_err(|_| StoreError::Poisoned)?.pop();
        let fresh = pooled.is_none();
        let mut conn = match pooled {
            Some(c) => c,
            None => self.connect(IO_TIMEOUT)?,
        };
        match f(&mut conn) {
            Ok(v) => {
                self.pool
                    .lock()
                    .map_err(|_| StoreError::Poisoned)?
                    .push(conn);
                Ok(v)
            }
            Err(e) => {
                let e = err(e);
                if !matches!(e, StoreError::Unavailable(_)) {
                    self.pool
                        .lock()
                        .map_err(|_| StoreError::Poisoned)?
                        .push(conn);
                    return Err(e);
                }
                if fresh {
                    return Err(e);
                }
                self.pool.lock().map_err(|_| StoreError::Poisoned)?.clear();
                let mut conn = self.connect(IO_TIMEOUT)?;
                let v = f(&mut conn).map_err(err)?;
                self.pool
                    .lock()
                    .map_err(|_| StoreError::Poisoned)?
                    .push(conn);
                Ok(v)
            }
        }
    }

    /// Create `tenant`'s stream if it does not exist.
    fn ensure(&self, tenant: &str) -> Result<(), StoreError> {
        let meta = self.key(tenant, "meta");
        let streams = format!("{}:streams", self.prefix);
        self.with_conn(|c| {
            redis::pipe()
                .atomic()
                .cmd("HSETNX")
                .arg(&meta)
                .arg("epoch")
                .arg(new_epoch())
                .cmd("HSETNX")
                .arg(&meta)
                .arg("head")
                .arg(0)
                .cmd("HSETNX")
                .arg(&meta)
                .arg("first")
                .arg(1)
                .cmd("SADD")
                .arg(&streams)
                .arg(tenant)
                .query::<()>(c)
        })
    }

    /// Run the read `pipe` (whose first command is the meta `HMGET`) atomically,
    /// creating the stream first when it does not exist.
    fn read_with<T: redis::FromRedisValue>(
        &self,
        tenant: &str,
        extra: impl Fn(&mut redis::Pipeline),
    ) -> Result<(StreamInfo, T), StoreError> {
        let meta = self.key(tenant, "meta");
        for _ in 0..2 {
            let mut pipe = redis::pipe();
            pipe.atomic()
                .cmd("HMGET")
                .arg(&meta)
                .arg("epoch")
                .arg("head")
                .arg("first");
            extra(&mut pipe);
            let mut replies: Vec<Value> = self.with_conn(|c| pipe.query(c))?;
            if replies.is_empty() {
                return Err(corrupt("empty MULTI reply"));
            }
            let rest = replies.split_off(1);
            let m: Vec<Option<String>> =
                redis::from_redis_value(replies.remove(0)).map_err(corrupt)?;
            if let Some(info) = parse_meta(tenant, &m)? {
                // One extra command: its reply; several: the tuple of theirs.
                let rest = match <[Value; 1]>::try_from(rest) {
                    Ok([one]) => one,
                    Err(many) => Value::Array(many),
                };
                return Ok((info, redis::from_redis_value(rest).map_err(corrupt)?));
            }
            self.ensure(tenant)?;
        }
        Err(corrupt(format!(
            "stream `{tenant}` vanished after creation"
        )))
    }

    /// One attempt at appending `events`: `None` when the state moved meanwhile.
    fn try_append(
        &self,
        tenant: &str,
        events: &[NewEvent],
    ) -> Result<Option<Appended>, StoreError> {
        let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
        let mut fields: Vec<String> = events
            .iter()
            .flat_map(|e| &e.changes)
            .map(|c| field(c.kind(), c.id()))
            .collect();
        fields.sort();
        fields.dedup();
        let (ids_key, ent_key) = (self.key(tenant, "ids"), self.key(tenant, "ent"));
        let (info, (known, current)): (StreamInfo, Prepared) = self.read_with(tenant, |p| {
            p.cmd("HMGET").arg(&ids_key).arg(&ids);
            if fields.is_empty() {
                // HMGET needs a field: ask for one that never exists.
                p.cmd("HMGET").arg(&ent_key).arg("");
            } else {
                p.cmd("HMGET").arg(&ent_key).arg(&fields);
            }
        })?;
        let mut state: HashMap<String, Option<Object>> = HashMap::new();
        for (f, v) in fields.iter().zip(&current) {
            let obj = v
                .as_deref()
                .map(serde_json::from_str::<Object>)
                .transpose()
                .map_err(corrupt)?;
            state.insert(f.clone(), obj);
        }
        let mut seen: HashMap<&str, u64> = HashMap::new();
        let mut head = info.head;
        let mut frames = Vec::new();
        let mut seqs = Vec::with_capacity(events.len());
        let mut touched: Vec<String> = Vec::new();
        let mut plan = AudiencePlan::default();
        for (e, stored) in events.iter().zip(&known) {
            if let Some(seq) = stored.or_else(|| seen.get(e.id.as_str()).copied()) {
                seqs.push(seq);
                continue;
            }
            let audience = plan.event(e, |kind, id| {
                state
                    .get(&field(kind, id))
                    .cloned()
                    .ok_or_else(|| corrupt("unread entity"))
            })?;
            head += 1;
            seen.insert(&e.id, head);
            seqs.push(head);
            for change in &e.changes {
                let f = field(change.kind(), change.id());
                let cur = state.get_mut(&f).ok_or_else(|| corrupt("unread entity"))?;
                *cur = stamped(change.apply_to(cur.take()), audience.as_deref());
                touched.push(f);
            }
            frames.push(EventFrame {
                seq: head,
                id: e.id.clone(),
                stream: tenant.to_owned(),
                event_type: e.event_type.clone(),
                ts: e.ts,
                data: e.data.clone(),
                user: audience,
            });
        }
        if frames.is_empty() {
            return Ok(Some(Appended { frames, seqs }));
        }
        touched.sort();
        touched.dedup();
        let min_ts = self
            .retain_age
            .map_or(-1, |age| now_ms() - age.as_millis() as i64);
        let mut inv = self.append.prepare_invoke();
        inv.key(self.key(tenant, "meta"))
            .key(self.key(tenant, "log"))
            .key(&ent_key)
            .key(&ids_key)
            .arg(info.head)
            .arg(self.retain)
            .arg(min_ts)
            .arg(frames.len());
        for f in &frames {
            inv.arg(&f.id)
                .arg(f.ts)
                .arg(serde_json::to_string(f).map_err(corrupt)?);
        }
        inv.arg(touched.len());
        for f in &touched {
            let text = match &state[f] {
                Some(obj) => serde_json::to_string(obj).map_err(corrupt)?,
                None => String::new(),
            };
            inv.arg(f).arg(text);
        }
        let reply: Vec<String> = self.with_conn(|c| inv.invoke(c))?;
        match reply.first().map(String::as_str) {
            Some("ok") => Ok(Some(Appended { frames, seqs })),
            Some("conflict") | Some("missing") => Ok(None),
            _ => Err(corrupt(format!("append script answered {reply:?}"))),
        }
    }

    /// Block up to `timeout` for events after each `(tenant, seq)` cursor, or until
    /// [`RedisStore::wake_tail`] is called. Events come per tenant in seq order.
    /// Uses its own connection (a blocking read holds it).
    pub fn tail(
        &self,
        cursors: &[(String, u64)],
        timeout: Duration,
    ) -> Result<Vec<EventFrame>, StoreError> {
        let mut tail = self.tail.lock().map_err(|_| StoreError::Poisoned)?;
        let mut conn = match tail.conn.take() {
            Some(c) => c,
            None => self.connect(timeout + IO_TIMEOUT)?,
        };
        conn.set_read_timeout(Some(timeout + IO_TIMEOUT))
            .map_err(err)?;
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT")
            .arg(TAIL_COUNT)
            .arg("BLOCK")
            .arg(timeout.as_millis().max(1) as u64)
            .arg("STREAMS")
            .arg(self.wake_key());
        for (t, _) in cursors {
            cmd.arg(self.key(t, "log"));
        }
        cmd.arg(&tail.wake_seen);
        for (_, seq) in cursors {
            cmd.arg(format!("{seq}-0"));
        }
        let reply: Option<StreamReadReply> = cmd.query(&mut conn).map_err(err)?;
        tail.conn = Some(conn);
        let mut out = Vec::new();
        let wake = self.wake_key();
        for key in reply.map(|r| r.keys).unwrap_or_default() {
            if key.key == wake {
                if let Some(last) = key.ids.last() {
                    tail.wake_seen = last.id.clone();
                }
                continue;
            }
            for id in &key.ids {
                out.push(frame_of(&id.map)?);
            }
        }
        Ok(out)
    }

    /// End a blocked [`RedisStore::tail`] now (the set of tenants changed).
    pub fn wake_tail(&self) -> Result<(), StoreError> {
        let key = self.wake_key();
        self.with_conn(|c| {
            redis::pipe()
                .cmd("XADD")
                .arg(&key)
                .arg("MAXLEN")
                .arg("~")
                .arg(16)
                .arg("*")
                .arg("w")
                .arg(1)
                .ignore()
                .cmd("PEXPIRE")
                .arg(&key)
                .arg(86_400_000)
                .ignore()
                .query::<()>(c)
        })
    }
}

impl LogStore for RedisStore {
    fn session_start(&self, session: &RefreshSession) -> Result<(), StoreError> {
        let key = self.session_key(&session.family);
        let index = self.user_sessions_key(&session.tenant, &session.sub);
        self.with_conn(|c| {
            redis::pipe()
                .atomic()
                .cmd("HSET")
                .arg(&key)
                .arg("current")
                .arg(&session.current)
                .arg("sub")
                .arg(&session.sub)
                .arg("tenant")
                .arg(&session.tenant)
                .arg("expires")
                .arg(session.expires)
                .ignore()
                .cmd("EXPIREAT")
                .arg(&key)
                .arg(session.expires)
                .ignore()
                .cmd("SADD")
                .arg(&index)
                .arg(&session.family)
                .ignore()
                .query::<()>(c)?;
            // Rotations move a family's expiry, so the index has none of its own:
            // a login drops the members whose family is gone (logins are rare).
            let families: Vec<String> = redis::cmd("SMEMBERS").arg(&index).query(c)?;
            for f in families {
                let alive: bool = redis::cmd("EXISTS").arg(self.session_key(&f)).query(c)?;
                if !alive {
                    redis::cmd("SREM").arg(&index).arg(&f).query::<()>(c)?;
                }
            }
            Ok(())
        })
    }

    fn session_rotate(
        &self,
        family: &str,
        presented: &str,
        next: &str,
        expires: u64,
        now: u64,
    ) -> Result<Rotation, StoreError> {
        if expires <= now {
            return Ok(Rotation::Unknown);
        }
        let key = self.session_key(family);
        let answer: String = self.with_conn(|c| {
            self.rotate
                .key(&key)
                .arg(presented)
                .arg(next)
                .arg(expires)
                .arg(now)
                .invoke(c)
        })?;
        match answer.as_str() {
            "rotated" => Ok(Rotation::Rotated),
            "reused" => Ok(Rotation::Reused),
            "unknown" => Ok(Rotation::Unknown),
            other => Err(corrupt_answer(other)),
        }
    }

    fn idempotent_get(
        &self,
        tenant: &str,
        key: &str,
        _now: u64,
    ) -> Result<Option<String>, StoreError> {
        // Redis drops the key at its EXAT itself.
        let k = self.idempotency_key(tenant, key);
        self.with_conn(|c| redis::cmd("GET").arg(&k).query(c))
    }

    fn idempotent_put(
        &self,
        tenant: &str,
        key: &str,
        answer: &str,
        expires: u64,
    ) -> Result<(), StoreError> {
        let k = self.idempotency_key(tenant, key);
        // NX: the first put wins, atomically with its expiry.
        self.with_conn(|c| {
            redis::cmd("SET")
                .arg(&k)
                .arg(answer)
                .arg("NX")
                .arg("EXAT")
                .arg(expires)
                .query::<Option<String>>(c)
        })?;
        Ok(())
    }

    fn idempotent_claim(
        &self,
        tenant: &str,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let k = self.idempotency_claim_key(tenant, key);
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        // NX PX: claimed atomically with its expiry, by one owner.
        let set: Option<String> = self.with_conn(|c| {
            redis::cmd("SET")
                .arg(&k)
                .arg(owner)
                .arg("NX")
                .arg("PX")
                .arg(ms)
                .query(c)
        })?;
        Ok(set.is_some())
    }

    fn idempotent_release(&self, tenant: &str, key: &str, owner: &str) -> Result<(), StoreError> {
        let k = self.idempotency_claim_key(tenant, key);
        self.with_conn(|c| self.release.key(&k).arg(owner).invoke::<i64>(c))?;
        Ok(())
    }

    fn session_revoke(&self, family: &str) -> Result<bool, StoreError> {
        let key = self.session_key(family);
        let n: u64 = self.with_conn(|c| redis::cmd("DEL").arg(&key).query(c))?;
        Ok(n > 0)
    }

    fn session_revoke_user(&self, tenant: &str, sub: &str) -> Result<u64, StoreError> {
        // The user's families, indexed at `session_start`; families that expired
        // meanwhile are gone already (DEL counts only those still there).
        let index = self.user_sessions_key(tenant, sub);
        self.with_conn(|c| {
            let families: Vec<String> = redis::cmd("SMEMBERS").arg(&index).query(c)?;
            let mut pipe = redis::pipe();
            pipe.atomic();
            for f in &families {
                pipe.cmd("DEL").arg(self.session_key(f));
            }
            pipe.cmd("DEL").arg(&index).ignore();
            let gone: Vec<u64> = pipe.query(c)?;
            Ok(gone.iter().sum())
        })
    }

    fn backend(&self) -> &'static str {
        "redis"
    }

    fn info(&self, tenant: &str) -> Result<StreamInfo, StoreError> {
        Ok(self.read_with::<()>(tenant, |_| {})?.0)
    }

    fn append(&self, tenant: &str, events: Vec<NewEvent>) -> Result<Appended, StoreError> {
        for _ in 0..MAX_ATTEMPTS {
            if let Some(done) = self.try_append(tenant, &events)? {
                return Ok(done);
            }
        }
        Err(StoreError::Contended(MAX_ATTEMPTS))
    }

    fn read(&self, tenant: &str, after: u64, limit: usize) -> Result<EventRange, StoreError> {
        let log = self.key(tenant, "log");
        let start = format!("{}-0", after.saturating_add(1));
        let (info, range): (StreamInfo, StreamRangeReply) = self.read_with(tenant, |p| {
            p.cmd("XRANGE")
                .arg(&log)
                .arg(&start)
                .arg("+")
                .arg("COUNT")
                .arg(limit.max(1));
        })?;
        let events = range
            .ids
            .iter()
            .map(|id| frame_of(&id.map))
            .collect::<Result<_, _>>()?;
        Ok(EventRange { info, events })
    }

    fn snapshot(&self, tenant: &str) -> Result<Snapshot, StoreError> {
        let ent = self.key(tenant, "ent");
        let (info, all): (StreamInfo, HashMap<String, String>) = self.read_with(tenant, |p| {
            p.cmd("HGETALL").arg(&ent);
        })?;
        let mut entities = Vec::with_capacity(all.len());
        for (f, data) in all {
            let (kind, id) = f
                .split_once('/')
                .ok_or_else(|| corrupt(format!("entity field `{f}`")))?;
            entities.push(stored_entity(kind, id.to_owned(), &data)?);
        }
        Ok(snapshot_of(info, entities))
    }

    fn entity(
        &self,
        tenant: &str,
        kind: EntityKind,
        id: &str,
    ) -> Result<Option<Object>, StoreError> {
        let ent = self.key(tenant, "ent");
        let text: Option<String> =
            self.with_conn(|c| redis::cmd("HGET").arg(&ent).arg(field(kind, id)).query(c))?;
        text.map(|t| serde_json::from_str(&t).map_err(corrupt))
            .transpose()
    }

    fn streams(&self) -> Result<Vec<StreamInfo>, StoreError> {
        let set = format!("{}:streams", self.prefix);
        let mut names: Vec<String> =
            self.with_conn(|c| redis::cmd("SMEMBERS").arg(&set).query(c))?;
        names.sort();
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for n in &names {
            pipe.cmd("HMGET")
                .arg(self.key(n, "meta"))
                .arg("epoch")
                .arg("head")
                .arg("first");
        }
        let metas: Vec<Vec<Option<String>>> = self.with_conn(|c| pipe.query(c))?;
        let mut out = Vec::with_capacity(names.len());
        for (n, m) in names.iter().zip(&metas) {
            if let Some(info) = parse_meta(n, m)? {
                out.push(info);
            }
        }
        Ok(out)
    }

    fn health(&self) -> Result<(), StoreError> {
        self.with_conn(|c| redis::cmd("PING").query::<String>(c))
            .map(drop)
    }

    fn shared(&self) -> Option<&RedisStore> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulse_testkit::redis::RedisServer;
    use serde_json::json;

    fn ev(id: &str, ts: i64) -> NewEvent {
        NewEvent::new(
            "agent.heartbeat",
            json!({"id": "ag"}),
            Some(id.to_owned()),
            ts,
        )
        .unwrap()
    }

    fn raw(server: &RedisServer) -> Connection {
        redis::Client::open(server.url())
            .unwrap()
            .get_connection()
            .unwrap()
    }

    #[test]
    fn retention_by_age() {
        let server = RedisServer::start();
        let s = RedisStore::open(&server.url(), 100, Some(Duration::from_secs(3600)), "n").unwrap();
        let old = now_ms() - 2 * 3600 * 1000;
        s.append("acme", vec![ev("a", old), ev("b", old)]).unwrap();
        let fresh = s.append("acme", vec![ev("c", now_ms())]).unwrap();
        assert_eq!(fresh.seqs, [3]);
        let r = s.read("acme", 0, 10).unwrap();
        assert_eq!((r.info.first, r.info.head), (3, 3));
        assert_eq!(r.events.iter().map(|e| e.seq).collect::<Vec<_>>(), [3]);
        // Trimmed ids left the idempotency window with their events.
        assert_eq!(s.append("acme", vec![ev("a", now_ms())]).unwrap().seqs, [4]);
        let len: u64 = redis::cmd("XLEN")
            .arg("pulse:{acme}:log")
            .query(&mut raw(&server))
            .unwrap();
        assert_eq!(len, 2);
    }

    #[test]
    fn garbage_in_redis_is_a_clear_error() {
        let server = RedisServer::start();
        let s = RedisStore::open(&server.url(), 100, None, "n").unwrap();
        s.append("acme", vec![ev("a", 1)]).unwrap();
        let mut c = raw(&server);
        let _: () = redis::cmd("XADD")
            .arg("pulse:{acme}:log")
            .arg("2-0")
            .arg("f")
            .arg("{not json")
            .query(&mut c)
            .unwrap();
        let _: () = redis::cmd("HSET")
            .arg("pulse:{acme}:ent")
            .arg("nokind")
            .arg("{}")
            .query(&mut c)
            .unwrap();
        assert!(matches!(s.read("acme", 0, 10), Err(StoreError::Corrupt(_))));
        assert!(matches!(s.snapshot("acme"), Err(StoreError::Corrupt(_))));
        // The event before the garbage is still there.
        assert_eq!(s.read("acme", 0, 1).unwrap().events.len(), 1);
        let _: () = redis::cmd("HSET")
            .arg("pulse:{acme}:meta")
            .arg("head")
            .arg("many")
            .query(&mut c)
            .unwrap();
        assert!(matches!(s.info("acme"), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn unreachable_redis_is_unavailable() {
        let mut server = RedisServer::start();
        let s = RedisStore::open(&server.url(), 100, None, "n").unwrap();
        s.append("acme", vec![ev("a", 1)]).unwrap();
        server.kill();
        assert!(matches!(
            s.append("acme", vec![ev("b", 1)]),
            Err(StoreError::Unavailable(_))
        ));
        assert!(matches!(s.health(), Err(StoreError::Unavailable(_))));
        assert!(matches!(
            RedisStore::open(&server.url(), 100, None, "n"),
            Err(StoreError::Unavailable(_))
        ));
        assert!(RedisStore::open("redis://", 100, None, "n").is_err());
    }

    #[test]
    fn tail_returns_new_events_and_wakes() {
        let server = RedisServer::start();
        let a = RedisStore::open(&server.url(), 100, None, "a").unwrap();
        let b = RedisStore::open(&server.url(), 100, None, "b").unwrap();
        b.append("acme", vec![ev("x", 1), ev("y", 1)]).unwrap();
        let got = a
            .tail(&[("acme".into(), 0)], Duration::from_secs(5))
            .unwrap();
        assert_eq!(got.iter().map(|f| f.seq).collect::<Vec<_>>(), [1, 2]);
        // Blocked on an empty tail, a wake ends the read at once.
        std::thread::scope(|sc| {
            let t = sc.spawn(|| a.tail(&[("acme".into(), 2)], Duration::from_secs(60)));
            let woke = pulse_testkit::wait::holds_within(Duration::from_secs(20), || {
                a.wake_tail().unwrap();
                t.is_finished()
            });
            assert!(woke, "wake ended the blocking read");
            assert!(t.join().unwrap().unwrap().is_empty());
        });
    }
}
