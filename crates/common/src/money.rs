//! Money: prices travel as JSON numbers with at most two decimals (`20`, `20.5`, `19.99`)
//! and are stored and charged as integer cents.
//!
//! Request bodies may also carry a price as a string holding a plain decimal number
//! (`"25.00"`): the course's own client sends the text of its price input. Either way the
//! decision is taken on the exact decimal text, never on a float: `19.999999999` is
//! refused as too precise, although it rounds to a whole number of cents ([`PriceInput`]).

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
    #[error("Price must be a number")]
    NotANumber,
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

    /// From the exact text of a JSON number (`19.99`, `20`, `2e1`, `-5`): the value the
    /// text denotes must be a whole number of cents, whatever a float would round it to.
    pub fn from_json_number(text: &str) -> Result<Self, PriceError> {
        let Decimal { negative, digits, scale } = Decimal::parse_json_number(text).ok_or(PriceError::NotANumber)?;
        cents_of(negative, &digits, scale)
    }

    /// From a string holding a plain decimal number: digits, optionally a point and one or
    /// two decimals, surrounded by optional spaces or tabs, no leading zero before another
    /// digit (`"25"`, `" 25.5 "`, `"0.99"`). A leading `-` is understood (and refused as
    /// not positive); anything else (`"1e3"`, `".5"`, `"NaN"`, `""`) is not a number. The
    /// accepted strings are exactly those matching [`PRICE_TEXT_PATTERN`] plus the
    /// out-of-range ones, so the OpenAPI description and this parser agree.
    pub fn from_text(text: &str) -> Result<Self, PriceError> {
        let text = text.trim_matches([' ', '\t']);
        let (negative, unsigned) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, fraction) = match unsigned.split_once('.') {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (unsigned, None),
        };
        let plain_whole =
            !whole.is_empty() && whole.bytes().all(|b| b.is_ascii_digit()) && (whole == "0" || !whole.starts_with('0'));
        let plain_fraction = fraction.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()));
        if !plain_whole || !plain_fraction {
            return Err(PriceError::NotANumber);
        }
        let fraction = fraction.unwrap_or_default();
        if fraction.len() > 2 {
            return Err(PriceError::TooPrecise);
        }
        let digits = format!("{whole}{fraction}");
        cents_of(negative, digits.as_bytes(), i64::try_from(fraction.len()).unwrap_or(0))
    }
}

/// The pattern of a price sent as a string, as the OpenAPI description states it: the
/// strings [`Price::from_text`] accepts (above 0, at most 1000000, at most two decimals).
pub const PRICE_TEXT_PATTERN: &str =
    r"^[ \t]*(?:[1-9][0-9]{0,5}(?:\.[0-9]{1,2})?|1000000(?:\.00?)?|0\.(?:0[1-9]|[1-9][0-9]?))[ \t]*$";

/// An exact decimal: `digits` × 10^-`scale`.
struct Decimal {
    negative: bool,
    digits: Vec<u8>,
    scale: i64,
}

impl Decimal {
    /// Parses JSON's number grammar exactly: `-? int frac? exp?`.
    fn parse_json_number(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        let mut at = 0;
        let negative = bytes.first() == Some(&b'-');
        if negative {
            at += 1;
        }
        let digits_from = |at: usize| bytes[at..].iter().take_while(|b| b.is_ascii_digit()).count();
        let whole = digits_from(at);
        if whole == 0 {
            return None;
        }
        let mut digits = bytes[at..at + whole].to_vec();
        at += whole;
        let mut scale: i64 = 0;
        if bytes.get(at) == Some(&b'.') {
            let fraction = digits_from(at + 1);
            if fraction == 0 {
                return None;
            }
            digits.extend_from_slice(&bytes[at + 1..at + 1 + fraction]);
            scale = i64::try_from(fraction).ok()?;
            at += 1 + fraction;
        }
        if matches!(bytes.get(at), Some(b'e' | b'E')) {
            at += 1;
            let sign: i64 = match bytes.get(at) {
                Some(b'-') => {
                    at += 1;
                    -1
                }
                Some(b'+') => {
                    at += 1;
                    1
                }
                _ => 1,
            };
            let exponent_digits = digits_from(at);
            if exponent_digits == 0 || exponent_digits > 6 {
                return None;
            }
            let exponent: i64 = text[at..at + exponent_digits].parse().ok()?;
            scale -= sign * exponent;
            at += exponent_digits;
        }
        (at == bytes.len()).then_some(Self { negative, digits, scale })
    }
}

