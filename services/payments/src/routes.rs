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
use crate::provider::{ChargeRequest, PaymentProvider, ProviderError, charge_key};
use crate::store::{Claim, Recorded};

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

fn provider_error(err: ProviderError) -> ApiError {
    match err {
        ProviderError::Declined(message) | ProviderError::Rejected(message) => ApiError::BadRequest(message),
        ProviderError::Unavailable(source) => ApiError::Unavailable(source),
    }
}

fn cancelled() -> ApiError {
    ApiError::BadRequest("Cannot pay for a cancelled order".into())
}

/// Pays for an order.
///
/// Check order: 401, 400 validation, 404, 400 cancelled, 400 already paid, 403; then the
/// claim, the charge and the record (see [`crate::store`]).
#[utoipa::path(
    post,
    path = "/api/payments",
    operation_id = "pay",
    tag = "payments",
    request_body = PaymentBody,
    security(("session" = []), ("bearer" = [])),
    responses(
        (status = 201, description = "Charged; emits payment.created", body = PaymentView),
        (status = 400, description = "Validation, `Cannot pay for a cancelled order`, `Order already paid`, or the \
            provider's decline message", body = ErrorEnvelope),
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
    if order.user_id != user.id {
        return Err(ApiError::Forbidden);
    }
    let order_id = order.id.to_hex();
    let (payment_id, earlier) = match state.store.claim(&order_id).await? {
        Claim::Granted(id) => (id, None),
        // The attempt before died mid-charge: it may have charged. A failed lookup keeps
        // the claim (a 503; the next attempt after it goes stale looks again).
        Claim::TakenOver(id) => (id, state.provider.find_charge(&order_id).await.map_err(provider_error)?),
        Claim::Paid | Claim::InProgress => return Err(already_paid()),
    };
    let charge = match earlier {
        Some(charge) => {
            tracing::warn!(order_id, charge_id = %charge.id, "an abandoned attempt had charged: recording that charge");
            charge
        }
        None => {
            let request = ChargeRequest {
                amount_cents: order.price_cents,
                idempotency_key: charge_key(&order_id, &token),
                token,
                order_id: order_id.clone(),
            };
            match state.provider.charge(&request).await {
                Ok(charge) => charge,
                Err(err) => {
                    // Nothing was charged (or, after an outage, a retry with the same key
                    // returns what was): give the claim back so the order can be paid.
                    state.store.release(payment_id).await?;
                    return Err(provider_error(err));
                }
            }
        }
    };
    // From here the money is taken: a database failure leaves the claim in place, and the
    // next attempt after it goes stale replays the same charge by its idempotency key.
    match state.store.record(payment_id, &order, &charge).await? {
        Recorded::Paid => {
            tracing::info!(order_id, payment_id = %payment_id, "order paid");
            Ok((StatusCode::CREATED, Json(PaymentView { id: payment_id.to_hex() })))
        }
        Recorded::OrderCancelled => {
            if let Err(err) = state.store.refund_if_charged(&order_id, &state.provider).await {
                // The cancellation handler refunds it on redelivery; the client still
                // learns the order was cancelled.
                tracing::error!(order_id, error = %err, "refund after a late payment failed; the listener retries");
            }
            Err(cancelled())
        }
    }
}
