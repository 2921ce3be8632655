//! The flash sale: the minute a popular sale opens. Many buyers, few tickets, everyone at
//! once (`bench-tool flash-sale CONFIG_JSON`, driven by `bench/run --scenario flash-sale`).
//!
//! A seller lists the tickets; once every service knows them, the buyers come, a fixed
//! number at a time. Each buyer looks at the listing through the query service
//! (`GET /api/query/tickets?status=available`), tries to reserve a ticket that looks
//! available (`POST /api/orders`), picks another on `Ticket is already reserved`, and pays
//! (`POST /api/payments`) for what it got. A share of the buyers of a ticket's first
//! reservation let it expire instead; the ticket comes back on sale after the window and
//! is resold. A buyer who finds nothing available looks again, until every ticket is paid.
//! With `followFeed`, each concurrent buyer also follows the live feed
//! (`GET /api/query/tickets/events`) and skips tickets it says are reserved.
//!
//! What the bench knows for certain (the 201s it received) is the truth the rest is
//! measured against:
//! - **staleness**: for each reservation, the time from its 201 until the query service's
//!   read model says the ticket is reserved (a change stream on its `tickets`
//!   collection); and how often a buyer was shown "available" for a ticket the bench had
//!   already been told was reserved;
//! - **the audit** (the `ops` crate) once the platform is quiet, plus a check that every
//!   accepted order and payment reached every service that should hold it;
//! - **the ceiling**: before the sale, the same reservations (a find, then the
//!   reservation's transaction) made directly with the driver against the same server.
//!
//! Prints one JSON object; progress goes to stderr.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bson::doc;
use bson::oid::ObjectId;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::summary;

/// What the sale is, and where the platform is.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    pub tickets_url: String,
    pub orders_url: String,
    pub payments_url: String,
    pub query_url: String,
    /// The services' JWT key: the bench issues its buyers' sessions itself (sign-up is
    /// measured elsewhere, and argon2 would dominate the sale's setup).
    pub jwt_key: String,
    /// The storage server without a database (`mongodb://host:port/?directConnection=true`).
    pub mongo_base: String,
    /// Services with a storage server of their own, as deployed (one MongoDB per service):
    /// service name to its server, as `mongo_base`. The others use `mongo_base`; the
    /// ceiling runs on the orders service's server.
    #[serde(default)]
    pub mongo_servers: std::collections::HashMap<String, String>,
    /// The services' databases are `<prefix>tickets`, `<prefix>orders`, ...
    pub db_prefix: String,
    pub nats_url: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default = "defaults::tickets")]
    pub tickets: usize,
    #[serde(default = "defaults::buyers")]
    pub buyers: usize,
    #[serde(default = "defaults::concurrency")]
    pub concurrency: usize,
    /// The share of a ticket's first buyers who let the reservation expire.
    #[serde(default = "defaults::expire_share")]
    pub expire_share: f64,
    /// The orders service's reservation window (`EXPIRATION_WINDOW_SECONDS`).
    #[serde(default = "defaults::window")]
    pub window_seconds: u64,
    /// Buyers follow the live feed and skip tickets it says are reserved.
    #[serde(default)]
    pub follow_feed: bool,
    /// Measure the direct-driver ceiling first.
    #[serde(default)]
    pub ceiling: bool,
    /// Only the audit's verdict matters (CI): no ceiling, and the verdict decides the
    /// exit status.
    #[serde(default)]
    pub audit_only: bool,
    #[serde(default = "defaults::seed")]
    pub seed: u64,
    /// The sale is abandoned (and reported unfinished) after this long.
    #[serde(default = "defaults::deadline")]
    pub deadline_seconds: u64,
}

mod defaults {
    pub fn tickets() -> usize {
        200
    }
    pub fn buyers() -> usize {
        1000
    }
    pub fn concurrency() -> usize {
        64
    }
    pub fn expire_share() -> f64 {
        0.1
    }
    pub fn window() -> u64 {
        5
    }
    pub fn seed() -> u64 {
        21
    }
    pub fn deadline() -> u64 {
        600
    }
}

/// Listing page size: what a buyer sees of the sale at once.
const PAGE: usize = 20;
/// How long a buyer who sees nothing available waits before looking again (polling).
const POLL_PAUSE: Duration = Duration::from_millis(500);

/// One reservation attempt.
#[derive(Debug, Clone)]
struct Attempt {
    at: f64,
    latency_ms: f64,
    reserved: bool,
}

/// One look at the listing.
#[derive(Debug, Clone)]
struct Look {
    at: f64,
    latency_ms: f64,
    /// Tickets the buyer took for available (the listing, less what the feed said).
    shown: usize,
    /// Of those, tickets the bench already knew to be reserved when the look began.
    stale: usize,
}

/// What the bench knows of one ticket.
#[derive(Debug, Default)]
struct TicketTruth {
    /// The order holding it, and when its 201 came back.
    holder: Option<(String, f64)>,
    reservations: usize,
}

/// What the bench knows of one accepted order.
#[derive(Debug, Clone)]
struct OrderTruth {
    ticket: String,
    reserved_at: f64,
}

