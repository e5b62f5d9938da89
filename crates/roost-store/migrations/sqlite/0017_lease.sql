-- The controller lease: which server of those sharing a store is active,
-- under which epoch, until when (microseconds by the database's clock),
-- and the URL the others send clients to.
CREATE TABLE lease (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    holder TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    url TEXT NOT NULL
);
