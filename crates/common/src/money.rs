//! Money: prices travel as JSON numbers with at most two decimals (`20`, `20.5`, `19.99`)
//! and are stored and charged as integer cents.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The largest accepted price, in whole currency units.
pub const MAX_PRICE: i64 = 1_000_000;

/// A positive price in integer cents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Price(i64);

/// Why a number is not a price. The messages are the ones clients see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PriceError {
    #[error("Price must be greater than 0")]
    NotPositive,
    #[error("Price must have at most two decimals")]
    TooPrecise,
    #[error("Price must be at most 1000000")]
    TooLarge,
}

impl Price {
    /// From integer cents (as stored).
    pub fn from_cents(cents: i64) -> Result<Self, PriceError> {
        if cents <= 0 {
            Err(PriceError::NotPositive)
        } else if cents > MAX_PRICE * 100 {
            Err(PriceError::TooLarge)
        } else {
            Ok(Self(cents))
        }
    }

    /// From a JSON number such as `19.99`.
    pub fn from_decimal(value: f64) -> Result<Self, PriceError> {
        if !value.is_finite() || value <= 0.0 {
            return Err(PriceError::NotPositive);
        }
        if value > MAX_PRICE as f64 {
            return Err(PriceError::TooLarge);
        }
        let scaled = value * 100.0;
        let cents = scaled.round();
        // Any decimal with at most two places lands within float noise of an integer once
        // scaled; 1.005 lands half a cent away.
        if (scaled - cents).abs() > 1e-6 {
            return Err(PriceError::TooPrecise);
        }
        Self::from_cents(cents as i64)
    }

    pub fn cents(self) -> i64 {
        self.0
    }
}

/// A JSON number above 0, at most [`MAX_PRICE`], with at most two decimals.
impl utoipa::PartialSchema for Price {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::Number)
            .exclusive_minimum(Some(0))
            .maximum(Some(MAX_PRICE))
            .multiple_of(Some(0.01))
            .description(Some("A price: above 0, at most 1000000, at most two decimals"))
            .examples([serde_json::json!(19.99)])
            .into()
    }
}

impl utoipa::ToSchema for Price {}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

impl Serialize for Price {
    /// Whole amounts as integers (`20`), others as the shortest decimal (`20.5`).
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0 % 100 == 0 {
            serializer.serialize_i64(self.0 / 100)
        } else {
            serializer.serialize_f64(self.0 as f64 / 100.0)
        }
    }
}

impl<'de> Deserialize<'de> for Price {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PriceVisitor;
        impl Visitor<'_> for PriceVisitor {
            type Value = Price;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a positive number with at most two decimals")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Price, E> {
                Price::from_decimal(v).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Price, E> {
                v.checked_mul(100).ok_or(PriceError::TooLarge).and_then(Price::from_cents).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Price, E> {
                i64::try_from(v).map_err(|_| E::custom(PriceError::TooLarge)).and_then(|v| self.visit_i64(v))
            }
        }
        deserializer.deserialize_any(PriceVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_with_up_to_two_places_are_exact_cents() {
        assert_eq!(Price::from_decimal(19.99).unwrap().cents(), 1999);
        assert_eq!(Price::from_decimal(0.29).unwrap().cents(), 29);
        assert_eq!(Price::from_decimal(0.01).unwrap().cents(), 1);
        assert_eq!(Price::from_decimal(1_000_000.0).unwrap().cents(), 100_000_000);
    }

    #[test]
    fn invalid_prices_are_refused_with_their_reason() {
        assert_eq!(Price::from_decimal(0.0), Err(PriceError::NotPositive));
        assert_eq!(Price::from_decimal(-10.0), Err(PriceError::NotPositive));
        assert_eq!(Price::from_decimal(1.005), Err(PriceError::TooPrecise));
        assert_eq!(Price::from_decimal(10.123), Err(PriceError::TooPrecise));
        assert_eq!(Price::from_decimal(1_000_000.01), Err(PriceError::TooLarge));
    }

    #[test]
    fn prices_render_back_as_the_same_number() {
        for text in ["20", "20.5", "19.99", "0.01", "1000000"] {
            let price: Price = serde_json::from_str(text).unwrap();
            assert_eq!(serde_json::to_string(&price).unwrap(), text);
        }
        assert!(serde_json::from_str::<Price>("\"20\"").is_err());
    }
}
