//! Delivery: what happens to a payment after its 202. The [`journal`] keeps it on the data
//! volume and the [`queue`] holds it in memory until the [`forwarder`] has posted it
//! ([`intake_client`]) to a worker ([`workers`]) that committed it; only then is it retired
//! from the journal.

pub(crate) mod forwarder;
mod intake_client;
pub mod journal;
pub(crate) mod queue;
pub(crate) mod workers;
