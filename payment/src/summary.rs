//! The `GET /payments-summary` answer, per processor, in exact cents.

use crate::{Cents, Processor};

/// Count and amount for one processor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProcessorTotals {
    pub requests: i64,
    pub amount: Cents,
}

/// Totals for both processors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    pub default: ProcessorTotals,
    pub fallback: ProcessorTotals,
}

impl Summary {
    pub fn get_mut(&mut self, processor: Processor) -> &mut ProcessorTotals {
        match processor {
            Processor::Default => &mut self.default,
            Processor::Fallback => &mut self.fallback,
        }
    }

    /// The contest's JSON: `{"default":{"totalRequests":N,"totalAmount":X},"fallback":{...}}`,
    /// amounts with exactly two decimals.
    pub fn to_json(&self) -> String {
        format!(
            r#"{{"default":{{"totalRequests":{},"totalAmount":{}}},"fallback":{{"totalRequests":{},"totalAmount":{}}}}}"#,
            self.default.requests,
            self.default.amount,
            self.fallback.requests,
            self.fallback.amount
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_valid_contest_json() {
        let mut s = Summary::default();
        *s.get_mut(Processor::Default) = ProcessorTotals {
            requests: 2,
            amount: Cents(3980),
        };
        let json: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
        assert_eq!(json["default"]["totalRequests"], 2);
        assert_eq!(json["default"]["totalAmount"].as_f64(), Some(39.8));
        assert_eq!(json["fallback"]["totalRequests"], 0);
        assert!(s.to_json().contains(r#""totalAmount":39.80"#));
    }
}
