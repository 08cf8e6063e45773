-- Users, and refresh tokens modeled on simplejwt's token_blacklist app. Times are Unix seconds.
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

CREATE TABLE outstanding_tokens (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    jti        TEXT    NOT NULL UNIQUE,
    user_id    INTEGER REFERENCES users (id) ON DELETE SET NULL,
    token      TEXT    NOT NULL,
    created_at INTEGER,
    expires_at INTEGER NOT NULL
);
CREATE INDEX outstanding_tokens_expires_at ON outstanding_tokens (expires_at);
CREATE INDEX outstanding_tokens_user_id ON outstanding_tokens (user_id);

CREATE TABLE blacklisted_tokens (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    token_id       INTEGER NOT NULL UNIQUE REFERENCES outstanding_tokens (id) ON DELETE CASCADE,
    blacklisted_at INTEGER NOT NULL
);

-- Secrets generated once and shared by every instance on this database.
CREATE TABLE secrets (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
