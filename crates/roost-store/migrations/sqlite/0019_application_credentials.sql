-- Keystone application credentials: a user's named, long-lived secret that
-- gets tokens without the password, scoped to one project with the roles
-- the user held when it was made. Only a hash of the secret is kept.
-- `roles` is a comma-separated list; `expires_at` is NULL for never.
CREATE TABLE application_credentials (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    roles TEXT NOT NULL,
    expires_at INTEGER,
    created_at INTEGER NOT NULL,
    UNIQUE (user_id, name)
) WITHOUT ROWID;
-- The credential a token was issued with, if any: its roles bound the
-- token's, and deleting it revokes the token.
ALTER TABLE tokens ADD COLUMN application_credential_id TEXT;
