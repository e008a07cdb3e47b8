//! The lb: the only public port (9999). It answers `POST /payments` itself with 202
//! once the body is valid and queued in memory, forwards queued payments in batches to
//! the api workers' `POST /intake`, and proxies the summary and the purge to a healthy
//! worker. Built on Cloudflare's Pingora. Its parts, in the order a payment meets them:
//!
//! - `front`: the client connections, capped, each request's head read before Pingora;
//! - `gateway`: the routes; `POST /payments` validated, journaled, queued, answered 202;
//! - `delivery`: the [`journal`], the queue and the forwarder that posts to the workers;
//! - `metrics`, [`shutdown`] (the drain on SIGTERM), `slice` (the lb's turn on a busy
//!   core), [`config`], and [`server`], which puts the parts together.

pub mod config;
mod delivery;
mod front;
mod gateway;
mod metrics;
pub mod server;
pub mod shutdown;
mod slice;

pub use delivery::journal;
