//! WebSocket frames of `GET /v1/stream`.
//!
//! Every frame is one JSON text message with a `type` field. Control frames have the
//! types `hello`, `subscribed`, `ping`, `error` (server) and `subscribe`, `pong`
//! (client); every other server frame is an event, `{seq, id, stream, type, ts, data}`.
//!
//! [`ServerFrame::decode`] never panics and never fails on unknown *fields*; it fails,
//! with a [`DecodeError`] a person can read, on non-JSON, oversized input, a missing
//! or mistyped envelope field. An event whose *type* is unknown still decodes (its
//! `seq` must advance the client's cursor); deciding what it means is the job of
//! [`crate::changes_for`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::MAX_FRAME_BYTES;

/// The largest `seq` (and `head`) a frame may carry: `i64::MAX`, the largest a
/// client's store (SQLite) can keep. A frame above it is a decode error that
/// names the bound, never a wrapped or truncated cursor.
pub const MAX_SEQ: u64 = i64::MAX as u64;

/// One event as carried on the wire, in the event log, and in `GET /v1/events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventFrame {
    /// Position in its stream, rising by one per event within an epoch.
    pub seq: u64,
    /// Unique event id (for dedup across sources).
    pub id: String,
    /// The stream (one per tenant on the Pulse gateway).
    pub stream: String,
    /// Event type, e.g. `approval.created` (see [`crate::EventType`]).
    #[serde(rename = "type")]
    pub event_type: String,
    /// When the server accepted it, milliseconds since the Unix epoch.
    pub ts: i64,
    /// Type-specific payload.
    pub data: Value,
    /// The one user this event is addressed to (the token `sub` of the sessions it
    /// reaches); `None`: every session of the stream. See [`EventFrame::visible_to`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// Type of the frame that stands, in one session's stream, for an event addressed
/// to another user (see [`EventFrame::skipped`]).
pub const SKIPPED_TYPE: &str = "pulse.skipped";

/// Whether an event addressed to `user` (`None`: everyone) reaches a session whose
/// token's subject is `viewer`. [`EventFrame::visible_to`] for a frame at hand.
pub fn visible_to(user: Option<&str>, viewer: &str) -> bool {
    user.is_none_or(|u| u == viewer)
}

/// First frame on every connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// Protocol version the server speaks.
    pub version: u32,
    /// Tenant of the token that opened the connection.
    pub tenant: String,
    /// The server sends a `ping` at least this often.
    pub ping_interval_ms: u64,
    /// A client may close the link after `ping_interval_ms + ping_timeout_ms` of silence.
    pub ping_timeout_ms: u64,
    /// Server software, for logs.
    #[serde(default)]
    pub server: String,
}

/// Answer to a `subscribe`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscribed {
    /// The stream subscribed to.
    pub stream: String,
    /// The stream's current epoch.
    pub epoch: String,
    /// Highest seq in the stream when the subscription was made.
    pub head: u64,
    /// `true`: every event after the client's `since` up to `head` follows, in order,
    /// then live events. `false`: the server cannot replay (no cursor, other epoch,
    /// cursor older than the retained log); live events from `head + 1` follow, and
    /// the client must load `GET /v1/snapshot` to fill the gap.
    pub recovered: bool,
    /// Why `recovered` is false (`no_cursor`, `epoch_changed`, `truncated`, `ahead`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A server frame, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerFrame {
    /// Connection greeting.
    Hello(Hello),
    /// Subscription answer.
    Subscribed(Subscribed),
    /// Keep-alive; answer with [`ClientFrame::Pong`].
    Ping {
        /// Server time, ms.
        ts: i64,
    },
    /// The server refused something; `code` is stable, `message` is for people.
    Error {
        /// Stable machine code (`forbidden`, `bad_request`, …).
        code: String,
        /// Human explanation.
        message: String,
    },
    /// A domain event.
    Event(EventFrame),
}

