//! Mapping a server's events and REST answers to domain changes. Pure: no I/O, no
//! clock (the receive time is passed in).
//!
//! Contract: [`Mapper::map_event`] is total — every input gives effects, an
//! [`MapError::Unknown`] (no rule has this event name) or an [`MapError::Shape`]
//! (a rule matched the name but the payload lacks what it needs); it never panics.

use std::collections::BTreeMap;

use pulse_protocol::domain::{Change, EntityKind, Object};
use serde_json::Value;

use super::schema::{to_json, EventRule, Op, RestResource};

/// What one event (or REST answer) does.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Apply this change.
    Change(Change),
    /// Make the entities of `kind` exactly `records` (id, record): the caller
    /// deletes the ones it holds that are not listed.
    Replace {
        /// Kind replaced.
        kind: EntityKind,
        /// The new set.
        records: Vec<(String, Object)>,
        /// Delete held entities of `kind` that are not in `records`.
        delete_missing: bool,
    },
    /// Refetch this REST resource (by name).
    Refetch(String),
}

/// Why an event was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    /// No rule has this event name.
    #[error("unknown event `{0}`")]
    Unknown(String),
    /// A rule matched the name but the payload does not have the right shape.
    #[error("event `{event}`: {message}")]
    Shape {
        /// The event name.
        event: String,
        /// What was wrong.
        message: String,
    },
}

/// How a payload becomes a record (the common part of event rules and REST resources).
#[derive(Debug, Clone, Default)]
pub struct Shape {
    /// JSON pointer of the id.
    pub id: Option<String>,
    /// JSON pointer of the base object (`""` whole, `"-"` none).
    pub data: Option<String>,
    /// Dropped from the base.
    pub omit: Vec<String>,
    /// Target → pointer.
    pub fields: BTreeMap<String, String>,
    /// Target → constant.
    pub set: BTreeMap<String, Value>,
}

impl Shape {
    fn of_rule(r: &EventRule) -> Shape {
        Shape {
            id: r.id.clone(),
            data: r.data.clone(),
            omit: r.omit.clone(),
            fields: r.fields.clone(),
            set: r.set.iter().map(|(k, v)| (k.clone(), to_json(v))).collect(),
        }
    }

    fn of_rest(r: &RestResource) -> Shape {
        Shape {
            id: Some(r.id.clone().unwrap_or_else(|| "/id".into())),
            data: r.data.clone(),
            omit: r.omit.clone(),
            fields: r.fields.clone(),
            set: r.set.iter().map(|(k, v)| (k.clone(), to_json(v))).collect(),
        }
    }

    /// The id at `id` (a non-empty string or an integer).
    pub fn id_of(&self, payload: &Value) -> Result<String, String> {
        let ptr = self.id.as_deref().unwrap_or("/id");
        match pointer(payload, ptr) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            Some(other) => Err(format!(
                "`{ptr}` must be a non-empty string or an integer, not {other}"
            )),
            None => Err(format!("no id at `{ptr}`")),
        }
    }

    /// The base value at `data` (`None` = nothing there).
    fn base<'a>(&self, payload: &'a Value) -> Option<&'a Value> {
        match self.data.as_deref() {
            None | Some("") => Some(payload),
            Some("-") => None,
            Some(p) => pointer(payload, p).filter(|v| !v.is_null()),
        }
    }

    /// Build the record.
    pub fn record(&self, payload: &Value) -> Result<Object, String> {
        let mut obj = match self.base(payload) {
            None => Object::new(),
            Some(Value::Object(o)) => o.clone(),
            Some(other) => {
                return Err(format!(
                    "`{}` must be a JSON object, not {}",
                    self.data.as_deref().unwrap_or(""),
                    kind_of(other)
                ))
            }
        };
        for f in &self.omit {
            obj.remove(f);
        }
        for (target, ptr) in &self.fields {
            if let Some(v) = pointer(payload, ptr).filter(|v| !v.is_null()) {
                obj.insert(target.clone(), v.clone());
            }
        }
        for (target, v) in &self.set {
            obj.insert(target.clone(), v.clone());
        }
        Ok(obj)
    }

    /// Build an item for `append`: a record when the base is an object or there are
    /// fields to set, else the value itself.
    fn item(&self, payload: &Value) -> Result<Value, String> {
        match self.base(payload) {
            Some(v) if !v.is_object() && self.fields.is_empty() && self.set.is_empty() => {
                Ok(v.clone())
            }
            None if self.fields.is_empty() && self.set.is_empty() => Err(format!(
                "nothing at `{}` to append",
                self.data.as_deref().unwrap_or("")
            )),
            _ => self.record(payload).map(Value::Object),
        }
    }
}

