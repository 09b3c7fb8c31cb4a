//! Socket.IO v5 packets (the default `socket.io-parser` encoding): the pure codec
//! carried inside Engine.IO `message` packets (no I/O).
//!
//! ```text
//! <type>[<attachments>-][<namespace>,][<ack id>][<JSON payload>]
//! ```
//!
//! `0` CONNECT, `1` DISCONNECT, `2` EVENT, `3` ACK, `4` CONNECT_ERROR,
//! `5` BINARY_EVENT, `6` BINARY_ACK. The namespace is written only when it is not
//! `/`. A binary packet's JSON holds `{"_placeholder":true,"num":N}` where the Nth
//! following binary message goes.
//!
//! In decoded packets binary data is a JSON value `{"$binary": "<base64>"}` (see
//! [`binary_value`]); encoding turns such values back into attachments, so binary
//! goes both ways without a second argument type.
//!
//! Invariants: decoding never panics and never trusts a count or index from the
//! wire (attachment counts are capped, placeholders are range-checked); every
//! failure is a [`DecodeError`].

use base64::Engine as _;
use serde_json::{Map, Value};

use super::DecodeError;

/// The key of the JSON object that stands for binary data in decoded arguments.
pub const BINARY_KEY: &str = "$binary";

/// Most attachments one packet may announce (socket.io-parser's default
/// `maxAttachments` is 10).
pub const MAX_ATTACHMENTS: usize = 64;

/// Make the JSON value that stands for binary data: `{"$binary": "<base64>"}`.
/// Put it anywhere in emitted arguments to send those bytes as an attachment.
pub fn binary_value(bytes: &[u8]) -> Value {
    let mut m = Map::with_capacity(1);
    m.insert(
        BINARY_KEY.into(),
        Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
    );
    Value::Object(m)
}

/// The bytes of a value made by [`binary_value`] (or received as an
/// attachment); `None` for any other value.
pub fn as_binary(v: &Value) -> Option<Vec<u8>> {
    let m = v.as_object()?;
    if m.len() != 1 {
        return None;
    }
    let s = m.get(BINARY_KEY)?.as_str()?;
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

/// Packet type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    /// `0`: connect to a namespace (client: optional auth object; server: `{sid, pid?}`).
    Connect,
    /// `1`: leave a namespace.
    Disconnect,
    /// `2`: an event `["name", args…]`.
    Event,
    /// `3`: the answer to an event that asked for one.
    Ack,
    /// `4`: the namespace refused the connection (`{message, data?}`).
    ConnectError,
    /// `5`: an event with binary attachments.
    BinaryEvent,
    /// `6`: an ack with binary attachments.
    BinaryAck,
}

impl PacketKind {
    fn from_char(c: char) -> Option<PacketKind> {
        Some(match c {
            '0' => PacketKind::Connect,
            '1' => PacketKind::Disconnect,
            '2' => PacketKind::Event,
            '3' => PacketKind::Ack,
            '4' => PacketKind::ConnectError,
            '5' => PacketKind::BinaryEvent,
            '6' => PacketKind::BinaryAck,
            _ => return None,
        })
    }

    fn digit(self) -> char {
        match self {
            PacketKind::Connect => '0',
            PacketKind::Disconnect => '1',
            PacketKind::Event => '2',
            PacketKind::Ack => '3',
            PacketKind::ConnectError => '4',
            PacketKind::BinaryEvent => '5',
            PacketKind::BinaryAck => '6',
        }
    }

    fn is_binary(self) -> bool {
        matches!(self, PacketKind::BinaryEvent | PacketKind::BinaryAck)
    }
}

/// One Socket.IO packet. After [`Decoder`] binary kinds are folded into
/// [`PacketKind::Event`] / [`PacketKind::Ack`] with their attachments in place.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    /// Type.
    pub kind: PacketKind,
    /// Namespace (`/` when the wire omitted it).
    pub nsp: String,
    /// Ack id, when the sender wants an answer (events) or answers (acks).
    pub id: Option<u64>,
    /// JSON payload, validated for the type.
    pub data: Option<Value>,
}

