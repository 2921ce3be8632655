//! The payment-provider interface and its two implementations.
//!
//! - [`Stripe`]: Stripe's HTTP API. A PaymentIntent is created and confirmed in one call
//!   with the customer's token (`tok_…`) or payment method (`pm_…`), the amount in integer
//!   cents, currency usd, and an `Idempotency-Key` derived from the order and the token, so
//!   a retried request can never charge twice. Used when `STRIPE_KEY` is set.
//! - [`TestProvider`]: built in, for local runs and tests without a key. Accepts
//!   `tok_visa` and `pm_card_visa`, declines `tok_chargeDeclined` with Stripe's message.
//!
//! Before a request charges an order whose earlier attempt was abandoned mid-charge (a
//! stale claim, see [`crate::store`]), it asks the provider for a charge that already
//! succeeded for the order ([`PaymentProvider::find_charge`]; Stripe: a PaymentIntent
//! search on `metadata['order_id']`), so a retry with a different card cannot charge twice.
//!
//! A decline is a [`ProviderError::Declined`] (the service answers 400 with the message);
//! a request Stripe refuses is [`ProviderError::Rejected`] (400); timeouts, 5xx, rate
//! limits and authentication failures are [`ProviderError::Unavailable`] (503).

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

/// Why a charge or refund did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The card was declined; the message is the provider's, safe to show.
    #[error("declined: {0}")]
    Declined(String),
    /// The provider refused the request as invalid; the message is safe to show.
    #[error("rejected: {0}")]
    Rejected(String),
    /// The provider could not be reached or failed; retry later.
    #[error("provider unavailable: {0:#}")]
    Unavailable(anyhow::Error),
}

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

/// Stripe's documented message for a declined card.
pub const DECLINED_MESSAGE: &str = "Your card was declined.";

/// The built-in provider for runs without a Stripe key.
#[derive(Debug, Clone, Default)]
pub struct TestProvider;

impl PaymentProvider for TestProvider {
    async fn charge(&self, request: &ChargeRequest) -> Result<Charge, ProviderError> {
        match request.token.as_str() {
            "tok_visa" | "pm_card_visa" => {
                let id = uuid::Uuid::new_v4().simple().to_string();
                Ok(Charge { id: format!("ch_test_{}", &id[..24]), payment_intent: format!("pi_test_{}", &id[..24]) })
            }
            "tok_chargeDeclined" | "pm_card_chargeDeclined" => Err(ProviderError::Declined(DECLINED_MESSAGE.into())),
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

/// How long a call to Stripe may take before it counts as unavailable.
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
        let response = request
            .bearer_auth(self.key.expose_secret())
            .send()
            .await
            .map_err(|e| ProviderError::Unavailable(anyhow::Error::new(e).context("calling Stripe")))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| ProviderError::Unavailable(anyhow::Error::new(e).context("reading Stripe's answer")))?;
        if status.is_success() {
            return serde_json::from_slice(&body)
                .map_err(|e| ProviderError::Unavailable(anyhow::Error::new(e).context("decoding Stripe's answer")));
        }
        let error = serde_json::from_slice::<StripeErrorBody>(&body).map(|b| b.error).ok();
        let message = error.as_ref().map(|e| e.message.clone()).filter(|m| !m.is_empty());
        match (status.as_u16(), error.as_ref().map(|e| e.kind.as_str())) {
            (_, Some("card_error")) | (402, _) => {
                Err(ProviderError::Declined(message.unwrap_or_else(|| DECLINED_MESSAGE.into())))
            }
            (400 | 404, _) => Err(ProviderError::Rejected(message.unwrap_or_else(|| "Invalid payment request".into()))),
            _ => Err(ProviderError::Unavailable(anyhow::anyhow!(
                "Stripe answered {status}: {}",
                message.unwrap_or_default()
            ))),
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
            "requires_payment_method" => Err(ProviderError::Declined(
                intent
                    .last_payment_error
                    .map(|e| e.message)
                    .filter(|m| !m.is_empty())
                    .unwrap_or_else(|| DECLINED_MESSAGE.into()),
            )),
            other => Err(ProviderError::Rejected(format!("The payment could not be completed ({other})"))),
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

/// The idempotency key of a charge: the same order and card give the same key, so a
/// retried request (a client retry, a network failure after Stripe charged) is answered
/// with the first result instead of a second charge.
pub fn charge_key(order_id: &str, token: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{order_id}:{token}").as_bytes());
    let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    format!("charge-{order_id}-{hex}")
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
        assert!(matches!(declined, ProviderError::Declined(m) if m == DECLINED_MESSAGE));
        assert!(matches!(provider.charge(&request("tok_bogus")).await, Err(ProviderError::Rejected(_))));
    }

    #[test]
    fn charge_keys_depend_on_order_and_token_only() {
        assert_eq!(charge_key("o1", "tok_visa"), charge_key("o1", "tok_visa"));
        assert_ne!(charge_key("o1", "tok_visa"), charge_key("o2", "tok_visa"));
        assert_ne!(charge_key("o1", "tok_visa"), charge_key("o1", "pm_card_visa"));
        assert!(!charge_key("o1", "tok_visa").contains("tok_visa"), "the token itself is not in the key");
    }
}
