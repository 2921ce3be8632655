//! The payment-provider interface and its two implementations.
//!
//! - [`Stripe`]: Stripe's HTTP API. A PaymentIntent is created and confirmed in one call
//!   with the customer's token (`tok_…`) or payment method (`pm_…`), the amount in integer
//!   cents, currency usd, and an `Idempotency-Key` of the order and its attempt number
//!   ([`charge_key`]), never of the card. Used with `PAYMENTS_PROVIDER=stripe`.
//! - [`TestProvider`]: built in, for local runs and tests (`PAYMENTS_PROVIDER=test`).
//!   Accepts `tok_visa` and `pm_card_visa`; declines `tok_chargeDeclined` (and a few more
//!   of Stripe's test tokens with their decline reasons).
//!
//! What a failed call means for the money decides what happens next:
//! - [`ProviderError::Declined`] and [`ProviderError::Rejected`]: nothing was charged,
//!   the provider said so. The buyer sees our own message for the reason
//!   ([`DeclineReason::message`]); the provider's text stays in the log.
//! - [`ProviderError::Unavailable`]: nothing was charged, the request never reached the
//!   provider (no connection, or it refused our credentials).
//! - [`ProviderError::Unknown`]: the request may have been processed (a timeout, a 5xx,
//!   a 429, an answer that does not decode). The order's claim is kept and resolved before
//!   any new attempt ([`crate::store`]).

use std::future::Future;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// What to charge.
#[derive(Debug, Clone)]
pub struct ChargeRequest {
    pub amount_cents: i64,
    /// A card token (`tok_…`) or a payment method id (`pm_…`).
    pub token: String,
    pub order_id: String,
    pub idempotency_key: String,
}

/// A successful charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    /// The provider's id of the charge (what `payment.created` carries as `chargeId`).
    pub id: String,
    /// The PaymentIntent id, what refunds name.
    pub payment_intent: String,
}

/// Why a card was declined, as far as buyers need to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeclineReason {
    InsufficientFunds,
    ExpiredCard,
    IncorrectCvc,
    IncorrectNumber,
    ProcessingError,
    /// Every other reason (including lost, stolen and suspected fraud: a buyer is not
    /// told which).
    Declined,
}

impl DeclineReason {
    /// From Stripe's `decline_code` or `code`.
    pub fn from_code(code: &str) -> Self {
        match code {
            "insufficient_funds" => Self::InsufficientFunds,
            "expired_card" => Self::ExpiredCard,
            "incorrect_cvc" | "invalid_cvc" => Self::IncorrectCvc,
            "incorrect_number" | "invalid_number" => Self::IncorrectNumber,
            "processing_error" => Self::ProcessingError,
            _ => Self::Declined,
        }
    }

    /// Our message for the buyer.
    pub fn message(self) -> &'static str {
        match self {
            Self::InsufficientFunds => "Your card was declined: insufficient funds.",
            Self::ExpiredCard => "Your card has expired.",
            Self::IncorrectCvc => "Your card's security code is incorrect.",
            Self::IncorrectNumber => "Your card number is incorrect.",
            Self::ProcessingError => "Your card could not be processed. Please try again.",
            Self::Declined => "Your card was declined.",
        }
    }
}

/// Why a charge or refund did not happen, by what it means for the money.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The card was declined: nothing was charged. `detail` is the provider's text, for
    /// the log only.
    #[error("declined ({reason:?}): {detail}")]
    Declined { reason: DeclineReason, detail: String },
    /// The provider refused the request as invalid: nothing was charged. The text is the
    /// provider's, for the log only.
    #[error("rejected: {0}")]
    Rejected(String),
    /// The request never reached the provider: nothing was charged; retry later.
    #[error("provider unavailable: {0:#}")]
    Unavailable(anyhow::Error),
    /// The request may have been processed: the outcome must be found out before any
    /// new attempt.
    #[error("outcome unknown: {0:#}")]
    Unknown(anyhow::Error),
}

impl ProviderError {
    /// True when the provider may have acted on the request.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, Self::Unknown(_))
    }
}

