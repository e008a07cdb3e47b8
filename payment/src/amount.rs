//! Money as integer cents, so sums over a million payments stay exact.

use std::fmt;

/// An amount of money in cents. Always exact; formatting gives two decimal places.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Cents(pub i64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("amount must be a plain decimal number like 19.90, got `{0}`")]
    NotDecimal(String),
    #[error("amount must have at most two decimal places, got `{0}`")]
    TooPrecise(String),
    #[error("amount must be greater than zero, got `{0}`")]
    NotPositive(String),
    #[error("amount is too large: `{0}`")]
    TooLarge(String),
}

/// Largest accepted amount: one billion, far beyond any real payment, far below i64 overflow
/// even when summed a billion times.
const MAX_CENTS: i64 = 100_000_000_000;

impl Cents {
    /// Parses the exact text of a JSON number (`19.9`, `19.90`, `20`) into cents.
    ///
    /// Strict on purpose: exponents, signs, more than two decimals and zero are refused,
    /// so an amount we accept is exactly the amount we later report.
    pub fn parse_strict(text: &str) -> Result<Cents, AmountError> {
        let bad = || AmountError::NotDecimal(text.to_string());
        let (whole, frac) = match text.split_once('.') {
            Some((w, f)) => (w, f),
            None => (text, ""),
        };
        if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
            if whole.starts_with('-') {
                return Err(AmountError::NotPositive(text.to_string()));
            }
            return Err(bad());
        }
        if text.contains('.') && frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let frac = frac.trim_end_matches('0');
        if frac.len() > 2 {
            return Err(AmountError::TooPrecise(text.to_string()));
        }
        let whole = whole.trim_start_matches('0');
        if whole.len() > 12 {
            return Err(AmountError::TooLarge(text.to_string()));
        }
        let whole: i64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| bad())?
        };
        let mut frac_cents: i64 = 0;
        for (i, b) in frac.bytes().enumerate() {
            frac_cents += i64::from(b - b'0') * if i == 0 { 10 } else { 1 };
        }
        let cents = whole * 100 + frac_cents;
        if cents <= 0 {
            return Err(AmountError::NotPositive(text.to_string()));
        }
        if cents > MAX_CENTS {
            return Err(AmountError::TooLarge(text.to_string()));
        }
        Ok(Cents(cents))
    }

    /// Rounds any finite float to the nearest cent (what the processors do with what they get).
    pub fn round_from_f64(value: f64) -> Cents {
        Cents((value * 100.0).round() as i64)
    }

    /// The amount as a float, for JSON output where a number is expected.
    pub fn as_f64(self) -> f64 {
        self.0 as f64 / 100.0
    }
}

impl fmt::Display for Cents {
    /// Two decimal places, e.g. `19.90`; valid as a JSON number.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_decimals() {
        assert_eq!(Cents::parse_strict("19.90"), Ok(Cents(1990)));
        assert_eq!(Cents::parse_strict("19.9"), Ok(Cents(1990)));
        assert_eq!(Cents::parse_strict("20"), Ok(Cents(2000)));
        assert_eq!(Cents::parse_strict("0.01"), Ok(Cents(1)));
        assert_eq!(Cents::parse_strict("1.500"), Ok(Cents(150)));
    }

    #[test]
    fn refuses_what_it_cannot_keep_exactly() {
        assert!(matches!(
            Cents::parse_strict("19.901"),
            Err(AmountError::TooPrecise(_))
        ));
        assert!(matches!(
            Cents::parse_strict("0"),
            Err(AmountError::NotPositive(_))
        ));
        assert!(matches!(
            Cents::parse_strict("0.00"),
            Err(AmountError::NotPositive(_))
        ));
        assert!(matches!(
            Cents::parse_strict("-1"),
            Err(AmountError::NotPositive(_))
        ));
        assert!(matches!(
            Cents::parse_strict("1e2"),
            Err(AmountError::NotDecimal(_))
        ));
        assert!(matches!(
            Cents::parse_strict("1."),
            Err(AmountError::NotDecimal(_))
        ));
        assert!(matches!(
            Cents::parse_strict(".5"),
            Err(AmountError::NotDecimal(_))
        ));
        assert!(matches!(
            Cents::parse_strict("\"1\""),
            Err(AmountError::NotDecimal(_))
        ));
        assert!(matches!(
            Cents::parse_strict("99999999999999"),
            Err(AmountError::TooLarge(_))
        ));
    }

    #[test]
    fn displays_two_places() {
        assert_eq!(Cents(1990).to_string(), "19.90");
        assert_eq!(Cents(5).to_string(), "0.05");
        assert_eq!(Cents(0).to_string(), "0.00");
        assert_eq!(Cents(-150).to_string(), "-1.50");
    }

    #[test]
    fn rounds_floats_like_the_processor() {
        assert_eq!(Cents::round_from_f64(19.9), Cents(1990));
        assert_eq!(Cents::round_from_f64(19.899), Cents(1990));
        assert_eq!(Cents::round_from_f64(0.004), Cents(0));
    }
}