/// Reserved event names a server never sends as events (socket.io-parser).
const RESERVED_EVENTS: [&str; 6] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// Parse the text form. Binary packets come back with their announced
/// attachment count; placeholders are still in `data`.
pub fn decode_text(s: &str) -> Result<(Packet, usize), DecodeError> {
    let bytes = s.as_bytes();
    let Some(&first) = bytes.first() else {
        return Err(DecodeError::Empty);
    };
    let kind = PacketKind::from_char(first as char)
        .ok_or_else(|| DecodeError::UnknownSocketPacket(s.chars().next().unwrap_or('\u{fffd}')))?;
    let mut i = 1;
    let mut attachments = 0usize;
    if kind.is_binary() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == start || bytes.get(i) != Some(&b'-') {
            return Err(DecodeError::BadAttachmentCount);
        }
        attachments = s[start..i]
            .parse()
            .map_err(|_| DecodeError::BadAttachmentCount)?;
        if attachments == 0 {
            return Err(DecodeError::BadAttachmentCount);
        }
        if attachments > MAX_ATTACHMENTS {
            return Err(DecodeError::TooManyAttachments(attachments));
        }
        i += 1;
    }
    let nsp = if bytes.get(i) == Some(&b'/') {
        let start = i;
        match s[i..].find(',') {
            Some(off) => {
                i += off;
                let nsp = &s[start..i];
                i += 1;
                nsp.to_owned()
            }
            None => {
                i = bytes.len();
                s[start..].to_owned()
            }
        }
    } else {
        "/".to_owned()
    };
    let id = {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i > start {
            Some(
                s[start..i]
                    .parse::<u64>()
                    .map_err(|_| DecodeError::BadAckId)?,
            )
        } else {
            None
        }
    };
    let data = if i < bytes.len() {
        Some(
            serde_json::from_str::<Value>(&s[i..])
                .map_err(|e| DecodeError::BadJson(e.to_string()))?,
        )
    } else {
        None
    };
    validate(kind, data.as_ref())?;
    Ok((
        Packet {
            kind,
            nsp,
            id,
            data,
        },
        attachments,
    ))
}

fn validate(kind: PacketKind, data: Option<&Value>) -> Result<(), DecodeError> {
    let ok = match kind {
        PacketKind::Connect => matches!(data, None | Some(Value::Object(_))),
        PacketKind::Disconnect => data.is_none(),
        PacketKind::ConnectError => matches!(data, Some(Value::Object(_) | Value::String(_))),
        PacketKind::Event | PacketKind::BinaryEvent => match data {
            Some(Value::Array(a)) => match a.first() {
                Some(Value::Number(_)) => true,
                Some(Value::String(name)) => !RESERVED_EVENTS.contains(&name.as_str()),
                _ => false,
            },
            _ => false,
        },
        PacketKind::Ack | PacketKind::BinaryAck => matches!(data, Some(Value::Array(_))),
    };
    if ok {
        Ok(())
    } else {
        Err(DecodeError::InvalidPayload(kind_name(kind)))
    }
}

fn kind_name(kind: PacketKind) -> &'static str {
    match kind {
        PacketKind::Connect => "CONNECT",
        PacketKind::Disconnect => "DISCONNECT",
        PacketKind::Event => "EVENT",
        PacketKind::Ack => "ACK",
        PacketKind::ConnectError => "CONNECT_ERROR",
        PacketKind::BinaryEvent => "BINARY_EVENT",
        PacketKind::BinaryAck => "BINARY_ACK",
    }
}

/// Put attachments where their placeholders are.
fn reconstruct(v: &mut Value, buffers: &[Vec<u8>]) -> Result<(), DecodeError> {
    match v {
        Value::Array(a) => a.iter_mut().try_for_each(|x| reconstruct(x, buffers)),
        Value::Object(m) => {
            if m.get("_placeholder") == Some(&Value::Bool(true)) {
                let n = m
                    .get("num")
                    .and_then(Value::as_u64)
                    .ok_or(DecodeError::BadPlaceholder)?;
                let bytes = usize::try_from(n)
                    .ok()
                    .and_then(|n| buffers.get(n))
                    .ok_or(DecodeError::BadPlaceholder)?;
                *v = binary_value(bytes);
                Ok(())
            } else {
                m.values_mut().try_for_each(|x| reconstruct(x, buffers))
            }
        }
        _ => Ok(()),
    }
}

