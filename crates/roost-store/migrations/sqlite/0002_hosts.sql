-- Hosts, their agents' credentials and inventory, join tokens.

CREATE TABLE hosts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL UNIQUE,
    hostname TEXT NOT NULL UNIQUE,
    personality TEXT NOT NULL,
    subfunctions TEXT NOT NULL,
    administrative TEXT NOT NULL,
    operational TEXT NOT NULL,
    availability TEXT NOT NULL,
    task TEXT NOT NULL DEFAULT '',
    mgmt_ip TEXT,
    mgmt_mac TEXT,
    bm_type TEXT NOT NULL DEFAULT 'none',
    bm_ip TEXT,
    bm_username TEXT,
    bm_password TEXT,
    location TEXT NOT NULL DEFAULT '{}',
    hb_key TEXT,
    hb_port INTEGER,
    agent_token_hash TEXT,
    inventory TEXT,
    local INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER
);

CREATE TABLE join_tokens (
    hash TEXT PRIMARY KEY NOT NULL,
    hostname TEXT NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
