-- The fleet rollout (at most one orchestration strategy at a time): its
-- stages, steps and how far they got, as JSON.
CREATE TABLE fleet_strategy (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    body TEXT NOT NULL
);
-- Strategy-config: the defaults (cloud 'SystemController') and each
-- subcloud's own options, as JSON.
CREATE TABLE sw_update_options (
    cloud TEXT PRIMARY KEY NOT NULL,
    body TEXT NOT NULL
);