#[derive(Debug, Default)]
struct Log {
    attempts: Vec<Attempt>,
    looks: Vec<Look>,
    payments: Vec<(f64, f64)>,
    /// Reservations left to expire, when the buyer decided so.
    let_expire: Vec<f64>,
    /// Unexpected answers, by kind (`POST /api/orders 500`...), with a first example.
    unexpected: HashMap<String, (u64, String)>,
    payment_not_yet_known: u64,
    payment_refused_expired: u64,
    /// A 201 for a ticket whose previous holder was still active: seen by a client.
    double_bookings_seen: Vec<String>,
}

struct State {
    config: Config,
    client: reqwest::Client,
    started: Instant,
    tickets: Mutex<HashMap<String, TicketTruth>>,
    orders: Mutex<HashMap<String, OrderTruth>>,
    /// First moment the query read model said the order's ticket was reserved by it.
    query_saw: Mutex<HashMap<String, f64>>,
    /// Orders left to expire (or paid too late), not yet seen cancelled.
    expiring: Mutex<Vec<String>>,
    /// Moment the bench saw the orders database cancel the order (expiry).
    cancelled: Mutex<HashMap<String, f64>>,
    /// Per concurrent buyer following the feed: first moment its stream said each order
    /// holds its ticket.
    feed_saw: Mutex<Vec<HashMap<String, f64>>>,
    log: Mutex<Log>,
    reserved_once: AtomicUsize,
    paid: AtomicUsize,
    sold_out_at: Mutex<Option<f64>>,
    all_paid_at: Mutex<Option<f64>>,
    over: AtomicBool,
    over_notify: Notify,
    progress: progress::Progress,
    orders_db: mongodb::Database,
}