/// Turns Engine.IO messages into whole Socket.IO packets, gathering the binary
/// attachments that follow a binary packet.
#[derive(Debug, Default)]
pub struct Decoder {
    pending: Option<Pending>,
}

#[derive(Debug)]
struct Pending {
    packet: Packet,
    expected: usize,
    buffers: Vec<Vec<u8>>,
}

impl Decoder {
    /// A decoder with nothing pending.
    pub fn new() -> Self {
        Decoder::default()
    }

    /// Whether a binary packet is waiting for attachments.
    pub fn is_reconstructing(&self) -> bool {
        self.pending.is_some()
    }

    /// Drop the packet waiting for attachments (a text message came instead):
    /// the error to count for it, if one was pending.
    pub fn abandon(&mut self) -> Option<DecodeError> {
        self.pending
            .take()
            .map(|p| DecodeError::MissingAttachments {
                expected: p.expected,
                got: p.buffers.len(),
            })
    }

    /// Feed a text message. `Ok(None)` means "wait for attachments". A packet
    /// still waiting for attachments is abandoned first (see [`Self::abandon`]:
    /// call it before to count the loss).
    pub fn feed_text(&mut self, s: &str) -> Result<Option<Packet>, DecodeError> {
        self.pending = None;
        let (mut packet, attachments) = decode_text(s)?;
        if attachments == 0 {
            return Ok(Some(packet));
        }
        packet.kind = match packet.kind {
            PacketKind::BinaryEvent => PacketKind::Event,
            _ => PacketKind::Ack,
        };
        self.pending = Some(Pending {
            packet,
            expected: attachments,
            buffers: Vec::with_capacity(attachments),
        });
        Ok(None)
    }

    /// Feed a binary message: an attachment of the pending packet.
    pub fn feed_binary(&mut self, bytes: Vec<u8>) -> Result<Option<Packet>, DecodeError> {
        let Some(p) = self.pending.as_mut() else {
            return Err(DecodeError::UnexpectedBinary);
        };
        p.buffers.push(bytes);
        if p.buffers.len() < p.expected {
            return Ok(None);
        }
        let Some(Pending {
            mut packet,
            buffers,
            ..
        }) = self.pending.take()
        else {
            return Err(DecodeError::UnexpectedBinary);
        };
        if let Some(data) = packet.data.as_mut() {
            reconstruct(data, &buffers)?;
        }
        Ok(Some(packet))
    }
}

/// An encoded packet: the text message and the binary messages that follow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// The text form (without the Engine.IO `4`).
    pub text: String,
    /// Attachments, in order.
    pub attachments: Vec<Vec<u8>>,
}

/// Encode a packet. Binary values (see [`binary_value`]) in `data` become
/// attachments and turn EVENT/ACK into BINARY_EVENT/BINARY_ACK.
pub fn encode(kind: PacketKind, nsp: &str, id: Option<u64>, data: Option<&Value>) -> Encoded {
    let mut attachments = Vec::new();
    let mut owned;
    let mut data = data;
    if let Some(d) = data {
        if matches!(kind, PacketKind::Event | PacketKind::Ack) && has_binary(d) {
            owned = d.clone();
            deconstruct(&mut owned, &mut attachments);
            data = Some(&owned);
        }
    }
    let kind = match kind {
        PacketKind::Event if !attachments.is_empty() => PacketKind::BinaryEvent,
        PacketKind::Ack if !attachments.is_empty() => PacketKind::BinaryAck,
        k => k,
    };
    let mut text = String::new();
    text.push(kind.digit());
    if kind.is_binary() {
        text.push_str(&attachments.len().to_string());
        text.push('-');
    }
    if nsp != "/" && !nsp.is_empty() {
        text.push_str(nsp);
        text.push(',');
    }
    if let Some(id) = id {
        text.push_str(&id.to_string());
    }
    if let Some(d) = data {
        // Serializing a Value to a String cannot fail.
        text.push_str(&serde_json::to_string(d).unwrap_or_default());
    }
    Encoded { text, attachments }
}

fn has_binary(v: &Value) -> bool {
    match v {
        Value::Array(a) => a.iter().any(has_binary),
        Value::Object(m) => as_binary(v).is_some() || m.values().any(has_binary),
        _ => false,
    }
}

