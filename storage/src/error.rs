//! What can go wrong in storage, said so that the person reading the log knows which
//! database, which operation, and what to do about it. A PostgreSQL URL is always shown
//! without its password (`config::redact`).

use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("cannot create directory {dir} for the database {path}: {source}")]
    CreateDir {
        dir: PathBuf,
        path: PathBuf,
        source: std::io::Error,
    },

    #[error(
        "{path} exists but is not a SQLite database (or is damaged); move it away or point \
         DATABASE_PATH at another file, and a new database will be created there"
    )]
    NotADatabase { path: PathBuf },

    #[error(
        "{database} has schema version {found}, newer than this program knows ({known}); \
         run a newer build of this program against it"
    )]
    SchemaTooNew {
        database: String,
        found: i64,
        known: i64,
    },

    #[error("SQLite failed on {path} while trying to {operation}: {source}")]
    Sqlite {
        path: PathBuf,
        operation: &'static str,
        source: rusqlite::Error,
    },

    #[error(
        "DATABASE_URL={url} is not supported{}: use a postgres:// or postgresql:// URL, or unset \
         DATABASE_URL to keep the SQLite file at DATABASE_PATH",
        .scheme.as_ref().map(|s| format!(" (scheme `{s}`)")).unwrap_or_default()
    )]
    UnsupportedDatabaseUrl { url: String, scheme: Option<String> },

    #[error("DATABASE_URL={url} is not a valid PostgreSQL URL: {source}")]
    InvalidDatabaseUrl {
        url: String,
        source: tokio_postgres::Error,
    },

    #[error(
        "cannot connect to PostgreSQL at {database}: {reason} (is the server running and \
         reachable, and are the user, password and database name in DATABASE_URL right?)"
    )]
    PostgresConnect {
        database: String,
        reason: String,
        source: tokio_postgres::Error,
    },

    #[error("PostgreSQL failed on {database} while trying to {operation}: {reason}")]
    Postgres {
        database: String,
        operation: &'static str,
        reason: String,
        source: Arc<tokio_postgres::Error>,
    },

    #[error("cannot start the storage writer thread for {database}: {source}")]
    WriterThread {
        database: String,
        source: std::io::Error,
    },

    #[error("the storage writer for {database} has stopped (the store was closed) before it could {operation}")]
    Closed {
        database: String,
        operation: &'static str,
    },

    #[error("the reader task on {database} was lost (panicked or cancelled) while trying to {operation}")]
    ReaderLost {
        database: String,
        operation: &'static str,
    },
}

impl StorageError {
    /// Wraps a PostgreSQL error with its context and the server's own words.
    pub(crate) fn postgres(
        database: &str,
        operation: &'static str,
        source: Arc<tokio_postgres::Error>,
    ) -> Self {
        StorageError::Postgres {
            database: database.to_string(),
            operation,
            reason: reason(&source),
            source,
        }
    }

    pub(crate) fn postgres_connect(database: &str, source: tokio_postgres::Error) -> Self {
        StorageError::PostgresConnect {
            database: database.to_string(),
            reason: reason(&source),
            source,
        }
    }

    /// Wraps an SQLite error with its context; "file is not a database" gets its own kind
    /// because only a person can fix it.
    pub(crate) fn sqlite(
        path: &std::path::Path,
        operation: &'static str,
        source: rusqlite::Error,
    ) -> Self {
        if source.sqlite_error_code() == Some(rusqlite::ErrorCode::NotADatabase) {
            return StorageError::NotADatabase {
                path: path.to_path_buf(),
            };
        }
        StorageError::Sqlite {
            path: path.to_path_buf(),
            operation,
            source,
        }
    }
}

/// `tokio_postgres::Error` displays only its kind ("db error"): the server's message, its
/// SQLSTATE and hint, or the chain of causes, are what a person needs.
fn reason(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let hint = db
            .hint()
            .map(|h| format!("; hint: {h}"))
            .unwrap_or_default();
        return format!(
            "{}: {} (SQLSTATE {}){hint}",
            db.severity(),
            db.message(),
            db.code().code()
        );
    }
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text = format!("{text}: {c}");
        cause = c.source();
    }
    text
}