impl State {
    fn now(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    fn unexpected(&self, kind: String, example: String) {
        let mut log = self.log.lock().expect("log lock");
        let entry = log.unexpected.entry(kind).or_insert((0, example));
        entry.0 += 1;
    }

    fn is_over(&self) -> bool {
        self.over.load(Ordering::SeqCst)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The storage servers of the services: each service's own, or the shared one.
struct Servers {
    shared: mongodb::Client,
    own: std::collections::HashMap<String, mongodb::Client>,
    prefix: String,
}

impl Servers {
    async fn connect(config: &Config) -> anyhow::Result<Self> {
        let mut own = std::collections::HashMap::new();
        for (service, uri) in &config.mongo_servers {
            own.insert(service.clone(), mongodb::Client::with_uri_str(uri).await?);
        }
        let shared = mongodb::Client::with_uri_str(&config.mongo_base).await?;
        Ok(Self { shared, own, prefix: config.db_prefix.clone() })
    }

    /// The client of `service`'s server.
    fn client(&self, service: &str) -> mongodb::Client {
        self.own.get(service).unwrap_or(&self.shared).clone()
    }

    /// `service`'s database.
    fn db(&self, service: &str) -> mongodb::Database {
        self.client(service).database(&format!("{}{service}", self.prefix))
    }
}

/// Runs the sale and prints its report.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let mongo = Servers::connect(&config).await?;
    let db = |name: &str| mongo.db(name);
    let sessions =
        common::Sessions::new(&secrecy::SecretString::from(config.jwt_key.clone()), Duration::from_secs(3600), false);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(config.concurrency * 2)
        .timeout(Duration::from_secs(30))
        .build()?;

    let ceiling = if config.ceiling && !config.audit_only {
        eprintln!("[flash sale] ceiling: {} reservations made directly with the driver", config.tickets);
        let orders = mongo.client("orders");
        Some(ceiling(&orders, &format!("{}ceiling", config.db_prefix), config.tickets, config.concurrency).await?)
    } else {
        None
    };

    // The seller lists the tickets; the sale opens once query and orders know them all.
    let seller = ObjectId::new().to_hex();
    let (seller_token, _) = sessions.issue(&seller, "seller@flash.test")?;
    let listed = list_tickets(&client, &config, &seller_token).await?;
    wait_until_known(&db("query"), &db("orders"), listed.len()).await?;

    let buyers: Vec<String> = (0..config.buyers)
        .map(|n| {
            let id = ObjectId::new().to_hex();
            sessions.issue(&id, &format!("buyer{n}@flash.test")).map(|(token, _)| token)
        })
        .collect::<Result<_, _>>()?;

    let progress = progress::Progress::new(
        if config.follow_feed { "flash sale, buyers following the feed" } else { "flash sale" },
        "tickets paid",
        config.tickets as u64,
    );
    let state = Arc::new(State {
        client: client.clone(),
        started: Instant::now(),
        tickets: Mutex::new(listed.iter().map(|id| (id.clone(), TicketTruth::default())).collect()),
        orders: Mutex::default(),
        query_saw: Mutex::default(),
        expiring: Mutex::default(),
        cancelled: Mutex::default(),
        feed_saw: Mutex::new(vec![HashMap::new(); config.concurrency]),
        log: Mutex::default(),
        reserved_once: AtomicUsize::new(0),
        paid: AtomicUsize::new(0),
        sold_out_at: Mutex::default(),
        all_paid_at: Mutex::default(),
        over: AtomicBool::new(false),
        over_notify: Notify::new(),
        progress,
        orders_db: db("orders"),
        config: config.clone(),
    });
    let stop = CancellationToken::new();
    let watchers = watch(&state, &db("query"), &db("orders"), stop.clone()).await?;

    // Buyers following the feed: one stream per concurrent buyer (a browser tab each),
    // open before the sale.
    let mut feeds: Vec<Arc<Mutex<HashMap<String, String>>>> = Vec::new();
    let mut feed_tasks = Vec::new();
    if config.follow_feed {
        for slot in 0..config.concurrency {
            let view: Arc<Mutex<HashMap<String, String>>> = Arc::default();
            let (view2, state2) = (view.clone(), state.clone());
            let task = crate::sse::follow(&client, &config.query_url, stop.clone(), move |change, at| {
                let at = at.saturating_duration_since(state2.started).as_secs_f64();
                if change.status != "available"
                    && let Some(order) = &change.order_id
                {
                    lock(&state2.feed_saw)[slot].entry(order.clone()).or_insert(at);
                }
                lock(&view2).insert(change.id, change.status);
            })
            .await?;
            feeds.push(view);
            feed_tasks.push(task);
        }
    }

    let next_buyer = Arc::new(AtomicUsize::new(0));
    let deadline = state.started + Duration::from_secs(config.deadline_seconds);
    let buyers = Arc::new(buyers);
    let slots: Vec<_> = (0..config.concurrency)
        .map(|slot| {
            let (state, next_buyer, buyers) = (state.clone(), next_buyer.clone(), buyers.clone());
            let feed = feeds.get(slot).cloned();
            let mut rng = fastrand::Rng::with_seed(config.seed.wrapping_add(slot as u64));
            tokio::spawn(async move {
                loop {
                    let n = next_buyer.fetch_add(1, Ordering::SeqCst);
                    if n >= buyers.len() || state.is_over() || Instant::now() > deadline {
                        break;
                    }
                    buy(&state, &buyers[n], feed.as_ref(), &mut rng, deadline).await;
                }
            })
        })
        .collect();
    for slot in slots {
        slot.await?;
    }
    // Every buyer came; tickets still waiting to expire are bought by late buyers.
    while !state.is_over() && Instant::now() < deadline {
        let (token, _) = sessions.issue(&ObjectId::new().to_hex(), "late@flash.test")?;
        let mut rng = fastrand::Rng::with_seed(config.seed ^ 0x5eed);
        buy(&state, &token, None, &mut rng, deadline).await;
    }
    let finished = state.is_over();
    state.progress.finish(if finished { "every ticket paid" } else { "deadline passed" });

    // The platform settles; then the audit.
    let audit = settle_and_audit(&state, &mongo, &config).await?;
    stop.cancel();
    for task in feed_tasks {
        drop(task.await);
    }
    for task in watchers {
        drop(task.await);
    }

    let report = report(&state, finished, ceiling, audit);
    let clean = report["audit"]["verdict"] == "clean";
    println!("{report}");
    if config.audit_only && !clean {
        anyhow::bail!("the flash sale's audit is not clean: {}", report["audit"]);
    }
    Ok(())
}

/// The seller lists the sale's tickets (a few requests at a time); returns their ids.
async fn list_tickets(client: &reqwest::Client, config: &Config, token: &str) -> anyhow::Result<Vec<String>> {
    let requests = (0..config.tickets).map(|n| {
        let request = client
            .post(format!("{}/api/tickets", config.tickets_url))
            .bearer_auth(token)
            .json(&json!({"title": format!("Flash sale seat {n}"), "price": 40}));
        async move {
            let response = request.send().await?;
            anyhow::ensure!(response.status() == 201, "listing a ticket answered {}", response.status());
            let body: Value = response.json().await?;
            Ok(body["id"].as_str().unwrap_or_default().to_owned())
        }
    });
    futures::stream::iter(requests).buffer_unordered(8).collect::<Vec<_>>().await.into_iter().collect()
}

/// Waits until the query read model shows every ticket available and the orders replica
/// holds them all: the sale opens on a platform that knows what it sells.
async fn wait_until_known(query: &mongodb::Database, orders: &mongodb::Database, count: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let shown =
            query.collection::<bson::Document>("tickets").count_documents(doc! { "status": "available" }).await?;
        let replicated = orders.collection::<bson::Document>("tickets").count_documents(doc! {}).await?;
        if shown as usize >= count && replicated as usize >= count {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the listed tickets never reached query ({shown}) and orders ({replicated})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What the bench learns from the platform meanwhile: the read model's ticket statuses
/// (a change stream: staleness), and when the orders left to expire were cancelled (a poll
/// of those few orders, which loads the server less than a change stream on every order).
async fn watch(
    state: &Arc<State>,
    query: &mongodb::Database,
    orders: &mongodb::Database,
    stop: CancellationToken,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut statuses = query.collection::<bson::Document>("tickets").watch().await?;
    let orders = orders.collection::<bson::Document>("orders");
    let (s1, s2, stop1, stop2) = (state.clone(), state.clone(), stop.clone(), stop);
    let query_task = tokio::spawn(async move {
        loop {
            let change = tokio::select! {
                change = statuses.next() => change,
                () = stop1.cancelled() => return,
            };
            let Some(Ok(change)) = change else { return };
            let at = s1.now();
            let fields = change.update_description.map(|u| u.updated_fields).or(change.full_document);
            if let Some(fields) = fields
                && fields.get_str("status").is_ok_and(|s| s != "available")
                && let Ok(order) = fields.get_str("orderId")
            {
                lock(&s1.query_saw).entry(order.to_owned()).or_insert(at);
            }
        }
    });
    let orders_task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop2.cancelled() => return,
            }
            let waiting: Vec<ObjectId> =
                lock(&s2.expiring).iter().filter_map(|id| ObjectId::parse_str(id).ok()).collect();
            if waiting.is_empty() {
                continue;
            }
            let Ok(mut cursor) = orders
                .find(doc! { "_id": { "$in": waiting }, "status": "cancelled" })
                .projection(doc! { "_id": 1 })
                .await
            else {
                continue;
            };
            let at = s2.now();
            while let Some(Ok(cancelled)) = cursor.next().await {
                let Ok(id) = cancelled.get_object_id("_id") else { continue };
                let order = id.to_hex();
                lock(&s2.expiring).retain(|o| *o != order);
                lock(&s2.cancelled).insert(order.clone(), at);
                let ticket = lock(&s2.orders).get(&order).map(|o| o.ticket.clone());
                if let Some(ticket) = ticket {
                    let mut tickets = lock(&s2.tickets);
                    let truth = tickets.entry(ticket).or_default();
                    if truth.holder.as_ref().is_some_and(|(holder, _)| *holder == order) {
                        truth.holder = None;
                    }
                }
            }
        }
    });
    Ok(vec![query_task, orders_task])
}