fn deconstruct(v: &mut Value, out: &mut Vec<Vec<u8>>) {
    if let Some(bytes) = as_binary(v) {
        let mut m = Map::with_capacity(2);
        m.insert("_placeholder".into(), Value::Bool(true));
        m.insert("num".into(), Value::from(out.len()));
        out.push(bytes);
        *v = Value::Object(m);
        return;
    }
    match v {
        Value::Array(a) => a.iter_mut().for_each(|x| deconstruct(x, out)),
        Value::Object(m) => m.values_mut().for_each(|x| deconstruct(x, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Found by the `socketio` fuzz target: numbers with 17+ significant
    /// digits came back one ulp off after decode → encode → decode (serde_json's
    /// default float parser is not exact; the workspace turns on
    /// `float_roundtrip`). What a server sends is what Pulse keeps.
    #[test]
    fn long_numbers_survive_a_round_trip_exactly() {
        let text = "2[\r2222222999099240,222222222225552229522295555,\
                    22222222222999099240,2222222222255522295555,\
                    2222222232299909555,2222222222223229992221]";
        let (p, _) = decode_text(text).unwrap();
        let again = encode(p.kind, &p.nsp, p.id, p.data.as_ref());
        assert_eq!(one(&again.text).unwrap(), p);
        // Each number is the nearest f64 (the standard library's parser is exact).
        let args = p.data.as_ref().and_then(Value::as_array).unwrap();
        assert_eq!(args[1].as_f64(), "222222222225552229522295555".parse().ok());
        assert_eq!(args[5].as_f64(), "2222222222223229992221".parse().ok());
    }

    fn one(s: &str) -> Result<Packet, DecodeError> {
        let mut d = Decoder::new();
        d.feed_text(s).map(|p| p.expect("not a binary packet"))
    }

    #[test]
    fn protocol_examples_decode() {
        let p = one("0").unwrap();
        assert_eq!(
            (p.kind, p.nsp.as_str(), p.id, p.data),
            (PacketKind::Connect, "/", None, None)
        );
        let p = one("0/admin,").unwrap();
        assert_eq!((p.kind, p.nsp.as_str()), (PacketKind::Connect, "/admin"));
        let p = one("0/admin").unwrap();
        assert_eq!(p.nsp, "/admin");
        let p = one(r#"0/admin,{"sid":"oSO0OpakMV_3jnilAAAA","pid":"x"}"#).unwrap();
        assert_eq!(
            p.data,
            Some(json!({"sid": "oSO0OpakMV_3jnilAAAA", "pid": "x"}))
        );
        let p = one(r#"4{"message":"Not authorized"}"#).unwrap();
        assert_eq!(p.kind, PacketKind::ConnectError);
        let p = one(r#"4/realtime,"plain string""#).unwrap();
        assert_eq!(p.data, Some(json!("plain string")));
        let p = one(r#"2["foo"]"#).unwrap();
        assert_eq!((p.kind, p.data), (PacketKind::Event, Some(json!(["foo"]))));
        let p = one(r#"2/admin,13["foo",1,{"a":[true,null]}]"#).unwrap();
        assert_eq!((p.nsp.as_str(), p.id), ("/admin", Some(13)));
        assert_eq!(p.data, Some(json!(["foo", 1, {"a": [true, null]}])));
        let p = one("312[]").unwrap();
        assert_eq!(
            (p.kind, p.id, p.data),
            (PacketKind::Ack, Some(12), Some(json!([])))
        );
        let p = one("1/admin,").unwrap();
        assert_eq!(
            (p.kind, p.nsp.as_str(), p.data),
            (PacketKind::Disconnect, "/admin", None)
        );
        let p = one(r#"2[7,"x"]"#).unwrap();
        assert_eq!(p.data, Some(json!([7, "x"])));
    }

    #[test]
    fn binary_packets_gather_their_attachments() {
        let mut d = Decoder::new();
        assert_eq!(d.feed_text(r#"52-/admin,7["baz",{"_placeholder":true,"num":1},{"x":{"_placeholder":true,"num":0}}]"#), Ok(None));
        assert!(d.is_reconstructing());
        assert_eq!(d.feed_binary(vec![1, 2]), Ok(None));
        let p = d.feed_binary(vec![3, 4]).unwrap().unwrap();
        assert_eq!(
            (p.kind, p.nsp.as_str(), p.id),
            (PacketKind::Event, "/admin", Some(7))
        );
        let data = p.data.unwrap();
        assert_eq!(as_binary(&data[1]), Some(vec![3, 4]));
        assert_eq!(as_binary(&data[2]["x"]), Some(vec![1, 2]));
        assert_eq!(data[2]["x"], json!({"$binary": "AQI="}));
        assert!(!d.is_reconstructing());
        // Binary ack.
        assert_eq!(
            d.feed_text(r#"61-15["bar",{"_placeholder":true,"num":0}]"#),
            Ok(None)
        );
        let p = d.feed_binary(vec![9]).unwrap().unwrap();
        assert_eq!((p.kind, p.id), (PacketKind::Ack, Some(15)));
    }

    #[test]
    fn encoding_matches_the_protocol_examples() {
        let e = |k, nsp, id, d: Option<Value>| encode(k, nsp, id, d.as_ref()).text;
        assert_eq!(e(PacketKind::Connect, "/", None, None), "0");
        assert_eq!(e(PacketKind::Connect, "/admin", None, None), "0/admin,");
        assert_eq!(
            e(
                PacketKind::Connect,
                "/realtime",
                None,
                Some(json!({"token": "t"}))
            ),
            r#"0/realtime,{"token":"t"}"#
        );
        assert_eq!(
            e(PacketKind::Event, "/", None, Some(json!(["foo"]))),
            r#"2["foo"]"#
        );
        assert_eq!(
            e(PacketKind::Event, "/admin", Some(13), Some(json!(["foo"]))),
            r#"2/admin,13["foo"]"#
        );
        assert_eq!(e(PacketKind::Ack, "/", Some(12), Some(json!([]))), "312[]");
        assert_eq!(e(PacketKind::Disconnect, "/admin", None, None), "1/admin,");
        let enc = encode(
            PacketKind::Event,
            "/admin",
            None,
            Some(&json!([
                "baz",
                binary_value(&[1, 2]),
                binary_value(&[3, 4])
            ])),
        );
        assert_eq!(
            enc.text,
            r#"52-/admin,["baz",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#
        );
        assert_eq!(enc.attachments, vec![vec![1, 2], vec![3, 4]]);
        let enc = encode(
            PacketKind::Ack,
            "/",
            Some(15),
            Some(&json!(["bar", {"deep": [binary_value(&[1, 2, 3, 4])]}])),
        );
        assert_eq!(
            enc.text,
            r#"61-15["bar",{"deep":[{"_placeholder":true,"num":0}]}]"#
        );
        // Round trip through the decoder.
        let mut d = Decoder::new();
        assert_eq!(d.feed_text(&enc.text), Ok(None));
        let p = d.feed_binary(enc.attachments[0].clone()).unwrap().unwrap();
        assert_eq!(
            p.data,
            Some(json!(["bar", {"deep": [binary_value(&[1, 2, 3, 4])]}]))
        );
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        type Check = fn(&DecodeError) -> bool;
        let cases: &[(&str, Check)] = &[
            ("", |e| *e == DecodeError::Empty),
            ("9", |e| matches!(e, DecodeError::UnknownSocketPacket('9'))),
            ("é[]", |e| {
                matches!(e, DecodeError::UnknownSocketPacket('é'))
            }),
            ("2", |e| matches!(e, DecodeError::InvalidPayload("EVENT"))),
            ("2[]", |e| matches!(e, DecodeError::InvalidPayload("EVENT"))),
            ("2{}", |e| matches!(e, DecodeError::InvalidPayload("EVENT"))),
            ("2[null]", |e| {
                matches!(e, DecodeError::InvalidPayload("EVENT"))
            }),
            (r#"2["connect"]"#, |e| {
                matches!(e, DecodeError::InvalidPayload("EVENT"))
            }),
            ("2[\"a\"", |e| matches!(e, DecodeError::BadJson(_))),
            ("2not json", |e| matches!(e, DecodeError::BadJson(_))),
            ("2/ns,[\"a\"]trailing", |e| {
                matches!(e, DecodeError::BadJson(_))
            }),
            ("299999999999999999999999[\"a\"]", |e| {
                *e == DecodeError::BadAckId
            }),
            ("3", |e| matches!(e, DecodeError::InvalidPayload("ACK"))),
            ("3{}", |e| matches!(e, DecodeError::InvalidPayload("ACK"))),
            ("1[]", |e| {
                matches!(e, DecodeError::InvalidPayload("DISCONNECT"))
            }),
            ("0[]", |e| {
                matches!(e, DecodeError::InvalidPayload("CONNECT"))
            }),
            ("4", |e| {
                matches!(e, DecodeError::InvalidPayload("CONNECT_ERROR"))
            }),
            ("4[1]", |e| {
                matches!(e, DecodeError::InvalidPayload("CONNECT_ERROR"))
            }),
            ("5[\"a\"]", |e| *e == DecodeError::BadAttachmentCount),
            ("5-[\"a\"]", |e| *e == DecodeError::BadAttachmentCount),
            ("50-[\"a\"]", |e| *e == DecodeError::BadAttachmentCount),
            ("51[\"a\"]", |e| *e == DecodeError::BadAttachmentCount),
            ("599999999999999999999999-[\"a\"]", |e| {
                *e == DecodeError::BadAttachmentCount
            }),
            ("51000-[\"a\"]", |e| {
                matches!(e, DecodeError::TooManyAttachments(1000))
            }),
            ("61-", |e| {
                matches!(e, DecodeError::InvalidPayload("BINARY_ACK"))
            }),
        ];
        for (input, check) in cases {
            let r = one(input);
            match r {
                Err(e) => assert!(check(&e), "{input:?} gave {e:?}"),
                Ok(p) => panic!("{input:?} decoded to {p:?}"),
            }
        }
        // Placeholders that point nowhere.
        for bad in [
            r#"51-["a",{"_placeholder":true,"num":1}]"#,
            r#"51-["a",{"_placeholder":true,"num":-1}]"#,
            r#"51-["a",{"_placeholder":true,"num":"0"}]"#,
            r#"51-["a",{"_placeholder":true}]"#,
            r#"51-["a",{"_placeholder":true,"num":18446744073709551615}]"#,
        ] {
            let mut d = Decoder::new();
            assert_eq!(d.feed_text(bad), Ok(None), "{bad}");
            assert_eq!(
                d.feed_binary(vec![1]),
                Err(DecodeError::BadPlaceholder),
                "{bad}"
            );
            assert!(!d.is_reconstructing());
        }
        // Binary with nothing pending; text while attachments are pending.
        let mut d = Decoder::new();
        assert_eq!(d.feed_binary(vec![1]), Err(DecodeError::UnexpectedBinary));
        assert_eq!(
            d.feed_text(r#"52-["a",{"_placeholder":true,"num":0}]"#),
            Ok(None)
        );
        assert_eq!(d.feed_binary(vec![1]), Ok(None));
        assert_eq!(
            d.abandon(),
            Some(DecodeError::MissingAttachments {
                expected: 2,
                got: 1
            })
        );
        assert_eq!(d.abandon(), None);
        assert!(d.feed_text(r#"2["ok"]"#).unwrap().is_some());
        // Random bytes (deterministic generator): only errors or packets, no panic.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let alphabet: Vec<char> = "0123456789-/,[]{}\":_placeholdernum truefalse\u{1e}é"
            .chars()
            .collect();
        for _ in 0..20_000 {
            let len = (x % 24) as usize;
            let mut s = String::new();
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                s.push(alphabet[(x % alphabet.len() as u64) as usize]);
            }
            let mut d = Decoder::new();
            let _ = d.feed_text(&s);
            let _ = d.feed_binary(s.into_bytes());
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
    }

    #[test]
    fn binary_values() {
        let v = binary_value(&[0, 255]);
        assert_eq!(as_binary(&v), Some(vec![0, 255]));
        assert_eq!(as_binary(&json!({"$binary": "!!"})), None);
        assert_eq!(as_binary(&json!({"$binary": "AA==", "other": 1})), None);
        assert_eq!(as_binary(&json!("AA==")), None);
        // Objects that merely look alike are sent as JSON.
        let enc = encode(
            PacketKind::Event,
            "/",
            None,
            Some(&json!(["x", {"$binary": 5}])),
        );
        assert_eq!(enc.text, r#"2["x",{"$binary":5}]"#);
        assert!(enc.attachments.is_empty());
    }
}
