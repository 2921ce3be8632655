//! `POST /api/payments`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use common::events::OrderStatus;
use common::extract::object_id;
use common::openapi::{Forbidden, NotAuthorized};
use common::{ApiError, CurrentUser, ErrorEnvelope, ValidatedJson};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use validator::{Validate, ValidationError};

use crate::AppState;
use crate::provider::{Charge, PaymentProvider, ProviderError, REJECTED_MESSAGE};
use crate::store::{Claim, OrderReplica, Payment, Recorded};

/// The route, with its OpenAPI description.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(pay))
}

fn valid_id(id: &str) -> Result<(), ValidationError> {
    object_id(id)
        .map(drop)
        .map_err(|_| ValidationError::new("orderId").with_message("OrderId must be a valid id".into()))
}

/// Body of a payment.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentBody {
    /// The card token of the payment provider (`tok_visa` with the built-in test provider).
    #[validate(required(message = "Token must be provided"), length(min = 1, message = "Token must be provided"))]
    #[schema(value_type = String, required = true, min_length = 1)]
    token: Option<String>,
    /// The order to pay.
    #[validate(required(message = "OrderId must be provided"), custom(function = "valid_id"))]
    #[schema(value_type = String, required = true, pattern = "^[0-9a-fA-F]{24}$")]
    order_id: Option<String>,
}

/// A recorded payment.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Payment)]
pub struct PaymentView {
    id: String,
}

fn already_paid() -> ApiError {
    ApiError::BadRequest("Order already paid".into())
}

/// The answer for a failed charge: our own message for a decline or a refusal (the
/// provider's text goes to the log), 503 when the provider is unreachable or did not say
/// what it did.
fn provider_error(order_id: &str, err: ProviderError) -> ApiError {
    match err {
        ProviderError::Declined { reason, detail } => {
            tracing::info!(order_id, ?reason, detail, "card declined");
            ApiError::BadRequest(reason.message().into())
        }
        ProviderError::Rejected(detail) => {
            tracing::warn!(order_id, detail, "the provider refused the payment request");
            ApiError::BadRequest(REJECTED_MESSAGE.into())
        }
        ProviderError::Unavailable(source) | ProviderError::Unknown(source) => ApiError::Unavailable(source),
    }
}

fn expired() -> ApiError {
    ApiError::BadRequest("Order has expired".into())
}

fn cancelled() -> ApiError {
    ApiError::BadRequest("Cannot pay for a cancelled order".into())
}

/// Pays for an order.
///
/// Check order: 401, 400 validation, 404, 400 cancelled, 400 already paid, 400 expired,
/// 403; then the claim, the charge and the record (see [`crate::store`]).
#[utoipa::path(
    post,
    path = "/api/payments",
    operation_id = "pay",
    tag = "payments",
    request_body = PaymentBody,
    security(("session" = []), ("bearer" = [])),
    responses(
        (status = 201, description = "Charged; emits payment.created", body = PaymentView),
        (status = 400, description = "Validation, `Cannot pay for a cancelled order`, `Order already paid`, \
            `Order has expired`, or our message for a declined card", body = ErrorEnvelope),
        NotAuthorized,
        Forbidden,
        (status = 404, description = "The order is unknown to payments", body = ErrorEnvelope),
        (status = 503, description = "The provider or the database is unavailable", body = ErrorEnvelope),
    )
)]
async fn pay(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ValidatedJson(body): ValidatedJson<PaymentBody>,
) -> Result<(StatusCode, Json<PaymentView>), ApiError> {
    let token = body.token.unwrap_or_default();
    let order =
        state.store.find_order(object_id(&body.order_id.unwrap_or_default())?).await?.ok_or(ApiError::NotFound)?;
    match order.status {
        OrderStatus::Cancelled => return Err(cancelled()),
        OrderStatus::Complete => return Err(already_paid()),
        OrderStatus::Created | OrderStatus::AwaitingPayment => {}
    }
    if order.expired() {
        return Err(expired());
    }
    if order.user_id != user.id {
        return Err(ApiError::Forbidden);
    }
    let order_id = order.id.to_hex();
    let attempt = loop {
        match state.store.claim(&order, &token).await? {
            Claim::Granted(attempt) => break attempt,
            // An earlier attempt did not say what it did: find out first. If it charged,
            // that charge is recorded (whatever card this request brought); if it charged
            // nothing, it makes room for this request's own attempt.
            Claim::Resolve(earlier) => match resolve(&state, &earlier).await {
                Resolved::Charged(charge) => return record(&state, &earlier, &order, &charge).await,
                Resolved::Nothing => state.store.release(earlier.id).await?,
                Resolved::StillUnknown(err) => return Err(provider_error(&order_id, err)),
            },
            Claim::Paid | Claim::InProgress => return Err(already_paid()),
        }
    };
    let charged = state.provider.charge(&attempt.request()).await;
    state.charges.count(match &charged {
        Ok(_) => "succeeded",
        Err(err) if err.outcome_unknown() => "unknown",
        Err(_) => "declined",
    });
    match charged {
        Ok(charge) => record(&state, &attempt, &order, &charge).await,
        Err(err) if err.outcome_unknown() => {
            // The money may be taken: keep the claim; the next attempt resolves it.
            tracing::warn!(order_id, payment_id = %attempt.id, error = %err, "charge outcome unknown; the claim is kept");
            state.store.mark_unknown(attempt.id).await?;
            Err(provider_error(&order_id, err))
        }
        Err(err) => {
            // Nothing was charged: give the claim back so the order can be paid.
            state.store.release(attempt.id).await?;
            Err(provider_error(&order_id, err))
        }
    }
}

