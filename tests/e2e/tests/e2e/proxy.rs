//! A TCP proxy in front of the gateway that can refuse WebSocket upgrades, as a
//! corporate proxy does, and counts upgrade attempts.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

pub struct Proxy {
    addr: SocketAddr,
    block: Arc<AtomicBool>,
    upgrades: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
}

impl Proxy {
    pub fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let block = Arc::new(AtomicBool::new(false));
        let upgrades = Arc::new(AtomicU64::new(0));
        let refused = Arc::new(AtomicU64::new(0));
        let (b, u, r) = (block.clone(), upgrades.clone(), refused.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { break };
                let (b, u, r) = (b.clone(), u.clone(), r.clone());
                std::thread::spawn(move || handle(conn, upstream, &b, &u, &r));
            }
        });
        Proxy {
            addr,
            block,
            upgrades,
            refused,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn block_websockets(&self, on: bool) {
        self.block.store(on, Ordering::SeqCst);
    }

    pub fn upgrades(&self) -> u64 {
        self.upgrades.load(Ordering::SeqCst)
    }

    pub fn upgrades_refused(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }
}

fn handle(
    mut client: TcpStream,
    upstream: SocketAddr,
    block: &AtomicBool,
    upgrades: &AtomicU64,
    refused: &AtomicU64,
) {
    // Read the first request head.
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match client.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > 64 * 1024 {
            return;
        }
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    if text.contains("upgrade: websocket") {
        upgrades.fetch_add(1, Ordering::SeqCst);
        if block.load(Ordering::SeqCst) {
            refused.fetch_add(1, Ordering::SeqCst);
            let body = "WebSockets are blocked by policy";
            let _ = write!(
                client,
                "HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            return;
        }
    }
    let Ok(mut up) = TcpStream::connect(upstream) else {
        let _ = client.write_all(
            b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        );
        return;
    };
    if up.write_all(&head).is_err() {
        return;
    }
    let (mut c2, mut u2) = (client.try_clone().unwrap(), up.try_clone().unwrap());
    let t = std::thread::spawn(move || {
        let _ = std::io::copy(&mut u2, &mut c2);
        let _ = c2.shutdown(std::net::Shutdown::Write);
    });
    let _ = std::io::copy(&mut client, &mut up);
    let _ = up.shutdown(std::net::Shutdown::Write);
    let _ = t.join();
}
