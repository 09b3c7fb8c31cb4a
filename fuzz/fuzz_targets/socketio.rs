//! Socket.IO v5 packets and the attachment decoder
//! (`pulse_core::transport::socketio::packet`), fed any bytes.
//!
//! The input is read two ways: as one text packet (its UTF-8), and as a
//! sequence of Engine.IO messages split at `0xFF` bytes (never in UTF-8), each
//! one text when its first byte is even and binary (the rest) when odd, fed
//! to a [`Decoder`] as a socket would.
//!
//! Checks, beyond "no panic":
//! - a packet that decodes re-encodes (binary values becoming attachments) to
//!   messages that decode to the same packet;
//! - the decoder never hands out a binary kind or an unfilled placeholder, says
//!   "waiting" exactly when it holds a packet, and every refusal is a
//!   documented `DecodeError`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pulse_core::transport::socketio::packet::{decode_text, encode, Decoder, Packet, PacketKind};
use serde_json::Value;

fn has_placeholder(v: &Value) -> bool {
    match v {
        Value::Array(a) => a.iter().any(has_placeholder),
        Value::Object(m) => {
            m.get("_placeholder") == Some(&Value::Bool(true)) || m.values().any(has_placeholder)
        }
        _ => false,
    }
}

fn round_trip(p: &Packet) {
    let enc = encode(p.kind, &p.nsp, p.id, p.data.as_ref());
    let mut d = Decoder::new();
    let mut got = d
        .feed_text(&enc.text)
        .unwrap_or_else(|e| panic!("re-encoded {p:?} as {:?}: {e}", enc.text));
    for a in enc.attachments {
        assert!(got.is_none(), "a packet before its attachments");
        got = d.feed_binary(a).expect("an attachment of our own packet");
    }
    assert_eq!(got.as_ref(), Some(p), "packet changed in a round trip");
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        match decode_text(text) {
            Ok((p, 0)) => {
                // A literal `{"_placeholder": true}` next to binary values is
                // ambiguous on the wire (socket.io-parser has the same rule):
                // only packets without one must come back unchanged.
                if !p.data.as_ref().is_some_and(has_placeholder) {
                    round_trip(&p);
                }
            }
            Ok((p, n)) => {
                assert!(matches!(
                    p.kind,
                    PacketKind::BinaryEvent | PacketKind::BinaryAck
                ));
                assert!(
                    (1..=pulse_core::transport::socketio::packet::MAX_ATTACHMENTS).contains(&n)
                );
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }

    let mut d = Decoder::new();
    for msg in data.split(|b| *b == 0xFF) {
        let Some((&first, rest)) = msg.split_first() else {
            continue;
        };
        let binary = first % 2 == 1;
        let r = if binary {
            d.feed_binary(rest.to_vec())
        } else {
            let Ok(t) = std::str::from_utf8(rest) else {
                continue;
            };
            let _ = d.abandon();
            d.feed_text(t)
        };
        match r {
            Ok(Some(p)) => {
                assert!(!d.is_reconstructing());
                assert!(!matches!(
                    p.kind,
                    PacketKind::BinaryEvent | PacketKind::BinaryAck
                ));
                if binary {
                    // Every placeholder was filled with its attachment.
                    assert!(!p.data.as_ref().is_some_and(has_placeholder), "{p:?}");
                }
            }
            Ok(None) => assert!(d.is_reconstructing()),
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
});
