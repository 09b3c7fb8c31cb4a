//! Engine.IO v4 packets, long-polling payloads and the `open` handshake
//! (`pulse_core::transport::socketio::engineio`), fed any bytes.
//!
//! Checks, beyond "no panic":
//! - a text packet that decodes re-encodes to the same text form and decodes to
//!   the same packet;
//! - a payload's packets, joined again by `encode_payload`, split into the same
//!   packets (binary records included: base64 is canonical both ways);
//! - a handshake that parses has a sid, and its `dead_after` is at most a day
//!   whatever the server's numbers (`link::MAX_SILENCE`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pulse_core::transport::link::MAX_SILENCE;
use pulse_core::transport::socketio::engineio::{
    decode_payload, encode_payload, EioPacket, Handshake,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = EioPacket::decode_text(text) {
        let ws = p.encode_ws().expect("a text packet encodes as text");
        assert_eq!(EioPacket::decode_text(&ws).as_ref(), Ok(&p));
        // Data-carrying packets keep their data byte for byte.
        if matches!(
            p,
            EioPacket::Open(_) | EioPacket::Ping(_) | EioPacket::Pong(_) | EioPacket::Message(_)
        ) {
            assert_eq!(ws, text);
        }
    }
    let records = decode_payload(text);
    let good: Vec<EioPacket> = records.into_iter().filter_map(Result::ok).collect();
    if !good.is_empty() {
        let body = encode_payload(&good);
        let back: Vec<EioPacket> = decode_payload(&body)
            .into_iter()
            .map(|r| r.unwrap_or_else(|e| panic!("re-encoded payload {body:?}: {e}")))
            .collect();
        assert_eq!(back, good, "payload changed in a round trip");
    }
    if let Ok(h) = Handshake::parse(text) {
        assert!(!h.sid.is_empty());
        assert!(h.dead_after() <= MAX_SILENCE);
    }
});
