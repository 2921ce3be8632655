//! Sessions: HS256 JWTs carried in the `session` cookie (base64 of `{"jwt": "<token>"}`,
//! the reference app's cookie-session format) or in `Authorization: Bearer <token>`.
//!
//! Every service verifies tokens itself with the shared `JWT_KEY`; none calls auth. A
//! token that verifies is still refused when its user's sessions were revoked (a ban, or
//! "sign out everywhere") at or after its `iat` ([`crate::revocation`]).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::revocation::Revocations;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "session";
/// Name of the refresh cookie: an opaque token only auth reads (SPEC section 7).
pub const REFRESH_COOKIE: &str = "refresh";

/// The claims of a session token: who the user is and when the token expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Claims {
    pub id: String,
    pub email: String,
    /// Issued at, seconds since the Unix epoch.
    pub iat: i64,
    /// Expires at, seconds since the Unix epoch.
    pub exp: i64,
    /// Present (and true) only for administrators.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[schema(default = false)]
    pub admin: bool,
}

/// Why a token was refused. Callers answer all of them with a 401; the variants exist for
/// logs and tests.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the session cookie is not base64 JSON with a `jwt` field")]
    MalformedCookie,
    #[error("the token is invalid: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    #[error("the user's sessions were revoked after this token was issued")]
    Revoked,
}

struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
    cookie_secure: bool,
}

/// Issues and verifies session tokens and renders the session cookie. Cheap to clone.
#[derive(Clone)]
pub struct Sessions(Arc<Keys>, Revocations);

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("ttl", &self.0.ttl)
            .field("cookie_secure", &self.0.cookie_secure)
            .field("revocations", &self.1.len())
            .finish_non_exhaustive()
    }
}

/// Who a token is for.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub id: &'a str,
    pub email: &'a str,
    pub admin: bool,
}

