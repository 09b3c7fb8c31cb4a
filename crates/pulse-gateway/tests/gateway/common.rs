//! Helpers: a gateway on 127.0.0.1:0, tokens, HTTP and WebSocket clients, and
//! waiting on conditions (never fixed sleeps). The config, the secret, token
//! minting and the waits are `pulse_testkit`'s, shared with other crates' tests.

use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use pulse_gateway::{Config, Gateway, RunningGateway};
use pulse_protocol::auth::{Role, TokenUse};
use pulse_protocol::frame::EventFrame;
use pulse_protocol::{ClientFrame, ServerFrame};
pub use pulse_testkit::gateway::{config, token as token_with, SECRET};
use pulse_testkit::process::spawn_announced;
pub use pulse_testkit::wait_for_some;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Upper bound for anything that should happen "now".
pub const SOON: Duration = Duration::from_secs(10);

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub struct Gw {
    pub gw: RunningGateway,
    pub http: reqwest::Client,
}

impl Gw {
    pub async fn start(config: Config) -> Gw {
        let gw = Gateway::start(config).await.expect("gateway starts");
        Gw {
            gw,
            http: reqwest::Client::new(),
        }
    }

    pub async fn default() -> Gw {
        Gw::start(config()).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.gw.url())
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1/stream", self.gw.addr())
    }

    pub async fn get(&self, token: &str, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    pub async fn post(&self, token: &str, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// Ingest and expect success; returns the seqs.
    pub async fn ingest(&self, token: &str, body: Value) -> Vec<u64> {
        let resp = self.post(token, "/v1/ingest", &body).await;
        let status = resp.status();
        let v: Value = resp.json().await.expect("json");
        assert_eq!(status, 200, "ingest failed: {v}");
        serde_json::from_value(v["seqs"].clone()).expect("seqs")
    }

    pub async fn json(&self, token: &str, path: &str) -> Value {
        let resp = self.get(token, path).await;
        assert_eq!(resp.status(), 200, "GET {path}");
        resp.json().await.expect("json")
    }

    /// `GET /metrics` (no token needed): the Prometheus text.
    pub async fn metrics(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("request")
            .text()
            .await
            .expect("metrics text")
    }

    pub async fn connect(&self, token: &str) -> Ws {
        connect(&self.ws_url(), token).await.expect("ws connects")
    }
}

pub fn publisher(tenant: &str) -> String {
    token_with(tenant, "svc", Role::Publisher, TokenUse::Access)
}

pub fn viewer(tenant: &str) -> String {
    token_with(tenant, "ann", Role::Viewer, TokenUse::Access)
}

pub async fn connect(url: &str, token: &str) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let mut req = url.into_client_request()?;
    req.headers_mut()
        .insert("Authorization", format!("Bearer {token}").parse().unwrap());
    let (ws, _) = tokio::time::timeout(SOON, tokio_tungstenite::connect_async(req))
        .await
        .expect("handshake in time")?;
    Ok(ws)
}

/// The next frame that is not a `ping` (a closed socket is a panic).
pub async fn next_frame(ws: &mut Ws) -> ServerFrame {
    loop {
        match next_message(ws).await {
            Some(Message::Text(t)) => {
                let f = ServerFrame::decode(t.as_str()).expect("server frames decode");
                if !matches!(f, ServerFrame::Ping { .. }) {
                    return f;
                }
            }
            Some(Message::Close(c)) => panic!("closed: {c:?}"),
            Some(_) => {}
            None => panic!("stream ended"),
        }
    }
}

/// The next message of any kind, or `None` when the socket ended.
pub async fn next_message(ws: &mut Ws) -> Option<Message> {
    match tokio::time::timeout(SOON, ws.next()).await {
        Ok(Some(Ok(m))) => Some(m),
        Ok(Some(Err(_))) | Ok(None) => None,
        Err(_) => panic!("no message within {SOON:?}"),
    }
}

pub async fn send(ws: &mut Ws, frame: &ClientFrame) {
    ws.send(Message::text(frame.encode())).await.expect("send");
}

/// Connect, read `hello`, subscribe with the cursor, return the socket and the
/// `subscribed` answer.
pub async fn subscribe(
    gw: &Gw,
    token: &str,
    since: Option<u64>,
    epoch: Option<&str>,
) -> (Ws, pulse_protocol::frame::Subscribed) {
    let mut ws = gw.connect(token).await;
    match next_frame(&mut ws).await {
        ServerFrame::Hello(_) => {}
        other => panic!("expected hello, got {other:?}"),
    }
    send(
        &mut ws,
        &ClientFrame::Subscribe {
            stream: None,
            since,
            epoch: epoch.map(str::to_owned),
        },
    )
    .await;
    match next_frame(&mut ws).await {
        ServerFrame::Subscribed(s) => (ws, s),
        other => panic!("expected subscribed, got {other:?}"),
    }
}

/// The next `n` event frames.
pub async fn events(ws: &mut Ws, n: usize) -> Vec<EventFrame> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        match next_frame(ws).await {
            ServerFrame::Event(e) => out.push(e),
            other => panic!("expected an event, got {other:?}"),
        }
    }
    out
}

/// Wait until the socket is closed by the server; returns the close code, if any.
pub async fn closed(ws: &mut Ws) -> Option<u16> {
    loop {
        match next_message(ws).await {
            Some(Message::Close(c)) => return c.map(|c| u16::from(c.code)),
            None => return None,
            Some(_) => {}
        }
    }
}

pub fn ev(ty: &str, data: Value) -> Value {
    serde_json::json!({"type": ty, "data": data})
}

/// The `pulse-gateway` binary, killed on drop.
pub struct Proc {
    pub child: tokio::process::Child,
    pub url: String,
}

impl Proc {
    pub async fn spawn(args: &[&str]) -> Proc {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_pulse-gateway"));
        cmd.args(args)
            .env("PULSE_JWT_SECRET", SECRET)
            .env("PULSE_LOG", "warn")
            .stderr(Stdio::inherit());
        let (child, line) =
            spawn_announced("pulse-gateway", &mut cmd, Duration::from_secs(30)).await;
        let url = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        Proc { child, url }
    }

    /// SIGKILL and reap.
    pub async fn kill(mut self) {
        self.child.kill().await.expect("kill");
    }
}
