-- Distributed Cloud on a system controller: subclouds and their groups.

CREATE TABLE subcloud_groups (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    update_apply_type TEXT NOT NULL,
    max_parallel_subclouds INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER
);
INSERT INTO subcloud_groups (id, name, description, update_apply_type, max_parallel_subclouds, created_at)
    VALUES (1, 'Default', 'Default Subcloud Group', 'parallel', 2, 0);

CREATE TABLE subclouds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    description TEXT,
    location TEXT,
    group_id INTEGER NOT NULL REFERENCES subcloud_groups (id),
    management_state TEXT NOT NULL,
    deploy_status TEXT NOT NULL,
    software_version TEXT,
    region_name TEXT NOT NULL,
    enroll_token_hash TEXT,
    enroll_expires_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER
);
