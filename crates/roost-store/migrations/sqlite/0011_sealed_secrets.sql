-- Secrets at rest (crates/roost-store/src/seal.rs): secret columns
-- (hosts.bm_password, hosts.hb_key) hold values sealed with a
-- data-encryption key kept outside the database. This row holds a known
-- text sealed with that key, so a start with another key (or none) is
-- refused before anything is read or written.
CREATE TABLE sealing (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    check_value TEXT NOT NULL
);
