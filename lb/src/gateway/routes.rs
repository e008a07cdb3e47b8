//! The lb's URL map: which paths exist, the method each takes, and (by the variant) who
//! answers: the lb itself (`Payments`) or a worker through the proxy
//! (`Summary`, `Purge`). Everything else is 404, or 405 on a known path. Each route also
//! says how much body it takes ([`Route::max_body`]); more is 413.

use payment::request::MAX_BODY_BYTES;
use pingora::http::Method;

/// What the summary and the purge take of a body: they need none, and a client that
/// sends a few bytes anyway (a `{}`) is not refused for it.
pub(crate) const NO_BODY_MAX_BYTES: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// `POST /payments`: answered 202 by the lb, forwarded later.
    Payments,
    /// `GET /payments-summary`: proxied to a worker, query string and all.
    Summary,
    /// `POST /purge-payments`: proxied to a worker.
    Purge,
}

impl Route {
    /// The largest body this route takes; the body is dropped where it means nothing
    /// (`Summary`, `Purge`: never forwarded to a worker).
    pub(crate) fn max_body(self) -> usize {
        match self {
            Route::Payments => MAX_BODY_BYTES,
            Route::Summary | Route::Purge => NO_BODY_MAX_BYTES,
        }
    }
}

/// A request no route takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Miss {
    NotFound,
    MethodNotAllowed { allowed: &'static str },
}

impl Miss {
    pub(crate) fn status(self) -> u16 {
        match self {
            Miss::NotFound => 404,
            Miss::MethodNotAllowed { .. } => 405,
        }
    }

    pub(crate) fn kind(self) -> &'static str {
        match self {
            Miss::NotFound => "not_found",
            Miss::MethodNotAllowed { .. } => "method_not_allowed",
        }
    }
}

/// `GET /metrics` is not here: it has its own listener (`crate::metrics::listener`).
const TABLE: [(&str, Method, Route); 3] = [
    ("/payments", Method::POST, Route::Payments),
    ("/payments-summary", Method::GET, Route::Summary),
    ("/purge-payments", Method::POST, Route::Purge),
];

/// The route for `method path` (path without the query string).
pub(crate) fn route(method: &Method, path: &str) -> Result<Route, Miss> {
    let (_, wanted, route) = TABLE
        .iter()
        .find(|(p, _, _)| *p == path)
        .ok_or(Miss::NotFound)?;
    if method == wanted {
        Ok(*route)
    } else {
        Err(Miss::MethodNotAllowed {
            allowed: wanted.as_str(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_paths_with_their_method_only() {
        assert_eq!(route(&Method::POST, "/payments"), Ok(Route::Payments));
        assert_eq!(route(&Method::GET, "/payments-summary"), Ok(Route::Summary));
        assert_eq!(
            route(&Method::GET, "/payments"),
            Err(Miss::MethodNotAllowed { allowed: "POST" })
        );
        assert_eq!(route(&Method::POST, "/payments/"), Err(Miss::NotFound));
        assert_eq!(route(&Method::GET, "/intake"), Err(Miss::NotFound));
        assert_eq!(route(&Method::GET, "/metrics"), Err(Miss::NotFound));
    }
}
