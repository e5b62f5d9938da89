-- The audit log: one row per mutating API call or login, chained by hash
-- (see roost_types::audit). Rows are only appended and, by retention,
-- pruned from the oldest; the hash of the last pruned row is the anchor
-- the remaining chain is verified from.
CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY NOT NULL,
    time INTEGER NOT NULL,
    user TEXT NOT NULL,
    roles TEXT NOT NULL,
    source TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    status INTEGER NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_log_time ON audit_log (time);

-- At most one row: the last pruned record's number and hash.
CREATE TABLE audit_anchor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL
);

-- A system controller's copy of its subclouds' audit records, as they
-- were forwarded over the sync.
CREATE TABLE dc_subcloud_audit (
    subcloud TEXT NOT NULL REFERENCES subclouds (name) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    time INTEGER NOT NULL,
    user TEXT NOT NULL,
    roles TEXT NOT NULL,
    source TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    status INTEGER NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (subcloud, seq)
) WITHOUT ROWID;
