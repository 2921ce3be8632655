//! A sign-up flood, and what legitimate users see meanwhile (`bench-tool flood
//! CONFIG_JSON`).
//!
//! Three phases of `seconds` each against one auth service (which must believe the
//! bench's `X-Forwarded-For`: `TRUSTED_PROXIES=127.0.0.1/32`):
//! - `none`: no flood, the reference;
//! - `many_addresses`: `flood_concurrency` loops sign up new accounts as fast as they can,
//!   each request from a different address (198.18.0.0/15, the benchmarking range): the
//!   per-client limit cannot see it, only the bounded hashing queue can;
//! - `one_address`: the same flood from one address: the per-client limit answers 429.
//!
//! In every phase, an existing user's `GET /api/users/currentuser` runs at a steady
//! `currentuser_rate` per second (open loop: a slow answer does not slow the next request),
//! and `legit_users` existing users sign in once each, spread over the phase, each from
//! its own address. Prints, per phase, the currentuser latency, the sign-ins that
//! succeeded, and what the flood was answered.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::summary;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    pub auth_url: String,
    #[serde(default = "defaults::seconds")]
    pub seconds: u64,
    #[serde(default = "defaults::flood_concurrency")]
    pub flood_concurrency: usize,
    #[serde(default = "defaults::currentuser_rate")]
    pub currentuser_rate: f64,
    #[serde(default = "defaults::legit_users")]
    pub legit_users: usize,
}

mod defaults {
    pub fn seconds() -> u64 {
        15
    }
    pub fn flood_concurrency() -> usize {
        32
    }
    pub fn currentuser_rate() -> f64 {
        200.0
    }
    pub fn legit_users() -> usize {
        10
    }
}

const PASSWORD: &str = "a legitimate passphrase";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Flood {
    None,
    ManyAddresses,
    OneAddress,
}

impl Flood {
    fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::ManyAddresses => "many_addresses",
            Self::OneAddress => "one_address",
        }
    }
}

fn cookie_of(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("session="))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let run = &uuid::Uuid::new_v4().simple().to_string()[..8];
    // The legitimate users, each signed up from its own address (the sign-up limit is per
    // client).
    let mut emails = Vec::new();
    let mut cookie = None;
    for n in 0..config.legit_users.max(1) {
        let email = format!("legit{n}-{run}@flood.test");
        let response = client
            .post(format!("{}/api/users/signup", config.auth_url))
            .header("X-Forwarded-For", format!("198.19.0.{}", n % 250 + 1))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await?;
        anyhow::ensure!(response.status() == 201, "signing up {email} answered {}", response.status());
        cookie = cookie.or_else(|| cookie_of(&response));
        emails.push(email);
    }
    let cookie = cookie.ok_or_else(|| anyhow::anyhow!("no session cookie"))?;

    let mut phases = serde_json::Map::new();
    for (index, flood) in [Flood::None, Flood::ManyAddresses, Flood::OneAddress].into_iter().enumerate() {
        eprintln!("[flood] phase {}: {} s", flood.name(), config.seconds);
        let phase = phase(&client, &config, flood, &cookie, &emails, index).await?;
        phases.insert(flood.name().to_owned(), phase);
        // Let the hashing queue drain before the next phase.
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let p99 = |name: &str| phases[name]["currentuser"]["p99_ms"].as_f64().unwrap_or(f64::NAN);
    let out = json!({
        "seconds": config.seconds,
        "flood_concurrency": config.flood_concurrency,
        "currentuser_rate": config.currentuser_rate,
        "legit_users": config.legit_users,
        "phases": phases,
        "currentuser_p99_ratio_many_addresses": p99("many_addresses") / p99("none"),
        "currentuser_p99_ratio_one_address": p99("one_address") / p99("none"),
    });
    println!("{out}");
    Ok(())
}

