//! Signing up, in and out.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use super::{Layout, PageError, render, safe_next, see_other};
use crate::AppState;
use crate::api::Problems;
use crate::forms::SafeForm;
use crate::pages::tickets::Nothing;
use crate::visitor::{Flash, Visitor};

#[derive(Template)]
#[template(path = "auth.html")]
struct AuthPage {
    l: Layout,
    heading: &'static str,
    intro: &'static str,
    action: &'static str,
    submit: &'static str,
    signup: bool,
    password_autocomplete: &'static str,
    switch_text: &'static str,
    switch_link: &'static str,
    switch_href: String,
    email: String,
    next: String,
    problems: Problems,
    focus: &'static str,
}

#[derive(Clone, Copy)]
enum Mode {
    SignUp,
    SignIn,
}

fn page(state: &AppState, visitor: &Visitor, mode: Mode, email: String, next: String, problems: Problems) -> AuthPage {
    let back = if next == "/" { String::new() } else { format!("?next={}", super::encode(&next)) };
    let focus =
        problems.first_of(&["email", "password"]).unwrap_or(if email.is_empty() { "email" } else { "password" });
    match mode {
        Mode::SignUp => AuthPage {
            l: Layout::new(state, visitor, "Sign up", "signup"),
            heading: "Create your account",
            intro: "Sell tickets you cannot use, and buy the ones you want.",
            action: "/auth/signup",
            submit: "Sign up",
            signup: true,
            password_autocomplete: "new-password",
            switch_text: "Already have an account?",
            switch_link: "Sign in",
            switch_href: format!("/auth/signin{back}"),
            email,
            next,
            problems,
            focus,
        },
        Mode::SignIn => AuthPage {
            l: Layout::new(state, visitor, "Sign in", "signin"),
            heading: "Sign in",
            intro: "Welcome back.",
            action: "/auth/signin",
            submit: "Sign in",
            signup: false,
            password_autocomplete: "current-password",
            switch_text: "New here?",
            switch_link: "Create an account",
            switch_href: format!("/auth/signup{back}"),
            email,
            next,
            problems,
            focus,
        },
    }
}

#[derive(Debug, Deserialize)]
pub struct Next {
    next: Option<String>,
}

/// `GET /auth/signup`
pub async fn signup_page(State(state): State<AppState>, visitor: Visitor, Query(q): Query<Next>) -> Response {
    form_page(&state, &visitor, Mode::SignUp, q.next.as_deref())
}

/// `GET /auth/signin`
pub async fn signin_page(State(state): State<AppState>, visitor: Visitor, Query(q): Query<Next>) -> Response {
    form_page(&state, &visitor, Mode::SignIn, q.next.as_deref())
}

fn form_page(state: &AppState, visitor: &Visitor, mode: Mode, next: Option<&str>) -> Response {
    let next = safe_next(next);
    if visitor.signed_in() {
        return see_other(&next);
    }
    render(StatusCode::OK, &page(state, visitor, mode, String::new(), next, Problems::default()))
}

/// What both forms post. The password is never echoed back into a page.
#[derive(Deserialize)]
pub struct Credentials {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("email", &self.email).field("next", &self.next).finish_non_exhaustive()
    }
}

/// `POST /auth/signup`
pub async fn signup(
    State(state): State<AppState>,
    visitor: Visitor,
    SafeForm(form): SafeForm<Credentials>,
) -> Result<Response, PageError> {
    submit(&state, visitor, Mode::SignUp, form).await
}

/// `POST /auth/signin`
pub async fn signin(
    State(state): State<AppState>,
    visitor: Visitor,
    SafeForm(form): SafeForm<Credentials>,
) -> Result<Response, PageError> {
    submit(&state, visitor, Mode::SignIn, form).await
}

async fn submit(state: &AppState, visitor: Visitor, mode: Mode, form: Credentials) -> Result<Response, PageError> {
    let path = match mode {
        Mode::SignUp => "/api/users/signup",
        Mode::SignIn => "/api/users/signin",
    };
    let next = safe_next(form.next.as_deref());
    let reply = state.api.post(path, &visitor.caller, &json!({"email": form.email, "password": form.password})).await?;
    if reply.is_success() {
        visitor.relay(&reply.cookies);
        let email = reply.json::<serde_json::Value>()?["email"].as_str().unwrap_or_default().to_owned();
        let text = match mode {
            Mode::SignUp => format!("Welcome! You are signed in as {email}."),
            Mode::SignIn => format!("Signed in as {email}."),
        };
        visitor.flash(&Flash::success(text));
        return Ok(see_other(&next));
    }
    let problems = match reply.status {
        StatusCode::TOO_MANY_REQUESTS => Problems::general("Too many attempts. Wait a minute, then try again."),
        _ => reply.errors(),
    };
    let status = if reply.status == StatusCode::FORBIDDEN { StatusCode::FORBIDDEN } else { StatusCode::BAD_REQUEST };
    Ok(render(status, &page(state, &visitor, mode, form.email.trim().to_owned(), next, problems)))
}

/// `POST /auth/signout`: ends the session at auth (its refresh tokens too) and here.
pub async fn signout(
    State(state): State<AppState>,
    mut visitor: Visitor,
    SafeForm(_): SafeForm<Nothing>,
) -> Result<Response, PageError> {
    let reply = state.api.post("/api/users/signout", &visitor.caller, &json!({})).await?;
    visitor.relay(&reply.cookies);
    visitor.sign_out_locally();
    visitor.flash(&Flash::info("You are signed out."));
    Ok(see_other("/"))
}
