//! A Django project's PostgreSQL database, on one connection of its own, read in one READ ONLY
//! REPEATABLE READ transaction: PostgreSQL itself refuses any write, and the three tables are
//! read from one snapshot.

use super::time::unix_seconds;
use super::{
    BLACKLISTED, BLACKLISTED_QUERY, OUTSTANDING, Rows, SourceError, TOKENS_QUERY, users_query,
};
use crate::store::{ImportedBlacklisting, ImportedUser, Outstanding};
use std::time::{Duration, SystemTime};
use tokio_postgres::{IsolationLevel, NoTls, Row, Transaction};

pub(super) async fn read(url: &str, user_table: &str) -> Result<Rows, SourceError> {
    let mut config: tokio_postgres::Config = url.parse()?;
    config.connect_timeout(Duration::from_secs(10));
    if config.get_application_name().is_none() {
        config.application_name("handstamp import-django");
    }
    let (mut client, connection) = config.connect(NoTls).await?;
    let connection = tokio::spawn(connection);
    let read = async {
        let tx = client
            .build_transaction()
            .read_only(true)
            .isolation_level(IsolationLevel::RepeatableRead)
            .start()
            .await?;
        let rows = read_in(&tx, user_table).await?;
        tx.rollback().await?;
        Ok(rows)
    }
    .await;
    drop(client);
    let _ = connection.await;
    read
}

async fn read_in(tx: &Transaction<'_>, user_table: &str) -> Result<Rows, SourceError> {
    if !has_table(tx, user_table).await? {
        return Err(SourceError::NoTable(user_table.to_owned()));
    }
    let mut rows = Rows::default();
    for row in tx.query(&users_query(user_table), &[]).await? {
        rows.users.push(user_from(&row)?);
    }
    // A project without simplejwt's blacklist app has no tokens to bring.
    if has_table(tx, OUTSTANDING).await? {
        for row in tx.query(TOKENS_QUERY, &[]).await? {
            rows.tokens.push(token_from(&row)?);
        }
        if has_table(tx, BLACKLISTED).await? {
            for row in tx.query(BLACKLISTED_QUERY, &[]).await? {
                rows.blacklisted.push(blacklisting_from(&row)?);
            }
        }
    }
    Ok(rows)
}

/// Whether the search path finds the table, named exactly as the queries quote it.
async fn has_table(tx: &Transaction<'_>, name: &str) -> Result<bool, tokio_postgres::Error> {
    let quoted = format!("\"{name}\"");
    let row = tx
        .query_one("SELECT to_regclass($1::text) IS NOT NULL", &[&quoted])
        .await?;
    row.try_get(0)
}

/// Django's `AutoField` is an `integer`, `BigAutoField` a `bigint`: either is read.
fn id_at(row: &Row, index: usize) -> Result<Option<i64>, tokio_postgres::Error> {
    match row.try_get::<_, Option<i64>>(index) {
        Ok(id) => Ok(id),
        Err(_) => Ok(row.try_get::<_, Option<i32>>(index)?.map(i64::from)),
    }
}

fn time_at(row: &Row, index: usize) -> Result<Option<i64>, tokio_postgres::Error> {
    Ok(row
        .try_get::<_, Option<SystemTime>>(index)?
        .map(unix_seconds))
}

fn required(id: Option<i64>, what: &str) -> Result<i64, SourceError> {
    id.ok_or_else(|| SourceError::Failed(format!("{what} is NULL").into()))
}

fn user_from(row: &Row) -> Result<ImportedUser, SourceError> {
    Ok(ImportedUser {
        id: required(id_at(row, 0)?, "a user id")?,
        username: row.try_get(1)?,
        password: row.try_get::<_, String>(2)?.into(),
        is_active: row.try_get(3)?,
        is_staff: row.try_get(4)?,
        is_superuser: row.try_get(5)?,
        date_joined: required(time_at(row, 6)?, "date_joined")?,
        last_login: time_at(row, 7)?,
    })
}

fn token_from(row: &Row) -> Result<Outstanding, SourceError> {
    Ok(Outstanding {
        jti: row.try_get(0)?,
        user_id: id_at(row, 1)?,
        created_at: time_at(row, 2)?,
        expires_at: required(time_at(row, 3)?, "a token's expires_at")?,
    })
}

fn blacklisting_from(row: &Row) -> Result<ImportedBlacklisting, SourceError> {
    Ok(ImportedBlacklisting {
        jti: row.try_get(0)?,
        expires_at: required(time_at(row, 1)?, "a token's expires_at")?,
        blacklisted_at: required(time_at(row, 2)?, "blacklisted_at")?,
    })
}