async fn phase(
    client: &reqwest::Client,
    config: &Config,
    flood: Flood,
    cookie: &str,
    emails: &[String],
    index: usize,
) -> anyhow::Result<Value> {
    let ends = Instant::now() + Duration::from_secs(config.seconds);
    let flood_answers: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let flooders: Vec<_> = (0..if flood == Flood::None { 0 } else { config.flood_concurrency })
        .map(|worker| {
            let (client, url, answers) = (client.clone(), config.auth_url.clone(), flood_answers.clone());
            let mut rng = fastrand::Rng::with_seed(worker as u64 + 1);
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < ends {
                    n += 1;
                    let address = match flood {
                        Flood::OneAddress => "203.0.113.9".to_owned(),
                        _ => format!("198.18.{}.{}", rng.u8(..), rng.u8(1..255)),
                    };
                    let answer = client
                        .post(format!("{url}/api/users/signup"))
                        .header("X-Forwarded-For", address)
                        .json(&json!({"email": format!("flood{worker}-{n}-{}@flood.test", rng.u32(..)), "password": "floodfloodflood"}))
                        .send()
                        .await;
                    let key = match answer {
                        Ok(r) => r.status().as_u16().to_string(),
                        Err(_) => "error".to_owned(),
                    };
                    *answers.lock().unwrap_or_else(std::sync::PoisonError::into_inner).entry(key).or_default() += 1;
                }
            })
        })
        .collect();

    // Legitimate sign-ins, spread over the phase, each from its own address.
    let signins: Vec<_> = emails
        .iter()
        .enumerate()
        .map(|(n, email)| {
            let (client, url, email) = (client.clone(), config.auth_url.clone(), email.clone());
            let at = Duration::from_secs_f64(config.seconds as f64 * (n as f64 + 0.5) / emails.len() as f64);
            tokio::spawn(async move {
                tokio::time::sleep(at).await;
                let sent = Instant::now();
                let answer = client
                    .post(format!("{url}/api/users/signin"))
                    .header("X-Forwarded-For", format!("198.19.{}.{}", index + 1, n % 250 + 1))
                    .json(&json!({"email": email, "password": PASSWORD}))
                    .send()
                    .await;
                let status = answer.map(|r| r.status().as_u16()).unwrap_or(0);
                (status, sent.elapsed().as_secs_f64() * 1e3)
            })
        })
        .collect();

    // The currentuser probe, open loop.
    let mut probes = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / config.currentuser_rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    while Instant::now() < ends {
        tick.tick().await;
        let request = client.get(format!("{}/api/users/currentuser", config.auth_url)).header("Cookie", cookie);
        probes.push(tokio::spawn(async move {
            let sent = Instant::now();
            let ok = request.send().await.is_ok_and(|r| r.status() == 200);
            (ok, sent.elapsed().as_secs_f64() * 1e3)
        }));
    }
    let mut latencies = Vec::with_capacity(probes.len());
    let mut failed = 0;
    for probe in probes {
        let (ok, ms) = probe.await?;
        latencies.push(ms);
        failed += u64::from(!ok);
    }
    let mut signin_statuses: BTreeMap<String, u64> = BTreeMap::new();
    let mut signin_latencies = Vec::new();
    for signin in signins {
        let (status, ms) = signin.await?;
        *signin_statuses.entry(status.to_string()).or_default() += 1;
        signin_latencies.push(ms);
    }
    for flooder in flooders {
        flooder.await?;
    }
    let requests = latencies.len();
    let mut currentuser = summary(latencies.clone());
    currentuser["requests"] = json!(requests);
    currentuser["failed"] = json!(failed);
    currentuser["percentiles_ms"] = crate::percentiles(latencies);
    let ok = signin_statuses.get("200").copied().unwrap_or(0);
    let flood_answers = flood_answers.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    Ok(json!({
        "currentuser": currentuser,
        "signin": {
            "attempts": emails.len(),
            "succeeded": ok,
            "success_rate": ok as f64 / emails.len().max(1) as f64,
            "statuses": signin_statuses,
            "latency": summary(signin_latencies),
        },
        "flood": {
            "requests": flood_answers.values().sum::<u64>(),
            "answers": flood_answers,
        },
    }))
}
