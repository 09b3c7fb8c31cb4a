//! Engine.IO v4 packets: the pure codec under Socket.IO (no I/O).
//!
//! One packet is `<type digit>[<data>]` in a WebSocket text frame; a WebSocket
//! binary frame is a `message` packet whose data is the frame itself (v4 puts no
//! type byte in front). Over HTTP long-polling a body holds several packets joined
//! by the record separator `\x1e`, and a binary `message` travels as
//! `b<base64>`.
//!
//! | type | name    | direction                                            |
//! |------|---------|------------------------------------------------------|
//! | `0`  | open    | server → client, JSON handshake                      |
//! | `1`  | close   | both                                                 |
//! | `2`  | ping    | server → client (heartbeat), client → server (probe) |
//! | `3`  | pong    | client → server (heartbeat), server → client (probe) |
//! | `4`  | message | both: one Socket.IO packet                           |
//! | `5`  | upgrade | client → server                                      |
//! | `6`  | noop    | server → client (ends a pending poll)                |
//!
//! Decoding never panics: anything unexpected is a [`DecodeError`].

use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;

use super::DecodeError;

/// The record separator between packets of one long-polling body.
pub const PAYLOAD_SEPARATOR: char = '\x1e';

/// One Engine.IO packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EioPacket {
    /// `0{json}`: the session handshake (raw JSON, see [`Handshake::parse`]).
    Open(String),
    /// `1`: close the session.
    Close,
    /// `2[data]`: heartbeat from the server (data is `probe` during an upgrade).
    Ping(String),
    /// `3[data]`: answer to a ping.
    Pong(String),
    /// `4<text>`: a text message (one Socket.IO packet).
    Message(String),
    /// A binary message (a Socket.IO attachment).
    Binary(Vec<u8>),
    /// `5`: switch to the probed transport.
    Upgrade,
    /// `6`: nothing (forces a poll cycle).
    Noop,
}

impl EioPacket {
    /// Decode one text packet (a WebSocket text frame, or one record of a
    /// long-polling body that is not `b`-prefixed).
    pub fn decode_text(s: &str) -> Result<EioPacket, DecodeError> {
        let mut chars = s.chars();
        let Some(kind) = chars.next() else {
            return Err(DecodeError::Empty);
        };
        let data = chars.as_str();
        Ok(match kind {
            '0' => EioPacket::Open(data.to_owned()),
            '1' => EioPacket::Close,
            '2' => EioPacket::Ping(data.to_owned()),
            '3' => EioPacket::Pong(data.to_owned()),
            '4' => EioPacket::Message(data.to_owned()),
            '5' => EioPacket::Upgrade,
            '6' => EioPacket::Noop,
            other => return Err(DecodeError::UnknownEnginePacket(other)),
        })
    }

    /// Encode for a WebSocket: `Ok(text)` for a text frame, `Err(bytes)` for a
    /// binary frame.
    pub fn encode_ws(&self) -> Result<String, &[u8]> {
        match self {
            EioPacket::Binary(b) => Err(b),
            other => Ok(other.encode_polling()),
        }
    }

    /// Encode as one long-polling record (binary as `b<base64>`); for every
    /// packet but [`EioPacket::Binary`] this is also the WebSocket text form.
    pub fn encode_polling(&self) -> String {
        let (kind, data) = match self {
            EioPacket::Open(d) => ('0', d.as_str()),
            EioPacket::Close => ('1', ""),
            EioPacket::Ping(d) => ('2', d.as_str()),
            EioPacket::Pong(d) => ('3', d.as_str()),
            EioPacket::Message(d) => ('4', d.as_str()),
            EioPacket::Upgrade => ('5', ""),
            EioPacket::Noop => ('6', ""),
            EioPacket::Binary(b) => {
                let mut s = String::with_capacity(1 + b.len().div_ceil(3) * 4);
                s.push('b');
                base64::engine::general_purpose::STANDARD.encode_string(b, &mut s);
                return s;
            }
        };
        let mut s = String::with_capacity(data.len() + 1);
        s.push(kind);
        s.push_str(data);
        s
    }
}

/// Split a long-polling response body into packets. Each record decodes on its
/// own: one bad record is an error in its slot, the others still count.
pub fn decode_payload(body: &str) -> Vec<Result<EioPacket, DecodeError>> {
    body.split(PAYLOAD_SEPARATOR)
        .map(|record| {
            if let Some(b64) = record.strip_prefix('b') {
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map(EioPacket::Binary)
                    .map_err(|_| DecodeError::BadBase64)
            } else {
                EioPacket::decode_text(record)
            }
        })
        .collect()
}

/// Join packets into one long-polling request body.
pub fn encode_payload<'a>(packets: impl IntoIterator<Item = &'a EioPacket>) -> String {
    let mut out = String::new();
    for (i, p) in packets.into_iter().enumerate() {
        if i > 0 {
            out.push(PAYLOAD_SEPARATOR);
        }
        out.push_str(&p.encode_polling());
    }
    out
}

/// The server's `open` packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// Engine.IO session id (sensitive: it is the only credential of a polling
    /// session, so it is never logged).
    pub sid: String,
    /// Transports the session may be upgraded to (`["websocket"]` on polling).
    pub upgrades: Vec<String>,
    /// The server sends a ping every `ping_interval`.
    pub ping_interval: Duration,
    /// … and waits `ping_timeout` for the pong.
    pub ping_timeout: Duration,
    /// Largest body the server accepts in one long-polling POST, in bytes.
    pub max_payload: u64,
}

