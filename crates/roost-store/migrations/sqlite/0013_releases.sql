-- Software releases uploaded to this cloud: the signed manifest (JSON) and
-- the release's state as USM names it; the payload lives in files under the
-- data directory (software/releases/<release_id>/).
CREATE TABLE releases (
    release_id TEXT PRIMARY KEY NOT NULL,
    state TEXT NOT NULL,
    manifest TEXT NOT NULL,
    uploaded_at INTEGER NOT NULL
);
