//! The pages over HTTP, against the real platform: what a browser gets, byte for byte,
//! without a browser (the journeys in a real one are in `tests/browser`).

#[path = "../support/mod.rs"]
mod support;

use std::time::Duration;

use common::session::encode_session_cookie;
use support::{blog_platform, cookies_of, platform, platform_with};

const WINDOW: Duration = Duration::from_secs(900);

async fn page(platform: &support::Platform, path: &str, cookie: Option<&str>) -> reqwest::Response {
    let mut request = platform.http.get(platform.url(path));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    request.send().await.unwrap()
}

/// The value of `name="_csrf"` in a page.
fn csrf_field(html: &str) -> String {
    let at = html.find(r#"name="_csrf" value=""#).expect("a CSRF field");
    let rest = &html[at + r#"name="_csrf" value=""#.len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// Loads a page and returns the cookies it set merged into `cookie`, and its CSRF token.
async fn form_session(platform: &support::Platform, path: &str, cookie: &str) -> (String, String) {
    let response = page(platform, path, Some(cookie)).await;
    assert_eq!(response.status(), 200, "{path}");
    let set = cookies_of(&response);
    let html = response.text().await.unwrap();
    let merged = [cookie, set.as_str()].iter().filter(|c| !c.is_empty()).copied().collect::<Vec<_>>().join("; ");
    (merged, csrf_field(&html))
}

async fn post_form(
    platform: &support::Platform,
    path: &str,
    cookie: &str,
    origin: Option<&str>,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = platform
        .http
        .post(platform.url(path))
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(fields).unwrap());
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn the_home_page_lists_tickets_with_their_status_and_escapes_every_title() {
    let platform = platform(WINDOW).await;
    let seller = platform.user("seller@test.com").await;
    let hostile = platform.ticket(&seller, "<script>alert(1)</script>", 25.0).await;
    platform.wait_for_status(&hostile, "available").await;

    let response = page(&platform, "/", None).await;

    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = response.text().await.unwrap();
    assert!(
        html.contains("&#60;script&#62;alert(1)&#60;/script&#62;") || html.contains("&lt;script&gt;alert(1)"),
        "{html}"
    );
    assert!(!html.contains("<script>alert(1)"), "user text is escaped");
    assert!(html.contains("$25.00"));
    assert!(html.contains(r#"class="badge badge-available""#));
    assert!(html.contains(&format!("/tickets/{hostile}")));
}

#[tokio::test]
async fn the_listing_searches_filters_pages_and_shows_an_empty_state() {
    let platform = platform(WINDOW).await;
    let seller = platform.user("seller@test.com").await;
    let mut last = String::new();
    for n in 0..13 {
        last = platform.ticket(&seller, &format!("Gig number {n}"), 10.0).await;
    }
    let jazz = platform.ticket(&seller, "Jazz night", 30.0).await;
    platform.wait_for_status(&last, "available").await;
    platform.wait_for_status(&jazz, "available").await;

    let search = page(&platform, "/?q=jazz", None).await.text().await.unwrap();
    let first = page(&platform, "/", None).await.text().await.unwrap();
    let none = page(&platform, "/?q=opera&status=sold", None).await.text().await.unwrap();

    assert!(search.contains("Jazz night") && !search.contains("Gig number"), "the search keeps only matches");
    assert!(search.contains(r#"value="jazz""#), "the search stays in its box");
    assert_eq!(first.matches("class=\"card ticket-card\"").count(), 12);
    let more = first.split("href=\"/?cursor=").nth(1).expect("a Load more link");
    let next = format!("/?cursor={}", &more[..more.find('"').unwrap()].replace("&amp;", "&"));
    let second = page(&platform, &next, None).await.text().await.unwrap();
    assert_eq!(second.matches("class=\"card ticket-card\"").count(), 2);
    assert!(none.contains("No tickets match your search") && none.contains("Clear the search"));
}

#[tokio::test]
async fn every_page_carries_the_security_headers_and_no_third_party_script_in_test_mode() {
    let platform = platform(WINDOW).await;

    for path in ["/", "/auth/signin", "/nope"] {
        let response = page(&platform, path, None).await;
        let headers = response.headers();
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self';") && csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(!csp.contains("stripe"), "{csp}");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["referrer-policy"], "same-origin");
        assert_eq!(headers["cache-control"], "no-store", "{path}");
        let html = response.text().await.unwrap();
        assert!(!html.contains("<script>") && !html.contains("style=\""), "no inline script or style: {path}");
    }
}

#[tokio::test]
async fn static_files_are_fingerprinted_cached_for_good_and_small() {
    let platform = platform(WINDOW).await;
    let html = page(&platform, "/", None).await.text().await.unwrap();
    let css = html.split("href=\"/static/").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let js = html.split("src=\"/static/").nth(1).unwrap().split('"').next().unwrap().to_owned();

    for (name, kind) in [(&css, "text/css"), (&js, "text/javascript")] {
        let response = page(&platform, &format!("/static/{name}"), None).await;
        assert_eq!(response.status(), 200, "{name}");
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with(kind));
        assert_eq!(response.headers()["cache-control"], "public, max-age=31536000, immutable");
    }
    let js_bytes = page(&platform, &format!("/static/{js}"), None).await.bytes().await.unwrap().len();
    assert!(js_bytes < 20 * 1024, "all JavaScript together is {js_bytes} bytes");
    assert_eq!(page(&platform, "/static/app.00000000.css", None).await.status(), 404, "an old version is gone");
}

#[tokio::test]
async fn a_form_post_without_a_valid_token_or_from_another_origin_is_refused_and_changes_nothing() {
    let platform = platform(WINDOW).await;
    let seller = platform.user("seller@test.com").await;
    let (cookie, token) = form_session(&platform, "/tickets/new", &seller).await;
    let origin = platform.url.clone();
    let ticket = [("title", "Forged"), ("price", "10")];

    let no_token = post_form(&platform, "/tickets/new", &cookie, Some(&origin), &ticket).await;
    let wrong = post_form(
        &platform,
        "/tickets/new",
        &cookie,
        Some(&origin),
        &[("_csrf", "x".repeat(43).as_str()), ticket[0], ticket[1]],
    )
    .await;
    let elsewhere = post_form(
        &platform,
        "/tickets/new",
        &cookie,
        Some("http://evil.example"),
        &[("_csrf", &token), ticket[0], ticket[1]],
    )
    .await;
    let no_origin =
        post_form(&platform, "/tickets/new", &cookie, None, &[("_csrf", &token), ticket[0], ticket[1]]).await;

    for (name, response) in
        [("no token", no_token), ("wrong token", wrong), ("other origin", elsewhere), ("no origin", no_origin)]
    {
        assert_eq!(response.status(), 403, "{name}");
        assert!(response.text().await.unwrap().contains("That did not go through"), "{name}: the 403 page");
    }
    let listed: serde_json::Value = page(&platform, "/api/tickets", None).await.json().await.unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 0, "nothing was created");

    let genuine =
        post_form(&platform, "/tickets/new", &cookie, Some(&origin), &[("_csrf", &token), ticket[0], ticket[1]]).await;
    assert_eq!(genuine.status(), 303);
    assert!(genuine.headers()["location"].to_str().unwrap().starts_with("/tickets/"));
}

#[tokio::test]
async fn signing_up_through_the_form_relays_the_api_cookies_and_greets_the_user() {
    let platform = platform(WINDOW).await;
    let (cookie, token) = form_session(&platform, "/auth/signup", "").await;

    let response = post_form(
        &platform,
        "/auth/signup",
        &cookie,
        Some(&platform.url),
        &[("_csrf", &token), ("email", "new@test.com"), ("password", "supersecret"), ("next", "/orders")],
    )
    .await;

    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/orders");
    let set = cookies_of(&response);
    assert!(set.contains("session=") && set.contains("refresh=") && set.contains("flash="), "{set}");
    let home = page(&platform, "/", Some(&format!("{cookie}; {set}"))).await.text().await.unwrap();
    assert!(home.contains("new@test.com"), "the header names the user");
    assert!(home.contains("Welcome! You are signed in as new@test.com."), "the notice survives the redirect");
    assert!(home.contains("Sign out"));
}

#[tokio::test]
async fn field_errors_show_next_to_their_fields_and_keep_the_email_but_never_the_password() {
    let platform = platform(WINDOW).await;
    let (cookie, token) = form_session(&platform, "/auth/signup", "").await;

    let response = post_form(
        &platform,
        "/auth/signup",
        &cookie,
        Some(&platform.url),
        &[("_csrf", &token), ("email", "not-an-email"), ("password", "short7!")],
    )
    .await;

    assert_eq!(response.status(), 400);
    let html = response.text().await.unwrap();
    assert!(html.contains(r#"id="email-error""#) && html.contains("Email must be valid"), "{html}");
    assert!(html.contains(r#"id="password-error""#) && html.contains("Password must be between 8 and 128 characters"));
    assert!(html.contains(r#"value="not-an-email""#), "the typed email is kept");
    assert!(!html.contains("short7!"), "the password is never echoed");
    assert!(html.contains(r#"aria-describedby="email-error""#));

    let user = platform.user("taken@test.com").await;
    drop(user);
    let taken = post_form(
        &platform,
        "/auth/signup",
        &cookie,
        Some(&platform.url),
        &[("_csrf", &token), ("email", "taken@test.com"), ("password", "supersecret")],
    )
    .await;
    assert!(taken.text().await.unwrap().contains("Email in use"));
    let wrong = post_form(
        &platform,
        "/auth/signin",
        &cookie,
        Some(&platform.url),
        &[("_csrf", &token), ("email", "taken@test.com"), ("password", "wrong password")],
    )
    .await;
    assert!(wrong.text().await.unwrap().contains("Invalid credentials"));
}

#[tokio::test]
async fn an_expired_session_is_refreshed_before_the_page_renders() {
    let platform = platform(WINDOW).await;
    let cookie = platform.user("returning@test.com").await;
    let refresh = cookie.split("; ").find(|c| c.starts_with("refresh=")).unwrap().to_owned();
    let current: serde_json::Value =
        page(&platform, "/api/users/currentuser", Some(&cookie)).await.json().await.unwrap();
    let mut claims: common::Claims = serde_json::from_value(current["currentUser"].clone()).unwrap();
    claims.exp = claims.iat - 1;
    let expired = platform.session.sessions().sign(&claims).unwrap();
    let stale = format!("session={}; {refresh}", encode_session_cookie(&expired));

    let response = page(&platform, "/", Some(&stale)).await;

    let set = cookies_of(&response);
    assert!(set.contains("session=") && set.contains("refresh="), "new cookies go back with the page: {set}");
    assert!(!set.contains(&refresh), "the refresh token rotated");
    assert!(response.text().await.unwrap().contains("returning@test.com"), "rendered as the signed-in user");

    let without_refresh = page(&platform, "/", Some(&format!("session={}", encode_session_cookie(&expired)))).await;
    assert!(without_refresh.text().await.unwrap().contains("Sign in"), "an expired session alone is signed out");
}

#[tokio::test]
async fn unknown_pages_are_a_404_page_and_unknown_api_paths_the_json_404() {
    let platform = platform(WINDOW).await;

    let missing = page(&platform, "/no/such/page", None).await;
    let api = page(&platform, "/api/nope", None).await;
    let ticket = page(&platform, "/tickets/0123456789abcdef01234567", None).await;
    let metrics = page(&platform, "/metrics", None).await;

    assert_eq!(missing.status(), 404);
    assert!(missing.text().await.unwrap().contains("find that page"));
    assert_eq!(api.status(), 404);
    assert_eq!(
        api.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"errors": [{"message": "Not Found"}]})
    );
    assert_eq!(ticket.status(), 404);
    assert_eq!(metrics.status(), 404, "the client's metrics are not published through the Ingress");
}

#[tokio::test]
async fn pages_that_need_a_session_send_the_visitor_to_sign_in_and_back() {
    let platform = platform(WINDOW).await;

    for path in ["/orders", "/tickets/new", "/orders/0123456789abcdef01234567"] {
        let response = page(&platform, path, None).await;
        assert_eq!(response.status(), 303, "{path}");
        assert_eq!(
            response.headers()["location"].to_str().unwrap(),
            format!("/auth/signin?next={}", path.replace('/', "%2F"))
        );
    }
}

#[tokio::test]
async fn an_api_that_is_down_is_a_friendly_503_page_and_readyz_says_so() {
    let closed = format!(
        "http://127.0.0.1:{}",
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    );
    let client = client::build(client::Config {
        http: common::testing::test_http_settings(),
        api: client::config::ApiSettings { base_url: closed, host: None, timeout: Duration::from_secs(2) },
        stripe_publishable_key: None,
        cookie_secure: false,
    })
    .await
    .unwrap();
    let base = format!("http://127.0.0.1:{}", client.port());
    let stop = common::shutdown::CancellationToken::new();
    let _stop = common::testing::StopOnDrop(stop.clone());
    tokio::spawn(client.run_until_stopped(stop));

    let home = reqwest::get(format!("{base}/")).await.unwrap();
    let ready = reqwest::get(format!("{base}/readyz")).await.unwrap();

    assert_eq!(home.status(), 503);
    assert_eq!(home.headers()["retry-after"], "5");
    let html = home.text().await.unwrap();
    assert!(html.contains("The service is busy, try again in a moment") && html.contains("Try again"));
    assert_eq!(ready.status(), 503);
    assert_eq!(ready.json::<serde_json::Value>().await.unwrap()["checks"]["api"], "unreachable");
}

#[tokio::test]
async fn the_order_page_offers_test_cards_in_test_mode_and_stripe_when_configured() {
    for stripe in [None, Some("pk_test_storefront")] {
        let platform = platform_with(WINDOW, stripe).await;
        let seller = platform.user("seller@test.com").await;
        let buyer = platform.user("buyer@test.com").await;
        let ticket = platform.ticket(&seller, "Opera", 80.0).await;
        platform.wait_until_reservable(&ticket).await;
        let order: serde_json::Value = platform
            .http
            .post(platform.url("/api/orders"))
            .header("cookie", &buyer)
            .json(&serde_json::json!({"ticketId": ticket}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();

        let response = page(&platform, &format!("/orders/{}", order["id"].as_str().unwrap()), Some(&buyer)).await;

        assert_eq!(response.status(), 200);
        let csp = response.headers()["content-security-policy"].to_str().unwrap().to_owned();
        let html = response.text().await.unwrap();
        assert!(html.contains("Reserved for you for") && html.contains("data-seconds-left="), "the countdown");
        assert!(html.contains("Pay $80.00"));
        match stripe {
            None => {
                assert!(html.contains(r#"value="tok_visa""#) && html.contains(r#"value="tok_chargeDeclined""#));
                assert!(html.contains("Test mode"));
                assert!(!html.contains("js.stripe.com"));
            }
            Some(key) => {
                assert!(html.contains(r#"<script src="https://js.stripe.com/v3/" defer></script>"#));
                assert!(html.contains(&format!(r#"data-stripe-key="{key}""#)) && html.contains(r#"id="card-element""#));
                assert!(!html.contains("tok_visa"));
                assert!(csp.contains("script-src 'self' https://js.stripe.com"), "{csp}");
            }
        }
    }
}

#[tokio::test]
async fn the_blog_lists_posts_with_their_comments_shown_once_approved() {
    let platform = blog_platform().await;
    let signed_out = page(&platform, "/blog", None).await;
    assert_eq!(signed_out.status(), 200);
    let html = signed_out.text().await.unwrap();
    assert!(html.contains("No posts yet") && html.contains("/auth/signin?next=/blog"), "{html}");
    assert!(!html.contains(r#"action="/blog/posts""#), "no form for a visitor");
    let writer = platform.user("writer@test.com").await;
    let (cookie, token) = form_session(&platform, "/blog", &writer).await;
    let origin = platform.url.clone();

    let published =
        post_form(&platform, "/blog/posts", &cookie, Some(&origin), &[("_csrf", &token), ("title", "<b>Hello</b>")])
            .await;

    assert_eq!(published.status(), 303);
    let location = published.headers()["location"].to_str().unwrap().to_owned();
    let post_id = location.strip_prefix("/blog#post-").expect("back to the post").to_owned();
    // The comments service learns of the post from post.created, a moment later.
    let known = common::testing::eventually(Duration::from_secs(15), || async {
        (page(&platform, &format!("/api/posts/{post_id}/comments"), None).await.status() == 200).then_some(())
    })
    .await;
    assert!(known.is_some(), "comments never learned of the post");
    let comment_path = format!("/blog/posts/{post_id}/comments");
    for content in ["Nice one", "orange!"] {
        let sent =
            post_form(&platform, &comment_path, &cookie, Some(&origin), &[("_csrf", &token), ("content", content)])
                .await;
        assert_eq!((sent.status().as_u16(), sent.headers()["location"].to_str().unwrap()), (303, location.as_str()));
    }
    let blank =
        post_form(&platform, &comment_path, &cookie, Some(&origin), &[("_csrf", &token), ("content", " ")]).await;
    assert_eq!(blank.status(), 303, "refused by the API, told on the next page");

    let html = common::testing::eventually(Duration::from_secs(15), || async {
        let html = page(&platform, "/blog", Some(&cookie)).await.text().await.unwrap();
        (html.contains("Nice one") && html.contains("This comment has been rejected.")).then_some(html)
    })
    .await
    .expect("both comments moderated on the page");
    assert!(!html.contains("orange!"), "a rejected comment's content is not shown");
    assert!(!html.contains("<b>Hello</b>") && html.contains("Hello"), "titles are escaped");
    assert!(html.contains(&format!(r#"action="/blog/posts/{post_id}/comments""#)));
    assert!(html.contains(r#"href="/blog" aria-current="page""#));
}
