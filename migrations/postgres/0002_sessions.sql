-- Sessions (refresh-token families): migrations/sqlite/0002_sessions.sql in PostgreSQL's types.
-- Every login starts one, and every refresh token rotated from its token belongs to it. Reusing a
-- rotated token revokes the family; "log out everywhere" revokes all of a user's. Times are Unix
-- seconds.
CREATE TABLE sessions (
    -- 128 random bits, base64url: opaque, made by the service.
    id                TEXT   PRIMARY KEY,
    -- Insertion order, which breaks ties between sessions started in the same second (SQLite's
    -- rowid does it there).
    seq               BIGINT GENERATED ALWAYS AS IDENTITY,
    user_id           BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at        BIGINT NOT NULL,
    last_refreshed_at BIGINT NOT NULL,
    -- The expiry of the session's newest refresh token: past it, nothing of the session works.
    expires_at        BIGINT NOT NULL,
    -- The client's address and User-Agent at login.
    ip                TEXT,
    user_agent        TEXT,
    revoked_at        BIGINT
);
CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

-- Tokens from before this migration have no session and work as they did.
ALTER TABLE outstanding_tokens
    ADD COLUMN session_id TEXT REFERENCES sessions (id) ON DELETE SET NULL;
-- The token this one was rotated from.
ALTER TABLE outstanding_tokens ADD COLUMN parent_jti TEXT;
CREATE INDEX outstanding_tokens_session_id ON outstanding_tokens (session_id);

-- "Log out everywhere": tokens issued (iat) before this time are refused.
ALTER TABLE users ADD COLUMN tokens_valid_after BIGINT;
