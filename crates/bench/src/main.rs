//! `bench-tool`: the measurements `bench/run` cannot make with wrk. Each prints one JSON
//! object on stdout.
//!
//! - `hello PORT`: a minimal axum handler, the HTTP ceiling.
//! - `mongo URI READS WRITE_TXN CONCURRENCY SECONDS`: the MongoDB driver doing a request's
//!   round trips directly (READS finds by id, or an insert pair in a transaction), the
//!   storage ceiling.
//! - `propagation TICKETS_URL COOKIE ORDERS_URI RATE SECONDS`: tickets created over HTTP at
//!   a steady rate; time from each 201 (the write committed) to the orders replica holding
//!   the ticket, seen through a change stream.
//! - `rebuild NATS_URL MONGO_BASE EVENTS`: publishes a history of EVENTS events, then times
//!   a fresh query service rebuilding its read model from it.
//! - `duplicate NATS_URL N`: publishes the last N stored messages of every stream again with
//!   new message ids, so the broker cannot drop them: duplicate deliveries for the fault run.
//! - `bans`, `revocations`, `seed-refresh`: sessions that can be ended (see [`sessions`]).
//! - `flash-sale CONFIG_JSON`: many buyers, few tickets, everyone at once (see [`flash`]).
//! - `feed-latency CONFIG_JSON`: the live feed's delivery time and memory per open stream
//!   (see [`feed`]).
//! - `flood CONFIG_JSON`: a sign-up flood and what legitimate users see meanwhile (see
//!   [`flood`]).
//! - `charts RESULTS_JSON OUT_DIR`: the PNG charts of BENCHMARKS.md (see [`charts`]).
//!
//! A CONFIG_JSON argument is the JSON text itself, or `@path` of a file holding it.
//! Progress of the long ones goes to stderr (a bar on a terminal, plain lines otherwise).

// The tool's output is one JSON object on stdout, read by bench/run.
#![allow(clippy::print_stdout)]

mod charts;
mod feed;
mod flash;
mod flood;
mod sessions;
mod sse;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bson::doc;
use futures::StreamExt;
use serde_json::json;

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// The percentiles the latency charts plot.
pub(crate) const CHART_PERCENTILES: [f64; 10] = [10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9, 99.99, 100.0];

/// `[[percentile, ms], ...]` of the latencies at [`CHART_PERCENTILES`], for the charts.
pub(crate) fn percentiles(mut latencies_ms: Vec<f64>) -> serde_json::Value {
    latencies_ms.sort_by(f64::total_cmp);
    if latencies_ms.is_empty() {
        return json!([]);
    }
    json!(CHART_PERCENTILES.iter().map(|p| json!([p, percentile(&latencies_ms, *p)])).collect::<Vec<_>>())
}

pub(crate) fn summary(mut latencies_ms: Vec<f64>) -> serde_json::Value {
    latencies_ms.sort_by(f64::total_cmp);
    json!({
        "count": latencies_ms.len(),
        "p50_ms": percentile(&latencies_ms, 50.0),
        "p99_ms": percentile(&latencies_ms, 99.0),
        "max_ms": latencies_ms.last().copied().unwrap_or(f64::NAN),
    })
}

async fn hello(port: u16) -> anyhow::Result<()> {
    // `/v1/traces` takes OTLP exports and drops them: the receiver of the tracing scenario.
    let app = axum::Router::new()
        .route("/hello", axum::routing::get(|| async { "hello" }))
        .route("/v1/traces", axum::routing::post(|_: axum::body::Bytes| async { axum::Json(serde_json::json!({})) }));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async { common::shutdown::on_signals().cancelled().await })
        .await?;
    Ok(())
}

