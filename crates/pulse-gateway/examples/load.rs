//! A load generator for the gateway, run against an in-process gateway on loopback:
//!
//! ```text
//! cargo run --release -p pulse-gateway --example load -- [memory|sqlite] [subscribers] [publishers] [events per publisher] [batch]
//! ```
//!
//! It opens `subscribers` WebSocket clients, then `publishers` concurrent HTTP clients
//! each ingest `events` events in batches of `batch`, and prints the ingest rate and
//! the fan-out latency (ingest request sent → event received) percentiles.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use pulse_gateway::{auth, Config, Gateway, StoreConfig};
use pulse_protocol::auth::{Role, TokenUse};
use pulse_protocol::{ClientFrame, ServerFrame};
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// The example's JWT secret (at least 32 bytes, as the gateway requires).
const SECRET: &str = "load-example-secret-0123456789abcdef";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let sqlite = args.first().is_some_and(|s| s == "sqlite");
    let (subs, pubs, per_pub, batch) = (arg(1, 100), arg(2, 8), arg(3, 2000), arg(4, 1).max(1));
    let dir = tempfile::tempdir()?;
    let gw = Gateway::start(Config {
        jwt_secret: Some(SECRET.into()),
        store: if sqlite {
            StoreConfig::Sqlite(dir.path().join("load.db"))
        } else {
            StoreConfig::Memory
        },
        ..Config::default()
    })
    .await?;
    let token = |role| {
        auth::mint(
            SECRET,
            &auth::claims(
                "load",
                "bench",
                role,
                TokenUse::Access,
                Duration::from_secs(3600),
            ),
        )
    };
    let (viewer, publisher) = (token(Role::Viewer)?, token(Role::Publisher)?);
    let total = pubs * per_pub;
    let t0 = Instant::now();

    let mut readers = Vec::new();
    for _ in 0..subs {
        let mut req = format!("ws://{}/v1/stream", gw.addr()).into_client_request()?;
        req.headers_mut()
            .insert("Authorization", format!("Bearer {viewer}").parse()?);
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await?;
        ws.next().await; // hello
        let sub = ClientFrame::Subscribe {
            stream: None,
            since: None,
            epoch: None,
        };
        ws.send(Message::text(sub.encode())).await?;
        ws.next().await; // subscribed
        readers.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(total);
            while lat.len() < total {
                let Some(Ok(Message::Text(t))) = ws.next().await else {
                    break;
                };
                if let Ok(ServerFrame::Event(e)) = ServerFrame::decode(t.as_str()) {
                    let sent = e.data["sent_us"].as_u64().unwrap_or(0);
                    lat.push(t0.elapsed().as_micros() as u64 - sent);
                }
            }
            lat
        }));
    }

    let http = reqwest::Client::new();
    let url = Arc::new(format!("{}/v1/ingest", gw.url()));
    let start = Instant::now();
    let mut writers = Vec::new();
    for p in 0..pubs {
        let (http, url, publisher) = (http.clone(), url.clone(), publisher.clone());
        writers.push(tokio::spawn(async move {
            for i in (0..per_pub).step_by(batch) {
                let n = batch.min(per_pub - i);
                let sent = t0.elapsed().as_micros() as u64;
                let body: Vec<_> = (0..n)
                    .map(|j| json!({"type": "agent.heartbeat", "data": {"id": format!("agent-{p}"), "n": i + j, "sent_us": sent}}))
                    .collect();
                let r = http.post(url.as_str()).bearer_auth(&publisher).json(&body).send().await?;
                anyhow::ensure!(r.status() == 200, "ingest failed: {}", r.status());
            }
            Ok(())
        }));
    }
    for w in writers {
        w.await??;
    }
    let ingest = start.elapsed();
    let mut lat = Vec::new();
    for r in readers {
        lat.extend(r.await?);
    }
    let fanout = start.elapsed();
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    println!(
        "store={} subscribers={subs} publishers={pubs} batch={batch} events={total}",
        if sqlite { "sqlite" } else { "memory" }
    );
    println!(
        "ingest: {:.0} events/s ({} requests in {:.2?}); all delivered after {:.2?}",
        total as f64 / ingest.as_secs_f64(),
        total.div_ceil(batch),
        ingest,
        fanout
    );
    println!(
        "fan-out latency (request sent -> received), {} samples: p50 {} us, p99 {} us, max {} us",
        lat.len(),
        pct(0.50),
        pct(0.99),
        pct(1.0)
    );
    gw.shutdown().await;
    Ok(())
}