/// What buyers see when the provider refuses a request as invalid (its own text is for
/// the log).
pub const REJECTED_MESSAGE: &str = "The payment details were not accepted. Please try another card.";

/// A payment provider.
pub trait PaymentProvider: Send + Sync {
    fn charge(&self, request: &ChargeRequest) -> impl Future<Output = Result<Charge, ProviderError>> + Send;

    /// Refunds a whole charge; the key makes a retried refund a no-op.
    fn refund(
        &self,
        charge: &Charge,
        idempotency_key: &str,
    ) -> impl Future<Output = Result<String, ProviderError>> + Send;

    /// A charge that already succeeded for `order_id`, if the provider has one.
    fn find_charge(&self, order_id: &str) -> impl Future<Output = Result<Option<Charge>, ProviderError>> + Send;
}

/// The configured provider.
#[derive(Debug, Clone)]
pub enum Provider {
    Stripe(Stripe),
    Test(TestProvider),
}

impl PaymentProvider for Provider {
    async fn charge(&self, request: &ChargeRequest) -> Result<Charge, ProviderError> {
        match self {
            Self::Stripe(p) => p.charge(request).await,
            Self::Test(p) => p.charge(request).await,
        }
    }

    async fn refund(&self, charge: &Charge, idempotency_key: &str) -> Result<String, ProviderError> {
        match self {
            Self::Stripe(p) => p.refund(charge, idempotency_key).await,
            Self::Test(p) => p.refund(charge, idempotency_key).await,
        }
    }

    async fn find_charge(&self, order_id: &str) -> Result<Option<Charge>, ProviderError> {
        match self {
            Self::Stripe(p) => p.find_charge(order_id).await,
            Self::Test(p) => p.find_charge(order_id).await,
        }
    }
}

/// The built-in provider for local runs and tests.
#[derive(Debug, Clone, Default)]
pub struct TestProvider;

impl PaymentProvider for TestProvider {
    /// Stripe's test tokens, with the same outcomes.
    async fn charge(&self, request: &ChargeRequest) -> Result<Charge, ProviderError> {
        let declined = |code: &str| {
            Err(ProviderError::Declined {
                reason: DeclineReason::from_code(code),
                detail: format!("test card: {code}"),
            })
        };
        match request.token.as_str() {
            "tok_visa" | "pm_card_visa" => {
                let id = uuid::Uuid::new_v4().simple().to_string();
                Ok(Charge { id: format!("ch_test_{}", &id[..24]), payment_intent: format!("pi_test_{}", &id[..24]) })
            }
            "tok_chargeDeclined" | "pm_card_chargeDeclined" => declined("generic_decline"),
            "tok_chargeDeclinedInsufficientFunds" | "pm_card_chargeDeclinedInsufficientFunds" => {
                declined("insufficient_funds")
            }
            "tok_chargeDeclinedExpiredCard" | "pm_card_chargeDeclinedExpiredCard" => declined("expired_card"),
            "tok_chargeDeclinedIncorrectCvc" | "pm_card_chargeDeclinedIncorrectCvc" => declined("incorrect_cvc"),
            other => Err(ProviderError::Rejected(format!("No such token: '{other}'"))),
        }
    }

    async fn refund(&self, _: &Charge, _: &str) -> Result<String, ProviderError> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        Ok(format!("re_test_{}", &id[..24]))
    }

    /// The test provider moves no money and keeps no record: nothing to find.
    async fn find_charge(&self, _: &str) -> Result<Option<Charge>, ProviderError> {
        Ok(None)
    }
}

/// Stripe's HTTP API.
#[derive(Debug, Clone)]
pub struct Stripe {
    client: reqwest::Client,
    base_url: String,
    key: SecretString,
}

/// How long a call to Stripe may take by default (`STRIPE_TIMEOUT_SECONDS`) before its
/// outcome counts as unknown.
pub const STRIPE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Deserialize)]
struct StripeErrorBody {
    error: StripeError,
}

#[derive(Debug, Deserialize)]
struct StripeError {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    decline_code: Option<String>,
}