async fn mongo(uri: &str, reads: usize, write_txn: bool, concurrency: usize, seconds: u64) -> anyhow::Result<()> {
    let client = mongodb::Client::with_uri_str(uri).await?;
    let db = client.database(&format!("bench_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]));
    let docs = db.collection::<bson::Document>("docs");
    let outbox = db.collection::<bson::Document>("outbox");
    let ids: Vec<bson::oid::ObjectId> = (0..100).map(|_| bson::oid::ObjectId::new()).collect();
    docs.insert_many(ids.iter().map(|id| doc! { "_id": id, "title": "x", "priceCents": 100, "version": 0 })).await?;
    if write_txn {
        // What POST /api/tickets writes, where it writes it: the same indexes (tickets'
        // and the outbox's), a ticket and an outbox record of the same shape and size.
        docs.create_index(mongodb::IndexModel::builder().keys(doc! { "orderId": 1, "_id": 1 }).build()).await?;
        outbox.create_index(mongodb::IndexModel::builder().keys(doc! { "sentAt": 1, "_id": 1 }).build()).await?;
    }
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let workers = (0..concurrency).map(|worker| {
        let (client, docs, outbox, ids) = (client.clone(), docs.clone(), outbox.clone(), ids.clone());
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = worker;
            while Instant::now() < deadline {
                let started = Instant::now();
                if write_txn {
                    let (docs, outbox) = (docs.clone(), outbox.clone());
                    let ticket = bson::oid::ObjectId::new();
                    let payload = format!(
                        r#"{{"id":"{}","version":0,"title":"bench","price":12.5,"userId":"{}"}}"#,
                        ticket.to_hex(),
                        bson::oid::ObjectId::new().to_hex()
                    );
                    common::mongo::transaction(&client, async move |session| {
                        docs.insert_one(
                            doc! { "_id": ticket, "title": "bench", "priceCents": 1250, "userId": "u", "version": 0 },
                        )
                        .session(&mut *session)
                        .await?;
                        let record = doc! {
                            "_id": uuid::Uuid::now_v7().to_string(),
                            "subject": "ticket.created",
                            "payload": &payload,
                            "createdAt": bson::DateTime::now(),
                            "sentAt": bson::Bson::Null,
                        };
                        outbox.insert_one(record).session(&mut *session).await?;
                        Ok(())
                    })
                    .await?;
                }
                for _ in 0..reads {
                    docs.find_one(doc! { "_id": ids[n % ids.len()] }).await?;
                    n += 1;
                }
                latencies.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            anyhow::Ok(latencies)
        })
    });
    let started = Instant::now();
    let mut latencies = Vec::new();
    for worker in futures::future::join_all(workers).await {
        latencies.extend(worker??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    db.drop().await?;
    let mut out = summary(latencies);
    out["requests_per_second"] = json!(out["count"].as_u64().unwrap_or(0) as f64 / elapsed);
    println!("{out}");
    Ok(())
}

async fn propagation(tickets_url: &str, cookie: &str, orders_uri: &str, rate: u64, seconds: u64) -> anyhow::Result<()> {
    let db = mongodb::Client::with_uri_str(orders_uri).await?.default_database().expect("a database in the URI");
    let mut changes = db.collection::<bson::Document>("tickets").watch().await?;
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    tokio::spawn(async move {
        while let Some(Ok(change)) = changes.next().await {
            if let Some(id) = change.document_key.as_ref().and_then(|k| k.get_object_id("_id").ok()) {
                let _ = seen_tx.send((id.to_hex(), Instant::now()));
            }
        }
    });
    let client = reqwest::Client::new();
    let mut interval = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    let mut committed: HashMap<String, Instant> = HashMap::new();
    let mut errors = 0u64;
    let total = rate * seconds;
    let mut requests = futures::stream::FuturesUnordered::new();
    for n in 0..total {
        interval.tick().await;
        let request = client
            .post(format!("{tickets_url}/api/tickets"))
            .header("Cookie", cookie)
            .json(&json!({"title": format!("propagation {n}"), "price": 10}))
            .send();
        requests.push(async move {
            let response = request.await;
            (response, Instant::now())
        });
        while let Some(Some((response, at))) = futures::FutureExt::now_or_never(requests.next()) {
            record(response, at, &mut committed, &mut errors).await;
        }
    }
    while let Some((response, at)) = requests.next().await {
        record(response, at, &mut committed, &mut errors).await;
    }
    let mut seen: HashMap<String, Instant> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.len() < committed.len() && Instant::now() < deadline {
        if let Ok(Some((id, at))) = tokio::time::timeout(Duration::from_millis(200), seen_rx.recv()).await {
            seen.insert(id, at);
        }
    }
    while let Ok((id, at)) = seen_rx.try_recv() {
        seen.insert(id, at);
    }
    let latencies: Vec<f64> = committed
        .iter()
        .filter_map(|(id, at)| seen.get(id).map(|s| s.saturating_duration_since(*at).as_secs_f64() * 1000.0))
        .collect();
    let mut out = summary(latencies);
    out["rate_per_second"] = json!(rate);
    out["seconds"] = json!(seconds);
    out["committed"] = json!(committed.len());
    out["never_seen"] = json!(committed.len() - committed.keys().filter(|id| seen.contains_key(*id)).count());
    out["errors"] = json!(errors);
    println!("{out}");
    Ok(())
}

async fn record(
    response: reqwest::Result<reqwest::Response>,
    at: Instant,
    committed: &mut HashMap<String, Instant>,
    errors: &mut u64,
) {
    match response {
        Ok(r) if r.status() == 201 => match r.json::<serde_json::Value>().await {
            Ok(body) => {
                committed.insert(body["id"].as_str().unwrap_or_default().to_owned(), at);
            }
            Err(_) => *errors += 1,
        },
        _ => *errors += 1,
    }
}

async fn rebuild(nats_url: &str, mongo_base: &str, events: usize) -> anyhow::Result<()> {
    use common::events::{
        EventBus, NatsSettings, OrderCreated, OrderStatus, OrderTicket, PaymentCreated, TicketCreated, TicketUpdated,
    };
    use common::money::Price;

    let nats = NatsSettings {
        url: nats_url.to_owned().into(),
        namespace: common::events::Namespace::new(Some(&format!(
            "bench{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        )))
        .map_err(anyhow::Error::msg)?,
        startup_timeout: Duration::from_secs(20),
        limits: common::events::StreamLimits::default(),
    };
    let bus = EventBus::connect(&nats, "bench").await?;
    for stream in
        [common::events::StreamName::Tickets, common::events::StreamName::Orders, common::events::StreamName::Payments]
    {
        bus.ensure_stream(stream).await?;
    }
    // A quarter each: tickets created, updated once, ordered, paid.
    let per_kind = events / 4;
    let price = Price::from_cents(1000)?;
    let published = Instant::now();
    let mut acks = Vec::with_capacity(events);
    for n in 0..per_kind {
        let ticket = bson::oid::ObjectId::new().to_hex();
        let order = bson::oid::ObjectId::new().to_hex();
        let user = bson::oid::ObjectId::new().to_hex();
        let payloads: [(&str, Vec<u8>); 4] = [
            (
                "ticket.created",
                serde_json::to_vec(&TicketCreated {
                    id: ticket.clone(),
                    version: 0,
                    title: format!("show {n}"),
                    price,
                    user_id: user.clone(),
                })?,
            ),
            (
                "ticket.updated",
                serde_json::to_vec(&TicketUpdated {
                    id: ticket.clone(),
                    version: 1,
                    title: format!("show {n} (moved)"),
                    price,
                    user_id: user.clone(),
                    order_id: None,
                })?,
            ),
            (
                "order.created",
                serde_json::to_vec(&OrderCreated {
                    id: order.clone(),
                    version: 0,
                    status: OrderStatus::Created,
                    user_id: user,
                    expires_at: "2030-01-01T00:00:00Z".into(),
                    ticket: OrderTicket { id: ticket, price },
                })?,
            ),
            (
                "payment.created",
                serde_json::to_vec(&PaymentCreated {
                    id: bson::oid::ObjectId::new().to_hex(),
                    order_id: order,
                    charge_id: "ch_bench".into(),
                })?,
            ),
        ];
        for (subject, payload) in payloads {
            let headers = msg_id_header(&common::events::new_event_id());
            let subject = bus.namespace().subject(subject);
            acks.push(bus.jetstream().publish_with_headers(subject, headers, payload.into()).await?);
        }
        if acks.len() >= 2000 {
            for ack in acks.drain(..) {
                ack.await?;
            }
        }
    }
    for ack in acks.drain(..) {
        ack.await?;
    }
    let publish_seconds = published.elapsed().as_secs_f64();

    let database = format!("bench_query_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let mongo = common::config::MongoSettings {
        uri: secrecy_string(common::config::with_database(mongo_base, &database)),
        database: database.clone(),
        startup_timeout: Duration::from_secs(20),
        retry_writes: true,
        retention: common::retention::RetentionSettings::default(),
        command_metrics: false,
    };
    let config = query::Config {
        http: common::config::HttpSettings {
            port: 0,
            host: "127.0.0.1".into(),
            request_timeout: Duration::from_secs(10),
            body_limit: 65536,
        },
        mongo,
        nats,
        listener: <query::Settings as common::config::Settings>::listener_settings(),
        own: query::Settings {
            session: common::config::SessionSettings {
                jwt_key: secrecy_string("bench-only-key-bench-only-key-bench-only".into()),
                jwt_ttl: Duration::from_secs(900),
                cookie_secure: false,
            },
            // A replay for the measurement: nobody watches the live feed.
            live_feed: false,
        },
    };
    let db =
        mongodb::Client::with_uri_str(common::config::with_database(mongo_base, &database)).await?.database(&database);
    let started = Instant::now();
    let application = query::build(config).await?;
    let durables = application.durables().to_vec();
    let stop = common::shutdown::CancellationToken::new();
    let task = tokio::spawn(application.run_until_stopped(stop.clone()));
    let expected = per_kind as u64;
    let progress = progress::Progress::new("query rebuild", "events", (per_kind * 4) as u64);
    // Done when every consumer has nothing pending and the model holds every ticket
    // (updated and reserved) and payment; the database is only counted once the consumers
    // are idle, so the watching does not load the server under test.
    loop {
        if started.elapsed() > Duration::from_secs(3600) {
            anyhow::bail!("rebuild did not finish in an hour");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        match query::backlog(&bus, &durables).await {
            Ok(0) => {}
            Ok(backlog) => {
                progress.set(((per_kind * 4) as u64).saturating_sub(backlog));
                continue;
            }
            Err(err) => {
                eprintln!("cannot read the consumers' backlog yet: {err:#}");
                continue;
            }
        }
        let tickets = db
            .collection::<bson::Document>("tickets")
            .count_documents(doc! { "version": 1, "status": "reserved" })
            .await?;
        let payments = db.collection::<bson::Document>("payments").count_documents(doc! {}).await?;
        if tickets >= expected && payments >= expected {
            break;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    progress.set((per_kind * 4) as u64);
    progress.finish("the read model holds every event");
    stop.cancel();
    task.await??;
    db.drop().await?;
    println!(
        "{}",
        json!({
            "events": per_kind * 4,
            "publish_seconds": publish_seconds,
            "rebuild_seconds": seconds,
            "events_per_second": (per_kind * 4) as f64 / seconds,
        })
    );
    Ok(())
}

async fn duplicate(nats_url: &str, last: u64) -> anyhow::Result<()> {
    use common::events::StreamName;
    let settings = common::events::NatsSettings {
        url: nats_url.to_owned().into(),
        namespace: common::events::Namespace::default(),
        startup_timeout: Duration::from_secs(10),
        limits: common::events::StreamLimits::default(),
    };
    let bus = common::events::EventBus::connect(&settings, "duplicator").await?;
    let mut copied = 0u64;
    for name in [StreamName::Tickets, StreamName::Orders, StreamName::Payments, StreamName::Expiration] {
        let Ok(mut stream) = bus.jetstream().get_stream(name.as_str()).await else { continue };
        let state = stream.info().await?.state.clone();
        for sequence in state.last_sequence.saturating_sub(last) + 1..=state.last_sequence {
            let Ok(message) = stream.get_raw_message(sequence).await else { continue };
            let headers = msg_id_header(&format!("dup-{}", uuid::Uuid::new_v4().simple()));
            bus.publish_with_headers(message.subject.as_str(), headers, message.payload.clone()).await?;
            copied += 1;
        }
    }
    println!("{}", json!({ "duplicated": copied }));
    Ok(())
}

pub(crate) fn msg_id_header(id: &str) -> async_nats::HeaderMap {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(common::events::MSG_ID_HEADER, id);
    headers
}

/// A JSON configuration given inline or as `@path`.
fn config<T: serde::de::DeserializeOwned>(arg: &str) -> anyhow::Result<T> {
    let text = match arg.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)?,
        None => arg.to_owned(),
    };
    Ok(serde_json::from_str(&text)?)
}

fn secrecy_string(s: String) -> secrecy::SecretString {
    secrecy::SecretString::from(s)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg =
        |n: usize| args.get(n).cloned().ok_or_else(|| anyhow::anyhow!("missing argument {n}; see the crate docs"));
    match args.first().map(String::as_str) {
        Some("hello") => hello(arg(1)?.parse()?).await,
        Some("mongo") => mongo(&arg(1)?, arg(2)?.parse()?, arg(3)? == "1", arg(4)?.parse()?, arg(5)?.parse()?).await,
        Some("propagation") => propagation(&arg(1)?, &arg(2)?, &arg(3)?, arg(4)?.parse()?, arg(5)?.parse()?).await,
        Some("rebuild") => rebuild(&arg(1)?, &arg(2)?, arg(3)?.parse()?).await,
        Some("duplicate") => duplicate(&arg(1)?, arg(2)?.parse()?).await,
        Some("bans") => sessions::bans(&arg(1)?, &arg(2)?, arg(3)?.parse()?, &args[4..]).await,
        Some("revocations") => sessions::revocations(&arg(1)?, &arg(2)?, arg(3)?.parse()?).await,
        Some("seed-refresh") => sessions::seed_refresh(&arg(1)?, &arg(2)?, arg(3)?.parse()?, &arg(4)?).await,
        Some("flash-sale") => flash::run(config(&arg(1)?)?).await,
        Some("feed-latency") => feed::run(config(&arg(1)?)?).await,
        Some("flood") => flood::run(config(&arg(1)?)?).await,
        Some("charts") => charts::draw(std::path::Path::new(&arg(1)?), std::path::Path::new(&arg(2)?)),
        _ => anyhow::bail!(
            "usage: bench-tool hello|mongo|propagation|rebuild|flash-sale|feed-latency|flood|charts ... (see the crate docs)"
        ),
    }
}