impl Sessions {
    /// `key` is the HS256 secret (`JWT_KEY`), `ttl` the token lifetime, `cookie_secure`
    /// whether the cookie carries the `Secure` attribute.
    pub fn new(key: &SecretString, ttl: Duration, cookie_secure: bool) -> Self {
        let secret = key.expose_secret().as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        // Tokens are issued and checked by the same fleet, whose clocks agree closely; a
        // token is expired exactly when its `exp` has passed.
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "iat"]);
        let keys = Keys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
            cookie_secure,
        };
        Self(Arc::new(keys), Revocations::new(ttl))
    }

    /// The revocations this verifier refuses tokens by (shared with whatever feeds them).
    pub fn revocations(&self) -> &Revocations {
        &self.1
    }

    pub fn ttl(&self) -> Duration {
        self.0.ttl
    }

    /// Whether cookies carry `Secure`.
    pub fn cookie_secure(&self) -> bool {
        self.0.cookie_secure
    }

    /// Issues a token for a user (not an admin), valid for the configured lifetime from now.
    pub fn issue(&self, id: &str, email: &str) -> Result<(String, Claims), TokenError> {
        self.issue_for(Subject { id, email, admin: false }, i64::MIN)
    }

    /// Issues a token whose `iat` is now, or `min_iat` when that is later. Auth passes the
    /// second after the user's last revocation, so a token issued in the same second as a
    /// revocation (just after an unban, say) is not refused by it.
    pub fn issue_for(&self, subject: Subject<'_>, min_iat: i64) -> Result<(String, Claims), TokenError> {
        self.issue_at(subject, time::OffsetDateTime::now_utc().unix_timestamp().max(min_iat))
    }

    /// Issues a token with exactly this `iat` (auth records the `iat` it issues in the same
    /// transaction that checks the user was not revoked, then signs with it).
    pub fn issue_at(&self, subject: Subject<'_>, iat: i64) -> Result<(String, Claims), TokenError> {
        let ttl = i64::try_from(self.0.ttl.as_secs()).unwrap_or(i64::MAX);
        let claims = Claims {
            id: subject.id.to_owned(),
            email: subject.email.to_owned(),
            iat,
            exp: iat.saturating_add(ttl),
            admin: subject.admin,
        };
        let token = self.sign(&claims)?;
        Ok((token, claims))
    }

    /// Signs arbitrary claims (tests use it for expired tokens).
    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        Ok(jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.0.encoding)?)
    }

    /// Verifies signature, algorithm (HS256 only, so `alg: none` is refused), expiry, and
    /// that the user's sessions were not revoked since the token was issued.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let claims = jsonwebtoken::decode::<Claims>(token, &self.0.decoding, &self.0.validation)?.claims;
        if self.1.is_revoked(&claims.id, claims.iat) {
            return Err(TokenError::Revoked);
        }
        Ok(claims)
    }

    /// The `Set-Cookie` value that stores `token` in the session cookie.
    pub fn cookie(&self, token: &str) -> HeaderValue {
        let value = encode_session_cookie(token);
        let mut cookie =
            format!("{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}", self.0.ttl.as_secs());
        if self.0.cookie_secure {
            cookie.push_str("; Secure");
        }
        HeaderValue::from_str(&cookie).expect("base64 and fixed attributes are valid header text")
    }

    /// The `Set-Cookie` value that clears the session cookie.
    pub fn clear_cookie(&self) -> HeaderValue {
        let mut cookie = format!(
            "{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"
        );
        if self.0.cookie_secure {
            cookie.push_str("; Secure");
        }
        HeaderValue::from_str(&cookie).expect("fixed attributes are valid header text")
    }

    /// Finds and verifies the request's token: the Bearer header first, then the cookie.
    /// `Ok(None)` when the request carries no token at all.
    pub fn claims_from_headers(&self, headers: &HeaderMap) -> Result<Option<Claims>, TokenError> {
        match token_from_headers(headers)? {
            Some(token) => self.verify(&token).map(Some),
            None => Ok(None),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct CookiePayload {
    jwt: String,
}

/// `base64(JSON {"jwt": token})`, the cookie-session encoding of the reference app.
pub fn encode_session_cookie(token: &str) -> String {
    let json = serde_json::to_vec(&CookiePayload { jwt: token.to_owned() }).expect("a string serialises");
    STANDARD.encode(json)
}

/// Inverse of [`encode_session_cookie`]; accepts the value with or without padding.
pub fn decode_session_cookie(value: &str) -> Result<String, TokenError> {
    let trimmed = value.trim().trim_end_matches('=');
    let bytes = STANDARD_NO_PAD.decode(trimmed).map_err(|_| TokenError::MalformedCookie)?;
    let payload: CookiePayload = serde_json::from_slice(&bytes).map_err(|_| TokenError::MalformedCookie)?;
    Ok(payload.jwt)
}

fn token_from_headers(headers: &HeaderMap) -> Result<Option<String>, TokenError> {
    if let Some(token) = bearer_token(headers) {
        return Ok(Some(token.to_owned()));
    }
    match session_cookie_value(headers) {
        Some(value) if !value.is_empty() => decode_session_cookie(value).map(Some),
        _ => Ok(None),
    }
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

fn session_cookie_value(headers: &HeaderMap) -> Option<&str> {
    cookie_value(headers, SESSION_COOKIE)
}

/// The value of the request's cookie `name` (the first one), unquoted; `None` when absent
/// or empty.
pub fn cookie_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(cookie, _)| *cookie == name)
        .map(|(_, value)| value.trim_matches('"'))
        .filter(|value| !value.is_empty())
}

/// The signed-in user. Rejects with 401 when there is no token or the token is invalid.
#[derive(Debug, Clone)]
pub struct CurrentUser(pub Claims);

/// The signed-in user if there is one. A request without a token is anonymous; a request
/// with a bad token is still a 401, never silently anonymous.
#[derive(Debug, Clone)]
pub struct MaybeUser(pub Option<Claims>);

impl<S> FromRequestParts<S> for MaybeUser
where
    Sessions: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let sessions = Sessions::from_ref(state);
        match sessions.claims_from_headers(&parts.headers) {
            Ok(claims) => Ok(Self(claims)),
            Err(err) => {
                tracing::debug!(error = %err, "refused a session token");
                Err(ApiError::NotAuthorized)
            }
        }
    }
}

impl<S> FromRequestParts<S> for CurrentUser
where
    Sessions: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let MaybeUser(claims) = MaybeUser::from_request_parts(parts, state).await?;
        claims.map(Self).ok_or(ApiError::NotAuthorized)
    }
}

/// A signed-in administrator. 401 without a valid token, 403 when the token is not an
/// admin's.
#[derive(Debug, Clone)]
pub struct AdminUser(pub Claims);