#[derive(Debug, Deserialize)]
struct Page {
    items: Vec<PageItem>,
}

#[derive(Debug, Deserialize)]
struct PageItem {
    id: String,
}

/// One buyer: looks, reserves what looks available, then pays or lets it expire.
async fn buy(
    state: &Arc<State>,
    token: &str,
    feed: Option<&Arc<Mutex<HashMap<String, String>>>>,
    rng: &mut fastrand::Rng,
    deadline: Instant,
) {
    let config = &state.config;
    let reserved = 'looking: loop {
        if state.is_over() || Instant::now() > deadline {
            return;
        }
        let Some(mut candidates) = look(state, feed).await else {
            tokio::time::sleep(POLL_PAUSE).await;
            continue;
        };
        if candidates.is_empty() {
            // Nothing looks available: wait for tickets to come back (or the end).
            tokio::select! {
                () = tokio::time::sleep(POLL_PAUSE) => {}
                () = state.over_notify.notified() => {}
            }
            continue;
        }
        rng.shuffle(&mut candidates);
        for ticket in candidates {
            if feed.is_some_and(|view| lock(view).get(&ticket).is_some_and(|s| s != "available")) {
                continue; // the feed said it went meanwhile
            }
            match reserve(state, token, &ticket).await {
                Some(order) => break 'looking (ticket, order),
                None if state.is_over() => return,
                None => {}
            }
        }
    };
    let (ticket, order) = reserved;
    let first_sale = lock(&state.tickets).get(&ticket).is_some_and(|t| t.reservations == 1);
    if first_sale && rng.f64() < config.expire_share {
        lock(&state.log).let_expire.push(state.now());
        lock(&state.expiring).push(order);
        return;
    }
    pay(state, token, &order).await;
}

/// A look at the listing; the tickets that look available to this buyer (`None` when
/// the listing failed).
async fn look(state: &Arc<State>, feed: Option<&Arc<Mutex<HashMap<String, String>>>>) -> Option<Vec<String>> {
    let began = state.now();
    let sent = Instant::now();
    let response = state
        .client
        .get(format!("{}/api/query/tickets?status=available&limit={PAGE}", state.config.query_url))
        .send()
        .await;
    let latency_ms = sent.elapsed().as_secs_f64() * 1e3;
    let page: Page = match response {
        Ok(r) if r.status() == 200 => match r.json().await {
            Ok(page) => page,
            Err(err) => {
                state.unexpected("GET /api/query/tickets undecodable".into(), err.to_string());
                return None;
            }
        },
        Ok(r) => {
            let status = r.status();
            state.unexpected(format!("GET /api/query/tickets {status}"), r.text().await.unwrap_or_default());
            return None;
        }
        Err(err) => {
            state.unexpected("GET /api/query/tickets failed".into(), err.to_string());
            return None;
        }
    };
    let shown: Vec<String> = page
        .items
        .into_iter()
        .map(|item| item.id)
        .filter(|id| feed.is_none_or(|view| lock(view).get(id).is_none_or(|s| s == "available")))
        .collect();
    let stale = {
        let tickets = lock(&state.tickets);
        shown
            .iter()
            .filter(|id| tickets.get(*id).and_then(|t| t.holder.as_ref()).is_some_and(|(_, at)| *at < began))
            .count()
    };
    lock(&state.log).looks.push(Look { at: began, latency_ms, shown: shown.len(), stale });
    Some(shown)
}