impl StripeError {
    fn decline(&self) -> ProviderError {
        let code = self.decline_code.as_deref().or(self.code.as_deref()).unwrap_or("card_declined");
        ProviderError::Declined { reason: DeclineReason::from_code(code), detail: format!("{code}: {}", self.message) }
    }
}

#[derive(Debug, Deserialize)]
struct PaymentIntent {
    id: String,
    status: String,
    #[serde(default)]
    latest_charge: Option<String>,
    #[serde(default)]
    last_payment_error: Option<StripeError>,
}

#[derive(Debug, Deserialize)]
struct Refund {
    id: String,
}

#[derive(Debug, Deserialize)]
struct SearchResult {
    data: Vec<PaymentIntent>,
}

impl Stripe {
    /// `base_url` is `https://api.stripe.com` in production, a mock server in tests.
    pub fn new(key: SecretString, base_url: &str, timeout: Duration) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder().timeout(timeout).build()?;
        Ok(Self { client, base_url: base_url.trim_end_matches('/').to_owned(), key })
    }

    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        idempotency_key: &str,
        form: &[(&str, String)],
    ) -> Result<T, ProviderError> {
        let request =
            self.client.post(format!("{}{path}", self.base_url)).header("Idempotency-Key", idempotency_key).form(form);
        self.send(request).await
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, ProviderError> {
        self.send(self.client.get(format!("{}{path}", self.base_url)).query(query)).await
    }

    async fn send<T: serde::de::DeserializeOwned>(&self, request: reqwest::RequestBuilder) -> Result<T, ProviderError> {
        let response = request.bearer_auth(self.key.expose_secret()).send().await.map_err(|e| {
            // Without a connection the request was never sent; any later failure (a
            // timeout above all) may come after Stripe acted on it.
            if e.is_connect() {
                ProviderError::Unavailable(anyhow::Error::new(e).context("connecting to Stripe"))
            } else {
                ProviderError::Unknown(anyhow::Error::new(e).context("calling Stripe"))
            }
        })?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| ProviderError::Unknown(anyhow::Error::new(e).context("reading Stripe's answer")))?;
        if status.is_success() {
            return serde_json::from_slice(&body)
                .map_err(|e| ProviderError::Unknown(anyhow::Error::new(e).context("decoding Stripe's answer")));
        }
        let error = serde_json::from_slice::<StripeErrorBody>(&body).map(|b| b.error).ok();
        let message = error.as_ref().map(|e| e.message.clone()).unwrap_or_default();
        match (status.as_u16(), error.as_ref().map(|e| e.kind.as_str())) {
            (_, Some("card_error")) | (402, _) => Err(error.map_or_else(
                || ProviderError::Declined { reason: DeclineReason::Declined, detail: message.clone() },
                |e| e.decline(),
            )),
            // Refused before anything was processed: our credentials.
            (401 | 403, _) => {
                Err(ProviderError::Unavailable(anyhow::anyhow!("Stripe refused our key ({status}): {message}")))
            }
            // An idempotency error means a request with this key is in flight or was made
            // with other parameters: its outcome is not this answer.
            (400 | 404, Some(kind)) if kind != "idempotency_error" => Err(ProviderError::Rejected(message)),
            _ => Err(ProviderError::Unknown(anyhow::anyhow!("Stripe answered {status}: {message}"))),
        }
    }
}

impl PaymentProvider for Stripe {
    async fn charge(&self, request: &ChargeRequest) -> Result<Charge, ProviderError> {
        let mut form = vec![
            ("amount", request.amount_cents.to_string()),
            ("currency", "usd".to_owned()),
            ("confirm", "true".to_owned()),
            ("payment_method_types[]", "card".to_owned()),
            ("metadata[order_id]", request.order_id.clone()),
        ];
        if request.token.starts_with("pm_") {
            form.push(("payment_method", request.token.clone()));
        } else {
            form.push(("payment_method_data[type]", "card".to_owned()));
            form.push(("payment_method_data[card][token]", request.token.clone()));
        }
        let intent: PaymentIntent = self.post("/v1/payment_intents", &request.idempotency_key, &form).await?;
        match intent.status.as_str() {
            "succeeded" => Ok(Charge {
                id: intent.latest_charge.clone().unwrap_or_else(|| intent.id.clone()),
                payment_intent: intent.id,
            }),
            "requires_payment_method" => Err(intent.last_payment_error.map_or_else(
                || ProviderError::Declined {
                    reason: DeclineReason::Declined,
                    detail: "requires_payment_method".into(),
                },
                |e| e.decline(),
            )),
            // 3-D Secure and friends need the buyer's browser, which this flow does not
            // have: nothing is captured, the intent lapses.
            other => Err(ProviderError::Rejected(format!("the intent is {other} (id {})", intent.id))),
        }
    }

