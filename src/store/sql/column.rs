//! Decoding rows: through `sqlx::FromRow` (the rows derive it; `store/types.rs` makes our own types
//! columns), and a value that does not decode makes the row corrupt. Compiled once per backend.

use agentgate_policy::ScopeSet;
use sqlx::{FromRow, Row};

use super::DbRow;
use crate::store::Error;

/// A decoding failure as a corrupt row.
pub(crate) fn corrupt(e: sqlx::Error) -> Error {
    Error::Corrupt(e.to_string())
}

/// A row as `T`.
pub(crate) fn decode<T>(row: &DbRow) -> Result<T, Error>
where
    T: for<'r> FromRow<'r, DbRow>,
{
    T::from_row(row).map_err(corrupt)
}

/// A column as `T`.
pub(crate) fn get<'r, T>(row: &'r DbRow, col: &str) -> Result<T, Error>
where
    T: sqlx::Decode<'r, super::Db> + sqlx::Type<super::Db>,
{
    row.try_get(col).map_err(corrupt)
}

/// A SHA-256 column.
pub(crate) fn hash32(row: &DbRow, col: &str) -> Result<[u8; 32], Error> {
    let hash: Vec<u8> = get(row, col)?;
    hash.try_into()
        .map_err(|_| Error::Corrupt(format!("{col} is not 32 bytes")))
}

/// The comma-separated `scopes` column.
pub(crate) fn scopes(row: &DbRow) -> Result<ScopeSet, Error> {
    let text: String = get(row, "scopes")?;
    text.parse()
        .map_err(|e: agentgate_policy::UnknownScope| Error::Corrupt(e.to_string()))
}
