//! `sim`, a payment-processor simulator that behaves as the contest's processors do
//! (see docs/contest.md), so the whole system can run and be tested on one machine;
//! and `floor`, the bare HTTP responder our benchmarks compare the real stack against.
//!
//! A request to `sim` flows `server` → `routes` → `payments` / `health` / `admin`, which
//! read and change the shared [`state::Sim`]: the `ledger` of stored payments, the run-time
//! `settings`, the `admission` bound on concurrent payments, the `health_budget` and the
//! `stats` counters.

pub mod admin;
pub mod admission;
pub mod body;
pub mod config;
pub mod health;
pub mod health_budget;
pub mod ledger;
pub mod payments;
pub mod routes;
pub mod server;
pub mod settings;
pub mod state;
pub mod stats;