/// The cents of `digits` × 10^-`scale`, checked against the price rules.
fn cents_of(negative: bool, digits: &[u8], scale: i64) -> Result<Price, PriceError> {
    // Leading and trailing zeros carry no value; drop them so huge texts stay cheap.
    let mut digits = digits;
    while let [b'0', rest @ ..] = digits {
        digits = rest;
    }
    let mut scale = scale;
    while let [rest @ .., b'0'] = digits {
        digits = rest;
        scale -= 1;
    }
    if digits.is_empty() {
        return Err(PriceError::NotPositive);
    }
    if negative {
        return Err(PriceError::NotPositive);
    }
    if scale > 2 {
        return Err(PriceError::TooPrecise);
    }
    // digits × 10^(2 - scale) cents; anything beyond 11 significant digits is too large.
    let shift = usize::try_from(2 - scale).map_err(|_| PriceError::TooLarge)?;
    if digits.len() + shift > 11 {
        return Err(PriceError::TooLarge);
    }
    let mut cents: i64 = 0;
    for digit in digits {
        cents = cents * 10 + i64::from(digit - b'0');
    }
    cents *= 10_i64.pow(u32::try_from(shift).map_err(|_| PriceError::TooLarge)?);
    Price::from_cents(cents)
}

/// A price as a request body carries it: a JSON number or a string holding a plain
/// decimal number, judged on its exact text. Deserialising never fails on the value (a
/// wrong one is kept as its [`PriceError`]), so validation reports it as a field error
/// next to the body's other field errors.
///
/// Needs a deserialiser that can hand out the raw text (`serde_json` reading bytes, as
/// [`crate::extract::parse_json`] does); through `serde_json::Value` every value is
/// refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriceInput(pub Result<Price, PriceError>);

impl PriceInput {
    pub fn price(self) -> Result<Price, PriceError> {
        self.0
    }

    /// From the raw JSON text of the value.
    pub fn from_raw_json(raw: &str) -> Self {
        let raw = raw.trim();
        if raw.starts_with('"') {
            match serde_json::from_str::<String>(raw) {
                Ok(text) => Self(Price::from_text(&text)),
                Err(_) => Self(Err(PriceError::NotANumber)),
            }
        } else {
            Self(Price::from_json_number(raw))
        }
    }
}

impl<'de> Deserialize<'de> for PriceInput {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<serde_json::value::RawValue>::deserialize(deserializer)?;
        Ok(Self::from_raw_json(raw.get()))
    }
}

/// Rendered as the price it holds, or `null` (validators echo the value in their errors).
impl Serialize for PriceInput {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Ok(price) => price.serialize(serializer),
            Err(_) => serializer.serialize_none(),
        }
    }
}

/// A JSON number as for [`Price`], or a string matching [`PRICE_TEXT_PATTERN`].
impl utoipa::PartialSchema for PriceInput {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        let text = ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(PRICE_TEXT_PATTERN))
            .description(Some("A price as plain decimal text, as the course's client sends it"))
            .examples([serde_json::json!("25.00")]);
        OneOfBuilder::new()
            .item(<Price as utoipa::PartialSchema>::schema())
            .item(text)
            .description(Some("A price: above 0, at most 1000000, at most two decimals; a number or its text"))
            .into()
    }
}

impl utoipa::ToSchema for PriceInput {}

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

/// A price stored as whole cents (an integer field, `priceCents` in every database):
/// `#[serde(rename = "priceCents", with = "common::money::cents")] price: Price`. Reading a
/// stored value that is not a valid price is an error, not a panic.
pub mod cents {
    use serde::{Deserialize, Deserializer, Serializer, de};

    use super::Price;

