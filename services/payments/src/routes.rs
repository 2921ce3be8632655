//! `POST /api/payments`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use common::events::OrderStatus;
use common::extract::object_id;
use common::{ApiError, CurrentUser, ValidatedJson};
use serde::Deserialize;
use serde_json::{Value, json};
use validator::{Validate, ValidationError};

use crate::AppState;
use crate::provider::{ChargeRequest, PaymentProvider, ProviderError, charge_key};
use crate::store::{Claim, Recorded};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/payments", post(pay))
}

fn valid_id(id: &str) -> Result<(), ValidationError> {
    object_id(id)
        .map(drop)
        .map_err(|_| ValidationError::new("orderId").with_message("OrderId must be a valid id".into()))
}

#[derive(Debug, Deserialize, Validate)]
#[serde(rename_all = "camelCase")]
pub struct PaymentBody {
    #[validate(required(message = "Token must be provided"), length(min = 1, message = "Token must be provided"))]
    token: Option<String>,
    #[validate(required(message = "OrderId must be provided"), custom(function = "valid_id"))]
    order_id: Option<String>,
}

fn already_paid() -> ApiError {
    ApiError::BadRequest("Order already paid".into())
}

fn cancelled() -> ApiError {
    ApiError::BadRequest("Cannot pay for a cancelled order".into())
}

/// Check order: 401, 400 validation, 404, 400 cancelled, 400 already paid, 403; then the
/// claim, the charge and the record (see [`crate::store`]).
async fn pay(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ValidatedJson(body): ValidatedJson<PaymentBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
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
    let payment_id = match state.store.claim(&order_id).await? {
        Claim::Granted(id) => id,
        Claim::Paid | Claim::InProgress => return Err(already_paid()),
    };

    let request = ChargeRequest {
        amount_cents: order.price_cents,
        idempotency_key: charge_key(&order_id, &token),
        token,
        order_id: order_id.clone(),
    };
    let charge = match state.provider.charge(&request).await {
        Ok(charge) => charge,
        Err(err) => {
            // Nothing was charged (or, after an outage, a retry with the same key returns
            // what was): give the claim back so the order can be paid.
            state.store.release(payment_id).await?;
            return Err(match err {
                ProviderError::Declined(message) | ProviderError::Rejected(message) => ApiError::BadRequest(message),
                ProviderError::Unavailable(source) => ApiError::Unavailable(source),
            });
        }
    };
    // From here the money is taken: a database failure leaves the claim in place, and the
    // next attempt after it goes stale replays the same charge by its idempotency key.
    match state.store.record(payment_id, &order, &charge).await? {
        Recorded::Paid => {
            tracing::info!(order_id, payment_id = %payment_id, "order paid");
            Ok((StatusCode::CREATED, Json(json!({ "id": payment_id.to_hex() }))))
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
