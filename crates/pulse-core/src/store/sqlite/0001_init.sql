-- Pulse cache, schema version 1.
-- Applied by store/sqlite.rs inside one transaction, which then sets
-- PRAGMA user_version = 1 and PRAGMA application_id. No table ever holds a token.

-- The materialised entities: one row per (kind, id), every field kept as JSON.
CREATE TABLE entities (
    kind TEXT NOT NULL,
    id   TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (kind, id)
) WITHOUT ROWID;

-- Per-stream position: the last applied seq in an epoch.
CREATE TABLE cursors (
    stream     TEXT PRIMARY KEY,
    epoch      TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;

-- The newest EVENT_LOG_LIMIT applied events (frames as JSON), oldest = lowest pos.
CREATE TABLE event_log (
    pos    INTEGER PRIMARY KEY,
    stream TEXT NOT NULL,
    seq    INTEGER NOT NULL,
    frame  TEXT NOT NULL
);

-- Actions taken while offline; AUTOINCREMENT so an id is never reused.
CREATE TABLE outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    action     TEXT NOT NULL,
    queued_at  INTEGER NOT NULL,
    last_error TEXT
);

-- Small named values (last_sync_ms).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value
) WITHOUT ROWID;
