-- Users, and refresh tokens as simplejwt's token_blacklist app tracks them. Times are Unix seconds.
CREATE TABLE users (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    username     TEXT    NOT NULL UNIQUE,
    password     TEXT    NOT NULL,
    is_active    INTEGER NOT NULL DEFAULT 1,
    is_staff     INTEGER NOT NULL DEFAULT 0,
    is_superuser INTEGER NOT NULL DEFAULT 0,
    date_joined  INTEGER NOT NULL,
    last_login   INTEGER
);

-- Refresh tokens issued by login or rotation.
CREATE TABLE outstanding_tokens (
    jti        TEXT    PRIMARY KEY,
    user_id    INTEGER REFERENCES users (id) ON DELETE SET NULL,
    created_at INTEGER,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX outstanding_tokens_expires_at ON outstanding_tokens (expires_at);

-- Refresh tokens that can never be used again, until they expire anyway.
CREATE TABLE blacklisted_tokens (
    jti            TEXT    PRIMARY KEY,
    expires_at     INTEGER NOT NULL,
    blacklisted_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX blacklisted_tokens_expires_at ON blacklisted_tokens (expires_at);

-- Secrets generated once and shared by every instance on this database.
CREATE TABLE secrets (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
