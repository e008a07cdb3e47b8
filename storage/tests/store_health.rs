//! The health-check budget: one turn per processor per window among all workers, and the
//! record of the answer shared through the database. Every test in `on_both!` runs
//! against SQLite and against PostgreSQL (`sqlite::<name>`, `postgres::<name>`).

mod common;

use common::{ms, on_both, Db};
use payment::{Millis, Processor};
use storage::HealthRecord;

on_both!(
    async
    one_health_turn_per_window_and_the_record_is_shared,
);

async fn one_health_turn_per_window_and_the_record_is_shared(db: Db) {
    let w1 = db.open("w1");
    let w2 = db.open("w2");
    let (d, f) = (Processor::Default, Processor::Fallback);
    assert!(w1
        .take_health_turn(d, Millis(10_000), ms(5_000))
        .await
        .unwrap());
    assert!(!w2
        .take_health_turn(d, Millis(10_001), ms(5_000))
        .await
        .unwrap());
    assert!(!w1
        .take_health_turn(d, Millis(14_999), ms(5_000))
        .await
        .unwrap());
    // The other processor has its own budget.
    assert!(w2
        .take_health_turn(f, Millis(10_001), ms(5_000))
        .await
        .unwrap());
    assert!(w2
        .take_health_turn(d, Millis(15_000), ms(5_000))
        .await
        .unwrap());

    assert_eq!(w2.health(d).await.unwrap(), None);
    let record = HealthRecord {
        failing: true,
        min_response_time_ms: 120,
        checked_at: Millis(15_010),
    };
    w1.save_health(d, record).await.unwrap();
    assert_eq!(w2.health(d).await.unwrap(), Some(record));
    assert_eq!(w2.health(f).await.unwrap(), None);
}
