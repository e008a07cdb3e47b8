//! The payments a processor has accepted: what `GET /payments/{id}` and the admin summary
//! read, and what makes a repeated correlationId a 422.

use payment::{Cents, Millis, Uuid, Window};
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// One stored payment: the amount rounded to cents and the `requestedAt` the client sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredPayment {
    pub amount: Cents,
    pub requested_at: Millis,
}

/// Count and amount of the payments in a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    pub requests: i64,
    pub amount: Cents,
}

#[derive(Default)]
pub struct Ledger {
    payments: Mutex<HashMap<Uuid, StoredPayment>>,
}

impl Ledger {
    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, StoredPayment>> {
        // A panic while holding the lock cannot leave the map half-updated (single
        // insert/remove calls), so a poisoned lock is still safe to use.
        self.payments
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Stores the payment unless the id is already known; returns false for a duplicate
    /// (and changes nothing).
    pub fn insert(&self, id: Uuid, payment: StoredPayment) -> bool {
        let mut payments = self.lock();
        if payments.contains_key(&id) {
            return false;
        }
        payments.insert(id, payment);
        true
    }

    pub fn get(&self, id: &Uuid) -> Option<StoredPayment> {
        self.lock().get(id).copied()
    }

    /// Every stored payment with its id, sorted by id (copied out, so the lock is held
    /// only for the copy).
    pub fn payments(&self) -> Vec<(Uuid, StoredPayment)> {
        let mut all: Vec<(Uuid, StoredPayment)> =
            self.lock().iter().map(|(id, p)| (*id, *p)).collect();
        all.sort_unstable_by_key(|(id, _)| *id);
        all
    }

    pub fn purge(&self) {
        self.lock().clear();
    }

    /// Totals of the payments whose `requestedAt` lies in the window (bounds inclusive).
    pub fn totals(&self, window: Window) -> Totals {
        self.lock()
            .values()
            .filter(|p| window.contains(p.requested_at))
            .fold(Totals::default(), |t, p| Totals {
                requests: t.requests + 1,
                amount: Cents(t.amount.0 + p.amount.0),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_duplicates_and_sums_inclusive_windows() {
        let ledger = Ledger::default();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        assert!(ledger.insert(
            a,
            StoredPayment {
                amount: Cents(1990),
                requested_at: Millis(10)
            }
        ));
        assert!(ledger.insert(
            b,
            StoredPayment {
                amount: Cents(10),
                requested_at: Millis(20)
            }
        ));
        assert!(!ledger.insert(
            a,
            StoredPayment {
                amount: Cents(5),
                requested_at: Millis(15)
            }
        ));
        assert_eq!(ledger.get(&a).map(|p| p.amount), Some(Cents(1990)));
        let mut both = vec![
            (
                a,
                StoredPayment {
                    amount: Cents(1990),
                    requested_at: Millis(10),
                },
            ),
            (
                b,
                StoredPayment {
                    amount: Cents(10),
                    requested_at: Millis(20),
                },
            ),
        ];
        both.sort_unstable_by_key(|(id, _)| *id);
        assert_eq!(ledger.payments(), both);
        assert_eq!(
            ledger.totals(Window {
                from: Some(Millis(10)),
                to: Some(Millis(20))
            }),
            Totals {
                requests: 2,
                amount: Cents(2000)
            }
        );
        assert_eq!(
            ledger
                .totals(Window {
                    from: Some(Millis(11)),
                    to: None
                })
                .requests,
            1
        );
        assert_eq!(
            ledger
                .totals(Window {
                    from: None,
                    to: Some(Millis(19))
                })
                .requests,
            1
        );
        ledger.purge();
        assert_eq!(
            ledger.totals(Window {
                from: None,
                to: None
            }),
            Totals::default()
        );
    }
}
