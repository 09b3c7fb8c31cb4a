//! [`SnapshotDecoder`]: a `GET /v1/snapshot` body ([`pulse_protocol::rest::Snapshot`])
//! decoded as its bytes arrive, its entities turned into the cache's rows
//! ([`SnapshotRows`]) one at a time.
//!
//! Invariants:
//! - the body is never held whole and the entities are never held parsed: only the
//!   bytes of the value being read (one entity, or one top-level field) wait for
//!   their end; each entity is parsed by serde (as [`Entity`]) and encoded into its
//!   row at once;
//! - it accepts exactly the bodies `serde_json::from_slice::<Snapshot>` accepts
//!   (fields in any order, unknown fields skipped but checked to be JSON, a field
//!   twice refused, every field required, nothing but whitespace after the object),
//!   and gives the same rows in the same order, so a streamed load and a whole-body
//!   load leave the same cache (one difference: serde's nesting limit of 128
//!   counts from each entity here, from the body's top there, so an entity nested
//!   127 or 128 deep is taken here and refused there);
//! - at most `limit` bytes are taken: one more is an error naming the bound
//!   ([`super::over_limit`], the same words as [`super::read_limited`]), whatever
//!   was decoded so far is dropped by the caller, and nothing reaches the store;
//! - a body that ends early (cut mid-way) is an error from [`SnapshotDecoder::finish`].

use pulse_protocol::domain::Entity;
use serde::de::IgnoredAny;

use crate::store::SnapshotRows;

/// A snapshot decoded from a stream: its position and its entities as rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamedSnapshot {
    /// The stream (= tenant).
    pub stream: String,
    /// The stream's epoch.
    pub epoch: String,
    /// Every event up to and including this seq is reflected in `entities`.
    pub seq: u64,
    /// Every live entity of the tenant, encoded as the cache keeps them.
    pub entities: SnapshotRows,
}

/// Where the decoder is in `{"stream": …, "epoch": …, "seq": …, "entities": [ … ]}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// Before the opening `{`.
    Start,
    /// After `{`: a key or `}`.
    FirstKey,
    /// After `,`: a key.
    Key,
    /// After a key: `:`.
    Colon,
    /// After `:`: the field's value.
    Value,
    /// After `"entities":`: `[`.
    ArrayOpen,
    /// After `[`: an entity or `]`.
    FirstEntity,
    /// After `,` in the array: an entity.
    Entity,
    /// After an entity: `,` or `]`.
    AfterEntity,
    /// After a field's value: `,` or `}`.
    AfterValue,
    /// After the closing `}`: only whitespace.
    Done,
}

/// What is being scanned for its end: the value starting at the decoder's `pos`.
#[derive(Debug, Clone, Copy, Default)]
struct Scan {
    /// Bytes past `pos` already looked at.
    seen: usize,
    /// Open `{` / `[` (for an object or array).
    depth: u32,
    /// Inside a string.
    in_str: bool,
    /// After a `\` inside a string.
    escaped: bool,
}

/// The field whose value comes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Stream,
    Epoch,
    Seq,
    Entities,
    Other,
}

