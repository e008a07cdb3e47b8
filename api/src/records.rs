//! The two routes on the recorded payments: `GET /payments-summary?from&to` reads the processed payments'
//! totals, `POST /purge-payments` deletes every payment.
//!
//! Both are answered from the database, not from this worker's memory, so both workers
//! give the same answer. The query is read strictly by [`payment::Window::parse`]: anything
//! it refuses (an unknown or repeated parameter, a date that does not parse) is a 400.

use hyper::StatusCode;
use payment::{Millis, Window};
use service::reply::{self, Reply};
use storage::Store;

/// `GET /payments-summary`: the totals per processor in the query's window.
pub(crate) async fn summary(store: &Store, query: Option<&str>) -> Reply {
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

/// `POST /purge-payments`: forgets every payment accepted until now, for good (see
/// `Store::purge`). The answer waits until the clock is past the fence, so a payment
/// accepted after the 200 is never forgotten. The fence is this worker's clock and the
/// acceptance time the lb's: on one host they are the same clock.
pub(crate) async fn purge(store: &Store) -> Reply {
    let fence = Millis::now();
    let purged = store.purge(fence).await;
    while Millis::now() <= fence {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    match purged {
        Ok(()) => reply::json(StatusCode::OK, r#"{"message":"All payments purged."}"#),
        Err(e) => {
            tracing::error!("purge failed: {e}");
            reply::error(StatusCode::SERVICE_UNAVAILABLE, "storage", e)
        }
    }
}
