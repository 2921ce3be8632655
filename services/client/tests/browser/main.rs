//! The storefront in a real browser: headless Chromium over WebDriver, against the whole
//! platform. The journeys of a seller and buyers, with JavaScript and without, keyboard
//! only, a declined card, an expired reservation, a forged form and a hostile title; then
//! every page checked by axe-core and photographed at phone and desktop width.
//!
//! Needs `chromedriver` and Chromium (`dev/test` installs them) and axe-core
//! (`AXE_CORE_JS`, installed by `dev/test` from the npm registry). Screenshots go to
//! `SCREENSHOT_DIR` (relative to the workspace; default a temporary folder);
//! `SCREENSHOT_DIR=docs/screenshots dev/test -p client --test browser` refreshes the
//! committed set.

#[path = "../support/mod.rs"]
mod support;

use std::time::Duration;

use fantoccini::key::Key;
use fantoccini::{Client, Locator};
use support::{Browser, Driver, Platform, platform};

const WINDOW: Duration = Duration::from_secs(900);
const WAIT: Duration = Duration::from_secs(15);

async fn go(c: &Client, platform: &Platform, path: &str) {
    c.goto(&platform.url(path)).await.unwrap_or_else(|e| panic!("cannot open {path}: {e}"));
}

async fn find(c: &Client, css: &str) -> fantoccini::elements::Element {
    match c.wait().at_most(WAIT).for_element(Locator::Css(css)).await {
        Ok(element) => element,
        Err(err) => {
            let url = c.current_url().await.map(|u| u.to_string()).unwrap_or_default();
            let main = match c.find(Locator::Css("main")).await {
                Ok(main) => main.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            panic!("no {css} on {url}: {err}; the page says:\n{main}")
        }
    }
}

async fn text(c: &Client, css: &str) -> String {
    find(c, css).await.text().await.unwrap()
}

async fn fill(c: &Client, css: &str, value: &str) {
    let field = find(c, css).await;
    field.clear().await.unwrap();
    field.send_keys(value).await.unwrap();
}

/// Clicks something that does not leave the page (a radio button).
async fn click(c: &Client, css: &str) {
    find(c, css).await.click().await.unwrap();
}

/// Clicks a link or a form's button and waits for the next page to replace this one (so
/// the next lookup cannot find an element of the old page).
async fn follow(c: &Client, css: &str) {
    let old = find(c, "html").await;
    find(c, css).await.click().await.unwrap();
    wait_for_new_page(c, old).await;
}

async fn wait_for_new_page(c: &Client, old: fantoccini::elements::Element) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while old.tag_name().await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "the page did not change");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    find(c, "body").await;
}

/// Presses Enter on the focused element, which submits or follows, and waits.
async fn press_enter(c: &Client) {
    let old = find(c, "html").await;
    c.active_element().await.unwrap().send_keys(&Key::Enter.to_string()).await.unwrap();
    wait_for_new_page(c, old).await;
}

/// Waits until `css` exists and its text satisfies `ok`, reloading the page between tries
/// when `reload` (for state another service changes).
async fn eventually_text(c: &Client, css: &str, reload: bool, ok: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(element) = c.find(Locator::Css(css)).await
            && let Ok(text) = element.text().await
            && ok(&text)
        {
            return text;
        }
        assert!(tokio::time::Instant::now() < deadline, "{css} never had the expected text");
        tokio::time::sleep(Duration::from_millis(250)).await;
        if reload {
            c.refresh().await.unwrap();
        }
    }
}

async fn path_of(c: &Client) -> String {
    c.current_url().await.unwrap().path().to_owned()
}

/// Signs up through the form.
async fn sign_up(c: &Client, platform: &Platform, email: &str) {
    go(c, platform, "/auth/signup").await;
    fill(c, "#email", email).await;
    fill(c, "#password", "supersecret").await;
    follow(c, "form.form button[type=submit]").await;
    let greeting = text(c, ".notice-success").await;
    assert!(greeting.contains(email), "{greeting}");
}

/// Sells a ticket through the form; returns its id.
async fn sell(c: &Client, platform: &Platform, title: &str, price: &str) -> String {
    go(c, platform, "/tickets/new").await;
    fill(c, "#title", title).await;
    fill(c, "#price", price).await;
    follow(c, "form.form button[type=submit]").await;
    assert_eq!(text(c, ".notice-success").await, "Ticket listed. Buyers can find it now.");
    path_of(c).await.trim_start_matches("/tickets/").to_owned()
}

