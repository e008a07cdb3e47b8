//! The only code that speaks SQL: one SQLite database file in WAL mode, shared by the two
//! api worker processes, holding every payment from "accepted" to "processed".
//!
//! - [`schema`]: opening the file, the pragmas and the durability decision, the versioned
//!   schema and the `payments_view` for people at the `sqlite3` prompt;
//! - [`Store`]: the async API; writes are folded into one transaction per batch by a single
//!   writer thread (`writer`), reads run on a small pool of read connections (`reads`).
//!
//! Keeping the SQL behind [`Store`] is what would let a networked store replace SQLite
//! without touching the api.

mod busy;
pub mod config;
mod error;
mod model;
mod reads;
pub mod schema;
mod store;
mod writer;
mod writes;

pub use config::StoreConfig;
pub use error::StorageError;
pub use model::{Attempt, Claimed, Destination, DoubleCharge, HealthRecord, Pending, Taken};
pub use store::Store;
