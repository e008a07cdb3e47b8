//! The lb: the only public port (9999). It answers `POST /payments` itself with 202
//! once the body is valid and queued in memory, forwards queued payments in batches to
//! the api workers' `POST /intake`, and proxies the summary and the purge to a healthy
//! worker. Built on Cloudflare's Pingora.
//!
//! The life of a payment: [`gateway`] routes it, [`accept`] validates it, records it in
//! the [`journal`] and queues it ([`queue`]), [`forwarder`] delivers it ([`intake_client`])
//! to a worker ([`workers`]) and retires it from the journal.
//! [`front`] caps the client connections ([`idle`]: which may be closed at the cap);
//! [`shutdown`] drains the queue on SIGTERM; [`metrics_listener`] serves the counters off
//! the public port; [`server`] puts the parts together.

pub mod accept;
pub mod body;
pub mod config;
pub mod forwarder;
pub mod front;
pub mod gateway;
pub mod head;
pub mod idle;
pub mod intake_client;
pub mod journal;
pub mod metrics;
pub mod metrics_listener;
pub mod queue;
pub mod reply;
pub mod routes;
pub mod server;
pub mod shutdown;
pub mod workers;
