//! Every statement the PostgreSQL store runs, in one place. Each is one round trip: the
//! refresh checks, blacklists and records in one statement (data-modifying CTEs), so it takes
//! no explicit transaction and no per-row chatter. Parameters carry casts so that each
//! statement prepares with the same types whatever the values.

/// The user columns, in `user_from`'s order; a macro so that queries are string constants.
macro_rules! user_columns {
    () => {
        "id, username, password, is_active, is_staff, is_superuser, date_joined, last_login"
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
pub const USER_BY_ID: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM users WHERE id = $1::bigint"
);
pub const LIST_USERS: &str = concat!("SELECT ", user_columns!(), " FROM users ORDER BY id");
pub const SET_PASSWORD: &str = "UPDATE users SET password = $2::text WHERE username = $1::text";
pub const SET_ACTIVE: &str = "UPDATE users SET is_active = $2::boolean WHERE username = $1::text";
pub const DELETE_USER: &str = "DELETE FROM users WHERE username = $1::text";
pub const RECORD_LOGIN: &str = "UPDATE users SET last_login = $2::bigint WHERE id = $1::bigint";

/// A refresh token issued; its user as NULL if that user is gone (as SQLite's store does).
pub const OUTSTAND: &str = "INSERT INTO outstanding_tokens (jti, user_id, created_at, expires_at)
     VALUES ($1::text, (SELECT id FROM users WHERE id = $2::bigint), $3::bigint, $4::bigint)
     ON CONFLICT (jti) DO NOTHING";
pub const IS_BLACKLISTED: &str =
    "SELECT EXISTS (SELECT 1 FROM blacklisted_tokens WHERE jti = $1::text)";
/// One row when it was added, none when the token already was blacklisted. Of two concurrent
/// inserts of one jti, the second waits for the first's commit and then adds nothing.
pub const BLACKLIST: &str = "INSERT INTO blacklisted_tokens (jti, expires_at, blacklisted_at)
     VALUES ($1::text, $2::bigint, $3::bigint)
     ON CONFLICT (jti) DO NOTHING RETURNING jti";

/// The whole refresh in one statement, answering `done`, `blacklisted` or `no_active_user`.
///
/// `$1`, `$2`: the old token's jti and expiry; `$3`: now; `$4`: the user who must be active
/// (NULL: none to check); `$5`: blacklist the old token (else only check it); `$6`..`$9`: the
/// new token's jti, user, creation and expiry (`$6` NULL: no new token).
///
/// Exactly once: the old token is blacklisted by `INSERT ... ON CONFLICT DO NOTHING`, so of
/// concurrent refreshes of one token (on any instance) one inserts and the others, waiting on
/// its row, insert nothing and answer `blacklisted`; the new token is recorded only by the one
/// that inserted. A blacklisted token is reported before an inactive user, as simplejwt does.
pub const REFRESH: &str = "WITH account AS (
         SELECT $4::bigint IS NULL
             OR coalesce((SELECT is_active FROM users WHERE id = $4::bigint), false) AS active
     ),
     listed AS (
         INSERT INTO blacklisted_tokens (jti, expires_at, blacklisted_at)
         SELECT $1::text, $2::bigint, $3::bigint FROM account WHERE active AND $5::boolean
         ON CONFLICT (jti) DO NOTHING
         RETURNING jti
     ),
     outcome AS (
         SELECT CASE
             WHEN NOT (SELECT active FROM account) THEN
                 CASE WHEN EXISTS (SELECT 1 FROM blacklisted_tokens WHERE jti = $1::text)
                     THEN 'blacklisted' ELSE 'no_active_user' END
             WHEN $5::boolean THEN
                 CASE WHEN EXISTS (SELECT 1 FROM listed) THEN 'done' ELSE 'blacklisted' END
             WHEN EXISTS (SELECT 1 FROM blacklisted_tokens WHERE jti = $1::text) THEN 'blacklisted'
             ELSE 'done'
         END AS outcome
     ),
     recorded AS (
         INSERT INTO outstanding_tokens (jti, user_id, created_at, expires_at)
         SELECT $6::text, (SELECT id FROM users WHERE id = $7::bigint), $8::bigint, $9::bigint
         FROM outcome WHERE outcome = 'done' AND $6::text IS NOT NULL
         ON CONFLICT (jti) DO NOTHING
     )
     SELECT outcome FROM outcome";

/// Deletes expired tokens from both tables; counts each jti once.
pub const FLUSH_EXPIRED: &str = "WITH outstanding AS (
         DELETE FROM outstanding_tokens WHERE expires_at < $1::bigint RETURNING jti
     ),
     blacklisted AS (
         DELETE FROM blacklisted_tokens WHERE expires_at < $1::bigint RETURNING jti
     )
     SELECT count(*) FROM (SELECT jti FROM outstanding UNION SELECT jti FROM blacklisted) AS expired";

/// The first writer's secret wins; the SELECT, a statement of its own, sees it even when
/// another instance's insert committed after this INSERT began (READ COMMITTED).
pub const ADD_SECRET: &str = "INSERT INTO secrets (name, value) VALUES ($1::text, $2::bytea)
     ON CONFLICT (name) DO NOTHING";
pub const SECRET: &str = "SELECT value FROM secrets WHERE name = $1::text";
