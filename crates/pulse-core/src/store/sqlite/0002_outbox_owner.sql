-- Pulse cache, schema version 2: each queued action records whom it was queued
-- for, as JSON `{"server": "...", "account": "..." | null}` (store::Owner).
-- Rows queued under version 1 keep NULL: owner unknown, never sent (see the
-- module docs of store/mod.rs), listed until the user discards them.
ALTER TABLE outbox ADD COLUMN owner TEXT;
