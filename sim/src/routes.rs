//! Which handler answers which request. By default every request is handled on a task of
//! its own, as a server that ignores its client's give-up does: if the client hangs up
//! mid-delay, the payment is still stored (our api's timeout and crash tests depend on
//! that). With `SIM_STORE_AFTER_DISCONNECT=0` the request is handled on its connection's
//! task instead and is dropped with it: a client that hung up before the delay ended was
//! not charged.

use crate::state::Sim;
use crate::{admin, health, payments};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use service::reply::{self, Reply};
use std::sync::Arc;

/// The header every `/admin/` call must carry, equal to the current token.
pub const TOKEN_HEADER: &str = "X-Rinha-Token";

/// Handles `req` on its own task, so a dropped connection cannot cancel it; or, when
/// `sim.store_after_disconnect` is off, right here, so hyper drops it with the connection.
pub async fn handle(sim: Arc<Sim>, req: Request<Incoming>) -> Reply {
    if !sim.store_after_disconnect {
        return route(sim, req).await;
    }
    match tokio::spawn(route(sim, req)).await {
        Ok(reply) => reply,
        Err(e) => {
            tracing::error!("request handler failed: {e}");
            reply::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the handler failed",
            )
        }
    }
}

async fn route(sim: Arc<Sim>, req: Request<Incoming>) -> Reply {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    let method = &parts.method;
    if let Some(admin_path) = path.strip_prefix("/admin/") {
        let token = parts
            .headers
            .get(TOKEN_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if !sim.settings.token_matches(token) {
            return reply::error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or wrong X-Rinha-Token",
            );
        }
        return route_admin(&sim, method, admin_path, parts.uri.query(), body).await;
    }
    match path {
        "/payments" if method == Method::POST => payments::create(&sim, body).await,
        "/payments" => reply::method_not_allowed(path, "POST"),
        "/payments/service-health" if method == Method::GET => health::service_health(&sim).await,
        "/payments/service-health" => reply::method_not_allowed(path, "GET"),
        _ => match path
            .strip_prefix("/payments/")
            .filter(|id| !id.contains('/'))
        {
            Some(id) if method == Method::GET => payments::find(&sim, id),
            Some(_) => reply::method_not_allowed(path, "GET"),
            None => reply::not_found(path),
        },
    }
}

async fn route_admin(
    sim: &Sim,
    method: &Method,
    path: &str,
    query: Option<&str>,
    body: Incoming,
) -> Reply {
    let full_path = || format!("/admin/{path}");
    match (path, method) {
        ("payments-summary", &Method::GET) => admin::summary(sim, query),
        ("configurations/token", &Method::PUT) => admin::set_token(sim, body).await,
        ("configurations/delay", &Method::PUT) => admin::set_delay(sim, body).await,
        ("configurations/failure", &Method::PUT) => admin::set_failure(sim, body).await,
        ("purge-payments", &Method::POST) => admin::purge(sim),
        ("stats", &Method::GET) => admin::stats(sim),
        ("payments", &Method::GET) => admin::payments(sim),
        ("payments-summary" | "stats" | "payments", _) => {
            reply::method_not_allowed(&full_path(), "GET")
        }
        ("configurations/token" | "configurations/delay" | "configurations/failure", _) => {
            reply::method_not_allowed(&full_path(), "PUT")
        }
        ("purge-payments", _) => reply::method_not_allowed(&full_path(), "POST"),
        _ => reply::not_found(&full_path()),
    }
}
