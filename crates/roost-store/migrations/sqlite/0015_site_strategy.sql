-- The site strategy (at most one): the stages that deploy a release to
-- every host in order, and how far they got, as JSON.
CREATE TABLE site_strategy (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    body TEXT NOT NULL
);