impl Handshake {
    /// Default `maxPayload` (engine.io's `maxHttpBufferSize`) when the server
    /// does not say.
    pub const DEFAULT_MAX_PAYLOAD: u64 = 1_000_000;

    /// Parse the JSON of an `open` packet.
    pub fn parse(json: &str) -> Result<Handshake, DecodeError> {
        let v: Value =
            serde_json::from_str(json).map_err(|e| DecodeError::BadHandshake(e.to_string()))?;
        let sid = v
            .get("sid")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| DecodeError::BadHandshake("no `sid`".into()))?
            .to_owned();
        let ms = |key: &str| {
            v.get(key)
                .and_then(Value::as_u64)
                .map(Duration::from_millis)
                .ok_or_else(|| DecodeError::BadHandshake(format!("no numeric `{key}`")))
        };
        let ping_interval = ms("pingInterval")?;
        let ping_timeout = ms("pingTimeout")?;
        let upgrades = match v.get("upgrades") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            Some(_) => {
                return Err(DecodeError::BadHandshake(
                    "`upgrades` is not an array".into(),
                ))
            }
        };
        let max_payload = v
            .get("maxPayload")
            .and_then(Value::as_u64)
            .unwrap_or(Self::DEFAULT_MAX_PAYLOAD);
        Ok(Handshake {
            sid,
            upgrades,
            ping_interval,
            ping_timeout,
            max_payload,
        })
    }

    /// How long the link may stay without a ping before it is taken as dead:
    /// `pingInterval + pingTimeout`, at most a day (absurd values stay usable
    /// as timer deadlines).
    pub fn dead_after(&self) -> Duration {
        self.ping_interval
            .saturating_add(self.ping_timeout)
            .min(crate::transport::link::MAX_SILENCE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_packets_round_trip() {
        for p in [
            EioPacket::Open("{}".into()),
            EioPacket::Close,
            EioPacket::Ping(String::new()),
            EioPacket::Ping("probe".into()),
            EioPacket::Pong("probe".into()),
            EioPacket::Message("2[\"a\"]".into()),
            EioPacket::Upgrade,
            EioPacket::Noop,
        ] {
            let s = p.encode_ws().unwrap();
            assert_eq!(EioPacket::decode_text(&s).unwrap(), p);
        }
        assert_eq!(
            EioPacket::Binary(vec![1, 2]).encode_ws(),
            Err(&[1u8, 2][..])
        );
    }

    #[test]
    fn bad_text_packets_are_errors() {
        assert_eq!(EioPacket::decode_text(""), Err(DecodeError::Empty));
        assert_eq!(
            EioPacket::decode_text("7"),
            Err(DecodeError::UnknownEnginePacket('7'))
        );
        assert_eq!(
            EioPacket::decode_text("x42[]"),
            Err(DecodeError::UnknownEnginePacket('x'))
        );
        assert_eq!(
            EioPacket::decode_text("é"),
            Err(DecodeError::UnknownEnginePacket('é'))
        );
    }

    #[test]
    fn polling_payloads() {
        let body = "2\x1e42[\"hey\",\"Jude\"]\x1ebAQIDBA==\x1e6";
        let ps: Vec<_> = decode_payload(body)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            ps,
            vec![
                EioPacket::Ping(String::new()),
                EioPacket::Message("2[\"hey\",\"Jude\"]".into()),
                EioPacket::Binary(vec![1, 2, 3, 4]),
                EioPacket::Noop,
            ]
        );
        assert_eq!(encode_payload(&ps), body);
        // One bad record does not spoil the others.
        let r = decode_payload("b!!!\x1e\x1e9\x1e3");
        assert_eq!(r[0], Err(DecodeError::BadBase64));
        assert_eq!(r[1], Err(DecodeError::Empty));
        assert_eq!(r[2], Err(DecodeError::UnknownEnginePacket('9')));
        assert_eq!(r[3], Ok(EioPacket::Pong(String::new())));
    }

    #[test]
    fn handshakes() {
        let h = Handshake::parse(
            r#"{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#,
        )
        .unwrap();
        assert_eq!(h.sid, "lv_VI97HAXpY6yYWAAAC");
        assert_eq!(h.upgrades, vec!["websocket".to_string()]);
        assert_eq!(h.dead_after(), Duration::from_secs(45));
        let h = Handshake::parse(r#"{"sid":"s","pingInterval":1,"pingTimeout":2}"#).unwrap();
        assert_eq!(h.max_payload, Handshake::DEFAULT_MAX_PAYLOAD);
        assert!(h.upgrades.is_empty());
        for bad in [
            "",
            "null",
            "[]",
            r#"{"sid":"","pingInterval":1,"pingTimeout":2}"#,
            r#"{"sid":"s","pingInterval":"1","pingTimeout":2}"#,
            r#"{"sid":"s","pingInterval":1}"#,
            r#"{"sid":"s","pingInterval":1,"pingTimeout":-2}"#,
            r#"{"sid":"s","pingInterval":1,"pingTimeout":2,"upgrades":"websocket"}"#,
        ] {
            assert!(
                matches!(Handshake::parse(bad), Err(DecodeError::BadHandshake(_))),
                "{bad}"
            );
        }
        // Huge values do not overflow.
        let h = Handshake::parse(&format!(
            r#"{{"sid":"s","pingInterval":{},"pingTimeout":{}}}"#,
            u64::MAX,
            u64::MAX
        ))
        .unwrap();
        assert_eq!(h.dead_after(), Duration::from_secs(86_400));
    }
}
