//! How a [`Store`](crate::Store) is opened. Storage reads no environment variables itself:
//! the api decides the path (`DATABASE_PATH`) and the worker id and passes them here.

use std::path::PathBuf;
use std::time::Duration;

/// Default for [`StoreConfig::max_batch`].
pub const DEFAULT_MAX_BATCH: usize = 1024;
/// Default for [`StoreConfig::linger`]: none (each batch is what is queued when the writer wakes).
pub const DEFAULT_LINGER: Duration = Duration::ZERO;
/// Default for [`StoreConfig::readers`].
pub const DEFAULT_READERS: usize = 2;

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub path: PathBuf,
    /// Who owns the pending payments this handle records (the api worker's id).
    pub owner: String,
    /// Max commands folded into one transaction by the writer (group commit).
    pub max_batch: usize,
    /// How long the writer waits after the first write of a batch for more to join it
    /// (see `writer`): fewer, larger commits at low rates, each write answered up to this later.
    pub linger: Duration,
    /// Read connections for summaries, health and queue depth.
    pub readers: usize,
}

impl StoreConfig {
    /// A configuration with the default batch size, linger and reader count.
    pub fn new(path: impl Into<PathBuf>, owner: impl Into<String>) -> StoreConfig {
        StoreConfig {
            path: path.into(),
            owner: owner.into(),
            max_batch: DEFAULT_MAX_BATCH,
            linger: DEFAULT_LINGER,
            readers: DEFAULT_READERS,
        }
    }
}
