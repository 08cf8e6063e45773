-- Failed logins counted per key: migrations/sqlite/0003_login_failures.sql in PostgreSQL's types.
-- The key is a hash of the username tried, or of the client's address (the raw text is never
-- kept: a password typed into the username field must not land here).
CREATE TABLE login_failures (
    key          TEXT    PRIMARY KEY,
    failures     INTEGER NOT NULL,
    window_start BIGINT  NOT NULL,
    locked_until BIGINT  NOT NULL,
    lockouts     INTEGER NOT NULL,
    last_failure BIGINT  NOT NULL,
    -- Past this the row says nothing; deleted by a later failure's write.
    expires_at   BIGINT  NOT NULL
);
CREATE INDEX login_failures_expires_at ON login_failures (expires_at);
