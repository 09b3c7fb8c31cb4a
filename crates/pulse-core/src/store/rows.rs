//! [`SnapshotRows`]: a snapshot's entities in the form the cache keeps them
//! (kind, id, and the data as JSON text), packed into one buffer.
//!
//! Invariants:
//! - a row's `data` is exactly `serde_json::to_string(&entity.data)` of the entity
//!   it was made from ([`SnapshotRows::push`] is the one place that encodes it),
//!   so a snapshot swapped in from rows and one swapped in from entities
//!   ([`super::Store::replace_all`]) leave the same cache, byte for byte;
//! - every row's text lives in one growing buffer (one allocation for all of
//!   them, not a tree of maps and strings per entity): holding a snapshot costs
//!   about its JSON size, and freeing it returns one block.

use pulse_protocol::domain::{Entity, EntityKind};

/// A snapshot's entities, encoded as the cache stores them (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotRows {
    /// Every row's id then data, back to back.
    text: String,
    /// Where each row ends in `text`.
    rows: Vec<RowEnd>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RowEnd {
    kind: EntityKind,
    id_end: usize,
    data_end: usize,
}

/// One row of [`SnapshotRows`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row<'a> {
    /// What the entity is.
    pub kind: EntityKind,
    /// Its id.
    pub id: &'a str,
    /// Its data (a JSON object), as compact JSON text.
    pub data: &'a str,
}

impl SnapshotRows {
    /// No rows.
    pub fn new() -> Self {
        SnapshotRows::default()
    }

    /// The rows of `entities`, in order.
    pub fn from_entities(entities: &[Entity]) -> Result<Self, serde_json::Error> {
        let mut rows = SnapshotRows::new();
        for e in entities {
            rows.push(e)?;
        }
        Ok(rows)
    }

    /// Add `entity` as a row (its data encoded here, the one place rows are made).
    pub fn push(&mut self, entity: &Entity) -> Result<(), serde_json::Error> {
        let data = serde_json::to_string(&entity.data)?;
        self.text.push_str(&entity.id);
        let id_end = self.text.len();
        self.text.push_str(&data);
        self.rows.push(RowEnd {
            kind: entity.kind,
            id_end,
            data_end: self.text.len(),
        });
        Ok(())
    }

    /// How many rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Bytes of text held (ids and data).
    pub fn text_len(&self) -> usize {
        self.text.len()
    }

    /// Give back spare capacity (once the last row is in).
    pub fn shrink_to_fit(&mut self) {
        self.text.shrink_to_fit();
        self.rows.shrink_to_fit();
    }

    /// The rows, in the order they were pushed.
    pub fn iter(&self) -> impl Iterator<Item = Row<'_>> + '_ {
        let mut start = 0;
        self.rows.iter().map(move |r| {
            let row = Row {
                kind: r.kind,
                id: &self.text[start..r.id_end],
                data: &self.text[r.id_end..r.data_end],
            };
            start = r.data_end;
            row
        })
    }

    /// The rows decoded back into entities (for stores that keep entities).
    pub fn to_entities(&self) -> Result<Vec<Entity>, serde_json::Error> {
        self.iter()
            .map(|r| {
                Ok(Entity {
                    kind: r.kind,
                    id: r.id.to_owned(),
                    data: serde_json::from_str(r.data)?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entity(kind: EntityKind, id: &str, data: serde_json::Value) -> Entity {
        Entity {
            kind,
            id: id.into(),
            data: serde_json::from_value(data).unwrap(),
        }
    }

    #[test]
    fn rows_round_trip_and_hold_the_stored_text() {
        let entities = vec![
            entity(
                EntityKind::Ticket,
                "t-1",
                json!({"id": "t-1", "title": "é \"q\""}),
            ),
            entity(EntityKind::Agent, "", json!({})),
            entity(
                EntityKind::Approval,
                "a/1",
                json!({"n": 1.5, "list": [1, {"x": null}]}),
            ),
        ];
        let rows = SnapshotRows::from_entities(&entities).unwrap();
        assert_eq!(rows.len(), 3);
        let got: Vec<Row<'_>> = rows.iter().collect();
        for (row, e) in got.iter().zip(&entities) {
            assert_eq!(row.kind, e.kind);
            assert_eq!(row.id, e.id);
            assert_eq!(row.data, serde_json::to_string(&e.data).unwrap());
        }
        assert_eq!(rows.to_entities().unwrap(), entities);
        assert!(SnapshotRows::new().is_empty());
    }
}
