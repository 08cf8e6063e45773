-- Failed logins counted per key: a hash of the username tried, or of the client's address (the
-- raw text is never kept: a password typed into the username field must not land here).
CREATE TABLE login_failures (
    key          TEXT    PRIMARY KEY,
    failures     INTEGER NOT NULL,
    window_start INTEGER NOT NULL,
    locked_until INTEGER NOT NULL,
    lockouts     INTEGER NOT NULL,
    last_failure INTEGER NOT NULL,
    -- Past this the row says nothing; deleted by the next failure's write.
    expires_at   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX login_failures_expires_at ON login_failures (expires_at);