/// `POST /api/orders`; the order id on a 201.
async fn reserve(state: &Arc<State>, token: &str, ticket: &str) -> Option<String> {
    let sent = Instant::now();
    let response = state
        .client
        .post(format!("{}/api/orders", state.config.orders_url))
        .bearer_auth(token)
        .json(&json!({ "ticketId": ticket }))
        .send()
        .await;
    let latency_ms = sent.elapsed().as_secs_f64() * 1e3;
    let at = state.now();
    let response = match response {
        Ok(response) => response,
        Err(err) => {
            state.unexpected("POST /api/orders failed".into(), err.to_string());
            return None;
        }
    };
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    lock(&state.log).attempts.push(Attempt { at, latency_ms, reserved: status == 201 });
    if status == 201 {
        let order = body["id"].as_str().unwrap_or_default().to_owned();
        reserved(state, ticket, &order, at).await;
        return Some(order);
    }
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    if !(status == 400 && message == "Ticket is already reserved") {
        state.unexpected(format!("POST /api/orders {status}"), body.to_string());
    }
    None
}

/// Bookkeeping of a 201: the ticket's holder, sold-out time, a double booking if the
/// previous holder is still active in the orders database.
async fn reserved(state: &Arc<State>, ticket: &str, order: &str, at: f64) {
    lock(&state.orders).insert(order.to_owned(), OrderTruth { ticket: ticket.to_owned(), reserved_at: at });
    let previous = {
        let mut tickets = lock(&state.tickets);
        let truth = tickets.entry(ticket.to_owned()).or_default();
        truth.reservations += 1;
        if truth.reservations == 1 {
            let reserved = state.reserved_once.fetch_add(1, Ordering::SeqCst) + 1;
            state.progress.note(format!("{reserved} reserved"));
            if reserved == state.config.tickets {
                *lock(&state.sold_out_at) = Some(at);
            }
        }
        truth.holder.replace((order.to_owned(), at))
    };
    // A resale: the previous holder must have been cancelled (the bench may not have seen
    // the cancellation yet; the orders database knows).
    if let Some((previous, _)) = previous
        && !lock(&state.cancelled).contains_key(&previous)
    {
        let id = ObjectId::parse_str(&previous).ok();
        let status = match id {
            Some(id) => state
                .orders_db
                .collection::<bson::Document>("orders")
                .find_one(doc! { "_id": id })
                .await
                .ok()
                .flatten()
                .and_then(|o| o.get_str("status").ok().map(str::to_owned)),
            None => None,
        };
        if status.as_deref() != Some("cancelled") {
            lock(&state.log)
                .double_bookings_seen
                .push(format!("ticket {ticket}: order {order} accepted while {previous} is {status:?}"));
        }
    }
}

/// `POST /api/payments` with the test card; a 404 (payments has not heard of the order
/// yet) is asked again shortly.
async fn pay(state: &Arc<State>, token: &str, order: &str) {
    let sent = Instant::now();
    let give_up = sent + Duration::from_secs(10);
    let mut pause = Duration::from_millis(25);
    loop {
        let response = state
            .client
            .post(format!("{}/api/payments", state.config.payments_url))
            .bearer_auth(token)
            .json(&json!({ "token": "tok_visa", "orderId": order }))
            .send()
            .await;
        let response = match response {
            Ok(response) => response,
            Err(err) => {
                state.unexpected("POST /api/payments failed".into(), err.to_string());
                return;
            }
        };
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status == 201 {
            let at = state.now();
            lock(&state.log).payments.push((at, sent.elapsed().as_secs_f64() * 1e3));
            let paid = state.paid.fetch_add(1, Ordering::SeqCst) + 1;
            state.progress.set(paid as u64);
            if paid == state.config.tickets {
                *lock(&state.all_paid_at) = Some(at);
                state.over.store(true, Ordering::SeqCst);
                state.over_notify.notify_waiters();
            }
            return;
        }
        if status == 404 && Instant::now() < give_up {
            // Payments has not heard of the order yet: ask again, less and less often.
            lock(&state.log).payment_not_yet_known += 1;
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(400));
            continue;
        }
        if status == 400 && body["errors"][0]["message"] == "Order has expired" {
            // Paid too late: the ticket comes back on sale and is resold.
            lock(&state.log).payment_refused_expired += 1;
            lock(&state.expiring).push(order.to_owned());
            return;
        }
        state.unexpected(format!("POST /api/payments {status}"), body.to_string());
        return;
    }
}