/// `v.pointer(ptr)` (RFC 6901, as serde_json reads it) without allocating:
/// serde_json's unescapes every token into a new `String`, twice, and the
/// mapping looks up a pointer or more per received event. A token with an escape
/// (`~0`, `~1`) is unescaped as serde_json does.
pub(crate) fn pointer<'a>(v: &'a Value, ptr: &str) -> Option<&'a Value> {
    if ptr.is_empty() {
        return Some(v);
    }
    let rest = ptr.strip_prefix('/')?;
    rest.split('/').try_fold(v, |target, token| {
        let token: std::borrow::Cow<'_, str> = if token.contains('~') {
            token.replace("~1", "/").replace("~0", "~").into()
        } else {
            token.into()
        };
        match target {
            Value::Object(map) => map.get(token.as_ref()),
            Value::Array(list) => array_index(&token).and_then(|i| list.get(i)),
            _ => None,
        }
    })
}

/// An array index token as serde_json reads it: digits, no sign, no leading zero.
fn array_index(s: &str) -> Option<usize> {
    if s.starts_with('+') || (s.starts_with('0') && s.len() != 1) {
        return None;
    }
    s.parse().ok()
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

struct Rule {
    rule: EventRule,
    shape: Shape,
    when: Vec<(String, Value)>,
    unless: Vec<(String, Value)>,
}

/// A profile's mappings, ready to use.
pub struct Mapper {
    rules: BTreeMap<String, Vec<Rule>>,
    rest: BTreeMap<String, RestResource>,
}

impl std::fmt::Debug for Mapper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mapper")
            .field("events", &self.rules.keys().collect::<Vec<_>>())
            .field("rest", &self.rest.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// FNV-1a, 64 bits: a stable short digest (not a security measure).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn stamp(obj: &mut Object, ts: i64) {
    obj.entry("updated_at".to_string())
        .or_insert_with(|| Value::from(ts));
}

impl Mapper {
    /// Build from validated rules and resources.
    pub fn new(rules: &[EventRule], rest: &BTreeMap<String, RestResource>) -> Mapper {
        let mut by_name: BTreeMap<String, Vec<Rule>> = BTreeMap::new();
        for r in rules {
            let conv = |m: &BTreeMap<String, toml::Value>| {
                m.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()
            };
            by_name.entry(r.name.clone()).or_default().push(Rule {
                shape: Shape::of_rule(r),
                when: conv(&r.when),
                unless: conv(&r.unless),
                rule: r.clone(),
            });
        }
        Mapper {
            rules: by_name,
            rest: rest.clone(),
        }
    }

    /// Whether some rule names `event`.
    pub fn knows(&self, event: &str) -> bool {
        self.rules.contains_key(event)
    }

    /// The REST resource `name`.
    pub fn resource(&self, name: &str) -> Option<&RestResource> {
        self.rest.get(name)
    }

    /// What `event` with `payload`, received at `ts` (ms), does.
    pub fn map_event(
        &self,
        event: &str,
        payload: &Value,
        ts: i64,
    ) -> Result<Vec<Effect>, MapError> {
        let rules = self
            .rules
            .get(event)
            .ok_or_else(|| MapError::Unknown(event.to_owned()))?;
        let shape_err = |message: String| MapError::Shape {
            event: event.to_owned(),
            message,
        };
        let mut effects = Vec::new();
        let mut matched = false;
        for r in rules {
            let holds = |(ptr, want): &(String, Value)| pointer(payload, ptr) == Some(want);
            if !r.when.iter().all(holds) || r.unless.iter().any(holds) {
                continue;
            }
            matched = true;
            let rule = &r.rule;
            let kind = rule.kind.unwrap_or(EntityKind::Stats);
            match rule.op {
                Op::Ignore | Op::Refetch => {}
                Op::Notice => {
                    let mut data = r.shape.record(payload).map_err(shape_err)?;
                    // Two notices of one event in one millisecond differ by payload.
                    let id = format!(
                        "{event}:{ts}:{:016x}",
                        fnv1a(payload.to_string().as_bytes())
                    );
                    data.insert("id".into(), Value::String(id.clone()));
                    data.entry("level").or_insert_with(|| Value::from("error"));
                    data.entry("created_at").or_insert_with(|| Value::from(ts));
                    data.entry("read").or_insert(Value::Bool(false));
                    stamp(&mut data, ts);
                    effects.push(Effect::Change(Change::Upsert {
                        kind: EntityKind::Notification,
                        id,
                        data,
                    }));
                }
                Op::Upsert => {
                    let id = r.shape.id_of(payload).map_err(shape_err)?;
                    let mut data = r.shape.record(payload).map_err(shape_err)?;
                    data.insert("id".into(), Value::String(id.clone()));
                    stamp(&mut data, ts);
                    effects.push(Effect::Change(Change::Upsert { kind, id, data }));
                }
                Op::Patch => {
                    let id = r.shape.id_of(payload).map_err(shape_err)?;
                    let mut data = r.shape.record(payload).map_err(shape_err)?;
                    data.remove("id");
                    stamp(&mut data, ts);
                    effects.push(Effect::Change(Change::Patch { kind, id, data }));
                }
                Op::Delete => {
                    let id = r.shape.id_of(payload).map_err(shape_err)?;
                    effects.push(Effect::Change(Change::Delete { kind, id }));
                }
                Op::Append => {
                    let id = r.shape.id_of(payload).map_err(shape_err)?;
                    let mut item = r.shape.item(payload).map_err(shape_err)?;
                    // A timeline entry says when it happened: the receive time
                    // unless the server gave one.
                    if let Value::Object(o) = &mut item {
                        o.entry("ts").or_insert_with(|| Value::from(ts));
                    }
                    effects.push(Effect::Change(Change::Append {
                        kind,
                        id: id.clone(),
                        field: rule.field.clone().unwrap_or_else(|| "timeline".into()),
                        item,
                    }));
                    effects.push(Effect::Change(Change::Patch {
                        kind,
                        id,
                        data: Object::from_iter([("updated_at".to_string(), Value::from(ts))]),
                    }));
                }
                Op::Stats => {
                    let scope = rule.scope.clone().unwrap_or_else(|| "stats".into());
                    let mut data = r.shape.record(payload).map_err(shape_err)?;
                    data.insert("id".into(), Value::String(scope.clone()));
                    stamp(&mut data, ts);
                    effects.push(Effect::Change(Change::Upsert {
                        kind: EntityKind::Stats,
                        id: scope,
                        data,
                    }));
                }
                Op::Replace => {
                    let ptr = rule.items.as_deref().unwrap_or("");
                    let list = match pointer(payload, ptr) {
                        Some(Value::Array(a)) => a,
                        Some(other) => {
                            return Err(shape_err(format!(
                                "`{ptr}` must be an array, not {}",
                                kind_of(other)
                            )))
                        }
                        None => return Err(shape_err(format!("no list at `{ptr}`"))),
                    };
                    let records = records(&r.shape, list, ts).map_err(shape_err)?;
                    effects.push(Effect::Replace {
                        kind,
                        records,
                        delete_missing: true,
                    });
                }
            }
            effects.extend(rule.refetch.iter().cloned().map(Effect::Refetch));
        }
        if !matched {
            return Err(shape_err(
                "no rule's `when`/`unless` condition matched the payload".into(),
            ));
        }
        Ok(effects)
    }

    /// What the answer `body` of REST resource `name`, fetched at `ts`, does.
    pub fn map_rest(&self, name: &str, body: &Value, ts: i64) -> Result<Effect, String> {
        let res = self
            .rest
            .get(name)
            .ok_or_else(|| format!("no REST resource `{name}`"))?;
        let shape = Shape::of_rest(res);
        if res.kind == EntityKind::Stats && res.items.is_none() {
            let scope = res.scope.clone().unwrap_or_else(|| name.to_owned());
            let mut data = shape.record(body)?;
            data.insert("id".into(), Value::String(scope.clone()));
            stamp(&mut data, ts);
            return Ok(Effect::Change(Change::Upsert {
                kind: EntityKind::Stats,
                id: scope,
                data,
            }));
        }
        let ptr = res.items.as_deref().unwrap_or("");
        let list = match pointer(body, ptr) {
            Some(Value::Array(a)) => a,
            Some(other) => {
                return Err(format!(
                    "`{ptr}` in the answer must be an array, not {}",
                    kind_of(other)
                ))
            }
            None => return Err(format!("no list at `{ptr}` in the answer")),
        };
        let records = records(&shape, list, ts)?;
        Ok(Effect::Replace {
            kind: res.kind,
            records,
            delete_missing: res.replace,
        })
    }
}

fn records(shape: &Shape, list: &[Value], ts: i64) -> Result<Vec<(String, Object)>, String> {
    list.iter()
        .enumerate()
        .map(|(i, item)| {
            let id = shape.id_of(item).map_err(|e| format!("item {i}: {e}"))?;
            let mut data = shape.record(item).map_err(|e| format!("item {i}: {e}"))?;
            data.insert("id".into(), Value::String(id.clone()));
            stamp(&mut data, ts);
            Ok((id, data))
        })
        .collect()
}

/// Turn a replacement into changes against the ids currently held: every record
/// merged into the entity held (a patch), and (with `delete_missing`) a delete for
/// each held id not listed.
///
/// A list is a summary of each entity, not the whole of it: fields the record
/// omits, or gives as `null`, are kept. So a task list (seed 004's
/// `dashboard:task_list_updated`) never wipes a task's timeline or PR, which
/// arrive by their own events.
pub fn replacement_changes(
    kind: EntityKind,
    records: Vec<(String, Object)>,
    delete_missing: bool,
    held: &[String],
) -> Vec<Change> {
    let mut changes = Vec::with_capacity(records.len() + held.len());
    let mut keep = std::collections::BTreeSet::new();
    for (id, mut data) in records {
        keep.insert(id.clone());
        data.retain(|_, v| !v.is_null());
        changes.push(Change::Patch { kind, id, data });
    }
    if delete_missing {
        for id in held {
            if !keep.contains(id) {
                changes.push(Change::Delete {
                    kind,
                    id: id.clone(),
                });
            }
        }
    }
    changes
}

#[cfg(test)]
mod pointer_tests {
    use super::pointer;
    use serde_json::{json, Value};

    #[test]
    fn pointer_reads_what_serde_json_reads() {
        let doc = json!({
            "id": "a1",
            "": {"": 1, "x": [10, 20, {"y": null}]},
            "a/b": {"m~n": true, "~1": "tilde-one"},
            "list": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
            "07": "seven",
            "n": 3,
        });
        // Comma separated, the empty token first.
        let tokens: Vec<&str> =
            ",id,a/b,a~1b,m~0n,~01,~1,~,~2,list,x,y,0,1,2,01,+1,-1,11,12,07,n,18446744073709551616, 1"
                .split(',')
                .collect();
        // Every pointer of up to three tokens (and a few without the leading `/`).
        let mut pointers = vec![String::new(), "id".into(), "list/1".into()];
        for &a in &tokens {
            pointers.push(format!("/{a}"));
            for &b in &tokens {
                pointers.push(format!("/{a}/{b}"));
                for c in ["", "0", "y", "2", "~1"] {
                    pointers.push(format!("/{a}/{b}/{c}"));
                }
            }
        }
        let mut found = 0;
        for p in &pointers {
            let want: Option<&Value> = doc.pointer(p);
            assert_eq!(pointer(&doc, p), want, "pointer {p:?}");
            found += usize::from(want.is_some());
        }
        // The cases hit both answers.
        assert!(found > 10, "{found} of {} found", pointers.len());
        for v in [json!(null), json!(1), json!("s"), json!([1]), json!({})] {
            for p in ["", "/", "/0", "/a", "x"] {
                assert_eq!(pointer(&v, p), v.pointer(p), "pointer {p:?} into {v}");
            }
        }
    }
}
