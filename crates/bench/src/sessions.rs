//! Measurements of sessions that can be ended (SPEC section 7).

use std::time::{Duration, Instant};

use bson::oid::ObjectId;
use common::events::{EventBus, Namespace, NatsSettings, StreamName, UserSessionsRevoked};
use serde_json::json;

use crate::summary;

/// `bans AUTH_URL ADMIN_COOKIE COUNT PROBE...`: COUNT users sign up and are banned one
/// after the other; after each ban's 200, every probe (`METHOD:URL`, a route that needs a
/// session) is polled with the user's old session until it answers 401. Prints the time
/// from the 200 to the first 401, per probe and overall.
pub async fn bans(auth_url: &str, admin_cookie: &str, count: usize, probes: &[String]) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let probes: Vec<(reqwest::Method, String)> = probes
        .iter()
        .map(|p| {
            let (method, url) = p.split_once(':').ok_or_else(|| anyhow::anyhow!("{p} is not METHOD:URL"))?;
            Ok((method.parse()?, url.to_owned()))
        })
        .collect::<anyhow::Result<_>>()?;
    let mut per_probe: Vec<Vec<f64>> = vec![Vec::new(); probes.len()];
    let mut all = Vec::new();
    let mut not_refused = 0;
    let run = uuid::Uuid::new_v4().simple().to_string();
    for n in 0..count {
        let signup = client
            .post(format!("{auth_url}/api/users/signup"))
            .json(&json!({"email": format!("banned-{n}-{}@bench.test", &run[..8]), "password": "supersecret"}))
            .send()
            .await?;
        anyhow::ensure!(signup.status() == 201, "signup answered {}", signup.status());
        let cookie = signup
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("session="))
            .and_then(|v| v.split(';').next())
            .ok_or_else(|| anyhow::anyhow!("no session cookie"))?
            .to_owned();
        let user: serde_json::Value = signup.json().await?;
        let id = user["id"].as_str().unwrap_or_default();
        let ban = client.post(format!("{auth_url}/api/users/{id}/ban")).header("Cookie", admin_cookie).send().await?;
        anyhow::ensure!(ban.status() == 200, "ban answered {}", ban.status());
        let banned_at = Instant::now();
        let waits = probes.iter().map(|(method, url)| {
            let (client, cookie, method, url) = (client.clone(), cookie.clone(), method.clone(), url.clone());
            async move {
                let deadline = banned_at + Duration::from_secs(10);
                while Instant::now() < deadline {
                    let answer = client
                        .request(method.clone(), &url)
                        .header("Cookie", &cookie)
                        .header("Content-Type", "application/json")
                        .body("{}")
                        .send()
                        .await;
                    if answer.is_ok_and(|a| a.status() == 401) {
                        return Some(banned_at.elapsed().as_secs_f64() * 1e3);
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                None
            }
        });
        for (i, waited) in futures::future::join_all(waits).await.into_iter().enumerate() {
            match waited {
                Some(ms) => {
                    per_probe[i].push(ms);
                    all.push(ms);
                }
                None => not_refused += 1,
            }
        }
    }
    let by_probe: serde_json::Map<String, serde_json::Value> =
        probes.iter().zip(per_probe).map(|((m, url), ms)| (format!("{m} {url}"), summary(ms))).collect();
    println!(
        "{}",
        json!({ "bans": count, "not_refused_within_10s": not_refused, "all": summary(all), "by_probe": by_probe })
    );
    Ok(())
}

/// `revocations NATS_URL NAMESPACE COUNT`: publishes COUNT `user.sessions.revoked` events
/// for random users, dated now, as auth would. Prints how long publishing took.
pub async fn revocations(nats_url: &str, namespace: &str, count: usize) -> anyhow::Result<()> {
    let settings = NatsSettings {
        url: nats_url.to_owned().into(),
        namespace: Namespace::new(Some(namespace)).map_err(anyhow::Error::msg)?,
        startup_timeout: Duration::from_secs(10),
        limits: common::events::StreamLimits::default(),
    };
    let bus = EventBus::connect(&settings, "bench-revocations").await?;
    bus.ensure_stream(StreamName::Users).await?;
    let at = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339)?;
    let started = Instant::now();
    let subject = bus.namespace().subject("user.sessions.revoked");
    for chunk in (0..count).collect::<Vec<_>>().chunks(1_000) {
        let mut acks = Vec::with_capacity(chunk.len());
        for _ in chunk {
            let event = UserSessionsRevoked { user_id: ObjectId::new().to_hex(), at: at.clone() };
            let headers = crate::msg_id_header(&common::events::new_event_id());
            let payload = serde_json::to_vec(&event)?;
            acks.push(bus.jetstream().publish_with_headers(subject.clone(), headers, payload.into()).await?);
        }
        for ack in acks {
            ack.await?;
        }
    }
    println!("{}", json!({ "published": count, "seconds": started.elapsed().as_secs_f64() }));
    Ok(())
}

/// `seed-refresh AUTH_MONGO_URI USER_ID COUNT FILE`: stores COUNT refresh tokens (each in
/// its own family) for the user, as sign-ins would, and writes their values to FILE, one
/// per line, for wrk to present.
pub async fn seed_refresh(uri: &str, user_id: &str, count: usize, file: &str) -> anyhow::Result<()> {
    use auth::sessions::{Family, RefreshToken, token_hash};
    let database = common::config::database_from_uri(uri).map_err(anyhow::Error::msg)?;
    let db = mongodb::Client::with_uri_str(uri).await?.database(&database);
    let user = ObjectId::parse_str(user_id)?;
    let now = bson::DateTime::now();
    let expires = bson::DateTime::from_millis(now.timestamp_millis() + 3_600_000);
    let mut values = Vec::with_capacity(count);
    let (mut families, mut tokens) = (Vec::new(), Vec::new());
    for _ in 0..count {
        let value = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        let family = Family {
            id: ObjectId::new(),
            user_id: user,
            created_at: now,
            expires_at: expires,
            revoked_at: None,
            revoked_because: None,
        };
        tokens.push(RefreshToken {
            hash: token_hash(&value),
            family_id: family.id,
            user_id: user,
            created_at: now,
            expires_at: expires,
            used_at: None,
        });
        families.push(family);
        values.push(value);
    }
    for chunk in families.chunks(5_000) {
        db.collection::<Family>("refresh_families").insert_many(chunk).await?;
    }
    for chunk in tokens.chunks(5_000) {
        db.collection::<RefreshToken>("refresh_tokens").insert_many(chunk).await?;
    }
    std::fs::write(file, values.join("\n"))?;
    println!("{}", json!({ "seeded": count }));
    Ok(())
}