/// Finds a ticket by searching the home page for `words`, and opens it.
async fn find_and_open(c: &Client, platform: &Platform, words: &str, ticket: &str) {
    platform.wait_until_reservable(ticket).await;
    go(c, platform, "/").await;
    fill(c, "#q", words).await;
    follow(c, ".filters button[type=submit]").await;
    follow(c, &format!("[data-ticket-id=\"{ticket}\"] a")).await;
    assert_eq!(path_of(c).await, format!("/tickets/{ticket}"));
}

/// Pays with the test card of `choice` (`tok_visa`, `tok_chargeDeclined`).
async fn pay(c: &Client, choice: &str) {
    click(c, &format!("input[name=token][value={choice}]")).await;
    follow(c, "form.pay-form button[type=submit]").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seller_lists_a_ticket_and_a_buyer_finds_buys_and_pays_for_it() {
    let platform = platform(WINDOW).await;
    let driver = Driver::start().await;
    let seller = driver.browser(Browser::default()).await;
    let buyer = driver.browser(Browser::default()).await;

    sign_up(&seller, &platform, "seller@test.com").await;
    let ticket = sell(&seller, &platform, "Jazz Quartet Live", "25.00").await;
    assert!(text(&seller, ".facts").await.contains("Listed by you"));

    sign_up(&buyer, &platform, "buyer@test.com").await;
    find_and_open(&buyer, &platform, "quartet", &ticket).await;
    assert_eq!(text(&buyer, "[data-ticket-id] [data-status]").await, "Available");
    follow(&buyer, "[data-buy]").await;
    let countdown = text(&buyer, "[data-countdown-clock]").await;
    assert!(countdown.starts_with("14:") || countdown == "15:00", "about 15 minutes left: {countdown}");
    let later = eventually_text(&buyer, "[data-countdown-clock]", false, |t| t != countdown).await;
    assert_ne!(later, countdown, "the countdown ticks");
    pay(&buyer, "tok_visa").await;
    assert_eq!(text(&buyer, ".result-success h2").await, "Paid. The ticket is yours.");

    go(&buyer, &platform, "/").await;
    let badge =
        eventually_text(&buyer, &format!("[data-ticket-id=\"{ticket}\"] [data-status]"), true, |t| t == "Sold").await;
    assert_eq!(badge, "Sold", "the home page shows it sold");
    go(&buyer, &platform, "/orders").await;
    let row = text(&buyer, ".orders-table tbody tr").await;
    assert!(row.contains("Jazz Quartet Live") && row.contains("Paid") && row.contains("$25.00"), "{row}");
    seller.close().await.unwrap();
    buyer.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_card_says_so_and_a_retry_with_another_card_completes_the_order() {
    let platform = platform(WINDOW).await;
    let seller = platform.user("seller@test.com").await;
    let ticket = platform.ticket(&seller, "Cup Final", 90.0).await;
    let driver = Driver::start().await;
    let buyer = driver.browser(Browser::default()).await;
    sign_up(&buyer, &platform, "buyer@test.com").await;
    find_and_open(&buyer, &platform, "cup final", &ticket).await;
    follow(&buyer, "[data-buy]").await;

    pay(&buyer, "tok_chargeDeclined").await;

    let message = text(&buyer, ".notice-error").await;
    assert!(message.contains("declined") && message.contains("Nothing was charged"), "{message}");
    assert!(find(&buyer, "[data-countdown]").await.is_displayed().await.unwrap(), "still reserved, still payable");
    pay(&buyer, "tok_visa").await;
    assert_eq!(text(&buyer, ".result-success h2").await, "Paid. The ticket is yours.");
    buyer.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_that_runs_out_says_so_and_the_ticket_is_for_sale_again() {
    let platform = platform(Duration::from_secs(6)).await;
    let seller = platform.user("seller@test.com").await;
    let ticket = platform.ticket(&seller, "Matinee", 15.0).await;
    let driver = Driver::start().await;
    let buyer = driver.browser(Browser::default()).await;
    sign_up(&buyer, &platform, "buyer@test.com").await;
    find_and_open(&buyer, &platform, "matinee", &ticket).await;
    follow(&buyer, "[data-buy]").await;
    let order = path_of(&buyer).await;

    let expired = buyer.wait().at_most(WAIT).for_element(Locator::Css("[data-countdown-expired]:not([hidden])")).await;

    assert!(expired.is_ok(), "the countdown reached zero and the page says the reservation expired");
    assert!(!find(&buyer, "form.pay-form").await.is_displayed().await.unwrap(), "nothing left to pay");
    go(&buyer, &platform, &order).await;
    assert_eq!(text(&buyer, "#checkout-title").await, "Your reservation has expired");
    follow(&buyer, ".result a.button").await;
    let status = eventually_text(&buyer, "[data-ticket-id] [data-status]", true, |t| t == "Available").await;
    assert_eq!(status, "Available");
    assert!(find(&buyer, "[data-buy]").await.is_enabled().await.unwrap(), "it can be bought again");
    buyer.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_errors_appear_next_to_their_fields_and_someone_elses_ticket_cannot_be_edited() {
    let platform = platform(WINDOW).await;
    let owner = platform.user("owner@test.com").await;
    let theirs = platform.ticket(&owner, "Not yours", 10.0).await;
    let driver = Driver::start().await;
    let c = driver.browser(Browser::default()).await;

    go(&c, &platform, "/auth/signup").await;
    fill(&c, "#email", "not-an-email").await;
    fill(&c, "#password", "short").await;
    follow(&c, "form.form button[type=submit]").await;
    assert_eq!(text(&c, "#email-error").await, "Email must be valid");
    assert_eq!(text(&c, "#password-error").await, "Password must be between 8 and 128 characters");
    assert_eq!(find(&c, "#email").await.prop("value").await.unwrap().as_deref(), Some("not-an-email"));
    assert_eq!(find(&c, "#password").await.prop("value").await.unwrap().as_deref(), Some(""));
    let focused = c.active_element().await.unwrap().attr("id").await.unwrap();
    assert_eq!(focused.as_deref(), Some("email"), "the first invalid field has the focus");

    sign_up(&c, &platform, "editor@test.com").await;
    go(&c, &platform, "/tickets/new").await;
    fill(&c, "#price", "abc").await;
    follow(&c, "form.form button[type=submit]").await;
    assert_eq!(text(&c, "#title-error").await, "Title is required");
    assert_eq!(text(&c, "#price-error").await, "Price must be a number");

    go(&c, &platform, &format!("/tickets/{theirs}/edit")).await;
    assert_eq!(text(&c, "h1").await, "That is not yours to change");
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_purchase_works_with_javascript_off() {
    let platform = platform(WINDOW).await;
    let seller = platform.user("seller@test.com").await;
    let ticket = platform.ticket(&seller, "Quiet Recital", 40.0).await;
    let driver = Driver::start().await;
    let c = driver.browser(Browser { javascript: false, ..Browser::default() }).await;
    sign_up(&c, &platform, "nojs@test.com").await;
    find_and_open(&c, &platform, "recital", &ticket).await;
    follow(&c, "[data-buy]").await;
    let countdown = text(&c, "[data-countdown-clock]").await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(text(&c, "[data-countdown-clock]").await, countdown, "without JavaScript the server's countdown stays");
    pay(&c, "tok_visa").await;
    assert_eq!(text(&c, ".result-success h2").await, "Paid. The ticket is yours.");
    go(&c, &platform, "/orders").await;
    assert!(text(&c, ".orders-table").await.contains("Quiet Recital"));
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_form_changes_nothing_and_a_hostile_title_is_only_text() {
    let platform = platform(WINDOW).await;
    let driver = Driver::start().await;
    let c = driver.browser(Browser::default()).await;
    sign_up(&c, &platform, "victim@test.com").await;
    // Another origin (same host, another port: the browser sends the cookies along, so
    // only the CSRF token and the Origin check stand in the way).
    let evil = forging_site(&platform.url("/tickets/new")).await;

    c.goto(&evil).await.unwrap();

    assert_eq!(text(&c, "h1").await, "That did not go through");
    let listed: serde_json::Value =
        platform.http.get(platform.url("/api/tickets")).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 0, "the forged post created nothing");

    let hostile = "<script>alert(1)</script><img src=x onerror=alert(2)>";
    let ticket = sell(&c, &platform, hostile, "5").await;
    assert_eq!(text(&c, "h1").await, hostile, "the title shows as text");
    platform.wait_for_status(&ticket, "available").await;
    go(&c, &platform, "/").await;
    assert_eq!(text(&c, &format!("[data-ticket-id=\"{ticket}\"] .card-title")).await, hostile);
    assert!(c.get_alert_text().await.is_err(), "no script ran");
    c.close().await.unwrap();
}

/// A page on another origin whose form posts itself to `target` on load.
async fn forging_site(target: &str) -> String {
    let html = format!(
        "<!doctype html><title>Win a prize</title><form method=post action=\"{target}\">\
         <input name=title value=Forged><input name=price value=1><input name=_csrf value=guess></form>\
         <script>document.forms[0].submit()</script>"
    );
    let app = axum::Router::new().route("/", axum::routing::get(move || async move { axum::response::Html(html) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}/")
}

/// Presses Tab until the focused element matches `css` (at most 40 times).
async fn tab_to(c: &Client, css: &str) {
    let target = find(c, css).await;
    let target_id = target.element_id();
    for _ in 0..40 {
        let active = c.active_element().await.unwrap();
        if active.element_id() == target_id {
            return;
        }
        active.send_keys(&Key::Tab.to_string()).await.unwrap();
    }
    panic!("{css} never got the focus with Tab");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_purchase_can_be_completed_with_the_keyboard_alone() {
    let platform = platform(WINDOW).await;
    let seller = platform.user("seller@test.com").await;
    let ticket = platform.ticket(&seller, "Keyboard Concert", 12.0).await;
    let buyer = platform.user("keys@test.com").await;
    drop(buyer);
    let driver = Driver::start().await;
    let c = driver.browser(Browser::default()).await;
    go(&c, &platform, "/auth/signin").await;
    tab_to(&c, "#email").await;
    c.active_element().await.unwrap().send_keys("keys@test.com").await.unwrap();
    tab_to(&c, "#password").await;
    c.active_element().await.unwrap().send_keys("supersecret").await.unwrap();
    press_enter(&c).await;
    find(&c, ".notice-success").await;
    platform.wait_until_reservable(&ticket).await;
    go(&c, &platform, &format!("/tickets/{ticket}")).await;

    tab_to(&c, "[data-buy]").await;
    press_enter(&c).await;
    find(&c, "[data-countdown]").await;
    tab_to(&c, "form.pay-form button[type=submit]").await;
    press_enter(&c).await;

    assert_eq!(text(&c, ".result-success h2").await, "Paid. The ticket is yours.");
    c.close().await.unwrap();
}

// ---- every page: axe-core and screenshots ----

/// The serious and critical axe-core violations of the current page.
async fn axe(c: &Client) -> Vec<serde_json::Value> {
    let path = std::env::var("AXE_CORE_JS").unwrap_or_else(|_| {
        panic!("AXE_CORE_JS is not set: dev/test installs axe-core (npm) and sets it; run the tests with dev/test")
    });
    let source = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read axe-core at {path}: {e}"));
    c.execute(&format!("{source}\nreturn true;"), vec![]).await.expect("axe-core loads");
    let found = c
        .execute_async(
            "const done = arguments[arguments.length - 1];\
             axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations\
               .filter(v => v.impact === 'serious' || v.impact === 'critical')\
               .map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}))))\
             .catch(e => done([{id: 'axe-failed', help: String(e)}]));",
            vec![],
        )
        .await
        .expect("axe-core runs");
    found.as_array().cloned().unwrap_or_default()
}

/// Where screenshots go: `SCREENSHOT_DIR` (relative to the workspace) or a temporary folder.
fn screenshot_dir() -> std::path::PathBuf {
    let dir = match std::env::var("SCREENSHOT_DIR") {
        Ok(dir) if std::path::Path::new(&dir).is_absolute() => std::path::PathBuf::from(dir),
        Ok(dir) => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(dir),
        Err(_) => std::env::temp_dir().join("ticketing-screenshots"),
    };
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The whole page at 375 and 1440 pixels wide.
async fn photograph(c: &Client, name: &str) {
    let dir = screenshot_dir();
    for width in [375u32, 1440] {
        c.set_window_size(width, 700).await.unwrap();
        // The window's size includes the browser's own frame: add it to the page's height.
        let sizes = c
            .execute("return [document.documentElement.scrollHeight, window.outerHeight - window.innerHeight]", vec![])
            .await
            .unwrap();
        let page = sizes[0].as_u64().unwrap_or(700);
        let frame = sizes[1].as_u64().unwrap_or(0);
        let height = u32::try_from(page + frame).unwrap_or(700).clamp(400, 5000);
        c.set_window_size(width, height).await.unwrap();
        let png = c.screenshot().await.unwrap();
        std::fs::write(dir.join(format!("{name}-{width}.png")), png).unwrap();
    }
    c.set_window_size(1440, 1000).await.unwrap();
}

/// Checks the current page with axe-core and photographs it; collects what axe found.
async fn inspect(c: &Client, name: &str, problems: &mut Vec<String>) {
    for violation in axe(c).await {
        problems.push(format!("{name}: {violation}"));
    }
    photograph(c, name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_signed_in_and_out_has_no_serious_accessibility_violation() {
    let platform = platform(WINDOW).await;
    let driver = Driver::start().await;
    let mut problems = Vec::new();
    let anonymous = driver.browser(Browser::default()).await;
    let seller = driver.browser(Browser::default()).await;
    let buyer = driver.browser(Browser::default()).await;

    // Signed out, before anything is for sale.
    go(&anonymous, &platform, "/").await;
    inspect(&anonymous, "home-empty", &mut problems).await;
    let seller_api = platform.user("seller@test.com").await;
    for (title, price) in [("Sunset Sessions: an evening of jazz", 35.0), ("City Marathon — grandstand seat", 60.0)] {
        platform.ticket(&seller_api, title, price).await;
    }
    go(&anonymous, &platform, "/auth/signup").await;
    inspect(&anonymous, "signup", &mut problems).await;
    go(&anonymous, &platform, "/auth/signin").await;
    inspect(&anonymous, "signin", &mut problems).await;
    go(&anonymous, &platform, "/no/such/page").await;
    inspect(&anonymous, "not-found", &mut problems).await;

    // A seller.
    sign_up(&seller, &platform, "lister@test.com").await;
    go(&seller, &platform, "/tickets/new").await;
    inspect(&seller, "sell", &mut problems).await;
    fill(&seller, "#price", "12.345").await;
    follow(&seller, "form.form button[type=submit]").await;
    find(&seller, "#title-error").await;
    inspect(&seller, "sell-errors", &mut problems).await;
    let ticket = sell(&seller, &platform, "Rooftop Cinema: Casablanca", "18.50").await;
    inspect(&seller, "ticket-mine", &mut problems).await;
    go(&seller, &platform, &format!("/tickets/{ticket}/edit")).await;
    inspect(&seller, "edit", &mut problems).await;

    // A buyer.
    sign_up(&buyer, &platform, "watcher@test.com").await;
    go(&buyer, &platform, "/orders").await;
    inspect(&buyer, "orders-empty", &mut problems).await;
    platform.wait_until_reservable(&ticket).await;
    go(&buyer, &platform, "/").await;
    inspect(&buyer, "home", &mut problems).await;
    go(&buyer, &platform, &format!("/tickets/{ticket}")).await;
    inspect(&buyer, "ticket", &mut problems).await;
    follow(&buyer, "[data-buy]").await;
    find(&buyer, "[data-countdown]").await;
    inspect(&buyer, "order", &mut problems).await;
    go(&seller, &platform, &format!("/tickets/{ticket}")).await;
    inspect(&seller, "ticket-reserved", &mut problems).await;
    go(&anonymous, &platform, &format!("/tickets/{ticket}")).await;
    inspect(&anonymous, "ticket-signed-out", &mut problems).await;
    go(&buyer, &platform, &format!("/tickets/{ticket}/edit")).await;
    inspect(&buyer, "not-yours", &mut problems).await;
    go(&buyer, &platform, "/orders").await;
    follow(&buyer, ".orders-table tbody a").await;
    pay(&buyer, "tok_chargeDeclined").await;
    find(&buyer, ".notice-error").await;
    inspect(&buyer, "order-declined", &mut problems).await;
    pay(&buyer, "tok_visa").await;
    find(&buyer, ".result-success").await;
    inspect(&buyer, "order-paid", &mut problems).await;
    go(&buyer, &platform, "/orders").await;
    inspect(&buyer, "orders", &mut problems).await;
    go(&anonymous, &platform, "/").await;
    eventually_text(&anonymous, &format!("[data-ticket-id=\"{ticket}\"] [data-status]"), true, |t| t == "Sold").await;
    inspect(&anonymous, "home-signed-out", &mut problems).await;

    for c in [anonymous, seller, buyer] {
        c.close().await.unwrap();
    }
    assert!(problems.is_empty(), "axe-core found serious or critical violations:\n{}", problems.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_blog_signed_in_and_out_has_no_serious_accessibility_violation() {
    let platform = support::blog_platform().await;
    let driver = Driver::start().await;
    let mut problems = Vec::new();
    let anonymous = driver.browser(Browser::default()).await;
    let reader = driver.browser(Browser::default()).await;
    go(&anonymous, &platform, "/blog").await;
    inspect(&anonymous, "blog-empty", &mut problems).await;

    // A post with an approved and a rejected comment, written through the API.
    let writer = platform.user("writer@test.com").await;
    let api = |path: &str, body: serde_json::Value| {
        platform.http.post(platform.url(path)).header("cookie", &writer).json(&body).send()
    };
    let post: serde_json::Value =
        api("/api/posts", serde_json::json!({"title": "Notes from the first night of the tour"}))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let comments = format!("/api/posts/{}/comments", post["id"].as_str().unwrap());
    for content in ["What a show, the encore was worth the wait.", "The orange lights were too bright."] {
        // The comments service learns of the post from post.created, a moment later.
        let sent = common::testing::eventually(Duration::from_secs(15), || async {
            let response = api(&comments, serde_json::json!({"content": content})).await.ok()?;
            (response.status() == 201).then_some(())
        })
        .await;
        assert!(sent.is_some(), "the comment {content:?} was never taken");
    }
    let moderated = common::testing::eventually(Duration::from_secs(15), || async {
        let posts: serde_json::Value =
            platform.http.get(platform.url("/api/query/posts")).send().await.ok()?.json().await.ok()?;
        let statuses: Vec<&str> =
            posts[0]["comments"].as_array()?.iter().filter_map(|c| c["status"].as_str()).collect();
        (statuses.len() == 2 && !statuses.contains(&"pending")).then_some(())
    })
    .await;
    assert!(moderated.is_some(), "both comments moderated");

    go(&anonymous, &platform, "/blog").await;
    inspect(&anonymous, "blog-signed-out", &mut problems).await;
    sign_up(&reader, &platform, "reader@test.com").await;
    go(&reader, &platform, "/blog").await;
    inspect(&reader, "blog", &mut problems).await;

    for c in [anonymous, reader] {
        c.close().await.unwrap();
    }
    assert!(problems.is_empty(), "axe-core found serious or critical violations:\n{}", problems.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_listing_and_ticket_page_show_a_reservation_made_elsewhere_without_a_reload() {
    let platform = platform(WINDOW).await;
    let seller = platform.user("seller@test.com").await;
    let ticket = platform.ticket(&seller, "Live Gig", 50.0).await;
    let buyer = platform.user("fast@test.com").await;
    platform.wait_until_reservable(&ticket).await;
    let driver = Driver::start().await;
    let watching = driver.browser(Browser::default()).await;
    let looking = driver.browser(Browser::default()).await;
    sign_up(&looking, &platform, "slow@test.com").await;
    go(&watching, &platform, "/").await;
    go(&looking, &platform, &format!("/tickets/{ticket}")).await;
    let card = format!("[data-ticket-id=\"{ticket}\"] [data-status]");
    assert_eq!(text(&watching, &card).await, "Available");
    assert!(find(&looking, "[data-buy]").await.is_enabled().await.unwrap());
    let marker: serde_json::Value = watching.execute("window.__same_page = 1; return 1", vec![]).await.unwrap();
    assert_eq!(marker, 1);

    // Someone else reserves it.
    let reserved = platform
        .http
        .post(platform.url("/api/orders"))
        .header("cookie", &buyer)
        .json(&serde_json::json!({"ticketId": ticket}))
        .send()
        .await
        .unwrap();
    assert_eq!(reserved.status(), 201);

    let badge = eventually_text(&watching, &card, false, |t| t == "Reserved").await;
    assert_eq!(badge, "Reserved", "the badge changed in place");
    let same_page: serde_json::Value = watching.execute("return window.__same_page || 0", vec![]).await.unwrap();
    assert_eq!(same_page, 1, "without a reload");
    let buy = find(&looking, "[data-buy]").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while buy.is_enabled().await.unwrap() {
        assert!(tokio::time::Instant::now() < deadline, "the Buy button was never greyed out");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(text(&looking, "[data-live-note]").await.contains("just reserved"));
    watching.close().await.unwrap();
    looking.close().await.unwrap();
}
