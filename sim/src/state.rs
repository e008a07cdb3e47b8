//! Everything one simulated processor holds, shared by all its connections.

use crate::admission::Admission;
use crate::config::{FeePpm, SimConfig};
use crate::health_budget::HealthBudget;
use crate::ledger::Ledger;
use crate::settings::Settings;
use crate::stats::Stats;

pub struct Sim {
    pub fee: FeePpm,
    pub ledger: Ledger,
    pub settings: Settings,
    pub admission: Admission,
    pub health: HealthBudget,
    pub stats: Stats,
    /// Whether a request outlives its client's connection (`SIM_STORE_AFTER_DISCONNECT`).
    pub store_after_disconnect: bool,
}

impl Sim {
    pub fn new(config: &SimConfig) -> Sim {
        Sim {
            fee: config.fee,
            ledger: Ledger::default(),
            settings: Settings::new(config.token.clone()),
            admission: Admission::new(config.max_running, config.max_waiting),
            health: HealthBudget::new(config.health_window_secs as u64),
            stats: Stats::default(),
            store_after_disconnect: config.store_after_disconnect,
        }
    }
}
