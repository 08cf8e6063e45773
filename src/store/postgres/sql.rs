//! Every statement the PostgreSQL store runs, in one place. Parameters carry casts so that
//! each statement prepares with the same types whatever the values.

/// The user columns, in `user_from`'s order; a macro so that queries are string constants.
macro_rules! user_columns {
    () => {
        "id, username, password, is_active, is_staff, is_superuser, date_joined, last_login, \
         tokens_valid_after"
    };
}

/// The session columns, in `session_from`'s order.
macro_rules! session_columns {
    () => {
        "id, user_id, created_at, last_refreshed_at, expires_at, ip, user_agent, revoked_at"
    };
}

pub const PING: &str = "SELECT pg_is_in_recovery()";

/// A row added and removed in one transaction: nothing stays, but the write goes through.
pub const WRITE_CHECK_ADD: &str = "INSERT INTO secrets (name, value) VALUES ($1::text, '')";
pub const WRITE_CHECK_REMOVE: &str = "DELETE FROM secrets WHERE name = $1::text";

pub const CREATE_USER: &str = concat!(
    "INSERT INTO users (username, password, is_staff, is_superuser, date_joined)
     VALUES ($1::text, $2::text, $3::boolean, $4::boolean, $5::bigint) RETURNING ",
    user_columns!()
);
pub const USER_BY_NAME: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM users WHERE username = $1::text"
);
/// The users of the ids in `$1`, in no order: a batch of reads by id in one statement.
pub const USERS_BY_ID: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM users WHERE id = ANY($1::bigint[])"
);
pub const LIST_USERS: &str = concat!("SELECT ", user_columns!(), " FROM users ORDER BY id");
pub const SET_PASSWORD: &str = "UPDATE users SET password = $2::text WHERE username = $1::text";
pub const SET_ACTIVE: &str = "UPDATE users SET is_active = $2::boolean WHERE username = $1::text";
pub const DELETE_USER: &str = "DELETE FROM users WHERE username = $1::text";
pub const RECORD_LOGIN: &str = "UPDATE users SET last_login = $2::bigint WHERE id = $1::bigint";

/// A password hash in an older format, replaced at a login.
pub const UPGRADE_PASSWORD: &str = "UPDATE users SET password = $1 WHERE id = $2::bigint";

/// A refresh token issued: `$1`..`$4` its jti, user, creation and expiry, `$5` its session,
/// `$6` the token it was rotated from. Its user is NULL if that user is gone (as SQLite's store
/// does).
pub const RECORD: &str = "INSERT INTO outstanding_tokens
       (jti, user_id, created_at, expires_at, session_id, parent_jti)
     VALUES ($1::text, (SELECT id FROM users WHERE id = $2::bigint), $3::bigint, $4::bigint,
             $5::text, $6::text)
     ON CONFLICT (jti) DO NOTHING";
pub const IS_BLACKLISTED: &str =
    "SELECT EXISTS (SELECT 1 FROM blacklisted_tokens WHERE jti = $1::text)";
/// When a token was blacklisted, if it was.
pub const BLACKLISTED_AT: &str =
    "SELECT blacklisted_at FROM blacklisted_tokens WHERE jti = $1::text";
/// One row when it was added, none when the token already was blacklisted. Of two concurrent
/// inserts of one jti, the second waits for the first's commit and then adds nothing.
pub const BLACKLIST: &str = "INSERT INTO blacklisted_tokens (jti, expires_at, blacklisted_at)
     VALUES ($1::text, $2::bigint, $3::bigint)
     ON CONFLICT (jti) DO NOTHING RETURNING jti";

/// A login's session, created only while its user (`$7`) exists.
pub const START_SESSION: &str = "INSERT INTO sessions
       (id, user_id, created_at, last_refreshed_at, expires_at, ip, user_agent)
     SELECT $1::text, id, $2::bigint, $3::bigint, $4::bigint, $5::text, $6::text
     FROM users WHERE id = $7::bigint";

/// The refresh's user, held (FOR SHARE) until the refresh commits: "log out everywhere",
/// deactivation and deletion, which update the row, wait for it, and it sees theirs.
pub const REFRESH_USER: &str =
    "SELECT is_active, tokens_valid_after FROM users WHERE id = $1::bigint FOR SHARE";