/// Decodes a snapshot body fed in chunks (see the module docs).
#[derive(Debug)]
pub struct SnapshotDecoder {
    limit: usize,
    received: usize,
    /// Bytes not yet consumed (from `pos` on).
    buf: Vec<u8>,
    pos: usize,
    at: At,
    scan: Option<Scan>,
    field: Field,
    stream: Option<String>,
    epoch: Option<String>,
    seq: Option<u64>,
    entities: Option<SnapshotRows>,
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

impl SnapshotDecoder {
    /// A decoder that takes at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        SnapshotDecoder {
            limit,
            received: 0,
            buf: Vec::new(),
            pos: 0,
            at: At::Start,
            scan: None,
            field: Field::Other,
            stream: None,
            epoch: None,
            seq: None,
            entities: None,
        }
    }

    /// Bytes taken so far.
    pub fn received(&self) -> usize {
        self.received
    }

    /// Take the next `chunk` of the body. An error (the bound passed, or the body
    /// is not a snapshot) is final: the decoder takes nothing more.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), String> {
        if self.received.saturating_add(chunk.len()) > self.limit {
            return Err(super::over_limit(self.limit));
        }
        self.received += chunk.len();
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(chunk);
        self.advance()?;
        if self.buf.len() == self.pos {
            // Nothing pending: keep the buffer small between chunks.
            self.buf.clear();
            self.pos = 0;
            if self.buf.capacity() > 64 << 10 {
                self.buf.shrink_to(64 << 10);
            }
        }
        Ok(())
    }

    /// The body ended: the snapshot, or why it is not one.
    pub fn finish(mut self) -> Result<StreamedSnapshot, String> {
        if self.at != At::Done {
            return Err(format!(
                "the snapshot ended early, after {} bytes (cut mid-way?)",
                self.received
            ));
        }
        let missing = |f: &str| format!("the snapshot has no `{f}` field");
        let mut entities = self.entities.take().ok_or_else(|| missing("entities"))?;
        entities.shrink_to_fit();
        Ok(StreamedSnapshot {
            stream: self.stream.take().ok_or_else(|| missing("stream"))?,
            epoch: self.epoch.take().ok_or_else(|| missing("epoch"))?,
            seq: self.seq.ok_or_else(|| missing("seq"))?,
            entities,
        })
    }

    /// The next byte that is not whitespace, consumed (`None`: need more bytes).
    fn next_token(&mut self) -> Option<u8> {
        while self.pos < self.buf.len() {
            let b = self.buf[self.pos];
            self.pos += 1;
            if !is_ws(b) {
                return Some(b);
            }
        }
        None
    }

    /// Skip whitespace without consuming what follows (`None`: need more bytes).
    fn peek_token(&mut self) -> Option<u8> {
        while self.pos < self.buf.len() {
            let b = self.buf[self.pos];
            if !is_ws(b) {
                return Some(b);
            }
            self.pos += 1;
        }
        None
    }

    /// The value starting at `pos` if all of it is here (consumed), else `None`.
    fn take_value(&mut self) -> Result<Option<std::ops::Range<usize>>, String> {
        let bytes = &self.buf[self.pos..];
        let Some(&first) = bytes.first() else {
            return Ok(None);
        };
        let scan = self.scan.get_or_insert_with(Scan::default);
        let end = match first {
            b'{' | b'[' | b'"' => {
                let mut end = None;
                for (i, &b) in bytes.iter().enumerate().skip(scan.seen) {
                    if scan.in_str {
                        if scan.escaped {
                            scan.escaped = false;
                        } else if b == b'\\' {
                            scan.escaped = true;
                        } else if b == b'"' {
                            scan.in_str = false;
                            if scan.depth == 0 {
                                end = Some(i + 1);
                                break;
                            }
                        }
                        continue;
                    }
                    match b {
                        b'"' => scan.in_str = true,
                        b'{' | b'[' => scan.depth += 1,
                        b'}' | b']' => {
                            scan.depth = scan.depth.saturating_sub(1);
                            if scan.depth == 0 {
                                end = Some(i + 1);
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                if end.is_none() {
                    scan.seen = bytes.len();
                }
                end
            }
            // A number, `true`, `false`, `null` (or garbage, which serde names):
            // it ends where the next delimiter starts.
            _ => {
                let end = bytes
                    .iter()
                    .skip(scan.seen)
                    .position(|&b| matches!(b, b',' | b'}' | b']') || is_ws(b))
                    .map(|i| i + scan.seen);
                if end.is_none() {
                    scan.seen = bytes.len();
                }
                if end == Some(0) {
                    return Err(format!(
                        "the snapshot is not valid JSON: a value was expected at byte {}",
                        self.offset()
                    ));
                }
                end
            }
        };
        Ok(end.map(|len| {
            self.scan = None;
            let start = self.pos;
            self.pos += len;
            start..start + len
        }))
    }

    /// Offset in the whole body of the byte at `pos`.
    fn offset(&self) -> usize {
        self.received - (self.buf.len() - self.pos)
    }

    fn unexpected(&self, want: &str) -> String {
        let got = self
            .buf
            .get(self.pos.saturating_sub(1))
            .map(|b| format!("`{}`", char::from(*b).escape_default()))
            .unwrap_or_else(|| "the end".into());
        format!(
            "the snapshot is not valid JSON: expected {want} at byte {}, found {got}",
            self.offset().saturating_sub(1)
        )
    }

    /// Go as far as the bytes in hand allow.
    fn advance(&mut self) -> Result<(), String> {
        loop {
            match self.at {
                At::Start => match self.next_token() {
                    None => return Ok(()),
                    Some(b'{') => self.at = At::FirstKey,
                    Some(_) => return Err(self.unexpected("`{` (a snapshot object)")),
                },
                At::FirstKey | At::Key => match self.peek_token() {
                    None => return Ok(()),
                    Some(b'}') if self.at == At::FirstKey => {
                        self.pos += 1;
                        self.at = At::Done;
                    }
                    Some(b'"') => {
                        let Some(range) = self.take_value()? else {
                            return Ok(());
                        };
                        let key: String = serde_json::from_slice(&self.buf[range])
                            .map_err(|e| format!("the snapshot has a bad key: {e}"))?;
                        self.field = match key.as_str() {
                            "stream" => Field::Stream,
                            "epoch" => Field::Epoch,
                            "seq" => Field::Seq,
                            "entities" => Field::Entities,
                            _ => Field::Other,
                        };
                        let twice = match self.field {
                            Field::Stream => self.stream.is_some(),
                            Field::Epoch => self.epoch.is_some(),
                            Field::Seq => self.seq.is_some(),
                            Field::Entities => self.entities.is_some(),
                            Field::Other => false,
                        };
                        if twice {
                            return Err(format!("the snapshot has the field `{key}` twice"));
                        }
                        self.at = At::Colon;
                    }
                    Some(_) => {
                        self.pos += 1;
                        return Err(self.unexpected("a field name"));
                    }
                },
                At::Colon => match self.next_token() {
                    None => return Ok(()),
                    Some(b':') => {
                        self.at = if self.field == Field::Entities {
                            At::ArrayOpen
                        } else {
                            At::Value
                        }
                    }
                    Some(_) => return Err(self.unexpected("`:`")),
                },
                At::Value => {
                    if self.peek_token().is_none() {
                        return Ok(());
                    }
                    let Some(range) = self.take_value()? else {
                        return Ok(());
                    };
                    let bytes = &self.buf[range];
                    let bad = |f: &str, e: serde_json::Error| {
                        format!("the snapshot's `{f}` is not what the protocol says: {e}")
                    };
                    match self.field {
                        Field::Stream => {
                            self.stream =
                                Some(serde_json::from_slice(bytes).map_err(|e| bad("stream", e))?)
                        }
                        Field::Epoch => {
                            self.epoch =
                                Some(serde_json::from_slice(bytes).map_err(|e| bad("epoch", e))?)
                        }
                        Field::Seq => {
                            self.seq =
                                Some(serde_json::from_slice(bytes).map_err(|e| bad("seq", e))?)
                        }
                        Field::Other => {
                            serde_json::from_slice::<IgnoredAny>(bytes)
                                .map_err(|e| format!("the snapshot is not valid JSON: {e}"))?;
                        }
                        Field::Entities => unreachable!("entities are read as an array"),
                    }
                    self.at = At::AfterValue;
                }
                At::AfterValue => match self.next_token() {
                    None => return Ok(()),
                    Some(b',') => self.at = At::Key,
                    Some(b'}') => self.at = At::Done,
                    Some(_) => return Err(self.unexpected("`,` or `}`")),
                },
                At::ArrayOpen => match self.next_token() {
                    None => return Ok(()),
                    Some(b'[') => {
                        self.entities = Some(SnapshotRows::new());
                        self.at = At::FirstEntity;
                    }
                    Some(_) => return Err(self.unexpected("`[` (the snapshot's `entities` array)")),
                },
                At::FirstEntity | At::Entity => match self.peek_token() {
                    None => return Ok(()),
                    Some(b']') if self.at == At::FirstEntity => {
                        self.pos += 1;
                        self.at = At::AfterValue;
                    }
                    Some(_) => {
                        let Some(range) = self.take_value()? else {
                            return Ok(());
                        };
                        let rows = self.entities.as_mut().expect("set at `[`");
                        let n = rows.len();
                        let entity: Entity = serde_json::from_slice(&self.buf[range])
                            .map_err(|e| format!("the snapshot's entity {n} is not valid: {e}"))?;
                        rows.push(&entity)
                            .map_err(|e| format!("the snapshot's entity {n}: {e}"))?;
                        self.at = At::AfterEntity;
                    }
                },
                At::AfterEntity => match self.next_token() {
                    None => return Ok(()),
                    Some(b',') => self.at = At::Entity,
                    Some(b']') => self.at = At::AfterValue,
                    Some(_) => return Err(self.unexpected("`,` or `]`")),
                },
                At::Done => match self.next_token() {
                    None => return Ok(()),
                    Some(_) => {
                        return Err(self.unexpected("nothing after the snapshot's closing `}`"))
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulse_protocol::rest::Snapshot;

    /// Decode `body` fed in chunks of `size` bytes.
    fn streamed(body: &[u8], size: usize) -> Result<StreamedSnapshot, String> {
        let mut d = SnapshotDecoder::new(crate::rest::MAX_BODY);
        for chunk in body.chunks(size.max(1)) {
            d.feed(chunk)?;
        }
        d.finish()
    }

    /// The whole-body parse, turned into the same form.
    fn whole(body: &[u8]) -> Result<StreamedSnapshot, serde_json::Error> {
        let s: Snapshot = serde_json::from_slice(body)?;
        Ok(StreamedSnapshot {
            stream: s.stream,
            epoch: s.epoch,
            seq: s.seq,
            entities: SnapshotRows::from_entities(&s.entities)?,
        })
    }

    const SIZES: &[usize] = &[1, 2, 3, 7, 64, 1 << 20];

    fn assert_same(body: &str) {
        let want = whole(body.as_bytes()).expect("a valid snapshot");
        for &size in SIZES {
            assert_eq!(
                streamed(body.as_bytes(), size).as_ref(),
                Ok(&want),
                "chunks of {size}: {body}"
            );
        }
    }

    fn assert_refused(body: &str) {
        assert!(whole(body.as_bytes()).is_err(), "serde takes {body}");
        for &size in SIZES {
            assert!(
                streamed(body.as_bytes(), size).is_err(),
                "chunks of {size} took {body}"
            );
        }
    }

    #[test]
    fn odd_but_valid_shapes_decode_as_the_whole_body_parse_does() {
        for body in [
            r#"{"stream":"t1","epoch":"e1","seq":3,"entities":[]}"#,
            r#"{"entities":[{"kind":"ticket","id":"t-1","data":{"id":"t-1","n":1}}],"seq":0,"epoch":"e","stream":"s"}"#,
            " \n\t{ \"stream\" : \"s\" , \"epoch\":\"e\",\r\n \"seq\": 18446744073709551615 ,\"entities\" : [ {\"kind\":\"agent\",\"id\":\"a\",\"data\":{}} , {\"kind\":\"approval\",\"id\":\"p\",\"data\":{\"s\":\"}]\\\"{[\",\"x\":[[{}],[]],\"f\":-1.5e3,\"u\":\"\\u00e9\\ud83d\\ude00\"}} ] } \n",
            r#"{"str\u0065am":"s","epoch":"e","seq":1,"extra":{"a":[1,2,{"b":null}]},"more":"x","n":1e5,"t":true,"entities":[{"data":{"k":"v"},"id":"dup","kind":"ticket"},{"kind":"ticket","id":"dup","data":{"k":"w"}}]}"#,
            r#"{"stream":"s","epoch":"e","seq":2,"entities":[{"kind":"stats","id":"s","data":{"big":123456789012345678901234567890}}]}"#,
        ] {
            assert_same(body);
        }
    }

    #[test]
    fn garbage_and_truncation_are_refused_with_a_reason() {
        let good = r#"{"stream":"s","epoch":"e","seq":1,"entities":[{"kind":"ticket","id":"t","data":{"a":1}},{"kind":"ticket","id":"u","data":{"a":2}}]}"#;
        // Every cut of a valid body is refused.
        for cut in 0..good.len() {
            assert_refused(&good[..cut]);
        }
        for body in [
            "",
            "null",
            "[]",
            "{}",
            r#"{"stream":"s","epoch":"e","seq":1}"#,
            r#"{"stream":"s","epoch":"e","entities":[]}"#,
            r#"{"stream":"s","stream":"t","epoch":"e","seq":1,"entities":[]}"#,
            r#"{"stream":"s","epoch":"e","seq":1,"entities":[],"entities":[]}"#,
            r#"{"stream":"s","epoch":"e","seq":-1,"entities":[]}"#,
            r#"{"stream":"s","epoch":"e","seq":"1","entities":[]}"#,
            r#"{"stream":1,"epoch":"e","seq":1,"entities":[]}"#,
            r#"{"stream":"s","epoch":"e","seq":1,"entities":null}"#,
            r#"{"stream":"s","epoch":"e","seq":1,"entities":{}}"#,
            r#"{"stream":"s","epoch":"e","seq":1,"entities":[1]}"#,
            r#"{"stream":"s","epoch":"e","seq":1,"entities":[{"kind":"nope","id":"t","data":{}}]}"#,
            r#"{"stream":"s","epoch":"e","seq":1,"entities":[{"kind":"ticket","id":"t","data":[]}]}"#,
            r#"{"stream":"s","epoch":"e","seq":1,"entities":[{"kind":"ticket","id":"t","data":{}},]}"#,
            r#"{"stream":"s","epoch":"e","seq":1,"entities":[,{"kind":"ticket","id":"t","data":{}}]}"#,
            r#"{"stream":"s","epoch":"e","seq":1,"entities":[{"kind":"ticket","id":"t","data":{"a":1]}]}"#,
            r#"{"stream":"s","epoch":"e","seq":1,"entities":[{"kind":"ticket","id":"t","data":{"a":tru}}]}"#,
            r#"{"stream":"s" "epoch":"e","seq":1,"entities":[]}"#,
            r#"{"stream":"s",,"epoch":"e","seq":1,"entities":[]}"#,
            r#"{"stream":"s","epoch":"e","seq":1,"entities":[],}"#,
            r#"{"stream":"s","epoch":"e","seq":1,"x":,"entities":[]}"#,
            r#"{"stream":"s","epoch":"e","seq":1,"x":[1,},"entities":[]}"#,
            r#"{"stream":"s","epoch":"e","seq":1 2,"entities":[]}"#,
            r#"{stream:"s","epoch":"e","seq":1,"entities":[]}"#,
            r#"{"stream":"s","epoch":"e","seq":1,"entities":[]}}"#,
            r#"{"stream":"s","epoch":"e","seq":1,"entities":[]} x"#,
            "{\"stream\":\"s\u{0}\",\"epoch\":\"e\",\"seq\":1,\"entities\":[]}",
            "<html>502 Bad Gateway</html>",
        ] {
            assert_refused(body);
        }
        let e = streamed(&good.as_bytes()[..good.len() - 3], 5).unwrap_err();
        assert!(e.contains("ended early"), "{e}");
        let e = streamed(
            b"{\"stream\":\"s\",\"epoch\":\"e\",\"seq\":1,\"entities\":[1]}",
            4,
        )
        .unwrap_err();
        assert!(e.contains("entity 0"), "{e}");
        // Bytes that are not UTF-8 inside a string.
        let mut bad = br#"{"stream":"s"#.to_vec();
        bad.extend_from_slice(&[0xff, 0xfe]);
        bad.extend_from_slice(br#"","epoch":"e","seq":1,"entities":[]}"#);
        assert!(serde_json::from_slice::<Snapshot>(&bad).is_err());
        assert!(streamed(&bad, 3).is_err());
    }

    #[test]
    fn the_bound_counts_bytes_as_they_arrive() {
        let body = br#"{"stream":"s","epoch":"e","seq":1,"entities":[]}"#;
        let mut d = SnapshotDecoder::new(body.len());
        for chunk in body.chunks(4) {
            d.feed(chunk).unwrap();
        }
        assert_eq!(d.received(), body.len());
        assert!(d.finish().is_ok());
        let mut d = SnapshotDecoder::new(body.len() - 1);
        let mut err = None;
        for chunk in body.chunks(4) {
            if let Err(e) = d.feed(chunk) {
                err = Some(e);
                break;
            }
        }
        let err = err.expect("one byte over the bound");
        assert!(
            err.contains(&format!("over {} bytes", body.len() - 1)),
            "{err}"
        );
        assert!(d.received() < body.len());
    }

    #[test]
    fn a_pending_value_holds_only_its_own_bytes() {
        // Many entities fed in small chunks: the buffer never holds more than
        // one entity and a chunk.
        let entity = r#"{"kind":"ticket","id":"t","data":{"title":"a ticket of some length"}}"#;
        let mut body = String::from(r#"{"stream":"s","epoch":"e","seq":1,"entities":["#);
        for i in 0..1000 {
            if i > 0 {
                body.push(',');
            }
            body.push_str(entity);
        }
        body.push_str("]}");
        let mut d = SnapshotDecoder::new(crate::rest::MAX_BODY);
        let mut most = 0;
        for chunk in body.as_bytes().chunks(100) {
            d.feed(chunk).unwrap();
            most = most.max(d.buf.len() - d.pos);
        }
        assert!(most <= entity.len() + 100, "{most} bytes pending");
        assert_eq!(d.finish().unwrap().entities.len(), 1000);
    }
}
