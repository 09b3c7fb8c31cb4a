-- Pulse cache, schema version 3: the entities move from a WITHOUT ROWID table to
-- a rowid table with a unique index on (kind, id). A WITHOUT ROWID table keeps
-- each row in its primary key's b-tree, whose cells hold at most about a quarter
-- of a page: a ~4 KB entity spilled ~3 KB into overflow pages, so each write of
-- it touched two or three pages. A rowid table's leaf cell holds up to a page, and
-- the index holds only (kind, id). Every row is copied as it is (its data is not
-- read or checked here: a row that cannot be decoded stays, and reading it names
-- it, StoreError::BadEntityRow).
CREATE TABLE entities_v3 (
    kind TEXT NOT NULL,
    id   TEXT NOT NULL,
    data TEXT NOT NULL
);
INSERT INTO entities_v3 (kind, id, data) SELECT kind, id, data FROM entities ORDER BY kind, id;
DROP TABLE entities;
ALTER TABLE entities_v3 RENAME TO entities;
CREATE UNIQUE INDEX entities_key ON entities (kind, id);