/// The session a token belongs to, locked until the transaction ends: refreshes and
/// revocations of one session take turns, each seeing what the one before committed.
pub const LOCK_SESSION_OF: &str = "SELECT s.id, s.revoked_at FROM outstanding_tokens o
     JOIN sessions s ON s.id = o.session_id WHERE o.jti = $1::text
     FOR UPDATE OF s";
/// A refresh's mark on its session: `$1` now, `$2` the new token's expiry (NULL: none), `$3`
/// the session.
pub const TOUCH_SESSION: &str = "UPDATE sessions SET last_refreshed_at = $1::bigint,
       expires_at = GREATEST(expires_at, COALESCE($2::bigint, expires_at))
     WHERE id = $3::text";

/// Revokes session `$2` at `$1` unless it was already; with a user (`$3`), only that user's
/// session and only while it is live.
pub const REVOKE_SESSION: &str = "UPDATE sessions SET revoked_at = $1::bigint
     WHERE id = $2::text AND revoked_at IS NULL
       AND ($3::bigint IS NULL OR (user_id = $3::bigint AND expires_at > $1::bigint))";
/// Revokes every live session of user `$2` at `$1`, answering their ids.
pub const REVOKE_USER_SESSIONS: &str = "UPDATE sessions SET revoked_at = $1::bigint
     WHERE user_id = $2::bigint AND revoked_at IS NULL AND expires_at > $1::bigint
     RETURNING id";
/// Blacklists at `$1` the unexpired tokens of the sessions `$2`.
pub const BLACKLIST_SESSIONS: &str =
    "INSERT INTO blacklisted_tokens (jti, expires_at, blacklisted_at)
     SELECT jti, expires_at, $1::bigint FROM outstanding_tokens
     WHERE session_id = ANY($2::text[]) AND expires_at > $1::bigint
     ON CONFLICT (jti) DO NOTHING";
/// "Log out everywhere" for user `$2` at `$1` (never moving the time back).
pub const LOG_OUT_EVERYWHERE: &str = "UPDATE users
     SET tokens_valid_after = GREATEST(COALESCE(tokens_valid_after, $1::bigint), $1::bigint)
     WHERE id = $2::bigint";
/// User `$1`'s live sessions at `$2`, newest first.
pub const SESSIONS: &str = concat!(
    "SELECT ",
    session_columns!(),
    " FROM sessions
     WHERE user_id = $1::bigint AND revoked_at IS NULL AND expires_at > $2::bigint
     ORDER BY created_at DESC, seq DESC"
);

/// Deletes expired tokens from both tables; counts each jti once.
pub const FLUSH_TOKENS: &str = "WITH outstanding AS (
         DELETE FROM outstanding_tokens WHERE expires_at < $1::bigint RETURNING jti
     ),
     blacklisted AS (
         DELETE FROM blacklisted_tokens WHERE expires_at < $1::bigint RETURNING jti
     )
     SELECT count(*) FROM (SELECT jti FROM outstanding UNION SELECT jti FROM blacklisted) AS expired";
pub const FLUSH_SESSIONS: &str = "DELETE FROM sessions WHERE expires_at < $1::bigint";
pub const FLUSH_LOGIN_FAILURES: &str = "DELETE FROM login_failures WHERE expires_at <= $1::bigint";

/// The failures on record for the keys `$1` at `$2`.
pub const LOGIN_FAILURES: &str =
    "SELECT key, failures, window_start, locked_until, lockouts, last_failure
     FROM login_failures WHERE key = ANY($1::text[]) AND expires_at > $2::bigint";
/// A row for key `$1` if it has none, which says nothing (expired) until it is counted in.
pub const ADD_LOGIN_FAILURE_ROW: &str = "INSERT INTO login_failures
       (key, failures, window_start, locked_until, lockouts, last_failure, expires_at)
     VALUES ($1::text, 0, 0, 0, 0, 0, 0) ON CONFLICT (key) DO NOTHING";
/// Key `$1`'s row, locked until the count is written back.
pub const LOCK_LOGIN_FAILURES: &str =
    "SELECT failures, window_start, locked_until, lockouts, last_failure, expires_at
     FROM login_failures WHERE key = $1::text FOR UPDATE";
pub const SET_LOGIN_FAILURES: &str = "UPDATE login_failures
     SET failures = $2::integer, window_start = $3::bigint, locked_until = $4::bigint,
         lockouts = $5::integer, last_failure = $6::bigint, expires_at = $7::bigint
     WHERE key = $1::text";