impl<S> FromRequestParts<S> for AdminUser
where
    Sessions: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let CurrentUser(claims) = CurrentUser::from_request_parts(parts, state).await?;
        if claims.admin { Ok(Self(claims)) } else { Err(ApiError::Forbidden) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn sessions(key: &str) -> Sessions {
        Sessions::new(&SecretString::from(key.to_owned()), Duration::from_secs(900), false)
    }

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn an_issued_token_verifies_with_its_claims() {
        let s = sessions(KEY);
        let (token, claims) = s.issue("abc", "a@b.co").unwrap();
        assert_eq!(claims.exp - claims.iat, 900);
        assert_eq!(s.verify(&token).unwrap(), claims);
    }

    #[test]
    fn an_expired_token_is_refused() {
        let s = sessions(KEY);
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let token = s
            .sign(&Claims { id: "a".into(), email: "a@b.co".into(), iat: now - 100, exp: now - 1, admin: false })
            .unwrap();
        assert!(s.verify(&token).is_err());
    }

    #[test]
    fn a_token_signed_with_another_key_is_refused() {
        let (token, _) = sessions("another-key-another-key-another-key").issue("a", "a@b.co").unwrap();
        assert!(sessions(KEY).verify(&token).is_err());
    }

    #[test]
    fn an_alg_none_token_is_refused() {
        let s = sessions(KEY);
        let (_, claims) = s.issue("a", "a@b.co").unwrap();
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
        assert!(s.verify(&format!("{header}.{payload}.")).is_err());
    }

    #[test]
    fn a_tampered_payload_is_refused() {
        let s = sessions(KEY);
        let (token, claims) = s.issue("a", "a@b.co").unwrap();
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let forged = Claims { id: "someone-else".into(), ..claims };
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        assert!(s.verify(&parts.join(".")).is_err());
    }

    #[test]
    fn the_cookie_codec_round_trips_and_matches_cookie_session() {
        let encoded = encode_session_cookie("a.b.c");
        assert_eq!(encoded, STANDARD.encode(br#"{"jwt":"a.b.c"}"#));
        assert_eq!(decode_session_cookie(&encoded).unwrap(), "a.b.c");
        assert!(decode_session_cookie("%%%").is_err());
        assert!(decode_session_cookie(&STANDARD.encode(b"{}")).is_err());
    }

    #[test]
    fn the_bearer_header_wins_over_the_cookie() {
        let s = sessions(KEY);
        let (bearer, _) = s.issue("bearer-user", "b@b.co").unwrap();
        let (cookie, _) = s.issue("cookie-user", "c@b.co").unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, format!("Bearer {bearer}").parse().unwrap());
        headers.insert(header::COOKIE, format!("x=1; session={}", encode_session_cookie(&cookie)).parse().unwrap());
        assert_eq!(s.claims_from_headers(&headers).unwrap().unwrap().id, "bearer-user");
        headers.remove(header::AUTHORIZATION);
        assert_eq!(s.claims_from_headers(&headers).unwrap().unwrap().id, "cookie-user");
        headers.remove(header::COOKIE);
        assert!(s.claims_from_headers(&headers).unwrap().is_none());
    }

    #[test]
    fn a_token_of_a_revoked_user_is_refused_and_a_later_one_is_not() {
        let s = sessions(KEY);
        let (before, claims) = s.issue("0123456789abcdef01234567", "a@b.co").unwrap();
        s.revocations().revoke(&claims.id, claims.iat, claims.iat);

        assert!(matches!(s.verify(&before), Err(TokenError::Revoked)));
        let subject = Subject { id: &claims.id, email: &claims.email, admin: false };
        let (after, later) = s.issue_for(subject, claims.iat + 1).unwrap();
        assert_eq!(later.iat, claims.iat + 1);
        assert_eq!(later.exp - later.iat, 900);
        assert_eq!(s.verify(&after).unwrap(), later);
    }

    #[test]
    fn the_admin_claim_appears_only_for_admins() {
        let s = sessions(KEY);
        let (_, plain) = s.issue("a", "a@b.co").unwrap();
        let (token, admin) = s.issue_for(Subject { id: "b", email: "b@b.co", admin: true }, 0).unwrap();

        assert!(serde_json::to_value(&plain).unwrap().get("admin").is_none());
        assert_eq!(serde_json::to_value(&admin).unwrap()["admin"], true);
        assert!(s.verify(&token).unwrap().admin);
    }

    #[test]
    fn cookies_carry_the_spec_attributes() {
        let plain = sessions(KEY).cookie("t");
        let plain = plain.to_str().unwrap();
        assert!(plain.starts_with("session="));
        for attr in ["HttpOnly", "SameSite=Lax", "Path=/"] {
            assert!(plain.contains(attr), "{plain} lacks {attr}");
        }
        assert!(!plain.contains("Secure"));
        let secure = Sessions::new(&SecretString::from(KEY.to_owned()), Duration::from_secs(1), true).cookie("t");
        assert!(secure.to_str().unwrap().ends_with("; Secure"));
    }
}