/// A client frame. `Debug` never shows an `auth` frame's token.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ClientFrame {
    /// Subscribe to a stream, resuming after `since` in `epoch` when given.
    Subscribe {
        /// Stream to follow; defaults to the token's tenant.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stream: Option<String>,
        /// Last seq the client applied.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<u64>,
        /// Epoch of that seq.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        epoch: Option<String>,
    },
    /// Answer to a ping.
    Pong {
        /// Echo of the ping's `ts`.
        ts: i64,
    },
    /// Re-authenticate the open connection with a fresh access token of the same
    /// tenant and subject, before the current one expires (see "Token expiry" in
    /// `docs/protocol.md`).
    Auth {
        /// The new access token.
        token: String,
    },
}

impl std::fmt::Debug for ClientFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientFrame::Subscribe {
                stream,
                since,
                epoch,
            } => f
                .debug_struct("Subscribe")
                .field("stream", stream)
                .field("since", since)
                .field("epoch", epoch)
                .finish(),
            ClientFrame::Pong { ts } => f.debug_struct("Pong").field("ts", ts).finish(),
            ClientFrame::Auth { .. } => f
                .debug_struct("Auth")
                .field("token", &"<redacted>")
                .finish(),
        }
    }
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Larger than [`MAX_FRAME_BYTES`].
    #[error("frame of {0} bytes is larger than the {MAX_FRAME_BYTES}-byte limit")]
    TooLarge(usize),
    /// Not JSON, or not a JSON object.
    #[error("frame is not a JSON object: {0}")]
    NotJson(String),
    /// A required field is missing or has the wrong type.
    #[error("frame `{frame_type}`: {message}")]
    BadField {
        /// The frame's `type` (or `?`).
        frame_type: String,
        /// What was wrong.
        message: String,
    },
}

/// Every field any server frame may carry; decoded in one pass.
#[derive(Deserialize)]
struct Wire {
    #[serde(rename = "type")]
    ty: Option<String>,
    seq: Option<Value>,
    id: Option<Value>,
    stream: Option<Value>,
    ts: Option<Value>,
    data: Option<Value>,
    user: Option<Value>,
    // control frames
    version: Option<Value>,
    tenant: Option<Value>,
    ping_interval_ms: Option<Value>,
    ping_timeout_ms: Option<Value>,
    server: Option<Value>,
    epoch: Option<Value>,
    head: Option<Value>,
    recovered: Option<Value>,
    reason: Option<Value>,
    code: Option<Value>,
    message: Option<Value>,
}

struct Fields<'a> {
    ty: &'a str,
}

impl Fields<'_> {
    fn bad(&self, message: impl Into<String>) -> DecodeError {
        DecodeError::BadField {
            frame_type: self.ty.to_owned(),
            message: message.into(),
        }
    }
    fn u64(&self, name: &str, v: Option<Value>) -> Result<u64, DecodeError> {
        v.as_ref()
            .and_then(Value::as_u64)
            .ok_or_else(|| self.bad(format!("`{name}` must be a non-negative integer")))
    }
    /// A seq or head: a non-negative integer that a store can keep (SQLite's
    /// integers are i64), so above `i64::MAX` is refused by name.
    fn seq(&self, name: &str, v: Option<Value>) -> Result<u64, DecodeError> {
        let n = self.u64(name, v)?;
        if n > MAX_SEQ {
            return Err(self.bad(format!(
                "`{name}` {n} is above the largest seq a client can store ({MAX_SEQ})"
            )));
        }
        Ok(n)
    }
    fn i64(&self, name: &str, v: Option<Value>) -> Result<i64, DecodeError> {
        v.as_ref()
            .and_then(Value::as_i64)
            .ok_or_else(|| self.bad(format!("`{name}` must be an integer")))
    }
    fn string(&self, name: &str, v: Option<Value>) -> Result<String, DecodeError> {
        match v {
            Some(Value::String(s)) => Ok(s),
            _ => Err(self.bad(format!("`{name}` must be a string"))),
        }
    }
    fn opt_string(&self, name: &str, v: Option<Value>) -> Result<Option<String>, DecodeError> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            _ => Err(self.bad(format!("`{name}` must be a string"))),
        }
    }
}

