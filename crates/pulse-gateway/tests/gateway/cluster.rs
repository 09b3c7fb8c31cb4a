//! Two in-process gateway nodes on one real `redis-server`: a reconnect herd
//! resuming on one node while another ingests.

use pulse_gateway::{Config, StoreConfig};
use pulse_protocol::rest::Snapshot;
use pulse_testkit::redis::RedisServer;
use serde_json::json;

use crate::common::*;

async fn node(redis: &RedisServer, id: &str) -> Gw {
    Gw::start(Config {
        store: StoreConfig::Redis(redis.url()),
        node_id: Some(id.into()),
        ..config()
    })
    .await
}

fn batch(from: u64, n: u64) -> serde_json::Value {
    json!((from..from + n)
        .map(|k| json!({"id": format!("e{k}"), "type": "ticket.event_added", "data": {"id": format!("t{}", k % 7), "event": {"k": k}}}))
        .collect::<Vec<_>>())
}

/// Sixty clients resume on node B from one cursor at once while node A ingests:
/// each gets every event after its cursor once, in order (merged replays, then
/// live from B's tail, gaps between the two filled from Redis).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_herd_on_one_node_while_another_ingests() {
    let redis = RedisServer::start();
    let (a, b) = (node(&redis, "a").await, node(&redis, "b").await);
    let (pubr, view) = (publisher("acme"), viewer("acme"));
    a.ingest(&pubr, batch(0, 100)).await;
    let epoch = a.json(&view, "/v1/snapshot").await["epoch"]
        .as_str()
        .unwrap()
        .to_owned();
    let ingest = async {
        for n in 0..10 {
            a.ingest(&pubr, batch(100 + n * 10, 10)).await;
        }
    };
    let herd = futures_util::future::join_all((0..60).map(|_| async {
        let (mut ws, sub) = subscribe(&b, &view, Some(50), Some(&epoch)).await;
        assert!(sub.recovered, "{sub:?}");
        let mut seqs = Vec::new();
        while seqs.last() != Some(&200) {
            seqs.extend(events(&mut ws, 1).await.into_iter().map(|e| e.seq));
        }
        seqs
    }));
    let ((), herd) = tokio::join!(ingest, herd);
    for seqs in herd {
        assert_eq!(seqs, (51..=200).collect::<Vec<u64>>());
    }
    let sa: Snapshot = serde_json::from_value(a.json(&view, "/v1/snapshot").await).unwrap();
    let sb: Snapshot = serde_json::from_value(b.json(&view, "/v1/snapshot").await).unwrap();
    assert_eq!((sa.seq, &sa), (200, &sb), "both nodes serve one state");
}
