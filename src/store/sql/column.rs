//! Decoding stored columns: a value that does not decode makes the row corrupt. Compiled once per
//! backend.

use agentgate_policy::{Scope, ScopeSet};
use sqlx::Row;

use super::DbRow;
use crate::clock::Timestamp;
use crate::store::Error;

/// A decoding failure as a corrupt row.
pub(crate) fn corrupt(e: sqlx::Error) -> Error {
    Error::Corrupt(e.to_string())
}

/// A Unix-milliseconds column.
pub(crate) fn ts(row: &DbRow, col: &str) -> Result<Timestamp, Error> {
    Ok(Timestamp::from_millis(row.try_get(col).map_err(corrupt)?))
}

/// A nullable Unix-milliseconds column.
pub(crate) fn opt_ts(row: &DbRow, col: &str) -> Result<Option<Timestamp>, Error> {
    let v: Option<i64> = row.try_get(col).map_err(corrupt)?;
    Ok(v.map(Timestamp::from_millis))
}

/// A SHA-256 column.
pub(crate) fn hash32(row: &DbRow, col: &str) -> Result<[u8; 32], Error> {
    let hash: Vec<u8> = row.try_get(col).map_err(corrupt)?;
    hash.try_into()
        .map_err(|_| Error::Corrupt(format!("{col} is not 32 bytes")))
}

/// The comma-separated `scopes` column.
pub(crate) fn scopes(row: &DbRow) -> Result<ScopeSet, Error> {
    let scopes: String = row.try_get("scopes").map_err(corrupt)?;
    scopes
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<Scope>())
        .collect::<Result<ScopeSet, _>>()
        .map_err(|e| Error::Corrupt(e.to_string()))
}