impl ServerFrame {
    /// Decode one text message.
    pub fn decode(text: &str) -> Result<ServerFrame, DecodeError> {
        if text.len() > MAX_FRAME_BYTES {
            return Err(DecodeError::TooLarge(text.len()));
        }
        let wire: Wire =
            serde_json::from_str(text).map_err(|e| DecodeError::NotJson(e.to_string()))?;
        let ty = match wire.ty {
            Some(ty) => ty,
            None => {
                return Err(DecodeError::BadField {
                    frame_type: "?".into(),
                    message: "`type` must be a string".into(),
                })
            }
        };
        let f = Fields { ty: &ty };
        Ok(match ty.as_str() {
            "hello" => ServerFrame::Hello(Hello {
                version: u32::try_from(f.u64("version", wire.version)?)
                    .map_err(|_| f.bad("`version` is out of range"))?,
                tenant: f.string("tenant", wire.tenant)?,
                ping_interval_ms: f.u64("ping_interval_ms", wire.ping_interval_ms)?,
                ping_timeout_ms: f.u64("ping_timeout_ms", wire.ping_timeout_ms)?,
                server: f.opt_string("server", wire.server)?.unwrap_or_default(),
            }),
            "subscribed" => ServerFrame::Subscribed(Subscribed {
                stream: f.string("stream", wire.stream)?,
                epoch: f.string("epoch", wire.epoch)?,
                head: f.seq("head", wire.head)?,
                recovered: wire
                    .recovered
                    .as_ref()
                    .and_then(Value::as_bool)
                    .ok_or_else(|| f.bad("`recovered` must be a boolean"))?,
                reason: f.opt_string("reason", wire.reason)?,
            }),
            "ping" => ServerFrame::Ping {
                ts: wire.ts.as_ref().and_then(Value::as_i64).unwrap_or(0),
            },
            "error" => ServerFrame::Error {
                code: f.string("code", wire.code)?,
                message: f.opt_string("message", wire.message)?.unwrap_or_default(),
            },
            _ => {
                let seq = f.seq("seq", wire.seq)?;
                if seq == 0 {
                    return Err(f.bad("`seq` starts at 1"));
                }
                let id = match wire.id {
                    Some(Value::String(s)) if !s.is_empty() => s,
                    Some(Value::Number(n)) => n.to_string(),
                    _ => return Err(f.bad("`id` must be a non-empty string")),
                };
                let stream = f.string("stream", wire.stream)?;
                let ts = f.i64("ts", wire.ts)?;
                let data = wire.data.ok_or_else(|| f.bad("`data` is missing"))?;
                let user = f.opt_string("user", wire.user)?;
                ServerFrame::Event(EventFrame {
                    seq,
                    id,
                    stream,
                    event_type: ty,
                    ts,
                    data,
                    user,
                })
            }
        })
    }

    /// Encode for the wire (used by the gateway and by test servers).
    pub fn encode(&self) -> String {
        let v = match self {
            ServerFrame::Hello(h) => tagged("hello", h),
            ServerFrame::Subscribed(s) => tagged("subscribed", s),
            ServerFrame::Ping { ts } => serde_json::json!({"type": "ping", "ts": ts}),
            ServerFrame::Error { code, message } => {
                serde_json::json!({"type": "error", "code": code, "message": message})
            }
            ServerFrame::Event(e) => return e.encode(),
        };
        v.to_string()
    }
}

impl EventFrame {
    /// Whether a session whose token's subject is `viewer` receives this event: it
    /// is addressed to everyone, or to `viewer`. The one home of that rule (live
    /// fan-out, replay, polling).
    pub fn visible_to(&self, viewer: &str) -> bool {
        visible_to(self.user.as_deref(), viewer)
    }

    /// What a session that must not see this event receives in its place: a frame
    /// of type [`SKIPPED_TYPE`] with the same `seq`, `stream` and `ts`, an id made
    /// of the seq, empty `data` and no user. The session's seqs stay gap-free; the
    /// client advances its cursor over it and applies nothing.
    pub fn skipped(&self) -> EventFrame {
        EventFrame {
            seq: self.seq,
            id: format!("skipped-{}", self.seq),
            stream: self.stream.clone(),
            event_type: SKIPPED_TYPE.to_owned(),
            ts: self.ts,
            data: Value::Object(Default::default()),
            user: None,
        }
    }

