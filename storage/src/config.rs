//! How a [`Store`](crate::Store) is opened: which database ([`Database`]), as whom, and the
//! writer's batching. Storage reads no environment variables itself: the api decides
//! (`DATABASE_URL`, else `DATABASE_PATH`) and passes the choice here.

use crate::error::StorageError;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Default for [`StoreConfig::max_batch`].
pub const DEFAULT_MAX_BATCH: usize = 1024;
/// Default for [`StoreConfig::linger`]: none (each batch is what is queued when the writer wakes).
pub const DEFAULT_LINGER: Duration = Duration::ZERO;
/// Default for [`StoreConfig::readers`].
pub const DEFAULT_READERS: usize = 2;

/// Where the payments live.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file in WAL mode, shared by the workers of one host (the default).
    Sqlite(PathBuf),
    /// A PostgreSQL server, shared by workers on any number of hosts: a `postgres://` or
    /// `postgresql://` URL as libpq takes it.
    Postgres(String),
}

impl Database {
    /// The api's choice: a `DATABASE_URL` when set (and not empty), else the SQLite file
    /// at `path` (`DATABASE_PATH`). A URL must be `postgres://` or `postgresql://`; any
    /// other is refused with [`StorageError::UnsupportedDatabaseUrl`], so a typo does not
    /// silently fall back to a local file.
    pub fn from_url_or_path(
        url: Option<&str>,
        path: impl Into<PathBuf>,
    ) -> Result<Database, StorageError> {
        let url = match url.map(str::trim) {
            None | Some("") => return Ok(Database::Sqlite(path.into())),
            Some(url) => url,
        };
        let scheme = url.split_once("://").map(|(scheme, _)| scheme);
        match scheme {
            Some("postgres" | "postgresql") => {}
            _ => {
                return Err(StorageError::UnsupportedDatabaseUrl {
                    url: redact(url),
                    scheme: scheme.map(str::to_string),
                })
            }
        }
        url.parse::<tokio_postgres::Config>().map_err(|source| {
            StorageError::InvalidDatabaseUrl {
                url: redact(url),
                source,
            }
        })?;
        Ok(Database::Postgres(url.to_string()))
    }
}

/// The path, or the URL without its password: what logs and errors may show.
impl fmt::Display for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "{}", path.display()),
            Database::Postgres(url) => f.write_str(&redact(url)),
        }
    }
}

/// Same as Display: a `{:?}` of a config in a log must not leak the password either.
impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "Sqlite({path:?})"),
            Database::Postgres(_) => write!(f, "Postgres({self})"),
        }
    }
}

/// `scheme://user:secret@host/db?password=secret` → `scheme://user:***@host/db?password=***`.
pub(crate) fn redact(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (authority, tail) = rest
        .find(['/', '?'])
        .map_or((rest, ""), |i| rest.split_at(i));
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                    _ => p.to_string(),
                })
                .collect();
            format!("{path}?{}", params.join("&"))
        }
        None => tail.to_string(),
    };
    let scheme = if scheme.is_empty() {
        String::new()
    } else {
        format!("{scheme}://")
    };
    format!("{scheme}{authority}{tail}")
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub database: Database,
    /// Who owns the pending payments this handle records (the api worker's id).
    pub owner: String,
    /// Max commands folded into one transaction by the writer (group commit).
    pub max_batch: usize,
    /// How long the writer waits after the first write of a batch for more to join it
    /// (see `write_thread`): fewer, larger commits at low rates, each write answered up to this later.
    pub linger: Duration,
    /// Read connections for summaries, health and queue depth.
    pub readers: usize,
}

impl StoreConfig {
    /// A SQLite file at `path`, with the default batch size, linger and reader count.
    pub fn new(path: impl Into<PathBuf>, owner: impl Into<String>) -> StoreConfig {
        StoreConfig::with_database(Database::Sqlite(path.into()), owner)
    }

    /// Any database, with the default batch size, linger and reader count.
    pub fn with_database(database: Database, owner: impl Into<String>) -> StoreConfig {
        StoreConfig {
            database,
            owner: owner.into(),
            max_batch: DEFAULT_MAX_BATCH,
            linger: DEFAULT_LINGER,
            readers: DEFAULT_READERS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_decides_and_a_password_is_never_shown() {
        let db = Database::from_url_or_path(
            Some("postgres://rinha:s3cret@db:5432/pay?password=s3cret"),
            "x.db",
        )
        .unwrap();
        assert!(matches!(db, Database::Postgres(_)));
        let shown = format!("{db} {db:?}");
        assert!(
            !shown.contains("s3cret") && shown.contains("rinha:***@db:5432/pay"),
            "{shown}"
        );
        assert!(matches!(
            Database::from_url_or_path(Some("postgresql://h/db"), "x.db"),
            Ok(Database::Postgres(_))
        ));
        assert_eq!(
            Database::from_url_or_path(None, "x.db").unwrap(),
            Database::Sqlite("x.db".into())
        );
        assert_eq!(
            Database::from_url_or_path(Some(" "), "x.db").unwrap(),
            Database::Sqlite("x.db".into())
        );
    }

    #[test]
    fn another_scheme_is_refused_by_name() {
        let err = Database::from_url_or_path(Some("mysql://root:pw@db/pay"), "x.db").unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("`mysql`")
                && message.contains("postgres://")
                && !message.contains("pw@"),
            "{message}"
        );
        let err = Database::from_url_or_path(Some("/var/lib/pay.db"), "x.db").unwrap_err();
        assert!(err.to_string().contains("DATABASE_PATH"), "{err}");
    }

    #[test]
    fn a_malformed_postgres_url_is_refused_without_its_password() {
        let err = Database::from_url_or_path(Some("postgres://rinha:s3cret@db:port/pay"), "x.db")
            .unwrap_err();
        let message = err.to_string();
        assert!(
            matches!(err, StorageError::InvalidDatabaseUrl { .. }),
            "{err:?}"
        );
        assert!(
            message.contains("rinha:***@db:port/pay") && !message.contains("s3cret"),
            "{message}"
        );
    }
}