/// `payments_charges_total{outcome}`: charges asked of the provider, by outcome
/// (`succeeded`, `declined`, `unknown`: no answer, resolved by the next attempt).
#[derive(Clone, Debug, Default)]
pub struct ChargeMetrics(
    prometheus_client::metrics::family::Family<ChargeOutcome, prometheus_client::metrics::counter::Counter>,
);

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct ChargeOutcome {
    outcome: &'static str,
}

impl ChargeMetrics {
    pub fn register(registry: &mut prometheus_client::registry::Registry) -> Self {
        let metrics = Self::default();
        registry.register("payments_charges", "Charges asked of the payment provider, by outcome", metrics.0.clone());
        metrics
    }

    fn count(&self, outcome: &'static str) {
        self.0.get_or_create(&ChargeOutcome { outcome }).inc();
    }
}

/// What an earlier attempt turned out to have done.
enum Resolved {
    Charged(Charge),
    Nothing,
    StillUnknown(ProviderError),
}

/// Finds out what an attempt of unknown outcome did: the order's succeeded charge if the
/// provider lists one, else the same attempt replayed (same key, same card), which the
/// provider answers with its first outcome, or makes now if it never got it.
async fn resolve(state: &AppState, earlier: &Payment) -> Resolved {
    let still_unknown = async |err: ProviderError| {
        // Not resolved: the claim goes back to unknown for the next request.
        if let Err(db) = state.store.mark_unknown(earlier.id).await {
            tracing::warn!(error = %db, "could not mark the attempt unknown again; it is resolved once stale");
        }
        Resolved::StillUnknown(err)
    };
    match state.provider.find_charge(&earlier.order_id).await {
        Ok(Some(charge)) => {
            tracing::warn!(order_id = %earlier.order_id, charge_id = %charge.id, "an earlier attempt had charged: recording that charge");
            return Resolved::Charged(charge);
        }
        Ok(None) => {}
        Err(err) => return still_unknown(err).await,
    }
    if earlier.token.is_none() {
        // A claim from before attempts were recorded: nothing to replay, and the provider
        // lists no charge for the order.
        return Resolved::Nothing;
    }
    match state.provider.charge(&earlier.request()).await {
        Ok(charge) => Resolved::Charged(charge),
        Err(err) if err.outcome_unknown() || matches!(err, ProviderError::Unavailable(_)) => still_unknown(err).await,
        Err(err) => {
            tracing::info!(order_id = %earlier.order_id, error = %err, "the earlier attempt charged nothing");
            Resolved::Nothing
        }
    }
}

/// Records a charge; a charge that landed on an order cancelled meanwhile is recorded as
/// refund due (the refund task refunds it) and answered as cancelled.
async fn record(
    state: &AppState,
    attempt: &Payment,
    order: &OrderReplica,
    charge: &Charge,
) -> Result<(StatusCode, Json<PaymentView>), ApiError> {
    // From here the money is taken: a database failure leaves the claim in place, and the
    // next attempt after it goes stale resolves it by the same key.
    match state.store.record(attempt.id, order, charge).await? {
        Recorded::Paid => {
            tracing::info!(order_id = %order.id, payment_id = %attempt.id, "order paid");
            Ok((StatusCode::CREATED, Json(PaymentView { id: attempt.id.to_hex() })))
        }
        Recorded::OrderCancelled => {
            state.refunds.notify_one();
            Err(cancelled())
        }
    }
}
