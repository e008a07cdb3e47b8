//! What can go wrong in storage, said so that the person reading the log knows which file,
//! which operation, and what to do about it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("cannot create directory {dir} for the database {path}: {source}")]
    CreateDir { dir: PathBuf, path: PathBuf, source: std::io::Error },

    #[error(
        "{path} exists but is not a SQLite database (or is damaged); move it away or point \
         DATABASE_PATH at another file, and a new database will be created there"
    )]
    NotADatabase { path: PathBuf },

    #[error(
        "{path} has schema version {found}, newer than this program knows ({known}); \
         run a newer build of this program against it"
    )]
    SchemaTooNew { path: PathBuf, found: i64, known: i64 },

    #[error("SQLite failed on {path} while trying to {operation}: {source}")]
    Sqlite { path: PathBuf, operation: &'static str, source: rusqlite::Error },

    #[error("cannot start the storage writer thread for {path}: {source}")]
    WriterThread { path: PathBuf, source: std::io::Error },

    #[error("the storage writer for {path} has stopped (the store was closed) before it could {operation}")]
    Closed { path: PathBuf, operation: &'static str },

    #[error("the reader task on {path} was lost (panicked or cancelled) while trying to {operation}")]
    ReaderLost { path: PathBuf, operation: &'static str },
}

impl StorageError {
    /// Wraps an SQLite error with its context; "file is not a database" gets its own kind
    /// because only a person can fix it.
    pub(crate) fn sqlite(path: &std::path::Path, operation: &'static str, source: rusqlite::Error) -> Self {
        if source.sqlite_error_code() == Some(rusqlite::ErrorCode::NotADatabase) {
            return StorageError::NotADatabase { path: path.to_path_buf() };
        }
        StorageError::Sqlite { path: path.to_path_buf(), operation, source }
    }
}
