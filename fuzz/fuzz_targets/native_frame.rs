//! The native frame decoder (`pulse_protocol::frame`), fed any bytes.
//!
//! Checks, beyond "no panic":
//! - a frame that decodes re-encodes to a frame that decodes to the same value
//!   (decode → encode → decode is the identity on what was understood);
//! - a refusal is the documented [`DecodeError`], `TooLarge` exactly when the text
//!   is over `MAX_FRAME_BYTES`, with a message a person can read;
//! - an accepted seq or head is at most `MAX_SEQ`, and an event's seq is never 0;
//! - the same for the client frames the gateway decodes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pulse_protocol::frame::{ClientFrame, DecodeError, ServerFrame, MAX_SEQ};
use pulse_protocol::MAX_FRAME_BYTES;

fuzz_target!(|data: &[u8]| {
    // WebSocket text messages are UTF-8; tungstenite refuses the rest before us.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match ServerFrame::decode(text) {
        Ok(frame) => {
            match &frame {
                ServerFrame::Event(e) => {
                    assert!(e.seq >= 1 && e.seq <= MAX_SEQ, "seq {}", e.seq);
                    assert!(!e.id.is_empty());
                }
                ServerFrame::Subscribed(s) => assert!(s.head <= MAX_SEQ),
                _ => {}
            }
            let again = ServerFrame::decode(&frame.encode())
                .unwrap_or_else(|e| panic!("re-encoded {frame:?} does not decode: {e}"));
            assert_eq!(again, frame, "decode → encode → decode changed the frame");
        }
        Err(e) => {
            assert_eq!(
                matches!(e, DecodeError::TooLarge(_)),
                text.len() > MAX_FRAME_BYTES
            );
            assert!(!e.to_string().is_empty());
        }
    }
    match ClientFrame::decode(text) {
        Ok(frame) => {
            let again = ClientFrame::decode(&frame.encode())
                .unwrap_or_else(|e| panic!("re-encoded {frame:?} does not decode: {e}"));
            assert_eq!(again, frame, "client frame changed in a round trip");
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
