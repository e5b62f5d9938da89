-- The controller lease: which server of those sharing a store is active,
-- under which epoch, until when (microseconds by the database's clock),
-- and the URL the others send clients to.
CREATE TABLE lease (
    id BIGINT PRIMARY KEY NOT NULL CHECK (id = 1),
    holder TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    url TEXT NOT NULL
);
