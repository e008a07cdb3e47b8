//! `GET /payments-summary?from&to` and `POST /purge-payments`, answered from SQLite so
//! both workers give the same answer.
//!
//! Query rules (decided here): `from` and `to` are optional ISO-8601 timestamps
//! (`payment::Millis::parse_iso`), percent-decoded (`%3A` is `:`; a `+` stays a `+`, so an
//! offset like `+02:00` works unencoded); an empty value counts as absent. Anything else
//! in the query (an unknown or repeated parameter, a date that does not parse) is a 400:
//! a typo must not silently widen the window to "everything".

use crate::reply::{self, Reply};
use hyper::StatusCode;
use payment::Millis;
use storage::Store;

/// The parsed window, either bound optional, both inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Window {
    pub from: Option<Millis>,
    pub to: Option<Millis>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QueryError {
    #[error("unknown query parameter `{0}`; only `from` and `to` are accepted")]
    Unknown(String),
    #[error("query parameter `{0}` is given twice")]
    Repeated(&'static str),
    #[error("query parameter `{0}` is not valid percent-encoding")]
    Encoding(String),
    #[error("`{name}`: {source}")]
    Date {
        name: &'static str,
        source: payment::TimeError,
    },
}

impl Window {
    pub fn parse(query: Option<&str>) -> Result<Window, QueryError> {
        let mut window = Window::default();
        let mut seen = [false; 2];
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
            let (name, slot, seen) = match key {
                "from" => ("from", &mut window.from, &mut seen[0]),
                "to" => ("to", &mut window.to, &mut seen[1]),
                other => return Err(QueryError::Unknown(other.to_string())),
            };
            if std::mem::replace(seen, true) {
                return Err(QueryError::Repeated(name));
            }
            let value =
                percent_decode(raw).ok_or_else(|| QueryError::Encoding(name.to_string()))?;
            if !value.is_empty() {
                *slot = Some(
                    Millis::parse_iso(&value)
                        .map_err(|source| QueryError::Date { name, source })?,
                );
            }
        }
        Ok(window)
    }
}

/// Decodes `%XX` escapes; None for a broken escape or a result that is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

pub async fn summary(store: &Store, query: Option<&str>) -> Reply {
    let window = match Window::parse(query) {
        Ok(window) => window,
        Err(e) => return reply::error(StatusCode::BAD_REQUEST, "bad_query", e),
    };
    match store.summary(window.from, window.to).await {
        Ok(summary) => reply::json(StatusCode::OK, summary.to_json()),
        Err(e) => {
            tracing::error!("summary failed: {e}");
            reply::error(StatusCode::SERVICE_UNAVAILABLE, "storage", e)
        }
    }
}

pub async fn purge(store: &Store) -> Reply {
    match store.purge().await {
        Ok(()) => reply::json(
            StatusCode::OK,
            r#"{"message":"All payments purged."}"#.into(),
        ),
        Err(e) => {
            tracing::error!("purge failed: {e}");
            reply::error(StatusCode::SERVICE_UNAVAILABLE, "storage", e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_contest_query() {
        let w = Window::parse(Some(
            "from=2025-07-10T12:34:56.000Z&to=2025-07-10T12%3A35%3A56.000Z",
        ))
        .unwrap();
        assert_eq!(w.from, Some(Millis(1_752_150_896_000)));
        assert_eq!(w.to, Some(Millis(1_752_150_956_000)));
        assert_eq!(Window::parse(None).unwrap(), Window::default());
        assert_eq!(Window::parse(Some("from=&to=")).unwrap(), Window::default());
        let offset = Window::parse(Some("from=2025-07-10T14:34:56.000+02:00")).unwrap();
        assert_eq!(offset.from, Some(Millis(1_752_150_896_000)));
    }

    #[test]
    fn refuses_what_it_does_not_understand() {
        assert!(matches!(
            Window::parse(Some("from=yesterday")),
            Err(QueryError::Date { name: "from", .. })
        ));
        assert_eq!(
            Window::parse(Some("since=x")),
            Err(QueryError::Unknown("since".into()))
        );
        assert_eq!(
            Window::parse(Some("to=&to=")),
            Err(QueryError::Repeated("to"))
        );
        assert!(matches!(
            Window::parse(Some("to=2025-07-10T12:34:56Z&to=2025-07-10T12:34:56Z")),
            Err(QueryError::Repeated("to"))
        ));
        assert!(matches!(
            Window::parse(Some("to=%zz")),
            Err(QueryError::Encoding(_))
        ));
    }
}
