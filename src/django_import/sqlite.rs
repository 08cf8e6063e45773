//! A Django project's SQLite database, opened read-only (a missing file is an error, never
//! created), read in one transaction so that the three tables agree.

use super::time::{self, BadTime};
use super::{
    BLACKLISTED, BLACKLISTED_QUERY, OUTSTANDING, Rows, SourceError, TOKENS_QUERY, users_query,
};
use crate::store::{ImportedBlacklisting, ImportedUser, Outstanding};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, Row};

pub(super) fn read(path: &str, user_table: &str) -> Result<Rows, SourceError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    let tx = conn.transaction()?;
    if !has_table(&tx, user_table)? {
        return Err(SourceError::NoTable(user_table.to_owned()));
    }
    let mut rows = Rows::default();
    let mut users = tx.prepare(&users_query(user_table))?;
    for user in users.query_and_then([], user_from)? {
        rows.users.push(user?);
    }
    // A project without simplejwt's blacklist app has no tokens to bring.
    if has_table(&tx, OUTSTANDING)? {
        let mut tokens = tx.prepare(TOKENS_QUERY)?;
        for token in tokens.query_and_then([], token_from)? {
            rows.tokens.push(token?);
        }
        if has_table(&tx, BLACKLISTED)? {
            let mut listed = tx.prepare(BLACKLISTED_QUERY)?;
            for entry in listed.query_and_then([], blacklisting_from)? {
                rows.blacklisted.push(entry?);
            }
        }
    }
    Ok(rows)
}

fn has_table(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?)",
        [name],
        |row| row.get(0),
    )
}

fn user_from(row: &Row) -> Result<ImportedUser, SourceError> {
    Ok(ImportedUser {
        id: row.get(0)?,
        username: row.get(1)?,
        password: row.get::<_, String>(2)?.into(),
        is_active: row.get(3)?,
        is_staff: row.get(4)?,
        is_superuser: row.get(5)?,
        date_joined: required_time(row, 6)?,
        last_login: time_at(row, 7)?,
    })
}

fn token_from(row: &Row) -> Result<Outstanding, SourceError> {
    Ok(Outstanding {
        jti: row.get(0)?,
        user_id: row.get(1)?,
        created_at: time_at(row, 2)?,
        expires_at: required_time(row, 3)?,
    })
}

fn blacklisting_from(row: &Row) -> Result<ImportedBlacklisting, SourceError> {
    Ok(ImportedBlacklisting {
        jti: row.get(0)?,
        expires_at: required_time(row, 1)?,
        blacklisted_at: required_time(row, 2)?,
    })
}

/// A time column: Django's text, or a number of seconds written by other means.
fn time_at(row: &Row, index: usize) -> Result<Option<i64>, SourceError> {
    match row.get_ref(index)? {
        ValueRef::Null => Ok(None),
        ValueRef::Text(text) => Ok(Some(time::parse(&String::from_utf8_lossy(text))?)),
        ValueRef::Integer(seconds) => Ok(Some(seconds)),
        ValueRef::Real(seconds) => Ok(Some(seconds.floor() as i64)),
        ValueRef::Blob(bytes) => Err(BadTime(String::from_utf8_lossy(bytes).into_owned()).into()),
    }
}

fn required_time(row: &Row, index: usize) -> Result<i64, SourceError> {
    time_at(row, index)?.ok_or_else(|| BadTime("NULL".into()).into())
}
