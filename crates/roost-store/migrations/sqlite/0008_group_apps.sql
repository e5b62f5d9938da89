-- Applications assigned to subcloud groups on a system controller: what the
-- `apps` sync endpoint pushes to the subclouds of each group. The package is
-- named by its digest (the `.tgz` the system controller serves) and size.

CREATE TABLE dc_group_apps (
    group_id INTEGER NOT NULL REFERENCES subcloud_groups (id) ON DELETE CASCADE,
    app TEXT NOT NULL,
    version TEXT NOT NULL,
    digest TEXT NOT NULL,
    size INTEGER NOT NULL,
    PRIMARY KEY (group_id, app)
);
