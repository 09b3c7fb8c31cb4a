//! REST bodies: the snapshot, an events page and an error body as
//! `pulse_core::rest` reads them (`serde_json::from_slice` into the
//! `pulse_protocol::rest` types, `rest::classify` for error statuses and
//! `rest::parse_retry_after`), fed any bytes.
//!
//! The first two bytes pick an HTTP status (400–599) for the error path; the
//! rest is the body, and its first line is also tried as a `Retry-After`.
//!
//! Checks, beyond "no panic":
//! - a snapshot, events page, mutation answer or API error that decodes
//!   re-encodes to JSON that decodes to the same value (nothing in a body is
//!   lost or changed by the types that carry it);
//! - an error body becomes the `RestError` variant of its status (401
//!   Unauthorized with a code, 403, 404, 409, 429 RateLimited, the rest Http
//!   with the same status), and a body that is not the API's error shape is
//!   kept as an excerpt of at most 200 characters;
//! - a `Retry-After` delay is never more than an hour, whatever the header says;
//! - a profile's REST answer (every resource of every built-in profile, read by
//!   `Mapper::map_rest` as a refetch does) is an effect or an error that says why.
#![no_main]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::StatusCode;
use libfuzzer_sys::fuzz_target;
use pulse_core::profile::{Mapper, Profile, BUILTIN};
use pulse_core::rest::{classify, parse_retry_after, RestError};
use pulse_protocol::rest::{ApiError, EventsPage, MutationResponse, Snapshot};
use std::sync::OnceLock;

/// Every built-in profile's mapper, with its REST resources' names.
fn mappers() -> &'static [(Mapper, Vec<String>)] {
    static M: OnceLock<Vec<(Mapper, Vec<String>)>> = OnceLock::new();
    M.get_or_init(|| {
        BUILTIN
            .iter()
            .map(|(name, _, _)| {
                let p = Profile::builtin(name).expect("built-in profiles parse");
                let rules: Vec<_> = p.spec.event.iter().map(|r| r.get_ref().clone()).collect();
                let rest: std::collections::BTreeMap<_, _> = p
                    .spec
                    .rest
                    .iter()
                    .map(|(k, v)| (k.clone(), v.get_ref().clone()))
                    .collect();
                let names = rest.keys().cloned().collect();
                (Mapper::new(&rules, &rest), names)
            })
            .collect()
    })
}

fn round_trip<T>(body: &[u8])
where
    T: serde::de::DeserializeOwned + serde::Serialize + PartialEq + std::fmt::Debug,
{
    if let Ok(v) = serde_json::from_slice::<T>(body) {
        let text = serde_json::to_vec(&v).expect("decoded bodies serialise");
        let again: T = serde_json::from_slice(&text)
            .unwrap_or_else(|e| panic!("re-encoded {v:?} does not decode: {e}"));
        assert_eq!(again, v, "body changed in a round trip");
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let code = 400 + u16::from_le_bytes([data[0], data[1]]) % 200;
    let body = &data[2..];
    round_trip::<Snapshot>(body);
    round_trip::<EventsPage>(body);
    round_trip::<MutationResponse>(body);
    round_trip::<ApiError>(body);

    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        for (mapper, names) in mappers() {
            for name in names {
                if let Err(why) = mapper.map_rest(name, &v, 0) {
                    assert!(!why.is_empty(), "{name}: an error without a reason");
                }
            }
        }
    }

    // Error bodies reach classify as (redacted, lossy) text.
    let text = String::from_utf8_lossy(body);
    let retry_after = text.lines().next();
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    assert!(parse_retry_after(retry_after, now) <= Duration::from_secs(3600));
    assert!(parse_retry_after(retry_after, SystemTime::now()) <= Duration::from_secs(3600));

    let status = StatusCode::from_u16(code).expect("400..600 is a status");
    let is_api_error = serde_json::from_str::<ApiError>(&text).is_ok();
    let excerpt_ok = |m: &str| is_api_error || m.chars().count() <= 200;
    match (code, classify(status, retry_after, &text)) {
        (401, RestError::Unauthorized { code, message }) => {
            assert!(!code.is_empty());
            assert!(excerpt_ok(&message));
        }
        (403, RestError::Forbidden(m)) | (404, RestError::NotFound(m)) => {
            assert!(excerpt_ok(&m))
        }
        (409, RestError::Conflict { message, .. }) => assert!(excerpt_ok(&message)),
        (429, RestError::RateLimited { retry_after }) => {
            assert!(retry_after <= Duration::from_secs(3600))
        }
        (c, RestError::Http { status, message }) if ![401, 403, 404, 409, 429].contains(&c) => {
            assert_eq!(status, c);
            assert!(excerpt_ok(&message));
        }
        (c, other) => panic!("status {c} classified as {other:?}"),
    }
});
