-- Users can be disabled, and lock after repeated wrong passwords: the count
-- of wrong passwords in a row and the time (microseconds) until which the
-- account is locked (0: not locked).

ALTER TABLE users ADD COLUMN enabled INTEGER NOT NULL DEFAULT 1;
ALTER TABLE users ADD COLUMN failed_logins INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN locked_until INTEGER NOT NULL DEFAULT 0;