/// Waits for the platform to settle, then audits it until clean (or a minute passes).
async fn settle_and_audit(state: &Arc<State>, mongo: &Servers, config: &Config) -> anyhow::Result<Value> {
    let db = |name: &str| mongo.db(name);
    // The flash sale runs no blog.
    let dbs = ops::Databases {
        tickets: db("tickets"),
        orders: db("orders"),
        payments: db("payments"),
        query: db("query"),
        blog: None,
    };
    let bus = common::events::EventBus::connect(
        &common::events::NatsSettings {
            url: config.nats_url.clone().into(),
            namespace: common::events::Namespace::new(Some(&config.namespace)).map_err(anyhow::Error::msg)?,
            startup_timeout: Duration::from_secs(10),
            limits: common::events::StreamLimits::default(),
        },
        "bench-flash-audit",
    )
    .await?;
    let settling = Instant::now();
    let orders: Vec<String> = lock(&state.orders).keys().cloned().collect();
    let tickets: Vec<String> = lock(&state.tickets).keys().cloned().collect();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let report = ops::audit(&dbs, ops::dead_letter_count(&bus).await?).await?;
        let lost = lost_events(&dbs, &tickets, &orders).await?;
        let clean = report.findings.is_empty() && lost.is_empty();
        if clean || settling.elapsed() > Duration::from_secs(60) {
            let double_bookings = report.findings.iter().filter(|f| f.kind == "double_booking").count()
                + lock(&state.log).double_bookings_seen.len();
            let findings: Vec<Value> =
                report.findings.iter().take(20).map(|f| json!({"kind": f.kind, "detail": f.detail})).collect();
            return Ok(json!({
                "verdict": if clean && double_bookings == 0 { "clean" } else { "inconsistent" },
                "double_bookings": double_bookings,
                "lost_events": lost.len(),
                "lost_examples": lost.iter().take(10).collect::<Vec<_>>(),
                "findings": report.findings.len(),
                "finding_examples": findings,
                "dead_letters": report.dead_letters,
                "settled_seconds": settling.elapsed().as_secs_f64(),
                "audit_attempts": attempts,
                "tickets": report.tickets,
                "orders": report.orders,
                "payments": report.payments,
            }));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Accepted writes missing where their events should have taken them: every listed ticket
/// in orders and query, every accepted order in payments and query.
async fn lost_events(dbs: &ops::Databases, tickets: &[String], orders: &[String]) -> anyhow::Result<Vec<String>> {
    async fn missing(
        db: &mongodb::Database,
        collection: &str,
        ids: &[String],
        object_ids: bool,
    ) -> anyhow::Result<Vec<String>> {
        let keys: Vec<bson::Bson> = if object_ids {
            ids.iter().filter_map(|id| ObjectId::parse_str(id).ok()).map(bson::Bson::ObjectId).collect()
        } else {
            ids.iter().cloned().map(bson::Bson::String).collect()
        };
        let mut found = HashSet::new();
        let mut cursor = db
            .collection::<bson::Document>(collection)
            .find(doc! { "_id": { "$in": keys } })
            .projection(doc! { "_id": 1 })
            .await?;
        while let Some(document) = cursor.next().await {
            let document = document?;
            found.insert(match document.get("_id") {
                Some(bson::Bson::ObjectId(id)) => id.to_hex(),
                Some(bson::Bson::String(id)) => id.clone(),
                _ => continue,
            });
        }
        Ok(ids
            .iter()
            .filter(|id| !found.contains(*id))
            .map(|id| format!("{id} not in {}.{collection}", db.name()))
            .collect())
    }
    let mut lost = Vec::new();
    lost.extend(missing(&dbs.orders, "tickets", tickets, true).await?);
    lost.extend(missing(&dbs.query, "tickets", tickets, false).await?);
    lost.extend(missing(&dbs.orders, "orders", orders, true).await?);
    lost.extend(missing(&dbs.payments, "orders", orders, true).await?);
    lost.extend(missing(&dbs.query, "orders", orders, false).await?);
    Ok(lost)
}

/// The direct-driver ceiling: the sale's reservations, each the find and the transaction
/// `POST /api/orders` makes (conditional claim, the buyer's count, order, outbox record),
/// at the same concurrency against the same server, on its own database. Each worker picks among the first page of tickets still free, as a buyer
/// would from a listing that is never stale.
pub async fn ceiling(
    mongo: &mongodb::Client,
    database: &str,
    count: usize,
    concurrency: usize,
) -> anyhow::Result<Value> {
    let db = mongo.database(database);
    db.drop().await?;
    let tickets = db.collection::<bson::Document>("tickets");
    let ids: Vec<ObjectId> = (0..count).map(|_| ObjectId::new()).collect();
    tickets
        .insert_many(
            ids.iter()
                .map(|id| doc! { "_id": id, "title": "seat", "priceCents": 4000, "version": 0, "userId": "seller" }),
        )
        .await?;
    let open: Arc<Mutex<Vec<ObjectId>>> = Arc::new(Mutex::new(ids));
    let started = Instant::now();
    let workers = (0..concurrency).map(|worker| {
        let (mongo, db, open) = (mongo.clone(), db.clone(), open.clone());
        tokio::spawn(async move {
            let tickets = db.collection::<bson::Document>("tickets");
            let (orders, buyers, outbox) = (
                db.collection::<bson::Document>("orders"),
                db.collection::<bson::Document>("buyers"),
                db.collection::<bson::Document>("outbox"),
            );
            let mut rng = fastrand::Rng::with_seed(worker as u64);
            let (mut latencies, mut attempts) = (Vec::new(), 0u64);
            loop {
                // Like a buyer with a perfectly fresh listing: one of the first page of
                // tickets still free.
                let ticket = {
                    let open = lock(&open);
                    if open.is_empty() {
                        break;
                    }
                    open[rng.usize(..open.len().min(PAGE))]
                };
                let sent = Instant::now();
                attempts += 1;
                let found = tickets.find_one(doc! { "_id": ticket }).await?;
                let taken = found.is_none_or(|t| t.get_str("reservedBy").is_ok());
                let reserved = if taken {
                    false
                } else {
                    let direct = Direct {
                        tickets: tickets.clone(),
                        orders: orders.clone(),
                        buyers: buyers.clone(),
                        outbox: outbox.clone(),
                    };
                    direct.reserve(&mongo, ticket).await?
                };
                if reserved {
                    latencies.push(sent.elapsed().as_secs_f64() * 1e3);
                }
                lock(&open).retain(|id| *id != ticket);
            }
            anyhow::Ok((latencies, attempts))
        })
    });
    let mut latencies = Vec::new();
    let mut attempts = 0;
    for worker in futures::future::join_all(workers).await {
        let (l, a) = worker??;
        latencies.extend(l);
        attempts += a;
    }
    let seconds = started.elapsed().as_secs_f64();
    db.drop().await?;
    let reservations = latencies.len();
    let mut out = summary(latencies);
    out["reservations"] = json!(reservations);
    out["attempts"] = json!(attempts);
    out["sold_out_seconds"] = json!(seconds);
    out["reservations_per_second"] = json!(reservations as f64 / seconds);
    Ok(out)
}

/// The collections of the ceiling's reservations.
#[derive(Clone)]
struct Direct {
    tickets: mongodb::Collection<bson::Document>,
    orders: mongodb::Collection<bson::Document>,
    buyers: mongodb::Collection<bson::Document>,
    outbox: mongodb::Collection<bson::Document>,
}

impl Direct {
    /// The transaction of `POST /api/orders` for a new buyer: true when it reserved.
    async fn reserve(self, mongo: &mongodb::Client, ticket: ObjectId) -> mongodb::error::Result<bool> {
        let (buyer, order) = (ObjectId::new().to_hex(), ObjectId::new());
        common::mongo::transaction(mongo, async move |session| {
            let claim = self
                .tickets
                .update_one(
                    doc! { "_id": ticket, "reservedBy": null },
                    doc! { "$set": { "reservedBy": order.to_hex() } },
                )
                .session(&mut *session)
                .await?;
            if claim.modified_count == 0 {
                return Ok(false);
            }
            let active = self
                .buyers
                .find_one_and_update(doc! { "_id": &buyer }, doc! { "$inc": { "active": 1_i64 } })
                .upsert(true)
                .return_document(mongodb::options::ReturnDocument::After)
                .session(&mut *session)
                .await?
                .and_then(|b| b.get_i64("active").ok())
                .unwrap_or(1);
            if active > 5 {
                return Ok(false);
            }
            self.orders
                .insert_one(
                    doc! { "_id": order, "userId": &buyer, "status": "created", "ticketId": ticket, "version": 0 },
                )
                .session(&mut *session)
                .await?;
            let record = doc! {
                "_id": common::events::new_event_id(),
                "subject": "order.created",
                "payload": "{}",
                "createdAt": bson::DateTime::now(),
            };
            self.outbox.insert_one(record).session(&mut *session).await?;
            Ok(true)
        })
        .await
    }
}

/// The figures of the sale, and its second-by-second timeline.
fn report(state: &Arc<State>, finished: bool, ceiling: Option<Value>, audit: Value) -> Value {
    let config = &state.config;
    let log = lock(&state.log);
    let orders = lock(&state.orders);
    let query_saw = lock(&state.query_saw);
    let cancelled = lock(&state.cancelled);
    let sold_out = *lock(&state.sold_out_at);
    let all_paid = *lock(&state.all_paid_at);

    let reserved = log.attempts.iter().filter(|a| a.reserved).count();
    let all: Vec<f64> = log.attempts.iter().map(|a| a.latency_ms).collect();
    let won: Vec<f64> = log.attempts.iter().filter(|a| a.reserved).map(|a| a.latency_ms).collect();
    // Staleness: from the 201 to the read model holding the reservation.
    let mut staleness = Vec::new();
    let mut never_seen = 0;
    for (order, truth) in orders.iter() {
        match query_saw.get(order) {
            Some(at) => staleness.push(((at - truth.reserved_at) * 1e3).max(0.0)),
            None => never_seen += 1,
        }
    }
    // The feed, as the buyers following it saw it: from the 201 to the event.
    let mut feed_delay = Vec::new();
    for seen in lock(&state.feed_saw).iter() {
        for (order, at) in seen {
            if let Some(truth) = orders.get(order) {
                feed_delay.push(((at - truth.reserved_at) * 1e3).max(0.0));
            }
        }
    }
    let shown: usize = log.looks.iter().map(|l| l.shown).sum();
    let stale: usize = log.looks.iter().map(|l| l.stale).sum();
    let stale_looks = log.looks.iter().filter(|l| l.stale > 0).count();
    let sold_out_seconds = sold_out.unwrap_or(f64::NAN);
    let throughput = config.tickets as f64 / sold_out_seconds;
    let ceiling_rate = ceiling.as_ref().and_then(|c| c["reservations_per_second"].as_f64());

    // Second by second.
    let end = log
        .attempts
        .iter()
        .map(|a| a.at)
        .chain(log.payments.iter().map(|p| p.0))
        .chain(cancelled.values().copied())
        .fold(0.0_f64, f64::max);
    let seconds = end.floor() as usize + 1;
    let mut timeline: Vec<Value> = Vec::with_capacity(seconds);
    let bucket = |at: f64| (at.max(0.0).floor() as usize).min(seconds - 1);
    let mut reservations = vec![0u64; seconds];
    let mut refused = vec![0u64; seconds];
    let mut payments = vec![0u64; seconds];
    let mut expiries = vec![0u64; seconds];
    let mut stale_seen = vec![0u64; seconds];
    let mut looks = vec![0u64; seconds];
    let mut staleness_by_second: Vec<Vec<f64>> = vec![Vec::new(); seconds];
    for a in &log.attempts {
        if a.reserved { reservations[bucket(a.at)] += 1 } else { refused[bucket(a.at)] += 1 }
    }
    for (at, _) in &log.payments {
        payments[bucket(*at)] += 1;
    }
    for (order, at) in cancelled.iter() {
        if orders.contains_key(order) {
            expiries[bucket(*at)] += 1;
        }
    }
    for l in &log.looks {
        looks[bucket(l.at)] += 1;
        stale_seen[bucket(l.at)] += l.stale as u64;
    }
    for (order, truth) in orders.iter() {
        if let Some(at) = query_saw.get(order) {
            staleness_by_second[bucket(truth.reserved_at)].push(((at - truth.reserved_at) * 1e3).max(0.0));
        }
    }
    for s in 0..seconds {
        let mut lag = std::mem::take(&mut staleness_by_second[s]);
        lag.sort_by(f64::total_cmp);
        timeline.push(json!({
            "second": s,
            "reserved": reservations[s],
            "refused": refused[s],
            "paid": payments[s],
            "expired": expiries[s],
            "looks": looks[s],
            "stale_seen": stale_seen[s],
            "staleness_p99_ms": if lag.is_empty() { Value::Null } else { json!(crate::percentile(&lag, 99.0)) },
        }));
    }
    let unexpected: serde_json::Map<String, Value> =
        log.unexpected.iter().map(|(k, (n, example))| (k.clone(), json!({"count": n, "example": example}))).collect();
    let unexpected_total: u64 = log.unexpected.values().map(|(n, _)| n).sum();
    json!({
        "mode": if config.follow_feed { "feed" } else { "poll" },
        "tickets": config.tickets,
        "buyers": config.buyers,
        "concurrency": config.concurrency,
        "expire_share": config.expire_share,
        "window_seconds": config.window_seconds,
        "finished": finished,
        "sold_out_seconds": sold_out,
        "all_paid_seconds": all_paid,
        "reservation_throughput_per_second": throughput,
        "ceiling": ceiling,
        "ratio_to_ceiling": ceiling_rate.map(|c| throughput / c),
        "attempts": log.attempts.len(),
        "reservations": reserved,
        "attempts_per_reservation": log.attempts.len() as f64 / reserved.max(1) as f64,
        "reservation_latency": summary(all),
        "reservation_latency_201": summary(won),
        "percentiles_ms": crate::percentiles(log.attempts.iter().map(|a| a.latency_ms).collect()),
        "payments": log.payments.len(),
        "payment_latency": summary(log.payments.iter().map(|p| p.1).collect()),
        "payment_not_yet_known_retries": log.payment_not_yet_known,
        "payment_refused_expired": log.payment_refused_expired,
        "let_expire": log.let_expire.len(),
        "expired": cancelled.keys().filter(|o| orders.contains_key(*o)).count(),
        "resold": lock(&state.tickets).values().filter(|t| t.reservations > 1).count(),
        "looks": log.looks.len(),
        "look_latency": summary(log.looks.iter().map(|l| l.latency_ms).collect()),
        "shown_available": shown,
        "stale_sightings": stale,
        "stale_share": stale as f64 / shown.max(1) as f64,
        "stale_looks": stale_looks,
        "staleness": { "never_seen": never_seen, "percentiles_ms": crate::percentiles(staleness.clone()), "summary": summary(staleness) },
        "feed_delay": summary(feed_delay),
        "unexpected": unexpected,
        "unexpected_total": unexpected_total,
        "audit": audit,
        "timeline": timeline,
    })
}
