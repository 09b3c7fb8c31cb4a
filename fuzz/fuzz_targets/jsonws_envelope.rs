//! The jsonws envelope paths (`pulse_core::transport::jsonws::Envelope`) and what
//! the profile transport does with a decoded message (`profile::Mapper`), fed any
//! bytes.
//!
//! The first line of the input is the envelope (`type|data|ts` JSON pointers),
//! the rest is the message. The message is decoded with that envelope, and with
//! the envelope of every built-in jsonws profile, and then mapped by that
//! profile's rules as its socket would.
//!
//! Checks, beyond "no panic":
//! - an accepted message has a non-empty type that is exactly the string at the
//!   type path, and its data is exactly the value at the data path (`null` when
//!   absent, the whole message for `""`);
//! - a refusal is an `EnvelopeError` with a message;
//! - mapping is total: effects, `MapError::Unknown` for an event no rule names,
//!   or `MapError::Shape` naming the event (the `Mapper` contract).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pulse_core::profile::{MapError, Mapper, Profile, TransportKind, BUILTIN};
use pulse_core::transport::jsonws::Envelope;
use serde_json::Value;
use std::sync::OnceLock;

fn profiles() -> &'static [(Envelope, Mapper)] {
    static P: OnceLock<Vec<(Envelope, Mapper)>> = OnceLock::new();
    P.get_or_init(|| {
        BUILTIN
            .iter()
            .map(|(name, _, _)| Profile::builtin(name).expect("built-in profiles parse"))
            .filter(|p| p.spec.transport == TransportKind::Jsonws)
            .map(|p| {
                let env = Envelope {
                    type_path: p.spec.envelope.type_path.clone(),
                    data_path: p.spec.envelope.data.clone(),
                    ts_path: p.spec.envelope.ts.clone(),
                };
                let rules: Vec<_> = p.spec.event.iter().map(|r| r.get_ref().clone()).collect();
                let rest = p
                    .spec
                    .rest
                    .iter()
                    .map(|(k, v)| (k.clone(), v.get_ref().clone()))
                    .collect();
                (env, Mapper::new(&rules, &rest))
            })
            .collect()
    })
}

fn check(env: &Envelope, text: &str) -> Option<(String, Value, Option<i64>)> {
    match env.decode(text) {
        Ok(e) => {
            let v: Value = serde_json::from_str(text).expect("accepted text is JSON");
            assert!(!e.event_type.is_empty());
            assert_eq!(
                v.pointer(&env.type_path),
                Some(&Value::String(e.event_type.clone()))
            );
            let want = if env.data_path.is_empty() {
                v.clone()
            } else {
                v.pointer(&env.data_path).cloned().unwrap_or(Value::Null)
            };
            assert_eq!(e.data, want, "data is not the value at the data path");
            Some((e.event_type, e.data, e.ts))
        }
        Err(e) => {
            assert!(!e.0.is_empty());
            None
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (head, message) = text.split_once('\n').unwrap_or(("", text));
    let mut parts = head.splitn(3, '|');
    let own = Envelope {
        type_path: parts.next().unwrap_or("/type").to_owned(),
        data_path: parts.next().unwrap_or("/data").to_owned(),
        ts_path: parts.next().map(str::to_owned),
    };
    check(&own, message);
    for (env, mapper) in profiles() {
        for m in [message, text] {
            if let Some((name, data, ts)) = check(env, m) {
                match mapper.map_event(&name, &data, ts.unwrap_or(0)) {
                    Ok(_) => {}
                    Err(MapError::Unknown(n)) => assert_eq!(n, name),
                    Err(MapError::Shape { event, message }) => {
                        assert_eq!(event, name);
                        assert!(!message.is_empty());
                    }
                }
            }
        }
    }
});
