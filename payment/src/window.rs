//! The `?from=..&to=..` window of a summary: our `GET /payments-summary` and the
//! processors' (simulated) admin summary read it the same way, so the parsing lives here.
//!
//! Rules: `from` and `to` are optional ISO-8601 timestamps ([`Millis::parse_iso`]), both
//! bounds inclusive, percent-decoded (`%3A` is `:`; a `+` stays a `+`, so an offset like
//! `+02:00` works unencoded); an empty value counts as absent. Our API is [`Window::parse`]:
//! an unknown or repeated parameter is an error, since a typo must not silently widen the
//! window to "everything". The processors ignore other parameters: [`Window::parse_lenient`].

use crate::{Millis, TimeError};

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
        source: TimeError,
    },
}

impl Window {
    /// Strict: only `from` and `to`, each at most once.
    pub fn parse(query: Option<&str>) -> Result<Window, QueryError> {
        Window::parse_with(query, true)
    }

    /// As the payment processors read it: other parameters are ignored, the last of a
    /// repeated one wins.
    pub fn parse_lenient(query: Option<&str>) -> Result<Window, QueryError> {
        Window::parse_with(query, false)
    }

    /// Whether `t` lies in the window (bounds inclusive).
    pub fn contains(&self, t: Millis) -> bool {
        self.from.is_none_or(|from| t >= from) && self.to.is_none_or(|to| t <= to)
    }

    fn parse_with(query: Option<&str>, strict: bool) -> Result<Window, QueryError> {
        let mut window = Window::default();
        let mut seen = [false; 2];
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
            let (name, slot, seen) = match key {
                "from" => ("from", &mut window.from, &mut seen[0]),
                "to" => ("to", &mut window.to, &mut seen[1]),
                other if strict => return Err(QueryError::Unknown(other.to_string())),
                _ => continue,
            };
            if std::mem::replace(seen, true) && strict {
                return Err(QueryError::Repeated(name));
            }
            let value =
                percent_decode(raw).ok_or_else(|| QueryError::Encoding(name.to_string()))?;
            *slot = match value.as_str() {
                "" => None,
                text => Some(
                    Millis::parse_iso(text).map_err(|source| QueryError::Date { name, source })?,
                ),
            };
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
    fn strict_refuses_what_it_does_not_understand() {
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
            Window::parse(Some("to=%zz")),
            Err(QueryError::Encoding(_))
        ));
    }

    #[test]
    fn lenient_ignores_other_parameters_but_not_bad_dates() {
        let w = Window::parse_lenient(Some("to=2025-07-10T12%3A34%3A56.000Z&x=1")).unwrap();
        assert_eq!(
            w,
            Window {
                from: None,
                to: Some(Millis(1_752_150_896_000))
            }
        );
        assert!(Window::parse_lenient(Some("from=yesterday")).is_err());
        assert!(Window::parse_lenient(Some("from=%zz")).is_err());
    }

    #[test]
    fn contains_both_bounds() {
        let w = Window {
            from: Some(Millis(10)),
            to: Some(Millis(20)),
        };
        assert!(w.contains(Millis(10)) && w.contains(Millis(20)));
        assert!(!w.contains(Millis(9)) && !w.contains(Millis(21)));
        assert!(Window::default().contains(Millis(i64::MIN)));
    }
}
