//! Memory per idle WebSocket connection on the `pulse-gateway` binary (a benchmark,
//! not a test):
//!
//! ```text
//! cargo build --release -p pulse-gateway --bins --examples
//! target/release/examples/idle_memory [clients=5000] [store=memory] [budget_kib=16]
//! ```
//!
//! Starts `pulse-gateway serve` (the binary next to this example) on port 0, opens
//! one warm-up client, reads the server's `VmRSS` from `/proc`, then opens
//! `clients` more clients (each logged in with its own JWT, subscribed, then idle;
//! spread over 127.0.0.2–9 so ports never run out), waits until the server counts
//! them all open, and reads `VmRSS` again. Prints the growth per connection and
//! exits with status 1 when it is above `budget_kib`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use pulse_gateway::auth;
use pulse_protocol::auth::{Role, TokenUse};
use pulse_protocol::{ClientFrame, ServerFrame};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "idle-memory-bench-secret-0123456789";

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Connect from `source`, read `hello`, subscribe, read `subscribed`.
async fn client(addr: SocketAddr, source: IpAddr, n: usize) -> anyhow::Result<Ws> {
    let claims = auth::claims(
        &format!("user{n}"),
        &format!("t{:03}", n % 100),
        Role::Viewer,
        TokenUse::Access,
        Duration::from_secs(3600),
    );
    let token = auth::mint(SECRET, &claims)?;
    let sock = TcpSocket::new_v4()?;
    sock.bind(SocketAddr::new(source, 0))?;
    let tcp = sock.connect(addr).await?;
    let mut req = format!("ws://{addr}/v1/stream").into_client_request()?;
    req.headers_mut()
        .insert("Authorization", format!("Bearer {token}").parse()?);
    let (mut ws, _) = tokio_tungstenite::client_async(req, tcp).await?;
    let mut subscribed = false;
    while !subscribed {
        let Some(msg) = ws.next().await else {
            anyhow::bail!("closed before subscribed")
        };
        if let Message::Text(t) = msg? {
            match ServerFrame::decode(t.as_str())? {
                ServerFrame::Hello(_) => {
                    let sub = ClientFrame::Subscribe {
                        stream: None,
                        since: None,
                        epoch: None,
                    };
                    ws.send(Message::text(sub.encode())).await?;
                }
                ServerFrame::Subscribed(_) => subscribed = true,
                _ => {}
            }
        }
    }
    Ok(ws)
}

async fn open_connections(url: &str) -> anyhow::Result<u64> {
    let text = reqwest::get(format!("{url}/metrics")).await?.text().await?;
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix("pulse_connections_open "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let clients: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(5000);
    let store = args.get(1).cloned().unwrap_or_else(|| "memory".into());
    let budget: f64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(16.0);
    let exe = std::env::current_exe()?;
    let bin = exe
        .parent()
        .and_then(|d| d.parent())
        .map(|d| d.join("pulse-gateway"))
        .filter(|p| p.exists())
        .ok_or_else(|| anyhow::anyhow!("build the pulse-gateway binary first (--bins)"))?;
    let mut server = tokio::process::Command::new(bin)
        .args(["serve", "--addr", "127.0.0.1:0", "--store", &store])
        .args(["--ping-interval", "1h", "--ping-timeout", "1h"])
        .env("PULSE_JWT_SECRET", SECRET)
        .env("PULSE_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let pid = server.id().unwrap_or(0);
    let mut lines = BufReader::new(server.stdout.take().expect("stdout")).lines();
    let first = lines.next_line().await?.unwrap_or_default();
    let url = first
        .strip_prefix("listening on ")
        .ok_or_else(|| anyhow::anyhow!("unexpected first line {first:?}"))?
        .to_owned();
    let addr: SocketAddr = url.trim_start_matches("http://").parse()?;
    let _warm = client(addr, IpAddr::V4(Ipv4Addr::LOCALHOST), 0).await?;
    let before = rss_kib(pid);
    let t = Instant::now();
    let mut conns = Vec::with_capacity(clients);
    for n in 0..clients {
        let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (n % 8) as u8));
        conns.push(client(addr, source, n + 1).await?);
    }
    while open_connections(&url).await? < clients as u64 + 1 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after = rss_kib(pid);
    let per = (after.saturating_sub(before)) as f64 / clients as f64;
    println!(
        "store {store}: {clients} idle connections opened in {:.1} s; server VmRSS {before} KiB -> {after} KiB; {per:.1} KiB per connection (budget {budget} KiB)",
        t.elapsed().as_secs_f64()
    );
    drop(conns);
    let _ = server.kill().await;
    if per > budget {
        std::process::exit(1);
    }
    Ok(())
}