/// Expired rows no one is counting in right now (those are skipped, not waited for).
pub const DELETE_EXPIRED_LOGIN_FAILURES: &str = "DELETE FROM login_failures WHERE key IN (
         SELECT key FROM login_failures WHERE expires_at <= $1::bigint FOR UPDATE SKIP LOCKED
     )";
pub const FORGET_LOGIN_FAILURES: &str = "DELETE FROM login_failures WHERE key = $1::text";

pub const SIGNING_KEYS: &str =
    "SELECT kid, algorithm, private_key, created_at, activated_at, deactivated_at, retired_at
     FROM signing_keys ORDER BY created_at, kid";
/// Holds the signing keys' lock until the transaction ends: activations, and additions of an
/// active key, take turns.
pub const LOCK_SIGNING_KEYS: &str = "SELECT pg_advisory_xact_lock($1::bigint)";
/// One row when added; none when the kid is taken or, for an active key (`$6`), another key is
/// active already (the partial unique index on `active`).
pub const ADD_SIGNING_KEY: &str = "INSERT INTO signing_keys
       (kid, algorithm, private_key, created_at, activated_at, active)
     VALUES ($1::text, $2::text, $3::bytea, $4::bigint, $5::bigint, $6::boolean)
     ON CONFLICT DO NOTHING RETURNING kid";
pub const LOCK_UNRETIRED_KEY: &str =
    "SELECT kid FROM signing_keys WHERE kid = $1::text AND retired_at IS NULL FOR UPDATE";
pub const DEACTIVATE_OTHER_KEYS: &str = "UPDATE signing_keys
     SET active = FALSE, deactivated_at = $2::bigint WHERE active AND kid <> $1::text";
pub const ACTIVATE_KEY: &str = "UPDATE signing_keys
     SET active = TRUE, deactivated_at = NULL, activated_at = COALESCE(activated_at, $2::bigint)
     WHERE kid = $1::text";
pub const RETIRE_KEY: &str = "UPDATE signing_keys SET retired_at = $2::bigint
     WHERE kid = $1::text AND NOT active AND retired_at IS NULL";

/// The first writer's secret wins; the SELECT, a statement of its own, sees it even when
/// another instance's insert committed after this INSERT began (READ COMMITTED).
pub const ADD_SECRET: &str = "INSERT INTO secrets (name, value) VALUES ($1::text, $2::bytea)
     ON CONFLICT (name) DO NOTHING";
pub const SECRET: &str = "SELECT value FROM secrets WHERE name = $1::text";

/// Our users sharing an id in `$1` or a username in `$2` with an import.
pub const IMPORT_OURS: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM users WHERE id = ANY($1::bigint[]) OR username = ANY($2::text[])"
);
/// Imported users, with their ids, from parallel arrays.
pub const IMPORT_USERS: &str = "INSERT INTO users
       (id, username, password, is_active, is_staff, is_superuser, date_joined, last_login)
     SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::boolean[], $5::boolean[],
                          $6::boolean[], $7::bigint[], $8::bigint[])";
/// After explicit ids: the next generated id comes after every one of them, and never goes
/// back (a deleted user's id is not given again: their tokens name it).
pub const IMPORT_ADVANCE_USER_IDS: &str = "SELECT setval(
       pg_get_serial_sequence('users', 'id'),
       GREATEST(
           (SELECT max(id) FROM users),
           COALESCE(pg_sequence_last_value(pg_get_serial_sequence('users', 'id')::regclass), 0)
       ))";
/// Imported outstanding tokens, in no session; those recorded already are left alone. A token
/// whose user is not here is kept without one, as `RECORD` does.
pub const IMPORT_TOKENS: &str =
    "INSERT INTO outstanding_tokens (jti, user_id, created_at, expires_at)
     SELECT t.jti, u.id, t.created_at, t.expires_at
     FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[])
       AS t (jti, user_id, created_at, expires_at)
     LEFT JOIN users u ON u.id = t.user_id
     ON CONFLICT (jti) DO NOTHING";
/// Imported blacklist entries; those there already are left alone.
pub const IMPORT_BLACKLISTED: &str =
    "INSERT INTO blacklisted_tokens (jti, expires_at, blacklisted_at)
     SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[])
     ON CONFLICT (jti) DO NOTHING";