    /// Whether this is a placeholder from [`EventFrame::skipped`].
    pub fn is_skipped(&self) -> bool {
        self.event_type == SKIPPED_TYPE
    }

    /// This event as `viewer` receives it: itself, or its [`EventFrame::skipped`]
    /// placeholder.
    pub fn for_viewer(&self, viewer: &str) -> std::borrow::Cow<'_, EventFrame> {
        if self.visible_to(viewer) {
            std::borrow::Cow::Borrowed(self)
        } else {
            std::borrow::Cow::Owned(self.skipped())
        }
    }

    /// Encode as a server frame.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("event frames always serialise")
    }
}

fn tagged<T: Serialize>(ty: &str, body: &T) -> Value {
    let mut v = serde_json::to_value(body).expect("control frames always serialise");
    if let Value::Object(o) = &mut v {
        o.insert("type".into(), Value::from(ty));
    }
    v
}

impl ClientFrame {
    /// Encode for the wire.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("client frames always serialise")
    }

    /// Decode one client text message (server side).
    pub fn decode(text: &str) -> Result<ClientFrame, DecodeError> {
        if text.len() > MAX_FRAME_BYTES {
            return Err(DecodeError::TooLarge(text.len()));
        }
        serde_json::from_str(text).map_err(|e| DecodeError::NotJson(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn event_round_trip() {
        let e = EventFrame {
            user: None,
            seq: 7,
            id: "e7".into(),
            stream: "acme".into(),
            event_type: "approval.created".into(),
            ts: 1_700_000_000_000,
            data: json!({"id": "a1", "extra": [1, 2]}),
        };
        assert_eq!(
            ServerFrame::decode(&e.encode()).unwrap(),
            ServerFrame::Event(e)
        );
    }

    #[test]
    fn control_round_trip() {
        let frames = [
            ServerFrame::Hello(Hello {
                version: 1,
                tenant: "acme".into(),
                ping_interval_ms: 15_000,
                ping_timeout_ms: 10_000,
                server: "test".into(),
            }),
            ServerFrame::Subscribed(Subscribed {
                stream: "acme".into(),
                epoch: "e".into(),
                head: 3,
                recovered: false,
                reason: Some("no_cursor".into()),
            }),
            ServerFrame::Ping { ts: 5 },
            ServerFrame::Error {
                code: "forbidden".into(),
                message: "no".into(),
            },
        ];
        for f in frames {
            assert_eq!(ServerFrame::decode(&f.encode()).unwrap(), f);
        }
        let sub = ClientFrame::Subscribe {
            stream: None,
            since: Some(4),
            epoch: Some("e".into()),
        };
        assert_eq!(ClientFrame::decode(&sub.encode()).unwrap(), sub);
    }

    /// A payload's numbers are read exactly (the workspace's serde_json has
    /// `float_roundtrip`; found by the fuzz targets): a frame decoded, encoded and
    /// decoded again is the same, to the last bit of every f64.
    #[test]
    fn numbers_in_a_payload_are_read_exactly() {
        // The numbers of the input the fuzzer found (in a Socket.IO packet).
        let numbers = [
            "2222222999099240",
            "222222222225552229522295555",
            "22222222222999099240",
            "2222222222255522295555",
            "2222222232299909555",
            "2222222222223229992221",
        ];
        let text = format!(
            r#"{{"type":"x.y","seq":1,"id":"a","stream":"s","ts":1,"data":[{}]}}"#,
            numbers.join(",")
        );
        let f = ServerFrame::decode(&text).unwrap();
        let ServerFrame::Event(e) = &f else {
            panic!("{f:?}")
        };
        for (i, n) in numbers.iter().enumerate() {
            // The standard library's parser is exact: the reference.
            let want: f64 = n.parse().unwrap();
            assert_eq!(e.data[i].as_f64(), Some(want), "{n}");
        }
        assert_eq!(ServerFrame::decode(&f.encode()).unwrap(), f);
    }

    #[test]
    fn the_largest_storable_seq_is_accepted() {
        let text = format!(
            r#"{{"type":"x.y","seq":{},"id":"a","stream":"s","ts":1,"data":{{}}}}"#,
            MAX_SEQ
        );
        match ServerFrame::decode(&text).unwrap() {
            ServerFrame::Event(e) => assert_eq!(e.seq, i64::MAX as u64),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn garbage_is_a_clear_error() {
        let cases = [
            ("", "JSON"),
            ("not json", "JSON"),
            ("[1,2]", "JSON"),
            ("{}", "`type`"),
            (r#"{"type": 5}"#, "JSON"),
            (
                r#"{"type":"x.y","seq":"1","id":"a","stream":"s","ts":1,"data":{}}"#,
                "`seq`",
            ),
            (
                r#"{"type":"x.y","seq":0,"id":"a","stream":"s","ts":1,"data":{}}"#,
                "`seq`",
            ),
            (
                r#"{"type":"x.y","seq":9223372036854775808,"id":"a","stream":"s","ts":1,"data":{}}"#,
                "above the largest seq",
            ),
            (
                r#"{"type":"subscribed","stream":"s","epoch":"e","head":18446744073709551615,"recovered":true}"#,
                "`head` 18446744073709551615 is above",
            ),
            (
                r#"{"type":"hello","version":4294967296,"tenant":"t","ping_interval_ms":1,"ping_timeout_ms":1,"server":"s"}"#,
                "`version`",
            ),
            (
                r#"{"type":"x.y","seq":1,"stream":"s","ts":1,"data":{}}"#,
                "`id`",
            ),
            (
                r#"{"type":"x.y","seq":1,"id":"a","stream":"s","ts":1}"#,
                "`data`",
            ),
            (
                r#"{"type":"subscribed","stream":"s","epoch":"e","head":1}"#,
                "`recovered`",
            ),
            (
                r#"{"type":"x.y","seq":1,"id":"a","stream":"s","ts":1,"data":{},"user":7}"#,
                "`user`",
            ),
        ];
        for (input, needle) in cases {
            let err = ServerFrame::decode(input).unwrap_err().to_string();
            assert!(
                err.contains(needle),
                "{input:?} gave {err:?}, wanted {needle:?}"
            );
        }
        let big = format!(r#"{{"type":"x","pad":"{}"}}"#, "a".repeat(MAX_FRAME_BYTES));
        assert!(matches!(
            ServerFrame::decode(&big),
            Err(DecodeError::TooLarge(_))
        ));
    }

    #[test]
    fn addressed_events_and_their_placeholders() {
        let e = EventFrame {
            seq: 9,
            id: "e9".into(),
            stream: "acme".into(),
            event_type: "approval.created".into(),
            ts: 5,
            data: json!({"id": "a1", "title": "secret"}),
            user: Some("alice".into()),
        };
        assert_eq!(
            ServerFrame::decode(&e.encode()).unwrap(),
            ServerFrame::Event(e.clone())
        );
        assert!(e.visible_to("alice") && !e.visible_to("bob"));
        let p = e.for_viewer("bob").into_owned();
        assert_eq!((p.seq, p.stream.as_str(), p.ts), (9, "acme", 5));
        assert!(p.is_skipped() && p.user.is_none() && p.data == json!({}));
        assert!(!p.encode().contains("secret") && !p.encode().contains("alice"));
        assert_eq!(
            ServerFrame::decode(&p.encode()).unwrap(),
            ServerFrame::Event(p)
        );
        assert_eq!(*e.for_viewer("alice"), e);
        let everyone = EventFrame { user: None, ..e };
        assert!(everyone.visible_to("bob"));
        assert!(
            !everyone.encode().contains("\"user\""),
            "no user field when none"
        );
    }

    #[test]
    fn unknown_fields_and_types_still_decode() {
        let f = ServerFrame::decode(
            r#"{"type":"robot.danced","seq":2,"id":"x","stream":"s","ts":1,"data":{},"new":true}"#,
        )
        .unwrap();
        assert!(matches!(f, ServerFrame::Event(e) if e.event_type == "robot.danced"));
    }
}
