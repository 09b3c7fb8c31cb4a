//! [`json_text`]: a value as JSON text for a `TEXT` column, written into a buffer
//! the caller reuses, so that storing a batch allocates once per batch and not
//! once (plus a growth of the string per doubling of its size) per value.
//!
//! Invariant: the text is exactly `serde_json::to_string(value)`; only where it is
//! written changes.

/// `value` as JSON text, written into `buf` (cleared first; its capacity is kept).
pub fn json_text<'b>(
    buf: &'b mut Vec<u8>,
    value: &impl serde::Serialize,
) -> serde_json::Result<&'b str> {
    buf.clear();
    serde_json::to_writer(&mut *buf, value)?;
    // serde_json writes UTF-8 only; a failure here would be a serde_json bug.
    std::str::from_utf8(buf).map_err(<serde_json::Error as serde::ser::Error>::custom)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The same text as `to_string`, for values small and large, one buffer
    /// reused from a long value to a short one.
    #[test]
    fn the_text_is_to_strings() {
        let mut buf = Vec::new();
        let values = [
            json!({"id": "t1", "title": "x".repeat(5000), "n": [1, 2.5, null, "é\u{1F600}\"q\""]}),
            json!("short"),
            json!({}),
        ];
        for v in &values {
            assert_eq!(
                json_text(&mut buf, v).unwrap(),
                serde_json::to_string(v).unwrap()
            );
        }
        assert!(buf.capacity() >= 5000);
    }

    /// A value serde_json refuses (a map with a non-string key) is its error, and
    /// the buffer stays usable.
    #[test]
    fn a_value_serde_refuses_is_an_error() {
        let mut buf = Vec::new();
        let bad: std::collections::BTreeMap<Vec<u8>, u8> = [(vec![1u8], 2u8)].into();
        assert!(json_text(&mut buf, &bad).is_err());
        assert_eq!(json_text(&mut buf, &json!([1])).unwrap(), "[1]");
    }
}
