-- The software deploy in progress on this cloud (at most one): its state,
-- the release it installs and each host's state, as JSON.
CREATE TABLE deploy (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    body TEXT NOT NULL
);