    async fn refund(&self, charge: &Charge, idempotency_key: &str) -> Result<String, ProviderError> {
        let form = [("payment_intent", charge.payment_intent.clone())];
        let refund: Refund = self.post("/v1/refunds", idempotency_key, &form).await?;
        Ok(refund.id)
    }

    /// Searches the order's succeeded PaymentIntents (every charge carries
    /// `metadata[order_id]`). Stripe's search index can lag new writes by up to about a
    /// minute; a takeover happens only after a claim is [`crate::store::STALE_CLAIM`] old.
    async fn find_charge(&self, order_id: &str) -> Result<Option<Charge>, ProviderError> {
        let query = format!("metadata['order_id']:'{order_id}' AND status:'succeeded'");
        let found: SearchResult = self.get("/v1/payment_intents/search", &[("query", query)]).await?;
        Ok(found.data.into_iter().find(|intent| intent.status == "succeeded").map(|intent| Charge {
            id: intent.latest_charge.clone().unwrap_or_else(|| intent.id.clone()),
            payment_intent: intent.id,
        }))
    }
}

/// The idempotency key of an attempt to charge an order: the order and the attempt's
/// number, never the card. Replaying an attempt (its outcome was unknown) sends the same
/// key, so Stripe answers with what it did the first time; a new attempt is only made
/// once the previous one is known to have charged nothing.
pub fn charge_key(order_id: &str, attempt: i64) -> String {
    format!("charge-{order_id}-{attempt}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(token: &str) -> ChargeRequest {
        ChargeRequest { amount_cents: 100, token: token.into(), order_id: "o".into(), idempotency_key: "k".into() }
    }

    #[tokio::test]
    async fn the_test_provider_accepts_the_visa_tokens_and_declines_like_stripe() {
        let provider = TestProvider;
        assert!(provider.charge(&request("tok_visa")).await.unwrap().id.starts_with("ch_test_"));
        assert!(provider.charge(&request("pm_card_visa")).await.is_ok());
        let declined = provider.charge(&request("tok_chargeDeclined")).await.unwrap_err();
        assert!(matches!(declined, ProviderError::Declined { reason: DeclineReason::Declined, .. }));
        let poor = provider.charge(&request("tok_chargeDeclinedInsufficientFunds")).await.unwrap_err();
        assert!(matches!(poor, ProviderError::Declined { reason: DeclineReason::InsufficientFunds, .. }));
        assert!(matches!(provider.charge(&request("tok_bogus")).await, Err(ProviderError::Rejected(_))));
    }

    #[test]
    fn charge_keys_name_the_order_and_the_attempt_never_the_card() {
        assert_eq!(charge_key("o1", 1), "charge-o1-1");
        assert_ne!(charge_key("o1", 1), charge_key("o1", 2));
        assert_ne!(charge_key("o1", 1), charge_key("o2", 1));
    }

    #[test]
    fn every_decline_reason_has_our_own_message() {
        for (code, message) in [
            ("insufficient_funds", "Your card was declined: insufficient funds."),
            ("expired_card", "Your card has expired."),
            ("incorrect_cvc", "Your card's security code is incorrect."),
            ("stolen_card", "Your card was declined."),
            ("fraudulent", "Your card was declined."),
        ] {
            assert_eq!(DeclineReason::from_code(code).message(), message, "{code}");
        }
    }
}
