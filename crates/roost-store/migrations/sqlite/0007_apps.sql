-- Applications (StarlingX's /v1/apps). The server owns the record's JSON:
-- the row sysinv shows, which package directories hold the active and the
-- previous version, and the last plan each host was sent (so a restart of
-- the server restarts no container).

CREATE TABLE apps (
    name TEXT PRIMARY KEY NOT NULL,
    record TEXT NOT NULL
);

CREATE TABLE app_plans (
    host TEXT PRIMARY KEY NOT NULL,
    plan TEXT NOT NULL
);
