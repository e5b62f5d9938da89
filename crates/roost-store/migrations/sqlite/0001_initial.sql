-- Roost's first schema: fault management and identity.

CREATE TABLE alarms (
    uuid TEXT PRIMARY KEY NOT NULL,
    alarm_id TEXT NOT NULL,
    entity_instance_id TEXT NOT NULL,
    entity_type_id TEXT NOT NULL,
    severity TEXT NOT NULL,
    reason_text TEXT NOT NULL,
    alarm_type TEXT NOT NULL,
    probable_cause TEXT NOT NULL,
    proposed_repair_action TEXT NOT NULL,
    service_affecting INTEGER NOT NULL,
    suppression INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER,
    UNIQUE (alarm_id, entity_instance_id)
) WITHOUT ROWID;

CREATE TABLE event_log (
    seq INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    event_log_id TEXT NOT NULL,
    state TEXT NOT NULL,
    entity_instance_id TEXT NOT NULL,
    entity_type_id TEXT NOT NULL,
    severity TEXT NOT NULL,
    reason_text TEXT NOT NULL,
    event_log_type TEXT NOT NULL,
    probable_cause TEXT NOT NULL,
    proposed_repair_action TEXT NOT NULL,
    service_affecting INTEGER NOT NULL,
    suppression INTEGER NOT NULL,
    timestamp INTEGER NOT NULL
);
CREATE INDEX event_log_by_time ON event_log (timestamp, seq);

CREATE TABLE suppressed_alarm_ids (
    alarm_id TEXT PRIMARY KEY NOT NULL
) WITHOUT ROWID;

CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE projects (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE
) WITHOUT ROWID;

CREATE TABLE role_assignments (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    PRIMARY KEY (user_id, project_id, role)
) WITHOUT ROWID;

CREATE TABLE tokens (
    hash TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    project_id TEXT,
    methods TEXT NOT NULL,
    issued_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE settings (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) WITHOUT ROWID;