    pub fn serialize<S: Serializer>(price: &Price, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i64(price.cents())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Price, D::Error> {
        Price::from_cents(i64::deserialize(deserializer)?).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Stored {
        #[serde(rename = "priceCents", with = "cents")]
        price: Price,
    }

    #[test]
    fn stored_prices_are_whole_cents_and_a_bad_one_is_an_error() {
        let stored = Stored { price: Price::from_cents(2050).unwrap() };
        let document = bson::serialize_to_document(&stored).unwrap();
        assert_eq!(document, bson::doc! { "priceCents": 2050_i64 });
        assert_eq!(bson::deserialize_from_document::<Stored>(document).unwrap(), stored);
        assert!(bson::deserialize_from_document::<Stored>(bson::doc! { "priceCents": -5_i64 }).is_err());
        assert!(bson::deserialize_from_document::<Stored>(bson::doc! { "priceCents": "12" }).is_err());
    }

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

    fn input(json: &str) -> Result<i64, PriceError> {
        serde_json::from_str::<PriceInput>(json)
            .map_or(Err(PriceError::NotANumber), |input| input.price())
            .map(Price::cents)
    }

    #[test]
    fn numbers_are_judged_on_their_exact_text() {
        assert_eq!(input("19.99"), Ok(1999));
        assert_eq!(input("20"), Ok(2000));
        assert_eq!(input("25.000"), Ok(2500));
        assert_eq!(input("2e1"), Ok(2000));
        assert_eq!(input("1.5E-1"), Ok(15));
        assert_eq!(input("1000000"), Ok(100_000_000));
        // A float would round these to whole cents; their text has more.
        assert_eq!(input("19.999999999"), Err(PriceError::TooPrecise));
        assert_eq!(input("0.001"), Err(PriceError::TooPrecise));
        assert_eq!(input("1.005"), Err(PriceError::TooPrecise));
        assert_eq!(input("0"), Err(PriceError::NotPositive));
        assert_eq!(input("-5"), Err(PriceError::NotPositive));
        assert_eq!(input("0.00"), Err(PriceError::NotPositive));
        assert_eq!(input("1000000.01"), Err(PriceError::TooLarge));
        assert_eq!(input("1e300"), Err(PriceError::TooLarge));
        assert_eq!(input("123456789012345678901234567890"), Err(PriceError::TooLarge));
    }

    #[test]
    fn strings_holding_a_plain_decimal_are_prices() {
        assert_eq!(input(r#""25""#), Ok(2500));
        assert_eq!(input(r#""25.5""#), Ok(2550));
        assert_eq!(input(r#""25.00""#), Ok(2500));
        assert_eq!(input(r#"" 25.00 ""#), Ok(2500));
        assert_eq!(input(r#""0.01""#), Ok(1));
        assert_eq!(input(r#""1000000.00""#), Ok(100_000_000));
        for refused in [r#""abc""#, r#""""#, r#""1e3""#, r#""NaN""#, r#""Infinity""#, r#"".5""#, r#""025""#, r#""5.""#]
        {
            assert_eq!(input(refused), Err(PriceError::NotANumber), "{refused}");
        }
        assert_eq!(input(r#""25.001""#), Err(PriceError::TooPrecise));
        assert_eq!(input(r#""-5""#), Err(PriceError::NotPositive));
        assert_eq!(input(r#""0""#), Err(PriceError::NotPositive));
        assert_eq!(input(r#""1000000.01""#), Err(PriceError::TooLarge));
        assert_eq!(input("true"), Err(PriceError::NotANumber));
        assert_eq!(input("[1]"), Err(PriceError::NotANumber));
    }

    #[test]
    fn the_text_pattern_admits_exactly_the_strings_that_are_valid_prices() {
        let pattern = regex::Regex::new(PRICE_TEXT_PATTERN).unwrap();
        let samples = [
            "1",
            "25",
            "25.5",
            "25.50",
            " 25.00\t",
            "0.01",
            "0.1",
            "0.10",
            "0.99",
            "999999.99",
            "1000000",
            "1000000.0",
            "1000000.00",
            "0",
            "0.0",
            "0.00",
            "00",
            "01",
            "025.00",
            "1000000.01",
            "1000001",
            "25.001",
            "-5",
            "1e3",
            ".5",
            "5.",
            "",
            " ",
            "abc",
            "NaN",
            "Infinity",
            "+5",
            "1 000",
            "0x10",
            "9999999",
        ];
        for sample in samples {
            assert_eq!(pattern.is_match(sample), Price::from_text(sample).is_ok(), "{sample:?}");
        }
    }
}
