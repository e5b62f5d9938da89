-- Notification destinations: where event-log records are sent (webhook,
-- SNMP trap, syslog). `settings` is the type's JSON without its secrets;
-- `secret` holds them, sealed.
CREATE TABLE notify_destinations (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    min_severity TEXT NOT NULL,
    include_logs INTEGER NOT NULL,
    settings TEXT NOT NULL,
    secret TEXT,
    created_at INTEGER NOT NULL
);
-- Webhook deliveries given up on, kept until discarded or retried.
CREATE TABLE notify_dead_letters (
    id TEXT PRIMARY KEY NOT NULL,
    destination_id TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    entity TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    last_error TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX notify_dead_letters_by_destination ON notify_dead_letters (destination_id, created_at);
-- This cloud's SNMP engine: its id (hex) and how many times it booted.
CREATE TABLE notify_engine (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    engine_id TEXT NOT NULL,
    boots INTEGER NOT NULL
);
