//! The PostgreSQL schema's migrations, embedded from `migrations/postgres/`, applied in one
//! transaction under an advisory lock: of instances starting together on an empty database,
//! one migrates and the others wait on the lock, then find nothing left to do.
//!
//! Hand-written (thirty lines) rather than a migration crate's: refinery takes no lock, and
//! sqlx's migrator would bring sqlx's driver beside the one we use.

use tokio_postgres::Transaction;

/// (version, name, SQL), in order.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../../../migrations/postgres/0001_initial.sql"),
    ),
    (
        2,
        "sessions",
        include_str!("../../../migrations/postgres/0002_sessions.sql"),
    ),
    (
        3,
        "login_failures",
        include_str!("../../../migrations/postgres/0003_login_failures.sql"),
    ),
    (
        4,
        "signing_keys",
        include_str!("../../../migrations/postgres/0004_signing_keys.sql"),
    ),
];

/// The advisory lock's key: "handstmp" in ASCII, the same for every instance.
const LOCK: i64 = 0x6861_6e64_7374_6d70;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
    #[error("the database schema is at version {found}, newer than this handstamp's {known}")]
    Newer { found: i32, known: i32 },
}

/// Brings the schema up to date inside `tx` (committed by the caller); returns the versions it
/// applied. The lock is held until that commit or rollback.
pub async fn migrate(tx: &Transaction<'_>) -> Result<Vec<i32>, MigrateError> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS handstamp_migrations (
             version    INTEGER     PRIMARY KEY,
             name       TEXT        NOT NULL,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )
    .await?;
    let row = tx
        .query_one("SELECT max(version) FROM handstamp_migrations", &[])
        .await?;
    let current: i32 = row.get::<_, Option<i32>>(0).unwrap_or(0);
    let known = MIGRATIONS.last().map_or(0, |(version, ..)| *version);
    if current > known {
        return Err(MigrateError::Newer {
            found: current,
            known,
        });
    }
    let mut applied = Vec::new();
    for (version, name, sql) in MIGRATIONS.iter().filter(|(v, ..)| *v > current) {
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO handstamp_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .await?;
        applied.push(*version);
    }
    Ok(applied)
}
